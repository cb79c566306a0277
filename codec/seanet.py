"""Fully causal convolutional encoder and decoder (SEANet / DAC layout)."""

from __future__ import annotations

import torch
from torch import nn

from .config import CodecConfig
from .conv import CausalConv1d
from .layers import DecoderBlock, EncoderBlock, activation


class Encoder(nn.Module):
    """Waveform [B, 1, N] (N a multiple of the hop) -> latent [B, latent_dim, N / hop]."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        dim = config.encoder_dim
        layers: list[nn.Module] = [CausalConv1d(1, dim, config.kernel_size)]
        for stride in config.strides:
            layers.append(EncoderBlock(dim, dim * 2, stride, config.kernel_size,
                                       config.residual_dilations, config.activation))
            dim *= 2
        layers += [activation(config.activation, dim), CausalConv1d(dim, config.latent_dim, 3)]
        self.layers = nn.Sequential(*layers)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.layers(wav)


class Decoder(nn.Module):
    """Latent [B, latent_dim, T] -> waveform [B, 1, T * hop] in [-1, 1]."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        dim = config.decoder_dim
        layers: list[nn.Module] = [CausalConv1d(config.latent_dim, dim, config.kernel_size)]
        for stride in reversed(config.strides):
            layers.append(DecoderBlock(dim, dim // 2, stride, config.kernel_size,
                                       config.residual_dilations, config.activation))
            dim //= 2
        layers += [activation(config.activation, dim), CausalConv1d(dim, 1, config.kernel_size), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.layers(latent)
