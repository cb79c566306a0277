"""The aligner's audio features: log-mel spectrogram with exactly one frame per codec frame."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from .config import AlignerConfig


def frame_count(samples: int, hop_length: int) -> int:
    """Frames of an utterance of `samples` samples: the codec's count, ceil(N / hop)."""
    return math.ceil(samples / hop_length)


class LogMel(nn.Module):
    """wav [B, N] -> log-mel [B, n_mels, ceil(N / hop)]; frame t is centred on sample t * hop + hop / 2, the
    middle of the samples codec frame t encodes, so frame edges are at multiples of the hop."""

    def __init__(self, config: AlignerConfig) -> None:
        super().__init__()
        self.hop, self.n_fft = config.hop_length, config.n_fft
        self.mel = torchaudio.transforms.MelSpectrogram(config.sample_rate, n_fft=config.n_fft,
                                                        hop_length=config.hop_length, n_mels=config.n_mels,
                                                        center=False, power=1.0)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        frames = frame_count(wav.shape[-1], self.hop)
        left = (self.n_fft - self.hop) // 2
        right = (frames - 1) * self.hop + self.n_fft - left - wav.shape[-1]
        mel = self.mel(F.pad(wav, (left, right)))[..., :frames]
        return torch.log(mel.clamp_min(1e-5))
