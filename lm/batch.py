"""Typed inputs and outputs of the hierarchical LM."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class Conditioning:
    """What a sequence is conditioned on; every part is optional per item (length 0 / mask False).

    The global sequence of one item is `[caption][PROMPT][prompt frames][BOS][target frames]`; the
    phonemes are not in it: each target position reads the phonemes around the pointer (see
    `HierarchicalLM.frame_inputs`).
    """

    phonemes: torch.Tensor  # [B, L] utterance ids (language tag, phonemes, closing boundary; 0 = padding)
    phoneme_lengths: torch.Tensor  # [B] (0 = no text: caption or continuation)
    prompt: torch.Tensor | None = None  # [B, K, P] codes of the acoustic (speaker reference) prompt
    prompt_lengths: torch.Tensor | None = None  # [B]
    caption: torch.Tensor | None = None  # [B, caption_dim] caption embeddings
    has_caption: torch.Tensor | None = None  # [B] bool
    beats_per_frame: torch.Tensor | None = None  # [B] the tempo the caption states (`caption_tempo`); 0 = none

    @property
    def batch_size(self) -> int:
        return self.phonemes.shape[0]

    def prompt_frames(self) -> torch.Tensor:
        if self.prompt_lengths is None:
            return torch.zeros(self.batch_size, dtype=torch.long, device=self.phonemes.device)
        return self.prompt_lengths

    def map(self, fn) -> Conditioning:
        """The same conditioning with `fn` applied to every tensor (moving, indexing, stacking)."""
        return Conditioning(**{f.name: (fn(getattr(self, f.name)) if isinstance(getattr(self, f.name), torch.Tensor)
                                        else getattr(self, f.name)) for f in fields(self)})

    def to(self, device: torch.device | str) -> Conditioning:
        return self.map(lambda t: t.to(device))


def stack_conditionings(a: Conditioning, b: Conditioning) -> Conditioning:
    """Items of `a` then items of `b` (classifier-free guidance runs both in one batch)."""
    out = {}
    for f in fields(Conditioning):
        x, y = getattr(a, f.name), getattr(b, f.name)
        out[f.name] = None if x is None else torch.cat([x, y])
    return Conditioning(**out)


@dataclass
class LMBatch:
    """A training batch: conditioning plus the target frames to model and where the pointer was."""

    condition: Conditioning
    codes: torch.Tensor  # [B, K, T] target codes (anything past code_lengths)
    code_lengths: torch.Tensor  # [B]
    # [B, T] the utterance token spoken at each target frame (from the aligner's durations); ignored for
    # items without phonemes
    pointer: torch.Tensor | None = None
    # [B] bool: items trained without their text/caption (condition dropout), when the data pipeline
    # chooses; None = the model draws them with probability `condition_dropout`.
    drop: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.codes.shape[0]

    def to(self, device: torch.device | str) -> LMBatch:
        def move(t):
            return t.to(device) if t is not None else None

        return LMBatch(self.condition.to(device), self.codes.to(device), self.code_lengths.to(device),
                       move(self.pointer), move(self.drop))


@dataclass
class LMOutput:
    """Result of `HierarchicalLM.forward`.

    `logits`/`targets` cover the target frames followed by the end frame (row T_i of item i holds the
    end decision of items without text; codebooks > 0 of that row are ignored). Rows past an item's
    length are ignored (target -100). With `local_frame_fraction < 1` in training, logits are computed for
    a random subset of frames only and `logits` is None. `advance_logits` [B, T]: after frame t, whether the
    pointer moves on to the next phoneme (or, from the last, ends the utterance).
    """

    logits: torch.Tensor | None  # [B, T + 1, K, V]
    targets: torch.Tensor  # [B, T + 1, K], -100 = ignored
    advance_logits: torch.Tensor  # [B, T]
    loss: torch.Tensor  # weighted cross-entropy plus the pointer loss (scalar)
    losses: dict[str, torch.Tensor] = field(default_factory=dict)  # "ce/k" per codebook, "pointer"
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)  # "accuracy/k", "pointer_accuracy"...


def spent_frames(pointer: torch.Tensor) -> torch.Tensor:
    """[B, T] frames the pointer has already stayed on its token before frame t (0 on a token's first frame)."""
    b, t = pointer.shape
    new = torch.ones_like(pointer, dtype=torch.bool)
    new[:, 1:] = pointer[:, 1:] != pointer[:, :-1]
    index = torch.arange(t, device=pointer.device).expand(b, t)
    start = torch.where(new, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - start


def advances(pointer: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, T] bool: the pointer moves on after frame t (the next frame has the next token, or frame t is
    the item's last)."""
    out = torch.zeros_like(pointer, dtype=torch.bool)
    out[:, :-1] = pointer[:, 1:] != pointer[:, :-1]
    last = (lengths - 1).clamp(min=0)
    out[torch.arange(pointer.shape[0], device=pointer.device), last] = True
    return out


def pointer_from_durations(durations: list[int]) -> torch.Tensor:
    """[T] token index of every frame of an utterance whose token i lasted durations[i] frames."""
    return torch.repeat_interleave(torch.arange(len(durations)), torch.tensor(durations, dtype=torch.long))
