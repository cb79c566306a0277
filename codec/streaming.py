"""Explicit streaming state: every stateful module owns a small state object.

Two ways to stream through the same module:
- per call (what servers and concurrent streams use): `state = module.new_stream(batch_size)` makes a
  `StreamState` holding the state of every streaming sub-module; each step is then run with
  `with module.bind(state):` (the Codec's `encode_step`/`decode_step` take `state=`). Two streams with
  two states never touch each other, and calls made outside a binding stay offline (stateless);
- module-wide: `with module.streaming(batch_size):` creates the state on the modules themselves, and
  drops it on exit (one stream at a time).
A binding lives in a context variable and never spans a `yield`, so interleaved generators and threads
each see only their own state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(eq=False)
class StreamState:
    """The streaming state of one stream: each streaming sub-module's own state object, by module."""

    batch_size: int
    states: dict[nn.Module, Any] = field(default_factory=dict)


_BOUND: ContextVar[StreamState | None] = ContextVar("sonorant_stream_state", default=None)


class StreamingModule(nn.Module):
    """Base class for modules that carry state between streaming calls."""

    def __init__(self) -> None:
        super().__init__()
        self._module_state: Any = None

    def _init_streaming_state(self, batch_size: int) -> Any:
        """Return this module's fresh state, or None when it has none of its own."""
        return None

    @property
    def _streaming_state(self) -> Any:
        """The state of the bound stream when this module belongs to it, else the module-wide one."""
        bound = _BOUND.get()
        if bound is not None and self in bound.states:
            return bound.states[self]
        return self._module_state

    @property
    def is_streaming(self) -> bool:
        return self._streaming_state is not None

    def _streaming_modules(self) -> list[StreamingModule]:
        return [m for m in self.modules() if isinstance(m, StreamingModule)]

    def new_stream(self, batch_size: int) -> StreamState:
        """A fresh state for one stream through this module (see `bind`)."""
        return StreamState(batch_size, {m: m._init_streaming_state(batch_size) for m in self._streaming_modules()})

    @contextmanager
    def bind(self, state: StreamState) -> Iterator[None]:
        """Run the calls inside with `state` (from `new_stream`); do not yield inside."""
        token = _BOUND.set(state)
        try:
            yield
        finally:
            _BOUND.reset(token)

    @contextmanager
    def streaming(self, batch_size: int) -> Iterator[None]:
        modules = self._streaming_modules()
        if any(m._module_state is not None for m in modules):
            raise RuntimeError("already streaming: leave the current streaming context first")
        try:
            for module in modules:
                module._module_state = module._init_streaming_state(batch_size)
            yield
        finally:
            for module in modules:
                module._module_state = None
