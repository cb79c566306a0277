"""`sonorant codec encode|decode|roundtrip|info`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..core.device import check_device
from ..core.output import check_output_path
from .flags import finite

app = typer.Typer(help="Encode audio to tokens and decode tokens to audio.", no_args_is_help=True)

ModelOpt = typer.Option(None, "--model", help="Codec or bundle directory (default: the shipped codec).")
DeviceOpt = typer.Option("cpu", "--device", help="cpu or cuda.")
CodebooksOpt = typer.Option(None, "--codebooks", min=1, help="Codebooks to keep (1..K; default all).")


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr)


def _codec(model: Path | None, device: str):
    """The codec, loaded once the inputs are known to be usable."""
    from ..codec.pretrained import codec_dir, load_codec

    codec_dir(model)
    return load_codec(model, check_device(device))


@app.command()
def encode(
    src: Path = typer.Argument(..., help="Audio file (wav, flac, ogg, mp3; any rate, any channels)."),
    out: Path = typer.Option(..., "-o", "--out", help="Token file to write (.stok)."),
    codebooks: int = CodebooksOpt,
    bitrate: float = typer.Option(None, "--bitrate", callback=finite,
                                  help="Target bitrate in kbps (instead of --codebooks)."),
    model: Path = ModelOpt,
    device: str = DeviceOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Encode an audio file into a bit-packed token file (read block by block: long files fit in memory)."""
    from ..core.audio import audio_info

    audio_info(src)
    check_output_path(out, ".stok")
    codec = _codec(model, device)
    from ..codec.files import encode_file, resolve_codebooks

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
    from ..codec.tokenfile import TokenFile

    tokens = TokenFile.read(src)
    check_output_path(out)
    from ..codec.files import decode_tokens

    result = decode_tokens(_codec(model, device), tokens, out)
    _say(quiet, f"{out}: {result.seconds:.2f} s at {result.sample_rate} Hz")


@app.command()
def roundtrip(
    src: Path = typer.Argument(..., help="Audio file."),
    out: Path = typer.Option(..., "-o", "--out", help="Audio file to write."),
    codebooks: int = CodebooksOpt,
    model: Path = ModelOpt,
    device: str = DeviceOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Encode then decode an audio file: hear what the codec keeps at a bitrate."""
    from ..core.audio import audio_info

    audio_info(src)
    check_output_path(out)
    codec = _codec(model, device)
    from ..codec.files import resolve_codebooks, roundtrip_file

    k = resolve_codebooks(codec, codebooks)
    result = roundtrip_file(codec, src, out, k)
    _say(quiet, f"{out}: {result.seconds:.2f} s through {k} codebooks ({codec.config.bitrate(k) / 1000:g} kbps)")


@app.command()
def info(src: Path = typer.Argument(..., help="Token file (.stok).")) -> None:
    """Print what a token file holds."""
    from ..codec.tokenfile import TokenFile

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
