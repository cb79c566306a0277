"""Frame-level phoneme labels for codec training crops, from the aligner's durations (`sonorant data align`).

A codec whose first codebook is trained to carry the phoneme being spoken (a classification head on the
first quantizer level, as in SpeechTokenizer, Mimi and PAST) gives a speech LM tokens it learns from
sooner. The labels: each aligned item's utterance tokens (language tag, phonemes, word boundaries, as the
text frontend makes them) repeated by their durations in frames, one per codec frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.errors import SonorantError
from ..text.frontend import TextFrontend
from .alignments import DEFAULT_LANGUAGE, require_alignments
from .manifest import read_manifest

IGNORE = -100  # a frame without a label (no alignment, or past the item's end): no loss


@dataclass
class FrameLabels:
    frontend: TextFrontend  # the classes: this vocabulary's ids
    frames: dict[Path, torch.Tensor]  # audio file -> class per codec frame [T]

    def crop(self, path: Path, start_seconds: float, count: int, frame_rate: float) -> torch.Tensor:
        """The labels [count] of the `count` frames from `start_seconds` into `path` (IGNORE where none)."""
        out = torch.full((count,), IGNORE, dtype=torch.long)
        labels = self.frames.get(path)
        if labels is not None:
            first = round(start_seconds * frame_rate)
            part = labels[first:first + count]
            out[: part.shape[0]] = part
        return out


def frame_labels(data: str | Path, alignments: str | Path, frontend: TextFrontend | None = None) -> FrameLabels:
    """Labels for the aligned items of a manifest (or a corpus folder with manifest.jsonl), read from the
    alignments beside token shards (`alignments` is the shard directory `data align` wrote to). The classes
    are `frontend`'s ids (a trained phonetic head's), by default a vocabulary of the aligned items' symbols."""
    manifest = Path(data)
    if manifest.is_dir():
        manifest = manifest / "manifest.jsonl"
    if not manifest.is_file():
        raise SonorantError(f"{data}: phoneme labels need a manifest (the items' ids name their alignments)")
    items = read_manifest(manifest)
    _, aligned = require_alignments(alignments)
    used = [(it, aligned[it.id]) for it in items if it.id in aligned]
    if not used:
        raise SonorantError(f"{alignments}: no alignment of any item of {manifest}")
    if frontend is None:
        frontend = TextFrontend.build([a.ipa for _, a in used],
                                      sorted({it.language or DEFAULT_LANGUAGE for it, _ in used}))
    frames = {}
    for it, a in used:
        ids = frontend.utterance_ids(a.ipa, it.language or DEFAULT_LANGUAGE)
        if len(ids) == len(a.durations):
            frames[manifest.parent / it.path] = torch.repeat_interleave(torch.tensor(ids), torch.tensor(a.durations))
    return FrameLabels(frontend, frames)
