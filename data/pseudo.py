"""Pseudo-speakers: new voices made from a base voice by shifting its formants, pitch and tempo with sox.

A base voice's pseudo-speakers only count as new speakers when a speaker encoder tells them apart
(`speaker_similarity`): shifting pitch alone mostly does not, moving the formants (the size of the
vocal tract) as well does.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import SonorantError


@dataclass(frozen=True)
class VoiceShift:
    formant: float = 1.0  # vocal-tract scale: > 1 sounds smaller (formants up), < 1 larger
    pitch_cents: int = 0  # f0 change in cents
    tempo: float = 1.0  # speaking-rate factor: > 1 faster

    @property
    def id(self) -> str:
        return f"f{self.formant:.2f}p{self.pitch_cents:+d}t{self.tempo:.2f}"

    def sox_effects(self, sample_rate: int) -> list[str]:
        # `speed` scales formants, f0 and duration together; `pitch` then puts f0 where asked and
        # `tempo` sets the duration, so the three shifts are independent.
        effects: list[str] = []
        if self.formant != 1.0:
            effects += ["speed", f"{self.formant:.4f}"]
        net_pitch = self.pitch_cents - 1200 * math.log2(self.formant)
        if abs(net_pitch) >= 1:
            effects += ["pitch", f"{net_pitch:.0f}"]
        net_tempo = self.tempo / self.formant
        if abs(net_tempo - 1) > 1e-3:
            effects += ["tempo", "-s", f"{net_tempo:.4f}"]
        return effects + ["rate", str(sample_rate)]


# Shifts applied to a base voice (the unshifted voice is kept as well). The speaker encoder follows
# f0 more than formants: measured with resemblyzer on flite awb and espeak-ng en-us+m3, shifts 100 cents
# apart scored 0.95-0.97 against each other (the same speaker), while these, at least 300 cents apart,
# scored 0.54-0.85 against each other and the base voice (utterances of one speaker: 0.89-0.94).
SHIFTS = (
    VoiceShift(1.12, 550, 1.05),
    VoiceShift(0.90, -550, 0.95),
    VoiceShift(1.05, 250, 1.10),
    VoiceShift(0.95, -250, 0.90),
)


def apply_shift(src: str | Path, dst: str | Path, shift: VoiceShift, sample_rate: int) -> None:
    if shutil.which("sox") is None:
        raise SonorantError("pseudo-speakers need sox (apt-get install sox)")
    cmd = ["sox", str(src), str(dst), *shift.sox_effects(sample_rate)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SonorantError(f"sox failed on {src}: {result.stderr.strip().splitlines()[-1]}")


@dataclass
class SpeakerCheck:
    base_speaker: str
    speakers: list[str]
    cosine: np.ndarray  # [S, S] cosine similarity of the speakers' mean embeddings
    within: dict[str, float]  # mean similarity between utterances of the same speaker

    def distinct(self, threshold: float = 0.85) -> bool:
        """Every pair of speakers of this base voice is less alike than `threshold`."""
        off = self.cosine[~np.eye(len(self.speakers), dtype=bool)]
        return bool((off < threshold).all()) if off.size else True


# A speaker encoder: mono float audio and its sample rate -> unit-norm embedding (the CLI passes resemblyzer's).
Embed = Callable[[np.ndarray, int], np.ndarray]


def speaker_similarity(groups: dict[str, list[Path]], base_speaker: str, embed: Embed) -> SpeakerCheck:
    """Speaker-encoder cosine similarities between the speakers of one base voice."""
    import soundfile as sf

    names, centroids, within = sorted(groups), [], {}
    for name in names:
        embeddings = []
        for path in groups[name]:
            wav, sr = sf.read(str(path), dtype="float32")
            embeddings.append(embed(wav, sr))
        e = np.stack(embeddings)
        centroid = e.mean(axis=0)
        centroids.append(centroid / np.linalg.norm(centroid))
        pairs = e @ e.T
        within[name] = float(pairs[~np.eye(len(e), dtype=bool)].mean()) if len(e) > 1 else 1.0
    c = np.stack(centroids)
    return SpeakerCheck(base_speaker, names, c @ c.T, within)
