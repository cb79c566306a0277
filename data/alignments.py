"""`sonorant data align`: frames per phoneme token for every speech item of a manifest, stored beside
token shards (`SHARDS/alignments/`), resumable and split across ranks like `data encode`.

`alignments/index.json` records the aligner's fingerprint and the text frontend's version (G2P and
vocabulary format), and a report of what was skipped and why; `part-rRRR-NNNNN.jsonl` files hold one
line per aligned item: id, IPA, durations (one per utterance token: language tag, phonemes, closing
boundary; they sum to the item's frames) and the alignment cost per frame. Each part is written
atomically, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core.atomic import atomic_write
from ..core.audio import load_audio
from ..core.errors import AudioError, SonorantError
from .encode import rank_and_world
from .manifest import Item, read_manifest

FOLDER = "alignments"
INDEX = "index.json"
ALIGNMENT_FORMAT_VERSION = 1
DEFAULT_LANGUAGE = "en-us"


@dataclass(frozen=True)
class ItemAlignment:
    id: str
    ipa: str
    durations: tuple[int, ...]
    cost: float


@dataclass
class AlignReport:
    directory: Path
    aligned: int = 0
    already_done: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> items
    audio_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def hours_per_minute(self) -> float:
        return self.audio_seconds / 3600 / max(self.seconds / 60, 1e-9)


def frontend_version() -> str:
    """What the phoneme sequence of a text depends on: the frontend format, phonemizer and espeak-ng."""
    from importlib.metadata import version

    from ..text.frontend import FRONTEND_FORMAT_VERSION

    return f"frontend{FRONTEND_FORMAT_VERSION}/phonemizer-{version('phonemizer')}/espeakng-loader-" \
           f"{version('espeakng-loader')}"


def read_alignments(directory: str | Path) -> tuple[dict, dict[str, ItemAlignment]]:
    """(index, id -> alignment) of a shard directory's alignments ({} and {} when there are none)."""
    folder = Path(directory) / FOLDER
    index_path = folder / INDEX
    if not index_path.is_file():
        return {}, {}
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as e:
        raise SonorantError(f"{index_path}: not an alignment index ({e})") from None
    if index.get("format_version", 0) > ALIGNMENT_FORMAT_VERSION:
        raise SonorantError(f"{index_path}: alignment format {index['format_version']} is newer than this sonorant")
    out = {}
    for part in sorted(folder.glob("part-*.jsonl")):
        for line in part.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out[row["id"]] = ItemAlignment(row["id"], row["ipa"], tuple(row["durations"]), row["cost"])
    return index, out


def align_manifest(manifest: str | Path, aligner_path: str | Path, out: str | Path, batch_items: int = 16,
                   part_items: int = 2000, progress=None, check_cost: bool = True) -> AlignReport:
    """Align this rank's share of the manifest's speech items that have text; see the module docstring."""
    from ..align.forced import AlignmentError, ForcedAligner

    started = time.perf_counter()
    manifest = Path(manifest)
    aligner = ForcedAligner.from_pretrained(aligner_path)
    folder = Path(out) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / INDEX
    identity = {"aligner": aligner.fingerprint, "frontend": frontend_version()}
    if index_path.is_file():
        existing = json.loads(index_path.read_text())
        if {k: existing.get(k) for k in identity} != identity:
            raise SonorantError(f"{folder}: holds alignments of aligner {existing.get('aligner')} "
                                f"({existing.get('frontend')}); use another --out or delete that folder")
    if not index_path.is_file():  # the identity first: parts written before an interruption are kept
        atomic_write(index_path, json.dumps({"format_version": ALIGNMENT_FORMAT_VERSION, **identity,
                                             "max_cost": aligner.aligner.config.max_cost, "reports": {}},
                                            indent=1) + "\n")
    rank, world = rank_and_world()
    items = [it for it in read_manifest(manifest) if it.domain == "speech"][rank::world]
    _, done = read_alignments(out)
    report = AlignReport(folder)
    report.skipped["no transcript"] = sum(1 for it in items if not it.text)
    pending = [it for it in items if it.text and it.id not in done]
    report.already_done = sum(1 for it in items if it.text and it.id in done)
    prefix = f"part-r{rank:03d}-"
    numbers = [int(m.group(1)) for p in folder.glob(f"{prefix}*.jsonl") if (m := re.search(r"-(\d+)\.jsonl$", p.name))]
    number = max(numbers, default=-1) + 1
    by_language: dict[str, list[Item]] = {}
    for item in pending:
        by_language.setdefault(item.language or DEFAULT_LANGUAGE, []).append(item)
    lines: list[str] = []

    def flush() -> None:
        nonlocal number, lines
        if lines:
            atomic_write(folder / f"{prefix}{number:05d}.jsonl", "".join(lines))
            number, lines = number + 1, []

    from ..text.frontend import phonemize

    for language, group in by_language.items():
        for start in range(0, len(group), 256):  # phonemised in batches: one espeak call each
            batch = group[start: start + 256]
            for item, ipa in zip(batch, phonemize([it.text for it in batch], language), strict=True):
                reason = None
                try:
                    wav = load_audio(manifest.parent / item.path, aligner.sample_rate, allow_silent=True)
                    result = aligner.align_tokens(wav, ipa, aligner.frontend.utterance_ids(ipa, language), None,
                                                  check_cost)
                except AudioError:
                    reason = "unreadable audio"
                except AlignmentError as e:
                    message = str(e)
                    reason = ("silent audio" if "silent" in message else "more phonemes than frames"
                              if "frames" in message else "transcript does not match the audio")
                if progress:
                    progress(1)
                if reason:
                    report.skipped[reason] += 1
                    continue
                lines.append(json.dumps({"id": item.id, "ipa": ipa, "durations": result.durations,
                                         "cost": round(result.cost, 4)}, ensure_ascii=False) + "\n")
                report.aligned += 1
                report.audio_seconds += item.duration
                if len(lines) >= part_items:
                    flush()
    flush()
    report.seconds = time.perf_counter() - started
    previous = json.loads(index_path.read_text()).get("reports", {})
    previous[f"rank{rank}"] = {"aligned": report.aligned, "already_done": report.already_done,
                               "skipped": dict(report.skipped), "audio_hours": round(report.audio_seconds / 3600, 3),
                               "seconds": round(report.seconds, 1),
                               "hours_per_minute": round(report.hours_per_minute, 3)}
    atomic_write(index_path, json.dumps({"format_version": ALIGNMENT_FORMAT_VERSION, **identity,
                                         "max_cost": aligner.aligner.config.max_cost, "reports": previous},
                                        indent=1) + "\n")
    return report


def require_alignments(directory: str | Path) -> tuple[dict, dict[str, ItemAlignment]]:
    """The alignments of a shard directory, or a clear error naming the command that makes them."""
    index, alignments = read_alignments(directory)
    if not alignments:
        raise SonorantError(f"{directory}: the token shards carry no phoneme durations; run `sonorant data align "
                            f"--manifest MANIFEST --aligner DIR --out {directory}` first")
    return index, alignments
