"""Reading audio files for the codec: any format soundfile reads, any rate, any channel count."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from .errors import AudioError

MAX_SECONDS = 4 * 3600  # longer input is almost certainly a mistake (or a malicious header)


def load_audio(path: str | Path, sample_rate: int, allow_silent: bool = False) -> torch.Tensor:
    """Read `path` as mono float32 [1, N] at `sample_rate` (downmixed, resampled with torchaudio).

    Raises AudioError, with one readable line, for missing, unreadable, empty, silent or
    non-finite audio.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    try:
        info = sf.info(str(path))
        if info.frames > MAX_SECONDS * info.samplerate:
            raise AudioError(f"{path}: {info.frames / info.samplerate:.0f} s is longer than the {MAX_SECONDS} s limit")
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # [N, C]
    except AudioError:
        raise
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError/TypeError for non-audio files
        raise AudioError(f"{path}: not a readable audio file ({str(e).strip().splitlines()[0]})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: the audio holds NaN or infinite samples")
    if not allow_silent and not np.abs(data).max() > 0:
        raise AudioError(f"{path}: the audio is silent (all samples are zero)")
    wav = torch.from_numpy(data.mean(axis=1))[None]  # [1, N]
    return resample(wav, rate, sample_rate)


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """The header of an audio file (rate, frames, channels); AudioError for missing, unreadable or empty files."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AudioError(f"{path}: not a readable audio file ({str(e).strip().splitlines()[0]})") from None
    if info.frames <= 0:
        raise AudioError(f"{path}: the file holds no samples")
    return info


def read_span(path: str | Path, start: int, frames: int) -> tuple[np.ndarray, int]:
    """Samples start..start+frames of `path` (native rate, mixed to mono) and that rate."""
    try:
        data, rate = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"{path}: not a readable audio file ({str(e).strip().splitlines()[0]})") from None
    return data.mean(axis=1), rate


def resample(wav: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    if from_rate == to_rate:
        return wav
    g = math.gcd(from_rate, to_rate)
    return torchaudio.functional.resample(wav, from_rate // g, to_rate // g)


def write_audio(path: str | Path, wav: torch.Tensor, sample_rate: int) -> None:
    """Write mono [1, N] or [N] float audio as 16-bit PCM (format from the suffix; wav by default)."""
    data = wav.detach().cpu().reshape(-1).clamp(-1, 1).numpy()
    fmt = None if Path(path).suffix else "WAV"
    sf.write(str(path), data, sample_rate, subtype="PCM_16" if Path(path).suffix.lower() in (".wav", "") else None,
             format=fmt)
