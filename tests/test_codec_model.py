"""Codec behaviour: batching with lengths, exact lengths, release save/load."""

from __future__ import annotations

import json

import pytest
import torch

from sonorant.codec import Codec
from sonorant.core import ModelError

from .conftest import tone


def test_batched_encode_matches_single_items(tiny_codec):
    codec = tiny_codec.double()
    a = torch.from_numpy(tone(0.5, seed=1)).double()[None, None]
    b = torch.from_numpy(tone(0.33, seed=2)).double()[None, None]
    padded = torch.zeros(2, 1, a.shape[-1], dtype=torch.float64)
    padded[0, :, :] = a
    padded[1, :, : b.shape[-1]] = b
    batch = codec.encode_batch(padded, torch.tensor([a.shape[-1], b.shape[-1]]))
    assert batch.lengths.tolist() == [25, 17]
    with torch.no_grad():
        assert torch.equal(batch.codes[0], codec.encode(a)[0])
        assert torch.equal(batch.codes[1, :, :17], codec.encode(b)[0])
        audio = codec.decode_batch(batch.codes, batch.lengths, torch.tensor([a.shape[-1], b.shape[-1]]))
    assert audio.lengths.tolist() == [a.shape[-1], b.shape[-1]]
    assert torch.all(audio.audio[1, :, b.shape[-1]:] == 0)  # no padding leaks into the output
    assert torch.allclose(audio.audio[1, :, : b.shape[-1]], codec.decode(codec.encode(b))[0, :, : b.shape[-1]])


def test_forward_keeps_length_and_reports_usage(tiny_codec):
    wav = torch.from_numpy(tone(0.41))[None, None]
    out = tiny_codec(wav)
    assert out.audio.shape == wav.shape
    assert out.codes.shape == (1, 4, 21)
    assert 1 <= float(out.usage.perplexity[0]) <= 64
    assert out.losses["commitment"].ndim == 0


def test_save_and_load_preserve_outputs(tiny_codec, tmp_path):
    tiny_codec.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["format_version"] == 1
    loaded = Codec.from_pretrained(tmp_path / "m")
    wav = torch.from_numpy(tone(0.3))[None, None]
    with torch.no_grad():
        assert torch.equal(loaded.encode(wav), tiny_codec.encode(wav))
    assert loaded.fingerprint == tiny_codec.fingerprint


def test_fingerprint_depends_on_weights(tiny_codec, tiny_config):
    other = Codec(tiny_config)
    assert other.fingerprint != tiny_codec.fingerprint


def test_bad_model_directories(tmp_path, tiny_codec):
    with pytest.raises(ModelError, match="not a codec model directory"):
        Codec.from_pretrained(tmp_path)
    tiny_codec.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "kind": "lm"}))
    with pytest.raises(ModelError, match="'lm' model"):
        Codec.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "latent_dim": 8}))
    with pytest.raises(ModelError, match="do not match"):
        Codec.from_pretrained(tmp_path / "m")


def test_codes_out_of_range_rejected(tiny_codec):
    with pytest.raises(ValueError):
        tiny_codec.decode(torch.full((1, 2, 3), 64))
    with pytest.raises(ValueError):
        tiny_codec.decode(torch.zeros(1, 5, 3, dtype=torch.long))
