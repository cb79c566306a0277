"""Multi-period and multi-band STFT discriminators for the optional adversarial loss (HiFi-GAN, DAC)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


@dataclass
class DiscriminatorOutput:
    logits: list[torch.Tensor]  # one logit map per sub-discriminator
    features: list[list[torch.Tensor]]  # intermediate feature maps per sub-discriminator


class PeriodDiscriminator(nn.Module):
    """Folds audio [B, 1, N] into [B, 1, N / p, p] and convolves along time: sees periodic structure."""

    def __init__(self, period: int, channels: int = 16) -> None:
        super().__init__()
        self.period = period
        dims = [1, channels, channels * 4, channels * 8, channels * 8]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1) if i < 3 else (1, 1), padding=(2, 0)))
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True))
        )
        self.out = weight_norm(nn.Conv2d(dims[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = F.pad(wav, (0, -wav.shape[-1] % self.period), mode="reflect")
        x = rearrange(x, "b c (t p) -> b c t p", p=self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            features.append(x)
        return self.out(x), features


class BandSTFTDiscriminator(nn.Module):
    """Convolves the complex STFT of one resolution, each frequency band with its own stack (DAC's MRD)."""

    def __init__(self, window_length: int, channels: int = 16,
                 bands: tuple[tuple[float, float], ...] = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75),
                                                             (0.75, 1.0))) -> None:
        super().__init__()
        self.window_length = window_length
        bins = window_length // 2 + 1
        self.bands = [(int(lo * bins), int(hi * bins)) for lo, hi in bands]
        self.register_buffer("window", torch.hann_window(window_length), persistent=False)

        def stack() -> nn.ModuleList:
            return nn.ModuleList([
                weight_norm(nn.Conv2d(2, channels, (3, 9), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
            ])

        self.stacks = nn.ModuleList(stack() for _ in self.bands)
        self.out = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = torch.stft(wav.squeeze(1).float(), self.window_length, self.window_length // 4,
                          window=self.window, return_complex=True)
        x = rearrange(torch.view_as_real(spec), "b f t c -> b c t f")
        features, outs = [], []
        for (lo, hi), convs in zip(self.bands, self.stacks, strict=True):
            h = x[..., lo:hi]
            for conv in convs:
                h = F.leaky_relu(conv(h), 0.1)
                features.append(h)
            outs.append(h)
        return self.out(torch.cat(outs, dim=-1)), features


class Discriminator(nn.Module):
    """Multi-period (periods 2, 3, 5, 7, 11) + multi-band STFT discriminators."""

    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11),
                 stft_windows: tuple[int, ...] = (1024, 512, 256), channels: int = 16) -> None:
        super().__init__()
        self.subs = nn.ModuleList(
            [PeriodDiscriminator(p, channels) for p in periods]
            + [BandSTFTDiscriminator(w, channels * 2) for w in stft_windows]
        )

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        logits, features = [], []
        for sub in self.subs:
            logit, feats = sub(wav)
            logits.append(logit)
            features.append(feats)
        return DiscriminatorOutput(logits=logits, features=features)
