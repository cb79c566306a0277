"""Frame-by-frame generation: the model makes each frame, this orchestrates (moshi's `LMGen` pattern).

The model owns the sequence layout and the one-frame step (`prefill`, `step`, `advance_logit`); this
object owns the state of a generation: the KV cache, the pointer over the phonemes and the frames spent
on the current one, sampling, guidance and the guard rails.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import torch

from .batch import Conditioning, stack_conditionings
from .model import HierarchicalLM, drop_condition
from .prefix import PrefixStore
from .sampling import SamplingConfig, exponential, guided, noise_width, sample

# A speed of s adds SPEED_GAIN * ln(s) to the advance logit: measured so that speed 2 about halves the
# duration on the shipped model.
SPEED_GAIN = 3.0


@dataclass
class Frame:
    """One generated step: codes of every item, which items it belongs to, the token each item spoke."""

    codes: torch.Tensor  # [B, K]
    valid: torch.Tensor  # [B] bool
    token: torch.Tensor  # [B] index into the utterance's phonemes (0 for items without text)
    logits: torch.Tensor | None = None  # [B, K, V] the (guided) logits sampled from, with keep_logits


@dataclass
class Generated:
    codes: torch.Tensor  # [B, K, T] (anything past lengths)
    lengths: torch.Tensor  # [B] frames per item
    ended: torch.Tensor  # [B] bool: True where the utterance ended by itself (not the length cap)
    tokens: torch.Tensor  # [B, T] the token spoken at every frame


class Generation:
    """Generates the frames that follow `cond` one step at a time; iterate for streaming, `run()` collects.

    With phonemes, the pointer starts on token `start` [B] (default 0) and the model decides after every
    frame whether it stays or moves on; moving on from the last token ends the utterance, so nothing is
    skipped, repeated or run on. Without phonemes (captions, continuation), codebook 0's end token ends it.
    `prefix` [B, K, F] forces the first frames (spoken on tokens `prefix_pointer` [B, F]): the voice prompt
    in transcript mode, whose phonemes then come first in `cond.phonemes`. With `sampling.cfg_scale`, an
    unconditional copy of every item (phonemes and caption dropped, prompt kept) guides the codes.
    `store` (a `PrefixStore`) lends the prefill the attention state of an earlier generation that started
    the same way (the same voice prompt).
    """

    def __init__(self, model: HierarchicalLM, cond: Conditioning, sampling: SamplingConfig | None = None,
                 keep_logits: bool = False, prefix: torch.Tensor | None = None,
                 prefix_lengths: torch.Tensor | None = None, prefix_pointer: torch.Tensor | None = None,
                 start: torch.Tensor | None = None, store: PrefixStore | None = None) -> None:
        self.model, self.sampling, self.keep_logits = model, sampling or SamplingConfig(), keep_logits
        self.store = store
        b = self.batch_size = cond.batch_size
        device = cond.phonemes.device
        s, c = self.sampling, model.config
        self.start = start if start is not None else torch.zeros(b, dtype=torch.long, device=device)
        self.has_text = cond.phoneme_lengths > 0
        remaining = (cond.phoneme_lengths - self.start).clamp(min=1)
        caps = torch.where(self.has_text, remaining * s.max_frames_per_phoneme,
                           torch.full_like(remaining, c.max_frames_without_text))
        self.caps = caps.clamp(max=s.max_frames) if s.max_frames is not None else caps
        if prefix is not None and prefix_pointer is None:  # forced frames without phonemes (continuation)
            prefix_pointer = torch.zeros(b, prefix.shape[-1], dtype=torch.long, device=device)
        self.prefix, self.prefix_lengths, self.prefix_pointer = prefix, prefix_lengths, prefix_pointer
        self.guided = s.cfg_scale is not None
        if self.guided:
            cond = stack_conditionings(cond, drop_condition(cond, torch.ones(b, dtype=torch.bool, device=device)))
            if prefix is not None:
                self.prefix = torch.cat([prefix, prefix])
                self.prefix_lengths = None if prefix_lengths is None else torch.cat([prefix_lengths] * 2)
                self.prefix_pointer = torch.cat([prefix_pointer, prefix_pointer])
        self.cond = cond
        self.ended = torch.zeros(b, dtype=torch.bool, device=device)
        self.bias = SPEED_GAIN * math.log(s.speed)
        # Added to codebook 0's logits: [0] blocks the end token for items with text, [1] for every item.
        blocked = model.no_end.expand(b, -1)
        self._end_bias = (torch.where(self.has_text[:, None], blocked, 0.0), blocked)
        self.generator = torch.Generator(device=device).manual_seed(s.seed) if s.seed is not None else None

    def run(self) -> Generated:
        frames = list(self)
        b, k = self.batch_size, self.model.num_codebooks
        if not frames:
            empty = torch.zeros(b, 0, dtype=torch.long)
            return Generated(torch.zeros(b, k, 0, dtype=torch.long), torch.zeros(b, dtype=torch.long), self.ended,
                             empty)
        codes = torch.stack([f.codes for f in frames], dim=-1)
        lengths = torch.stack([f.valid for f in frames], dim=-1).sum(dim=-1)
        return Generated(codes, lengths, self.ended, torch.stack([f.token for f in frames], dim=-1))

    def _both(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x]) if self.guided else x

    @torch.no_grad()
    def __iter__(self) -> Iterator[Frame]:
        model, s = self.model, self.sampling
        b = self.batch_size
        device = self.cond.phonemes.device
        prefix_frames = 0 if self.prefix is None else self.prefix.shape[-1]
        prompt_frames = self.cond.prompt.shape[-1] if self.cond.prompt is not None else 0
        cache = model.new_cache(self.cond.batch_size, prompt_frames + prefix_frames + int(self.caps.max()) + 4)
        pointer, spent = self.start.clone(), torch.zeros(b, dtype=torch.long, device=device)
        hidden, position = model.prefill(self.cond, cache, self._both(pointer), self.prefix, self.prefix_lengths,
                                         self.prefix_pointer, self.store)
        # Forced frames per item: the index among the target frames of the frame the next step's input predicts.
        frame = (self.prefix_lengths[:b].clone() if self.prefix_lengths is not None
                 else torch.full((b,), prefix_frames, dtype=torch.long, device=device))
        history = torch.full((b, s.repetition_window), -1, dtype=torch.long, device=device)
        if self.prefix is not None and s.repetition_window:
            for i in range(b):  # the forced frames count as recent history for repetition-aware sampling
                recent = self.prefix[i, 0, : int(frame[i])][-s.repetition_window:]
                history[i, s.repetition_window - recent.shape[-1]:] = recent
        active = torch.ones(b, dtype=torch.bool, device=device)
        self.ended = torch.zeros(b, dtype=torch.bool, device=device)
        last_token = self.cond.phoneme_lengths[:b] - 1
        for t in range(int(self.caps.max())):
            codes, logits = self.next_frame(hidden, history, t)  # [B, K], [B, K, V]
            end_token = (codes[:, 0] == model.config.end_token) & ~self.has_text
            valid = active & ~end_token
            yield Frame(codes.masked_fill(~valid[:, None], 0), valid, pointer.clone(), logits)
            advance = (model.advance_logit(hidden[:b]) + self.bias > 0)
            advance = (advance | (spent + 1 >= s.max_frames_per_phoneme)) & (spent + 1 >= s.min_frames_per_phoneme)
            spoken = self.has_text & advance & (pointer >= last_token)
            self.ended |= (end_token | spoken) & active
            active = valid & ~spoken & (t + 1 < self.caps)
            if not active.any():
                return
            history = torch.cat([history[:, 1:], codes[:, :1]], dim=1)
            moved = advance & self.has_text & active
            pointer = pointer + moved.long()
            spent = torch.where(moved, 0, spent + 1)
            feed = codes.masked_fill(~valid[:, None], 0)
            position, frame = position + 1, frame + 1
            hidden = model.step(self._both(feed), self.cond, self._both(pointer), self._both(spent), position,
                                self._both(frame), cache)

    def next_frame(self, hidden: torch.Tensor, history: torch.Tensor,
                   step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The frame that follows the global state `hidden` [B', C] (`step` frames already made) -> codes
        [B, K] (and the logits [B, K, V] they were drawn from, with keep_logits). `history` [B, W] holds
        recent codebook-0 tokens. On a model with traced steps, the whole frame is one graph per batch
        size and sampling setting."""
        model, s, b = self.model, self.sampling, self.batch_size
        # With text the pointer ends the utterance; without, codebook 0 may not end it before min_frames.
        end_bias = self._end_bias[1] if step < s.min_frames else self._end_bias[0]
        vocab = model.no_end.shape[-1]
        noise = exponential((b, model.num_codebooks, noise_width(s, vocab)), self.generator, hidden.device)
        inputs = (hidden, noise, history, end_bias)
        if model.traced_frames is None:
            codes, logits = frame_codes(model, s, b, *inputs)
        else:
            key = (hidden.shape[0], b, s.cfg_scale, s.temperature, s.top_k, s.top_p, s.repetition_window,
                   s.repetition_ratio)
            codes, logits = model.traced_frames(key, partial(frame_codes, model, s, b), inputs)
        return codes, (logits if self.keep_logits else None)


def frame_codes(model: HierarchicalLM, sampling: SamplingConfig, b: int, hidden: torch.Tensor, noise: torch.Tensor,
                history: torch.Tensor, end_bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The codes [b, K] of the frame that follows the global state `hidden` [B', C] (B' = 2b under guidance:
    the items, then their unconditional copies), codebook by codebook through the local transformer, guided
    and sampled with the Exp(1) `noise` [b, K, width]; `history` [b, W] holds recent codebook-0 tokens and
    `end_bias` [b, V] is added to codebook 0's logits. Also returns the logits [b, K, V] drawn from. A
    function of tensors only, so that it can be traced."""
    cache = model.new_local_cache(hidden.shape[0])
    token, chosen, kept = None, [], []
    for i in range(model.num_codebooks):
        logits = model.local_step(hidden, token, i, cache)  # [B', V]
        if sampling.cfg_scale is not None:
            logits = guided(logits[:b], logits[b:], sampling.cfg_scale)
        if i == 0:
            logits = logits + end_bias
        kept.append(logits)
        token = sample(logits, sampling, noise[:, i], history if i == 0 else None)
        chosen.append(token)
        if sampling.cfg_scale is not None:
            token = torch.cat([token, token])
    return torch.stack(chosen, dim=1), torch.stack(kept, dim=1)
