"""Typed configuration of the hierarchical codec LM; the one source of truth for its defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

CONFIG_FORMAT_VERSION = 1

# Segment (modality) ids added to every position of the global sequence.
SEGMENT_TEXT, SEGMENT_CAPTION, SEGMENT_PROMPT, SEGMENT_TARGET = 0, 1, 2, 3
NUM_SEGMENTS = 4


@dataclass(frozen=True)
class LMConfig:
    """A global transformer over frames and a local (depth) transformer over the K codebooks of a frame.

    Defaults are the small CPU model; `configs/lm-*.yaml` override them.
    """

    num_codebooks: int = 8
    codebook_size: int = 1024
    # Phoneme vocabulary of the text frontend (ids 0..text_vocab_size-1, 0 = padding).
    text_vocab_size: int = 256
    # Size of a caption embedding (384 for the MiniLM encoder); 0 = no caption input. The encoder's name
    # is part of the model: inference must embed captions exactly as training did.
    caption_dim: int = 0
    caption_encoder: str = "minilm"
    dim: int = 256
    num_layers: int = 6
    num_heads: int = 4
    local_dim: int = 128
    local_layers: int = 2
    local_heads: int = 2
    mlp_ratio: float = 3.0
    dropout: float = 0.0
    rope_base: float = 10000.0
    # How the local transformer sees the frame's global state: "first" feeds one projection of it as
    # the first local position (RQ-Transformer / CSM); "every" also adds a per-codebook projection of
    # it to every local position (Moshi's depformer).
    local_context: str = "first"
    # Training: share of target frames the local transformer is run on (1.0 = all of them).
    local_frame_fraction: float = 1.0
    # Probability of dropping the text/caption condition of a training item (classifier-free guidance).
    condition_dropout: float = 0.1
    # Cross-entropy weight per codebook; codebook 0 (which also carries the end decision) weighs most.
    codebook_weights: tuple[float, ...] = (4.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    # Whether the audio prompt's frames are also trained on (they are real audio of the same voice).
    loss_on_prompt: bool = False
    # Where the voice prompt sits: "after_text" ([text][PROMPT][prompt][BOS][target], VALL-E's order) or
    # "before_text" ([PROMPT][prompt][text][BOS][target]: the text right before the audio it describes, at
    # the same distance from it whatever the prompt's length).
    prompt_position: str = "after_text"
    # Rotary positions of the global sequence: "sequence" (each entry's index in it) or "aligned" (the
    # target's frames count 0, 1, 2...; the voice prompt's frames the negative positions before them, and
    # text token j sits at (j + 0.5) x the item's frames per token, so the query of a frame is nearest to
    # the token it speaks: Deep Voice 3's position rates, and the text alignment emerges far sooner).
    text_positions: str = "sequence"
    # Aligned positions: the frames per text token used at generation when the caller gives no rate (the
    # mean of the training data, recorded by training).
    frames_per_token: float = 4.0
    # Generation stops at most at this many frames per text token (and at max_frames in any case).
    max_frames_per_token: float = 20.0
    max_frames: int = 1500

    def __post_init__(self) -> None:
        if self.local_context not in ("first", "every"):
            raise ValueError(f"local_context must be 'first' or 'every', not {self.local_context!r}")
        if len(self.codebook_weights) != self.num_codebooks:
            raise ValueError(f"codebook_weights has {len(self.codebook_weights)} entries for "
                             f"{self.num_codebooks} codebooks")
        if self.dim % self.num_heads or self.local_dim % self.local_heads:
            raise ValueError("dim and local_dim must be multiples of their head counts")
        if self.prompt_position not in ("after_text", "before_text"):
            raise ValueError(f"prompt_position must be 'after_text' or 'before_text', not {self.prompt_position!r}")
        if self.text_positions not in ("sequence", "aligned"):
            raise ValueError(f"text_positions must be 'sequence' or 'aligned', not {self.text_positions!r}")
        if self.frames_per_token <= 0:
            raise ValueError("frames_per_token must be positive")
        if not 0.0 < self.local_frame_fraction <= 1.0:
            raise ValueError("local_frame_fraction must be in (0, 1]")

    @property
    def end_token(self) -> int:
        """Codebook 0's extra entry that ends the audio."""
        return self.codebook_size

    @property
    def vocab_size(self) -> int:
        """Entries of every codebook's output (the codes plus the end token)."""
        return self.codebook_size + 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LMConfig:
        data = migrate_config(dict(data))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown LM config keys: {sorted(unknown)}")
        if "codebook_weights" in data:
            data["codebook_weights"] = tuple(data["codebook_weights"])
        return cls(**data)


def migrate_config(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored config up to the current format. The one place that knows old formats."""
    version = data.pop("format_version", CONFIG_FORMAT_VERSION)
    data.pop("kind", None)
    if version > CONFIG_FORMAT_VERSION:
        raise ValueError(f"LM config format {version} is newer than this sonorant ({CONFIG_FORMAT_VERSION})")
    return data
