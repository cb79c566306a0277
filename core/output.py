"""Where an output goes, checked before any work starts: every command that writes a file asks here."""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

from .atomic import temp_prefix
from .errors import SonorantError

AUDIO = "audio"  # the audio formats below
AUDIO_FORMATS = ("WAV", "FLAC", "OGG", "MP3", "AIFF", "CAF", "W64", "RF64", "AU")


@lru_cache(maxsize=1)
def audio_suffixes() -> tuple[str, ...]:
    """Suffixes of the audio formats this soundfile writes (headerless RAW is not one: it needs a sample format)."""
    import soundfile as sf

    available = sf.available_formats()
    return tuple(f".{fmt.lower()}" for fmt in AUDIO_FORMATS if fmt in available and sf.default_subtype(fmt))


def check_output_path(path: str | Path, suffixes: str | tuple[str, ...] = AUDIO) -> Path:
    """`path` if a file can be written there, else SonorantError: a folder, an unknown format, a missing or
    unwritable folder. `suffixes`: AUDIO, or the suffixes allowed (".stok", (".json",) ...)."""
    path = Path(path)
    if path.is_dir():
        raise SonorantError(f"{path}: is a folder; give a file name (for example {path / 'out'}"
                            f"{'.wav' if suffixes == AUDIO else _first(suffixes)})")
    allowed = audio_suffixes() if suffixes == AUDIO else ((suffixes,) if isinstance(suffixes, str) else suffixes)
    if path.suffix.lower() not in allowed:
        if suffixes == AUDIO:
            raise SonorantError(f"{path}: unknown audio format {path.suffix!r} (use {', '.join(allowed)})")
        raise SonorantError(f"{path}: the output must end in {' or '.join(allowed)}")
    check_writable_folder(path.parent if str(path.parent) else Path("."), path.name)
    return path


def check_writable_folder(folder: str | Path, name: str = "output") -> Path:
    """`folder` if files can be created in it (tried with a temporary file, removed at once)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SonorantError(f"{folder}: no such folder" if not folder.exists() else f"{folder}: not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=temp_prefix(name), suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SonorantError(f"{folder}: cannot write there ({e.strerror or e})") from None
    return folder


def check_output_folder(folder: str | Path) -> Path:
    """A folder an output tree goes into: an existing writable folder, or one whose nearest existing
    ancestor is writable (it is created when the work starts, not now)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SonorantError(f"{folder}: is a file, not a folder")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    check_writable_folder(existing)
    return folder


def _first(suffixes: str | tuple[str, ...]) -> str:
    return suffixes if isinstance(suffixes, str) else suffixes[0]
