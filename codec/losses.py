"""Reconstruction and adversarial losses of the codec (DAC's recipe is the reference)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from .istft_decoder import FrameSpectrum, frame_spectra


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


def anti_wrapped(x: torch.Tensor) -> torch.Tensor:
    """|x| after wrapping into [-pi, pi]: the distance between two phases (APNet's anti-wrapping function)."""
    return (x - 2 * torch.pi * torch.round(x / (2 * torch.pi))).abs()


def phase_losses(predicted: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """APNet's phase losses between phase spectra [B, T, F]: instantaneous phase, group delay (its
    difference along frequency) and instantaneous angular frequency (along time), all anti-wrapped."""
    return {
        "phase": anti_wrapped(predicted - target).mean(),
        "group_delay": anti_wrapped(predicted.diff(dim=-1) - target.diff(dim=-1)).mean(),
        "phase_time": anti_wrapped(predicted.diff(dim=1) - target.diff(dim=1)).mean(),
    }


def spectral_losses(spectrum: FrameSpectrum, audio: torch.Tensor, target: torch.Tensor,
                    hop: int) -> dict[str, torch.Tensor]:
    """The istft decoder's amplitude, phase and spectrum losses (APNet2 / FreeV).

    `spectrum` is what the decoder predicted for the frames of `target` [B, 1, T * hop]; `audio` is the
    waveform it made. `amplitude`: MSE of log-amplitudes; phase terms (`phase_losses`); `complex`: L1 of the
    real and imaginary parts; `consistency`: L1 between the predicted spectra and those of the audio made
    from them (the frames an inverse STFT can reproduce, the first and last excepted).
    """
    real = frame_spectra(target, hop)
    log_amplitude = real.abs().clamp(min=1e-5).log()
    losses = {"amplitude": F.mse_loss(spectrum.log_amplitude, log_amplitude)}
    losses.update(phase_losses(spectrum.phase, real.angle()))
    predicted = spectrum.complex()
    losses["complex"] = (F.l1_loss(predicted.real, real.real) + F.l1_loss(predicted.imag, real.imag))
    remade = frame_spectra(audio, hop)[:, 1:-1]
    inner = predicted[:, 1:-1]
    losses["consistency"] = F.l1_loss(remade.real, inner.real) + F.l1_loss(remade.imag, inner.imag)
    return losses


def level_loss(audio: torch.Tensor, target: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """|log RMS(audio) - log RMS(target)| per item, averaged: keeps the output as loud as the input."""
    rms = audio.square().mean(dim=(1, 2)).add(eps**2).sqrt()
    rms_target = target.square().mean(dim=(1, 2)).add(eps**2).sqrt()
    return (rms.log() - rms_target.log()).abs().mean()
