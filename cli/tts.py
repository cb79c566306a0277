"""`sonorant tts`: speak text in the voice of a prompt (to a file, or streamed as raw PCM)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from ..core.device import check_device
from ..core.errors import SonorantError
from ..core.jsonl import read_jsonl, read_lines, relative_to_file
from ..core.output import check_output_folder, check_output_path
from .flags import finite

MAX_TEXT_CHARS = 100_000  # a book chapter; beyond that it is almost certainly the wrong file
MAX_SEED = 2**63 - 1  # torch's generators take 64-bit seeds (and each text chunk adds its index)
BATCH_FIELDS = {"text", "output", "voice", "voice_text", "lang"}

# Flags shared by tts, generate and continue.
ModelOpt = typer.Option(None, "--model", help="Model bundle directory (default: the shipped one).")
SeedOpt = typer.Option(None, "--seed", min=0, max=MAX_SEED, help="Sampling seed (same seed, same audio).")
TemperatureOpt = typer.Option(None, "--temperature", callback=finite, min=0.0, max=5.0)
DeviceOpt = typer.Option("cpu", "--device", help="cpu or cuda.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress or timing on stderr.")
AudioOutOpt = typer.Option(..., "-o", "--out", help="Audio file to write (.wav or .flac).")
SecondsOpt = typer.Option(5.0, "--seconds", callback=finite, min=0.1, max=600.0, help="Length of the generated audio.")


@dataclass
class Job:
    text: str
    output: Path
    voice: str | None = None
    voice_text: str | None = None
    lang: str | None = None
    where: str = ""  # "FILE:LINE: " of a batch line, for messages


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def read_text(text: str, where: str = "") -> str:
    """The TEXT argument, or stdin for '-'; SonorantError when there is nothing to say in it."""
    from ..text.frontend import check_speakable

    if text == "-":
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError:
            raise SonorantError("stdin: the text is not UTF-8") from None
    if len(text) > MAX_TEXT_CHARS:
        raise SonorantError(f"{where}the text has {len(text)} characters; split it into files of at most "
                            f"{MAX_TEXT_CHARS}")
    try:
        check_speakable(text)
    except SonorantError as e:
        raise SonorantError(f"{where}{e}") from None
    return text


def batch_lines(path: Path, out: Path | None, fields: set[str], main: str) -> list[tuple[str, dict, Path]]:
    """(where, fields, output) of every line of a batch file: JSONL lines with `main` and `output` (paths relative
    to the file's folder) and optional other `fields`, or a TXT file with one `main` per line (written to
    OUT/0001.wav, ...; the folder is made when the first is written). Checked here, before any model loads."""
    if path.suffix.lower() != ".jsonl":
        lines = read_lines(path, "batch")
        if out is None or out.suffix:
            raise SonorantError("a text batch needs -o FOLDER for its outputs (0001.wav, 0002.wav, ...)")
        check_output_folder(out)
        rows = [(f"{path}:{number}: ", {main: line.strip()}, out / f"{i:04d}.wav")
                for i, (number, line) in enumerate(lines, 1)]
        for _, _, output in rows if out.is_dir() else []:
            check_output_path(output)
        return rows
    rows, outputs = [], {}
    allowed = fields | {main, "output"}
    for number, row in read_jsonl(path, "batch"):
        where = f"{path}:{number}: "
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise SonorantError(f"{where}unknown field(s) {', '.join(unknown)} "
                                f"(a line has {', '.join(sorted(allowed))})")
        for key in (main, "output"):
            if not isinstance(row.get(key, ""), str):
                raise SonorantError(f"{where}{key!r} must be text, not {type(row[key]).__name__}")
        if not row.get(main, "").strip() or not row.get("output", "").strip():
            raise SonorantError(f"{where}bad batch line (needs a non-empty {main!r} and an 'output')")
        output = Path(relative_to_file(path, row["output"]))
        key = os.path.normpath(os.path.abspath(output))
        if key in outputs:
            raise SonorantError(f"{where}{output} is also the output of line {outputs[key]}")
        outputs[key] = number
        try:
            check_output_path(output)
        except SonorantError as e:
            raise SonorantError(f"{where}{e}") from None
        rows.append((where, row, output))
    return rows


def read_batch(path: Path, out: Path | None) -> list[Job]:
    """The TTS jobs of a batch file (`batch_lines`): {text, output, voice?, voice_text?, lang?} or a TXT file."""
    jobs = []
    for where, row, output in batch_lines(path, out, BATCH_FIELDS - {"text", "output"}, "text"):
        for key in BATCH_FIELDS:
            if row.get(key) is not None and not isinstance(row[key], str):
                raise SonorantError(f"{where}{key!r} must be text, not {type(row[key]).__name__}")
        voice = row.get("voice")  # a saved voice's name (no suffix) or a prompt file
        voice = relative_to_file(path, voice) if voice is not None and Path(voice).suffix else voice
        jobs.append(Job(read_text(row["text"], where), output, voice, row.get("voice_text"), row.get("lang"), where))
    return jobs


def check_jobs(jobs: list[Job], bundle_voices: Path | None, frontend: Path) -> None:
    """Everything else about the jobs that can be wrong without running a model: voices, transcripts and
    languages. Raises SonorantError (prefixed with the batch line) before any model loads."""
    from ..core.audio import audio_info
    from ..text.frontend import TextFrontend
    from ..tts.prompt import check_transcript
    from ..tts.voices import read_voice, voice_source, voices_home

    model_frontend = TextFrontend.load(frontend)
    for job in jobs:
        try:
            if job.voice is not None:
                source = voice_source(job.voice, bundle_voices)
                if source.kind == "file":
                    audio_info(source.value)
                elif source.kind == "saved":
                    read_voice(voices_home() / source.value)
            if job.voice_text is not None:
                check_transcript(job.voice_text)
            model_frontend.ids("", job.lang or "en-us")
        except SonorantError as e:
            raise SonorantError(f"{job.where}{e}") from None


def speak(
    text: str = typer.Argument(None, help="Text to speak, or - to read it from stdin."),
    out: Path = typer.Option(None, "-o", "--out", help="Audio file to write (.wav or .flac); a folder with --batch."),
    stream: bool = typer.Option(False, "--stream", help="Write raw 16-bit mono PCM to stdout as it is generated."),
    voice: str = typer.Option(None, "--voice", help="Voice prompt: an audio file (3-10 s) or a saved voice's name."),
    voice_text: str = typer.Option(None, "--voice-text", help="Transcript of the voice prompt (best results)."),
    lang: str = typer.Option("en-us", "--lang", help="espeak language code of the text (en-us, de, es...)."),
    model: Path = ModelOpt,
    seed: int = SeedOpt,
    temperature: float = TemperatureOpt,
    top_k: int = typer.Option(None, "--top-k", min=0),
    top_p: float = typer.Option(None, "--top-p", callback=finite, min=0.01, max=1.0),
    cfg: float = typer.Option(None, "--cfg", callback=finite,
                              min=1.0, max=10.0, help="Classifier-free guidance (default 2; 1: off, twice as fast)."),
    max_seconds: float = typer.Option(None, "--max-seconds", callback=finite,
                                      min=0.5, max=3600.0, help="Cap on the audio length."),
    speed: float = typer.Option(None, "--speed", callback=finite,
                                min=0.5, max=2.0, help="Speaking rate: 0.5 slow, 1 normal, 2 fast."),
    timestamps: Path = typer.Option(None, "--timestamps", help="Write the words' start and end times here (JSON)."),
    batch: Path = typer.Option(None, "--batch", help="JSONL of {text, output, voice?, voice_text?}, or TXT."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Speak TEXT in the voice of a prompt: sonorant tts "Hello." --voice me.wav --voice-text "..." -o hello.wav"""
    from ..tts.bundle import resolve_bundle

    if batch is None:
        if text is None:
            raise SonorantError("give the text to speak (or - for stdin, or --batch FILE)")
        if stream == (out is not None):
            raise SonorantError("choose one output: -o FILE or --stream")
        jobs = [Job(read_text(text), check_output_path(out) if out else Path("-"))]
    else:
        if text is not None or stream:
            raise SonorantError("--batch takes its texts from the file; drop TEXT and --stream")
        jobs = read_batch(batch, out)
    jobs = [dataclasses.replace(j, voice=j.voice or voice, voice_text=j.voice_text or voice_text, lang=j.lang or lang)
            for j in jobs]
    if timestamps is not None:
        if len(jobs) > 1:
            raise SonorantError("--timestamps is for one text (not --batch)")
        check_output_path(timestamps, ".json")
    paths = resolve_bundle(model)
    check_jobs(jobs, paths.voices, paths.frontend)
    options = dict(seed=seed, temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg,
                   max_seconds=max_seconds, speed=speed)
    device = check_device(device)
    from ..core.atomic import atomic_path
    from ..core.audio import write_audio
    from ..tts import Synthesizer

    synth = Synthesizer.from_pretrained(model, device=device)
    for number, job in enumerate(jobs, 1):
        prefix = f"[{number}/{len(jobs)}] " if len(jobs) > 1 else ""
        if stream:
            info = _stream(synth, job, options, quiet)
        else:
            audio = synth.synthesize(job.text, voice=job.voice, voice_text=job.voice_text, lang=job.lang, **options)
            if audio.samples.numel() == 0:
                raise SonorantError(f"{job.where}the model produced no audio for this text")
            job.output.parent.mkdir(parents=True, exist_ok=True)  # a text batch's folder, made at its first output
            with atomic_path(job.output, suffix=job.output.suffix) as tmp:
                write_audio(tmp, audio.samples, audio.sample_rate)
            _report(quiet, prefix + str(job.output), audio.info, audio.seconds)
            info = audio.info
        if timestamps is not None:
            words = [w.to_dict("word") for w in info.words]
            with atomic_path(timestamps, suffix=".json") as tmp:
                Path(tmp).write_text(json.dumps({"words": words}, ensure_ascii=False, indent=1) + "\n")


def _stream(synth, job: Job, options: dict, quiet: bool):
    from ..tts.synthesizer import SynthesisInfo

    info = SynthesisInfo(mode="none")
    chunks = synth.stream(job.text, voice=job.voice, voice_text=job.voice_text, lang=job.lang, info=info, **options)
    seconds = _pcm_to_stdout(chunks, synth, quiet)
    _report(quiet, "stdout", info, seconds)
    return info


def _pcm_to_stdout(chunks, synth, quiet: bool) -> float:
    """Write the chunks to stdout as raw 16-bit PCM while they come; the seconds written."""
    _say(quiet, f"streaming raw 16-bit mono PCM at {synth.sample_rate} Hz "
                f"(play: | aplay -r {synth.sample_rate} -f S16_LE -c 1)")
    seconds = 0.0
    sink = sys.stdout.buffer
    for chunk in chunks:
        pcm = (chunk.samples.clamp(-1, 1) * 32767).round().short().numpy().tobytes()
        try:
            sink.write(pcm)
            sink.flush()
        except OSError as e:  # a full disk, a closed pipe: say so once, and leave nothing to flush at exit
            _drop_stdout()
            raise SonorantError(f"cannot write to stdout ({e.strerror or e})") from None
        seconds += chunk.samples.numel() / chunk.sample_rate
    return seconds


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what could not be written is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _report(quiet: bool, target: str, info, seconds: float) -> None:
    for note in info.notes:
        _say(quiet, f"note: {note}")
    stopped = sum(info.ended)
    rtf = info.synthesis_s / max(seconds, 1e-9)
    first = f", first audio after {info.first_audio_s:.2f} s" if info.first_audio_s is not None else ""
    _say(quiet, f"{target}: {seconds:.2f} s of speech ({info.mode} mode, {len(info.text_chunks)} text chunk(s), "
                f"{stopped} ended by the model) in {info.synthesis_s:.2f} s, RTF {rtf:.2f}{first}")


def _write(out: Path, audio, quiet: bool, what: str, prefix: str = "") -> None:
    from ..core.atomic import atomic_path
    from ..core.audio import write_audio

    if audio.samples.numel() == 0:
        raise SonorantError("the model produced no audio")
    with atomic_path(out, suffix=out.suffix) as tmp:
        write_audio(tmp, audio.samples, audio.sample_rate)
    _say(quiet, f"{prefix}{out}: {audio.seconds:.2f} s of {what} in {audio.info.synthesis_s:.2f} s "
                f"(RTF {audio.real_time_factor:.2f})")


CAPTION_FIELDS = {"seconds", "seed"}


def generate(
    caption: str = typer.Argument(None, help='What to hear, e.g. "slow piano in C minor, 72 bpm" or "rain on a roof"; '
                                             'music keeps the tempo a caption states.'),
    out: Path = typer.Option(None, "-o", "--out", help="Audio file to write (.wav or .flac); a folder with a TXT "
                                                       "--batch."),
    stream: bool = typer.Option(False, "--stream", help="Write raw 16-bit mono PCM to stdout as it is generated."),
    seconds: float = SecondsOpt,
    cfg: float = typer.Option(3.0, "--cfg", callback=finite, min=1.0, max=10.0, help="Classifier-free guidance scale."),
    batch: Path = typer.Option(None, "--batch", help="JSONL of {caption, output, seconds?, seed?}, or TXT (one caption "
                                                     "a line)."),
    model: Path = typer.Option(None, "--model", help="Model bundle with a caption-conditioned LM."),
    seed: int = SeedOpt,
    temperature: float = TemperatureOpt,
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Text-to-sound / text-to-music from a caption."""
    from ..tts.bundle import resolve_bundle

    if batch is None:
        if caption is None:
            raise SonorantError("give the caption (or --batch FILE)")
        if stream == (out is not None):
            raise SonorantError("choose one output: -o FILE or --stream")
        if not caption.strip():
            raise SonorantError("the caption is empty")
        jobs = [("", {"caption": caption}, check_output_path(out) if out else Path("-"))]
    else:
        if caption is not None or stream:
            raise SonorantError("--batch takes its captions from the file; drop CAPTION and --stream")
        jobs = batch_lines(batch, out, CAPTION_FIELDS, "caption")
        for where, row, _ in jobs:
            _check_caption_fields(where, row)
    resolve_bundle(model, captions=True)  # before any output: a model that cannot generate is refused
    device = check_device(device)
    from ..tts import Synthesizer
    from ..tts.audio_lm import caption_stream, generate_from_caption
    from ..tts.synthesizer import SynthesisInfo

    synth = Synthesizer.from_pretrained(model, device=device, captions=True)
    for number, (where, row, output) in enumerate(jobs, 1):
        options = dict(cfg_scale=cfg, seed=row.get("seed", seed), temperature=temperature)
        length = row.get("seconds", seconds)
        if stream:
            info = SynthesisInfo(mode="caption")
            written = _pcm_to_stdout(caption_stream(synth, row["caption"], length, info=info, **options), synth,
                                     quiet)
            _say(quiet, f"stdout: {written:.2f} s of generated audio in {info.synthesis_s:.2f} s")
            continue
        audio = generate_from_caption(synth, row["caption"], length, **options)
        if audio.samples.numel() == 0:
            raise SonorantError(f"{where}the model produced no audio")
        output.parent.mkdir(parents=True, exist_ok=True)  # a text batch's folder, made at its first output
        prefix = f"[{number}/{len(jobs)}] " if len(jobs) > 1 else ""
        _write(output, audio, quiet, "generated audio", prefix)


def _check_caption_fields(where: str, row: dict) -> None:
    """A batch line's optional seconds (0 < s <= 600) and seed (a whole number >= 0)."""
    value = row.get("seconds")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not 0 < value <= 600):
        raise SonorantError(f"{where}'seconds' must be a number in (0, 600]")
    value = row.get("seed")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED):
        raise SonorantError(f"{where}'seed' must be a whole number from 0")


def continue_(
    prompt: Path = typer.Argument(..., help="Audio to continue (its last 10 s are the context)."),
    out: Path = AudioOutOpt,
    seconds: float = SecondsOpt,
    only_new: bool = typer.Option(False, "--only-new", help="Write the continuation without the prompt."),
    model: Path = ModelOpt,
    seed: int = SeedOpt,
    temperature: float = TemperatureOpt,
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Continue any audio: the prompt (as the codec renders it) followed by what the LM makes of it."""
    from ..core.audio import audio_info
    from ..tts.bundle import resolve_bundle

    audio_info(prompt)
    check_output_path(out)
    resolve_bundle(model)
    device = check_device(device)
    from ..tts import Synthesizer
    from ..tts.audio_lm import continue_audio

    audio = continue_audio(Synthesizer.from_pretrained(model, device=device), prompt, seconds,
                           include_prompt=not only_new, seed=seed, temperature=temperature)
    _write(out, audio, quiet, "audio")
