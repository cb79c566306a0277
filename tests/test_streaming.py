"""Streaming equals offline; the codec is causal (with every encoder and decoder)."""

from __future__ import annotations

import pytest
import torch

from sonorant.codec import Codec, CodecConfig, QuantizerConfig


@pytest.fixture(scope="module", params=[("seanet", "seanet", "predicted"), ("seanet", "istft", "predicted"),
                                        ("spectral", "istft", "predicted"), ("seanet", "istft", "locked")],
                ids=lambda p: "-".join(p))
def codec(request) -> Codec:
    # k-means init would leave the untrained codebooks at zero; random codebooks make codes matter
    torch.manual_seed(0)
    encoder, decoder, phase = request.param
    return Codec(CodecConfig(encoder=encoder, decoder=decoder, decoder_phase=phase,
                             quantizer=QuantizerConfig(kmeans_init=False))).eval()


def _stream_encode(codec: Codec, wav: torch.Tensor, chunk: int) -> torch.Tensor:
    parts = []
    with codec.streaming(wav.shape[0]):
        for start in range(0, wav.shape[-1], chunk):
            parts.append(codec.encode_step(wav[..., start:start + chunk]))
        parts.append(codec.encode_flush())
    return torch.cat(parts, dim=-1)


@pytest.mark.parametrize("frames", [1, 3, 7])
def test_streaming_encode_equals_offline(codec, frames):
    # float64 so that no code sits on a rounding tie between two neighbours
    model = Codec(codec.config).double().eval()
    model.load_state_dict(codec.state_dict())
    wav = 0.1 * torch.randn(2, 1, 320 * 23 + 57, dtype=torch.float64)
    with torch.no_grad():
        offline = model.encode(wav)
        streamed = _stream_encode(model, wav, frames * 320)
    assert streamed.shape == offline.shape == (2, 8, 24)
    assert torch.equal(streamed, offline)


def test_streaming_encode_accepts_any_chunk_size(codec):
    model = Codec(codec.config).double().eval()
    model.load_state_dict(codec.state_dict())
    wav = 0.1 * torch.randn(1, 1, 320 * 9 + 5, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(_stream_encode(model, wav, 77), model.encode(wav))


@pytest.mark.parametrize("frames", [1, 3, 7])
def test_streaming_decode_equals_offline(codec, frames):
    codes = torch.randint(0, 1024, (2, 8, 25))
    with torch.no_grad():
        offline = codec.decode(codes)
        with codec.streaming(2):
            parts = [codec.decode_step(codes[..., i:i + frames]) for i in range(0, 25, frames)]
            flushed = codec.decode_flush()
    # the first call lags by the decoder's lag (one hop for the istft decoder), which the flush returns
    assert parts[0].shape[-1] == frames * 320 - codec.config.decoder_lag
    assert flushed.shape == (2, 1, codec.config.decoder_lag)
    streamed = torch.cat([*parts, flushed], -1)
    assert streamed.shape == offline.shape == (2, 1, 25 * 320)
    assert (streamed - offline).abs().max() < 1e-4


def test_decoder_is_causal(codec):
    codes = torch.randint(0, 1024, (1, 8, 20))
    changed = codes.clone()
    changed[..., 12:] = torch.randint(0, 1024, (1, 8, 8))
    with torch.no_grad():
        a, b = codec.decode(codes), codec.decode(changed)
    # frame 12's window begins one decoder lag before its own hop (the istft decoder's overlap-add)
    known = 12 * 320 - codec.config.decoder_lag
    assert torch.equal(a[..., :known], b[..., :known])
    assert not torch.allclose(a[..., known:known + 32], b[..., known:known + 32])


def test_encoder_is_causal(codec):
    wav = 0.1 * torch.randn(1, 1, 320 * 20)
    changed = wav.clone()
    changed[..., 320 * 10:] = 0.1 * torch.randn(1, 1, 320 * 10)
    with torch.no_grad():
        a, b = codec.encoder(wav), codec.encoder(changed)
    assert torch.equal(a[..., :10], b[..., :10])
    assert not torch.allclose(a[..., 10:], b[..., 10:])


def test_streaming_needs_context(codec):
    with pytest.raises(RuntimeError, match="streaming"):
        codec.decode_step(torch.zeros(1, 8, 1, dtype=torch.long))


def test_streaming_state_is_reset_between_contexts(codec):
    codes = torch.randint(0, 1024, (1, 8, 4))
    with torch.no_grad():
        with codec.streaming(1):
            first = codec.decode_step(codes)
        with codec.streaming(1):
            again = codec.decode_step(codes)
    assert torch.equal(first, again)
