"""Typed inputs and outputs of the hierarchical LM."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Conditioning:
    """What a sequence is conditioned on; every part is optional per item (length 0 / mask False).

    The global sequence of one item is
    `[text][caption][PROMPT] [prompt frames] [BOS] [target frames]`, so the model always knows where
    the voice prompt ends and the audio to generate begins.
    """

    text: torch.Tensor  # [B, L] phoneme ids (0 = padding)
    text_lengths: torch.Tensor  # [B]
    prompt: torch.Tensor | None = None  # [B, K, P] codes of the acoustic prompt
    prompt_lengths: torch.Tensor | None = None  # [B]
    caption: torch.Tensor | None = None  # [B, caption_dim] caption embeddings
    has_caption: torch.Tensor | None = None  # [B] bool
    # [B] frames per text token, for `text_positions: aligned` (training derives it from the target's length;
    # generation estimates it, from the voice prompt's speaking rate or the model's mean)
    rate: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.text.shape[0]

    def prompt_frames(self) -> torch.Tensor:
        if self.prompt_lengths is None:
            return torch.zeros(self.batch_size, dtype=torch.long, device=self.text.device)
        return self.prompt_lengths

    def to(self, device: torch.device | str) -> Conditioning:
        move = {name: (value.to(device) if isinstance(value, torch.Tensor) else value)
                for name, value in self.__dict__.items()}
        return Conditioning(**move)


@dataclass
class LMBatch:
    """A training batch: conditioning plus the target frames to model."""

    condition: Conditioning
    codes: torch.Tensor  # [B, K, T] target codes (anything past code_lengths)
    code_lengths: torch.Tensor  # [B]
    # [B] bool: items trained without their text/caption (condition dropout), when the data pipeline
    # chooses; None = the model draws them with probability `condition_dropout`.
    drop: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.codes.shape[0]

    def to(self, device: torch.device | str) -> LMBatch:
        drop = self.drop.to(device) if self.drop is not None else None
        return LMBatch(self.condition.to(device), self.codes.to(device), self.code_lengths.to(device), drop)


@dataclass
class LMOutput:
    """Result of `HierarchicalLM.forward`.

    `logits`/`targets` cover the target frames followed by the end frame (row T_i of item i holds the
    end decision; codebooks > 0 of that row are ignored). Rows past an item's length are ignored
    (target -100). With `local_frame_fraction < 1` in training, logits are computed for a random
    subset of frames only and `logits` is None.
    """

    logits: torch.Tensor | None  # [B, T + 1, K, V]
    targets: torch.Tensor  # [B, T + 1, K], -100 = ignored
    loss: torch.Tensor  # weighted cross-entropy (scalar)
    losses: dict[str, torch.Tensor] = field(default_factory=dict)  # "ce/k" per codebook
    metrics: dict[str, float] = field(default_factory=dict)  # "accuracy/k" per codebook
