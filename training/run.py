"""Entry points behind `sonorant train`: train a codec, export a run to a release directory."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from ..align import Aligner
from ..codec import Codec
from ..core.errors import SonorantError
from ..lm import HierarchicalLM
from ..text.frontend import TextFrontend
from .checkpoint import LATEST, load_checkpoint
from .codec_task import CodecTask
from .distributed import World, joined
from .lm_task import CODEC_FILE, FRONTEND_FILE, LMTask
from .recipe import aligner_recipe, codec_recipe, lm_recipe, load_recipe_dict, recorded_recipe
from .trainer import Trainer, set_threads

RECIPE_FILE = "recipe.yaml"
# An aligner run: the alignment cost per frame over its training corpus and the word-time shifts.
CALIBRATION_FILE = "calibration.json"
# An exported aligner refuses transcripts whose cost per frame exceeds the corpus' 99.9th percentile plus
# this margin (nats per frame): see `sonorant eval align` for how often real clips trip it.
COST_MARGIN = 1.0


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    resumed: bool
    metrics: dict[str, float]
    rank: int = 0  # this process's rank under torchrun (only rank 0 reports)


def _run_recipe(config: str, out: Path, resume: bool, build):
    """The recipe of a run: a resumed run keeps its own recorded recipe; a new one must not overwrite a run."""
    recipe_path = out / RECIPE_FILE
    if resume and recipe_path.is_file():
        try:
            return build(read_recorded_recipe(out))
        except SonorantError:
            raise
        except Exception as e:  # yaml, unicode or dataclass errors of a file that is not a recipe we wrote
            raise SonorantError(f"{recipe_path}: not a recipe of a sonorant run ({type(e).__name__}: "
                                f"{(str(e).strip().splitlines() or [''])[0][:200]})") from None
    if (out / LATEST).exists() and not resume:
        raise SonorantError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    return build(load_recipe_dict(config))


def read_recorded_recipe(run_dir: Path) -> dict:
    """The recipe a run recorded, brought up to today's sections (`recipe.recorded_recipe`)."""
    return recorded_recipe(yaml.safe_load((run_dir / RECIPE_FILE).read_text(encoding="utf-8")))


def _fit(task, recipe, out: Path, world: World, generator: torch.Generator, resume: bool, max_steps: int | None,
         quiet: bool, sample_rate: int = 16000) -> TrainResult:
    # The models were initialised identically on every rank; from here each rank draws its own randomness
    # inside the models (dropout), while the data generator stays shared.
    torch.manual_seed(recipe.train.seed + 1_000_003 * world.rank)
    # The trainer reads a resumed checkpoint first: a run folder holding someone else's file is refused untouched.
    trainer = Trainer(task, recipe.train, out, world, generator, sample_rate=sample_rate, quiet=quiet, resume=resume)
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / RECIPE_FILE).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    metrics = trainer.fit(max_steps)
    return TrainResult(run_dir=out, step=trainer.step, resumed=trainer.resumed, metrics=metrics, rank=world.rank)


def _seeded(recipe) -> torch.Generator:
    set_threads(recipe.train.threads)
    torch.manual_seed(recipe.train.seed)
    return torch.Generator().manual_seed(recipe.train.seed)


def _overrides(strategy: str | None, compile: bool | None) -> dict:
    return {k: v for k, v in {"strategy": strategy, "compile": compile}.items() if v is not None}


def train_codec(config: str, data: str | Path, out: str | Path, resume: bool = False,
                init_from: str | Path | None = None, max_steps: int | None = None,
                device: str | None = None, quiet: bool = False, strategy: str | None = None,
                compile: bool | None = None, alignments: str | Path | None = None) -> TrainResult:
    """Train a codec in this process, or in each process of a torchrun job (then as one DDP run).
    `alignments`: token shards with phoneme durations (`data align`), for a codec with a phonetic head."""
    out = Path(out)
    with joined(device) as world:
        recipe = _run_recipe(config, out, resume, lambda d: codec_recipe(d, _overrides(strategy, compile)))
        generator = _seeded(recipe)
        task = CodecTask(recipe, data, world, generator, init_from=init_from, alignments=alignments, out=out)
        return _fit(task, recipe, out, world, generator, resume, max_steps, quiet, sample_rate=recipe.model.sample_rate)


def train_lm(config: str, shards: str | Path, out: str | Path, resume: bool = False,
             init_from: str | Path | None = None, max_steps: int | None = None,
             device: str | None = None, quiet: bool = False, strategy: str | None = None,
             compile: bool | None = None) -> TrainResult:
    """Train the LM in this process, or in each process of a torchrun job (DDP, or FSDP by recipe)."""
    out = Path(out)
    with joined(device) as world:
        recipe = _run_recipe(config, out, resume, lambda d: lm_recipe(d, _overrides(strategy, compile)))
        generator = _seeded(recipe)
        task = LMTask(recipe, shards, out, world, generator, init_from=init_from)
        # The text vocabulary comes from the data: the run's recipe records the model actually built.
        recipe = dataclasses.replace(recipe, model=task.config)
        return _fit(task, recipe, out, world, generator, resume, max_steps, quiet)


def train_aligner(config: str, data: str | Path, out: str | Path, resume: bool = False,
                  init_from: str | Path | None = None, max_steps: int | None = None,
                  device: str | None = None, quiet: bool = False) -> TrainResult:
    """Train the forced aligner on a manifest's speech with text; at the end, record the alignment cost of
    every training utterance (the exported aligner's mismatch threshold comes from it) and the median shift
    of its word times to the engines' on the validation clips."""
    from .aligner_task import AlignerTask

    out = Path(out)
    with joined(device) as world:
        recipe = _run_recipe(config, out, resume, aligner_recipe)
        generator = _seeded(recipe)
        task = AlignerTask(recipe, data, out, world, generator, init_from=init_from, quiet=quiet)
        result = _fit(task, recipe, out, world, generator, resume, max_steps, quiet,
                      sample_rate=recipe.model.sample_rate)
        if world.is_main:
            costs = np.array(task.corpus_costs())
            start_shift, end_shift = task.word_shifts()
            summary = {"items": len(costs), **{f"p{q:g}": float(np.percentile(costs, q))
                                                for q in (50, 90, 99, 99.5, 99.9, 100)},
                       "word_start_shift": start_shift, "word_end_shift": end_shift}
            (out / CALIBRATION_FILE).write_text(json.dumps(summary, indent=1) + "\n")
        return result


def export_run(run_dir: str | Path, out: str | Path, half: bool = False) -> Path:
    """Write the run's latest weights as a release directory (safetensors + config.json); `half` stores an
    LM's weights, or a codec's decoder weights, as float16 (half the size; computation stays float32)."""
    run_dir = Path(run_dir)
    if not (run_dir / RECIPE_FILE).is_file() or not (run_dir / LATEST).is_file():
        raise SonorantError(f"{run_dir} is not a training run (needs {RECIPE_FILE} and {LATEST})")
    data = read_recorded_recipe(run_dir)
    if data.get("kind") == "lm":
        lm = HierarchicalLM(lm_recipe(data).model)
        lm.load_state_dict(load_checkpoint(run_dir / LATEST)["modules"]["lm"])
        codec_file = run_dir / CODEC_FILE
        extra = {"codec": json.loads(codec_file.read_text())} if codec_file.is_file() else None
        directory = lm.save_pretrained(out, extra=extra, dtype=torch.float16 if half else None)
        TextFrontend.load(run_dir / FRONTEND_FILE).save(directory / FRONTEND_FILE)
        return directory
    if data.get("kind") == "aligner":
        recipe = aligner_recipe(data)
        path = run_dir / CALIBRATION_FILE
        calibration = json.loads(path.read_text()) if path.is_file() else {}
        max_cost = calibration["p99.9"] + COST_MARGIN if calibration else 0.0
        aligner = Aligner(dataclasses.replace(recipe.model, max_cost=round(max_cost, 4),
                                              word_start_shift=round(calibration.get("word_start_shift", 0.0), 4),
                                              word_end_shift=round(calibration.get("word_end_shift", 0.0), 4)))
        aligner.load_state_dict(load_checkpoint(run_dir / LATEST)["modules"]["aligner"])
        directory = aligner.save_pretrained(out)
        TextFrontend.load(run_dir / FRONTEND_FILE).save(directory / FRONTEND_FILE)
        return directory
    if data.get("kind") != "codec":
        raise SonorantError(f"{run_dir}: cannot export a {data.get('kind')!r} run")
    recipe = codec_recipe(data)
    codec = Codec(recipe.model)
    codec.load_state_dict(load_checkpoint(run_dir / LATEST)["modules"]["codec"])
    directory = codec.save_pretrained(out, half_decoder=half)
    if (run_dir / FRONTEND_FILE).is_file():  # the phonetic head's classes
        TextFrontend.load(run_dir / FRONTEND_FILE).save(directory / FRONTEND_FILE)
    return directory
