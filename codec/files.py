"""File-level encode / decode / round trip, in bounded memory (chunked streaming)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch

from .atomic import atomic_path
from .audio import load_audio
from .errors import AudioError, SonorantError
from .model import Codec
from .tokenfile import TokenFile

CHUNK_FRAMES = 250  # 5 s at 50 Hz: activations stay bounded whatever the file length


@dataclass
class DecodeResult:
    path: Path
    samples: int
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate


def resolve_codebooks(codec: Codec, codebooks: int | None = None, bitrate_kbps: float | None = None) -> int:
    """The number of codebooks asked for by `--codebooks` or `--bitrate` (all of them by default)."""
    if codebooks is not None and bitrate_kbps is not None:
        raise SonorantError("give --codebooks or --bitrate, not both")
    if bitrate_kbps is not None:
        per_codebook = codec.config.bitrate(1) / 1000
        k = round(bitrate_kbps / per_codebook)
        if abs(k * per_codebook - bitrate_kbps) > 1e-6 or not 1 <= k <= codec.num_codebooks:
            choices = ", ".join(f"{i * per_codebook:g}" for i in range(1, codec.num_codebooks + 1))
            raise SonorantError(f"--bitrate {bitrate_kbps:g} kbps is not available; choose one of {choices}")
        return k
    k = codec.num_codebooks if codebooks is None else codebooks
    if not 1 <= k <= codec.num_codebooks:
        raise SonorantError(f"--codebooks must be between 1 and {codec.num_codebooks}, got {k}")
    return k


@torch.inference_mode()
def encode_audio(codec: Codec, wav: torch.Tensor, num_codebooks: int, chunk_frames: int = CHUNK_FRAMES) -> torch.Tensor:
    """Mono audio [1, N] -> codes [K, ceil(N / hop)], streamed chunk by chunk (same codes as offline)."""
    device = next(codec.parameters()).device
    chunk = chunk_frames * codec.hop_length
    parts = []
    state = codec.new_stream(1)  # this call's own: concurrent calls never share it
    for start in range(0, wav.shape[-1], chunk):
        parts.append(codec.encode_step(wav[None, :, start:start + chunk].to(device), num_codebooks, state))
    parts.append(codec.encode_flush(num_codebooks, state))
    return torch.cat(parts, dim=-1)[0].cpu()


@torch.inference_mode()
def decode_audio(codec: Codec, codes: torch.Tensor, chunk_frames: int = CHUNK_FRAMES) -> Iterator[torch.Tensor]:
    """Codes [K, T] -> successive audio chunks [chunk_frames * hop] (streaming decode)."""
    device = next(codec.parameters()).device
    state = codec.new_stream(1)
    for start in range(0, codes.shape[-1], chunk_frames):
        yield codec.decode_step(codes[None, :, start:start + chunk_frames].to(device), state)[0, 0].cpu()


def encode_file(codec: Codec, src: str | Path, dst: str | Path, num_codebooks: int) -> TokenFile:
    wav = load_audio(src, codec.sample_rate)
    codes = encode_audio(codec, wav, num_codebooks)
    tokens = TokenFile(codes=codes, fingerprint=codec.fingerprint, sample_rate=codec.sample_rate,
                       hop_length=codec.hop_length, bits=codec.config.bits_per_code, num_samples=wav.shape[-1])
    tokens.write(dst)
    return tokens


def decode_tokens(codec: Codec, tokens: TokenFile, dst: str | Path) -> DecodeResult:
    tokens.check_codec(codec.fingerprint, codec.sample_rate, codec.hop_length, codec.num_codebooks)
    return write_chunks(decode_audio(codec, tokens.codes), dst, codec.sample_rate, tokens.num_samples)


def decode_file(codec: Codec, src: str | Path, dst: str | Path) -> DecodeResult:
    return decode_tokens(codec, TokenFile.read(src), dst)


def roundtrip_file(codec: Codec, src: str | Path, dst: str | Path, num_codebooks: int) -> DecodeResult:
    wav = load_audio(src, codec.sample_rate)
    codes = encode_audio(codec, wav, num_codebooks)
    return write_chunks(decode_audio(codec, codes), dst, codec.sample_rate, wav.shape[-1])


def check_output_path(path: str | Path) -> Path:
    """Fail before any work when the output's format or folder is unusable."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix.upper() not in sf.available_formats():
        raise SonorantError(f"{path}: unknown audio format {path.suffix!r} (use .wav, .flac or .ogg)")
    if not path.parent.is_dir():
        raise SonorantError(f"{path.parent}: no such folder")
    return path


def write_chunks(chunks: Iterator[torch.Tensor], dst: str | Path, sample_rate: int, num_samples: int) -> DecodeResult:
    """Write audio chunks to `dst` (at most `num_samples`), atomically: temp file, then rename."""
    dst = check_output_path(dst)
    written = 0
    with atomic_path(dst, suffix=dst.suffix) as tmp:
        subtype = "PCM_16" if dst.suffix.lower() in (".wav", ".flac") else None
        with sf.SoundFile(tmp, "w", samplerate=sample_rate, channels=1, subtype=subtype,
                          format=dst.suffix.lstrip(".").upper()) as f:
            for chunk in chunks:
                chunk = chunk[: num_samples - written]
                if not torch.isfinite(chunk).all():
                    raise AudioError("the decoder produced non-finite samples")
                f.write(chunk.clamp(-1, 1).numpy())
                written += chunk.shape[-1]
    return DecodeResult(path=dst, samples=written, sample_rate=sample_rate)
