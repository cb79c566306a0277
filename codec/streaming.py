"""Explicit streaming state: every stateful module owns a small state object.

`with module.streaming(batch_size):` creates the state of every streaming sub-module, and
drops it on exit, so the same module serves offline (stateless) and streaming calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn


class StreamingModule(nn.Module):
    """Base class for modules that carry state between streaming calls."""

    def __init__(self) -> None:
        super().__init__()
        self._streaming_state: Any = None

    def _init_streaming_state(self, batch_size: int) -> Any:
        """Return this module's fresh state, or None when it has none of its own."""
        return None

    @property
    def is_streaming(self) -> bool:
        return self._streaming_state is not None

    @contextmanager
    def streaming(self, batch_size: int) -> Iterator[None]:
        modules = [m for m in self.modules() if isinstance(m, StreamingModule)]
        if any(m.is_streaming for m in modules):
            raise RuntimeError("already streaming: leave the current streaming context first")
        try:
            for module in modules:
                module._streaming_state = module._init_streaming_state(batch_size)
            yield
        finally:
            for module in modules:
                module._streaming_state = None
