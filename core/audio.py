"""Reading audio files for the codec: any format soundfile reads, any rate, any channel count.

Files are read, downmixed and resampled a block at a time (`read_blocks`), so memory does not grow with
the length of the input; `load_audio` joins the blocks when the whole signal is needed. torch and
torchaudio load on first use, so the CLI can check a file without them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from .errors import AudioError

if TYPE_CHECKING:
    import torch

MAX_SECONDS = 4 * 3600  # longer input is almost certainly a mistake (or a malicious header)
MAX_PEAK = 1000.0  # 60 dB above full scale: beyond that the samples are not audio (or the file is damaged)
BLOCK_SECONDS = 10.0  # read and resampled at a time
# torchaudio's sinc resampler builds a kernel of about (rate_in / gcd) x (rate_out / gcd) taps: past this many,
# an odd rate pair (44,101 Hz -> 16 kHz) would need gigabytes, and soxr's streaming resampler is used instead.
MAX_SINC_KERNEL = 1 << 22
LOWPASS_FILTER_WIDTH, ROLLOFF = 6, 0.99  # torchaudio's defaults, stated so the block context below follows them


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """The header of an audio file (rate, frames, channels); AudioError for missing, unreadable, empty or
    overlong files."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError/TypeError for non-audio files
        raise AudioError(f"{path}: not a readable audio file ({_first_line(e)})") from None
    if info.frames <= 0:
        raise AudioError(f"{path}: the file holds no samples")
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(f"{path}: not a readable audio file (sample rate {info.samplerate}, "
                         f"{info.channels} channels)")
    if info.frames > MAX_SECONDS * info.samplerate:
        raise AudioError(f"{path}: {info.frames / info.samplerate:.0f} s is longer than the {MAX_SECONDS} s limit")
    return info


def read_blocks(path: str | Path, sample_rate: int, allow_silent: bool = False, start_seconds: float = 0.0,
                max_seconds: float | None = None, block_seconds: float = BLOCK_SECONDS) -> Iterator[torch.Tensor]:
    """Mono float32 blocks [1, n] of `path` at `sample_rate`: read, downmixed and resampled one block at a time
    (from `start_seconds`, at most `max_seconds` of the file). Joined, they equal the whole file resampled at once
    (torchaudio's sinc resampler), ceil(N * rate / rate_in) samples. Raises AudioError, with one readable line,
    for missing, unreadable, empty, silent, non-finite or absurdly loud audio (the error may come after some
    blocks: write outputs atomically)."""
    import torch

    path = Path(path)
    info = audio_info(path)
    resampler = StreamResampler(info.samplerate, sample_rate)
    peak = 0.0
    blocksize = max(1, int(block_seconds * info.samplerate))
    left = math.inf if max_seconds is None else int(max_seconds * info.samplerate)
    try:
        with sf.SoundFile(str(path)) as f:
            if start_seconds > 0:
                f.seek(min(int(start_seconds * info.samplerate), info.frames - 1))
            while left > 0:
                data = f.read(int(min(blocksize, left)), dtype="float32", always_2d=True)  # [n, C]
                left -= data.shape[0]
                if data.shape[0] == 0:
                    break
                if not np.isfinite(data).all():
                    raise AudioError(f"{path}: the audio holds NaN or infinite samples")
                peak = max(peak, float(np.abs(data).max()))
                if peak > MAX_PEAK:
                    raise AudioError(f"{path}: samples reach {peak:.3g}; audio must lie within [-1, 1] "
                                     "(the file is damaged or not audio)")
                out = resampler.push(data.mean(axis=1))
                if out.size:
                    yield torch.from_numpy(out)[None]
    except AudioError:
        raise
    except Exception as e:  # a file damaged after its header
        raise AudioError(f"{path}: not a readable audio file ({_first_line(e)})") from None
    if resampler.pushed == 0:
        raise AudioError(f"{path}: the file holds no samples")
    if not allow_silent and not peak > 0:
        raise AudioError(f"{path}: the audio is silent (all samples are zero)")
    out = resampler.flush()
    if out.size:
        yield torch.from_numpy(out)[None]


def load_audio(path: str | Path, sample_rate: int, allow_silent: bool = False, start_seconds: float = 0.0,
               max_seconds: float | None = None) -> torch.Tensor:
    """Read `path` (from `start_seconds`, at most `max_seconds` of it) as mono float32 [1, N] at `sample_rate`
    (downmixed, resampled with torchaudio).

    Raises AudioError, with one readable line, for missing, unreadable, empty, silent or
    non-finite audio.
    """
    import torch

    return torch.cat(list(read_blocks(path, sample_rate, allow_silent, start_seconds, max_seconds)), dim=-1)


def read_span(path: str | Path, start: int, frames: int) -> tuple[np.ndarray, int]:
    """Samples start..start+frames of `path` (native rate, mixed to mono) and that rate."""
    try:
        data, rate = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"{path}: not a readable audio file ({_first_line(e)})") from None
    return data.mean(axis=1), rate


def resample(wav: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    if from_rate == to_rate:
        return wav
    import torch

    rows = []
    for row in wav.reshape(-1, wav.shape[-1]).cpu().float().numpy():
        resampler = StreamResampler(from_rate, to_rate)
        rows.append(np.concatenate([resampler.push(row), resampler.flush()]))
    return torch.from_numpy(np.stack(rows)).reshape(*wav.shape[:-1], -1).to(wav.device)


class StreamResampler:
    """Resampling of a mono stream pushed in blocks of any size, with memory bounded by the block size.

    Rate pairs with a small reduced ratio use torchaudio's sinc resampler on each block with enough of its
    neighbours around it that every output sample is computed from the same input samples as when the whole
    signal is resampled at once; the others use soxr's streaming resampler. Either way the stream yields
    ceil(N * to_rate / from_rate) samples in all."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        g = math.gcd(int(from_rate), int(to_rate))
        self.from_rate, self.to_rate = int(from_rate), int(to_rate)
        self.orig, self.new = self.from_rate // g, self.to_rate // g
        self.pushed = self.emitted = 0
        self.soxr = self.sinc = None
        if self.orig != self.new and self.orig * self.new > MAX_SINC_KERNEL:
            import soxr

            self.soxr = soxr.ResampleStream(self.from_rate, self.to_rate, 1, dtype="float32", quality="HQ")
        elif self.orig != self.new:
            import torch
            import torchaudio

            # The kernel, made once, in float32 as torchaudio.functional.resample makes it for float32 audio.
            self.sinc = torchaudio.transforms.Resample(self.orig, self.new, lowpass_filter_width=LOWPASS_FILTER_WIDTH,
                                                       rolloff=ROLLOFF, dtype=torch.float32)
        width = math.ceil(LOWPASS_FILTER_WIDTH * self.orig / (ROLLOFF * min(self.orig, self.new)))
        self.context = (math.ceil((width + 2) / self.orig) + 1) * self.orig  # whole groups of `orig` inputs
        self.buffer = np.zeros(self.context, dtype=np.float32)  # zeros before the start, as torchaudio pads

    def push(self, samples: np.ndarray) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        self.pushed += samples.shape[0]
        if self.orig == self.new:
            return self._emit(samples)
        if self.soxr is not None:
            return self._emit(self.soxr.resample_chunk(samples, last=False))
        self.buffer = np.concatenate([self.buffer, samples])
        groups = (self.buffer.shape[0] - 2 * self.context) // self.orig  # groups with their right context read
        return self._groups(groups) if groups > 0 else np.zeros(0, dtype=np.float32)

    def flush(self) -> np.ndarray:
        """The rest of the stream (call once, after the last push)."""
        if self.orig == self.new:
            return np.zeros(0, dtype=np.float32)
        if self.soxr is not None:
            out = self._emit(self.soxr.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        else:
            pending = self.buffer.shape[0] - self.context
            self.buffer = np.concatenate([self.buffer, np.zeros(self.context, dtype=np.float32)])
            out = self._groups(-(-pending // self.orig)) if pending > 0 else np.zeros(0, dtype=np.float32)
        missing = self.total - self.emitted
        return np.concatenate([out, np.zeros(missing, dtype=np.float32)]) if missing > 0 else out

    @property
    def total(self) -> int:
        return -(-self.pushed * self.new // self.orig)

    def _groups(self, groups: int) -> np.ndarray:
        """Output groups (each `new` samples from `orig` inputs) 0..groups-1 of the buffer after its context."""
        import torch

        c = self.context // self.orig
        end = (c + groups) * self.orig + self.context
        with torch.inference_mode():
            out = self.sinc(torch.from_numpy(self.buffer[:end])[None])[0, c * self.new: (c + groups) * self.new].numpy()
        self.buffer = self.buffer[groups * self.orig:]
        return self._emit(out)

    def _emit(self, out: np.ndarray) -> np.ndarray:
        out = out[: max(0, self.total - self.emitted)]  # never past ceil(N * new / orig)
        self.emitted += out.shape[0]
        return out


def write_audio(path: str | Path, wav: torch.Tensor, sample_rate: int) -> None:
    """Write mono [1, N] or [N] float audio as 16-bit PCM (format from the suffix; wav by default)."""
    data = wav.detach().cpu().reshape(-1).clamp(-1, 1).numpy()
    fmt = None if Path(path).suffix else "WAV"
    sf.write(str(path), data, sample_rate, subtype="PCM_16" if Path(path).suffix.lower() in (".wav", "") else None,
             format=fmt)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
