"""The `--device` flag: where models run, checked before any model loads."""

from __future__ import annotations

import re

from .errors import SonorantError

_DEVICE = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


def check_device(name: str, allow_auto: bool = False) -> str:
    """`name` if models can run there (cpu, cuda, cuda:N of a GPU present, mps; `auto` when allowed), else
    SonorantError."""
    name = name.strip().lower()
    if allow_auto and name == "auto":
        return name
    match = _DEVICE.fullmatch(name)
    if match is None:
        choices = "cpu, cuda, cuda:N" + (" or auto" if allow_auto else "")
        raise SonorantError(f"--device {name!r} is not a device (use {choices})")
    if match.group(1) == "cpu":
        if match.group(2) not in (None, "0"):
            raise SonorantError(f"--device {name!r} is not a device (use cpu)")
        return name
    import torch

    if match.group(1) == "mps":
        if not torch.backends.mps.is_available():
            raise SonorantError("--device mps: no Apple GPU is available here (use cpu)")
        return name
    if not torch.cuda.is_available():
        raise SonorantError(f"--device {name}: no CUDA GPU is available here (use --device cpu)")
    index = int(match.group(2) or 0)
    if index >= torch.cuda.device_count():
        raise SonorantError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA GPU(s) (cuda:0..)")
    return name
