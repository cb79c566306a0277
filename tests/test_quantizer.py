"""The residual quantizer honours the requested number of codebooks in every mode."""

from __future__ import annotations

import pytest
import torch

from sonorant.codec import QuantizerConfig, codebook_usage
from sonorant.codec.quantizer import ResidualQuantizer


@pytest.fixture
def quantizer() -> ResidualQuantizer:
    torch.manual_seed(0)
    q = ResidualQuantizer(16, QuantizerConfig(num_codebooks=4, codebook_size=32, codebook_dim=4, kmeans_init=False))
    q.train()
    q(torch.randn(4, 16, 50))  # one training pass so EMA codebooks move away from their init
    return q


@pytest.mark.parametrize("training", [True, False])
def test_requested_codebooks_honoured(quantizer, training):
    quantizer.train(training)
    latent = torch.randn(2, 16, 10)
    for k in (1, 2, 4):
        out = quantizer(latent, num_codebooks=k)
        assert out.codes.shape == (2, k, 10)
        assert quantizer.encode(latent, k).shape == (2, k, 10)


@torch.no_grad()
def test_more_codebooks_reconstruct_better():
    # Without a projection the EMA codebooks alone fit the residuals (no gradient training needed).
    torch.manual_seed(0)
    quantizer = ResidualQuantizer(8, QuantizerConfig(num_codebooks=4, codebook_size=32, codebook_dim=8,
                                                     dropout_probability=0.0, rotation_trick=False))
    quantizer.train()
    for _ in range(20):
        quantizer(torch.randn(8, 8, 64))
    quantizer.eval()
    latent = torch.randn(8, 8, 40)
    errors = [float((quantizer(latent, k).quantized - latent).pow(2).mean()) for k in (1, 2, 3, 4)]
    assert errors == sorted(errors, reverse=True)


def test_decode_of_encode_matches_forward_in_eval(quantizer):
    quantizer.eval()
    latent = torch.randn(2, 16, 12)
    out = quantizer(latent, 3)
    assert torch.equal(quantizer.encode(latent, 3), out.codes)
    assert torch.allclose(quantizer.decode(out.codes), out.quantized, atol=1e-5)


def test_encode_never_updates_codebooks(quantizer):
    before = {k: v.clone() for k, v in quantizer.state_dict().items()}
    quantizer.train()
    quantizer.encode(torch.randn(2, 16, 30))
    assert quantizer.training
    assert all(torch.equal(before[k], v) for k, v in quantizer.state_dict().items())


def test_dropout_only_in_training(quantizer):
    latent = torch.randn(64, 16, 5)
    quantizer.eval()
    full = quantizer(latent).quantized
    assert torch.allclose(quantizer(latent).quantized, full)
    quantizer.train()
    torch.manual_seed(1)
    dropped = quantizer(latent).quantized.detach()
    # about half of the items keep fewer levels, so their output differs from the full sum
    differs = (dropped - full).abs().amax(dim=(1, 2)) > 1e-4
    assert 0 < int(differs.sum()) < 64


def test_out_of_range_codebooks_rejected(quantizer):
    with pytest.raises(ValueError):
        quantizer(torch.randn(1, 16, 4), num_codebooks=5)
    with pytest.raises(ValueError):
        quantizer.encode(torch.randn(1, 16, 4), 0)


def test_codebook_usage():
    codes = torch.tensor([[[0, 1, 2, 3], [5, 5, 5, 5]]])  # [1, 2, 4]
    usage = codebook_usage(codes, 8)
    assert torch.allclose(usage.perplexity, torch.tensor([4.0, 1.0]))
    assert torch.allclose(usage.used_fraction, torch.tensor([0.5, 0.125]))
