"""`sonorant train codec|lm|aligner|summary|export`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(help="Train models and export them to the release format.", no_args_is_help=True)


@app.command()
def codec(
    config: str = typer.Option("codec-16k", "--config", help="Shipped recipe name (configs/) or a YAML file."),
    data: Path = typer.Option(..., "--data", help="Manifest (.jsonl) or folder of audio files."),
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoints, tensorboard, metrics)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly where it stopped."),
    init_from: Path = typer.Option(None, "--init-from", help="Start from released codec weights (fine-tuning)."),
    alignments: Path = typer.Option(None, "--alignments",
                                    help="Token shards with phoneme durations (`data align`): labels of the phonetic "
                                         "head of a recipe with model.phonetic_classes."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many steps (default: the recipe's)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto (under torchrun: one GPU per process)."),
    compile: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the training forward."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train the codec (multi-scale mel + commitment, optional adversarial losses)."""
    from ..training.distributed import finish_worker
    from ..training.run import train_codec

    result = train_codec(config, data, out, resume=resume, init_from=init_from, max_steps=max_steps,
                         device=device, quiet=quiet, compile=compile, alignments=alignments)
    if not quiet and result.rank == 0:
        summary = " ".join(f"{k}={v:.4g}" for k, v in result.metrics.items())
        print(f"{out}: step {result.step}{' (resumed)' if result.resumed else ''} {summary}", file=sys.stderr)
    finish_worker()


@app.command()
def lm(
    config: str = typer.Option("lm-small", "--config", help="Shipped LM recipe name (configs/) or a YAML file."),
    shards: Path = typer.Option(..., "--shards", help="Token shard directory (sonorant data encode)."),
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoints, tensorboard, metrics)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly where it stopped."),
    init_from: Path = typer.Option(None, "--init-from", help="Start from released LM weights (fine-tuning)."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many steps (default: the recipe's)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto (under torchrun: one GPU per process)."),
    strategy: str = typer.Option(None, "--strategy", help="Under torchrun: ddp or fsdp (default: the recipe's)."),
    compile: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the training forward."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train the hierarchical codec LM on token shards (text phonemised once and cached in the run)."""
    from ..training.distributed import finish_worker
    from ..training.run import train_lm

    result = train_lm(config, shards, out, resume=resume, init_from=init_from, max_steps=max_steps,
                      device=device, quiet=quiet, strategy=strategy, compile=compile)
    if not quiet and result.rank == 0:
        shown = " ".join(f"{k}={v:.4g}" for k, v in list(result.metrics.items())[:6])
        print(f"{out}: step {result.step}{' (resumed)' if result.resumed else ''} {shown}", file=sys.stderr)
    finish_worker()


@app.command()
def aligner(
    config: str = typer.Option("aligner", "--config", help="Shipped aligner recipe name (configs/) or a YAML file."),
    data: Path = typer.Option(..., "--data", help="Manifest (.jsonl) or corpus folder with speech and text."),
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoints, tensorboard, metrics)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly where it stopped."),
    init_from: Path = typer.Option(None, "--init-from", help="Start from released aligner weights."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many steps (default: the recipe's); "
                                  "0 with --init-from: no training, only the calibration of released weights."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train the forced aligner (forward-sum attention + monotonic alignment search) on speech with text."""
    from ..training.distributed import finish_worker
    from ..training.run import train_aligner

    result = train_aligner(config, data, out, resume=resume, init_from=init_from, max_steps=max_steps,
                           device=device, quiet=quiet)
    if not quiet and result.rank == 0:
        shown = " ".join(f"{k}={v:.4g}" for k, v in list(result.metrics.items())[:4])
        print(f"{out}: step {result.step}{' (resumed)' if result.resumed else ''} {shown}", file=sys.stderr)
    finish_worker()


@app.command()
def summary(run_dir: Path = typer.Argument(..., help="A training run directory (or its metrics.jsonl).")) -> None:
    """Print the run's training curve: losses and validation mel distance per codebook count."""
    from ..training.summary import curve_table, read_metrics

    print(curve_table(read_metrics(run_dir)))


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A training run directory."),
    out: Path = typer.Option(..., "-o", "--out", help="Release directory to write."),
    half: bool = typer.Option(False, "--half", help="Store an LM's weights, or a codec's decoder weights, as "
                                                    "float16 (half the size; a codec's encoder and quantizer "
                                                    "stay exact)."),
) -> None:
    """Write a run's latest weights as a release (model.safetensors + config.json)."""
    from ..training.run import export_run

    print(f"exported {export_run(run_dir, out, half)}", file=sys.stderr)


@app.command()
def bundle(
    lm: Path = typer.Option(None, "--lm", help="LM release directory (train export of an LM run; default: keep)."),
    out: Path = typer.Option(..., "-o", "--out", help="Bundle directory to write or update (e.g. pretrained)."),
    codec: Path = typer.Option(None, "--codec", help="Codec release directory (default: keep the bundle's)."),
    voice: Path = typer.Option(None, "--voice", help="Default voice prompt (3-10 s of audio)."),
    voice_text: str = typer.Option(None, "--voice-text", help="Its transcript."),
    aligner: Path = typer.Option(None, "--aligner", help="Aligner release directory (default: keep the bundle's)."),
    generator: Path = typer.Option(None, "--generator", help="Caption-conditioned LM release for `sonorant generate` "
                                                             "(default: keep the bundle's)."),
) -> None:
    """Assemble a model bundle: tts/ (LM + phonemes), codec/, aligner/, generate/ (caption LM),
    voices/default.wav (+ .txt)."""
    from ..tts.bundle import assemble_bundle

    voices = {"default": (voice, voice_text)} if voice else None
    print(f"bundle written to {assemble_bundle(out, lm, codec, voices, aligner, generator)}", file=sys.stderr)
