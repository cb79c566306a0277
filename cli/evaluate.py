"""`sonorant eval codec|tts|align|generate`."""

from __future__ import annotations

from pathlib import Path

import typer

from .flags import finite

app = typer.Typer(help="Quality evaluation with reports.", no_args_is_help=True)


@app.command()
def align(
    manifest: Path = typer.Option(..., "--manifest", help="Corpus manifest with engine word timings (data build)."),
    report: Path = typer.Option(..., "--report", help="Folder for metrics.json, report.md and alignment.png."),
    model: Path = typer.Option(None, "--model", help="Aligner release or bundle (default: the shipped aligner)."),
    split: str = typer.Option("test", "--split", help="test = the held-out voices."),
    max_items: int = typer.Option(0, "--max-items", min=0, help="At most this many items (0 = all)."),
    speaker: list[str] = typer.Option([], "--speaker", help="Only base speakers starting with this (repeat)."),
) -> None:
    """Word-boundary error of the forced aligner against the engines' own timings, per engine; mismatch
    detection; speed."""
    from rich.progress import Progress

    from ..evaluation.align_eval import evaluate_alignment, write_report
    from ..evaluation.provenance import provenance

    report.mkdir(parents=True, exist_ok=True)
    with Progress(transient=True) as progress:
        bar = progress.add_task("aligning", total=None)
        result = evaluate_alignment(manifest, model, split, max_items, tuple(speaker), report / "alignment.png",
                                    progress=lambda n: progress.advance(bar, n))
    out = write_report(result, report, provenance())
    print(out.with_name("report.md").read_text())


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
    group: str = typer.Option(None, "--group", help="Only items of one group: speech, speech-real (recorded "
                                                    "human voices), music or sound."),
    similarity: bool = typer.Option(False, "--similarity", help="Also the resemblyzer speaker similarity of round "
                                                                "trip and original (speech)."),
    alignments: Path = typer.Option(None, "--alignments", help="Shards with the items' phoneme durations (`data "
                                                               "align`): also the phonetic head's frame accuracy "
                                                               "from codebook 0."),
    ceilings: bool = typer.Option(False, "--ceilings", help="Also the decoder on the unquantized latent (what "
                                                            "quantization costs) and, for an istft decoder, its "
                                                            "amplitudes with the input's phase (what its phase "
                                                            "costs), at the most --codebooks."),
) -> None:
    """PESQ-WB, STOI (speech only), mel and STFT distances, SI-SDR and codebook use, per bitrate."""
    from rich.progress import Progress

    from ..codec.pretrained import codec_dir, load_codec
    from ..core.errors import SonorantError
    from ..evaluation.codec_eval import GROUPS, evaluate_codec, phoneme_labels, write_codec_report
    from ..evaluation.provenance import provenance

    if group is not None and group not in GROUPS:
        raise SonorantError(f"--group must be one of {', '.join(GROUPS)}, not {group!r}")
    codec_model = load_codec(model, device)
    labels = None
    if alignments is not None:
        labels = phoneme_labels(codec_model, codec_dir(model), manifest, alignments)
    recognizer = None
    if asr:
        from ..evaluation.asr import WhisperASR

        recognizer = WhisperASR()
    speaker = None
    if similarity:
        from ..evaluation.speaker import SpeakerEncoder

        speaker = SpeakerEncoder()
    with Progress() as progress:
        bar = progress.add_task("evaluating", total=None)
        examples: dict = {}
        scores = evaluate_codec(codec_model, manifest, codebooks, split, max_items,
                                progress=lambda: progress.advance(bar), asr=recognizer, examples=examples,
                                group=group, speaker=speaker, labels=labels, ceilings=ceilings)
    label = f"{scores[0].items} {group or 'all'} items of the {split} split of `{manifest.parent.name}/{manifest.name}`"
    out = write_codec_report(scores, report, {"kind": "eval-codec", "meta": provenance(device),
                                              "model": str(codec_dir(model)), "manifest": str(manifest),
                                              "split": split, "group": group, "items_label": label,
                                              "fingerprint": codec_model.fingerprint}, examples)
    print((out / "report.md").read_text())


@app.command()
def tts(
    report: Path = typer.Option(..., "--report", help="Folder for metrics.json, report.md and the generated wavs."),
    cases: Path = typer.Option(None, "--cases", help="JSONL of {text, voice_wav, voice_text, reference_wav?}."),
    manifest: Path = typer.Option(None, "--manifest", help="Or: pair each --split item with another utterance of "
                                                           "its speaker as the prompt."),
    model: Path = typer.Option(None, "--model", help="Model bundle (default: the shipped one)."),
    mode: list[str] = typer.Option(["transcript", "reference"], "--mode",
                                   help="Voice-prompt modes to score (repeatable)."),
    split: str = typer.Option("test", "--split"),
    only: list[str] = typer.Option([], "--speaker", help="With --manifest: only these base voices (prefix; "
                                                            "repeat), e.g. flite:slt"),
    voice: str = typer.Option(None, "--voice", help="One prompt for every case: a wav file, or a voice of the "
                                                    "bundle (`default`) with its transcript."),
    voice_text: str = typer.Option(None, "--voice-text", help="The transcript of a --voice wav file."),
    max_cases: int = typer.Option(30, "--max-cases", min=1),
    seed: int = typer.Option(0, "--seed"),
    max_seconds: float = typer.Option(20.0, "--max-seconds", callback=finite,
                                      min=1.0, help="Cap on each generated clip."),
    temperature: float = typer.Option(None, "--temperature", min=0.0, max=5.0, callback=finite,
                                      help="Sampling temperature (default: the synthesizer's)."),
    cfg: float = typer.Option(None, "--cfg", min=1.0, max=10.0, callback=finite,
                              help="Classifier-free guidance on the text (default: the synthesizer's, 2; 1: off)."),
    device: str = typer.Option("cpu", "--device"),
    int8: bool = typer.Option(True, "--int8/--fp32", help="On a CPU: the LM with int8 weights (the default) or "
                                                         "float32."),
    asr: bool = typer.Option(True, "--asr/--no-asr", help="Whisper-base WER/CER (the eval extra)."),
    similarity: bool = typer.Option(True, "--similarity/--no-similarity", help="resemblyzer speaker similarity."),
) -> None:
    """WER/CER, speaker similarity to the prompt, stop rate and speed per mode, next to the ground truth."""
    from rich.progress import Progress

    from ..core.errors import SonorantError
    from ..evaluation.provenance import provenance
    from ..evaluation.tts_eval import (
        MODES,
        cases_from_manifest,
        evaluate_tts,
        first_case_panels,
        read_cases,
        with_voice,
        write_tts_report,
    )
    from ..tts import Synthesizer
    from ..tts.bundle import resolve_bundle

    if (cases is None) == (manifest is None):
        raise SonorantError("give either --cases FILE or --manifest FILE")
    unknown = set(mode) - set(MODES)
    if unknown:
        raise SonorantError(f"unknown --mode {', '.join(sorted(unknown))} (choose from {', '.join(MODES)})")
    chosen = read_cases(cases)[:max_cases] if cases else cases_from_manifest(manifest, split, max_cases, seed,
                                                                                 speakers=tuple(only))
    sampling = {k: v for k, v in {"temperature": temperature, "cfg_scale": cfg}.items() if v is not None}
    if voice is not None:
        chosen = with_voice(chosen, *_prompt_of(voice, voice_text, resolve_bundle(model).voices))
    synth = Synthesizer.from_pretrained(model, device=device, int8=None if int8 else False)
    recognizer = speaker = None
    if asr:
        from ..evaluation.asr import WhisperASR

        recognizer = WhisperASR()
    if similarity:
        from ..evaluation.speaker import SpeakerEncoder

        speaker = SpeakerEncoder()
    with Progress() as progress:
        bar = progress.add_task("evaluating", total=len(chosen) * (len(mode) + 1))
        result = evaluate_tts(synth, chosen, tuple(mode), recognizer, speaker, seed,
                              progress=lambda: progress.advance(bar), keep=report / "wav", max_seconds=max_seconds,
                              sampling=sampling)
    panels = first_case_panels(chosen, report / "wav", tuple(mode), synth.sample_rate)
    voices = f" ({', '.join(only)})" if only else ""
    label = (f"{len(chosen)} {split} items{voices} of `{manifest.parent.name}/{manifest.name}`" if manifest
             else f"{len(chosen)} cases of `{cases.name}`")
    label += f", every one prompted with `{voice}`" if voice else ""
    out = write_tts_report(result, report, {"kind": "eval-tts", "meta": provenance(device),
                                            "model": str(resolve_bundle(model).root), "cases": str(cases or manifest),
                                            "items_label": label, "seed": seed, "max_seconds": max_seconds,
                                            "sampling": sampling}, panels)
    print((out / "report.md").read_text())


@app.command()
def generate(
    manifest: list[Path] = typer.Option(..., "--manifest", help="The corpus the model was trained on (repeat for "
                                                                "several): held-out captions avoid its training "
                                                                "captions; its domains train the tagger."),
    report: Path = typer.Option(..., "--report", help="Folder for metrics.json, report.md, spectrograms and wavs."),
    model: Path = typer.Option(None, "--model", help="Bundle with a caption-conditioned LM (default: the shipped)."),
    pieces: int = typer.Option(30, "--pieces", min=2, help="Held-out music captions."),
    notes: int = typer.Option(10, "--notes", min=0, help="Held-out single-note captions."),
    sounds: int = typer.Option(10, "--sounds", min=0, help="Sound captions of the test split."),
    seconds: float = typer.Option(8.0, "--seconds", callback=finite, min=2.0, max=30.0,
                                  help="Length of each piece (generated and rendered)."),
    cfg: float = typer.Option(3.0, "--cfg", callback=finite, min=1.0, max=10.0, help="Classifier-free guidance."),
    seed: int = typer.Option(0, "--seed"),
    tagger: Path = typer.Option(None, "--tagger", help="A tagger saved by an earlier run (its tagger.json); "
                                                       "default: train one here."),
    renders: int = typer.Option(200, "--tagger-renders", min=20, help="Renders the tagger trains on."),
    per_domain: int = typer.Option(100, "--tagger-per-domain", min=10, help="Items per domain for its domain head."),
    self_check: bool = typer.Option(False, "--self-check", help="Score the ground truth in place of generations "
                                                                  "(no model): what the estimators get right."),
    codec_dir: Path = typer.Option(None, "--codec", help="With --self-check: also score the renders through this "
                                                         "codec release (at --codebooks): what any LM speaking "
                                                         "through it can reach."),
    codebooks: int = typer.Option(4, "--codebooks", min=1, help="Codebooks of --codec's round trip."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Caption adherence of generated music and sound: tempo, key, drums, instrument family and pitch
    against the caption, beside the ground-truth renders (ceiling) and shuffled captions (floor)."""
    import torch
    from rich.progress import Progress

    from ..codec.files import roundtrip_audio
    from ..core.errors import SonorantError
    from ..evaluation.generate_eval import domain_examples, evaluate_generation, read_items, write_generate_report
    from ..evaluation.music_tagger import RATE, MusicTagger, render_examples, train_tagger
    from ..evaluation.provenance import provenance
    from ..tts import Synthesizer
    from ..tts.audio_lm import generate_from_caption
    from ..tts.bundle import resolve_bundle

    items, root = read_items(manifest)
    make = through_codec = model_name = None
    ceiling = None  # (codec, codebooks): the renders through it are scored too, the ceiling of an LM speaking it
    if codec_dir is not None:
        if not self_check:
            raise SonorantError("--codec is for --self-check: a model's own codec is the one its renders go through")
        from ..codec.pretrained import load_codec

        codec = load_codec(codec_dir, device)
        if codec.sample_rate != RATE:
            raise SonorantError(f"the evaluation runs at {RATE} Hz; {codec_dir} makes {codec.sample_rate} Hz")
        if not 1 <= codebooks <= codec.num_codebooks:
            raise SonorantError(f"--codebooks must be between 1 and {codec.num_codebooks} for {codec_dir}")
        model_name, ceiling = str(codec_dir), (codec, codebooks)
    if not self_check:
        bundle = resolve_bundle(model, captions=True)
        synth = Synthesizer.from_pretrained(model, device=device, captions=True)
        if synth.sample_rate != RATE:
            raise SonorantError(f"the evaluation runs at {RATE} Hz; this model's codec makes {synth.sample_rate} Hz")
        model_name, ceiling = str(bundle.root), (synth.codec, synth.lm.num_codebooks)

        def make(caption: str, length: float, clip_seed: int):
            return generate_from_caption(synth, caption, length, cfg_scale=cfg, seed=clip_seed).samples.numpy()

    if ceiling is not None:
        def through_codec(audio):  # what the codec keeps of a clip, at the codebooks the LM speaks
            return roundtrip_audio(ceiling[0], torch.from_numpy(audio), ceiling[1]).numpy()

    report.mkdir(parents=True, exist_ok=True)
    with Progress() as progress:
        if tagger is None:
            bar = progress.add_task("training the tagger", total=renders + per_domain * 3)
            examples = render_examples(renders, seed, progress=lambda n: progress.advance(bar, n))
            domains = domain_examples(items, root, per_domain, seed, progress=lambda: progress.advance(bar))
            trained = train_tagger(examples, domains if len({d for _, d in domains}) > 1 else (), seed)
        else:
            trained = MusicTagger.load(tagger)
        trained.save(report / "tagger.json")
        bar = progress.add_task("generating", total=pieces + notes + sounds)
        result = evaluate_generation(make, trained, items, root, pieces, notes, sounds, seconds, seed,
                                     keep=report / "wav", progress=lambda: progress.advance(bar),
                                     through_codec=through_codec)
    out = write_generate_report(result, report, {"kind": "eval-generate", "meta": provenance(device),
                                                 "model": model_name, "manifests": [str(m) for m in manifest],
                                                 "seed": seed, "seconds": seconds, "cfg": cfg,
                                                 "self_check": self_check,
                                                 "codebooks": codebooks if codec_dir is not None else None})
    print((out / "report.md").read_text())


def _prompt_of(voice: str, text: str | None, bundle_voices) -> tuple[str, str | None]:
    """(wav, transcript) of `--voice`: a wav file (with --voice-text), or a voice in the bundle's voices/."""
    from ..core.errors import SonorantError

    if Path(voice).is_file():
        return str(Path(voice).resolve()), text
    wav = Path(bundle_voices or "") / f"{voice}.wav"
    if bundle_voices is None or not wav.is_file():
        raise SonorantError(f"--voice {voice}: neither a wav file nor a voice of the bundle")
    transcript = wav.with_suffix(".txt")
    return str(wav), text or (transcript.read_text(encoding="utf-8").strip() if transcript.is_file() else None)
