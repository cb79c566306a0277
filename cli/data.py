"""`sonorant data build` and `sonorant data import`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..data.importers import CorpusKind, Domain, import_corpus

app = typer.Typer(help="Build and prepare training data.", no_args_is_help=True)


@app.command()
def build(
    out: Path = typer.Option(..., "--out", help="Folder for the corpus and its manifest.jsonl."),
    hours: float = typer.Option(1.0, "--hours", min=0.001, max=1000, help="Hours of speech to synthesise."),
    seed: int = typer.Option(0, "--seed"),
    workers: int = typer.Option(2, "--workers", min=1),
    pseudo_speakers: int = typer.Option(0, "--pseudo-speakers", min=0, max=4,
                                        help="Formant/pitch/tempo-shifted speakers per base voice (sox)."),
    language: list[str] = typer.Option(["en"], "--language", help="en, de or es (repeat; hours are shared)."),
) -> None:
    """Synthesise a multi-voice English speech corpus with the TTS engines installed (espeak-ng, flite)."""
    from rich.progress import Progress

    from ..data.build import build_speech_corpus

    with Progress() as progress:
        bar = progress.add_task("synthesising", total=1.0)
        result = build_speech_corpus(out, hours, seed, workers, progress=lambda f: progress.update(bar, completed=f),
                                     pseudo_speakers=pseudo_speakers, languages=tuple(language))
    print(f"{result.manifest}: {result.items} items, {result.hours:.2f} h, {result.voices} base voices, "
          f"{result.speakers} speakers; "
          f"sentences from {result.sentence_source}", file=sys.stderr)


@app.command("import")
def import_(
    kind: CorpusKind = typer.Argument(..., help="Corpus layout."),
    src: Path = typer.Argument(..., help="Corpus folder (LibriTTS: the root or one subset folder)."),
    out: Path = typer.Option(..., "-o", "--out", help="Manifest to write (.jsonl); audio paths are relative to it."),
    domain: Domain = typer.Option("speech", "--domain",
                                  help="Domain of the items (folder imports only; the public corpora are speech)."),
) -> None:
    """Write a manifest for a public corpus (LibriTTS, LJSpeech, VCTK) or any folder of audio; splits by speaker."""
    result = import_corpus(kind, src, out, domain=domain)
    skipped = ", ".join(f"{n} {reason}" for reason, n in result.skipped.items()) or "none"
    untranscribed = f", {result.untranscribed} without text" if result.untranscribed else ""
    print(f"{out}: {len(result.items)} items, {result.speakers} speakers, {result.hours:.2f} h{untranscribed}; "
          f"skipped: {skipped}", file=sys.stderr)


@app.command()
def encode(
    manifest: Path = typer.Option(..., "--manifest", help="Manifest (.jsonl) of the audio to encode."),
    out: Path = typer.Option(..., "--out", help="Shard directory (created; an interrupted run resumes)."),
    codec: Path = typer.Option(None, "--codec", help="Codec or bundle directory (default: the shipped codec)."),
    codebooks: int = typer.Option(None, "--codebooks", min=1, help="Codebooks to keep (default: all)."),
    batch_seconds: float = typer.Option(60.0, "--batch-seconds", min=1.0, help="Audio per encoder batch."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Encode a manifest's audio to token shards for LM training (under torchrun each rank takes its share)."""
    from rich.progress import Progress

    from ..codec.files import resolve_codebooks
    from ..codec.pretrained import load_codec
    from ..data.encode import encode_manifest, rank_and_world
    from ..data.manifest import read_manifest

    model = load_codec(codec, device)
    k = resolve_codebooks(model, codebooks)
    rank, world = rank_and_world()
    total = len(read_manifest(manifest)[rank::world])
    with Progress(disable=rank != 0) as progress:
        bar = progress.add_task("encoding", total=total)
        result = encode_manifest(manifest, model, out, k, batch_seconds, rank=rank, world=world,
                                 progress=lambda n: progress.advance(bar, n))
    skipped = ", ".join(f"{n} {reason}" for reason, n in result.skipped.items()) or "none"
    print(f"{out}: rank {rank}/{world}: {result.encoded} items encoded ({result.audio_seconds / 3600:.2f} h, "
          f"{result.frames} frames), {result.already_done} already done; skipped: {skipped}", file=sys.stderr)


@app.command()
def deps(
    install: bool = typer.Option(False, "--install", help="Install the missing packages with apt-get (root)."),
) -> None:
    """The Debian packages `data build` uses, and which are missing (install them with --install)."""
    from ..data.deps import install as apt_install
    from ..data.deps import package_status

    status = package_status()
    for s in status:
        print(f"{'ok     ' if s.installed else 'missing'} {s.package.name:<14} {s.package.purpose}")
    missing = [s.package.name for s in status if not s.installed]
    if missing and install:
        apt_install(missing)
    elif missing:
        print(f"missing: apt-get install {' '.join(missing)}  (or: sonorant data deps --install, as root)",
              file=sys.stderr)
