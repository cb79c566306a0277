"""Forced alignment of a recording with its transcript: an aligner release and its phoneme vocabulary.

`ForcedAligner.from_pretrained()` loads the shipped bundle's `aligner/`. It refuses what would give a
confident-looking but meaningless answer: silent audio, more phonemes than frames, and a transcript
whose alignment cost per frame is far above what the aligner's training corpus ever reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.errors import ModelError, SonorantError
from ..text.frontend import WORD, TextFrontend, clean_text, normalize, phonemize
from .model import Aligner
from .pauses import without_edge_silence
from .refine import snapped_words
from .words import Segment, phone_count, spoken_words, timed_segments

FRONTEND_FILE = "frontend.json"
FOLDER = "aligner"  # inside a model bundle
SILENCE_RMS = 1e-4  # quieter than this (about -80 dBFS) is no speech to align


class AlignmentError(SonorantError):
    """A recording and transcript that cannot be aligned with confidence."""


@dataclass
class ForcedAlignment:
    words: list[Segment]
    phonemes: list[Segment]
    durations: list[int]  # frames per utterance token (language tag, phonemes, closing boundary)
    ipa: str
    cost: float  # mean -log P(token | frame) along the path
    frames: int
    frame_rate: float

    def to_dict(self) -> dict:
        return {"words": [w.to_dict("word") for w in self.words],
                "phonemes": [p.to_dict("phoneme") for p in self.phonemes],
                "cost": round(self.cost, 4), "duration": round(self.frames / self.frame_rate, 3)}


def aligner_dir(model: str | Path | None = None) -> Path:
    """The aligner release of a bundle (None = the shipped one), or `model` itself when it is one."""
    from ..core.paths import default_model_dir

    root = Path(model) if model is not None else default_model_dir()
    for candidate in (root, root / FOLDER):
        if (candidate / "config.json").is_file() and (candidate / FRONTEND_FILE).is_file():
            return candidate
    raise ModelError(f"{root}: no aligner here (expected {FOLDER}/ with config.json, model.safetensors and "
                     f"{FRONTEND_FILE})")


class ForcedAligner:
    def __init__(self, aligner: Aligner, frontend: TextFrontend) -> None:
        self.aligner, self.frontend = aligner.eval(), frontend

    @classmethod
    def from_pretrained(cls, model: str | Path | None = None, device: str = "cpu") -> ForcedAligner:
        directory = aligner_dir(model)
        return cls(Aligner.from_pretrained(directory).to(device), TextFrontend.load(directory / FRONTEND_FILE))

    @property
    def sample_rate(self) -> int:
        return self.aligner.config.sample_rate

    @property
    def fingerprint(self) -> str:
        return self.aligner.fingerprint

    def tokens(self, text: str, language: str) -> tuple[str, list[int], list[str], list[int]]:
        """(IPA, utterance ids, the normalised text's words, each word's own phoneme symbol count)."""
        if not clean_text(text):
            raise AlignmentError("the transcript is empty")
        words = spoken_words(normalize(clean_text(text), language))
        if not words:
            raise AlignmentError("the transcript has no words to align")
        ipa, *alone = phonemize([text, *words], language)
        lengths = [phone_count(w.replace(WORD, "")) for w in alone]
        return ipa, self.frontend.utterance_ids(ipa, language), words, lengths

    @torch.no_grad()
    def align(self, wav: torch.Tensor, text: str, language: str = "en-us", check_cost: bool = True) -> ForcedAlignment:
        """wav [1, N] at `sample_rate` and its transcript -> word and phoneme times (AlignmentError when the
        two cannot be aligned with confidence)."""
        ipa, ids, words, lengths = self.tokens(text, language)
        return self.align_tokens(wav, ipa, ids, words, check_cost, lengths)

    @torch.no_grad()
    def align_tokens(self, wav: torch.Tensor, ipa: str, ids: list[int], words: list[str] | None,
                     check_cost: bool = True, word_lengths: list[int] | None = None) -> ForcedAlignment:
        """`align` for an already phonemised transcript."""
        device = next(self.aligner.parameters()).device
        if float(wav.pow(2).mean().sqrt()) < SILENCE_RMS:
            raise AlignmentError("the audio is silent: there is no speech to align")
        mel = self.aligner.mel(wav.reshape(1, -1).to(device))
        frames = mel.shape[-1]
        if len(ids) > frames:
            raise AlignmentError(f"the transcript has {len(ids)} phoneme tokens, more than the audio's {frames} "
                                 f"frames ({frames / self.aligner.frame_rate:.2f} s): it cannot be this recording's")
        tokens = torch.tensor([ids], device=device)
        result = self.aligner.align(tokens, torch.tensor([len(ids)], device=device), mel,
                                    torch.tensor([frames], device=device))
        durations = without_edge_silence(result.durations[0].tolist(), ipa, mel[0])
        cost = float(result.cost[0])
        limit = self.aligner.config.max_cost
        if check_cost and limit > 0 and cost > limit:
            raise AlignmentError(f"the transcript does not match the audio (alignment cost {cost:.2f} per frame; "
                                 f"the aligner's training speech stays under {limit:.2f})")
        c = self.aligner.config
        word_segments, phones = timed_segments(ipa, durations, c.frame_rate, words, word_lengths,
                                               (c.word_start_shift, c.word_end_shift))
        word_segments = snapped_words(word_segments, wav, self.sample_rate)
        return ForcedAlignment(word_segments, phones, durations, ipa, cost, frames, self.aligner.frame_rate)
