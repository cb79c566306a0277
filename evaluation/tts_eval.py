"""`sonorant eval tts`: intelligibility (Whisper-base WER/CER), speaker similarity to the prompt
(resemblyzer cosine), how often the model stops by itself, and speed, per voice-prompt mode; with the
ground-truth recordings scored the same way as the baseline row, as papers report GT WER / SIM.

A case is `{text, voice_wav, voice_text, reference_wav?}`: say `text` in the voice of `voice_wav`
(whose transcript is `voice_text`); `reference_wav` is a recording of `text` by that speaker.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..core.audio import load_audio
from ..core.errors import SonorantError
from ..core.jsonl import read_jsonl, relative_to_file
from ..data.manifest import of_speakers, read_manifest
from . import metrics as M
from .asr import char_errors, runaway, word_errors

MODES = ("transcript", "reference")
RECORDINGS = ("ground truth", "codec round trip")  # rows scored on the reference recordings, not generated


@dataclass
class TTSCase:
    text: str
    voice_wav: str
    voice_text: str | None = None
    reference_wav: str | None = None
    id: str | None = None
    speaker: str | None = None  # for the different-speaker baseline of SIM


@dataclass
class TTSScore:
    system: str  # "transcript" / "reference" mode, or one of RECORDINGS
    cases: int
    wer: float  # % over all words
    cer: float  # % over all characters
    similarity: float  # mean cosine to the voice prompt
    stopped: float | None = None  # share of cases the model ended by itself
    duration_ratio: float | None = None  # generated / reference duration (median)
    rtf: float | None = None  # synthesis time / audio time (mean)
    first_audio_s: float | None = None  # streamed first chunk, median
    dnsmos: float | None = None  # DNSMOS overall (distortion proxy, not naturalness), with speechmos installed


def read_cases(path: str | Path) -> list[TTSCase]:
    """JSONL cases; relative paths are relative to the file's folder."""
    cases = []
    for number, row in read_jsonl(path, "cases"):
        case = TTSCase(**{k: row.get(k) for k in TTSCase.__dataclass_fields__})
        if not isinstance(case.text, str) or not case.text or not isinstance(case.voice_wav, str) or not case.voice_wav:
            raise SonorantError(f"{path}:{number}: bad cases line (needs text and voice_wav)")
        for name in ("voice_wav", "reference_wav"):
            value = getattr(case, name)
            if value:
                setattr(case, name, relative_to_file(path, value))
        cases.append(case)
    return cases


def cases_from_manifest(manifest: str | Path, split: str = "test", max_cases: int = 30, seed: int = 0,
                        min_prompt_seconds: float = 3.0, min_target_seconds: float = 2.0,
                        speakers: tuple[str, ...] = ()) -> list[TTSCase]:
    """Pair items of `split` (with a text; at least `min_target_seconds` long where the speaker has such,
    since ASR is unreliable on one-word clips) with another utterance of their speaker as the voice prompt
    (at least `min_prompt_seconds` long when the speaker has one); speakers take turns. `speakers` (base-speaker
    prefixes) keeps only those voices."""
    manifest = Path(manifest)
    items = [i for i in read_manifest(manifest) if i.split == split and i.text and i.speaker
             and of_speakers(i.base_speaker, i.speaker, speakers)]
    by_speaker: dict[str, list] = {}
    for item in items:
        by_speaker.setdefault(item.speaker, []).append(item)
    rng = random.Random(seed)
    queues = []
    for speaker in sorted(by_speaker):
        if len(by_speaker[speaker]) < 2:
            continue
        group = [i for i in by_speaker[speaker] if i.duration >= min_target_seconds] or list(by_speaker[speaker])
        rng.shuffle(group)
        queues.append(group)
    cases: list[TTSCase] = []
    root = manifest.parent
    while queues and len(cases) < max_cases:
        for group in list(queues):
            target = group.pop()
            prompts = [i for i in by_speaker[target.speaker] if i.id != target.id]
            long = [i for i in prompts if i.duration >= min_prompt_seconds] or prompts
            prompt = rng.choice(long)
            cases.append(TTSCase(target.text, str(root / prompt.path), prompt.text, str(root / target.path), target.id,
                                 target.speaker))
            if not group:
                queues.remove(group)
            if len(cases) == max_cases:
                break
    if not cases:
        only = f" of {', '.join(speakers)}" if speakers else ""
        raise SonorantError(f"{manifest}: no {split} items{only} with text and a second utterance of their speaker")
    return cases


def with_voice(cases: list[TTSCase], wav: str, text: str | None) -> list[TTSCase]:
    """The same cases, every one prompted with `wav` (whose transcript is `text`): one voice on the texts."""
    return [replace(c, voice_wav=wav, voice_text=text, speaker=None) for c in cases]


class _Tally:
    def __init__(self) -> None:
        self.words = self.word_errors = self.chars = self.char_errors = 0
        self.sims: list[float] = []
        self.mos: list[float] = []

    def add(self, text: str, hypothesis: str, similarity: float, audio: np.ndarray | None = None,
            rate: int = 16000) -> None:
        if audio is not None and M.dnsmos_available():
            self.mos.append(M.dnsmos(audio, rate))
        e, n = word_errors(text, hypothesis)
        ce, cn = char_errors(text, hypothesis)
        self.word_errors, self.words = self.word_errors + e, self.words + n
        self.char_errors, self.chars = self.char_errors + ce, self.chars + cn
        self.sims.append(similarity)

    def score(self, system: str, **extra) -> TTSScore:
        return TTSScore(system, len(self.sims), 100.0 * self.word_errors / max(self.words, 1),
                        100.0 * self.char_errors / max(self.chars, 1), float(np.mean(self.sims)),
                        dnsmos=float(np.mean(self.mos)) if self.mos else None, **extra)


def evaluate_tts(synth, cases: list[TTSCase], modes: tuple[str, ...] = MODES, asr=None, speaker=None,
                 seed: int = 0, progress: Callable[[], None] | None = None, keep: Path | None = None,
                 max_seconds: float = 20.0, sampling: dict | None = None) -> dict:
    """Scores per mode plus the ground truth; `keep` saves every generated wav there; `sampling` holds
    SynthesisOptions fields (temperature=, cfg_scale=, ...) that differ from the defaults."""
    from ..core.audio import write_audio
    from ..tts.synthesizer import SynthesisInfo

    rate = synth.sample_rate
    prompts = [load_audio(c.voice_wav, rate)[0].numpy() for c in cases]
    rows: list[dict] = []
    scores = []
    for mode in modes:
        tally, ended, ratios, rtfs, firsts = _Tally(), [], [], [], []
        for i, case in enumerate(cases):
            voice_text = case.voice_text if mode == "transcript" else None
            if mode == "transcript" and not voice_text:
                raise SonorantError(f"case {case.id or i}: transcript mode needs voice_text")
            info = SynthesisInfo(mode="none")
            start = time.perf_counter()
            chunks = list(synth.stream(case.text, voice=case.voice_wav, voice_text=voice_text, seed=seed + i,
                                       info=info, max_seconds=max_seconds, **(sampling or {})))
            elapsed = time.perf_counter() - start
            audio = np.concatenate([c.samples.numpy() for c in chunks]) if chunks else np.zeros(rate // 10, np.float32)
            hypothesis = asr.transcribe(audio) if asr else ""
            similarity = speaker.similarity(audio, prompts[i], rate) if speaker else float("nan")
            tally.add(case.text, hypothesis, similarity, audio, rate)
            ended.append(all(info.ended))
            rtfs.append(elapsed / max(len(audio) / rate, 1e-9))
            firsts.append(info.first_audio_s or elapsed)
            if case.reference_wav:
                reference = load_audio(case.reference_wav, rate)
                ratios.append(len(audio) / reference.shape[-1])
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                write_audio(keep / f"{mode}-{i:03d}.wav", torch.from_numpy(audio), rate)
            rows.append({"mode": mode, "case": case.id or i, "text": case.text, "hypothesis": hypothesis,
                         "similarity": similarity, "ended": ended[-1], "seconds": len(audio) / rate})
            if progress:
                progress()
        scores.append(tally.score(mode, stopped=float(np.mean(ended)),
                                  duration_ratio=float(np.median(ratios)) if ratios else None,
                                  rtf=float(np.mean(rtfs)), first_audio_s=float(np.median(firsts))))
    truth = [c for c in cases if c.reference_wav]
    if truth:
        # The recordings themselves, and the same recordings through the codec at the LM's codebooks: the
        # ceiling any generation can reach, so a poor score can be put on the codec or on the LM.
        tallies = {system: _Tally() for system in RECORDINGS}
        for case in truth:
            reference = load_audio(case.reference_wav, rate)
            prompt = prompts[cases.index(case)]
            for system, tally in tallies.items():
                audio = (reference if system == "ground truth" else codec_round_trip(synth, reference))[0].numpy()
                tally.add(case.text, asr.transcribe(audio) if asr else "",
                          speaker.similarity(audio, prompt, rate) if speaker else float("nan"), audio, rate)
            if progress:
                progress()
        scores.extend(tally.score(system) for system, tally in tallies.items())
    different = _cross_speaker_similarity(cases, prompts, rate, speaker) if speaker else None
    return {"scores": [asdict(s) for s in scores], "different_speakers_similarity": different, "items": rows}


@torch.inference_mode()
def codec_round_trip(synth, audio: torch.Tensor) -> torch.Tensor:
    """[1, N] audio encoded with the synthesizer's codec at as many codebooks as its LM models, decoded."""
    codec = synth.codec
    codes = codec.encode(audio[None].to(synth.device), num_codebooks=synth.lm.num_codebooks)
    return codec.decode(codes)[0, :, : audio.shape[-1]].clamp(-1, 1).cpu()


def first_case_panels(cases: list[TTSCase], keep: Path, modes: tuple[str, ...], rate: int
                      ) -> list[tuple[str, np.ndarray, int]]:
    """Prompt, reference and each mode's generation of the first case, for the spectrogram figure."""
    case = cases[0]
    panels = [("voice prompt", load_audio(case.voice_wav, rate)[0].numpy(), rate)]
    if case.reference_wav:
        panels.append(("reference recording", load_audio(case.reference_wav, rate)[0].numpy(), rate))
    for mode in modes:
        path = keep / f"{mode}-000.wav"
        if path.is_file():
            panels.append((f"generated ({mode} mode)", load_audio(path, rate, allow_silent=True)[0].numpy(), rate))
    return panels


def _cross_speaker_similarity(cases: list[TTSCase], prompts: list[np.ndarray], rate: int, speaker) -> float | None:
    """Mean cosine between the prompts of cases with different (known) speakers: the level SIM must beat."""
    embeddings = [speaker.embed(p, rate) for p in prompts]
    sims = [float(embeddings[i] @ embeddings[j]) for i in range(len(cases)) for j in range(i + 1, len(cases))
            if cases[i].speaker and cases[j].speaker and cases[i].speaker != cases[j].speaker]
    return float(np.mean(sims)) if sims else None


def write_tts_report(result: dict, out_dir: str | Path, meta: dict,
                     examples: list[tuple[str, np.ndarray, int]] | None = None) -> Path:
    """metrics.json, report.md and, with matplotlib, speed.png and spectrograms.png of `examples`
    ((title, audio, rate) panels, e.g. from `first_case_panels`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps({**meta, **result}, indent=2) + "\n")
    lines = [*tts_table(result), "", *_figures(result, out_dir, examples or [])]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    return out_dir


def tts_table(result: dict) -> list[str]:
    """Markdown table of `evaluate_tts`'s scores, with the notes that read it."""
    lines = ["| system | cases | WER % | CER % | SIM to prompt | stopped by itself | length / reference | RTF | "
             "first audio | DNSMOS |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in result["scores"]:
        def f(value, spec, unit=""):
            return "-" if value is None else format(value, spec) + unit
        lines.append(f"| {s['system']} | {s['cases']} | {s['wer']:.1f} | {s['cer']:.1f} | {s['similarity']:.3f} | "
                     f"{f(s['stopped'], '.0%')} | {f(s['duration_ratio'], '.2f')} | {f(s['rtf'], '.2f')} | "
                     f"{f(s['first_audio_s'], '.2f', ' s')} | {f(s.get('dnsmos'), '.2f')} |")
    if any(s.get("dnsmos") is not None for s in result["scores"]):
        lines.append("\nDNSMOS: P.835 overall score of the audio alone, a proxy for distortion and noise, not a "
                     "naturalness MOS.")
    if result.get("different_speakers_similarity") is not None:
        lines.append(f"\nSIM between the prompts of different speakers: {result['different_speakers_similarity']:.3f}")
    looped = [str(row["case"]) for row in result.get("items", []) if runaway(row["hypothesis"])]
    if looped:
        label = "cases" if len(looped) > 1 else "case"
        lines.append(f"\nWhisper looped on {len(looped)} of {len(result['items'])} generations (a transcript that "
                     f"repeats itself past Whisper's own compression-ratio limit): {label} {', '.join(looped)}. "
                     "Their insertions count in the WER above.")
    return lines


def _figures(result: dict, out_dir: Path, examples: list[tuple[str, np.ndarray, int]]) -> list[str]:
    from .plots import MISSING, plots_available, spectrograms, speed_bars

    if not plots_available():
        return [f"({MISSING})"]
    scores = [s for s in result["scores"] if s["system"] not in RECORDINGS]
    lines = []
    if scores:
        speed_bars([s["system"] for s in scores], {"real-time factor": [s["rtf"] for s in scores],
                                                    "first audio (s)": [s["first_audio_s"] for s in scores]},
                   out_dir / "speed.png", unit="lower is faster")
        lines.append("![real-time factor and first-audio latency](speed.png)")
    if examples:
        spectrograms(examples, out_dir / "spectrograms.png")
        lines.append("![prompt, reference and generations of the first case](spectrograms.png)")
    return lines
