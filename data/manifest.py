"""Manifests: JSON Lines, one audio item per line, read and written only here."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.atomic import atomic_path
from ..core.errors import SonorantError

DOMAINS = ("speech", "music", "sound")
SPLITS = ("train", "valid", "test")


class ManifestError(SonorantError):
    """A manifest line that is not a valid item."""


@dataclass(frozen=True, kw_only=True)
class Labels:
    """What a sample is, beside its audio or tokens. Declared once: a manifest item, a token shard's item and an
    LM example each carry exactly these fields (`LABELS`), so a new one travels from the manifest to training."""

    domain: str
    split: str
    text: str | None = None
    language: str | None = None
    speaker: str | None = None
    base_speaker: str | None = None
    caption: str | None = None

    def labels(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in LABELS}


LABELS = tuple(f.name for f in dataclasses.fields(Labels))


@dataclass(frozen=True, kw_only=True)
class Item(Labels):
    id: str
    path: str  # relative to the manifest's folder
    duration: float  # seconds
    sample_rate: int
    # Synthetic speech: the engine's own (word, start s, end s) for every word it spoke.
    words: tuple[tuple[str, float, float], ...] | None = None

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data = {"id": data.pop("id"), "path": data.pop("path"), **data}  # the names first, for a reader
        return json.dumps({k: v for k, v in data.items() if v is not None}, ensure_ascii=False)


_REQUIRED = ("id", "path", "duration", "sample_rate", "domain", "split")
_FIELDS = {f.name for f in dataclasses.fields(Item)}


def parse_item(line: str, where: str) -> Item:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: not JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a JSON object")
    missing = [k for k in _REQUIRED if data.get(k) is None]
    if missing:
        raise ManifestError(f"{where}: missing {', '.join(missing)}")
    for key in ("id", "path", *LABELS):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ManifestError(f"{where}: {key} must be text, not {type(data[key]).__name__}")
    if data["domain"] not in DOMAINS:
        raise ManifestError(f"{where}: domain must be one of {DOMAINS}, not {data['domain']!r}")
    if data["split"] not in SPLITS:
        raise ManifestError(f"{where}: split must be one of {SPLITS}, not {data['split']!r}")
    if not isinstance(data["duration"], (int, float)) or isinstance(data["duration"], bool) \
            or not 0 < data["duration"] < float("inf"):
        raise ManifestError(f"{where}: duration must be a positive number")
    if not isinstance(data["sample_rate"], int) or data["sample_rate"] <= 0:
        raise ManifestError(f"{where}: sample_rate must be a positive integer")
    words = data.get("words")
    if words is not None:
        try:
            data["words"] = tuple((str(w), float(start), float(end)) for w, start, end in words)
        except (TypeError, ValueError):
            raise ManifestError(f"{where}: words must be a list of [word, start, end]") from None
    return Item(**{k: v for k, v in data.items() if k in _FIELDS})


def read_manifest(path: str | Path) -> list[Item]:
    """All items of a manifest; a bad line raises ManifestError naming its line number."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest")
    items = []
    number = 0
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    items.append(parse_item(line, f"{path}:{number}"))
    except UnicodeDecodeError:
        raise ManifestError(f"{path}:{number + 1}: not UTF-8 text (a manifest is JSON Lines)") from None
    return items


def write_manifest(path: str | Path, items: Iterable[Item]) -> None:
    """Write atomically: a reader never sees half a manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for item in items:
            f.write(item.to_json() + "\n")


def of_speakers(base_speaker: str | None, speaker: str | None, prefixes: tuple[str, ...]) -> bool:
    """Whether an item's base speaker (or speaker, where there is no base) starts with one of `prefixes`
    (always, when there are none): `("flite:",)` keeps one engine's voices with their pseudo-speakers."""
    return not prefixes or (base_speaker or speaker or "").startswith(tuple(prefixes))


def merge_manifests(manifests: Iterable[str | Path], out: str | Path) -> list[Item]:
    """One manifest at `out` listing the items of every manifest (their splits kept), with audio paths made
    relative to `out`'s folder: corpora built apart train together. Refuses an id found twice."""
    out = Path(out)
    items, where = [], {}
    for manifest in map(Path, manifests):
        for item in read_manifest(manifest):
            if item.id in where:
                raise ManifestError(f"{manifest}: item {item.id!r} is also in {where[item.id]}")
            where[item.id] = manifest
            path = os.path.relpath((manifest.parent / item.path).resolve(), out.parent.resolve())
            items.append(dataclasses.replace(item, path=path))
    write_manifest(out, items)
    return items
