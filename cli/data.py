"""`sonorant data build`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(help="Build and prepare training data.", no_args_is_help=True)


@app.command()
def build(
    out: Path = typer.Option(..., "--out", help="Folder for the corpus and its manifest.jsonl."),
    hours: float = typer.Option(1.0, "--hours", min=0.001, max=1000, help="Hours of speech to synthesise."),
    seed: int = typer.Option(0, "--seed"),
    workers: int = typer.Option(2, "--workers", min=1),
) -> None:
    """Synthesise a multi-voice English speech corpus with the TTS engines installed (espeak-ng, flite)."""
    from rich.progress import Progress

    from ..data.build import build_speech_corpus

    with Progress() as progress:
        bar = progress.add_task("synthesising", total=1.0)
        result = build_speech_corpus(out, hours, seed, workers, progress=lambda f: progress.update(bar, completed=f))
    print(f"{result.manifest}: {result.items} items, {result.hours:.2f} h, {result.voices} voices; "
          f"sentences from {result.sentence_source}", file=sys.stderr)
