"""Word boundaries moved from the 20 ms frame grid onto the nearest spectral change.

The aligner decides which frame a word starts in; where in that frame, and whether the acoustic change
lies just across the frame edge, it cannot say. The engines mark a word where one sound gives way to the
next, and that is where the spectrum changes fastest. So each word start and end moves to the largest
spectral change (log-mel flux at a 5 ms hop) within `SNAP_SECONDS` of it, weighted by a Gaussian of
`SNAP_SIGMA` around where the aligner put it, so a strong change further off does not win over a
moderate one close by. Measured on the corpus' validation clips (training voices: `sonorant eval align
--split valid`); phoneme times and the durations the LM reads stay on the frame grid.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
import torchaudio

from .words import Segment, without_overlaps

CHANGE_FFT = 512  # 32 ms analysis window at 16 kHz...
CHANGE_HOP = 80  # ...every 5 ms
CHANGE_MELS = 64
CHANGE_RATE = 16000
SNAP_SECONDS = 0.02  # search this far either side of the aligner's boundary
SNAP_SIGMA = 0.01  # Gaussian weight on the distance from it


@cache
def _mel() -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(CHANGE_RATE, n_fft=CHANGE_FFT, hop_length=CHANGE_HOP,
                                                n_mels=CHANGE_MELS, center=True)


class SpectralChange:
    """Where the spectrum changes fastest near a time: the flux of one recording, computed once."""

    def __init__(self, wav: torch.Tensor, sample_rate: int) -> None:
        wav = wav.reshape(-1).float()
        if sample_rate != CHANGE_RATE:
            wav = torchaudio.functional.resample(wav, sample_rate, CHANGE_RATE)
        with torch.no_grad():
            log_mel = torch.log(_mel()(wav) + 1e-5).numpy()
        # change around frame k: frame k+1 against frame k-1, summed over bands; frame k is at k * hop
        self.flux = np.concatenate([[0.0], np.abs(log_mel[:, 2:] - log_mel[:, :-2]).sum(0), [0.0]])
        self.step = CHANGE_HOP / CHANGE_RATE

    def snap(self, t: float) -> float:
        centre = t / self.step
        reach = int(round(SNAP_SECONDS / self.step))
        a, b = max(0, int(round(centre)) - reach), min(len(self.flux), int(round(centre)) + reach + 1)
        if b <= a:
            return t
        offsets = (np.arange(a, b) - centre) * self.step
        score = self.flux[a:b] * np.exp(-0.5 * (offsets / SNAP_SIGMA) ** 2)
        return (a + int(np.argmax(score))) * self.step


def snapped_words(words: list[Segment], wav: torch.Tensor, sample_rate: int) -> list[Segment]:
    """`words` with every start and end on the nearest spectral change; words never overlap after it."""
    if not words:
        return words
    change = SpectralChange(wav, sample_rate)
    return without_overlaps([Segment(w.label, change.snap(w.start), change.snap(w.end)) for w in words])
