"""`sonorant align`: word and phoneme times of a recording and its transcript (forced alignment)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ..core.atomic import atomic_write
from ..core.output import check_output_path


def align(
    audio: Path = typer.Argument(..., help="Recording to align (any format soundfile reads, any rate)."),
    text: str = typer.Option(..., "--text", help="Its transcript ('-' reads it from stdin)."),
    lang: str = typer.Option("en-us", "--lang", help="Language of the transcript (espeak code)."),
    json_out: Path = typer.Option(None, "--json", help="Write the alignment here (default: print it)."),
    model: Path = typer.Option(None, "--model", help="Bundle or aligner release (default: the shipped aligner)."),
) -> None:
    """Forced alignment: when each word and phoneme of TEXT is spoken in AUDIO, as JSON
    {"words": [{"word", "start", "end"}], "phonemes": [{"phoneme", "start", "end"}]} in seconds."""
    from ..core.audio import audio_info
    from ..text.frontend import check_speakable

    if text == "-":
        text = sys.stdin.read()
    check_speakable(text)
    audio_info(audio)
    if json_out is not None:
        check_output_path(json_out, ".json")
    from ..align.forced import ForcedAligner
    from ..core.audio import load_audio

    aligner = ForcedAligner.from_pretrained(model)
    wav = load_audio(audio, aligner.sample_rate, allow_silent=True)
    result = aligner.align(wav, text, lang)
    document = json.dumps(result.to_dict(), ensure_ascii=False, indent=1) + "\n"
    if json_out is None:
        sys.stdout.write(document)
    else:
        atomic_write(json_out, document)
        print(f"{json_out}: {len(result.words)} words, {len(result.phonemes)} phonemes over "
              f"{result.frames / result.frame_rate:.2f} s", file=sys.stderr)
