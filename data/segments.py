"""Random fixed-length audio crops for codec training, from a manifest or a folder of audio files."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..codec.audio import load_audio
from ..codec.errors import SonorantError
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


class SegmentDataset(Dataset):
    """Every file loaded once into memory at `sample_rate`; items are random crops [1, segment].

    Crops are drawn from the generator passed to `sample`, so the sequence is reproducible and
    part of the trainer's resumable RNG state. Files shorter than a segment are zero-padded.
    """

    def __init__(self, files: list[Path], sample_rate: int, segment_samples: int) -> None:
        if not files:
            raise SonorantError("no audio files to train on")
        self.segment = segment_samples
        self.clips = [load_audio(f, sample_rate, allow_silent=True)[0] for f in files]
        lengths = torch.tensor([c.shape[-1] for c in self.clips], dtype=torch.float64)
        self.weights = lengths / lengths.sum()  # long files are sampled proportionally more often

    def __len__(self) -> int:
        return len(self.clips)

    def crop(self, index: int, generator: torch.Generator) -> torch.Tensor:
        clip = self.clips[index]
        if clip.shape[-1] <= self.segment:
            return torch.nn.functional.pad(clip, (0, self.segment - clip.shape[-1]))[None]
        start = int(torch.randint(0, clip.shape[-1] - self.segment + 1, (1,), generator=generator))
        return clip[start:start + self.segment][None]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.crop(index, torch.default_generator)

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """A batch [B, 1, segment] of crops from files drawn in proportion to their length."""
        picks = torch.multinomial(self.weights, batch_size, replacement=True, generator=generator)
        return torch.stack([self.crop(int(i), generator) for i in picks])

    @property
    def total_samples(self) -> int:
        return sum(c.shape[-1] for c in self.clips)
