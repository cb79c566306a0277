"""Model bundles: the folder `--model DIR` and `pretrained/` point at.

A bundle holds `codec/` (codec release), `tts/` or `lm/` (LM release with its `frontend.json`) and
`voices/` (`NAME.wav` + `NAME.txt`, `default` among them). A bare LM release directory is accepted
too; it then runs with the shipped codec, provided it was trained on that codec's tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..codec.pretrained import default_model_dir
from ..core.errors import ModelError

LM_FOLDERS = ("tts", "lm")


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


def resolve_bundle(model: str | Path | None = None) -> BundlePaths:
    """Find the LM, its frontend, the codec and the voices of a bundle (None = the shipped one)."""
    root = Path(model) if model is not None else default_model_dir()
    if not root.is_dir():
        raise ModelError(f"{root}: no such model folder")
    lm = next((d for d in (*(root / f for f in LM_FOLDERS), root) if release_kind(d) == "lm"), None)
    if lm is None:
        where = "the installation has no shipped TTS model yet" if model is None else f"{root} holds no LM"
        raise ModelError(f"{where} (expected tts/ or lm/ with config.json + model.safetensors + frontend.json); "
                         "pass --model DIR with a bundle")
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
