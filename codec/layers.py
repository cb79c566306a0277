"""Building blocks of the SEANet/DAC-style encoder and decoder."""

from __future__ import annotations

import torch
from torch import nn

from .conv import CausalConv1d, CausalConvTranspose1d


class Snake(nn.Module):
    """Snake activation x + sin^2(a x) / a with a learnt per-channel frequency (DAC): suits periodic audio."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x).pow(2)


def activation(name: str, channels: int) -> nn.Module:
    return Snake(channels) if name == "snake" else nn.ELU()


class ResidualUnit(nn.Module):
    """Dilated causal conv (kernel k) then a 1x1 conv, added to the input. [B, C, N] -> [B, C, N]."""

    def __init__(self, channels: int, dilation: int, kernel_size: int, act: str) -> None:
        super().__init__()
        hidden = max(channels // 2, 1)
        self.block = nn.Sequential(
            activation(act, channels),
            CausalConv1d(channels, hidden, kernel_size, dilation=dilation),
            activation(act, hidden),
            CausalConv1d(hidden, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class EncoderBlock(nn.Sequential):
    """Residual units at `in_channels`, then a strided causal conv down to `out_channels`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel_size: int,
                 dilations: tuple[int, ...], act: str) -> None:
        super().__init__(
            *(ResidualUnit(in_channels, d, kernel_size, act) for d in dilations),
            activation(act, in_channels),
            CausalConv1d(in_channels, out_channels, 2 * stride, stride=stride),
        )


class DecoderBlock(nn.Sequential):
    """A causal transposed conv up by `stride`, then residual units at `out_channels`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel_size: int,
                 dilations: tuple[int, ...], act: str) -> None:
        super().__init__(
            activation(act, in_channels),
            CausalConvTranspose1d(in_channels, out_channels, 2 * stride, stride),
            *(ResidualUnit(out_channels, d, kernel_size, act) for d in dilations),
        )
