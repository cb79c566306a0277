"""A frame-rate decoder in the style of Vocos: causal ConvNeXt blocks at the codec's frame rate, a head
that predicts each frame's log-amplitude and phase spectrum, and an inverse STFT by overlap-add.

Framing: the window is two hops (n_fft = 2 * hop, a square-root Hann window for analysis and synthesis,
whose squares add up to one at 50 % overlap), and frame t's window spans samples [(t - 1) * hop,
(t + 1) * hop): the hop before frame t's own and frame t's own, both of which the causal encoder has
heard by frame t. Output hop r is frame r's second half plus frame r + 1's first half, so it is complete
one frame later: streaming carries frame r's second half (`OverlapState`) and the output lags one hop
(window minus hop) behind the codes, `flush` hands out the last hop. Offline, that last hop has only its
first frame's share, exactly what streaming's flush returns.

Phase is predicted as in APNet: two parallel outputs (a real and an imaginary part) whose angle is the
phase, so the head never has to regress a wrapped quantity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import CodecConfig
from .conv import CausalConv1d
from .phase_lock import PhaseState, locked_phase
from .streaming import StreamingModule

MAX_LOG_AMPLITUDE = 6.0  # e^6 ~ 400: far above any frame of audio in [-1, 1] (n_fft 640 sums 640 samples)


@dataclass
class FrameSpectrum:
    """The decoder's predicted one-sided spectra, one per frame."""

    log_amplitude: torch.Tensor  # [B, T, F] natural log of the magnitude
    real: torch.Tensor  # [B, T, F] real and imaginary parts of the (unit-free) phase direction
    imag: torch.Tensor  # [B, T, F]

    @property
    def phase(self) -> torch.Tensor:
        return torch.atan2(self.imag, self.real)

    def with_phase(self, phase: torch.Tensor) -> FrameSpectrum:
        """The same amplitudes with another phase [B, T, F] (e.g. the input's: the ceiling of a perfect phase)."""
        return FrameSpectrum(self.log_amplitude, torch.cos(phase), torch.sin(phase))

    def complex(self) -> torch.Tensor:
        """The complex spectrum [B, T, F]: amplitude times the unit phase direction."""
        norm = (self.real.square() + self.imag.square() + 1e-9).rsqrt()
        amplitude = self.log_amplitude.exp()
        return torch.complex(amplitude * self.real * norm, amplitude * self.imag * norm)


@dataclass
class OverlapState:
    batch_size: int
    pending: torch.Tensor | None = None  # [B, hop]: the second half of the last frame, None before the first
    phase: PhaseState | None = None  # decoder_phase "locked": each bin's accumulated phase, None before the first


def analysis_window(hop: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.hann_window(2 * hop, periodic=True, device=device, dtype=dtype).sqrt()


def frame_spectra(wav: torch.Tensor, hop: int) -> torch.Tensor:
    """Audio [B, 1, T * hop] -> complex spectra [B, T, hop + 1] with the decoder's framing (frame t spans
    samples [(t - 1) * hop, (t + 1) * hop), zeros before the start)."""
    frames = F.pad(wav[:, 0], (hop, 0)).unfold(-1, 2 * hop, hop)  # [B, T, 2 hop]
    return torch.fft.rfft(frames * analysis_window(hop, wav.device, wav.dtype), dim=-1)


class ConvNeXtBlock(nn.Module):
    """Causal depthwise conv, LayerNorm, pointwise MLP, layer scale, residual. [B, C, T] -> [B, C, T]."""

    def __init__(self, dim: int, hidden: int, kernel_size: int, layer_scale: float) -> None:
        super().__init__()
        self.depthwise = CausalConv1d(dim, dim, kernel_size, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        self.scale = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.depthwise(x).transpose(1, 2))
        y = self.down(F.gelu(self.up(y))) * self.scale
        return x + y.transpose(1, 2)


class ConvNeXtStack(StreamingModule):
    """The frame-rate trunk the istft decoder and the spectral encoder share: a causal conv embedding,
    LayerNorm, causal ConvNeXt blocks, LayerNorm. [B, C_in, T] -> [B, T, dim]."""

    def _build_stack(self, in_channels: int, dim: int, blocks: int, kernel_size: int) -> None:
        self.embed = CausalConv1d(in_channels, dim, kernel_size)
        self.norm_in = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, 3 * dim, kernel_size, 1.0 / blocks) for _ in range(blocks))
        self.norm_out = nn.LayerNorm(dim)

    def stack(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm_in(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.norm_out(x.transpose(1, 2))


class FrameDecoder(ConvNeXtStack):
    """Latent [B, latent_dim, T] -> waveform [B, 1, T * hop] (and the spectra it was made from)."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        dim, self.hop = config.decoder_dim, config.hop_length
        self.bins = self.hop + 1
        self._build_stack(config.latent_dim, dim, config.decoder_blocks, config.kernel_size)
        self.head = nn.Linear(dim, 3 * self.bins)
        self.locked = config.decoder_phase == "locked"
        self.register_buffer("window", analysis_window(self.hop), persistent=False)

    def spectrum(self, latent: torch.Tensor, state: OverlapState | None = None) -> FrameSpectrum:
        """The predicted spectra; with a locked phase, `state` (streaming) carries it across calls."""
        out = self.head(self.stack(latent))  # [B, T, 3F]
        log_amplitude, real, imag = out.split(self.bins, dim=-1)
        log_amplitude = log_amplitude.clamp(max=MAX_LOG_AMPLITUDE)
        if self.locked and log_amplitude.shape[1] > 0:
            phase, locked, carried = locked_phase(log_amplitude, torch.atan2(imag, real),
                                                  state.phase if state is not None else None)
            if state is not None:
                state.phase = carried
            real, imag = torch.where(locked, torch.cos(phase), real), torch.where(locked, torch.sin(phase), imag)
        return FrameSpectrum(log_amplitude, real, imag)

    def frames(self, spectrum: FrameSpectrum) -> torch.Tensor:
        """Spectra -> windowed time frames [B, T, 2 hop]."""
        return torch.fft.irfft(spectrum.complex(), n=2 * self.hop, dim=-1) * self.window

    def synthesize(self, latent: torch.Tensor) -> tuple[torch.Tensor, FrameSpectrum]:
        """Offline: audio [B, 1, T * hop] and the predicted spectra (training reads both)."""
        state: OverlapState | None = self._streaming_state
        spectrum = self.spectrum(latent, state)
        frames = self.frames(spectrum)
        if state is not None:
            return self._stream(frames, state), spectrum
        return self.overlap_add(frames), spectrum

    def overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """Offline: windowed frames [B, T, 2 hop] -> audio [B, 1, T * hop]."""
        first, second = frames[..., : self.hop], frames[..., self.hop:]
        hops = second + F.pad(first[:, 1:], (0, 0, 0, 1))  # hop r = frame r's second half + frame r+1's first
        return hops.reshape(frames.shape[0], 1, -1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.synthesize(latent)[0]

    # -- streaming --------------------------------------------------------------------------
    def _init_streaming_state(self, batch_size: int) -> OverlapState:
        return OverlapState(batch_size)

    def _stream(self, frames: torch.Tensor, state: OverlapState) -> torch.Tensor:
        """The hops these frames complete: one fewer than frames on the first call, as many after."""
        batch = frames.shape[0]
        if frames.shape[1] == 0:
            return frames.new_zeros(batch, 1, 0)
        first, second = frames[..., : self.hop], frames[..., self.hop:]
        hops = second[:, :-1] + first[:, 1:]
        if state.pending is not None:
            hops = torch.cat([(state.pending + first[:, 0])[:, None], hops], dim=1)
        state.pending = second[:, -1]
        return hops.reshape(batch, 1, -1)

    def flush(self) -> torch.Tensor:
        """Streaming: the last hop [B, 1, hop] (its second frame never comes), or nothing before any frame."""
        state: OverlapState | None = self._streaming_state
        if state is None:
            raise RuntimeError("flush is for streaming")
        if state.pending is None:
            return self.window.new_zeros(state.batch_size, 1, 0)
        pending, state.pending, state.phase = state.pending, None, None
        return pending[:, None]
