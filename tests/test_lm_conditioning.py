"""The LM reads its text: trained briefly on real speech tokens, its held-out loss is clearly lower with
the right text than with another item's text (an LM that ignores the text scores both the same)."""

from __future__ import annotations

import json
import shutil

import pytest
import soundfile as sf
import yaml

from sonorant.codec.pretrained import load_codec
from sonorant.data.encode import encode_manifest
from sonorant.data.engines import Voice, synthesize
from sonorant.data.manifest import Item, write_manifest
from sonorant.training.run import train_lm

WORDS = ("apple", "banana", "cherry", "dolphin", "elephant", "forest", "guitar", "harbor", "island", "jungle",
         "kettle", "lemon")
TRAIN_VOICES = ("en-us+m1", "en-us+f2", "en-gb+m3", "en-gb+f4", "en-us+m7", "en-029+f1")
VALID_VOICES = ("en-gb-scotland+m1", "en-us-nyc+f2")

RECIPE = {
    "kind": "lm",
    "model": {"num_codebooks": 2, "codebook_size": 1024, "dim": 96, "num_layers": 2, "num_heads": 2,
              "local_dim": 48, "local_layers": 1, "local_heads": 2, "codebook_weights": [1.0, 1.0],
              "condition_dropout": 0.0},
    "train": {"max_steps": 300, "batch_size": 16, "lr": 0.003, "betas": [0.9, 0.95], "warmup_steps": 20,
              "log_every": 50, "valid_every": 100, "checkpoint_every": 300, "sample_every": 100000, "threads": 0},
}


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (installed by the test command)")
def test_held_out_loss_is_lower_with_the_right_text(tmp_path):
    root = tmp_path / "corpus"
    (root / "wav").mkdir(parents=True)
    items = []
    for voice in TRAIN_VOICES + VALID_VOICES:
        speeds = (150, 190) if voice in TRAIN_VOICES else (170,)
        for word in WORDS:
            for speed in speeds:
                name = f"{voice.replace('+', '_')}_{word}_{speed}"
                path = root / "wav" / f"{name}.wav"
                synthesize(Voice("espeak-ng", voice), word, path, rate_wpm=speed)
                info = sf.info(str(path))
                items.append(Item(id=name, path=f"wav/{name}.wav", duration=info.duration,
                                  sample_rate=info.samplerate, domain="speech", text=word, language="en-us",
                                  speaker=voice, split="train" if voice in TRAIN_VOICES else "valid"))
    write_manifest(root / "manifest.jsonl", items)
    encode_manifest(root / "manifest.jsonl", load_codec(), tmp_path / "shards", num_codebooks=2)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))

    train_lm(str(recipe), tmp_path / "shards", tmp_path / "run", device="cpu", quiet=True)
    valid = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    valid = [m for m in valid if m["split"] == "valid"]
    first, last = valid[0], valid[-1]
    assert last["loss"] < first["loss"]
    # Mismatched text costs clearly more than the right text, and more than it did early on.
    assert last["text_gap"] > 0.15, last
    assert last["text_gap"] > first["text_gap"]
