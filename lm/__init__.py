"""Hierarchical codec language model: a global transformer over frames, a local one over codebooks."""

from .batch import Conditioning, LMBatch, LMOutput
from .config import LMConfig
from .generation import Frame, Generated, Generation
from .model import HierarchicalLM
from .prefix import PrefixStore
from .sampling import SamplingConfig

__all__ = ["Conditioning", "Frame", "Generated", "Generation", "HierarchicalLM", "LMBatch", "LMConfig",
           "LMOutput", "PrefixStore", "SamplingConfig"]
