"""`sonorant bench codec-train`: codec quality under an equal training budget, ours against the peers'
architectures.

Each architecture is built with random weights and trained by our trainer, on the same data, with the same
losses, batch, optimiser and quantizer dropout, for the same wall-clock minutes, then scored on the same
held-out audio at the same bitrate (equal codebooks, codebook size and frame rate). Each runs in its own
process (DAC in its own virtual environment, see `peers.py`); a peer that cannot run gets a row saying why.
PESQ and STOI are speech metrics and are reported for speech only; music and sound get mel / STFT
distances and SI-SDR.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.audio import load_audio
from ..core.errors import SonorantError
from ..data.manifest import read_manifest
from . import metrics as M
from .codec_eval import GROUPS, item_group, stable_order

ARCHITECTURES = {
    "sonorant": "Sonorant (causal SEANet/Snake, EMA RVQ)",
    "encodec": "EnCodec architecture (causal SEANet + LSTM, EMA RVQ)",
    "dac": "DAC 16 kHz architecture (Snake, factorised RVQ)",
}
RESULT_FILE = "result.json"


@dataclass
class GroupScore:
    group: str
    items: int
    pesq_wb: float | None  # speech only
    stoi: float | None  # speech only
    mel_distance: float
    stft_distance: float
    si_sdr: float


@dataclass
class TrainedCodec:
    """One architecture after the budget: how far training got and how well it codes held-out audio."""

    key: str
    name: str
    params_millions: float | None = None
    kbps: float | None = None
    steps: int | None = None
    train_minutes: float | None = None
    seconds_per_step: float | None = None
    untrained_mel_distance: float | None = None  # held-out mel distance before training (all groups)
    scores: list[GroupScore] = field(default_factory=list)
    error: str | None = None  # why this row has no figures

    def score(self, group: str) -> GroupScore | None:
        return next((s for s in self.scores if s.group == group), None)


@dataclass(frozen=True)
class RaceSettings:
    data: str  # training audio: manifest or folder (train split)
    manifest: str  # held-out audio: this manifest's test split
    budget_minutes: float
    recipe: str = "codec-16k"  # losses, batch and optimiser for every architecture; its quantizer sets the bitrate
    tiny: bool = False  # small versions of every architecture (tests, quick checks)
    max_items: int = 12  # per group
    max_seconds: float = 8.0  # per held-out clip
    device: str = "cpu"
    threads: int = 0
    # Also stop after this many steps (0 = the budget alone). The learning-rate schedule stays the budget's, so
    # a run stopped here equals, step for step, a row of the same recipe that the budget stopped there.
    max_steps: int = 0


def architecture_name(key: str, settings: RaceSettings) -> str:
    """A row's name; ours says which encoder and decoder the recipe gives it."""
    from ..training.recipe import load_recipe_dict

    model = load_recipe_dict("codec-tiny" if settings.tiny else settings.recipe).get("model", {})
    if key != "sonorant" or model.get("decoder") != "istft":
        return ARCHITECTURES[key]
    encoder = "spectral encoder" if model.get("encoder") == "spectral" else "causal SEANet encoder"
    return f"Sonorant ({encoder}, EMA RVQ, istft decoder)"


def build_codec(key: str, settings: RaceSettings):
    """The architecture `key` at the recipe's bitrate: (codec module or None for ours, recipe)."""
    from ..training.recipe import codec_recipe, load_recipe_dict
    from .peer_codecs import DacStyle, EncodecStyle, PeerConfig

    overrides = {"max_minutes": settings.budget_minutes, "max_steps": 10**7, "log_every": 10,
                 "valid_every": 10**9, "checkpoint_every": 10**9, "sample_every": 10**9}
    if settings.threads:
        overrides["threads"] = settings.threads
    data = load_recipe_dict("codec-tiny" if settings.tiny else settings.recipe)
    # Every architecture trains on the same losses: ours without the phonetic head (it needs alignments).
    data.setdefault("model", {})["phonetic_classes"] = 0
    recipe = codec_recipe(data, overrides)
    q = recipe.model.quantizer
    size = dict(width=4, decoder_width=32, lstm=0) if settings.tiny else {}
    config = PeerConfig(sample_rate=recipe.model.sample_rate, num_codebooks=q.num_codebooks,
                        codebook_size=q.codebook_size, **size)
    if key == "sonorant":
        return None, recipe
    if key == "encodec":
        return EncodecStyle(config), recipe
    if key == "dac":
        return DacStyle(config), recipe
    raise SonorantError(f"unknown architecture {key!r}: choose from {', '.join(ARCHITECTURES)}")


def held_out_clips(manifest: str | Path, max_items: int, max_seconds: float,
             sample_rate: int) -> dict[str, list[torch.Tensor]]:
    """Up to `max_items` test-split clips per group, each cut to `max_seconds`, as [N] tensors."""
    manifest = Path(manifest)
    groups: dict[str, list[torch.Tensor]] = {}
    for item in stable_order(read_manifest(manifest)):
        if item.split != "test":
            continue
        group = item_group(item)
        if len(groups.setdefault(group, [])) < max_items:
            wav = load_audio(manifest.parent / item.path, sample_rate)[0]
            groups[group].append(wav[: int(max_seconds * sample_rate)])
    if not groups:
        raise SonorantError(f"{manifest}: no items in split 'test' to score the codecs on")
    return {g: groups[g] for g in GROUPS if g in groups}


@torch.no_grad()
def score(codec, clips: dict[str, list[torch.Tensor]], device: torch.device) -> list[GroupScore]:
    """Offline round trip of every clip at full bitrate; per group means."""
    codec.eval()
    sr = codec.sample_rate
    out = []
    for group, wavs in clips.items():
        rows = []
        for ref in wavs:
            est = codec.decode(codec.encode(ref[None, None].to(device)))[0, 0, : ref.shape[-1]].cpu()
            r, e = ref.numpy().astype(np.float64), est.numpy().astype(np.float64)
            speech = group.startswith("speech")
            rows.append((M.pesq_wb(r, e, sr) if speech else None, M.stoi(r, e, sr) if speech else None,
                         M.mel_distance(r.astype(np.float32), e.astype(np.float32), sr),
                         M.stft_distance(r.astype(np.float32), e.astype(np.float32)), M.si_sdr(r, e)))
        cols = list(zip(*rows, strict=True))
        mean = [float(np.mean(c)) if c[0] is not None else None for c in cols]
        out.append(GroupScore(group, len(rows), *mean))
    return out


def train_and_score(key: str, settings: RaceSettings, out_dir: Path) -> TrainedCodec:
    """Train architecture `key` for the budget in this process, then score it on the held-out clips."""
    from ..training.codec_task import CodecTask
    from ..training.distributed import joined
    from ..training.trainer import Trainer, set_threads

    row = TrainedCodec(key, architecture_name(key, settings))
    module, recipe = build_codec(key, settings)
    set_threads(recipe.train.threads)
    torch.manual_seed(recipe.train.seed)
    generator = torch.Generator().manual_seed(recipe.train.seed)
    with joined(settings.device) as world:
        task = CodecTask(recipe, settings.data, world, generator, codec=module)
        codec = task.codec
        clips = held_out_clips(settings.manifest, settings.max_items, settings.max_seconds, codec.sample_rate)
        before = score(codec, clips, world.device)
        row.untrained_mel_distance = float(np.mean([s.mel_distance for s in before]))
        row.params_millions = sum(p.numel() for p in codec.parameters()) / 1e6
        bitrate = codec.bitrate() if hasattr(codec, "bitrate") else codec.config.bitrate()
        row.kbps = bitrate / 1000
        trainer = Trainer(task, recipe.train, out_dir, world, generator, sample_rate=codec.sample_rate, quiet=True)
        start = time.perf_counter()
        trainer.fit(settings.max_steps or None)
        row.train_minutes = (time.perf_counter() - start) / 60
        row.steps = trainer.step
        row.seconds_per_step = 60 * row.train_minutes / max(trainer.step, 1)
        row.scores = score(codec, clips, world.device)
    return row


def bench_codec_train(settings: RaceSettings, out_dir: str | Path, keys: list[str] | None = None,
                      venv: Path | None = None, progress=None) -> list[TrainedCodec]:
    """Every architecture in turn, each in a fresh process (DAC's in its environment)."""
    out_dir = Path(out_dir)
    rows = []
    for key in keys or list(ARCHITECTURES):
        if key not in ARCHITECTURES:
            raise SonorantError(f"unknown architecture {key!r}: choose from {', '.join(ARCHITECTURES)}")
        if progress:
            progress(f"training {architecture_name(key, settings)} for {settings.budget_minutes:g} min")
        rows.append(_run_one(key, settings, out_dir / key, venv))
        if progress:
            progress(_summary(rows[-1]))
    return rows


def _run_one(key: str, settings: RaceSettings, run_dir: Path, venv: Path | None) -> TrainedCodec:
    from .peers import PeerUnavailable, dac_python

    python = Path(sys.executable)
    if key == "dac" and not _importable("dac"):
        if venv is None:
            return TrainedCodec(key, ARCHITECTURES[key], error="descript-audio-codec is not installed")
        try:
            python = dac_python(venv)
        except PeerUnavailable as e:
            return TrainedCodec(key, ARCHITECTURES[key], error=str(e))
    if key == "encodec" and not _importable("encodec"):
        return TrainedCodec(key, ARCHITECTURES[key], error="encodec is not installed (pip install encodec)")
    run_dir.mkdir(parents=True, exist_ok=True)
    result = run_dir / RESULT_FILE
    result.unlink(missing_ok=True)
    timeout = 60 * settings.budget_minutes + 3600
    try:
        done = subprocess.run([str(python), "-m", __name__, key, json.dumps(asdict(settings)), str(run_dir)],
                              timeout=timeout, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return TrainedCodec(key, ARCHITECTURES[key], error=f"did not finish within {timeout / 60:.0f} min")
    if not result.is_file():
        lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
        return TrainedCodec(key, ARCHITECTURES[key], error=f"it failed: {lines[-1]}")
    return _from_json(json.loads(result.read_text()))


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _from_json(data: dict) -> TrainedCodec:
    scores = [GroupScore(**s) for s in data.pop("scores")]
    return TrainedCodec(**data, scores=scores)


def _summary(row: TrainedCodec) -> str:
    if row.error:
        return f"  {row.name}: not run: {row.error}"
    speech = row.score("speech")
    shown = f", speech PESQ-WB {speech.pesq_wb:.2f}" if speech else ""
    return (f"  {row.name}: {row.steps} steps ({row.seconds_per_step:.2f} s/step), held-out mel distance "
            f"{row.untrained_mel_distance:.3f} -> {np.mean([s.mel_distance for s in row.scores]):.3f}{shown}")


def race_table(rows: list[TrainedCodec], budget_minutes: float) -> str:
    """Markdown: training reached, then one table per held-out group."""
    lines = [f"| architecture | params (M) | kbps | steps in {budget_minutes:g} min | s / step | "
             "held-out mel distance, untrained -> trained |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r.error:
            lines.append(f"| {r.name} | not run: {r.error} | | | | |")
            continue
        after = np.mean([s.mel_distance for s in r.scores])
        lines.append(f"| {r.name} | {r.params_millions:.1f} | {r.kbps:g} | {r.steps} | {r.seconds_per_step:.2f} | "
                     f"{r.untrained_mel_distance:.3f} -> {after:.3f} |")
    groups = [g for g in GROUPS if any(r.score(g) for r in rows)]
    for group in groups:
        speech = group.startswith("speech")
        n = max(r.score(group).items for r in rows if r.score(group))
        lines += ["", f"Held-out {group.replace('-', ' ')} ({n} clips):", "",
                  "| architecture | " + ("PESQ-WB | STOI | " if speech else "")
                  + "mel dist | STFT dist | SI-SDR (dB) |",
                  "|---|" + ("---|---|" if speech else "") + "---|---|---|"]
        for r in rows:
            s = r.score(group)
            if s is None:
                continue
            head = f"| {r.name} | " + (f"{s.pesq_wb:.2f} | {s.stoi:.3f} | " if speech else "")
            lines.append(head + f"{s.mel_distance:.3f} | {s.stft_distance:.3f} | {s.si_sdr:.1f} |")
    return "\n".join(lines)


def race_figure(rows: list[TrainedCodec], path: Path) -> Path | None:
    from .plots import metric_bars, plots_available

    ran = [r for r in rows if not r.error]
    if not plots_available() or not ran:
        return None
    speech = [r.score("speech") for r in ran]
    metrics = {"speech PESQ-WB": [s.pesq_wb if s else None for s in speech],
               "speech STOI": [s.stoi if s else None for s in speech],
               "mel distance (all)": [float(np.mean([s.mel_distance for s in r.scores])) for r in ran],
               "SI-SDR dB (all)": [float(np.mean([s.si_sdr for s in r.scores])) for r in ran]}
    return metric_bars([r.key for r in ran], metrics, path)



if __name__ == "__main__":  # one architecture, in its own process (DAC's in its environment)
    _, arch, settings_json, run = sys.argv
    trained = train_and_score(arch, RaceSettings(**json.loads(settings_json)), Path(run))
    target = Path(run) / RESULT_FILE
    target.with_suffix(".tmp").write_text(json.dumps(asdict(trained), indent=2) + "\n")
    target.with_suffix(".tmp").replace(target)
