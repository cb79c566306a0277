"""Model bundles: the folder `--model DIR` and `pretrained/` point at; resolved here, and assembled by
`assemble_bundle` (`sonorant train bundle`) from release directories and voice prompts.

A bundle holds `codec/` (codec release), `tts/` or `lm/` (LM release with its `frontend.json`),
`voices/` (`NAME.wav` + `NAME.txt`, `default` among them) and, for `sonorant generate`, `generate/` (a
caption-conditioned LM release on the same codec's tokens). A bare LM release directory is accepted
too; it then runs with the shipped codec, provided it was trained on that codec's tokens.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ModelError, SonorantError
from ..core.paths import default_model_dir

LM_FOLDERS = ("tts", "lm")
GENERATE_FOLDER = "generate"


@dataclass(frozen=True)
class BundlePaths:
    root: Path
    lm: Path
    frontend: Path
    codec: Path
    voices: Path | None
    aligner: Path | None = None  # times a voice prompt's transcript (transcript mode)


def _config(directory: Path) -> dict:
    try:
        data = json.loads((directory / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def release_kind(directory: str | Path) -> str | None:
    """The `kind` of a release directory ("lm", "codec", ...), None when it is not one."""
    return _config(Path(directory)).get("kind")


def lm_codec_fingerprint(lm_dir: str | Path) -> str | None:
    """The fingerprint of the codec whose tokens an LM release was trained on (None if not recorded)."""
    return (_config(Path(lm_dir)).get("extra") or {}).get("codec", {}).get("fingerprint")


def lm_takes_captions(lm_dir: str | Path) -> bool:
    """Whether an LM release was trained with caption embeddings (text-to-sound / music), from its config."""
    return bool(_config(Path(lm_dir)).get("caption_dim"))


def resolve_bundle(model: str | Path | None = None, captions: bool = False) -> BundlePaths:
    """Find the LM, its frontend, the codec and the voices of a bundle (None = the shipped one). With
    `captions`, the LM is the caption-conditioned one: `generate/`, else the speech LM if it reads captions."""
    root = Path(model) if model is not None else default_model_dir()
    if not root.is_dir():
        raise ModelError(f"{root}: no such model folder")
    speech = next((d for d in (*(root / f for f in LM_FOLDERS), root) if release_kind(d) == "lm"), None)
    lm = root / GENERATE_FOLDER if captions and release_kind(root / GENERATE_FOLDER) == "lm" else speech
    if lm is None:
        where = "the installation has no shipped TTS model yet" if model is None else f"{root} holds no LM"
        raise ModelError(f"{where} (expected tts/ or lm/ with config.json + model.safetensors + frontend.json); "
                         "pass --model DIR with a bundle")
    if captions and not lm_takes_captions(lm):
        raise ModelError(f"{root}: this model was not trained with captions, so it cannot generate from one; use a "
                         f"bundle with a caption-conditioned LM in {GENERATE_FOLDER}/ (caption_dim in its config)")
    frontend = next((p for p in (lm / "frontend.json", root / "frontend.json") if p.is_file()), None)
    if frontend is None:
        raise ModelError(f"{lm}: no frontend.json (the phoneme vocabulary the LM was trained with)")
    codec = root / "codec" if release_kind(root / "codec") == "codec" else default_model_dir() / "codec"
    if release_kind(codec) != "codec":
        raise ModelError(f"{root}: no codec/ folder and no shipped codec")
    voices = root / "voices"
    aligner = next((d for d in (root / "aligner", default_model_dir() / "aligner") if release_kind(d) == "aligner"),
                   None)
    return BundlePaths(root, lm, frontend, codec, voices if voices.is_dir() else None, aligner)


# -- assembling a bundle ----------------------------------------------------------------------------
def _copy_release(src: Path, dst: Path, kind: str, extra_files: tuple[str, ...] = ()) -> None:
    from ..core.release import CONFIG, WEIGHTS  # torch: only when a bundle is assembled

    if release_kind(src) != kind or not (src / WEIGHTS).is_file():
        raise SonorantError(f"{src}: not a {kind} release directory (sonorant train export writes one)")
    dst.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, WEIGHTS, *extra_files):
        if not (src / name).is_file():
            raise SonorantError(f"{src}: {name} is missing")
        shutil.copy(src / name, dst / name)


def assemble_bundle(out: str | Path, lm: str | Path | None, codec: str | Path | None = None,
                    voices: dict[str, tuple[str | Path, str | None]] | None = None,
                    aligner: str | Path | None = None, generator: str | Path | None = None) -> Path:
    """Write `out/tts` (LM + frontend.json), `out/codec`, `out/aligner` (aligner + frontend.json),
    `out/generate` (a caption-conditioned LM + frontend.json; each kept when not given and already there) and
    `out/voices/NAME.wav` + `NAME.txt` (prompts cleaned as `tts` would: trimmed, loudness set, at most 10 s).
    An LM trained on another codec's tokens is refused before anything is replaced."""
    from ..codec import Codec
    from ..core.audio import write_audio
    from ..core.release import CONFIG
    from .prompt import prepare_prompt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".bundle."))
    try:
        if lm is not None:
            _copy_release(Path(lm), staging / "tts", "lm", ("frontend.json",))
        elif not (out / "tts" / CONFIG).is_file():
            raise SonorantError(f"{out} has no tts/ yet: pass the LM release directory")
        if generator is not None:
            _copy_release(Path(generator), staging / GENERATE_FOLDER, "lm", ("frontend.json",))
            if not lm_takes_captions(staging / GENERATE_FOLDER):
                raise SonorantError(f"{generator}: not a caption-conditioned LM (no caption_dim in its config)")
        if aligner is not None:
            _copy_release(Path(aligner), staging / "aligner", "aligner", ("frontend.json",))
        if codec is not None:
            # a codec with a phonetic head keeps its classes beside it (`codec.phonemes`, `eval codec --alignments`)
            classes = ("frontend.json",) if (Path(codec) / "frontend.json").is_file() else ()
            _copy_release(Path(codec), staging / "codec", "codec", classes)
        elif not (out / "codec" / CONFIG).is_file():
            raise SonorantError(f"{out} has no codec/ yet: pass the codec release directory")
        codec_model = Codec.from_pretrained(staging / "codec" if codec is not None else out / "codec")
        for folder, given in (("tts", lm), (GENERATE_FOLDER, generator)):
            trained_on = lm_codec_fingerprint(staging / folder if given is not None else out / folder)
            if trained_on not in (None, codec_model.fingerprint):
                raise SonorantError(f"{given or out / folder}: the LM was trained on tokens of codec {trained_on}, "
                                    f"not of this bundle's codec ({codec_model.fingerprint})")
        for name, (wav, text) in (voices or {}).items():
            (staging / "voices").mkdir(exist_ok=True)
            prepared = prepare_prompt(wav, codec_model.sample_rate)
            write_audio(staging / "voices" / f"{name}.wav", prepared.audio, prepared.sample_rate)
            if text:
                (staging / "voices" / f"{name}.txt").write_text(text.strip() + "\n", encoding="utf-8")
        for part in ("tts", GENERATE_FOLDER, "codec", "aligner", "voices"):
            if (staging / part).exists():
                shutil.rmtree(out / part, ignore_errors=True)
                (staging / part).rename(out / part)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
