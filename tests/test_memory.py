"""Bounded memory: audio is read and resampled in blocks, so encoding an hour costs what encoding a minute does."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from sonorant.codec import Codec
from sonorant.codec.tokenfile import TokenFile
from sonorant.core.audio import StreamResampler, load_audio, read_blocks

# The CLI in a child process, which reports its own peak resident memory when it is done.
PEAK_RSS = """
import resource, sys
from sonorant.cli.app import main
try:
    main(sys.argv[1:])
finally:
    print(f"peak_rss_kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
"""


@pytest.mark.parametrize("rates", [(44100, 16000), (48000, 16000), (22050, 24000), (8000, 16000), (44101, 16000)])
def test_block_resampling_equals_resampling_at_once(rates):
    from_rate, to_rate = rates
    x = np.random.default_rng(0).standard_normal(from_rate * 2 + 37).astype(np.float32) * 0.1
    expected_length = -(-len(x) * to_rate // from_rate)
    outputs = {}
    for block in (4001, len(x)):
        resampler = StreamResampler(from_rate, to_rate)
        parts = [resampler.push(x[i:i + block]) for i in range(0, len(x), block)] + [resampler.flush()]
        outputs[block] = np.concatenate(parts)
        assert len(outputs[block]) == expected_length
    if from_rate != 44101:  # an odd rate pair goes through soxr's streaming resampler instead
        whole = torchaudio.functional.resample(torch.from_numpy(x)[None], from_rate, to_rate)[0].numpy()
        np.testing.assert_allclose(outputs[4001], whole, atol=1e-5)
    np.testing.assert_allclose(outputs[4001], outputs[len(x)], atol=1e-5)


def test_load_audio_reads_in_blocks(tmp_path):
    path = tmp_path / "a.flac"
    stereo = np.random.default_rng(1).standard_normal((44100 * 3, 2)).astype(np.float32) * 0.1
    sf.write(path, stereo, 44100)
    data, _ = sf.read(path, dtype="float32")
    whole = torchaudio.functional.resample(torch.from_numpy(data.mean(axis=1))[None], 44100, 16000)
    blocks = list(read_blocks(path, 16000, block_seconds=0.7))
    assert len(blocks) > 3
    torch.testing.assert_close(torch.cat(blocks, dim=-1), whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(load_audio(path, 16000), whole, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_an_hour_encodes_in_the_memory_of_a_minute(tmp_path, tiny_config):
    # A codec as cheap as it gets (1 kHz, 4 channels): the test measures the reading and resampling around it.
    config = dataclasses.replace(tiny_config, sample_rate=1000, strides=(2, 2, 5), activation="elu")
    torch.manual_seed(0)
    model = Codec(config).save_pretrained(tmp_path / "codec")
    second = (0.1 * np.random.default_rng(0).standard_normal(2000)).astype(np.float32)
    peaks = {}
    for minutes in (1, 60):
        path = tmp_path / f"{minutes}.wav"
        with sf.SoundFile(path, "w", samplerate=2000, channels=1, subtype="PCM_16") as f:
            for _ in range(minutes):
                f.write(np.tile(second, 60))
        out = tmp_path / f"{minutes}.stok"
        done = subprocess.run([sys.executable, "-c", PEAK_RSS, "codec", "encode", str(path), "-o", str(out),
                               "--model", str(model), "--quiet"], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})  # a model this small gains nothing
        assert done.returncode == 0, done.stderr
        peaks[minutes] = int(done.stderr.rsplit("peak_rss_kib=", 1)[1])
        assert TokenFile.read(out).frames == minutes * 60 * 50
    print(f"peak RSS: 1 min {peaks[1] / 1024:.0f} MiB, 60 min {peaks[60] / 1024:.0f} MiB")
    assert peaks[60] <= 1.2 * peaks[1], peaks
