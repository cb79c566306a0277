"""One trainer loop for every task: schedule, clipping, AMP, checkpoints, resume, logging, progress."""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from .checkpoint import LATEST, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig


class Task(Protocol):
    """What a trainable task gives the trainer. The trainer owns the loop; the task owns the maths."""

    def modules(self) -> dict[str, nn.Module]: ...
    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...
    def train_step(self, step: int, trainer: Trainer) -> dict[str, float]: ...
    def validate(self, step: int) -> dict[str, float]: ...
    def samples(self, step: int) -> dict[str, torch.Tensor]: ...


class Trainer:
    def __init__(self, task: Task, config: TrainConfig, out_dir: str | Path, device: torch.device,
                 generator: torch.Generator, sample_rate: int = 16000, quiet: bool = False) -> None:
        self.task, self.config, self.device = task, config, device
        self.out_dir = Path(out_dir)
        self.generator = generator
        self.sample_rate = sample_rate
        self.quiet = quiet
        self.step = 0
        self.micro = 0  # micro-batch index inside the current step (gradient accumulation)
        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor) for name, opt in task.optimizers().items()
        }
        self._writer: Any = None

    # -- what tasks call --------------------------------------------------------------------
    def autocast(self) -> AbstractContextManager:
        """bf16 autocast on CUDA when enabled; nothing on CPU (bf16 matmul is very slow there)."""
        if self.config.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def optimize(self, name: str, loss: torch.Tensor) -> float:
        """Backward `loss`; on the last micro-batch of a step (gradient accumulation), clip and step
        optimiser `name` and its schedule. Returns the gradient norm (NaN on earlier micro-batches)."""
        optimizer = self.task.optimizers()[name]
        accumulate = max(1, self.config.accumulate)
        if self.micro == 0:
            optimizer.zero_grad(set_to_none=True)
        (loss / accumulate).backward()
        if self.micro < accumulate - 1:
            return float("nan")
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip or float("inf"))
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
        """Train until `max_steps` (the config's by default); returns the last logged metrics."""
        end = min(max_steps or self.config.max_steps, self.config.max_steps)
        last: dict[str, float] = {}
        started, start_step = time.perf_counter(), self.step
        progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=self.quiet)
        with progress:
            bar = progress.add_task("train", total=end, completed=self.step, info="")
            while self.step < end:
                for module in self.task.modules().values():
                    module.train()
                for micro in range(max(1, self.config.accumulate)):
                    self.micro = micro
                    metrics = self.task.train_step(self.step, self)
                self.micro = 0
                self.step += 1
                if self.step % self.config.log_every == 0 or self.step == end:
                    elapsed = time.perf_counter() - started
                    metrics["steps_per_second"] = (self.step - start_step) / max(elapsed, 1e-9)
                    metrics["lr"] = self.schedulers[next(iter(self.schedulers))].get_last_lr()[0]
                    self.log("train", metrics)
                    last = metrics
                    progress.update(bar, info=" ".join(f"{k}={v:.3g}" for k, v in list(metrics.items())[:3]))
                if self.step % self.config.valid_every == 0 or self.step == end:
                    self._eval_mode()
                    self.log("valid", self.task.validate(self.step))
                if self.step % self.config.sample_every == 0 or self.step == end:
                    self._eval_mode()
                    self._log_samples()
                if self.step % self.config.checkpoint_every == 0 or self.step == end:
                    self.save()
                progress.update(bar, completed=self.step)
        if self._writer is not None:
            self._writer.flush()
        return last

    def _eval_mode(self) -> None:
        for module in self.task.modules().values():
            module.eval()

    # -- logging ----------------------------------------------------------------------------
    @property
    def writer(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # heavy import, only when logging

            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"))
        return self._writer

    def log(self, split: str, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(f"{split}/{key}", value, self.step)
        with (self.out_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps({"split": split, "step": self.step, **metrics}) + "\n")

    def _log_samples(self) -> None:
        for name, audio in self.task.samples(self.step).items():
            self.writer.add_audio(name, audio.reshape(-1).clamp(-1, 1).cpu(), self.step, sample_rate=self.sample_rate)

    # -- checkpoints ------------------------------------------------------------------------
    def save(self) -> Path:
        path = self.out_dir / LATEST
        save_checkpoint(path, {
            "step": self.step,
            "modules": {k: m.state_dict() for k, m in self.task.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.task.optimizers().items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "rng": rng_state(self.generator),
        })
        return path

    def resume(self) -> bool:
        """Load the run's latest checkpoint, if any: training continues exactly where it stopped."""
        path = self.out_dir / LATEST
        if not path.is_file():
            return False
        state = load_checkpoint(path, self.device)
        for key, module in self.task.modules().items():
            module.load_state_dict(state["modules"][key])
        for key, opt in self.task.optimizers().items():
            opt.load_state_dict(state["optimizers"][key])
        for key, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][key])
        set_rng_state(state["rng"], self.generator)
        self.step = state["step"]
        return True


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
