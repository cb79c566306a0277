"""A run's training curve as a markdown table, from its `metrics.jsonl`."""

from __future__ import annotations

import json
from pathlib import Path

from ..codec.errors import SonorantError


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl" if Path(run_dir).is_dir() else Path(run_dir)
    if not path.is_file():
        raise SonorantError(f"{path}: no metrics log (a run directory holds metrics.jsonl)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def curve_table(rows: list[dict], points: int = 10) -> str:
    """Validation mel distance per codebook count and training loss at about `points` steps."""
    valid = [r for r in rows if r["split"] == "valid"]
    train = [r for r in rows if r["split"] == "train"]
    if not valid:
        raise SonorantError("the run has no validation rows yet")
    keep = valid[:: max(1, len(valid) // points)]
    if keep[-1] is not valid[-1]:
        keep.append(valid[-1])
    ks = sorted(int(k.split("/")[1]) for k in valid[-1] if k.startswith("mel/"))
    lines = ["| step | train loss | train mel | " + " | ".join(f"valid mel @{k}" for k in ks) + " | steps/s |",
             "|---" * (4 + len(ks)) + "|"]
    for row in keep:
        near = min(train, key=lambda t: abs(t["step"] - row["step"])) if train else {}
        lines.append(f"| {row['step']} | {near.get('loss', float('nan')):.3f} | {near.get('mel', float('nan')):.3f} | "
                     + " | ".join(f"{row[f'mel/{k}']:.3f}" for k in ks)
                     + f" | {near.get('steps_per_second', float('nan')):.2f} |")
    return "\n".join(lines)
