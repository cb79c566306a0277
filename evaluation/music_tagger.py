"""A small audio tagger the project trains on its own audio: instrument family and drums (from fluidsynth
renders whose every attribute is known), and domain (speech, music or sound, from a corpus manifest).

Each head is a logistic regression (scikit-learn, which librosa already needs) over one summary vector of
a clip: the mean, spread and 90th percentile of its log-mel bands, the mean and spread of the bands of its
percussive part (median-filter HPSS), spectral contrast, flatness and onset strength. A saved tagger is
JSON (the scaler and the regression weights): loading it runs no code.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_write
from ..core.errors import SonorantError

RATE = 16000  # features are computed at the codec's rate: generations and references alike
MAX_SECONDS = 12.0
HEADS = ("family", "drums", "domain")


def features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The summary vector of mono `audio` (its first 12 s)."""
    import librosa

    if sample_rate != RATE:
        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=RATE)
    audio = np.asarray(audio[: int(MAX_SECONDS * RATE)], dtype=np.float32)
    if audio.size < 2048:
        audio = np.pad(audio, (0, 2048 - audio.size))
    spectrum = np.abs(librosa.stft(audio, n_fft=1024, hop_length=256))
    mel = librosa.power_to_db(librosa.feature.melspectrogram(S=spectrum**2, sr=RATE, n_mels=64), ref=np.max)
    _, percussive = librosa.decompose.hpss(spectrum)
    perc = librosa.power_to_db(librosa.feature.melspectrogram(S=percussive**2, sr=RATE, n_mels=32),
                               ref=max(float((spectrum**2).max()), 1e-10))
    onsets = librosa.onset.onset_strength(S=mel, sr=RATE)
    contrast = librosa.feature.spectral_contrast(S=spectrum, sr=RATE).mean(axis=1)
    flatness = float(librosa.feature.spectral_flatness(S=spectrum).mean())
    return np.concatenate([mel.mean(1), mel.std(1), np.percentile(mel, 90, axis=1), perc.mean(1), perc.std(1),
                           contrast, [flatness, onsets.mean(), onsets.std()]]).astype(np.float64)


@dataclass
class Head:
    """One logistic regression: standardise, then the most likely of `classes`."""

    classes: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[list[float]]  # [classes, features] (one row for two classes)
    intercept: list[float]

    def predict(self, x: np.ndarray) -> list[str]:
        z = (np.atleast_2d(x) - np.array(self.mean)) / np.array(self.scale)
        scores = z @ np.array(self.coef).T + np.array(self.intercept)
        if len(self.classes) == 2:
            return [self.classes[int(s > 0)] for s in scores[:, 0]]
        return [self.classes[i] for i in scores.argmax(axis=1)]


@dataclass
class MusicTagger:
    heads: dict[str, Head]
    accuracy: dict[str, float]  # each head's accuracy on examples it was not trained on

    def tag(self, x: np.ndarray) -> dict[str, str]:
        """The label of every head for one summary vector."""
        return {name: head.predict(x)[0] for name, head in self.heads.items()}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write(path, json.dumps({"heads": {k: asdict(h) for k, h in self.heads.items()},
                                       "accuracy": self.accuracy}) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> MusicTagger:
        try:
            data = json.loads(Path(path).read_text())
            return cls({k: Head(**h) for k, h in data["heads"].items()}, data["accuracy"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SonorantError(f"{path}: not a tagger saved by sonorant ({e})") from None


def fit_head(x: np.ndarray, labels: Sequence[str], held_out: float = 0.2, seed: int = 0) -> tuple[Head, float]:
    """A head trained on all but `held_out` of the examples (drawn with `seed`), its accuracy on those,
    then refitted on every example."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels)
    if len(set(labels)) < 2:
        raise SonorantError(f"a tagger head needs two classes or more, got {sorted(set(labels))}")
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = max(1, int(len(labels) * held_out))

    def fit(rows: np.ndarray) -> tuple[Head, LogisticRegression]:
        mean, scale = x[rows].mean(axis=0), x[rows].std(axis=0) + 1e-6
        model = LogisticRegression(max_iter=3000, C=0.5).fit((x[rows] - mean) / scale, labels[rows])
        return Head([str(c) for c in model.classes_], mean.tolist(), scale.tolist(), model.coef_.tolist(),
                    model.intercept_.tolist()), model

    head, _ = fit(order[cut:])
    accuracy = float(np.mean(np.array(head.predict(x[order[:cut]])) == labels[order[:cut]]))
    return fit(order)[0], accuracy


def render_clip(clip, seconds: float | None = None) -> np.ndarray:
    """The fluidsynth render of a piece or note at `RATE`, mono, cut to `seconds`."""
    import soundfile as sf

    from ..data.music import Piece, compose, compose_note, render

    with tempfile.TemporaryDirectory() as tmp:
        midi, wav = Path(tmp) / "clip.mid", Path(tmp) / "clip.wav"
        (compose(clip) if isinstance(clip, Piece) else compose_note(clip)).save(str(midi))
        render(midi, wav, sample_rate=RATE)
        audio, _ = sf.read(wav, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    return audio[: int(seconds * RATE)] if seconds else audio


@dataclass(frozen=True)
class Render:
    """A fluidsynth render of a drawn piece or note, as the tagger's training example."""

    family: str
    drums: bool
    features: np.ndarray


def render_examples(count: int, seed: int, progress: Callable[[int], None] | None = None) -> list[Render]:
    """`count` renders drawn with `seed` (pieces of 6-10 s and, one in five, single notes), featurised."""
    from ..data.music import draw_note, draw_piece

    rng = random.Random(seed)
    examples = []
    for i in range(count):
        clip = draw_note(rng) if i % 5 == 4 else draw_piece(rng, seconds=(6.0, 10.0))
        examples.append(Render(clip.family, bool(getattr(clip, "drums", False)), features(render_clip(clip), RATE)))
        if progress:
            progress(1)
    return examples


def train_tagger(renders: Sequence[Render], domains: Sequence[tuple[np.ndarray, str]] = (),
                 seed: int = 0) -> MusicTagger:
    """Family and drums heads from `renders`; a domain head from (features, domain) pairs when given."""
    x = np.stack([r.features for r in renders])
    heads, accuracy = {}, {}
    heads["family"], accuracy["family"] = fit_head(x, [r.family for r in renders], seed=seed)
    heads["drums"], accuracy["drums"] = fit_head(x, ["yes" if r.drums else "no" for r in renders], seed=seed)
    if domains:
        heads["domain"], accuracy["domain"] = fit_head(np.stack([f for f, _ in domains]), [d for _, d in domains],
                                                       seed=seed)
    return MusicTagger(heads, accuracy)
