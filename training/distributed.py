"""torch.distributed for the trainer: process group from torchrun's environment, DDP / FSDP2 wrapping,
gradient-sync control for accumulation, metric reduction and replica checks.

One process (no torchrun) is the world of size 1: every helper here then does nothing, so the same
training code runs from one CPU to many GPUs on many nodes.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.nn.parallel import DistributedDataParallel

from ..core.errors import SonorantError

STRATEGIES = ("ddp", "fsdp")


@dataclass(frozen=True)
class World:
    """This process's place in the training job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64 on the wire; the values are metric sums, not tensors to train)."""
        if not self.distributed:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (picklable Python values only)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    @property
    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def finish_worker() -> None:
    """End a torchrun worker whose job succeeded (every rank past the final barrier, every file closed)
    without the interpreter's teardown: there, now and then, a rank aborted with "terminate called
    without an active exception" (a native thread still joinable at exit), failing a finished job."""
    if launched_by_torchrun():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def setup(device: str | None) -> World:
    """The world of this process: from torchrun's RANK / WORLD_SIZE / LOCAL_RANK (process group joined, NCCL
    on CUDA, gloo on CPU), else one process. `device`: cpu, cuda or auto (CUDA when available)."""
    use_cuda = _wants_cuda(device)
    if not launched_by_torchrun():
        return World(device=torch.device(device if device not in (None, "auto") else ("cuda" if use_cuda else "cpu")))
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise SonorantError(f"local rank {local_rank} has no GPU: {torch.cuda.device_count()} on this node "
                                "(use --nproc-per-node at most the GPU count, or --device cpu)")
        torch.cuda.set_device(local_rank)
        place = torch.device("cuda", local_rank)
    else:
        place = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo",
                                device_id=place if use_cuda else None)
    return World(rank=rank, world_size=world_size, local_rank=local_rank, device=place)


def _wants_cuda(device: str | None) -> bool:
    if device in (None, "auto"):
        return torch.cuda.is_available()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SonorantError("--device cuda was asked for, but no CUDA device is available")
    return device.startswith("cuda")


@contextmanager
def joined(device: str | None) -> Iterator[World]:
    """`setup` for the length of a job. On success the group is left once every rank is done with it (a
    rank that destroys its group while another still exchanges with it can abort the other); on an error
    at once, without waiting for ranks that may never arrive (torchrun then stops the others)."""
    world = setup(device)
    try:
        yield world
    except BaseException:
        if dist.is_initialized():
            dist.destroy_process_group()
        raise
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# -- wrapping -----------------------------------------------------------------------------------
def wrap(module: nn.Module, world: World, strategy: str, shard_units: list[nn.Module] | None = None) -> nn.Module:
    """The module to run training forwards through: itself in one process, DDP, or FSDP2 (`fully_shard`
    applied in place to each of `shard_units` and then to the root; the returned module is `module`).

    DDP does not broadcast buffers: the codebooks' EMA statistics are reduced across ranks by the quantizer
    itself, so rank 0 overwriting them each step would only hide a divergence the replica check must see.
    """
    if strategy not in STRATEGIES:
        raise SonorantError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if not world.distributed or not any(p.requires_grad for p in module.parameters()):
        return module
    if strategy == "fsdp":
        for unit in shard_units or []:
            fully_shard(unit)
        fully_shard(module)
        return module
    device_ids = [world.device.index] if world.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False)


def is_sharded(module: nn.Module) -> bool:
    return isinstance(module, FSDPModule)


def gradient_sync(modules: list[nn.Module], enabled: bool) -> AbstractContextManager:
    """Context for one micro-batch's forward and backward: gradients are reduced across ranks only when
    `enabled` (the last micro-batch of a step); earlier ones accumulate locally."""
    stack = ExitStack()
    for module in modules:
        module = getattr(module, "_orig_mod", module)  # under torch.compile
        if isinstance(module, DistributedDataParallel) and not enabled:
            stack.enter_context(module.no_sync())
        elif is_sharded(module):
            module.set_requires_gradient_sync(enabled)
    return stack


# -- state --------------------------------------------------------------------------------------
def full_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's whole state dict on CPU (gathered from the shards under FSDP; a collective then)."""
    if is_sharded(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimiser's state keyed by parameter names (so a checkpoint resumes under any strategy)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(module, optimizer,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(module, optimizer, state, options=StateDictOptions(full_state_dict=True))


def replica_fingerprints(modules: dict[str, nn.Module]) -> dict[str, tuple[float, float, float]]:
    """Three float64 summaries (sum, sum of squares, position-weighted sum) of every parameter and buffer
    that each rank holds whole: equal on all ranks when the replicas are identical."""
    out = {}
    for name, module in modules.items():
        tensors = [*module.named_parameters(), *module.named_buffers()]
        for key, tensor in tensors:
            if type(tensor).__name__ == "DTensor" or not tensor.is_floating_point():
                continue  # sharded (FSDP) parameters are not replicas
            x = tensor.detach().double().flatten().cpu()
            ramp = torch.linspace(1.0, 2.0, x.numel(), dtype=torch.float64)
            out[f"{name}.{key}"] = (float(x.sum()), float((x * x).sum()), float((x * ramp).sum()))
    return out


def replica_differences(prints: list[dict[str, tuple[float, float, float]]]) -> dict[str, float]:
    """Tensors whose fingerprints differ between ranks, with the largest difference."""
    differ = {}
    for key, first in prints[0].items():
        worst = max((abs(a - b) for other in prints[1:] for a, b in zip(first, other[key], strict=True)),
                    default=0.0)
        if worst > 0 or any(math.isnan(v) for v in first):
            differ[key] = worst
    return differ
