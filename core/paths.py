"""Where the shipped bundle is installed (`sonorant/pretrained`): the default of every `--model`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def default_model_dir() -> Path:
    return Path(str(resources.files("sonorant.pretrained")))
