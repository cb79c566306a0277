"""Typed configuration of the hierarchical codec LM; the one source of truth for its defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..core.config import config_from_dict

# 2: the aligned phoneme stream with a predicted pointer replaced the text prefix (no migration: the models
# of format 1 read text in a way this code no longer has). 3: `max_frames` is `max_frames_without_text`.
CONFIG_FORMAT_VERSION = 3
ALIGNED_FORMAT = 2  # the oldest format this code reads

# Segment (modality) ids added to every position of the global sequence.
SEGMENT_CAPTION, SEGMENT_PROMPT, SEGMENT_TARGET = 0, 1, 2
NUM_SEGMENTS = 3


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
    # The aligned phoneme stream: at frame t the model reads the phonemes at these offsets from the one
    # being spoken (the previous one and two of lookahead by default) and how many frames it has lasted.
    phoneme_window: tuple[int, ...] = (-1, 0, 1, 2)
    max_spent_frames: int = 48  # frames-in-phoneme counts from here on share one embedding
    pointer_weight: float = 1.0  # weight of the stay/advance loss next to the codebooks' cross-entropy
    # Generation without text (captions, continuation) stops here at the latest; with text the pointer ends it.
    max_frames_without_text: int = 1500

    def __post_init__(self) -> None:
        if self.local_context not in ("first", "every"):
            raise ValueError(f"local_context must be 'first' or 'every', not {self.local_context!r}")
        if len(self.codebook_weights) != self.num_codebooks:
            raise ValueError(f"codebook_weights has {len(self.codebook_weights)} entries for "
                             f"{self.num_codebooks} codebooks")
        if self.dim % self.num_heads or self.local_dim % self.local_heads:
            raise ValueError("dim and local_dim must be multiples of their head counts")
        if 0 not in self.phoneme_window:
            raise ValueError("phoneme_window must contain 0 (the phoneme being spoken)")
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
        return {"config_version": CONFIG_FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LMConfig:
        return config_from_dict(cls, migrate_config(dict(data)), "LM config")


def migrate_config(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored config up to the current format. The one place that knows old formats."""
    version = data.pop("config_version", CONFIG_FORMAT_VERSION)
    data.pop("kind", None)
    data.pop("format_version", None)  # the release format's version, not the config's
    if version > CONFIG_FORMAT_VERSION:
        raise ValueError(f"LM config format {version} is newer than this sonorant ({CONFIG_FORMAT_VERSION})")
    if version < ALIGNED_FORMAT:
        raise ValueError(OLD_FORMAT)
    if version < 3 and "max_frames" in data:
        data["max_frames_without_text"] = data.pop("max_frames")
    return data


OLD_FORMAT = ("an LM of config format 1 (text as a prefix, aligned by attention): this sonorant speaks with an "
              "aligned phoneme stream and a predicted pointer; train a new LM (sonorant train lm)")
