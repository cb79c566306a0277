"""Saved voices: an encoded prompt (codec tokens + the transcript's phonemes) kept under the user's
data folder, so `--voice NAME` clones without reading or encoding the audio again.

One voice is a folder `VOICES/NAME/` with `voice.json` (transcript, phonemes, language, codec
fingerprint), `codes.safetensors` (the prompt's tokens) and `prompt.flac` (the cleaned prompt, so
the voice still works with another codec). Nothing in it executes code when loaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..codec.atomic import current_umask
from ..codec.audio import load_audio, write_audio
from ..codec.errors import SonorantError

VOICE_FORMAT_VERSION = 1
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class VoiceError(SonorantError):
    """A voice that cannot be saved, found or read."""


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


def voices_home() -> Path:
    """$SONORANT_HOME/voices, else $XDG_DATA_HOME/sonorant/voices, else ~/.local/share/sonorant/voices."""
    if os.environ.get("SONORANT_HOME"):
        return Path(os.environ["SONORANT_HOME"]) / "voices"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "sonorant" / "voices"


def _folder(name: str, root: Path | None) -> Path:
    if not NAME_PATTERN.match(name):
        raise VoiceError(f"voice name {name!r}: use 1-64 letters, digits, '_', '-' or '.', starting with a letter "
                         "or digit")
    return (root or voices_home()) / name


def save_voice(voice: Voice, name: str, root: Path | None = None, overwrite: bool = False) -> Path:
    """Write `voice` as NAME (atomically: a temporary folder renamed into place)."""
    folder = _folder(name, root)
    if folder.exists() and not overwrite:
        raise VoiceError(f"a voice named {name!r} exists already ({folder}); remove it first")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}."))
    try:
        meta = {"format_version": VOICE_FORMAT_VERSION, "kind": "voice", "name": name, "text": voice.text,
                "phonemes": voice.phonemes, "language": voice.language, "codec_fingerprint": voice.codec_fingerprint,
                "sample_rate": voice.sample_rate, "seconds": round(voice.seconds, 3),
                "num_codebooks": int(voice.codes.shape[0]), "frames": int(voice.codes.shape[1])}
        (tmp / "voice.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        save_file({"codes": voice.codes.to(torch.int32).contiguous()}, str(tmp / "codes.safetensors"))
        write_audio(tmp / "prompt.flac", voice.audio, voice.sample_rate)
        tmp.chmod(0o777 & ~current_umask())
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def load_voice(name: str, root: Path | None = None) -> Voice:
    folder = _folder(name, root)
    if not folder.is_dir():
        known = ", ".join(v["name"] for v in list_voices(root)) or "none saved yet"
        raise VoiceError(f"no saved voice named {name!r} (saved voices: {known}); add one with "
                         "`sonorant voice add NAME WAV --text TEXT`")
    try:
        meta = json.loads((folder / "voice.json").read_text(encoding="utf-8"))
        if meta.get("kind") != "voice" or meta.get("format_version", 0) > VOICE_FORMAT_VERSION:
            raise VoiceError(f"{folder}: not a voice of a supported version")
        codes = load_file(str(folder / "codes.safetensors"))["codes"].long()
        audio = load_audio(folder / "prompt.flac", int(meta["sample_rate"]))
    except VoiceError:
        raise
    except Exception as e:  # a damaged folder: json, safetensors or audio errors
        raise VoiceError(f"{folder}: damaged voice ({str(e).strip().splitlines()[0]}); remove it and add it again") \
            from None
    return Voice(codes=codes, audio=audio, sample_rate=int(meta["sample_rate"]),
                 codec_fingerprint=meta["codec_fingerprint"], text=meta.get("text"), phonemes=meta.get("phonemes"),
                 language=meta.get("language") or "en-us", name=name)


def list_voices(root: Path | None = None) -> list[dict]:
    """The voice.json of every saved voice, by name."""
    root = root or voices_home()
    out = []
    for path in sorted(root.glob("*/voice.json")) if root.is_dir() else []:
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            out.append({"name": path.parent.name, "damaged": True})
    return out


def remove_voice(name: str, root: Path | None = None) -> Path:
    folder = _folder(name, root)
    if not folder.is_dir():
        raise VoiceError(f"no saved voice named {name!r}")
    shutil.rmtree(folder)
    return folder

