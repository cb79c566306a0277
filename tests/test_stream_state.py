"""Streaming state belongs to the call: interleaved and concurrent streams equal sequential ones."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from sonorant.tts import Synthesizer

from .conftest import make_bundle


def test_codec_streams_with_their_own_state_do_not_mix(tiny_codec):
    torch.manual_seed(1)
    k, card = tiny_codec.num_codebooks, tiny_codec.codebook_size
    a, b = torch.randint(0, card, (1, k, 12)), torch.randint(0, card, (1, k, 12))
    wav = torch.randn(1, 1, 4000) * 0.1
    with torch.no_grad():
        offline_a, offline_b = tiny_codec.decode(a), tiny_codec.decode(b)
        offline_codes = tiny_codec.encode(wav)
        sa, sb = tiny_codec.new_stream(1), tiny_codec.new_stream(1)
        parts_a, parts_b = [], []
        for i in range(0, 12, 3):  # interleaved, with an offline encode in between
            parts_a.append(tiny_codec.decode_step(a[..., i:i + 3], sa))
            assert torch.equal(tiny_codec.encode(wav), offline_codes)  # offline stays offline
            parts_b.append(tiny_codec.decode_step(b[..., i:i + 3], sb))
    torch.testing.assert_close(torch.cat(parts_a, -1), offline_a, atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.cat(parts_b, -1), offline_b, atol=1e-4, rtol=0)
    assert not tiny_codec.is_streaming
    with pytest.raises(RuntimeError, match="streaming"):
        tiny_codec.decode_step(a[..., :1])


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Synthesizer:
    return Synthesizer.from_pretrained(make_bundle(tmp_path_factory.mktemp("state-bundle")))


JOBS = [("The quick brown fox.", 1), ("Zebras vexed the jury.", 2), ("How much is it?", 3)]


def _samples(synth: Synthesizer, text: str, seed: int) -> torch.Tensor:
    return torch.cat([c.samples for c in synth.stream(text, seed=seed, max_seconds=0.3)])


def test_interleaved_and_threaded_streams_equal_sequential_ones(synth):
    sequential = [_samples(synth, text, seed) for text, seed in JOBS]
    assert not torch.equal(sequential[0][:640], sequential[1][:640])
    # Round robin in one thread: each stream advances one chunk at a time, an offline encode in between.
    noise = torch.randn(1, 1, 1600) * 0.1
    streams = [synth.stream(text, seed=seed, max_seconds=0.3) for text, seed in JOBS]
    parts: list[list[torch.Tensor]] = [[] for _ in JOBS]
    live = set(range(len(JOBS)))
    while live:
        for i in sorted(live):
            chunk = next(streams[i], None)
            if chunk is None:
                live.discard(i)
                continue
            parts[i].append(chunk.samples)
            with torch.no_grad():
                synth.codec.encode(noise)  # an offline call between chunks runs outside every stream
    for got, want in zip(parts, sequential, strict=True):
        assert torch.equal(torch.cat(got), want)
    # Threads: the same results as one after the other.
    with ThreadPoolExecutor(len(JOBS)) as pool:
        threaded = list(pool.map(lambda job: _samples(synth, *job), JOBS))
    for got, want in zip(threaded, sequential, strict=True):
        assert torch.equal(got, want)
