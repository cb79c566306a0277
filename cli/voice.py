"""`sonorant voice add|list|remove`: voices saved once, reused by name without re-encoding."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(help="Save voice prompts under a name (tokens + phonemes) and reuse them with --voice NAME.",
                  no_args_is_help=True)


@app.command()
def add(
    name: str = typer.Argument(..., help="Name to save the voice under."),
    wav: Path = typer.Argument(..., help="Voice prompt: an audio file with 3-10 s of one speaker."),
    text: str = typer.Option(None, "--text", help="What the prompt says (gives the best cloning)."),
    lang: str = typer.Option("en-us", "--lang", help="espeak language code of the transcript."),
    model: Path = typer.Option(None, "--model", help="Model bundle whose codec encodes the prompt."),
    force: bool = typer.Option(False, "--force", help="Replace a voice of the same name."),
) -> None:
    """Clean, encode and save a voice prompt."""
    from ..core.audio import audio_info
    from ..text.frontend import TextFrontend
    from ..tts.bundle import resolve_bundle
    from ..tts.prompt import check_transcript
    from ..tts.voices import check_can_save

    check_can_save(name, overwrite=force)
    audio_info(wav)
    if text is not None:
        check_transcript(text)
    TextFrontend.load(resolve_bundle(model).frontend).ids("", lang)
    from ..tts import Synthesizer, save_voice

    synth = Synthesizer.from_pretrained(model)
    notes: list[str] = []
    voice = synth.voice_from_audio(wav, text, lang, notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    folder = save_voice(voice, name, overwrite=force)
    mode = "with transcript" if voice.text else "without transcript (reference mode)"
    print(f"saved voice {name!r}: {voice.seconds:.1f} s, {voice.codes.shape[1]} frames, {mode} -> {folder}",
          file=sys.stderr)


@app.command("list")
def list_() -> None:
    """Saved voices: name, length, language, transcript."""
    from ..tts import list_voices
    from ..tts.voices import voices_home

    voices = list_voices()
    if not voices:
        print(f"no saved voices in {voices_home()} (add one with: sonorant voice add NAME WAV --text TEXT)",
              file=sys.stderr)
        return
    for v in voices:
        if v.get("damaged"):
            print(f"{v['name']}\t(damaged: {v['damaged']})")
            continue
        text = (v.get("text") or "(no transcript)")[:60]
        print(f"{v['name']}\t{v.get('seconds', 0):.1f} s\t{v.get('language')}\t{text}")


@app.command()
def remove(name: str = typer.Argument(..., help="Name of a saved voice.")) -> None:
    """Delete a saved voice."""
    from ..tts import remove_voice

    folder = remove_voice(name)
    print(f"removed voice {name!r} ({folder})", file=sys.stderr)
