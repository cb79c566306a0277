"""Training throughput by number of processes: the same recipe and global batch under `torchrun
--nproc-per-node N` for each N, timed from the run's own logs (the first interval, with its warm-up,
left out)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from ..core.errors import SonorantError
from ..training.recipe import load_recipe_dict


@dataclass
class TrainThroughput:
    processes: int
    device: str
    steps_timed: int
    samples_per_second: float
    tokens_per_second: float
    seconds_per_step: float
    cpu_memory_gb: float  # peak resident memory of rank 0
    speedup: float = 1.0  # samples/s over the first configuration's


def bench_train(kind: str, config: str, data: Path, processes: list[int], steps: int, device: str = "cpu",
                overrides: dict | None = None) -> list[TrainThroughput]:
    if kind not in ("codec", "lm"):
        raise SonorantError(f"bench train: kind is codec or lm, not {kind!r}")
    if steps < 4:
        raise SonorantError("bench train: at least 4 steps (the first interval is warm-up)")
    recipe = load_recipe_dict(config)
    interval = max(1, steps // 4)
    recipe["train"].update(max_steps=steps, log_every=interval, valid_every=10 * steps,
                           checkpoint_every=10 * steps, **(overrides or {}))
    if kind == "codec":
        recipe["train"]["sample_every"] = 10 * steps
    results = []
    with tempfile.TemporaryDirectory(prefix="sonorant-bench-train-") as work:
        path = Path(work) / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        for n in processes:
            out = Path(work) / f"run-{n}"
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n),
                       "-m", "sonorant.cli", "train", kind, "--config", str(path),
                       "--data" if kind == "codec" else "--shards", str(data), "--out", str(out),
                       "--device", device, "--quiet"]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
                raise SonorantError(f"bench train: {n} processes failed: {tail[0]}")
            rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            timed = [r for r in rows if r["split"] == "train"][1:]
            samples = sum(r["samples_per_second"] for r in timed) / len(timed)
            results.append(TrainThroughput(
                processes=n, device=device, steps_timed=interval * len(timed), samples_per_second=samples,
                tokens_per_second=sum(r["tokens_per_second"] for r in timed) / len(timed),
                seconds_per_step=len(timed) / sum(r["steps_per_second"] for r in timed),
                cpu_memory_gb=max(r["cpu_memory_gb"] for r in timed)))
    for r in results:
        r.speedup = r.samples_per_second / results[0].samples_per_second
    return results


def bench_train_table(results: list[TrainThroughput]) -> str:
    lines = [f"training throughput on {results[0].device} ({os.cpu_count()} CPU cores, torch {torch.__version__}):",
             "  processes  samples/s  tokens/s  s/step  peak RSS (rank 0)  speed-up"]
    for r in results:
        lines.append(f"  {r.processes:9d}  {r.samples_per_second:9.2f}  {r.tokens_per_second:8.0f}  "
                     f"{r.seconds_per_step:6.2f}  {r.cpu_memory_gb:14.2f} GB  {r.speedup:7.2f}x")
    return "\n".join(lines)
