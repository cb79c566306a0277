"""The locked phase: a steady tone between two bins keeps its pitch from its amplitudes; noise keeps the
predicted phase."""

from __future__ import annotations

import math

import torch

from sonorant.codec.istft_decoder import analysis_window, frame_spectra
from sonorant.codec.phase_lock import locked_phase, peak_frequencies

HOP, RATE = 320, 16000


def _tones(*hz: float, seconds: float = 2.0) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE), dtype=torch.float64) / RATE
    return sum(0.2 * torch.sin(2 * math.pi * f * t + i) for i, f in enumerate(hz))[None, None]


def _from_amplitudes(wav: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    amplitude = frame_spectra(wav, HOP).abs()
    frames = torch.fft.irfft(torch.polar(amplitude, phase), n=2 * HOP, dim=-1) * analysis_window(HOP,
                                                                                                  dtype=wav.dtype)
    return (frames[..., HOP:] + torch.nn.functional.pad(frames[:, 1:, :HOP], (0, 0, 0, 1))).reshape(1, -1)


def _loudest(audio: torch.Tensor, count: int) -> list[float]:
    middle = audio[0, RATE // 4: -RATE // 4]
    spectrum = torch.fft.rfft(middle * torch.hann_window(len(middle), dtype=middle.dtype)).abs()
    hz = torch.fft.rfftfreq(len(middle), 1 / RATE)
    peaks = [i for i in range(1, len(spectrum) - 1) if spectrum[i] >= spectrum[i - 1] and spectrum[i] > spectrum[i + 1]]
    return sorted(float(hz[i]) for i in sorted(peaks, key=lambda i: -spectrum[i])[:count])


def test_peaks_are_found_between_bins():
    frequency, owner, prominence = peak_frequencies(frame_spectra(_tones(310.0), HOP).abs().log())
    # 310 Hz is bin 12.4 (25 Hz bins); every bin near it belongs to that peak
    assert torch.allclose(frequency[0, 10:, 11:14], torch.full((1,), 12.4, dtype=frequency.dtype), atol=0.15)
    assert (owner[0, 10:, 11:14] == 12).all() and (prominence[0, 10:, 12] > 3.0).all()


def test_locked_phase_keeps_the_pitch_and_level_of_steady_tones():
    wav = _tones(310.0, 437.0)
    spectra = frame_spectra(wav, HOP)
    steady = spectra.angle()[:, 20:21].expand_as(spectra.real).contiguous()  # a phase that does not turn
    phase, locked, _ = locked_phase(spectra.abs().log(), steady)
    assert locked[0, 1:, 11:14].all() and locked[0, 1:, 17:19].all() and not locked[0, 0].any()  # after frame 0
    remade = _from_amplitudes(wav, phase)
    assert all(abs(a - b) < 2.0 for a, b in zip(_loudest(remade, 2), (310.0, 437.0), strict=True)), _loudest(remade, 2)
    level = remade[0, RATE // 4: -RATE // 4].std() / wav[0, 0, RATE // 4: -RATE // 4].std()
    assert 0.9 < float(level) < 1.1
    # the same amplitudes with the phase that does not turn: lines at multiples of the 50 Hz frame rate only
    assert all(round(f) % 50 == 0 for f in _loudest(_from_amplitudes(wav, steady), 2))


def test_noise_and_onsets_keep_the_predicted_phase():
    torch.manual_seed(0)
    noise = 0.2 * torch.randn(1, 1, RATE, dtype=torch.float64)
    spectra = frame_spectra(noise, HOP)
    phase, locked, _ = locked_phase(spectra.abs().log(), spectra.angle())
    assert locked.double().mean() < 0.05
    assert torch.equal(phase[~locked], spectra.angle()[~locked])
    wav = _tones(310.0)
    wav[..., : RATE // 2] = 0.0  # the tone starts at frame 25: that frame plays its predicted phase
    spectra = frame_spectra(wav, HOP)
    phase, locked, _ = locked_phase(spectra.abs().clamp(min=1e-9).log(), spectra.angle())
    assert not locked[0, 25, 11:14].any() and locked[0, 27:, 11:14].all()


def test_streaming_the_phase_equals_offline():
    wav = _tones(310.0, 523.25)
    wav[..., : RATE // 2] = 1e-4 * wav[..., : RATE // 2]  # an onset in the second call
    spectra = frame_spectra(wav, HOP)
    amplitude, predicted = spectra.abs().log(), spectra.angle()
    whole, _, _ = locked_phase(amplitude, predicted)
    first, _, state = locked_phase(amplitude[:, :17], predicted[:, :17])
    second, _, _ = locked_phase(amplitude[:, 17:], predicted[:, 17:], state)
    assert torch.allclose(torch.cat([first, second], dim=1), whole, atol=1e-9)


def test_a_locked_decoder_is_a_predicted_one_with_another_phase(tmp_path):
    from sonorant.codec import Codec, CodecConfig, QuantizerConfig

    torch.manual_seed(0)
    predicted = Codec(CodecConfig(decoder="istft", quantizer=QuantizerConfig(kmeans_init=False))).eval()
    locked = Codec(CodecConfig(decoder="istft", decoder_phase="locked", quantizer=QuantizerConfig(kmeans_init=False)))
    locked.load_state_dict(predicted.state_dict())  # the same weights: a predicted release can be trained on locked
    assert locked.fingerprint == predicted.fingerprint  # the same tokens
    latent = torch.zeros(1, predicted.config.latent_dim, 30)
    with torch.no_grad():
        mine, theirs = locked.eval().decoder.spectrum(latent), predicted.decoder.spectrum(latent)
    assert torch.equal(mine.log_amplitude, theirs.log_amplitude)
    again = Codec.from_pretrained(locked.save_pretrained(tmp_path / "locked"))
    assert again.config.decoder_phase == "locked"
