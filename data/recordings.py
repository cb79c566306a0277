"""Real music and sound recordings shipped in Debian game and music packages, captioned from their names.

Each source is a package and a part of its file list (`dpkg -L`); a package that is not installed is
skipped, and the build says so. Long files are cut into clips of at most `MAX_CLIP_SECONDS`; clips of
one file always share a split.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..core.atomic import atomic_path
from .manifest import Item

AUDIO = (".ogg", ".wav", ".flac")
MAX_CLIP_SECONDS = 20.0
MIN_CLIP_SECONDS = 0.2


@dataclass(frozen=True)
class Source:
    package: str
    domain: str  # music | sound
    part: str  # a path fragment selecting the package's files of this source
    caption: str  # "{name}" is replaced by the words of the file name
    exclude: str | None = None

    @property
    def id(self) -> str:
        return f"{self.package}:{self.part.strip('/')}"


SOURCES = (
    Source("hedgewars-data", "music", "/Data/Music/", "{name}, game music from Hedgewars"),
    Source("hedgewars-data", "sound", "/Data/Sounds/", "sound effect: {name} (Hedgewars)", exclude="/voices/"),
    Source("wesnoth-1.16-music", "music", "/music/", "{name}, orchestral game music from Battle for Wesnoth"),
    Source("supertuxkart-data", "music", "/music/", "{name}, game music from SuperTuxKart"),
    Source("supertuxkart-data", "sound", "/sfx/", "sound effect: {name} (SuperTuxKart)"),
    Source("widelands-data", "music", "/music/", "{name}, game music from Widelands"),
    Source("widelands-data", "sound", "/sound/", "sound effect: {name} (Widelands)"),
    Source("hydrogen-drumkits", "sound", "/drumkits/", "a {name} drum sample from the Hydrogen {kit} kit"),
)


def source_files(source: Source) -> list[Path] | None:
    """The source's audio files, or None when its package is not installed."""
    listed = subprocess.run(["dpkg", "-L", source.package], capture_output=True, text=True)
    if listed.returncode != 0:
        return None
    return sorted(Path(p) for p in listed.stdout.splitlines()
                  if p.lower().endswith(AUDIO) and source.part in p
                  and not (source.exclude and source.exclude in p) and Path(p).is_file())


def words(name: str) -> str:
    """`BattleMusic_02-epic` -> "battle music epic"."""
    name = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    return " ".join(w.lower() for w in re.split(r"[\W_\d]+", name) if w) or "untitled"


def caption_of(source: Source, path: Path) -> str:
    return source.caption.format(name=words(path.stem), kit=path.parent.name)


def split_of(key: str, valid: float = 0.04, test: float = 0.04) -> str:
    """A deterministic split from a stable hash of `key` (the source file)."""
    x = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 2**32
    return "test" if x < test else ("valid" if x < test + valid else "train")


def import_file(source: Source, path: Path, out_dir: Path, stem: str, max_seconds: float = float("inf")) -> list[Item]:
    """Clips of one recording (mono, its own rate) written as FLAC under out_dir, from its start, the last
    one cut short where they reach `max_seconds`; existing ones are reused, so an interrupted build
    resumes. Unreadable or silent files give no items."""
    try:
        info = sf.info(str(path))
    except Exception:
        return []
    rate, total = info.samplerate, info.frames
    clip = int(MAX_CLIP_SECONDS * rate)
    starts = range(0, max(total, 1), clip)
    items, data = [], None
    split = split_of(str(path))
    used = 0.0
    for n, start in enumerate(starts):
        room = int(max(0.0, max_seconds - used) * rate) if max_seconds < float("inf") else clip
        length = min(clip, total - start, room)
        if length < MIN_CLIP_SECONDS * rate:
            break
        relative = f"{source.domain}/{stem}-{n:03d}.flac"
        target = out_dir / relative
        if target.is_file():  # written by an interrupted build
            length = sf.info(str(target)).frames
        else:
            if data is None:
                try:
                    data = sf.read(str(path), dtype="float32", always_2d=True)[0].mean(axis=1)
                except Exception:
                    return []
            piece = data[start: start + length]
            if not np.abs(piece).max() > 1e-4:
                continue  # silence
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                sf.write(str(tmp), piece, rate, format="FLAC")
        used += length / rate
        items.append(Item(id=f"{stem}-{n:03d}", path=relative, duration=round(length / rate, 4), sample_rate=rate,
                          domain=source.domain, split=split, caption=caption_of(source, path)))
    return items
