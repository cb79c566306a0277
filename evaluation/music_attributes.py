"""What a piece of audio is, as a caption of the corpus would say it: tempo, key and mode, pitch.

Estimators of the field (librosa): tempo from the onset envelope's tempogram under a uniform prior over
the captions' range, key and mode from the mean constant-Q chroma correlated with Albrecht and
Shanahan's key profiles (the best of Krumhansl-Kessler, Temperley and Albrecht-Shanahan on the corpus'
own renders), pitch from pYIN. Drums and instrument family come from `music_tagger.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEMPO_RANGE = (60.0, 160.0)  # beats per minute the captions use (data/music.py draws 60..160)
TEMPO_TOLERANCE = 0.10
# Albrecht & Shanahan (2013) key profiles, major and minor, tonic first.
MAJOR_PROFILE = np.array([0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081])
MINOR_PROFILE = np.array([0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052])


@dataclass(frozen=True)
class Key:
    tonic: int  # 0 = C
    mode: str  # major | minor


def estimate_tempo(audio: np.ndarray, sample_rate: int) -> float:
    """Beats per minute of mono `audio`."""
    import librosa
    import scipy.stats

    envelope = librosa.onset.onset_strength(y=audio, sr=sample_rate)
    prior = scipy.stats.uniform(TEMPO_RANGE[0], TEMPO_RANGE[1] - TEMPO_RANGE[0])
    return float(librosa.feature.tempo(onset_envelope=envelope, sr=sample_rate, prior=prior)[0])


def estimate_key(audio: np.ndarray, sample_rate: int) -> Key:
    """The key whose profile correlates best with the mean chroma of mono `audio`."""
    import librosa

    # The captions' notes are in A440: no tuning estimate (a short clip can mislead it, and it costs a pitch track).
    chroma = librosa.feature.chroma_cqt(y=audio, sr=sample_rate, tuning=0.0).mean(axis=1)
    if not np.any(chroma > 0):
        return Key(0, "major")
    best = max((float(np.corrcoef(chroma, np.roll(profile, tonic))[0, 1]), tonic, mode)
               for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)) for tonic in range(12))
    return Key(best[1], best[2])


def estimate_pitch(audio: np.ndarray, sample_rate: int) -> float | None:
    """The median MIDI pitch (fractional) of the voiced frames of mono `audio`; None when nothing is voiced."""
    import librosa

    f0, voiced, _ = librosa.pyin(audio, fmin=librosa.note_to_hz("C2"), fmax=librosa.note_to_hz("C7"),
                                 sr=sample_rate, frame_length=2048)
    f0 = f0[voiced & np.isfinite(f0)]
    return float(np.median(librosa.hz_to_midi(f0))) if f0.size else None


def tempo_agrees(estimate: float, stated: float) -> bool:
    """Within 10 % of the caption's tempo (no octave allowance: half or double time is a miss)."""
    return abs(estimate - stated) <= TEMPO_TOLERANCE * stated


def key_score(estimate: Key, stated: Key) -> float:
    """MIREX's weighted key score: 1 for the key, 0.5 a fifth away in the same mode, 0.3 the relative key,
    0.2 the parallel key, else 0."""
    if estimate == stated:
        return 1.0
    step = (estimate.tonic - stated.tonic) % 12
    if estimate.mode == stated.mode and step in (5, 7):
        return 0.5
    relative = 9 if stated.mode == "major" else 3
    if estimate.mode != stated.mode and step == relative:
        return 0.3
    if estimate.mode != stated.mode and step == 0:
        return 0.2
    return 0.0


def pitch_agrees(estimate: float | None, stated: int) -> bool:
    """Within half a semitone of the caption's note (an octave off is a miss)."""
    return estimate is not None and abs(estimate - stated) <= 0.5
