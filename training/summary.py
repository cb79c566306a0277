"""A run's training curve as a markdown table, from its `metrics.jsonl`."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import SonorantError


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl" if Path(run_dir).is_dir() else Path(run_dir)
    if not path.is_file():
        raise SonorantError(f"{path}: no metrics log (a run directory holds metrics.jsonl)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def curve_table(rows: list[dict], points: int = 10) -> str:
    """At about `points` steps: the training loss and, for a codec, the validation mel distance per codebook
    count; for an LM, the validation loss, its text gap (loss with another item's text minus with the right
    one: whether the model reads its text; for a caption LM the caption gap, the same with captions) and the
    codebook-0 accuracy."""
    valid = [r for r in rows if r["split"] == "valid"]
    train = [r for r in rows if r["split"] == "train"]
    if not valid:
        raise SonorantError("the run has no validation rows yet")
    keep = valid[:: max(1, len(valid) // points)]
    if keep[-1] is not valid[-1]:
        keep.append(valid[-1])
    if "text_gap" in valid[-1] or "caption_gap" in valid[-1]:
        return _lm_table(keep, train)
    ks = sorted(int(k.split("/")[1]) for k in valid[-1] if k.startswith("mel/"))
    lines = ["| step | train loss | train mel | " + " | ".join(f"valid mel @{k}" for k in ks) + " | steps/s |",
             "|---" * (4 + len(ks)) + "|"]
    for row in keep:
        near = min(train, key=lambda t: abs(t["step"] - row["step"])) if train else {}
        lines.append(f"| {row['step']} | {near.get('loss', float('nan')):.3f} | {near.get('mel', float('nan')):.3f} | "
                     + " | ".join(f"{row[f'mel/{k}']:.3f}" for k in ks)
                     + f" | {near.get('steps_per_second', float('nan')):.2f} |")
    return "\n".join(lines)


def _lm_table(keep: list[dict], train: list[dict]) -> str:
    gap = "caption_gap" if "caption_gap" in keep[-1] else "text_gap"
    lines = [f"| step | train loss | valid loss | {gap.replace('_', ' ')} | codebook-0 accuracy | steps/s |",
             "|---" * 6 + "|"]
    for row in keep:
        near = min(train, key=lambda t: abs(t["step"] - row["step"])) if train else {}
        lines.append(f"| {row['step']} | {near.get('loss', float('nan')):.3f} | {row['loss']:.3f} | "
                     f"{row[gap]:.4f} | {row.get('accuracy/0', float('nan')):.1%} | "
                     f"{near.get('steps_per_second', float('nan')):.2f} |")
    return "\n".join(lines)
