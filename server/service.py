"""What the endpoints share: the loaded Synthesizer, the voice store, admission control and metrics.

Voices are looked up by name only, never as paths: the bundle's voices (`default` among them) first,
then the saved-voice store that `sonorant voice add` writes.
"""

from __future__ import annotations

import re
import tempfile
import threading
from pathlib import Path

from ..core.errors import AudioError, SonorantError
from ..tts import Synthesizer, Voice, VoiceError, list_voices, load_voice, remove_voice, save_voice
from ..tts.voices import NAME_PATTERN, voices_home
from .config import ServerConfig
from .errors import ApiError
from .limiter import Limiter
from .metrics import Metrics

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}")


def upload_path(folder: str | Path, stem: str, suffix: str) -> Path:
    """Where an upload is kept while it is read: the client's file name gives at most its extension."""
    return Path(folder) / (stem + (suffix if _SUFFIX.fullmatch(suffix) else ""))


def check_voice_name(name: str, param: str = "voice") -> str:
    """A voice name (the voices' one naming rule, `NAME_PATTERN`): 1-64 letters, digits, '_' or '-', starting
    with a letter or digit; 400 otherwise."""
    if not isinstance(name, str) or _CONTROL.search(name) or ".." in name or "/" in name or "\\" in name \
            or not NAME_PATTERN.match(name):
        raise ApiError(400, f"{param} {name!r} is not a voice name: use 1-64 letters, digits, '_' or '-', "
                            "starting with a letter or digit", param=param, code="invalid_voice_name")
    return name


class Service:
    def __init__(self, config: ServerConfig, synth: Synthesizer | None = None) -> None:
        self.config = config
        self.synth = synth or Synthesizer.from_pretrained(config.model, device=config.device)
        self.store = config.voices or voices_home()
        self.metrics = Metrics()
        self.limiter: Limiter | None = None  # made in the app's lifespan, on its event loop
        self._bundled: dict[str, Voice] = {}  # the bundle's voices, encoded once
        self._lock = threading.Lock()

    def start(self) -> None:
        c = self.config
        self.limiter = Limiter(c.max_concurrent, c.max_queue, c.queue_timeout_s, self.metrics.slots_changed)

    # -- voices -----------------------------------------------------------------------------------
    def bundle_voice_names(self) -> list[str]:
        folder = self.synth.voices
        return sorted(p.stem for p in folder.glob("*.wav")) if folder is not None else []

    def voices(self) -> list[dict]:
        out = []
        for name in self.bundle_voice_names():
            txt = self.synth.voices / f"{name}.txt"
            out.append({"id": name, "name": name, "source": "bundle",
                        "text": txt.read_text(encoding="utf-8").strip() if txt.is_file() else None})
        bundled = {v["id"] for v in out}
        for meta in list_voices(self.store):
            if meta.get("name") in bundled:
                continue
            out.append({"id": meta.get("name"), "name": meta.get("name"), "source": "saved",
                        "text": meta.get("text"), "language": meta.get("language"), "seconds": meta.get("seconds"),
                        "damaged": bool(meta.get("damaged"))})
        return out

    def voice(self, name: str | None) -> Voice | None:
        """The voice called `name` (None: the bundle's default, or no voice when it has none)."""
        if name is None:
            return self.synth.resolve_voice(None)
        check_voice_name(name)
        if name in self.bundle_voice_names():
            return self._bundle_voice(name)
        try:
            return load_voice(name, self.store)
        except VoiceError as e:
            known = ", ".join(v["id"] for v in self.voices()) or "none"
            if "no saved voice" in str(e):
                raise ApiError(400, f"unknown voice {name!r} (voices: {known})", param="voice",
                               code="voice_not_found") from None
            raise ApiError(400, str(e), param="voice") from None

    def _bundle_voice(self, name: str) -> Voice:
        with self._lock:
            if name not in self._bundled:
                txt = self.synth.voices / f"{name}.txt"
                text = txt.read_text(encoding="utf-8").strip() if txt.is_file() else None
                voice = self.synth.voice_from_audio(self.synth.voices / f"{name}.wav", text)
                voice.name = name
                self._bundled[name] = voice
            return self._bundled[name]

    def add_voice(self, name: str, audio: bytes, suffix: str, text: str | None, language: str) -> dict:
        """Clean, encode and save an uploaded prompt; nothing reaches the store unless all of it worked."""
        check_voice_name(name, "name")
        if name in self.bundle_voice_names() or (self.store / name).exists():
            raise ApiError(409, f"a voice named {name!r} exists already; delete it first", param="name",
                           code="voice_exists")
        if text is not None and not text.strip():
            text = None
        notes: list[str] = []
        with tempfile.TemporaryDirectory(prefix="sonorant-upload-") as tmp:
            path = upload_path(tmp, "prompt", suffix)
            path.write_bytes(audio)
            try:
                voice = self.synth.voice_from_audio(path, text, language, notes)
            except AudioError as e:
                raise ApiError(400, f"the uploaded file: {str(e).removeprefix(str(path) + ': ')}", param="file",
                               code="invalid_audio") from None
            except SonorantError as e:
                raise ApiError(400, str(e), param="text") from None
        try:
            save_voice(voice, name, self.store)
        except VoiceError as e:
            raise ApiError(409, str(e), param="name", code="voice_exists") from None
        return {"id": name, "name": name, "source": "saved", "text": voice.text, "language": language,
                "seconds": round(voice.seconds, 3), "mode": "transcript" if voice.text else "reference",
                "notes": notes}

    def remove_voice(self, name: str) -> None:
        check_voice_name(name, "name")
        if name in self.bundle_voice_names():
            raise ApiError(400, f"{name!r} is one of the model bundle's voices; it cannot be deleted", param="name")
        try:
            remove_voice(name, self.store)
        except VoiceError:
            raise ApiError(404, f"no saved voice named {name!r}", param="name", code="voice_not_found") from None
