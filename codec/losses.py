"""Reconstruction and adversarial losses of the codec (DAC's recipe is the reference)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn


class MultiScaleMelLoss(nn.Module):
    """L1 between log10 mel magnitudes at several window sizes (DAC: 32..2048 samples, 5..320 mels).

    Small windows catch transients, large ones pitch and formants; log compression weights quiet
    detail the way the ear does.
    """

    def __init__(self, sample_rate: int, window_lengths: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048),
                 n_mels: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320), clamp_eps: float = 1e-5) -> None:
        super().__init__()
        if len(window_lengths) != len(n_mels):
            raise ValueError("window_lengths and n_mels must have the same length")
        self.clamp_eps = clamp_eps
        self.mels = nn.ModuleList(
            torchaudio.transforms.MelSpectrogram(
                sample_rate=sample_rate, n_fft=w, win_length=w, hop_length=w // 4, n_mels=m,
                power=1.0, center=True, norm="slaney", mel_scale="slaney",
            )
            for w, m in zip(window_lengths, n_mels, strict=True)
        )

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over scales of the log-mel L1 between audio [B, 1, N] tensors."""
        loss = estimate.new_zeros(())
        for mel in self.mels:
            x = mel(estimate.float()).clamp(min=self.clamp_eps).log10()
            y = mel(target.float()).clamp(min=self.clamp_eps).log10()
            loss = loss + F.l1_loss(x, y)
        return loss / len(self.mels)


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN loss of the discriminator over all its sub-discriminators' logits."""
    return sum(((1 - r) ** 2).mean() + (f**2).mean() for r, f in zip(real, fake, strict=True)) / len(real)


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(((1 - f) ** 2).mean() for f in fake) / len(fake)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """L1 between discriminator feature maps of real and generated audio (real maps detached)."""
    total, count = 0.0, 0
    for real_maps, fake_maps in zip(real, fake, strict=True):
        for r, f in zip(real_maps, fake_maps, strict=True):
            total = total + F.l1_loss(f, r.detach())
            count += 1
    return total / max(count, 1)
