"""A small, fully offline LM study: espeak-ng words through the shipped codec, trained for a few minutes.

Used by the conditioning test (does the LM read its text?) and by `sonorant bench lm-local-context`
(which way of feeding the global state to the local transformer learns better).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import yaml

from ..codec.pretrained import load_codec
from ..data.alignments import align_manifest
from ..data.encode import encode_manifest
from ..data.engines import Voice, synthesize
from ..data.manifest import Item, write_manifest

WORDS = ("apple", "banana", "cherry", "dolphin", "elephant", "forest", "guitar", "harbor", "island", "jungle",
         "kettle", "lemon")
VOICES = ("en-us+m1", "en-us+f2", "en-gb+m3", "en-gb+f4", "en-us+m7", "en-029+f1", "en-gb-scotland+m1",
          "en-us-nyc+f2")
# Held-out utterances: every voice says every word at a speed and pitch never seen in training.
TRAIN_STYLES = tuple((speed, pitch) for speed in (155, 175) for pitch in (44, 47, 53, 56))
VALID_STYLE = (165, 50)

RECIPE = {
    "kind": "lm",
    "model": {"num_codebooks": 2, "codebook_size": 1024, "dim": 96, "num_layers": 2, "num_heads": 2,
              "local_dim": 48, "local_layers": 1, "local_heads": 2, "codebook_weights": [1.0, 1.0],
              "dropout": 0.2, "condition_dropout": 0.0},
    "train": {"max_steps": 400, "batch_size": 16, "lr": 0.002, "betas": [0.9, 0.95], "weight_decay": 0.1,
              "warmup_steps": 20, "log_every": 50, "valid_every": 100, "checkpoint_every": 400,
              "threads": 0},
}


def build_word_shards(workdir: str | Path) -> Path:
    """Synthesise the words corpus (768 train, 96 held-out clips) and encode 2 codebooks of it."""
    workdir = Path(workdir)
    root = workdir / "corpus"
    (root / "wav").mkdir(parents=True, exist_ok=True)
    items = []
    for voice in VOICES:
        for word in WORDS:
            for speed, pitch in TRAIN_STYLES + (VALID_STYLE,):
                name = f"{voice.replace('+', '_')}_{word}_{speed}_{pitch}"
                path = root / "wav" / f"{name}.wav"
                synthesize(Voice("espeak-ng", voice), word, path, rate_wpm=speed, pitch=pitch)
                info = sf.info(str(path))
                items.append(Item(id=name, path=f"wav/{name}.wav", duration=info.duration,
                                  sample_rate=info.samplerate, domain="speech", text=word, language="en-us",
                                  speaker=voice, split="valid" if (speed, pitch) == VALID_STYLE else "train"))
    write_manifest(root / "manifest.jsonl", items)
    encode_manifest(root / "manifest.jsonl", load_codec(), workdir / "shards", num_codebooks=2)
    align_manifest(root / "manifest.jsonl", None, workdir / "shards")  # the shipped aligner
    return workdir / "shards"


@dataclass
class StudyRun:
    name: str
    seconds: float
    valid: list[dict]  # the validation rows of metrics.jsonl


def train_study(shards: Path, run_dir: Path, name: str = "default", max_steps: int | None = None,
                **model_overrides) -> StudyRun:
    """Train the study's LM (`max_steps`: fewer than the recipe's 400, for a quick check)."""
    from ..training.run import train_lm

    recipe = copy.deepcopy(RECIPE)
    recipe["model"].update(model_overrides)
    if max_steps is not None:
        recipe["train"]["max_steps"] = max_steps
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "study.yaml"
    path.write_text(yaml.safe_dump(recipe))
    start = time.perf_counter()
    train_lm(str(path), shards, run_dir / "run", device="cpu", quiet=True)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (run_dir / "run" / "metrics.jsonl").read_text().splitlines()]
    return StudyRun(name, seconds, [r for r in rows if r["split"] == "valid"])
