"""`sonorant data build`, `import`, `merge`, `align`, `encode` and `deps`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..core.output import check_output_folder, check_output_path
from ..data.importers import CorpusKind, Domain, import_corpus
from .flags import finite

app = typer.Typer(help="Build and prepare training data.", no_args_is_help=True)


@app.command()
def build(
    out: Path = typer.Option(..., "--out", help="Folder for the corpus, its manifest.jsonl and report.json."),
    hours: float = typer.Option(1.0, "--hours", callback=finite, min=0.001, max=1000,
                                help="Hours in all (speech 80 %, music 15 %, sound 5 % of the domains built)."),
    seed: int = typer.Option(0, "--seed"),
    workers: int = typer.Option(0, "--workers", min=0, help="Parallel renders (0 = one per CPU core)."),
    pseudo_speakers: int = typer.Option(0, "--pseudo-speakers", min=0, max=4,
                                        help="Formant/pitch/tempo-shifted speakers per base voice (sox)."),
    language: list[str] = typer.Option(["en"], "--language", help="en, de or es (repeat; speech hours are shared)."),
    domain: list[str] = typer.Option(["speech", "music", "sound"], "--domain", help="speech, music, sound (repeat)."),
) -> None:
    """Build the offline corpus from the Debian packages installed (see `sonorant data deps`); run the same
    command again to resume an interrupted build."""
    from rich.progress import Progress

    check_output_folder(out)

    from ..data.build import build_corpus

    with Progress(transient=True) as progress:
        bars: dict[str, object] = {}

        def show(name: str, fraction: float) -> None:
            if name not in bars:
                bars[name] = progress.add_task(name, total=1.0)
            progress.update(bars[name], completed=fraction)

        result = build_corpus(out, hours, seed, workers or None, show, pseudo_speakers, tuple(language), tuple(domain),
                              embed=_speaker_encoder() if pseudo_speakers else None)
    by_domain = ", ".join(f"{d} {h:.2f} h" for d, h in sorted(result.domains.items()))
    by_source = ", ".join(f"{s} {h:.2f} h" for s, h in sorted(result.sources.items(), key=lambda kv: -kv[1]))
    print(f"{result.manifest}: {result.items} items, {result.hours:.2f} h ({by_domain}) in {result.seconds:.0f} s\n"
          f"  speech: {result.voices} base voices, {result.speakers} speakers; sentences from "
          f"{result.sentence_source}\n  sources: {by_source}", file=sys.stderr)
    for base, check in result.speaker_check.items():
        print(f"  pseudo-speakers of {base}: {check['speakers']} speakers, cosine between them max "
              f"{check['max_between']:.2f} (mean {check['mean_between']:.2f}), within one speaker >= "
              f"{check['min_within']:.2f}", file=sys.stderr)
    for line in result.skipped:
        print(f"  skipped: {line}", file=sys.stderr)


@app.command("align")
def align(
    manifest: Path = typer.Option(..., "--manifest", help="Manifest (.jsonl) whose speech items have text."),
    aligner: Path = typer.Option(None, "--aligner", help="Aligner release or bundle (default: the shipped one)."),
    out: Path = typer.Option(..., "--out", help="Token shard directory to store the durations in (alignments/)."),
) -> None:
    """Frames per phoneme for every speech item with text (resumable; under torchrun, split across ranks)."""
    from rich.progress import Progress

    check_output_folder(out)

    from ..data.alignments import align_manifest
    from ..data.manifest import read_manifest

    total = sum(1 for it in read_manifest(manifest) if it.domain == "speech" and it.text)
    with Progress(transient=True) as progress:
        bar = progress.add_task("align", total=total)
        report = align_manifest(manifest, aligner, out, progress=lambda n: progress.advance(bar, n))
    skipped = ", ".join(f"{n} {reason}" for reason, n in report.skipped.items() if n) or "none"
    print(f"{report.directory}: {report.aligned} aligned, {report.already_done} already done, skipped: {skipped}; "
          f"{report.audio_seconds / 3600:.2f} h in {report.seconds:.0f} s ({report.hours_per_minute:.2f} h of audio "
          "per minute)", file=sys.stderr)


@app.command("import")
def import_(
    kind: CorpusKind = typer.Argument(..., help="Corpus layout."),
    src: Path = typer.Argument(..., help="Corpus folder (LibriTTS: the root or one subset folder)."),
    out: Path = typer.Option(..., "-o", "--out", help="Manifest to write (.jsonl); audio paths are relative to it."),
    domain: Domain = typer.Option("speech", "--domain",
                                  help="Domain of the items (folder imports only; the public corpora are speech)."),
) -> None:
    """Write a manifest for a public corpus (LibriTTS, LJSpeech, VCTK) or any folder of audio; splits by speaker."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)  # a manifest's folder is made, as before
    check_output_path(out, ".jsonl")
    result = import_corpus(kind, src, out, domain=domain)
    skipped = ", ".join(f"{n} {reason}" for reason, n in result.skipped.items()) or "none"
    untranscribed = f", {result.untranscribed} without text" if result.untranscribed else ""
    print(f"{out}: {len(result.items)} items, {result.speakers} speakers, {result.hours:.2f} h{untranscribed}; "
          f"skipped: {skipped}", file=sys.stderr)


@app.command()
def merge(
    manifests: list[Path] = typer.Argument(..., help="Manifests to combine (their items keep their splits)."),
    out: Path = typer.Option(..., "-o", "--out", help="Manifest to write (.jsonl); audio paths are relative to it."),
) -> None:
    """One manifest of several corpora (e.g. speech and music built apart), for training on them together."""
    from ..data.manifest import merge_manifests

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    check_output_path(out, ".jsonl")
    items = merge_manifests(manifests, out)
    hours = sum(i.duration for i in items) / 3600
    print(f"{out}: {len(items)} items, {hours:.2f} h from {len(manifests)} manifests", file=sys.stderr)


@app.command()
def encode(
    manifest: Path = typer.Option(..., "--manifest", help="Manifest (.jsonl) of the audio to encode."),
    out: Path = typer.Option(..., "--out", help="Shard directory (created; an interrupted run resumes)."),
    codec: Path = typer.Option(None, "--codec", help="Codec or bundle directory (default: the shipped codec)."),
    codebooks: int = typer.Option(None, "--codebooks", min=1, help="Codebooks to keep (default: all)."),
    batch_seconds: float = typer.Option(60.0, "--batch-seconds", callback=finite,
                                        min=1.0, help="Audio per encoder batch."),
    device: str = typer.Option("cpu", "--device"),
    speaker: list[str] = typer.Option([], "--speaker",
                                      help="Only items whose base speaker starts with this (repeat), e.g. flite:"),
) -> None:
    """Encode a manifest's audio to token shards for LM training (under torchrun each rank takes its share)."""
    from rich.progress import Progress

    from ..codec.pretrained import codec_dir, load_codec
    from ..core.device import check_device
    from ..data.manifest import read_manifest

    check_output_folder(out)
    items = read_manifest(manifest)
    codec_dir(codec)
    device = check_device(device)
    from ..codec.files import resolve_codebooks
    from ..data.encode import encode_manifest, rank_and_world, speaker_items

    model = load_codec(codec, device)
    k = resolve_codebooks(model, codebooks)
    rank, world = rank_and_world()
    total = len(speaker_items(items, tuple(speaker))[rank::world])
    with Progress(disable=rank != 0) as progress:
        bar = progress.add_task("encoding", total=total)
        result = encode_manifest(manifest, model, out, k, batch_seconds, rank=rank, world=world,
                                 progress=lambda n: progress.advance(bar, n), speakers=tuple(speaker))
    skipped = ", ".join(f"{n} {reason}" for reason, n in result.skipped.items()) or "none"
    print(f"{out}: rank {rank}/{world}: {result.encoded} items encoded ({result.audio_seconds / 3600:.2f} h, "
          f"{result.frames} frames), {result.already_done} already done; skipped: {skipped}", file=sys.stderr)


@app.command()
def deps(
    install: bool = typer.Option(False, "--install", help="Install the missing packages with apt-get (root)."),
    large: bool = typer.Option(False, "--large", help="With --install: the large recording packages too."),
) -> None:
    """The Debian packages `data build` uses, and which are missing (install them with --install)."""
    from ..data.deps import install as apt_install
    from ..data.deps import package_status

    status = package_status()
    for s in status:
        size = " (large)" if s.package.large else ""
        print(f"{'ok     ' if s.installed else 'missing'} {s.package.name:<20} {s.package.purpose}{size}")
    missing = [s.package.name for s in status if not s.installed and (large or not s.package.large)]
    if missing and install:
        apt_install(missing)
    elif missing:
        print(f"missing: apt-get install {' '.join(missing)}  (or: sonorant data deps --install, as root)",
              file=sys.stderr)


def _speaker_encoder():
    """resemblyzer's embedding, which checks that pseudo-speakers are new speakers; None when not installed."""
    from ..core.errors import SonorantError
    from ..evaluation.speaker import SpeakerEncoder

    try:
        return SpeakerEncoder().embed
    except SonorantError:
        return None
