"""`sonorant codec encode|decode|roundtrip|info`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..codec.files import check_output_path, decode_file, encode_file, resolve_codebooks, roundtrip_file
from ..codec.pretrained import load_codec
from ..codec.tokenfile import TokenFile

app = typer.Typer(help="Encode audio to tokens and decode tokens to audio.", no_args_is_help=True)

ModelOpt = typer.Option(None, "--model", help="Codec or bundle directory (default: the shipped codec).")
DeviceOpt = typer.Option("cpu", "--device", help="cpu or cuda.")


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr)


@app.command()
def encode(
    src: Path = typer.Argument(..., help="Audio file (wav, flac, ogg, mp3; any rate, any channels)."),
    out: Path = typer.Option(..., "-o", "--out", help="Token file to write (.stok)."),
    codebooks: int = typer.Option(None, "--codebooks", help="Codebooks to keep (1..K; default all)."),
    bitrate: float = typer.Option(None, "--bitrate", help="Target bitrate in kbps (instead of --codebooks)."),
    model: Path = ModelOpt,
    device: str = DeviceOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Encode an audio file into a bit-packed token file."""
    codec = load_codec(model, device)
    k = resolve_codebooks(codec, codebooks, bitrate)
    tokens = encode_file(codec, src, out, k)
    _say(quiet, f"{out}: {tokens.frames} frames x {k} codebooks, {tokens.duration:.2f} s, "
                f"{tokens.bitrate / 1000:g} kbps, {out.stat().st_size} bytes")


@app.command()
def decode(
    src: Path = typer.Argument(..., help="Token file (.stok)."),
    out: Path = typer.Option(..., "-o", "--out", help="Audio file to write (.wav, .flac, .ogg)."),
    model: Path = ModelOpt,
    device: str = DeviceOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Decode a token file back to audio (exactly the original number of samples)."""
    check_output_path(out)
    result = decode_file(load_codec(model, device), src, out)
    _say(quiet, f"{out}: {result.seconds:.2f} s at {result.sample_rate} Hz")


@app.command()
def roundtrip(
    src: Path = typer.Argument(..., help="Audio file."),
    out: Path = typer.Option(..., "-o", "--out", help="Audio file to write."),
    codebooks: int = typer.Option(None, "--codebooks", help="Codebooks to use (1..K; default all)."),
    model: Path = ModelOpt,
    device: str = DeviceOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Encode then decode an audio file: hear what the codec keeps at a bitrate."""
    check_output_path(out)
    codec = load_codec(model, device)
    k = resolve_codebooks(codec, codebooks)
    result = roundtrip_file(codec, src, out, k)
    _say(quiet, f"{out}: {result.seconds:.2f} s through {k} codebooks ({codec.config.bitrate(k) / 1000:g} kbps)")


@app.command()
def info(src: Path = typer.Argument(..., help="Token file (.stok).")) -> None:
    """Print what a token file holds."""
    t = TokenFile.read(src)
    print(f"file:        {src}\n"
          f"codec:       {t.fingerprint}\n"
          f"sample rate: {t.sample_rate} Hz\n"
          f"frame rate:  {t.frame_rate:g} Hz (hop {t.hop_length})\n"
          f"codebooks:   {t.num_codebooks} x {t.bits} bits\n"
          f"frames:      {t.frames}\n"
          f"duration:    {t.duration:.3f} s ({t.num_samples} samples)\n"
          f"bitrate:     {t.bitrate / 1000:g} kbps\n"
          f"size:        {src.stat().st_size} bytes")
