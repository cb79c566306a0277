"""Shared fixtures: tiny models and small audio made on the fly (no network, no large files)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
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
# librosa's numba functions compile into an on-disk cache on first use: in a fresh environment two workers
# would write the same cache files at once (a worker died in numba there), so each compiles into its own.
os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="sonorant-numba-"))
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


def run(args: list) -> int:
    """`sonorant ARGS` in this process; its exit code (output is left to capsys)."""
    from sonorant.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """`sonorant ARGS` in this process, its exit code and output (`Result`), run in tmp_path with voices saved
    under tmp_path/home (test_cli_tts's subprocess test covers the real entry point)."""
    monkeypatch.setenv("SONORANT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)

    def call(args: list, _tmp: Path | None = None) -> Result:
        from sonorant.cli.app import main

        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        out = capsys.readouterr()
        return Result(exit_info.value.code, out.out, out.err)
    return call


# The texts of the tiny bundle's vocabulary (`make_bundle`).
SENTENCES = ["The quick brown fox jumps over the lazy dog.", "How much is it? Twelve dollars and fifty cents!",
             "She sells sea shells by the sea shore, doesn't she?", "Zebras vexed the jury; quiz them."]


def make_bundle(root: Path, codec_fingerprint: str | None = None) -> Path:
    """A tiny bundle: codec/ (the shipped one), tts/ (a tiny random LM + frontend.json), aligner/ (the shipped
    one), voices/default.wav + .txt."""
    import shutil

    from sonorant.lm import HierarchicalLM, LMConfig
    from sonorant.text.frontend import TextFrontend, phonemize

    shutil.copytree(REPO / "pretrained" / "codec", root / "codec")
    frontend = TextFrontend.build(phonemize(SENTENCES), ["en-us"])
    torch.manual_seed(0)
    lm = HierarchicalLM(LMConfig(num_codebooks=4, codebook_size=1024, text_vocab_size=frontend.size, dim=32,
                                 num_layers=2, num_heads=2, local_dim=16, local_layers=1, local_heads=2,
                                 codebook_weights=(1.0, 1.0, 1.0, 1.0)))
    if codec_fingerprint is None:
        from sonorant.codec.pretrained import load_codec
        codec_fingerprint = load_codec(root / "codec").fingerprint
    lm.save_pretrained(root / "tts", extra={"codec": {"fingerprint": codec_fingerprint}})
    frontend.save(root / "tts" / "frontend.json")
    (root / "voices").mkdir()
    shutil.copy(EXAMPLE_WAV, root / "voices" / "default.wav")
    shutil.copy(EXAMPLE_WAV.with_suffix(".txt"), root / "voices" / "default.txt")
    shutil.copytree(REPO / "pretrained" / "aligner", root / "aligner")
    return root


@pytest.fixture
def shards(tmp_path, tiny_codec):
    """Token shards with durations of ten short tones, each with a text (two speakers, train and valid)."""
    from sonorant.data.alignments import align_manifest
    from sonorant.data.encode import encode_manifest

    root = tmp_path / "corpus"
    (root / "wav").mkdir(parents=True)
    items = []
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    for i, word in enumerate(words):
        sf.write(root / "wav" / f"{i}.wav", tone(0.3 + 0.05 * i, 16000, seed=i), 16000)
        items.append(Item(id=f"u{i}", path=f"wav/{i}.wav", duration=0.3 + 0.05 * i, sample_rate=16000,
                          domain="speech", split="valid" if i >= 8 else "train", text=f"Number {word}!",
                          language="en-us", speaker=f"s{i % 2}"))
    write_manifest(root / "manifest.jsonl", items)
    out = tmp_path / "shards"
    encode_manifest(root / "manifest.jsonl", tiny_codec, out)
    align_manifest(root / "manifest.jsonl", None, out, check_cost=False)  # tones: no cost check
    return out
