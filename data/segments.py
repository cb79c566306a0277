"""Random fixed-length audio crops for codec training, from a manifest or a folder of audio files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from ..core.audio import audio_info, read_span, resample
from ..core.errors import SonorantError
from .manifest import read_manifest

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def audio_files(source: str | Path, split: str | None = "train") -> list[Path]:
    """The audio files of a manifest (items of `split`; None = all) or of a folder (recursively)."""
    source = Path(source)
    if source.is_file():
        items = read_manifest(source)
        return [source.parent / it.path for it in items if split is None or it.split == split]
    if source.is_dir():
        manifest = source / "manifest.jsonl"
        if manifest.is_file():
            return audio_files(manifest, split)
        return sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    raise SonorantError(f"{source}: no such manifest or folder")


class Crop(NamedTuple):
    """One training crop: which file, and where in it (a fraction of the room left after the segment)."""

    file: int
    position: float


class SegmentDataset(Dataset):
    """Random fixed-length crops [1, segment] at `sample_rate` from audio files, read lazily.

    Only the headers are read up front; `draw` chooses crops with a generator (files in proportion to
    their length) and `load` reads just those spans. So the crops of a batch are the same whichever
    process reads them: under torchrun every rank draws the whole batch and reads only its own part.
    Files shorter than a segment are zero-padded.
    """

    def __init__(self, files: list[Path], sample_rate: int, segment_samples: int) -> None:
        if not files:
            raise SonorantError("no audio files to train on")
        self.files = list(files)
        self.sample_rate = sample_rate
        self.segment = segment_samples
        infos = [audio_info(f) for f in self.files]
        self.rates = [info.samplerate for info in infos]
        self.frames = [info.frames for info in infos]
        lengths = torch.tensor([f / r for f, r in zip(self.frames, self.rates, strict=True)], dtype=torch.float64)
        self.weights = lengths / lengths.sum()  # long files are sampled proportionally more often
        self.total_samples = int(lengths.sum() * sample_rate)

    def __len__(self) -> int:
        return len(self.files)

    def draw(self, count: int, generator: torch.Generator) -> list[Crop]:
        picks = torch.multinomial(self.weights, count, replacement=True, generator=generator)
        positions = torch.rand(count, generator=generator, dtype=torch.float64)
        return [Crop(int(i), float(p)) for i, p in zip(picks, positions, strict=True)]

    def _span(self, crop: Crop) -> tuple[int, int]:
        """(start, length) of a crop in its file's own samples."""
        rate, frames = self.rates[crop.file], self.frames[crop.file]
        span = math.ceil(self.segment * rate / self.sample_rate)
        return int(crop.position * max(0, frames - span)), span

    def start_seconds(self, crop: Crop) -> float:
        return self._span(crop)[0] / self.rates[crop.file]

    def load(self, crop: Crop) -> torch.Tensor:
        rate = self.rates[crop.file]
        start, span = self._span(crop)
        data, _ = read_span(self.files[crop.file], start, span)
        wav = resample(torch.from_numpy(data)[None], rate, self.sample_rate)[0, : self.segment]
        return torch.nn.functional.pad(wav, (0, self.segment - wav.shape[-1]))[None]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.load(Crop(index, float(torch.rand(1, dtype=torch.float64))))

    def batch(self, crops: list[Crop]) -> torch.Tensor:
        """The crops' audio [B, 1, segment]."""
        return torch.stack([self.load(c) for c in crops])
