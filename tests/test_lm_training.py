"""`sonorant train lm` on token shards: runs, resumes exactly, exports a loadable model + vocabulary."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch

from sonorant.data.encode import encode_manifest
from sonorant.data.manifest import Item, write_manifest
from sonorant.lm import HierarchicalLM
from sonorant.training.checkpoint import load_checkpoint
from sonorant.training.run import export_run, train_lm
from sonorant.tts.frontend import TextFrontend

from .conftest import tone
from .test_cli_codec import run


@pytest.fixture
def shards(tmp_path, tiny_codec):
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
    return out


def test_train_resume_export(shards, tmp_path):
    run_dir = tmp_path / "run"
    result = train_lm("lm-tiny", shards, run_dir, max_steps=2, device="cpu", quiet=True)
    assert result.step == 2
    resumed = train_lm("lm-tiny", shards, run_dir, resume=True, device="cpu", quiet=True)
    assert resumed.resumed and resumed.step == 4
    train_lm("lm-tiny", shards, tmp_path / "straight", device="cpu", quiet=True)
    a = load_checkpoint(run_dir / "checkpoint.pt")["modules"]["lm"]
    b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")["modules"]["lm"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # a resumed run is the uninterrupted run

    valid = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    valid = [m for m in valid if m["split"] == "valid"]
    assert valid and {"loss", "loss_mismatched_text", "text_gap", "accuracy/0"} <= set(valid[-1])

    model_dir = export_run(run_dir, tmp_path / "lm")
    frontend = TextFrontend.load(model_dir / "frontend.json")
    lm = HierarchicalLM.from_pretrained(model_dir)
    assert lm.config.text_vocab_size >= frontend.size
    assert len(frontend.encode("Number seven!")) > 5
    assert {p.name for p in model_dir.iterdir()} == {"config.json", "model.safetensors", "frontend.json"}


def test_cli_train_lm_refuses_shards_of_other_sizes(shards, tmp_path):
    assert run(["train", "lm", "--config", "lm-small", "--shards", shards, "--out", tmp_path / "r",
                "--max-steps", "1", "-q"]) == 2
    assert run(["train", "lm", "--config", "lm-tiny", "--shards", tmp_path, "--out", tmp_path / "r2", "-q"]) == 2
