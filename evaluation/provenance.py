"""Where a figure came from: date, machine, device and command, recorded in every benchmark's JSON."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> str:
    """For example "2-core Intel(R) Xeon(R) ... CPU" or "NVIDIA H100 80GB HBM3 GPU (16-core ... host)"."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    host = f"{cores}-core {cpu_name()}"
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(torch.device(device))} GPU ({host} host)"
    return f"{host} CPU"


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def provenance(device: str = "cpu", argv: list[str] | None = None) -> dict[str, str | None]:
    """The `meta` block of a results file. The command is this process's own command line."""
    args = sys.argv[1:] if argv is None else argv
    return {
        "date": datetime.date.today().isoformat(),
        "machine": machine(device),
        "device": device,
        "command": shlex.join(["sonorant", *args]),
        "commit": git_commit(),
    }
