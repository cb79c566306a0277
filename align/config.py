"""Typed configuration of the forced aligner; the one source of truth for its defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..core.config import config_from_dict

CONFIG_FORMAT_VERSION = 1


@dataclass(frozen=True)
class AlignerConfig:
    """Two small conv encoders and an L2 attention between them (RAD-TTS' alignment encoder).

    The audio side is the log-mel at the codec's frame rate (16 kHz, hop 320: 50 frames per second), so
    durations count codec frames.
    """

    sample_rate: int = 16000
    hop_length: int = 320
    n_fft: int = 1024
    n_mels: int = 80
    text_vocab_size: int = 256
    text_dim: int = 128
    text_layers: int = 3
    text_kernel: int = 5
    audio_dim: int = 128
    audio_layers: int = 3
    audio_kernel: int = 5
    attention_dim: int = 80
    temperature: float = 0.0005  # scale of the negative squared distance that becomes attention logits
    blank_logprob: float = -1.0  # the forward-sum (CTC) blank's log-probability
    prior_scaling: float = 1.0  # beta-binomial prior: larger = closer to the diagonal
    # Alignment cost per frame (mean negative log attention on the chosen path) above which a transcript
    # is taken not to match its audio; set from the training corpus' distribution when a run is exported.
    max_cost: float = 0.0
    # Seconds added to every word's start and end: the median signed difference to the engines' own word
    # times on the training corpus' validation clips, measured when a run is exported (acoustic onsets of
    # plosives and fricatives come after where the engines mark a word's start).
    word_start_shift: float = 0.0
    word_end_shift: float = 0.0

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return {"config_version": CONFIG_FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlignerConfig:
        data = {k: v for k, v in data.items() if k not in ("config_version", "format_version", "kind")}
        return config_from_dict(cls, data, "aligner config")


@dataclass(frozen=True)
class AlignerLossConfig:
    """Training only: RAD-TTS' binarisation term pulls the soft attention onto the hard (searched) path
    once the soft alignment has formed, so the durations read off the path match what was learnt."""

    binarization_weight: float = 1.0
    binarization_start_step: int = 1000
