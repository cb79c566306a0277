"""Shared fixtures: tiny models and small audio made on the fly (no network, no large files)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sonorant.codec import Codec
from sonorant.data.manifest import Item, write_manifest
from sonorant.training.recipe import codec_recipe, load_recipe_dict

REPO = Path(__file__).resolve().parent.parent

# Under pytest-xdist (`-n auto`), the workers share the cores: one thread each (and for the commands they
# start), so no worker's OpenMP threads wait on another's.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = max(1, (os.cpu_count() or 1) // _WORKERS)
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)
    torch.set_num_threads(_THREADS)
# Saved voices go to a folder of this test process, never to the user's (and never to another worker's).
os.environ.setdefault("SONORANT_HOME", tempfile.mkdtemp(prefix="sonorant-tests-"))
EXAMPLE_WAV = REPO / "pretrained" / "examples" / "speech.wav"


def tone(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A speech-like test signal: a gliding harmonic tone with amplitude modulation and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 120 + 60 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    wav = sum(np.sin(h * phase) / h for h in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.2 * wav + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_config():
    return codec_recipe(load_recipe_dict("codec-tiny")).model


@pytest.fixture
def tiny_codec(tiny_config) -> Codec:
    torch.manual_seed(0)
    return Codec(tiny_config).eval()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small manifest-backed corpus of test tones (train and valid splits)."""
    root = tmp_path / "corpus"
    (root / "wav").mkdir(parents=True)
    items = []
    for i in range(6):
        path = root / "wav" / f"{i}.wav"
        sf.write(path, tone(1.5, 22050, seed=i), 22050)
        items.append(Item(id=str(i), path=f"wav/{i}.wav", duration=1.5, sample_rate=22050, domain="speech",
                          split="valid" if i == 5 else "train", speaker=f"s{i % 2}"))
    write_manifest(root / "manifest.jsonl", items)
    return root
