"""The hierarchical codec LM: a global transformer over frames, a local transformer over codebooks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..codec.release import load_release, save_release
from .batch import Conditioning, LMBatch, LMOutput
from .config import NUM_SEGMENTS, SEGMENT_CAPTION, SEGMENT_PROMPT, SEGMENT_TARGET, SEGMENT_TEXT, LMConfig
from .layers import KVCache, Transformer

IGNORE = -100


@dataclass
class Sequence:
    """Global input sequences of a batch, padded on one side."""

    x: torch.Tensor  # [B, N, C]
    valid: torch.Tensor  # [B, N] bool
    positions: torch.Tensor  # [B, N] rotary position of each entry (float; see `LMConfig.text_positions`)
    prompt_mark: torch.Tensor  # [B] index of the PROMPT marker
    bos: torch.Tensor  # [B] index of BOS (the first target frame is predicted there)


class HierarchicalLM(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        c = self.config = config
        k = c.num_codebooks
        self.text_embedding = nn.Embedding(c.text_vocab_size, c.dim, padding_idx=0)
        self.caption_projection = nn.Linear(c.caption_dim, c.dim) if c.caption_dim else None
        # One table for all codebooks; codebook k uses rows k*size .. (k+1)*size - 1.
        self.frame_embedding = nn.Embedding(k * c.codebook_size, c.dim)
        self.segment_embedding = nn.Embedding(NUM_SEGMENTS, c.dim)
        self.prompt_marker = nn.Parameter(torch.randn(c.dim) * 0.02)
        self.bos = nn.Parameter(torch.randn(c.dim) * 0.02)
        self.register_buffer("code_offsets", torch.arange(k) * c.codebook_size, persistent=False)
        self.global_transformer = Transformer(c.dim, c.num_layers, c.num_heads, c.mlp_ratio, c.dropout, c.rope_base)

        self.local_context = nn.Linear(c.dim, c.local_dim)
        if c.local_context == "every":
            self.local_context_per_step = nn.Parameter(torch.randn(k, c.dim, c.local_dim) * c.dim**-0.5)
        self.local_embedding = nn.Embedding((k - 1) * c.codebook_size, c.local_dim) if k > 1 else None
        self.local_transformer = Transformer(c.local_dim, c.local_layers, c.local_heads, c.mlp_ratio, c.dropout,
                                             c.rope_base)
        self.heads = nn.Parameter(torch.randn(k, c.local_dim, c.vocab_size) * c.local_dim**-0.5)
        self.apply(_init_weights)

    @property
    def num_codebooks(self) -> int:
        return self.config.num_codebooks

    # -- the global sequence -------------------------------------------------------------------
    def embed_frames(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> [B, T, C]: the sum of the K codebook embeddings of each frame."""
        return self.frame_embedding(codes.clamp(0, self.config.codebook_size - 1)
                                    + self.code_offsets[:, None]).sum(dim=1)

    def build_sequence(self, cond: Conditioning, codes: torch.Tensor | None = None,
                       code_lengths: torch.Tensor | None = None, pad_left: bool = False) -> Sequence:
        """`[text][caption][PROMPT][prompt frames][BOS][target frames]` (or, with `prompt_position:
        before_text`, `[PROMPT][prompt frames][text][caption][BOS][target frames]`) for every item, padded
        right (training) or left (generation, so that all items end at the same index)."""
        seg = self.segment_embedding.weight
        text = self.text_embedding(cond.text) + seg[SEGMENT_TEXT]
        caption = None
        if self.caption_projection is not None and cond.caption is not None:
            caption = self.caption_projection(cond.caption) + seg[SEGMENT_CAPTION]
        prompt_len = cond.prompt_frames()
        prompt = self.embed_frames(cond.prompt) + seg[SEGMENT_PROMPT] if cond.prompt is not None else None
        target = self.embed_frames(codes) + seg[SEGMENT_TARGET] if codes is not None else None
        marker, bos = self.prompt_marker + seg[SEGMENT_PROMPT], self.bos + seg[SEGMENT_TARGET]

        rows, marks, bos_at, row_positions = [], [], [], []
        prompt_first = self.config.prompt_position == "before_text"
        aligned = self.config.text_positions == "aligned"
        rates = self._rates(cond, code_lengths) if aligned else None
        for i in range(cond.batch_size):
            condition = [text[i, : int(cond.text_lengths[i])]]
            if caption is not None and (cond.has_caption is None or bool(cond.has_caption[i])):
                condition.append(caption[i, None])
            voice = [marker[None]] + ([prompt[i, : int(prompt_len[i])]] if prompt is not None else [])
            parts = voice + condition if prompt_first else condition + voice
            marks.append(0 if prompt_first else sum(p.shape[0] for p in condition))
            bos_at.append(sum(p.shape[0] for p in parts))
            parts.append(bos[None])
            if target is not None:
                parts.append(target[i, : int(code_lengths[i])])
            rows.append(torch.cat(parts))
            if aligned:
                row_positions.append(_aligned(condition, voice, rows[-1].shape[0] - bos_at[-1], rates[i],
                                              prompt_first))
        lengths = torch.tensor([r.shape[0] for r in rows], device=text.device)
        n = int(lengths.max())
        x = text.new_zeros(len(rows), n, text.shape[-1])
        valid = torch.zeros(len(rows), n, dtype=torch.bool, device=text.device)
        shift = (n - lengths) if pad_left else torch.zeros_like(lengths)
        for i, row in enumerate(rows):
            s = int(shift[i])
            x[i, s: s + row.shape[0]] = row
            valid[i, s: s + row.shape[0]] = True
        positions = (torch.arange(n, device=x.device)[None] - shift[:, None]).clamp(min=0).float()
        for i, row in enumerate(row_positions):
            positions[i, int(shift[i]): int(shift[i]) + row.shape[0]] = row
        return Sequence(x, valid, positions, torch.tensor(marks, device=x.device) + shift,
                        torch.tensor(bos_at, device=x.device) + shift)

    def _rates(self, cond: Conditioning, code_lengths: torch.Tensor | None) -> torch.Tensor:
        """[B] frames per text token: the caller's, else the target's length over the text's, else the mean."""
        if cond.rate is not None:
            return cond.rate.float()
        if code_lengths is not None:
            return code_lengths.float() / cond.text_lengths.float().clamp(min=1)
        return torch.full((cond.batch_size,), self.config.frames_per_token, device=cond.text.device)

    # -- the local (depth) transformer ---------------------------------------------------------
    def local_inputs(self, hidden: torch.Tensor, codes: torch.Tensor, start: int = 0) -> torch.Tensor:
        """hidden [M, C] and a frame's codes [M, K'] (K' < K: the codebooks already chosen) -> the local
        inputs of positions start..K' [M, K'+1-start, C_local] (generation asks for the newest only)."""
        parts = []
        if start == 0:
            parts.append(self.local_context(hidden)[:, None])
        # Position p >= 1 is fed the code chosen for codebook p - 1.
        low, k = max(start, 1) - 1, codes.shape[1]
        if low < k:
            previous = codes[:, low:k].clamp(0, self.config.codebook_size - 1) + self.code_offsets[low:k]
            parts.append(self.local_embedding(previous))
        x = torch.cat(parts, dim=1)
        if self.config.local_context == "every":
            x = x + torch.einsum("mc,kcd->mkd", hidden, self.local_context_per_step[start: start + x.shape[1]])
        return x

    def local_logits(self, y: torch.Tensor, first: int = 0) -> torch.Tensor:
        """Local outputs y [M, n, C_local] for codebooks first..first+n-1 -> logits [M, n, V]."""
        logits = torch.einsum("mkc,kcv->mkv", y, self.heads[first: first + y.shape[1]])
        # Only codebook 0 can end the audio.
        ends = torch.arange(first, first + y.shape[1], device=y.device) > 0
        return logits.masked_fill(ends[None, :, None] & _end_column(logits, self.config.end_token), float("-inf"))

    def frame_logits(self, hidden: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits of all K codebooks: hidden [M, C], codes [M, K] -> [M, K, V]."""
        x = self.local_inputs(hidden, codes[:, :-1])
        positions = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
        return self.local_logits(self.local_transformer(x, positions))

    # -- training forward ----------------------------------------------------------------------
    def forward(self, batch: LMBatch) -> LMOutput:
        """Teacher-forced cross-entropy of the target frames and the end decision."""
        c = self.config
        cond = batch.condition
        if self.training and c.condition_dropout > 0:
            drop = batch.drop if batch.drop is not None else torch.rand(cond.batch_size) < c.condition_dropout
            cond = drop_condition(cond, drop.to(cond.text.device))
        seq = self.build_sequence(cond, batch.codes, batch.code_lengths)
        hidden = self.global_transformer(seq.x, seq.positions)  # [B, N, C]

        b, k, t = batch.codes.shape
        steps = torch.arange(t + 1, device=hidden.device)
        frame_valid = steps[None] <= batch.code_lengths[:, None]  # [B, T+1]
        index = (seq.bos[:, None] + steps[None]).clamp(max=hidden.shape[1] - 1)
        h = hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))  # [B, T+1, C]
        targets = F.pad(batch.codes.transpose(1, 2), (0, 0, 0, 1), value=IGNORE).clone()  # [B, T+1, K]
        is_end = steps[None] == batch.code_lengths[:, None]
        targets[is_end] = IGNORE
        targets[..., 0][is_end] = c.end_token
        targets[~frame_valid] = IGNORE

        hs, ts = [h[frame_valid]], [targets[frame_valid]]
        if c.loss_on_prompt and cond.prompt is not None:
            hs_p, ts_p = self._prompt_rows(hidden, seq, cond)
            hs.append(hs_p)
            ts.append(ts_p)
        h_rows, t_rows = torch.cat(hs), torch.cat(ts)  # [M, C], [M, K]
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
            metrics[f"accuracy/{i}"] = float((logits_rows[:, i].argmax(-1)[seen] == tgt[seen]).float().mean())
        loss = total / sum(c.codebook_weights)
        logits = None
        if not subset:
            logits = logits_rows.new_zeros(b, t + 1, k, c.vocab_size)
            logits[frame_valid] = logits_rows[: int(frame_valid.sum())]
        return LMOutput(logits=logits, targets=targets, loss=loss, losses=losses, metrics=metrics)

    def target_counts(self, code_lengths: torch.Tensor, prompt_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """[K] how many targets `forward` scores per codebook for items of these lengths (every frame, plus
        the end decision for codebook 0, plus the prompt's frames with `loss_on_prompt`): the denominators
        of its mean cross-entropies, so micro-batch losses can be weighted into the exact global mean."""
        counts = torch.full((self.num_codebooks,), int(code_lengths.sum()), dtype=torch.long)
        counts[0] += len(code_lengths)
        if self.config.loss_on_prompt and prompt_lengths is not None:
            counts += int(prompt_lengths.sum())
        return counts

    def _prompt_rows(self, hidden: torch.Tensor, seq: Sequence, cond: Conditioning):
        """Rows predicting prompt frame p from position PROMPT+p (the marker predicts frame 0)."""
        p = cond.prompt.shape[-1]
        steps = torch.arange(p, device=hidden.device)
        valid = steps[None] < cond.prompt_frames()[:, None]
        index = (seq.prompt_mark[:, None] + steps[None]).clamp(max=hidden.shape[1] - 1)
        h = hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))
        return h[valid], cond.prompt.transpose(1, 2)[valid]

    # -- generation support --------------------------------------------------------------------
    def new_cache(self, batch_size: int, capacity: int) -> KVCache:
        return self.global_transformer.new_cache(batch_size, capacity, self.bos)

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
        model = cls(LMConfig.from_dict(config))
        model.load_state_dict(tensors)
        return model.to(device).eval()


def drop_condition(cond: Conditioning, drop: torch.Tensor) -> Conditioning:
    """The same conditioning with the text and caption of items `drop` [B] removed (the prompt stays)."""
    has_caption = cond.has_caption
    if cond.caption is not None:
        has_caption = (has_caption if has_caption is not None else torch.ones_like(drop)) & ~drop
    return Conditioning(text=cond.text, text_lengths=torch.where(drop, 0, cond.text_lengths), prompt=cond.prompt,
                        prompt_lengths=cond.prompt_lengths, caption=cond.caption, has_caption=has_caption,
                        rate=cond.rate)


def _aligned(condition: list[torch.Tensor], voice: list[torch.Tensor], audio: int, rate: torch.Tensor,
             prompt_first: bool) -> torch.Tensor:
    """Aligned positions of one row: the voice prompt (marker + frames) at -(P + 1)..-1, text token j at
    (j + 0.5) x rate and a caption at 0 (in the row's order), then BOS and the target frames at 0..audio-1."""
    device = rate.device
    n_voice = sum(p.shape[0] for p in voice)
    text = (torch.arange(condition[0].shape[0], device=device) + 0.5) * rate
    cond = torch.cat([text, rate.new_zeros(sum(p.shape[0] for p in condition[1:]))])
    voice_pos = torch.arange(-n_voice, 0, device=device, dtype=torch.float)
    parts = [voice_pos, cond] if prompt_first else [cond, voice_pos]
    return torch.cat([*parts, torch.arange(audio, device=device, dtype=torch.float)])


def _end_column(logits: torch.Tensor, end_token: int) -> torch.Tensor:
    column = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    column[end_token] = True
    return column


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
