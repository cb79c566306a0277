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
    """wav [B, N] -> log-mel [B, n_mels, ceil(N / hop)] (frame t centred on sample t * hop + hop / 2)."""

    def __init__(self, config: AlignerConfig) -> None:
        super().__init__()
        self.hop = config.hop_length
        self.mel = torchaudio.transforms.MelSpectrogram(config.sample_rate, n_fft=config.n_fft,
                                                        hop_length=config.hop_length, n_mels=config.n_mels,
                                                        center=True, power=1.0)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        frames = frame_count(wav.shape[-1], self.hop)
        padded = F.pad(wav, (self.hop // 2, frames * self.hop - wav.shape[-1]))
        mel = self.mel(padded)[..., :frames]
        return torch.log(mel.clamp_min(1e-5))
