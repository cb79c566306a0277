"""Codec quality metrics. PESQ and STOI are imported lazily (optional `eval` extra)."""

from __future__ import annotations

import numpy as np
import torch
import torchaudio

from ..core.errors import SonorantError


def _require(module: str, package: str):
    try:
        return __import__(module)
    except ImportError:
        raise SonorantError(f"{package} is not installed: pip install -e '.[eval]'") from None


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2) at 16 kHz; other rates are resampled first."""
    pesq = _require("pesq", "pesq")
    ref, est = _to_16k(reference, sample_rate), _to_16k(estimate, sample_rate)
    return float(pesq.pesq(16000, ref, est, "wb"))


def dnsmos_available() -> bool:
    try:
        import speechmos  # noqa: F401
    except ImportError:
        return False
    return True


def dnsmos(audio: np.ndarray, sample_rate: int) -> float:
    """DNSMOS P.835 overall score (1-5) of one clip, no reference: a proxy for distortion and noise trained
    on human ratings of noisy / suppressed speech, not a naturalness MOS (`speechmos`, ONNX weights in
    the wheel). Clips shorter than 1 s are padded with silence."""
    _require("speechmos", "speechmos")
    from speechmos import dnsmos as model

    wav = _to_16k(np.asarray(audio, dtype=np.float32), sample_rate).astype(np.float32)
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak > 1.0:
        wav = wav / peak
    if wav.size < 16000:
        wav = np.pad(wav, (0, 16000 - wav.size))
    return float(model.run(wav, sr=16000)["ovrl_mos"])


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    pystoi = _require("pystoi", "pystoi")
    return float(pystoi.stoi(reference, estimate, sample_rate, extended=False))


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB."""
    ref = reference - reference.mean()
    est = estimate - estimate.mean()
    target = (est @ ref) / max(ref @ ref, 1e-12) * ref
    noise = est - target
    return float(10 * np.log10(max(target @ target, 1e-12) / max(noise @ noise, 1e-12)))


def mel_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Mean L1 between log10 mel spectrograms at three resolutions (lower is better)."""
    ref, est = torch.from_numpy(reference).float(), torch.from_numpy(estimate).float()
    total = 0.0
    for n_fft, n_mels in ((512, 64), (1024, 80), (2048, 128)):
        mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels,
                                                   power=1.0)
        total += float((mel(ref).clamp(min=1e-5).log10() - mel(est).clamp(min=1e-5).log10()).abs().mean())
    return total / 3


def stft_distance(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Multi-resolution STFT distance: spectral convergence + log-magnitude L1, averaged."""
    ref, est = torch.from_numpy(reference).float(), torch.from_numpy(estimate).float()
    total = 0.0
    for n_fft in (512, 1024, 2048):
        window = torch.hann_window(n_fft)
        r = torch.stft(ref, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        e = torch.stft(est, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        convergence = torch.linalg.norm(r - e) / torch.linalg.norm(r).clamp(min=1e-8)
        total += float(convergence + (r.clamp(min=1e-5).log() - e.clamp(min=1e-5).log()).abs().mean())
    return total / 3


def _to_16k(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == 16000:
        return wav
    return torchaudio.functional.resample(torch.from_numpy(wav).float(), sample_rate, 16000).numpy()
