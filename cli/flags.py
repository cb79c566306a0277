"""Checks shared by the commands' flags (typer callbacks), so a bad value is a usage error before any work."""

from __future__ import annotations

import math

import typer


def finite(value: float | None) -> float | None:
    """A float flag's callback: click's ranges let nan and inf through (every comparison with nan is false)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value
