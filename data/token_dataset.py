"""LM training examples from token shards: length-bucketed batches and same-speaker voice prompts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

from .manifest import Labels, of_speakers
from .shards import TokenShards


@dataclass(frozen=True, kw_only=True)
class TokenExample(Labels):
    id: str
    codes: torch.Tensor  # [K, T]
    prompt: torch.Tensor | None  # [K, P] a crop of another utterance of the same speaker, or None
    prompt_id: str | None


class TokenDataset:
    """Items of a shard directory (one split), each paired with a voice prompt when its speaker has
    another utterance: the zero-shot training pair (speak this text in the voice of that clip)."""

    def __init__(self, shards: TokenShards, max_item_frames: int | None = None,
                 prompt_frames: tuple[int, int] = (150, 500), speakers: tuple[str, ...] = (),
                 keep: set[str] | None = None) -> None:
        self.shards = shards
        self.prompt_frames = prompt_frames
        # Items longer than max_item_frames are left out rather than cropped: a crop would cut the text.
        # With `speakers` (base-speaker prefixes), only those speakers' items; with `keep`, only those ids.
        self.indices = [i for i, m in enumerate(shards.meta) if m.frames > 0
                        and (max_item_frames is None or m.frames <= max_item_frames)
                        and of_speakers(m.base_speaker, m.speaker, speakers)
                        and (keep is None or m.id in keep)]
        self.by_speaker: dict[str, list[int]] = defaultdict(list)
        for i in self.indices:
            speaker = shards.meta[i].speaker
            if speaker is not None:
                self.by_speaker[speaker].append(i)

    def __len__(self) -> int:
        return len(self.indices)

    def meta(self, position: int):
        return self.shards.meta[self.indices[position]]

    def lengths(self) -> list[int]:
        return [self.shards.meta[i].frames for i in self.indices]

    def example(self, position: int, generator: torch.Generator, with_prompt: bool = True) -> TokenExample:
        index = self.indices[position]
        meta = self.shards.meta[index]
        prompt, prompt_id = None, None
        others = [j for j in self.by_speaker.get(meta.speaker, []) if j != index] if meta.speaker else []
        if with_prompt and others:
            j = others[int(torch.randint(len(others), (1,), generator=generator))]
            prompt, prompt_id = self.crop_prompt(self.shards.codes(j), generator), self.shards.meta[j].id
        return TokenExample(id=meta.id, codes=self.shards.codes(index), prompt=prompt, prompt_id=prompt_id,
                            **meta.labels())

    def crop_prompt(self, codes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A random window of prompt_frames[0]..prompt_frames[1] frames (the whole clip if shorter)."""
        low, high = self.prompt_frames
        length = int(torch.randint(low, high + 1, (1,), generator=generator))
        if codes.shape[-1] <= length:
            return codes
        start = int(torch.randint(codes.shape[-1] - length + 1, (1,), generator=generator))
        return codes[:, start: start + length]


def random_length_batch(order: list[int], lengths: list[int], generator: torch.Generator, frame_budget: int = 0,
                        max_items: int | None = None, min_items: int = 1) -> list[int]:
    """One batch of neighbours in `order` (positions sorted by length) from a random starting point, as
    many as fit `frame_budget` padded frames (0 = no frame budget) and `max_items`, and at least `min_items`
    (one per process). Drawn with `generator` only, so a resumed training run draws the same batches."""
    start = int(torch.randint(len(order), (1,), generator=generator))
    chosen, longest = [], 0
    for step in range(len(order)):
        position = order[(start + step) % len(order)]
        grown = max(longest, lengths[position])
        if len(chosen) >= min_items and _full(grown, len(chosen), frame_budget, max_items):
            break
        chosen.append(position)
        longest = grown
    return chosen


def _full(longest: int, count: int, frame_budget: int, max_items: int | None) -> bool:
    """Whether a batch of `count` items cannot take one more whose padded length would be `longest`."""
    return bool((frame_budget and longest * (count + 1) > frame_budget) or (max_items and count >= max_items))
