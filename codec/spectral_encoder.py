"""A frame-rate encoder, the istft decoder's mirror: each frame's spectrum (the decoder's own framing), a
causal ConvNeXt stack at the codec's frame rate, and a projection to the latent.

Frame t's window spans samples [(t - 1) * hop, (t + 1) * hop), so latent frame t is complete when hop t is, as
with the strided SEANet encoder: nothing looks ahead. Each frame is read as its log-amplitude and its
power-compressed complex spectrum (|X|^0.3 with X's phase, the form APCodec and Vocos' losses use), so level,
spectral envelope and phase all reach the blocks at the frame rate. Streaming carries the last hop of audio
(the next frame's first half); the blocks' causal convs carry their own tails.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import CodecConfig
from .istft_decoder import ConvNeXtStack, frame_spectra

COMPRESSION = 0.3  # |X|^0.3: the compressed complex spectrum's exponent
FLOOR = 1e-5  # amplitude floor of the log (about -100 dB)


@dataclass
class HistoryState:
    previous: torch.Tensor  # [B, 1, hop]: the last hop heard, the first half of the next frame's window


def spectral_features(spectra: torch.Tensor) -> torch.Tensor:
    """Complex spectra [B, T, F] -> features [B, 3F, T]: log-amplitude, compressed real and imaginary parts."""
    amplitude = spectra.abs() + FLOOR
    compressed = spectra * amplitude.pow(COMPRESSION - 1.0)
    features = torch.cat([amplitude.log(), compressed.real, compressed.imag], dim=-1)
    return features.transpose(1, 2)


class SpectralEncoder(ConvNeXtStack):
    """Waveform [B, 1, N] (N a multiple of the hop) -> latent [B, latent_dim, N / hop]."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        dim, self.hop = config.encoder_dim, config.hop_length
        self._build_stack(3 * (self.hop + 1), dim, config.encoder_blocks, config.kernel_size)
        self.project = nn.Linear(dim, config.latent_dim)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        state: HistoryState | None = self._streaming_state
        if state is not None:  # the carried hop stands where offline framing puts zeros
            wav = torch.cat([state.previous, wav], dim=-1)
            state.previous = wav[..., -self.hop:]
            spectra = frame_spectra(wav, self.hop)[:, 1:]
        else:
            spectra = frame_spectra(wav, self.hop)
        return self.project(self.stack(spectral_features(spectra))).transpose(1, 2)

    def _init_streaming_state(self, batch_size: int) -> HistoryState:
        weight = self.project.weight
        return HistoryState(torch.zeros(batch_size, 1, self.hop, device=weight.device, dtype=weight.dtype))
