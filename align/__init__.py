"""Forced alignment of phonemes to audio frames (sonorant.align)."""

from .config import AlignerConfig
from .model import Aligner, AlignerOutput, Alignment

__all__ = ["Aligner", "AlignerConfig", "AlignerOutput", "Alignment"]
