"""`sonorant eval codec`."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Quality evaluation with reports.", no_args_is_help=True)


@app.command()
def codec(
    manifest: Path = typer.Option(..., "--manifest", help="Manifest whose --split items are evaluated."),
    report: Path = typer.Option(..., "--report", help="Folder for metrics.json and report.md."),
    model: Path = typer.Option(None, "--model", help="Codec or bundle directory (default: the shipped codec)."),
    codebooks: list[int] = typer.Option([2, 4, 8], "--codebooks", help="Codebook counts to score (repeatable)."),
    split: str = typer.Option("test", "--split"),
    max_items: int = typer.Option(50, "--max-items", min=1),
    device: str = typer.Option("cpu", "--device"),
    asr: bool = typer.Option(False, "--asr", help="Also the word error rate of Whisper-base (offline; the "
                                                  "eval extra) on items with a text, and on the originals."),
) -> None:
    """PESQ-WB, STOI (speech only), mel and STFT distances, SI-SDR and codebook use, per bitrate."""
    from rich.progress import Progress

    from ..codec.pretrained import codec_dir, load_codec
    from ..evaluation.codec_eval import evaluate_codec, write_codec_report

    codec_model = load_codec(model, device)
    recognizer = None
    if asr:
        from ..evaluation.asr import WhisperASR

        recognizer = WhisperASR()
    with Progress() as progress:
        bar = progress.add_task("evaluating", total=None)
        scores = evaluate_codec(codec_model, manifest, codebooks, split, max_items,
                                progress=lambda: progress.advance(bar), asr=recognizer)
    out = write_codec_report(scores, report, {"model": str(codec_dir(model)), "manifest": str(manifest),
                                              "split": split, "fingerprint": codec_model.fingerprint})
    print((out / "report.md").read_text())
