"""Token sampling: temperature, top-k, top-p, repetition-aware sampling and classifier-free guidance."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1.0 = off
    # Repetition-aware sampling (VALL-E 2 / CosyVoice): when the token drawn for codebook 0 already
    # fills at least `repetition_ratio` of the last `repetition_window` frames, draw again from the
    # full distribution instead (this breaks loops without penalising legitimate repeats).
    repetition_window: int = 10
    repetition_ratio: float = 0.1  # 0 = off
    # Classifier-free guidance scale; None = off (no unconditional pass at all).
    cfg_scale: float | None = None
    seed: int | None = None
    # Frame cap (with text, also max_frames_per_phoneme per phoneme, whichever is lower).
    max_frames: int | None = None
    # Without text: the end decision is not allowed before this many frames.
    min_frames: int = 0
    # The pointer (with text). Speed biases the advance decision: 2.0 speaks about twice as fast, 0.5 half.
    speed: float = 1.0
    # Guard rails: a phoneme lasts at least / at most this many frames whatever the model says (Kyutai's
    # TTS does the same); the longest covers a sentence pause on a punctuation mark.
    min_frames_per_phoneme: int = 1
    max_frames_per_phoneme: int = 40

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.top_k < 0 or not 0.0 < self.top_p <= 1.0:
            raise ValueError("top_k must be >= 0 and top_p in (0, 1]")
        if not 0.25 <= self.speed <= 4.0:
            raise ValueError("speed must be between 0.25 and 4")
        if not 1 <= self.min_frames_per_phoneme <= self.max_frames_per_phoneme:
            raise ValueError("need 1 <= min_frames_per_phoneme <= max_frames_per_phoneme")


def guided(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance, written so that scale 1 returns `cond` exactly; entries masked out
    (-inf) in `cond` stay masked."""
    return torch.where(torch.isinf(cond), cond, cond + (scale - 1.0) * (cond - uncond))


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Keep the top-k entries and the smallest set whose probability reaches top_p; [M, V] -> [M, V]."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # Drop an entry when the entries before it already reach top_p (the first always stays).
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def draw(logits: torch.Tensor, temperature: float, race: torch.Tensor) -> torch.Tensor:
    """One token per row of logits [M, V]; temperature 0 = greedy. The exponential race (Gumbel-max) draws
    exactly from softmax(logits / temperature): with `race` [M, V] ~ Exp(1) (`exponential`), the largest
    p_i / E_i wins. The randomness is an input, so a traced graph draws exactly what eager code does."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = (logits.float() / temperature).softmax(dim=-1)
    return (probs / race).argmax(dim=-1)


def exponential(shape: tuple[int, ...], generator: torch.Generator | None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Exp(1) noise for `draw` and `sample`."""
    return torch.rand(shape, generator=generator, device=device).log_().neg_()


def _top_k_only(config: SamplingConfig, vocab: int) -> bool:
    return config.temperature > 0 and 0 < config.top_k < vocab and config.top_p >= 1.0


def noise_width(config: SamplingConfig, vocab: int) -> int:
    """Columns of Exp(1) noise one `sample` call reads per row of V = `vocab` logits: the filtered draw's
    (top-k alone draws among the k best only), then a full draw's for repetition-aware sampling."""
    return (config.top_k if _top_k_only(config, vocab) else vocab) + vocab


def draw_filtered(logits: torch.Tensor, config: SamplingConfig, race: torch.Tensor) -> torch.Tensor:
    """One token per row of logits [M, V] after top-k / top-p (`race`: the Exp(1) noise of `draw`, [M, k]
    for top-k alone, else [M, V])."""
    if _top_k_only(config, logits.shape[-1]):
        values, indices = logits.topk(config.top_k, dim=-1)
        return indices.gather(-1, draw(values, config.temperature, race)[:, None])[:, 0]
    return draw(filter_logits(logits, config.top_k, config.top_p), config.temperature, race)


def sample(logits: torch.Tensor, config: SamplingConfig, race: torch.Tensor,
           history: torch.Tensor | None = None) -> torch.Tensor:
    """Tokens [M] from logits [M, V] and Exp(1) noise `race` [M, noise_width(config, V)]; `history` [M, W]
    holds the recent tokens of this codebook (-1 = none) and switches repetition-aware sampling on."""
    filtered = race.shape[-1] - logits.shape[-1]
    tokens = draw_filtered(logits, config, race[:, :filtered])
    if history is None or config.repetition_ratio <= 0 or history.shape[1] == 0 or config.temperature == 0:
        return tokens
    window = history[:, -config.repetition_window:]
    repeats = (window == tokens[:, None]).sum(dim=1)
    looping = repeats >= config.repetition_ratio * config.repetition_window
    return torch.where(looping, draw(logits, config.temperature, race[:, filtered:]), tokens)
