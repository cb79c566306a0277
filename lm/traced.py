"""Generation's small steps as TorchScript graphs, for a CPU.

A frame step multiplies one or two rows by each weight matrix: on a CPU most of its time goes to
Python's cost per operation (module calls, argument handling), not to arithmetic. `torch.jit.trace`
records the operations of one call and replays them without Python: the same modules and the same
results. A graph is traced on first use for each key (what its operations depend on besides the input
tensors' values: the batch size, the codebook index) and kept. TorchScript is deprecated upstream but
kept in the torch this project pins; a traced graph is a cache, never saved.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable

import torch
from torch import nn


class _Graph(nn.Module):
    """A function of tensors over `owner`'s modules, as the module `torch.jit.trace` needs (owner is its
    submodule, so the owner's weights, int8 packed ones included, are part of the trace)."""

    def __init__(self, owner: nn.Module, function: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.owner, self.function = owner, function

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.function(*inputs)


class TracedSteps:
    """Traced graphs of `function` (a function of tensors over `owner`'s modules), one per key."""

    def __init__(self, owner: nn.Module) -> None:
        if owner.training:
            raise RuntimeError("traced steps are for a model in eval mode")
        owner.requires_grad_(False)  # weights become constants of the graphs
        self.owner = owner
        self.graphs: dict[Hashable, torch.jit.ScriptModule] = {}

    def __call__(self, key: Hashable, function: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...],
                 written: int = 0) -> torch.Tensor:
        """`function(*inputs)` through the graph of `key`. Tracing runs the function once: the last `written`
        inputs (state it writes to in place, such as a KV cache) are copied for that run."""
        if key not in self.graphs:
            scratch = (*inputs[: len(inputs) - written], *(t.clone() for t in inputs[len(inputs) - written:]))
            with warnings.catch_warnings():  # the deprecation note and tracer hints, once per graph
                warnings.simplefilter("ignore")
                self.graphs[key] = torch.jit.trace(_Graph(self.owner, function), scratch, check_trace=False)
        return self.graphs[key](*inputs)
