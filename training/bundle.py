"""Assemble a model bundle (`--model DIR`, `pretrained/`) from release directories and voice prompts."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..core.audio import write_audio
from ..core.errors import SonorantError
from ..core.release import CONFIG, WEIGHTS
from ..tts.bundle import lm_codec_fingerprint, release_kind


def _copy_release(src: Path, dst: Path, kind: str, extra_files: tuple[str, ...] = ()) -> None:
    if release_kind(src) != kind or not (src / WEIGHTS).is_file():
        raise SonorantError(f"{src}: not a {kind} release directory (sonorant train export writes one)")
    dst.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, WEIGHTS, *extra_files):
        if not (src / name).is_file():
            raise SonorantError(f"{src}: {name} is missing")
        shutil.copy(src / name, dst / name)


def assemble_bundle(out: str | Path, lm: str | Path | None, codec: str | Path | None = None,
                    voices: dict[str, tuple[str | Path, str | None]] | None = None,
                    aligner: str | Path | None = None) -> Path:
    """Write `out/tts` (LM + frontend.json), `out/codec`, `out/aligner` (aligner + frontend.json; each kept
    when not given and already there) and `out/voices/NAME.wav` + `NAME.txt` (prompts cleaned as `tts`
    would: trimmed, loudness set, at most 10 s). An LM trained on another codec's tokens is refused before
    anything is replaced."""
    from ..codec import Codec
    from ..tts.prompt import prepare_prompt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".bundle."))
    try:
        if lm is not None:
            _copy_release(Path(lm), staging / "tts", "lm", ("frontend.json",))
        elif not (out / "tts" / CONFIG).is_file():
            raise SonorantError(f"{out} has no tts/ yet: pass the LM release directory")
        if aligner is not None:
            _copy_release(Path(aligner), staging / "aligner", "aligner", ("frontend.json",))
        if codec is not None:
            _copy_release(Path(codec), staging / "codec", "codec")
        elif not (out / "codec" / CONFIG).is_file():
            raise SonorantError(f"{out} has no codec/ yet: pass the codec release directory")
        codec_model = Codec.from_pretrained(staging / "codec" if codec is not None else out / "codec")
        trained_on = lm_codec_fingerprint(staging / "tts" if lm is not None else out / "tts")
        if trained_on not in (None, codec_model.fingerprint):
            raise SonorantError(f"{lm}: the LM was trained on tokens of codec {trained_on}, not of "
                                f"this bundle's codec ({codec_model.fingerprint})")
        for name, (wav, text) in (voices or {}).items():
            (staging / "voices").mkdir(exist_ok=True)
            prepared = prepare_prompt(wav, codec_model.sample_rate)
            write_audio(staging / "voices" / f"{name}.wav", prepared.audio, prepared.sample_rate)
            if text:
                (staging / "voices" / f"{name}.txt").write_text(text.strip() + "\n", encoding="utf-8")
        for part in ("tts", "codec", "aligner", "voices"):
            if (staging / part).exists():
                shutil.rmtree(out / part, ignore_errors=True)
                (staging / part).rename(out / part)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
