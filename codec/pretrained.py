"""Finding codec weights: a release directory, a model bundle, or the shipped default."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ModelError
from ..core.paths import default_model_dir

if TYPE_CHECKING:
    import torch

    from .model import Codec


def codec_dir(model: str | Path | None = None) -> Path:
    """The codec release directory inside `model` (a bundle or a codec directory; None = shipped)."""
    root = Path(model) if model is not None else default_model_dir()
    for candidate in (root, root / "codec"):
        if (candidate / "config.json").is_file():
            return candidate
    if model is None:
        raise ModelError("no shipped codec found in the installation; pass --model DIR")
    raise ModelError(f"{root}: no codec model here (expected config.json + model.safetensors, or a codec/ folder)")


def load_codec(model: str | Path | None = None, device: str | torch.device = "cpu") -> Codec:
    from .model import Codec

    return Codec.from_pretrained(codec_dir(model), device=device)
