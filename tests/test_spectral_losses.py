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


def _held_bin(phase: str, k: int = 11, frames: int = 60) -> torch.Tensor:
    """The decoder's audio for one bin held at one amplitude, its predicted angle zero in every frame."""
    from sonorant.codec import CodecConfig
    from sonorant.codec.istft_decoder import FrameDecoder

    decoder = FrameDecoder(CodecConfig(decoder="istft", phase=phase))
    log_amplitude = torch.full((1, frames, HOP + 1), -20.0, dtype=torch.float64)
    log_amplitude[..., k] = 0.0
    real, imag = torch.ones_like(log_amplitude), torch.zeros_like(log_amplitude)
    if decoder.accumulate:
        real, imag = decoder._accumulate(torch.atan2(imag, real))
    return _overlap_add(FrameSpectrum(log_amplitude, real, imag))[0, 0, HOP:-HOP]


def test_accumulated_phase_holds_a_bins_tone_where_a_repeated_phase_makes_frame_rate_lines():
    """Bin 11 (275 Hz at 25 Hz per bin): the phase repeated every frame makes audio periodic in the 50 Hz
    frame rate (its strongest line at 250 or 300 Hz); summed advances play the bin's own 275 Hz."""
    def peak(wav: torch.Tensor) -> float:
        spectrum = torch.fft.rfft(wav * torch.hann_window(wav.shape[-1], dtype=wav.dtype)).abs()
        return float(spectrum.argmax()) * 16000 / wav.shape[-1]

    assert abs(peak(_held_bin("accumulated")) - 275) < 3
    assert min(abs(peak(_held_bin("direct")) - f) for f in (250, 300)) < 3
