"""Importers for public corpora (LibriTTS, LJSpeech, VCTK) and plain folders of audio: corpus folder -> manifest.

Every importer scans its layout, reads durations with `soundfile.info` (header only, no decoding), stores audio paths
relative to the manifest's folder, skips (and counts) files it cannot read, and assigns splits with `assign_splits`.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import soundfile

from ..core.errors import SonorantError
from .manifest import DOMAINS, Item, write_manifest

CorpusKind = Literal["libritts", "ljspeech", "vctk", "folder", "hedgewars"]
KINDS: tuple[str, ...] = get_args(CorpusKind)
Domain = Literal["speech", "music", "sound"]  # manifest.DOMAINS as a type, so the CLI can offer the choices
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")

# Share of speakers (or of items, for corpora with too few speakers) held out, in per mille of the hash range.
VALID_PER_MILLE = 50
TEST_PER_MILLE = 50
# With fewer speakers a speaker split cannot fill train, valid and test at once, so items are split instead.
# (A corpus of a few dozen speakers may still get no valid or test speaker: the hash decides each one alone.)
MIN_SPEAKERS_FOR_SPEAKER_SPLIT = 3


class CorpusError(SonorantError):
    """A corpus folder that is missing or does not have the layout of the requested corpus."""


@dataclass
class ImportResult:
    items: list[Item]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> files or rows left out
    speakers: int = 0
    hours: float = 0.0
    untranscribed: int = 0  # items imported without text (e.g. VCTK p315), not skipped


def split_of(key: str) -> str:
    """The split of a speaker id or item id: a stable hash (crc32, same on every machine and Python run) decides.

    Hashing the key alone, not ranking the corpus, keeps a speaker's split fixed when other speakers are added.
    """
    bucket = zlib.crc32(key.encode("utf-8")) % 1000
    if bucket < VALID_PER_MILLE:
        return "valid"
    if bucket < VALID_PER_MILLE + TEST_PER_MILLE:
        return "test"
    return "train"


def assign_splits(items: list[Item]) -> list[Item]:
    """Items with their split: by speaker (no speaker in two splits) when the corpus has at least
    MIN_SPEAKERS_FOR_SPEAKER_SPLIT speakers, else by item id. Items without a speaker are split by id.

    At least one item stays in train: if the hash puts everything elsewhere, the group (speaker or item) with
    the smallest key moves to train, which is as deterministic as the hash.
    """
    speakers = {it.speaker for it in items if it.speaker is not None}
    by_speaker = len(speakers) >= MIN_SPEAKERS_FOR_SPEAKER_SPLIT

    def key(it: Item) -> str:
        return f"speaker:{it.speaker}" if by_speaker and it.speaker is not None else f"item:{it.id}"

    splits = {k: split_of(k.split(":", 1)[1]) for k in {key(it) for it in items}}
    if splits and "train" not in splits.values():
        splits[min(splits)] = "train"
    return [dataclasses.replace(it, split=splits[key(it)]) for it in items]


class _Scan:
    """What an importer collects while walking a corpus: items and reasons for skipping."""

    def __init__(self, src: Path, manifest_dir: Path, domain: str = "speech", language: str | None = None) -> None:
        self.src, self.manifest_dir, self.domain, self.language = src, manifest_dir.absolute(), domain, language
        self.items: list[Item] = []
        self.skipped: Counter[str] = Counter()
        self.untranscribed = 0

    def add(self, item_id: str, audio: Path, text: str | None, speaker: str | None) -> None:
        try:
            info = soundfile.info(str(audio))
        except Exception:  # libsndfile raises several types for corrupt, truncated or foreign files
            self.skipped["unreadable audio"] += 1
            return
        if info.frames <= 0 or info.samplerate <= 0:
            self.skipped["empty audio"] += 1
            return
        if not text:
            text = None
            self.untranscribed += 1
        path = Path(os.path.relpath(audio.absolute(), self.manifest_dir)).as_posix()
        self.items.append(Item(id=item_id, path=path, duration=info.frames / info.samplerate,
                               sample_rate=info.samplerate, domain=self.domain, split="train", text=text,
                               language=self.language, speaker=speaker))

    def result(self, what: str) -> ImportResult:
        if not self.items:
            found = f" ({', '.join(f'{n} {r}' for r, n in sorted(self.skipped.items()))})" if self.skipped else ""
            raise CorpusError(f"{self.src}: no usable {what}{found}")
        items = assign_splits(sorted(self.items, key=lambda it: it.id))
        return ImportResult(items=items, skipped=dict(sorted(self.skipped.items())),
                            speakers=len({it.speaker for it in items if it.speaker is not None}),
                            hours=sum(it.duration for it in items) / 3600, untranscribed=self.untranscribed)


def _folder(src: str | Path) -> Path:
    src = Path(src)
    if not src.is_dir():
        raise CorpusError(f"{src}: no such folder")
    return src


def _read_text(path: Path) -> str | None:
    """The stripped text of a transcript file, or None if it is absent; a few corpus files are not UTF-8."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return " ".join(text.split()) or None


_LIBRITTS_ID = re.compile(r"^(\d+)_(\d+)_\d+_\d+$")


def libritts(src: str | Path, manifest_dir: str | Path | None = None) -> ImportResult:
    """LibriTTS (or LibriTTS-R): `[SUBSET/]SPEAKER/CHAPTER/SPEAKER_CHAPTER_P_S.wav` with `.normalized.txt`
    (else `.original.txt`) next to it. `src` is the corpus root or one subset folder."""
    root = _folder(src)
    scan = _Scan(root, Path(manifest_dir or root), language="en")
    # Subset folder: files three levels down; corpus root: four. A file has one depth, so nothing is seen twice.
    for wav in sorted([*root.glob("*/*/*.wav"), *root.glob("*/*/*/*.wav")]):
        match = _LIBRITTS_ID.match(wav.stem)
        if not match or (wav.parent.parent.name, wav.parent.name) != match.groups():
            continue
        text = _read_text(wav.with_suffix(".normalized.txt")) or _read_text(wav.with_suffix(".original.txt"))
        scan.add(wav.stem, wav, text, speaker=match.group(1))
    return scan.result("LibriTTS utterances (expected SUBSET/SPEAKER/CHAPTER/SPEAKER_CHAPTER_*.wav)")


def _metadata_rows(path: Path, scan: _Scan) -> list[tuple[str, str | None]]:
    """(name, text) rows of an LJSpeech-style `name|text` or `name|raw|normalized` file; quotes are literal."""
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as f:  # -sig: tolerate a BOM from spreadsheet exports
        for row in csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                scan.skipped["metadata row without text"] += 1
                continue
            text = row[2] if len(row) > 2 and row[2].strip() else row[1]
            rows.append((row[0].strip(), " ".join(text.split()) or None))
    return rows


def ljspeech(src: str | Path, manifest_dir: str | Path | None = None) -> ImportResult:
    """LJSpeech: `metadata.csv` (`id|raw text|normalized text`) and `wavs/ID.wav`; one speaker, "LJ"."""
    root = _folder(src)
    for needed in ("metadata.csv", "wavs"):
        if not (root / needed).exists():
            raise CorpusError(f"{root}: not an LJSpeech folder (no {needed})")
    scan = _Scan(root, Path(manifest_dir or root), language="en")
    for name, text in _metadata_rows(root / "metadata.csv", scan):
        wav = root / "wavs" / f"{name}.wav"
        if not wav.is_file():
            scan.skipped["missing audio"] += 1
            continue
        scan.add(name, wav, text, speaker="LJ")
    return scan.result("LJSpeech utterances (metadata.csv rows with wavs/ID.wav)")


def vctk(src: str | Path, manifest_dir: str | Path | None = None) -> ImportResult:
    """VCTK 0.92 (`wav48_silence_trimmed/pXXX/pXXX_YYY_mic1.flac`; mic2 ignored) or 0.80 (`wav48/pXXX/pXXX_YYY.wav`),
    transcripts in `txt/pXXX/pXXX_YYY.txt`. Audio without a transcript (all of p315, a few others) is imported
    without text; transcripts without audio are counted as skipped."""
    root = _folder(src)
    if (root / "wav48_silence_trimmed").is_dir():
        audio = {p.name[: -len("_mic1.flac")]: p for p in root.glob("wav48_silence_trimmed/*/*_mic1.flac")}
    elif (root / "wav48").is_dir():
        audio = {p.stem: p for p in root.glob("wav48/*/*.wav")}
    else:
        raise CorpusError(f"{root}: not a VCTK folder (no wav48_silence_trimmed or wav48)")
    if not (root / "txt").is_dir():
        raise CorpusError(f"{root}: not a VCTK folder (no txt)")
    scan = _Scan(root, Path(manifest_dir or root), language="en")
    for utterance, path in sorted(audio.items()):
        speaker = path.parent.name
        scan.add(utterance, path, _read_text(root / "txt" / speaker / f"{utterance}.txt"), speaker=speaker)
    # In 0.92 this includes utterances recorded with mic2 only.
    orphans = sum(1 for t in root.glob("txt/*/*.txt") if t.stem not in audio)
    if orphans:
        scan.skipped["transcript without audio"] += orphans
    return scan.result("VCTK utterances")


def _strip_audio_suffix(name: str) -> str:
    base, suffix = os.path.splitext(name)
    return base if suffix.lower() in AUDIO_SUFFIXES else name


def folder(src: str | Path, manifest_dir: str | Path | None = None, domain: str = "speech") -> ImportResult:
    """Any audio files under `src` (recursively). Text from `src/metadata.csv` (`name|text` or `name|raw|normalized`;
    name with or without extension, as a path relative to `src` or a bare file name) or else a same-name `.txt`.
    Speaker: the parent folder of files in subfolders; None for files directly in `src`."""
    root = _folder(src)
    if domain not in DOMAINS:
        raise CorpusError(f"domain must be one of {DOMAINS}, not {domain!r}")
    scan = _Scan(root, Path(manifest_dir or root), domain=domain)
    texts: dict[str, str | None] = {}
    if (root / "metadata.csv").is_file():
        for name, text in _metadata_rows(root / "metadata.csv", scan):
            texts[_strip_audio_suffix(name.removeprefix("./"))] = text
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise CorpusError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    ids = Counter(p.relative_to(root).with_suffix("").as_posix() for p in files)
    for path in files:
        rel = path.relative_to(root)
        stem = rel.with_suffix("").as_posix()
        text = texts.get(stem, texts.get(path.stem)) or _read_text(path.with_suffix(".txt"))
        # a.wav and a.flac side by side would share an id; then the extension stays in it
        item_id = stem if ids[stem] == 1 else rel.as_posix()
        scan.add(item_id, path, text, speaker=rel.parent.name if len(rel.parts) > 1 else None)
    return scan.result("audio files")


_IMPORTERS: dict[str, Callable[..., ImportResult]] = {"libritts": libritts, "ljspeech": ljspeech, "vctk": vctk}


def import_corpus(kind: str, src: str | Path, manifest_path: str | Path, domain: str = "speech") -> ImportResult:
    """Import a corpus of `kind` (one of KINDS) and write its manifest atomically to `manifest_path`."""
    manifest_path = Path(manifest_path)
    if kind == "folder":
        result = folder(src, manifest_path.parent, domain=domain)
    elif kind == "hedgewars":
        from .hedgewars import import_hedgewars

        result = import_hedgewars(src, manifest_path.parent)
    elif kind in _IMPORTERS:
        if domain != "speech":
            raise CorpusError(f"{kind} is a speech corpus; --domain {domain} applies to folder imports only")
        result = _IMPORTERS[kind](src, manifest_path.parent)
    else:
        raise CorpusError(f"unknown corpus kind {kind!r}; expected one of {', '.join(KINDS)}")
    write_manifest(manifest_path, result.items)
    return result
