"""Typed configuration of the streaming RVQ codec; the one source of truth for its defaults."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..core.config import config_from_dict

CONFIG_FORMAT_VERSION = 1


@dataclass(frozen=True)
class QuantizerConfig:
    """Residual VQ options, all set explicitly (see `quantizer.py` for why each value)."""

    num_codebooks: int = 8
    codebook_size: int = 1024
    # Dimension of the code lookup; None = the latent dimension, no projection. A low-dimensional
    # lookup (DAC's factorised codes) needs codebooks trained by gradient: with EMA codebooks the
    # per-level projections are not learnt to invert each other and the residual grows (measured).
    codebook_dim: int | None = None
    ema_decay: float = 0.99
    kmeans_init: bool = True
    kmeans_iters: int = 10
    # A code whose EMA cluster size falls below this is replaced by a random current input vector.
    dead_code_threshold: float = 2.0
    commitment_weight: float = 1.0
    rotation_trick: bool = True
    # Probability, per training item, of keeping only the first n ~ U{1..K} codebooks, so one model
    # serves every bitrate from 1 to K codebooks.
    dropout_probability: float = 0.5


@dataclass(frozen=True)
class CodecConfig:
    """A causal codec. Defaults: SEANet/DAC-style, 16 kHz mono, hop 320 (50 Hz), 8 x 1024 codes = 4 kbps."""

    sample_rate: int = 16000
    # "seanet": strided convs down from the sample rate (width encoder_dim, doubling per stride); "spectral":
    # the decoder's framing's spectra and causal ConvNeXt blocks at the frame rate (`spectral_encoder.py`).
    encoder: str = "seanet"
    encoder_dim: int = 16
    encoder_blocks: int = 8  # spectral encoder: ConvNeXt blocks of width encoder_dim
    decoder_dim: int = 192
    latent_dim: int = 64
    strides: tuple[int, ...] = (2, 4, 5, 8)
    kernel_size: int = 7
    residual_dilations: tuple[int, ...] = (1, 3, 9)
    activation: str = "snake"
    # "seanet": transposed convs up to the sample rate; "istft": ConvNeXt blocks at the frame rate that
    # predict amplitude and phase spectra, then an inverse STFT (`istft_decoder.py`).
    decoder: str = "seanet"
    decoder_blocks: int = 8  # istft decoder: ConvNeXt blocks of width decoder_dim
    # The istft decoder's phase: "predicted" by its head in every frame, or "locked": made from the predicted
    # amplitudes by a phase-locked vocoder, so that a steady tone keeps its pitch (`phase_lock.py`).
    decoder_phase: str = "predicted"
    # Classes of a frame-level phoneme head on the first quantizer level (0 = none): trained on the
    # aligner's durations, it makes codebook 0 carry the phonetic content (`data/frame_labels.py`).
    phonetic_classes: int = 0
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)

    def __post_init__(self) -> None:
        if self.activation not in ("snake", "elu"):
            raise ValueError(f"activation must be 'snake' or 'elu', not {self.activation!r}")
        if self.encoder not in ("seanet", "spectral"):
            raise ValueError(f"encoder must be 'seanet' or 'spectral', not {self.encoder!r}")
        if self.decoder not in ("seanet", "istft"):
            raise ValueError(f"decoder must be 'seanet' or 'istft', not {self.decoder!r}")
        if self.decoder_phase not in ("predicted", "locked"):
            raise ValueError(f"decoder_phase must be 'predicted' or 'locked', not {self.decoder_phase!r}")

    @property
    def hop_length(self) -> int:
        return math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def bits_per_code(self) -> int:
        return max(1, math.ceil(math.log2(self.quantizer.codebook_size)))

    @property
    def decoder_lag(self) -> int:
        """Samples by which streaming decode output lags the codes: the istft decoder's window minus hop."""
        return self.hop_length if self.decoder == "istft" else 0

    @property
    def algorithmic_latency_ms(self) -> float:
        """Smallest emittable chunk (one hop) plus the decoder's lag (no layer looks ahead), in ms."""
        return 1000.0 * (self.hop_length + self.decoder_lag) / self.sample_rate

    def bitrate(self, num_codebooks: int | None = None) -> float:
        """Bits per second with `num_codebooks` codebooks (all of them by default)."""
        k = self.quantizer.num_codebooks if num_codebooks is None else num_codebooks
        return self.frame_rate * k * self.bits_per_code

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodecConfig:
        return config_from_dict(cls, migrate_config(dict(data)), "codec config")


def migrate_config(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored config up to the current format. The one place that knows old formats."""
    version = data.pop("format_version", CONFIG_FORMAT_VERSION)
    data.pop("kind", None)
    if version > CONFIG_FORMAT_VERSION:
        raise ValueError(f"codec config format {version} is newer than this sonorant ({CONFIG_FORMAT_VERSION})")
    return data
