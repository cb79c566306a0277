"""File-level encode / decode / round trip, in bounded memory (chunked streaming)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch

from ..core.atomic import atomic_path
from ..core.audio import read_blocks
from ..core.errors import AudioError, SonorantError
from ..core.output import check_output_path
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
        if not math.isfinite(bitrate_kbps) or bitrate_kbps <= 0:
            raise SonorantError(f"--bitrate must be a positive number of kbps, got {bitrate_kbps:g}")
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
def encode_audio(codec: Codec, wav: torch.Tensor | Iterable[torch.Tensor], num_codebooks: int,
                 chunk_frames: int = CHUNK_FRAMES) -> torch.Tensor:
    """Mono audio [1, N] (or successive blocks [1, n] of it) -> codes [K, ceil(N / hop)], streamed chunk by
    chunk (same codes as offline)."""
    device = next(codec.parameters()).device
    chunk = chunk_frames * codec.hop_length
    parts = []
    state = codec.new_stream(1)  # this call's own: concurrent calls never share it
    for block in [wav] if isinstance(wav, torch.Tensor) else wav:
        for start in range(0, block.shape[-1], chunk):
            codes = codec.encode_step(block[None, :, start:start + chunk].to(device), num_codebooks, state)
            parts.append(codes[0].cpu().int())  # int32: a long file's codes stay small
    parts.append(codec.encode_flush(num_codebooks, state)[0].cpu().int())
    return torch.cat(parts, dim=-1).long()


class _Counted:
    """Blocks passed through, their samples counted (the original length a token file records)."""

    def __init__(self, blocks: Iterable[torch.Tensor]) -> None:
        self.blocks, self.samples = blocks, 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        for block in self.blocks:
            self.samples += block.shape[-1]
            yield block


@torch.inference_mode()
def decode_audio(codec: Codec, codes: torch.Tensor, chunk_frames: int = CHUNK_FRAMES) -> Iterator[torch.Tensor]:
    """Codes [K, T] -> successive audio chunks (streaming decode; T * hop samples in all)."""
    device = next(codec.parameters()).device
    state = codec.new_stream(1)
    for start in range(0, codes.shape[-1], chunk_frames):
        yield codec.decode_step(codes[None, :, start:start + chunk_frames].to(device), state)[0, 0].cpu()
    yield codec.decode_flush(state)[0, 0].cpu()


def roundtrip_audio(codec: Codec, wav: torch.Tensor, num_codebooks: int) -> torch.Tensor:
    """Mono audio [N] at the codec's rate -> the same audio through `num_codebooks` codebooks of the codec [N]."""
    codes = encode_audio(codec, wav[None], num_codebooks)
    return torch.cat(list(decode_audio(codec, codes)))[: wav.shape[-1]]


def encode_file(codec: Codec, src: str | Path, dst: str | Path, num_codebooks: int) -> TokenFile:
    """Encode an audio file to a token file, read and resampled block by block (memory does not grow with
    the file's length)."""
    check_output_path(dst, ".stok")
    blocks = _Counted(read_blocks(src, codec.sample_rate))
    codes = encode_audio(codec, blocks, num_codebooks)
    tokens = TokenFile(codes=codes, fingerprint=codec.fingerprint, sample_rate=codec.sample_rate,
                       hop_length=codec.hop_length, bits=codec.config.bits_per_code, num_samples=blocks.samples)
    tokens.write(dst)
    return tokens


def decode_tokens(codec: Codec, tokens: TokenFile, dst: str | Path) -> DecodeResult:
    tokens.check_codec(codec.fingerprint, codec.sample_rate, codec.hop_length, codec.num_codebooks,
                       codec.codebook_size)
    return write_chunks(decode_audio(codec, tokens.codes), dst, codec.sample_rate, tokens.num_samples)


def decode_file(codec: Codec, src: str | Path, dst: str | Path) -> DecodeResult:
    return decode_tokens(codec, TokenFile.read(src), dst)


def roundtrip_file(codec: Codec, src: str | Path, dst: str | Path, num_codebooks: int) -> DecodeResult:
    check_output_path(dst)
    blocks = _Counted(read_blocks(src, codec.sample_rate))
    codes = encode_audio(codec, blocks, num_codebooks)
    return write_chunks(decode_audio(codec, codes), dst, codec.sample_rate, blocks.samples)


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
