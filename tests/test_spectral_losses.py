"""The istft decoder's framing reconstructs perfectly, and its spectral losses measure what they claim."""

from __future__ import annotations

import math

import torch

from sonorant.codec.istft_decoder import FrameSpectrum, analysis_window, frame_spectra
from sonorant.codec.losses import anti_wrapped, level_loss, phase_losses, spectral_losses

HOP = 320


def _spectrum_of(wav: torch.Tensor) -> FrameSpectrum:
    s = frame_spectra(wav, HOP)
    return FrameSpectrum(s.abs().clamp(min=1e-5).log(), s.real, s.imag)


def _overlap_add(spectrum: FrameSpectrum) -> torch.Tensor:
    frames = torch.fft.irfft(spectrum.complex(), n=2 * HOP, dim=-1) * analysis_window(HOP, dtype=torch.float64)
    hops = frames[..., HOP:] + torch.nn.functional.pad(frames[:, 1:, :HOP], (0, 0, 0, 1))
    return hops.reshape(frames.shape[0], 1, -1)


def test_framing_reconstructs_all_but_the_last_hop():
    wav = 0.3 * torch.randn(2, 1, 20 * HOP, dtype=torch.float64)
    remade = _overlap_add(_spectrum_of(wav))
    assert (remade - wav)[..., :-HOP].abs().max() < 1e-9


def test_losses_vanish_on_the_true_spectrum_and_not_on_noise():
    wav = 0.3 * torch.randn(1, 1, 20 * HOP, dtype=torch.float64)
    true = spectral_losses(_spectrum_of(wav), _overlap_add(_spectrum_of(wav)), wav, HOP)
    assert all(float(v) < 1e-6 for v in true.values()), true
    noise = 0.3 * torch.randn(1, 1, 20 * HOP, dtype=torch.float64)
    wrong = spectral_losses(_spectrum_of(noise), _overlap_add(_spectrum_of(noise)), wav, HOP)
    assert float(wrong["phase"]) > 1.0 and float(wrong["amplitude"]) > 0.1  # random phases: about pi / 2
    assert float(wrong["consistency"]) < 1e-6  # consistent, just not the target's


def test_phase_distance_wraps():
    assert math.isclose(float(anti_wrapped(torch.tensor(2 * math.pi + 0.1))), 0.1, abs_tol=1e-6)
    target = torch.rand(1, 4, 5) * 6 - 3
    shifted = phase_losses(target + 2 * math.pi, target)
    assert all(float(v) < 1e-5 for v in shifted.values())


def test_level_loss_sees_a_quieter_output():
    wav = 0.3 * torch.randn(2, 1, 4000)
    assert float(level_loss(wav, wav)) < 1e-6
    assert math.isclose(float(level_loss(wav / math.e, wav)), 1.0, rel_tol=1e-3)
