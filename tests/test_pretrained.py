"""The shipped codec: loads without code execution and reconstructs held-out speech recognisably."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sonorant.codec.files import decode_audio, encode_audio
from sonorant.codec.pretrained import codec_dir, load_codec
from sonorant.core.audio import load_audio
from sonorant.evaluation import metrics as M

from .conftest import EXAMPLE_WAV, run


@pytest.fixture(scope="module")
def shipped():
    return load_codec()


@pytest.fixture(scope="module")
def scores(shipped):
    wav = load_audio(EXAMPLE_WAV, shipped.sample_rate)  # a voice the codec never saw in training
    ref = wav[0].double().numpy()
    out = {}
    for k in (1, 2, 8):
        est = torch.cat(list(decode_audio(shipped, encode_audio(shipped, wav, k))))[: wav.shape[-1]]
        est = est.double().numpy()
        out[k] = {"pesq": M.pesq_wb(ref, est, 16000), "stoi": M.stoi(ref, est, 16000),
                  "mel": M.mel_distance(ref.astype(np.float32), est.astype(np.float32), 16000)}
    return out


def test_shipped_release_is_safetensors_and_json(shipped):
    directory = codec_dir()
    # frontend.json: the phoneme classes of the first codebook's phonetic head
    assert sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")) == \
        ["config.json", "frontend.json", "model.safetensors"]
    assert json.loads((directory / "config.json").read_text())["kind"] == "codec"
    assert sum(p.stat().st_size for p in directory.iterdir()) < 14 * 2**20  # the istft decoder in float16
    assert (shipped.sample_rate, shipped.hop_length, shipped.num_codebooks, shipped.codebook_size) == \
        (16000, 320, 8, 1024)


@pytest.mark.slow
def test_held_out_speech_is_recognisable(scores):
    # Measured on this clip with the shipped codec: STOI 0.798, PESQ-WB 1.09 at 8 codebooks (the CPU
    # recipe has no adversarial loss, so the phase is free and PESQ stays low; intelligibility does not).
    assert scores[8]["stoi"] > 0.75
    assert scores[8]["pesq"] > 1.05


def test_more_codebooks_sound_better(scores):
    # Measured: STOI 0.680 / 0.739 / 0.798 and mel distance 0.383 / 0.351 / 0.334 at 1 / 2 / 8 codebooks.
    assert scores[8]["stoi"] > scores[2]["stoi"] + 0.02 > scores[1]["stoi"] + 0.04
    assert scores[8]["mel"] < scores[2]["mel"] < scores[1]["mel"]
    assert scores[8]["pesq"] > scores[1]["pesq"]


def test_main_job_round_trip(tmp_path):
    out = tmp_path / "roundtrip.wav"
    assert run(["codec", "roundtrip", EXAMPLE_WAV, "-o", out]) == 0
    assert load_audio(out, 16000).shape == load_audio(EXAMPLE_WAV, 16000).shape
