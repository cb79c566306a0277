"""`sonorant eval align`: the forced aligner against the engines' own word timings, on held-out voices.

For every synthetic speech item of the chosen split that carries engine timings, the item is aligned
with its transcript and each word both sides share is scored by the distance of its start and its end
(word-boundary error). Per engine: median and 90th percentile. The mismatch check is measured both ways:
how often a true transcript is refused (false alarms) and how often another item's transcript is
(detections). Speed: hours of audio aligned per minute. A figure shows one utterance's alignment.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..align.forced import AlignmentError, ForcedAligner
from ..align.words import boundary_contexts
from ..core.audio import load_audio
from ..core.errors import SonorantError
from ..data.manifest import read_manifest


@dataclass
class EngineScore:
    engine: str
    items: int
    words: int  # word pairs scored (each gives two boundaries)
    median_ms: float
    p90_ms: float
    mean_ms: float
    refused: int  # true transcripts refused as mismatched
    pause_p90_ms: float = float("nan")  # 90th percentile of the boundaries next to a pause in the engine's timing
    phrase_p90_ms: float = float("nan")  # ... of the boundaries inside phrases (words that run into each other)


@dataclass
class AlignEvaluation:
    model: str
    split: str
    engines: list[EngineScore]
    mismatch_detected: float  # share of other items' transcripts refused
    false_alarms: float  # share of true transcripts refused
    max_cost: float
    cost_true: dict[str, float] = field(default_factory=dict)  # percentiles of the cost with true transcripts
    cost_wrong: dict[str, float] = field(default_factory=dict)  # ... with other items' transcripts
    hours_per_minute: float = 0.0
    audio_hours: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _engine_score(engine: str, counts: list[int], found: list[tuple[float, bool]]) -> EngineScore:
    ms = 1000 * np.array([e for e, _ in found])
    pause = np.array([p for _, p in found])

    def p90(values: np.ndarray) -> float:
        return float(np.percentile(values, 90)) if len(values) else float("nan")

    return EngineScore(engine, counts[0], counts[1], float(np.median(ms)), p90(ms), float(np.mean(ms)), counts[2],
                       p90(ms[pause]), p90(ms[~pause]))


def _percentiles(values: list[float]) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(values, q)), 3) for q in (1, 10, 50, 90, 99)} if values else {}


def evaluate_alignment(manifest: str | Path, model: str | Path | None = None, split: str = "test",
                       max_items: int = 0, speakers: tuple[str, ...] = (), figure: Path | None = None,
                       progress=None) -> AlignEvaluation:
    manifest = Path(manifest)
    items = [it for it in read_manifest(manifest) if it.domain == "speech" and it.text and it.words
             and it.split == split and (not speakers or (it.base_speaker or "").startswith(speakers))]
    if not items:
        raise SonorantError(f"{manifest}: no {split} speech items with engine word timings (build the corpus with "
                            "sonorant data build)")
    rng = random.Random(0)
    rng.shuffle(items)
    items = items[: max_items or None]
    aligner = ForcedAligner.from_pretrained(model)
    errors: dict[str, list[tuple[float, bool]]] = {}
    counts: dict[str, list[int]] = {}
    costs_true, costs_wrong = [], []
    refused_wrong = 0
    seconds = audio = 0.0
    drawn = False
    for n, item in enumerate(items):
        engine = (item.base_speaker or "?").split(":")[0]
        tally = counts.setdefault(engine, [0, 0, 0])  # items, words, refused
        wav = load_audio(manifest.parent / item.path, aligner.sample_rate)
        language = item.language or "en-us"
        started = time.perf_counter()
        result = aligner.align(wav, item.text, language, check_cost=False)
        seconds += time.perf_counter() - started
        audio += item.duration
        limit = aligner.aligner.config.max_cost
        tally[0] += 1
        tally[2] += bool(limit and result.cost > limit)
        costs_true.append(result.cost)
        found = boundary_contexts(result.words, list(item.words))
        tally[1] += len(found) // 2
        errors.setdefault(engine, []).extend(found)
        other = items[(n + 1) % len(items)]
        if other.text != item.text:
            try:
                wrong = aligner.align(wav, other.text, other.language or "en-us", check_cost=False)
                costs_wrong.append(wrong.cost)
                refused_wrong += bool(limit and wrong.cost > limit)
            except AlignmentError:  # more phonemes than frames: refused before any cost
                costs_wrong.append(float("inf"))
                refused_wrong += 1
        if figure is not None and not drawn and len(item.words) >= 5:
            plot_alignment(wav[0].numpy(), aligner.sample_rate, result, list(item.words), figure)
            drawn = True
        if progress:
            progress(1)
    engines = [_engine_score(e, c, errors[e]) for e, c in sorted(counts.items()) if errors[e]]
    finite_wrong = [c for c in costs_wrong if np.isfinite(c)]
    return AlignEvaluation(str(model or "shipped"), split, engines,
                           mismatch_detected=refused_wrong / max(1, len(costs_wrong)),
                           false_alarms=sum(c[2] for c in counts.values()) / max(1, len(items)),
                           max_cost=aligner.aligner.config.max_cost, cost_true=_percentiles(costs_true),
                           cost_wrong=_percentiles(finite_wrong),
                           hours_per_minute=audio / 3600 / max(seconds / 60, 1e-9), audio_hours=audio / 3600)


def align_table(data: dict) -> list[str]:
    lines = ["| engine | utterances | words | boundary error, median (ms) | 90th percentile (ms) | mean (ms) | "
             "90th percentile next to a pause / inside phrases (ms) | true transcripts refused |",
             "|---|---|---|---|---|---|---|---|"]
    for e in data["engines"]:
        split = f"{e.get('pause_p90_ms', float('nan')):.1f} / {e.get('phrase_p90_ms', float('nan')):.1f}"
        lines.append(f"| {e['engine']} | {e['items']} | {e['words']} | {e['median_ms']:.1f} | {e['p90_ms']:.1f} | "
                     f"{e['mean_ms']:.1f} | {split} | {e['refused']} |")
    lines += ["", f"Another utterance's transcript refused: {100 * data['mismatch_detected']:.1f} %; true transcripts "
              f"refused: {100 * data['false_alarms']:.1f} % (threshold {data['max_cost']:.2f} nats per frame; cost "
              f"with true transcripts {data['cost_true']}, with wrong ones {data['cost_wrong']}). Speed: "
              f"{data['hours_per_minute']:.2f} h of audio aligned per minute."]
    return lines


def plot_alignment(audio: np.ndarray, sample_rate: int, result, reference: list[tuple[str, float, float]],
                   path: Path) -> Path:
    """The utterance's log-mel with the aligner's word boundaries (white) and the engine's (red, dashed)."""
    from .plots import _pyplot, _save, log_mel

    plt = _pyplot()
    mel = log_mel(audio, sample_rate)
    seconds = len(audio) / sample_rate
    fig, ax = plt.subplots(figsize=(max(8, seconds * 2.5), 4))
    ax.imshow(mel, origin="lower", aspect="auto", extent=(0, seconds, 0, mel.shape[0]), cmap="magma")
    for w in result.words:
        ax.axvline(w.start, color="white", lw=1)
        ax.axvline(w.end, color="white", lw=1, ls=":")
        ax.text((w.start + w.end) / 2, mel.shape[0] * 0.92, w.label, color="white", ha="center", fontsize=8)
    for _, start, end in reference:
        ax.axvline(start, color="red", lw=1, ls="--")
        ax.axvline(end, color="red", lw=0.8, ls="--")
    for p in result.phonemes:
        ax.text((p.start + p.end) / 2, 3, p.label, color="cyan", ha="center", fontsize=6)
    ax.set_xlabel("seconds")
    ax.set_ylabel("mel band")
    ax.set_title("forced alignment: aligner word starts (white) and ends (dotted), engine's timings (red dashed)")
    return _save(plt, fig, path)


def write_report(evaluation: AlignEvaluation, folder: Path, meta: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"kind": "eval-align", "meta": meta, **evaluation.to_dict()}
    path = folder / "metrics.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    (folder / "report.md").write_text("\n".join(align_table(data)) + "\n")
    return path
