"""Release format shared by every model: `model.safetensors` + `config.json`, never pickle."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .atomic import atomic_path, atomic_write
from .errors import ModelError

RELEASE_FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_release(directory: str | Path, kind: str, config: dict[str, Any], state: dict[str, torch.Tensor],
                 dtype: torch.dtype | None = None) -> Path:
    """Write a release directory atomically (files are renamed into place once complete). With `dtype`
    (float16 halves an LM release) floating tensors are stored in it; loading casts them back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: (t.to(dtype) if dtype is not None and t.is_floating_point() else t).detach().cpu().contiguous()
               for name, t in state.items()}
    meta = {"format_version": RELEASE_FORMAT_VERSION, "kind": kind, **config}
    with atomic_path(directory / WEIGHTS) as tmp:
        save_file(tensors, tmp, metadata={"kind": kind})
    atomic_write(directory / CONFIG, json.dumps(meta, indent=2) + "\n")
    return directory


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], directory: str | Path,
                 strict: bool = True):
    """Load a release's tensors into `model`; ModelError, in one line, when they do not fit its config."""
    try:
        return model.load_state_dict(tensors, strict=strict)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0])[:200] if lines else type(e).__name__
        raise ModelError(f"{directory}: weights do not match the config ({detail})") from None


def release_fingerprint(config: dict[str, Any], state: dict[str, torch.Tensor]) -> str:
    """16 hex digits identifying a model's config and weights: files made by a model name it with this."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_release(directory: str | Path, kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read (config, tensors) of a release directory of the given kind."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG, directory / WEIGHTS
    if not config_path.is_file() or not weights_path.is_file():
        raise ModelError(f"{directory} is not a {kind} model directory (needs {CONFIG} and {WEIGHTS})")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{config_path}: not valid JSON ({e})") from None
    if config.get("kind") != kind:
        raise ModelError(f"{directory} holds a {config.get('kind')!r} model, not a {kind!r} model")
    if config.get("format_version", 0) > RELEASE_FORMAT_VERSION:
        raise ModelError(f"{directory}: format {config['format_version']} is newer than this sonorant")
    try:
        tensors = load_file(weights_path)
    except Exception as e:  # safetensors raises several types for a damaged file
        raise ModelError(f"{weights_path}: unreadable weights ({e})") from None
    return config, tensors
