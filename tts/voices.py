"""Saved voices: an encoded prompt (codec tokens + the transcript's phonemes) kept under the user's
data folder, so `--voice NAME` clones without reading or encoding the audio again.

One voice is a folder `VOICES/NAME/` with `voice.json` (transcript, phonemes, language, codec
fingerprint), `codes.safetensors` (the prompt's tokens) and `prompt.flac` (the cleaned prompt, so
the voice still works with another codec). Nothing in it executes code when loaded, and everything in it
is checked when it is read (`read_voice`): a damaged voice is reported as such and never breaks the others.

Names are letters, digits, '_' and '-' (`check_voice_name`): never a '.', so a name cannot be mistaken for a
file name, and `voice_source` decides what `--voice X` means before any model loads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.atomic import current_umask, remove_stale_temps, temp_prefix
from ..core.errors import SonorantError

if TYPE_CHECKING:
    import numpy as np
    import torch

VOICE_FORMAT_VERSION = 1
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
LEGACY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # earlier versions allowed '.': listed, removable
META_FILE, CODES_FILE, PROMPT_FILE = "voice.json", "codes.safetensors", "prompt.flac"
MAX_CODE = 1 << 16  # token files and voices hold codes of at most 16 bits


class VoiceError(SonorantError):
    """A voice that cannot be saved, found or read."""


class DamagedVoice(VoiceError):
    """A saved voice whose files are not what `save_voice` writes."""

    def __init__(self, folder: Path, reason: str) -> None:
        super().__init__(f"{folder}: damaged voice ({reason}); remove it and add it again")
        self.reason = reason


@dataclass
class Voice:
    """A voice prompt ready for the LM: its tokens, and its transcript when known."""

    codes: torch.Tensor  # [K, P] prompt tokens of the codec named by `codec_fingerprint`
    audio: torch.Tensor  # [1, N] the cleaned prompt at `sample_rate`
    sample_rate: int
    codec_fingerprint: str
    text: str | None = None  # transcript of the prompt
    phonemes: str | None = None  # its IPA (frontend.phonemize), so saved voices need no G2P
    language: str = "en-us"
    name: str | None = None

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


@dataclass(frozen=True)
class VoiceSource:
    """What `--voice X` names: an audio file, a saved voice or one of the bundle's voices."""

    kind: str  # "file" | "saved" | "bundle"
    value: str  # the file's path or the voice's name
    note: str | None = None  # said on stderr when another thing of the same name was passed over


def voices_home() -> Path:
    """$SONORANT_HOME/voices, else $XDG_DATA_HOME/sonorant/voices, else ~/.local/share/sonorant/voices."""
    if os.environ.get("SONORANT_HOME"):
        return Path(os.environ["SONORANT_HOME"]) / "voices"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "sonorant" / "voices"


def check_voice_name(name: str) -> str:
    """The one naming rule of saved voices: 1-64 letters, digits, '_' or '-', starting with a letter or digit."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise VoiceError(f"voice name {name!r}: use 1-64 letters, digits, '_' or '-', starting with a letter or "
                         "digit (no '.', so that it cannot be taken for a file)")
    return name


def _folder(name: str, root: Path | None) -> Path:
    return (root or voices_home()) / check_voice_name(name)


def voice_source(voice: str | Path, bundle_voices: Path | None = None, root: Path | None = None) -> VoiceSource:
    """What `--voice X` names, decided from names and files alone (no model, no audio read).

    A path (with a folder or a suffix) is a file. A bare name is the bundle's voice or a saved voice of that
    name (the bundle's first); a file of the same name in the current folder makes it ambiguous (an error that
    says how to choose), a folder of the same name is passed over with a note."""
    text = str(voice)
    path = Path(text)
    if not text.strip():
        raise VoiceError("--voice is empty: give an audio file or a saved voice's name")
    if path.suffix or len(path.parts) > 1 or path.is_absolute() or not NAME_PATTERN.match(text):
        return VoiceSource("file", text)
    bundle = bundle_voices is not None and (bundle_voices / f"{text}.wav").is_file()
    saved = (_folder(text, root) / META_FILE).is_file()
    if path.is_file():
        if bundle or saved:
            raise VoiceError(f"--voice {text}: both the file ./{text} and a {'bundle' if bundle else 'saved'} voice "
                             f"have this name; write ./{text} for the file")
        return VoiceSource("file", text)
    passed_over = []
    if bundle and saved:
        passed_over.append(f"your saved voice {text!r}")
    if path.is_dir():
        passed_over.append(f"the folder ./{text}")
    if bundle or saved:
        which = "the bundle's voice" if bundle else "the saved voice"
        note = f"using {which} {text!r}, not {' or '.join(passed_over)}" if passed_over else None
        return VoiceSource("bundle" if bundle else "saved", text, note)
    if path.is_dir():
        raise VoiceError(f"--voice {text}: ./{text} is a folder, and there is no saved voice of that name")
    raise _unknown(text, root)


def _unknown(name: str, root: Path | None) -> VoiceError:
    known = ", ".join(v["name"] for v in list_voices(root) if not v.get("damaged")) or "none saved yet"
    return VoiceError(f"no saved voice named {name!r} (saved voices: {known}); add one with "
                      "`sonorant voice add NAME WAV --text TEXT`")


def check_can_save(name: str, root: Path | None = None, overwrite: bool = False) -> Path:
    """The folder NAME would be saved in; VoiceError for a bad name or (without `overwrite`) a voice of that name."""
    folder = _folder(name, root)
    if folder.exists() and not overwrite:
        raise VoiceError(f"a voice named {name!r} exists already ({folder}); remove it first (or use --force)")
    return folder


def save_voice(voice: Voice, name: str, root: Path | None = None, overwrite: bool = False) -> Path:
    """Write `voice` as NAME (atomically: a temporary folder renamed into place)."""
    import torch
    from safetensors.torch import save_file

    from ..core.audio import write_audio

    folder = check_can_save(name, root, overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(folder.parent, name)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=temp_prefix(name)))
    try:
        meta = {"format_version": VOICE_FORMAT_VERSION, "kind": "voice", "name": name, "text": voice.text,
                "phonemes": voice.phonemes, "language": voice.language, "codec_fingerprint": voice.codec_fingerprint,
                "sample_rate": voice.sample_rate, "seconds": round(voice.seconds, 3),
                "num_codebooks": int(voice.codes.shape[0]), "frames": int(voice.codes.shape[1])}
        (tmp / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        save_file({"codes": voice.codes.to(torch.int32).contiguous()}, str(tmp / CODES_FILE))
        write_audio(tmp / PROMPT_FILE, voice.audio, voice.sample_rate)
        tmp.chmod(0o777 & ~current_umask())
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_voice(folder: Path) -> tuple[dict[str, Any], np.ndarray]:
    """The checked metadata and codes [K, P] of a saved voice folder; VoiceError saying what is damaged."""
    try:
        meta = _check_meta(json.loads((folder / META_FILE).read_text(encoding="utf-8")))
        codes = _check_codes(folder / CODES_FILE, meta)
        if not (folder / PROMPT_FILE).is_file():
            raise ValueError(f"no {PROMPT_FILE}")
    except UnicodeDecodeError:
        raise DamagedVoice(folder, f"{META_FILE} is not UTF-8 text") from None
    except Exception as e:  # json, safetensors or our own checks
        raise DamagedVoice(folder, (str(e).strip().splitlines() or [type(e).__name__])[0]) from None
    return meta, codes


def load_voice(name: str, root: Path | None = None) -> Voice:
    import torch

    from ..core.audio import load_audio
    from ..core.errors import AudioError

    folder = _folder(name, root)
    if not (folder / META_FILE).is_file():
        raise _unknown(name, root)
    meta, codes = read_voice(folder)
    try:
        audio = load_audio(folder / PROMPT_FILE, meta["sample_rate"])
    except AudioError as e:
        raise DamagedVoice(folder, str(e).removeprefix(f"{folder / PROMPT_FILE}: ")) from None
    return Voice(codes=torch.from_numpy(codes).long(), audio=audio, sample_rate=meta["sample_rate"],
                 codec_fingerprint=meta["codec_fingerprint"], text=meta["text"], phonemes=meta["phonemes"],
                 language=meta["language"] or "en-us", name=name)


def list_voices(root: Path | None = None) -> list[dict]:
    """The voice.json of every saved voice, by name; a damaged one as {"name", "damaged": what is wrong}."""
    root = root or voices_home()
    out = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    for folder in folders:
        if not (folder / META_FILE).exists():
            continue
        if not NAME_PATTERN.match(folder.name):
            out.append({"name": folder.name, "damaged": "a name with a '.' cannot be used; remove it and add it "
                                                        "again under a name of letters, digits, '_' and '-'"})
            continue
        try:
            meta, _ = read_voice(folder)
            out.append({**meta, "name": folder.name})
        except DamagedVoice as e:
            out.append({"name": folder.name, "damaged": e.reason})
    return out


def remove_voice(name: str, root: Path | None = None) -> Path:
    legacy = isinstance(name, str) and LEGACY_NAME.match(name) and ".." not in name
    folder = (root or voices_home()) / name if legacy and not NAME_PATTERN.match(name) else _folder(name, root)
    if not folder.is_dir():
        raise VoiceError(f"no saved voice named {name!r}")
    shutil.rmtree(folder)
    return folder


def _check_meta(meta: Any) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise ValueError(f"{META_FILE} holds a {type(meta).__name__}, not an object")
    if meta.get("kind") != "voice":
        raise ValueError(f"{META_FILE} is not a voice's (kind {meta.get('kind')!r})")
    version = meta.get("format_version")
    if not _is_int(version) or not 1 <= version <= VOICE_FORMAT_VERSION:
        raise ValueError(f"format version {version!r} (this sonorant reads 1..{VOICE_FORMAT_VERSION})")
    for key in ("sample_rate", "num_codebooks", "frames"):
        if not _is_int(meta.get(key)) or meta[key] <= 0:
            raise ValueError(f"{key} is {meta.get(key)!r}, not a positive integer")
    fingerprint = meta.get("codec_fingerprint")
    if not isinstance(fingerprint, str) or not re.fullmatch(r"[0-9a-f]{16}", fingerprint):
        raise ValueError(f"codec_fingerprint is {fingerprint!r}, not 16 hex digits")
    for key in ("text", "phonemes", "language"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise ValueError(f"{key} is a {type(meta[key]).__name__}, not text")
    return {**meta, "text": meta.get("text"), "phonemes": meta.get("phonemes"), "language": meta.get("language")}


def _check_codes(path: Path, meta: dict[str, Any]) -> np.ndarray:
    import numpy as np
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    if "codes" not in tensors:
        raise ValueError(f"{CODES_FILE} holds no codes")
    codes = tensors["codes"]
    expected = (meta["num_codebooks"], meta["frames"])
    if codes.shape != expected:
        raise ValueError(f"codes of shape {list(codes.shape)}, not {list(expected)}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes of type {codes.dtype}, not integers")
    if codes.min() < 0 or codes.max() >= MAX_CODE:
        raise ValueError(f"codes out of range ({int(codes.min())}..{int(codes.max())})")
    return codes.astype(np.int64)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
