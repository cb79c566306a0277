"""`sonorant bench codec`: encode / decode speed (x real time) and peak memory on this machine."""

from __future__ import annotations

import platform
import resource
import time
from dataclasses import dataclass

import torch

from ..codec import Codec
from ..codec.files import decode_audio, encode_audio


@dataclass
class CodecBench:
    device: str
    threads: int
    seconds: float  # audio duration
    encode_seconds: float  # best wall time over the repeats
    decode_seconds: float
    encode_x_realtime: float
    decode_x_realtime: float
    roundtrip_x_realtime: float
    # Baseline in the same run: one offline encode + decode call over the whole file (unbounded memory).
    offline_x_realtime: float
    streaming_vs_offline: float  # chunked round trip speed / offline round trip speed
    algorithmic_latency_ms: float
    frame_step_ms: float  # compute time of encode_step + decode_step for one 20 ms frame, streaming
    peak_rss_mb: float
    machine: str


def bench_codec(codec: Codec, seconds: float = 60.0, repeats: int = 3, seed: int = 0) -> CodecBench:
    """Time chunked streaming encode and decode of `seconds` of audio (best of `repeats`)."""
    device = next(codec.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    # Speed does not depend on content; a noise-modulated tone keeps every code path busy.
    n = int(seconds * codec.sample_rate)
    t = torch.arange(n) / codec.sample_rate
    wav = (0.3 * torch.sin(2 * torch.pi * 220 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 3 * t))
           + 0.05 * torch.randn(n, generator=generator))[None]
    encode_times, decode_times = [], []
    codes = encode_audio(codec, wav[:, : codec.sample_rate], codec.num_codebooks)  # warm-up
    for _ in range(repeats):
        start = time.perf_counter()
        codes = encode_audio(codec, wav, codec.num_codebooks)
        _sync(device)
        encode_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _chunk in decode_audio(codec, codes):
            pass
        _sync(device)
        decode_times.append(time.perf_counter() - start)
    offline_times = []
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            codec.decode(codec.encode(wav[None].to(device)))
            _sync(device)
            offline_times.append(time.perf_counter() - start)
    enc, dec, offline = min(encode_times), min(decode_times), min(offline_times)
    frame_ms = _frame_step_ms(codec, wav[:, : 100 * codec.hop_length].to(device))
    return CodecBench(
        device=str(device), threads=torch.get_num_threads(), seconds=seconds, encode_seconds=enc, decode_seconds=dec,
        encode_x_realtime=seconds / enc, decode_x_realtime=seconds / dec, roundtrip_x_realtime=seconds / (enc + dec),
        offline_x_realtime=seconds / offline, streaming_vs_offline=offline / (enc + dec),
        algorithmic_latency_ms=codec.config.algorithmic_latency_ms, frame_step_ms=frame_ms,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        machine=f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads".strip(),
    )


@torch.inference_mode()
def _frame_step_ms(codec: Codec, wav: torch.Tensor) -> float:
    """Mean wall time of one frame through encode_step + decode_step (the live streaming cost)."""
    hop = codec.hop_length
    with codec.streaming(1):
        codec.decode_step(codec.encode_step(wav[None, :, :hop]))  # warm-up
        start = time.perf_counter()
        frames = wav.shape[-1] // hop - 1
        for i in range(1, frames + 1):
            codec.decode_step(codec.encode_step(wav[None, :, i * hop:(i + 1) * hop]))
        _sync(wav.device)
    return 1000 * (time.perf_counter() - start) / frames


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
