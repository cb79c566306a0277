"""One trainer loop for every task: distributed wrapping, schedule, accumulation, clipping, AMP,
checkpoints, exact resume, logging and progress (rank 0 only)."""

from __future__ import annotations

import json
import math
import os
import resource
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
from loguru import logger
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from ..core.errors import SonorantError
from .batching import MicroBatch
from .checkpoint import LATEST, CheckpointError, first_line, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .distributed import (
    World,
    full_state,
    gradient_sync,
    load_optimizer_state,
    optimizer_state,
    replica_differences,
    replica_fingerprints,
    wrap,
)


class Task(Protocol):
    """What a trainable task gives the trainer. The trainer owns the loop; the task owns the maths.

    Each optimiser is named after the module it trains. `shard_units` names the blocks FSDP shards
    separately (a module absent from it cannot be trained with FSDP).
    """

    def modules(self) -> dict[str, nn.Module]: ...
    def shard_units(self) -> dict[str, list[nn.Module]]: ...
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]: ...
    def next_batch(self, step: int) -> list[MicroBatch]: ...
    def train_step(self, micro: MicroBatch, trainer: Trainer) -> dict[str, float]: ...
    def validate(self, step: int) -> dict[str, float]: ...
    # A task whose train section has `sample_every` (the codec) also gives audio samples:
    # def samples(self, step: int) -> dict[str, torch.Tensor]


class Trainer:
    def __init__(self, task: Task, config: TrainConfig, out_dir: str | Path, world: World,
                 generator: torch.Generator, sample_rate: int = 16000, quiet: bool = False,
                 resume: bool = False) -> None:
        self.task, self.config, self.world = task, config, world
        self.device = world.device
        self.out_dir = Path(out_dir)
        self.generator = generator
        self.sample_rate = sample_rate
        self.quiet = quiet or not world.is_main
        self.step = 0
        self.micro, self.last_micro = 0, True
        state = self._load_state() if resume else None
        self.resumed = state is not None
        if state is not None:  # weights go in before wrapping: DDP and FSDP take them from there
            with self._fitting_checkpoint():
                for key, module in task.modules().items():
                    module.load_state_dict(state["modules"][key])
        self.wrapped = self._wrap()
        self.optimizers = task.configure_optimizers()
        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor) for name, opt in self.optimizers.items()
        }
        if state is not None:
            with self._fitting_checkpoint():
                self._restore(state)
        self._writer: Any = None

    def _wrap(self) -> dict[str, nn.Module]:
        units = self.task.shard_units()
        wrapped = {}
        for name, module in self.task.modules().items():
            strategy = self.config.strategy
            if strategy == "fsdp" and name not in units:
                raise SonorantError(f"strategy fsdp shards the LM only; train the {name} with strategy ddp")
            wrapped[name] = wrap(module, self.world, strategy, units.get(name))
        if self.config.compile:
            # The compiled module wraps the training forward only: state dicts (and so checkpoint keys)
            # come from the task's own modules, unchanged.
            wrapped = {name: torch.compile(module) for name, module in wrapped.items()}
        return wrapped

    # -- what tasks call --------------------------------------------------------------------
    def model(self, name: str) -> nn.Module:
        """The module to run a training forward through (DDP / FSDP / compiled as configured)."""
        return self.wrapped[name]

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast on GPUs that support it when enabled; nothing on CPU (bf16 matmul is very slow there)."""
        if self.config.amp and self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def optimize(self, name: str, loss: torch.Tensor) -> float:
        """Backward this micro-batch's part of the step's loss (the task weights it by its share of the global
        batch); after the last micro-batch, clip and step optimiser `name` and its schedule. Returns the
        gradient norm (NaN before the last micro-batch)."""
        optimizer = self.optimizers[name]
        if self.micro == 0:
            optimizer.zero_grad(set_to_none=True)
        # DDP and FSDP average gradients over ranks; the shares already sum to 1 over the global batch.
        (loss * self.world.world_size).backward()
        if not self.last_micro:
            return float("nan")
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip or float("inf"))
        if hasattr(norm, "full_tensor"):  # FSDP: a DTensor
            norm = norm.full_tensor()
        optimizer.step()
        self.schedulers[name].step()
        return float(norm)

    # -- the loop ---------------------------------------------------------------------------
    def _lr_factor(self, step: int) -> float:
        c = self.config
        if step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        progress = min(1.0, (step - c.warmup_steps) / max(1, c.max_steps - c.warmup_steps))
        return c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def fit(self, max_steps: int | None = None) -> dict[str, float]:
        """Train until `max_steps` (the config's by default); returns the last logged metrics. Zero steps
        saves the weights as they are (an `--init-from` model, for what a run does after training)."""
        end = min(self.config.max_steps if max_steps is None else max_steps, self.config.max_steps)
        if end == 0:
            self.save()
        last: dict[str, float] = {}
        meter = _Meter()
        progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=self.quiet)
        deadline = time.perf_counter() + 60 * self.config.max_minutes if self.config.max_minutes > 0 else None
        with progress:
            bar = progress.add_task("train", total=end, completed=self.step, info="")
            while self.step < end:
                for module in self.task.modules().values():
                    module.train()
                parts = self.task.next_batch(self.step)
                for i, part in enumerate(parts):
                    self.micro, self.last_micro = i, i == len(parts) - 1
                    with gradient_sync(list(self.wrapped.values()), self.last_micro):
                        meter.add(self.task.train_step(part, self), part)
                self.micro, self.last_micro = 0, True
                meter.steps += 1
                self.step += 1
                if deadline is not None and self._out_of_time(deadline):
                    end = self.step
                if self.step % self.config.log_every == 0 or self.step == end:
                    last = meter.reduce(self.world)
                    last["lr"] = self.schedulers[next(iter(self.schedulers))].get_last_lr()[0]
                    last.update(self._memory())
                    self.log("train", last)
                    progress.update(bar, info=" ".join(f"{k}={v:.3g}" for k, v in list(last.items())[:3]))
                if self.step % self.config.valid_every == 0 or self.step == end:
                    self._eval_mode()
                    self.log("valid", self.task.validate(self.step))
                sample_every = getattr(self.config, "sample_every", 0)
                if sample_every and (self.step % sample_every == 0 or self.step == end):
                    self._eval_mode()
                    self._log_samples()
                if self.step % self.config.checkpoint_every == 0 or self.step == end:
                    self.save()
                progress.update(bar, completed=self.step)
        if self._writer is not None:
            self._writer.flush()
        return last

    def _out_of_time(self, deadline: float) -> bool:
        """Whether the wall-clock budget is spent, agreed by every rank (all stop at the same step)."""
        return self.world.sum([float(time.perf_counter() >= deadline)])[0] > 0

    def _eval_mode(self) -> None:
        for module in self.task.modules().values():
            module.eval()

    def _memory(self) -> dict[str, float]:
        # Peak resident memory of this process (Linux reports KiB) and, on GPU, peak allocated memory.
        out = {"cpu_memory_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
        if self.device.type == "cuda":
            out["gpu_memory_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        return out

    # -- logging (rank 0) -------------------------------------------------------------------
    @property
    def writer(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # heavy import, only when logging

            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"))
        return self._writer

    def log(self, split: str, metrics: dict[str, Any]) -> None:
        if not self.world.is_main:
            return
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"{split}/{key}", value, self.step)
        with (self.out_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps({"split": split, "step": self.step, **metrics}) + "\n")

    def _log_samples(self) -> None:
        samples = self.task.samples(self.step)
        if self.world.is_main:
            for name, audio in samples.items():
                self.writer.add_audio(name, audio.reshape(-1).clamp(-1, 1).cpu(), self.step,
                                      sample_rate=self.sample_rate)

    # -- checkpoints ------------------------------------------------------------------------
    def save(self) -> Path:
        """Every rank takes part (FSDP gathers its shards, every rank's RNG is kept); rank 0 writes, atomically.
        The replicas are compared first: ranks that drifted apart are reported, not silently saved."""
        path = self.out_dir / LATEST
        modules = self.task.modules()
        if self.world.distributed:
            self._check_replicas(modules)
        state = {
            "step": self.step,
            "world_size": self.world.world_size,
            "modules": {k: full_state(m) for k, m in modules.items()},
            "optimizers": {k: optimizer_state(modules[k], o) for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "rng": self.world.gather(rng_state(self.generator)),
        }
        if self.world.is_main:
            save_checkpoint(path, state)
        self.world.barrier()
        return path

    def _check_replicas(self, modules: dict[str, nn.Module]) -> None:
        prints = self.world.gather(replica_fingerprints(modules))
        if not self.world.is_main:
            return
        differ = replica_differences(prints)
        self.log("replicas", {"tensors": len(prints[0]), "differing": len(differ),
                              "max_difference": max(differ.values(), default=0.0)})
        if differ:
            logger.warning(f"step {self.step}: {len(differ)} tensors differ between ranks, e.g. {next(iter(differ))}")

    @contextmanager
    def _fitting_checkpoint(self):
        """A resumed checkpoint of another run (other models, optimisers or shapes) is a user's error."""
        try:
            yield
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{self.out_dir / LATEST}: the checkpoint does not fit this run "
                                  f"({type(e).__name__}: {first_line(e)})") from None

    def _load_state(self) -> dict[str, Any] | None:
        path = self.out_dir / LATEST
        return load_checkpoint(path) if path.is_file() else None

    def _restore(self, state: dict[str, Any]) -> None:
        """Optimisers, schedules, step and RNG: training continues exactly where it stopped."""
        modules = self.task.modules()
        for key, opt in self.optimizers.items():
            saved = state["optimizers"][key]
            if isinstance(saved["param_groups"][0]["params"][0], int):
                opt.load_state_dict(saved)  # a one-process checkpoint from before names were used
            else:
                load_optimizer_state(modules[key], opt, saved)
        for key, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][key])
        rng = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        if len(rng) != self.world.world_size and self.world.is_main:
            logger.info(f"resuming a {len(rng)}-process run with {self.world.world_size}: the data order "
                        "continues, random choices inside the models do not repeat those of the old run")
        set_rng_state(rng[self.world.rank % len(rng)], self.generator)
        self.step = state["step"]


class _Meter:
    """Metrics of the micro-batches since the last log, weighted by their items; sizes summed for throughput."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}
        self.items = self.tokens = self.steps = 0
        self.started = time.perf_counter()

    def add(self, metrics: dict[str, float], part: MicroBatch) -> None:
        for key, value in metrics.items():
            if math.isfinite(value):
                total = self.sums.setdefault(key, [0.0, 0.0])
                total[0] += value * part.items
                total[1] += part.items
        self.items += part.items
        self.tokens += part.tokens

    def reduce(self, world: World) -> dict[str, float]:
        """Means over every rank's micro-batches since the last call, and throughput over that time."""
        keys = sorted(self.sums)
        flat = world.sum([self.sums[k][0] for k in keys] + [self.sums[k][1] for k in keys]
                         + [float(self.items), float(self.tokens)])
        n = len(keys)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        out = {k: flat[i] / flat[n + i] for i, k in enumerate(keys) if flat[n + i] > 0}
        out["samples_per_second"] = flat[2 * n] / elapsed
        out["tokens_per_second"] = flat[2 * n + 1] / elapsed
        out["steps_per_second"] = self.steps / elapsed
        self.sums, self.items, self.tokens, self.steps = {}, 0, 0, 0
        self.started = time.perf_counter()
        return out


def set_threads(threads: int) -> None:
    """CPU threads for this process; under torchrun the node's share (torchrun sets OMP_NUM_THREADS=1)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if local > 1:
        threads = max(1, (threads or os.cpu_count() or 1) // local)
    if threads > 0:
        torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
