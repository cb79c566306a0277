"""Frame-by-frame generation with the global KV cache: prefill once, then one frame per step."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .batch import Conditioning
from .config import SEGMENT_TARGET
from .model import HierarchicalLM, drop_condition
from .sampling import SamplingConfig, guided, sample


@dataclass
class Frame:
    """One generated step: codes of every item and which items it belongs to (not ended yet)."""

    codes: torch.Tensor  # [B, K]
    valid: torch.Tensor  # [B] bool
    logits: torch.Tensor | None = None  # [B, K, V] the (guided) logits sampled from, with keep_logits


@dataclass
class Generated:
    codes: torch.Tensor  # [B, K, T] (anything past lengths)
    lengths: torch.Tensor  # [B] frames per item
    ended: torch.Tensor  # [B] bool: True where the model chose to stop (not the length cap)


class Generation:
    """Generates the frames that follow `cond` (text, caption, voice prompt) one step at a time.

    Iterate to receive `Frame`s as they are made (for streaming decode); `run()` collects them.
    With `sampling.cfg_scale` set, an unconditional copy of every item (text and caption dropped,
    prompt kept) runs alongside and the logits are guided.

    `prefix` [B, K, F] (with `prefix_lengths` [B]) forces the first target frames, VALL-E style: the
    text then covers the prefix's words too, and generation continues the prefix (which is not yielded).
    """

    def __init__(self, model: HierarchicalLM, cond: Conditioning, sampling: SamplingConfig | None = None,
                 keep_logits: bool = False, prefix: torch.Tensor | None = None,
                 prefix_lengths: torch.Tensor | None = None) -> None:
        self.model, self.sampling, self.keep_logits = model, sampling or SamplingConfig(), keep_logits
        self.batch_size = cond.batch_size
        if prefix is not None and prefix_lengths is None:
            prefix_lengths = torch.full((cond.batch_size,), prefix.shape[-1], dtype=torch.long, device=prefix.device)
        self.prefix, self.prefix_lengths = prefix, prefix_lengths
        c = model.config
        caps = torch.where(cond.text_lengths > 0, (cond.text_lengths * c.max_frames_per_token).ceil().long(),
                           torch.full_like(cond.text_lengths, c.max_frames)).clamp(max=c.max_frames)
        if self.sampling.max_frames is not None:
            caps = caps.clamp(max=self.sampling.max_frames)
        self.caps = caps
        if c.text_positions == "aligned" and cond.rate is None:  # a prefix must not set the rate
            cond = dataclasses.replace(cond, rate=torch.full((cond.batch_size,), c.frames_per_token,
                                                             device=cond.text.device))
        self.guided = self.sampling.cfg_scale is not None
        if self.guided:
            cond = _stack(cond, drop_condition(cond, torch.ones(cond.batch_size, dtype=torch.bool,
                                                                 device=cond.text.device)))
            if self.prefix is not None:
                self.prefix = torch.cat([self.prefix, self.prefix])
                self.prefix_lengths = torch.cat([self.prefix_lengths, self.prefix_lengths])
        self.cond = cond
        self.ended = torch.zeros(self.batch_size, dtype=torch.bool, device=cond.text.device)
        self._end = torch.tensor([model.config.end_token], device=cond.text.device)
        self.generator = None
        if self.sampling.seed is not None:
            self.generator = torch.Generator(device=cond.text.device).manual_seed(self.sampling.seed)

    def run(self) -> Generated:
        frames = list(self)
        b, k = self.batch_size, self.model.num_codebooks
        if not frames:
            return Generated(torch.zeros(b, k, 0, dtype=torch.long), torch.zeros(b, dtype=torch.long), self.ended)
        codes = torch.stack([f.codes for f in frames], dim=-1)
        lengths = torch.stack([f.valid for f in frames], dim=-1).sum(dim=-1)
        return Generated(codes, lengths, self.ended)

    @torch.no_grad()
    def __iter__(self) -> Iterator[Frame]:
        model, cfg = self.model, self.model.config
        b = self.batch_size
        seq = model.build_sequence(self.cond, self.prefix, self.prefix_lengths, pad_left=True)
        cache = model.new_cache(seq.x.shape[0], seq.x.shape[1] + int(self.caps.max()) + 1)
        hidden = model.global_transformer.step(seq.x, seq.positions, seq.valid, cache)[:, -1]  # [B', C]
        position = seq.positions[:, -1]
        device = hidden.device
        history = torch.full((b, self.sampling.repetition_window), -1, dtype=torch.long, device=device)
        if self.prefix is not None:  # the forced frames count as recent history for repetition-aware sampling
            w = self.sampling.repetition_window
            for i in range(b):
                recent = self.prefix[i, 0, : int(self.prefix_lengths[i])][-w:] if w else self.prefix[i, 0, :0]
                history[i, w - recent.shape[-1]:] = recent
        active = torch.ones(b, dtype=torch.bool, device=device)
        self.ended = torch.zeros(b, dtype=torch.bool, device=device)
        segment = model.segment_embedding.weight[SEGMENT_TARGET]
        for t in range(int(self.caps.max())):
            codes, logits = self.next_frame(hidden, history, t)  # [B, K], [B, K, V]
            ends = codes[:, 0] == cfg.end_token
            self.ended |= ends & active
            valid = active & ~ends
            yield Frame(codes.masked_fill(~valid[:, None], 0), valid, logits)
            active = valid & (t + 1 < self.caps)
            if not active.any():
                return
            history = torch.cat([history[:, 1:], codes[:, :1]], dim=1)
            feed = codes.masked_fill(~valid[:, None], 0)
            if self.guided:
                feed = torch.cat([feed, feed])
            x = model.embed_frames(feed[:, :, None]) + segment  # [B', 1, C]
            position = position + 1
            hidden = model.global_transformer.step(x, position[:, None], torch.ones_like(position[:, None],
                                                   dtype=torch.bool), cache)[:, -1]

    def next_frame(self, hidden: torch.Tensor, history: torch.Tensor,
                   step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The frame that follows the global state `hidden` [B', C] (`step` frames already made): runs the
        local transformer codebook by codebook with its own KV cache -> codes [B, K] (and the logits
        [B, K, V] they were drawn from, with keep_logits). `history` [B, W] holds recent codebook-0 tokens."""
        model, b = self.model, self.batch_size
        k = model.num_codebooks
        cache = model.local_transformer.new_cache(hidden.shape[0], k, hidden)
        chosen = torch.zeros(hidden.shape[0], 0, dtype=torch.long, device=hidden.device)
        every = torch.ones(hidden.shape[0], 1, dtype=torch.bool, device=hidden.device)
        kept = []
        for i in range(k):
            x = model.local_inputs(hidden, chosen, start=i)  # only the new position
            positions = torch.full((hidden.shape[0], 1), i, device=hidden.device)
            y = model.local_transformer.step(x, positions, every, cache)
            logits = model.local_logits(y, first=i)[:, 0]  # [B', V]
            if self.guided:
                logits = guided(logits[:b], logits[b:], self.sampling.cfg_scale)
            if i == 0 and step < self.sampling.min_frames:
                logits = logits.index_fill(-1, self._end, float("-inf"))
            if self.keep_logits:
                kept.append(logits)
            token = sample(logits, self.sampling, self.generator, history if i == 0 else None)
            if self.guided:
                token = torch.cat([token, token])
            chosen = torch.cat([chosen, token[:, None]], dim=1)
        return chosen[:b], (torch.stack(kept, dim=1) if kept else None)


def _stack(a: Conditioning, b: Conditioning) -> Conditioning:
    def cat(x, y):
        return None if x is None else torch.cat([x, y])
    return Conditioning(text=cat(a.text, b.text), text_lengths=cat(a.text_lengths, b.text_lengths),
                        prompt=cat(a.prompt, b.prompt), prompt_lengths=cat(a.prompt_lengths, b.prompt_lengths),
                        caption=cat(a.caption, b.caption), has_caption=cat(a.has_caption, b.has_caption),
                        rate=cat(a.rate, b.rate))
