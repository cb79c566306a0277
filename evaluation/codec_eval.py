"""`sonorant eval codec`: quality of a codec on a manifest's held-out audio, per bitrate."""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..codec import Codec, codebook_usage
from ..codec.files import decode_audio, encode_audio
from ..codec.istft_decoder import FrameDecoder
from ..core.audio import load_audio
from ..core.errors import SonorantError
from ..data.build import REAL_VOICES
from ..data.frame_labels import FrameLabels, frame_labels
from ..data.manifest import Item, read_manifest
from . import metrics as M

GROUPS = ("speech", "speech-real", "music", "sound")  # see item_group


CODES, LATENT, INPUT_PHASE = "codes", "latent", "input phase"  # CodecScore.variant


@dataclass
class CodecScore:
    codebooks: int
    kbps: float | None  # None for the latent ceiling
    items: int
    pesq_wb: float | None
    stoi: float | None
    mel_distance: float
    stft_distance: float
    si_sdr: float
    perplexity: list[float]
    used_fraction: list[float]
    wer: float | None = None  # word error rate (%) of an offline ASR on the reconstructions, with --asr
    reference_wer: float | None = None  # the same ASR on the original audio: the floor to compare with
    dnsmos: float | None = None  # DNSMOS overall (distortion proxy, speech only), with speechmos installed
    reference_dnsmos: float | None = None  # the same on the original audio
    speaker_similarity: float | None = None  # resemblyzer cosine of round trip and original (speech, --similarity)
    # Frame accuracy of the phonetic head read from codebook 0 alone against the aligner's labels (--alignments);
    # the same at every codebook count.
    phoneme_accuracy: float | None = None
    # What was decoded: the codes (a round trip), or a ceiling (--ceilings): the unquantized latent ("latent"),
    # or the codes' amplitudes with the input's phase ("input phase", an istft decoder's).
    variant: str = CODES

    @property
    def label(self) -> str:
        return {LATENT: "latent, no quantizer", INPUT_PHASE: f"{self.codebooks}, input's phase"}.get(
            self.variant, str(self.codebooks))


def evaluate_codec(codec: Codec, manifest: str | Path, codebooks: list[int], split: str = "test",
                   max_items: int = 50, progress=None, asr=None, examples: dict | None = None,
                   group: str | None = None, speaker=None, labels: FrameLabels | None = None,
                   ceilings: bool = False) -> list[CodecScore]:
    """Score the round trips of a manifest's `split` items at each codebook count; with `asr` (an object
    with `transcribe(audio16k) -> str`), also the word error rate on items that have a text; with `speaker`
    (an object with `similarity(a, b, sample_rate)`), the speaker similarity of round trip and original
    (speech). `examples`, if
    given, receives the first item's reference ("reference") and reconstruction per codebook count. `group`
    keeps only items of one group (see `item_group`). With `labels` (`data.frame_labels`, in the classes of
    the codec's phonetic head), also the head's frame accuracy from codebook 0 on the items that have them.
    With `ceilings`, two more rows: the decoder on the unquantized latent (what quantization costs) and, for
    an istft decoder, the amplitudes of the most codebooks with the input's phase (what its phase costs)."""
    manifest = Path(manifest)
    items = [it for it in stable_order(read_manifest(manifest))
             if it.split == split and group in (None, item_group(it))][:max_items]
    if not items:
        raise SonorantError(f"{manifest}: no items in split {split!r}" + (f" and group {group!r}" if group else ""))
    sr = codec.sample_rate
    refs = [load_audio(manifest.parent / it.path, sr)[0] for it in items]
    speech = all(it.domain == "speech" for it in items)
    transcribed = [(i, it.text) for i, it in enumerate(items) if it.text] if asr is not None else []
    if transcribed and sr != 16000:
        raise SonorantError("--asr needs a 16 kHz codec")
    reference_wer = _wer(asr, [(refs[i], text) for i, text in transcribed]) if transcribed else None
    with_dnsmos = speech and M.dnsmos_available()
    reference_dnsmos = float(np.mean([M.dnsmos(r.numpy(), sr) for r in refs])) if with_dnsmos else None

    def measure(ref: torch.Tensor, est: torch.Tensor) -> dict:
        r, e = ref.numpy().astype(np.float64), est.numpy().astype(np.float64)
        return {
            "pesq_wb": M.pesq_wb(r, e, sr) if speech else None,
            "stoi": M.stoi(r, e, sr) if speech else None,
            "mel_distance": M.mel_distance(r.astype(np.float32), e.astype(np.float32), sr),
            "stft_distance": M.stft_distance(r.astype(np.float32), e.astype(np.float32)),
            "si_sdr": M.si_sdr(r, e),
            "dnsmos": M.dnsmos(e, sr) if with_dnsmos else None,
            "speaker_similarity": speaker.similarity(r, e, sr) if speaker is not None and speech else None,
        }

    def wer_of(outputs: list[torch.Tensor]) -> float | None:
        return _wer(asr, [(outputs[i], text) for i, text in transcribed]) if transcribed else None

    accuracy = None
    scores = []
    for k in codebooks:
        rows, all_codes, outputs = [], [], []
        for ref in refs:
            codes = encode_audio(codec, ref[None], k)
            est = torch.cat(list(decode_audio(codec, codes)))[: ref.shape[-1]]
            all_codes.append(codes)
            outputs.append(est)
            if examples is not None and len(outputs) == 1:
                examples.update({"reference": ref.numpy(), k: est.numpy(), "sample_rate": sr})
            rows.append(measure(ref, est))
            if progress:
                progress()
        usage = codebook_usage(torch.cat(all_codes, dim=-1), codec.codebook_size)
        if labels is not None and accuracy is None:  # codebook 0 is the same at every codebook count
            accuracy = phoneme_accuracy(codec, [manifest.parent / it.path for it in items], all_codes, labels)

        mean = partial(_mean, rows)

        scores.append(CodecScore(
            codebooks=k, kbps=codec.config.bitrate(k) / 1000, items=len(rows), pesq_wb=mean("pesq_wb"),
            stoi=mean("stoi"), mel_distance=mean("mel_distance"), stft_distance=mean("stft_distance"),
            si_sdr=mean("si_sdr"), perplexity=[round(float(p), 1) for p in usage.perplexity],
            used_fraction=[round(float(u), 3) for u in usage.used_fraction],
            wer=wer_of(outputs),
            reference_wer=reference_wer, dnsmos=mean("dnsmos"), reference_dnsmos=reference_dnsmos,
            speaker_similarity=mean("speaker_similarity"), phoneme_accuracy=accuracy,
        ))
    if ceilings:
        scores += _ceilings(codec, refs, max(codebooks), measure, wer_of, reference_wer, progress)
    return scores


def _mean(rows: list[dict], key: str) -> float | None:
    values = [row[key] for row in rows if row[key] is not None]
    return float(np.mean(values)) if values else None


def _ceilings(codec: Codec, refs: list[torch.Tensor], k: int, measure, wer_of, reference_wer: float | None,
              progress) -> list[CodecScore]:
    """The latent row and, for an istft decoder, the input-phase row at `k` codebooks (offline decoding)."""
    decoders = {LATENT: codec.autoencode}
    if isinstance(codec.decoder, FrameDecoder):
        decoders[INPUT_PHASE] = lambda wav: codec.decode_with_phase(codec.encode(wav, k), wav)
    scores = []
    for variant, decode in decoders.items():
        rows, outputs = [], []
        for ref in refs:
            wav = ref.to(next(codec.parameters()).device)[None, None]
            outputs.append(decode(wav)[0, 0, : ref.shape[-1]].float().cpu())
            rows.append(measure(ref, outputs[-1]))
            if progress:
                progress()

        mean = partial(_mean, rows)

        scores.append(CodecScore(
            codebooks=k if variant == INPUT_PHASE else codec.num_codebooks, items=len(rows),
            kbps=codec.config.bitrate(k) / 1000 if variant == INPUT_PHASE else None,
            pesq_wb=mean("pesq_wb"), stoi=mean("stoi"), mel_distance=mean("mel_distance"),
            stft_distance=mean("stft_distance"), si_sdr=mean("si_sdr"), perplexity=[], used_fraction=[],
            wer=wer_of(outputs), reference_wer=reference_wer, dnsmos=mean("dnsmos"),
            reference_dnsmos=None, speaker_similarity=mean("speaker_similarity"), variant=variant))
    return scores


def phoneme_labels(codec: Codec, directory: Path, manifest: str | Path, alignments: str | Path) -> FrameLabels:
    """Frame labels of a manifest's aligned items in the classes of the codec's phonetic head (its release's
    frontend.json, which `train export` writes beside the weights)."""
    from ..text.frontend import TextFrontend

    classes = directory / "frontend.json"
    if codec.phonetic is None or not classes.is_file():
        raise SonorantError(f"{directory}: this codec has no phonetic head (and no frontend.json with its classes)")
    return frame_labels(manifest, alignments, TextFrontend.load(classes))


def phoneme_accuracy(codec: Codec, paths: list[Path], codes: list[torch.Tensor], labels: FrameLabels) -> float | None:
    """Share of the labelled frames of these items (their codes [K, T]) whose phoneme the codec's phonetic head
    reads from codebook 0 alone (None when no item has labels)."""
    correct = total = 0
    for path, item_codes in zip(paths, codes, strict=True):
        truth = labels.frames.get(path)
        if truth is None:
            continue
        guess = codec.phonemes(item_codes[None, :1])[0]
        n = min(guess.shape[0], truth.shape[0])
        correct += int((guess[:n] == truth[:n]).sum())
        total += n
    return correct / total if total else None


def stable_order(items: list[Item]) -> list[Item]:
    """A shuffle fixed by the item ids: the first n items of a split come from many voices and sources, not
    from the one the manifest lists first."""
    return sorted(items, key=lambda it: zlib.crc32(it.id.encode()))


def item_group(item: Item) -> str:
    """speech, speech-real (recorded human voices), music or sound: PESQ / STOI are scored on speech only."""
    return "speech-real" if (item.base_speaker or "").startswith(REAL_VOICES) else item.domain


def _wer(asr, pairs: list[tuple[torch.Tensor, str]]) -> float:
    from .asr import word_errors

    errors = words = 0
    for audio, text in pairs:
        e, n = word_errors(text, asr.transcribe(audio.numpy()))
        errors, words = errors + e, words + n
    return 100.0 * errors / max(words, 1)


def write_codec_report(scores: list[CodecScore], out_dir: str | Path, meta: dict,
                       examples: dict | None = None) -> Path:
    """metrics.json, report.md and, with matplotlib, quality_vs_bitrate.png and spectrograms.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps({**meta, "scores": [asdict(s) for s in scores]}, indent=2) + "\n")
    lines = score_table(scores)
    lines += ["", *_figures(scores, out_dir, examples)]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    return out_dir


def score_table(scores: list[CodecScore]) -> list[str]:
    """Markdown rows, one per codebook count, with the reference figures (WER, DNSMOS) below."""
    with_wer = any(s.wer is not None for s in scores)
    with_mos = any(s.dnsmos is not None for s in scores)
    with_sim = any(s.speaker_similarity is not None for s in scores)
    lines = ["| codebooks | kbps | PESQ-WB | STOI | mel dist | STFT dist | SI-SDR (dB) | mean perplexity |"
             + (" WER % |" if with_wer else "") + (" DNSMOS |" if with_mos else "") + (" SIM |" if with_sim else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if with_wer else "") + ("---|" if with_mos else "")
             + ("---|" if with_sim else "")]
    for s in scores:
        pesq = f"{s.pesq_wb:.2f}" if s.pesq_wb is not None else "-"
        stoi = f"{s.stoi:.3f}" if s.stoi is not None else "-"
        codes = s.variant == CODES
        wer = f" {s.wer:.1f} |" if s.wer is not None else " - |"
        sim = f" {s.speaker_similarity:.3f} |" if s.speaker_similarity is not None else " - |"
        kbps = f"{s.kbps:g}" if s.kbps is not None else "-"
        lines.append(f"| {s.label} | {kbps} | {pesq} | {stoi} | {s.mel_distance:.3f} | "
                     f"{s.stft_distance:.3f} | {s.si_sdr:.1f} | {f'{np.mean(s.perplexity):.0f}' if codes else '-'} |"
                     + (wer if with_wer else "") + (f" {s.dnsmos:.2f} |" if with_mos else "")
                     + (sim if with_sim else ""))
    if with_wer:
        lines.append(f"\nWER of the same ASR on the original audio: {scores[0].reference_wer:.1f} %")
    if scores and scores[0].phoneme_accuracy is not None:
        lines.append(f"\nPhonetic head, codebook 0 alone: {100 * scores[0].phoneme_accuracy:.1f} % of the aligned "
                     f"frames read as the aligner's phoneme")
    if with_mos:
        lines.append(f"\nDNSMOS (P.835 overall, a distortion proxy, not a naturalness MOS) of the original audio: "
                     f"{scores[0].reference_dnsmos:.2f}")
    return lines


def _figures(scores: list[CodecScore], out_dir: Path, examples: dict | None) -> list[str]:
    from .plots import MISSING, plots_available, quality_vs_bitrate, spectrograms

    if not plots_available():
        return [f"({MISSING})"]
    scores = [s for s in scores if s.variant == CODES]
    kbps = [s.kbps for s in scores]
    quality_vs_bitrate(kbps, {"PESQ-WB": [s.pesq_wb for s in scores], "STOI": [s.stoi for s in scores],
                              "mel distance": [s.mel_distance for s in scores],
                              "SI-SDR (dB)": [s.si_sdr for s in scores]}, out_dir / "quality_vs_bitrate.png")
    lines = ["![quality against bitrate](quality_vs_bitrate.png)"]
    if examples:
        rate = examples["sample_rate"]
        panels = [("reference", examples["reference"], rate)]
        panels += [(f"{s.codebooks} codebooks, {s.kbps:g} kbps", examples[s.codebooks], rate)
                   for s in scores if s.codebooks in examples]
        spectrograms(panels, out_dir / "spectrograms.png")
        lines.append("![reference and reconstructions](spectrograms.png)")
    return lines
