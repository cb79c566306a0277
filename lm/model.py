"""The hierarchical codec LM: a global transformer over frames, a local transformer over codebooks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ModelError
from ..core.release import load_release, load_weights, save_release
from .batch import Conditioning, LMBatch, LMOutput, advances, spent_frames
from .config import (
    ALIGNED_FORMAT,
    NUM_SEGMENTS,
    OLD_FORMAT,
    SEGMENT_CAPTION,
    SEGMENT_PROMPT,
    SEGMENT_TARGET,
    LMConfig,
)
from .int8 import int8_linears
from .layers import KVCache, Transformer
from .prefix import PrefixStore
from .traced import TracedSteps

IGNORE = -100
# The beat clock: the phase of every frame within a beat at these multiples of the stated tempo (a quarter
# and a half: the bar and half bar of 4/4; 2 and 4: eighths and sixteenths), as sines and cosines.
BEAT_HARMONICS = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass
class Sequence:
    """Global input sequences of a batch, padded on one side."""

    x: torch.Tensor  # [B, N, C]
    valid: torch.Tensor  # [B, N] bool
    positions: torch.Tensor  # [B, N] rotary position of each entry
    prompt_mark: torch.Tensor  # [B] index of the PROMPT marker
    bos: torch.Tensor  # [B] index of BOS (the first target frame is predicted there)


class HierarchicalLM(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        c = self.config = config
        k = c.num_codebooks
        # The aligned phoneme stream: one table per window offset, and the frames spent in the phoneme.
        self.phoneme_embeddings = nn.ModuleList(nn.Embedding(c.text_vocab_size, c.dim, padding_idx=0)
                                                for _ in c.phoneme_window)
        self.spent_embedding = nn.Embedding(c.max_spent_frames + 1, c.dim)
        self.register_buffer("window_offsets", torch.tensor(c.phoneme_window), persistent=False)
        self.caption_projection = nn.Linear(c.caption_dim, c.dim) if c.caption_dim else None
        if c.caption_dim:
            # The tempo a caption states becomes a clock the frames read, as a text becomes an aligned stream.
            self.beat_projection = nn.Linear(2 * len(BEAT_HARMONICS), c.dim)
            self.register_buffer("beat_harmonics", torch.tensor(BEAT_HARMONICS), persistent=False)
        # One table for all codebooks; codebook k uses rows k*size .. (k+1)*size - 1.
        self.frame_embedding = nn.Embedding(k * c.codebook_size, c.dim)
        self.segment_embedding = nn.Embedding(NUM_SEGMENTS, c.dim)
        self.prompt_marker = nn.Parameter(torch.randn(c.dim) * 0.02)
        self.bos = nn.Parameter(torch.randn(c.dim) * 0.02)
        self.register_buffer("code_offsets", torch.arange(k) * c.codebook_size, persistent=False)
        self.global_transformer = Transformer(c.dim, c.num_layers, c.num_heads, c.mlp_ratio, c.dropout, c.rope_base)
        self.advance_head = nn.Linear(c.dim, 1)

        self.local_context = nn.Linear(c.dim, c.local_dim)
        if c.local_context == "every":
            self.local_context_per_step = nn.Parameter(torch.randn(k, c.dim, c.local_dim) * c.dim**-0.5)
        self.local_embedding = nn.Embedding((k - 1) * c.codebook_size, c.local_dim) if k > 1 else None
        self.local_transformer = Transformer(c.local_dim, c.local_layers, c.local_heads, c.mlp_ratio, c.dropout,
                                             c.rope_base)
        self.heads = nn.Parameter(torch.randn(k, c.local_dim, c.vocab_size) * c.local_dim**-0.5)
        # Added to the logits of codebooks > 0: only codebook 0 can end the audio.
        self.register_buffer("no_end", torch.zeros(c.vocab_size).index_fill_(0, torch.tensor(c.end_token),
                                                                            float("-inf")), persistent=False)
        self.apply(_init_weights)
        self.weights = "float32"  # "int8" after int8_()
        self.traced_frames: TracedSteps | None = None  # see trace_steps_

    @property
    def num_codebooks(self) -> int:
        return self.config.num_codebooks

    # -- what one position of the global sequence reads ----------------------------------------------
    def embed_frames(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> [B, T, C]: the sum of the K codebook embeddings of each frame."""
        return self.frame_embedding(codes.clamp(0, self.config.codebook_size - 1)
                                    + self.code_offsets[:, None]).sum(dim=1)

    def phoneme_inputs(self, phonemes: torch.Tensor, phoneme_lengths: torch.Tensor, pointer: torch.Tensor,
                       spent: torch.Tensor) -> torch.Tensor:
        """The phonemes around the pointer and how long it has stayed: [B, T, C] for pointer, spent [B, T].
        Offsets outside the utterance read padding (zero); items without phonemes read nothing."""
        length = phonemes.shape[1]
        at = pointer[..., None] + self.window_offsets  # [B, T, W]
        inside = (at >= 0) & (at < phoneme_lengths[:, None, None])
        if length:
            ids = phonemes.gather(1, at.clamp(0, length - 1).flatten(1)).view_as(at).masked_fill(~inside, 0)
        else:
            ids = torch.zeros_like(at)
        out = sum(table(ids[..., j]) for j, table in enumerate(self.phoneme_embeddings))
        has_text = (phoneme_lengths > 0)[:, None, None]
        return (out + self.spent_embedding(spent.clamp(0, self.config.max_spent_frames))) * has_text

    def beat_inputs(self, cond: Conditioning, frames: torch.Tensor) -> torch.Tensor | None:
        """The beat clock of the positions that predict target frames `frames` [B, T] (indices from 0): the
        phase of each frame in the tempo its item's caption states -> [B, T, C] (zero for items without a
        caption or a tempo), or None for a model or conditioning without captions."""
        if self.caption_projection is None or cond.caption is None or cond.beats_per_frame is None:
            return None
        rate = cond.beats_per_frame.to(self.bos.dtype)[:, None]
        if cond.has_caption is not None:
            rate = rate * cond.has_caption[:, None]
        beats = torch.remainder(frames.to(rate.dtype) * rate, 4.0)[..., None] * self.beat_harmonics  # [B, T, H]
        angles = 2 * torch.pi * beats
        return self.beat_projection(torch.cat([angles.sin(), angles.cos()], dim=-1)) * (rate > 0)[..., None]

    def frame_inputs(self, previous: torch.Tensor | None, conditions: torch.Tensor | None) -> torch.Tensor:
        """The input of the position that predicts a target frame: the previous frame's codes embedded
        (`previous` [B, T, C]; None = BOS) plus what it reads of the conditioning [B, T, C] (the phonemes
        around the pointer, the beat clock of the caption's tempo)."""
        seg = self.segment_embedding.weight[SEGMENT_TARGET]
        x = (self.bos if previous is None else previous) + seg
        return x if conditions is None else x + conditions

    def build_sequence(self, cond: Conditioning, codes: torch.Tensor | None = None,
                       code_lengths: torch.Tensor | None = None, pointer: torch.Tensor | None = None,
                       pad_left: bool = False) -> Sequence:
        """`[caption][PROMPT][prompt frames][BOS][target frames]` for every item, padded right (training)
        or left (generation, so that all items end at the same index). BOS and the target frames carry the
        phoneme inputs of the frame they predict (`pointer` [B, T] or [B, T + 1]: the token of every target
        frame, and of the frame after them when given)."""
        seg = self.segment_embedding.weight
        caption = None
        if self.caption_projection is not None and cond.caption is not None:
            # Caption encoders give unit-norm vectors (RMS 1/sqrt(D) per dimension): scaled to unit RMS, the
            # caption reaches the scale of the frame embeddings from the first step rather than after thousands.
            caption = self.caption_projection(cond.caption * self.config.caption_dim ** 0.5) + seg[SEGMENT_CAPTION]
        prompt_len = cond.prompt_frames()
        prompt = self.embed_frames(cond.prompt) + seg[SEGMENT_PROMPT] if cond.prompt is not None else None
        marker = self.prompt_marker + seg[SEGMENT_PROMPT]
        target = None
        if codes is not None:
            previous = torch.cat([self.bos.expand(codes.shape[0], 1, -1), self.embed_frames(codes)], dim=1)
            phon = torch.zeros_like(previous)
            if pointer is not None:  # [B, T] (training: the end row reads no phonemes) or [B, T + 1]
                n = pointer.shape[1]
                phon[:, :n] = self.phoneme_inputs(cond.phonemes, cond.phoneme_lengths, pointer, spent_frames(pointer))
            frames = torch.arange(previous.shape[1], device=previous.device).expand(previous.shape[0], -1)
            beat = self.beat_inputs(cond, frames)
            target = self.frame_inputs(previous, phon if beat is None else phon + beat)  # BOS ... frame T-1
        rows, marks, bos_at = [], [], []
        for i in range(cond.batch_size):
            parts = []
            if caption is not None and (cond.has_caption is None or bool(cond.has_caption[i])):
                parts.append(caption[i, None])
            marks.append(sum(p.shape[0] for p in parts))
            parts.append(marker[None])
            if prompt is not None:
                parts.append(prompt[i, : int(prompt_len[i])])
            bos_at.append(sum(p.shape[0] for p in parts))
            if target is not None:
                parts.append(target[i, : int(code_lengths[i]) + 1])
            rows.append(torch.cat(parts))
        lengths = torch.tensor([r.shape[0] for r in rows], device=marker.device)
        n = int(lengths.max())
        x = marker.new_zeros(len(rows), n, marker.shape[-1])
        valid = torch.zeros(len(rows), n, dtype=torch.bool, device=marker.device)
        shift = (n - lengths) if pad_left else torch.zeros_like(lengths)
        for i, row in enumerate(rows):
            s = int(shift[i])
            x[i, s: s + row.shape[0]] = row
            valid[i, s: s + row.shape[0]] = True
        positions = (torch.arange(n, device=x.device)[None] - shift[:, None]).clamp(min=0).float()
        return Sequence(x, valid, positions, torch.tensor(marks, device=x.device) + shift,
                        torch.tensor(bos_at, device=x.device) + shift)

    # -- the local (depth) transformer ---------------------------------------------------------
    def local_inputs(self, hidden: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """hidden [M, C] and a frame's codes [M, K - 1] (all but the last codebook) -> the teacher-forced
        local inputs [M, K, C_local] (generation feeds them one at a time: `local_step`)."""
        # Position p >= 1 is fed the code chosen for codebook p - 1.
        x = self.local_context(hidden)[:, None]
        if codes.shape[1]:
            previous = codes.clamp(0, self.config.codebook_size - 1) + self.code_offsets[: codes.shape[1]]
            x = torch.cat([x, self.local_embedding(previous)], dim=1)
        if self.config.local_context == "every":
            x = x + torch.einsum("mc,kcd->mkd", hidden, self.local_context_per_step[: x.shape[1]])
        return x

    def local_logits(self, y: torch.Tensor) -> torch.Tensor:
        """Local outputs y [M, K, C_local] -> logits [M, K, V]; only codebook 0 can end the audio."""
        logits = torch.einsum("mkc,kcv->mkv", y, self.heads)
        return torch.cat([logits[:, :1], logits[:, 1:] + self.no_end], dim=1)

    def frame_logits(self, hidden: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits of all K codebooks: hidden [M, C], codes [M, K] -> [M, K, V]."""
        x = self.local_inputs(hidden, codes[:, :-1])
        positions = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
        return self.local_logits(self.local_transformer(x, positions))

    # -- training forward ----------------------------------------------------------------------
    def forward(self, batch: LMBatch) -> LMOutput:
        """Teacher-forced cross-entropy of the target frames (and the end decision of items without
        text) plus the pointer's stay/advance loss."""
        c = self.config
        cond = batch.condition
        if self.training and c.condition_dropout > 0:
            drop = batch.drop if batch.drop is not None else torch.rand(cond.batch_size) < c.condition_dropout
            cond = drop_condition(cond, drop.to(cond.phonemes.device))
        b, k, t = batch.codes.shape
        pointer = batch.pointer if batch.pointer is not None else torch.zeros(b, t, dtype=torch.long,
                                                                               device=batch.codes.device)
        seq = self.build_sequence(cond, batch.codes, batch.code_lengths, pointer)
        hidden = self.global_transformer(seq.x, seq.positions)  # [B, N, C]

        steps = torch.arange(t + 1, device=hidden.device)
        frame_valid = steps[None] <= batch.code_lengths[:, None]  # [B, T+1]
        index = (seq.bos[:, None] + steps[None]).clamp(max=hidden.shape[1] - 1)
        h = hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))  # [B, T+1, C]
        has_text = batch.condition.phoneme_lengths > 0  # the original text, not the dropped one
        targets = F.pad(batch.codes.transpose(1, 2), (0, 0, 0, 1), value=IGNORE).clone()  # [B, T+1, K]
        is_end = steps[None] == batch.code_lengths[:, None]
        targets[is_end] = IGNORE
        targets[..., 0][is_end & ~has_text[:, None]] = c.end_token  # with text, the pointer ends the audio
        targets[~frame_valid] = IGNORE
        frame_valid = frame_valid & (targets != IGNORE).any(-1)

        h_rows, t_rows = h[frame_valid], targets[frame_valid]  # [M, C], [M, K]
        subset = self.training and c.local_frame_fraction < 1.0
        if subset:
            keep = torch.randperm(h_rows.shape[0], device=h_rows.device)
            keep = keep[: max(1, round(c.local_frame_fraction * h_rows.shape[0]))]
            h_rows, t_rows = h_rows[keep], t_rows[keep]
        logits_rows = self.frame_logits(h_rows, t_rows.clamp(min=0))  # [M, K, V]

        losses, metrics = {}, {}
        total = h_rows.new_zeros(())
        for i in range(k):
            tgt = t_rows[:, i]
            ce = F.cross_entropy(logits_rows[:, i].float(), tgt, ignore_index=IGNORE)
            losses[f"ce/{i}"] = ce
            total = total + c.codebook_weights[i] * ce
            seen = tgt != IGNORE
            metrics[f"accuracy/{i}"] = (logits_rows[:, i].argmax(-1)[seen] == tgt[seen]).float().mean().detach()
        loss = total / sum(c.codebook_weights)

        advance_logits = self.advance_head(h[:, :t]).squeeze(-1)  # [B, T]
        spoken = (steps[None, :t] < batch.code_lengths[:, None]) & has_text[:, None]
        if batch.pointer is not None and bool(spoken.any()):
            truth = advances(pointer, batch.code_lengths).float()
            pointer_loss = F.binary_cross_entropy_with_logits(advance_logits[spoken], truth[spoken])
            decided = (advance_logits[spoken] > 0).float()
            metrics["pointer_accuracy"] = (decided == truth[spoken]).float().mean().detach()
            moves = truth[spoken] > 0
            metrics["advance_recall"] = decided[moves].mean().detach()
        else:
            pointer_loss = advance_logits.sum() * 0.0
        losses["pointer"] = pointer_loss
        loss = loss + c.pointer_weight * pointer_loss
        logits = None
        if not subset:
            logits = logits_rows.new_zeros(b, t + 1, k, c.vocab_size)
            logits[frame_valid] = logits_rows[: int(frame_valid.sum())]
        return LMOutput(logits=logits, targets=targets, advance_logits=advance_logits, loss=loss, losses=losses,
                        metrics=metrics)

    def target_counts(self, code_lengths: torch.Tensor, has_text: torch.Tensor) -> torch.Tensor:
        """[K + 1] how many targets `forward` scores per codebook for items of these lengths (every frame,
        plus the end decision of items without text for codebook 0) and, last, the pointer's decisions (the
        frames of items with text): the denominators of its mean losses, so micro-batch losses can be
        weighted into the exact global mean."""
        counts = torch.full((self.num_codebooks + 1,), int(code_lengths.sum()), dtype=torch.long)
        counts[0] += int((~has_text).sum())
        counts[-1] = int(code_lengths[has_text].sum())
        return counts

    # -- generation: the one-frame step ------------------------------------------------------------
    def new_cache(self, batch_size: int, capacity: int) -> KVCache:
        return self.global_transformer.new_cache(batch_size, capacity, self.bos)

    def prefill(self, cond: Conditioning, cache: KVCache, pointer: torch.Tensor, prefix: torch.Tensor | None = None,
                prefix_lengths: torch.Tensor | None = None, prefix_pointer: torch.Tensor | None = None,
                store: PrefixStore | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed the conditioning, the forced `prefix` frames [B, K, F] (spoken on tokens `prefix_pointer`
        [B, F]) and the input of the first frame to make, on token `pointer` [B] (the first token of the
        new text). Items are left-padded so every one ends at the same index. The leading positions that
        do not depend on the new text (`voice_positions`) go in a call of their own, copied from `store`
        when it kept them (`prefix.py`). Returns (hidden [B, C] of the last position, its position [B])."""
        b = cond.batch_size
        device = cond.phonemes.device
        if prefix is None:
            prefix = torch.zeros(b, self.num_codebooks, 0, dtype=torch.long, device=device)
            prefix_pointer = torch.zeros(b, 0, dtype=torch.long, device=device)
        if prefix_lengths is None:
            prefix_lengths = torch.full((b,), prefix.shape[-1], dtype=torch.long, device=device)
        full = F.pad(prefix_pointer, (0, 1))  # [B, F + 1]: each item's first new frame right after its prefix
        full[torch.arange(b, device=device), prefix_lengths] = pointer
        seq = self.build_sequence(cond, prefix, prefix_lengths, full, pad_left=True)
        split = self.voice_positions(seq, cond, full, prefix_lengths, pointer)
        head = seq.x[:, :split], seq.positions[:, :split], seq.valid[:, :split]
        if store is None or not store.restore(*head, cache):
            self.global_transformer.step(head[0], head[1], cache, head[2])
            if store is not None:
                store.keep(*head, cache)
        hidden = self.global_transformer.step(seq.x[:, split:], seq.positions[:, split:], cache,
                                              seq.valid[:, split:])[:, -1]
        return hidden, seq.positions[:, -1]

    def voice_positions(self, seq: Sequence, cond: Conditioning, pointer: torch.Tensor, lengths: torch.Tensor,
                        start: torch.Tensor) -> int:
        """How many leading positions of a prefill's sequence are the same whatever the new text: the
        caption, the prompt and the forced frames (tokens `pointer` [B, F + 1], `lengths` [B] of them per
        item) up to the first whose phoneme window reaches the new text (which starts at token `start`
        [B]), in every item; never the last position."""
        reach = pointer + int(self.window_offsets.max()) >= start[:, None]  # [B, F + 1]
        reach |= torch.arange(pointer.shape[1], device=pointer.device)[None] >= lengths[:, None]
        first = reach.float().argmax(dim=1)  # the first True (the new frame's own position at the latest)
        first = torch.where(cond.phoneme_lengths > 0, first, lengths)  # items without text: none depends
        return int((seq.bos + first).min().clamp(max=seq.x.shape[1] - 1))

    def step(self, codes: torch.Tensor, cond: Conditioning, pointer: torch.Tensor, spent: torch.Tensor,
             position: torch.Tensor, frame: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One frame: the last frame's codes [B, K] and the pointer [B] with its spent frames [B] of the next
        frame (its index among the target frames `frame` [B], for the beat clock) -> hidden [B, C] at rotary
        `position` [B]."""
        conditions = self.phoneme_inputs(cond.phonemes, cond.phoneme_lengths, pointer[:, None], spent[:, None])
        beat = self.beat_inputs(cond, frame[:, None])
        if beat is not None:
            conditions = conditions + beat
        x = self.frame_inputs(self.embed_frames(codes[:, :, None]), conditions)  # [B, 1, C]
        return self.global_transformer.step(x, position[:, None], cache)[:, -1]

    def int8_(self) -> HierarchicalLM:
        """Int8 weights in both transformers for CPU inference (`int8.py`); the model can no longer train,
        save or change device. Returns self."""
        if self.training or self.bos.device.type != "cpu":
            raise ModelError("int8 weights are for a CPU model in eval mode")
        int8_linears(self.global_transformer)
        int8_linears(self.local_transformer)
        self.weights = "int8"
        return self

    def trace_steps_(self) -> HierarchicalLM:
        """Generation's one-position steps through traced TorchScript graphs: the global stack's
        (`Transformer.trace_steps_`) and, through `traced_frames`, whatever a generation makes of the local
        steps of one frame (`Generation`: the local steps, guidance and sampling of every codebook in one
        graph). The same results at a fraction of a CPU's per-operation cost. Inference only. Returns self."""
        if self.training:
            raise ModelError("traced steps are for a model in eval mode")
        self.global_transformer.trace_steps_()
        self.traced_frames = TracedSteps(self)
        return self

    def new_local_cache(self, batch_size: int) -> KVCache:
        return self.local_transformer.new_cache(batch_size, self.num_codebooks, self.bos)

    def local_step(self, hidden: torch.Tensor, previous: torch.Tensor | None, index: int,
                   cache: KVCache) -> torch.Tensor:
        """Codebook `index` of the frame that follows the global state `hidden` [M, C]: feeds the local
        transformer its input for that codebook (`previous` [M]: the code chosen for codebook index - 1;
        None for codebook 0, whose input is the global state) -> logits [M, V]. `cache` (from
        `new_local_cache`) holds the frame's earlier codebooks."""
        c = self.config
        if index == 0:
            x = self.local_context(hidden)
        else:
            x = self.local_embedding(previous.clamp(0, c.codebook_size - 1) + (index - 1) * c.codebook_size)
        if c.local_context == "every":
            x = x + hidden @ self.local_context_per_step[index]
        y = self.local_transformer.step(x[:, None], index, cache)[:, 0]
        logits = y @ self.heads[index]
        return logits if index == 0 else logits + self.no_end

    def advance_logit(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B] logit that the pointer moves on after the frame predicted from `hidden` [B, C]."""
        return self.advance_head(hidden).squeeze(-1)

    # -- release format ------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, extra: dict | None = None,
                        dtype: torch.dtype | None = None) -> Path:
        """Release directory; `dtype=torch.float16` stores the weights in half the space (loaded as fp32)."""
        config = {**self.config.to_dict(), **({"extra": extra} if extra else {})}
        return save_release(directory, "lm", config, self.state_dict(), dtype)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: torch.device | str = "cpu") -> HierarchicalLM:
        config, tensors = load_release(directory, "lm")
        config.pop("extra", None)
        if config.get("config_version", 1) < ALIGNED_FORMAT:  # releases before format 2 had no version
            raise ModelError(f"{directory}: {OLD_FORMAT}")
        try:
            model = cls(LMConfig.from_dict(config))
        except (TypeError, ValueError, KeyError) as e:
            raise ModelError(f"{directory}: bad LM config ({e})") from None
        load_weights(model, tensors, directory)
        return model.to(device).eval()


def drop_condition(cond: Conditioning, drop: torch.Tensor) -> Conditioning:
    """The same conditioning with the phonemes and caption of items `drop` [B] removed (the prompt stays)."""
    has_caption = cond.has_caption
    if cond.caption is not None:
        has_caption = (has_caption if has_caption is not None else torch.ones_like(drop)) & ~drop
    return dataclasses.replace(cond, phoneme_lengths=torch.where(drop, 0, cond.phoneme_lengths),
                               has_caption=has_caption)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
