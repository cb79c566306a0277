"""Transformer parts: rotary positions, attention with an explicit KV cache, SwiGLU, pre-norm blocks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .traced import TracedSteps


@dataclass
class LayerCache:
    """Keys and values of one attention layer, preallocated to `capacity` positions."""

    k: torch.Tensor  # [B, H, capacity, D]
    v: torch.Tensor  # [B, H, capacity, D]


@dataclass
class KVCache:
    """Generation state of a transformer stack: per-layer keys/values, which keys are real, fill level."""

    layers: list[LayerCache]
    key_valid: torch.Tensor  # [B, capacity] bool: False for left padding and unfilled slots
    length: int = 0

    @classmethod
    def empty(cls, batch_size: int, num_layers: int, num_heads: int, head_dim: int, capacity: int,
              device: torch.device, dtype: torch.dtype) -> KVCache:
        shape = (batch_size, num_heads, capacity, head_dim)
        layers = [LayerCache(torch.zeros(shape, device=device, dtype=dtype),
                             torch.zeros(shape, device=device, dtype=dtype)) for _ in range(num_layers)]
        return cls(layers, torch.zeros(batch_size, capacity, dtype=torch.bool, device=device))

    @property
    def capacity(self) -> int:
        return self.key_valid.shape[1]

    def tensors(self) -> list[torch.Tensor]:
        """Every layer's keys and values, in order (k0, v0, k1, v1, ...)."""
        return [t for layer in self.layers for t in (layer.k, layer.v)]


def layer_caches(tensors: tuple[torch.Tensor, ...]) -> list[LayerCache]:
    """The layers of `KVCache.tensors()` (keys and values in turn): how a traced step gets its cache back."""
    return [LayerCache(k, v) for k, v in zip(tensors[::2], tensors[1::2], strict=True)]


def rotary_tables(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) [B, 1, N, D/2] of the rotary angles at `positions` [B, N]; every layer of a stack shares
    them, so they are made once per call of the stack."""
    half = head_dim // 2
    freqs = base ** (-torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float()[:, None, :, None] * freqs
    return angles.cos(), angles.sin()


def rotary(x: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate x [..., B, H, N, D] by the angles of `rotary_tables` (RoPE, half-split layout)."""
    cos, sin = tables
    if cos.dtype != x.dtype:
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None = None,
                cache: LayerCache | None = None, slots: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, N, C] at the positions of `rope` (`rotary_tables`). Without a cache: causal self-attention
        (plus `mask` [B, N, N] when given). With a cache (the filled part of one, S slots): x's keys and values
        fill slots `slots` [N] and x attends to all S slots under `mask` [B, N, S]."""
        b, n, _ = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        qk = rotary(qkv[:2], rope)
        q, k, v = qk[0], qk[1], qkv[2]
        dropout = self.dropout if self.training else 0.0
        if cache is not None:
            k, v = cache.k.index_copy_(2, slots, k), cache.v.index_copy_(2, slots, v)
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=cache is None)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], dropout_p=dropout)
        return self.out(y.transpose(1, 2).reshape(b, n, -1))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.up(x).chunk(2, dim=-1)
        return self.down(F.silu(a) * b)


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.attn_norm, self.mlp_norm = nn.RMSNorm(dim), nn.RMSNorm(dim)
        self.attn = Attention(dim, num_heads, dropout)
        self.mlp = SwiGLU(dim, mlp_ratio)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None = None,
                cache: LayerCache | None = None, slots: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_norm(x), rope, mask, cache, slots))
        return x + self.drop(self.mlp(self.mlp_norm(x)))


class Transformer(nn.Module):
    """A stack of causal pre-norm blocks with a final norm."""

    def __init__(self, dim: int, num_layers: int, num_heads: int, mlp_ratio: float, dropout: float,
                 rope_base: float) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.rope_base = num_heads, dim // num_heads, rope_base
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, dropout) for _ in range(num_layers))
        self.norm = nn.RMSNorm(dim)
        self._rope_at: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}
        self.traced: TracedSteps | None = None  # see `trace_steps_`

    def rope_at(self, position: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotary tables of one position shared by every item (the local transformer's steps), kept."""
        key = (position, device)
        if key not in self._rope_at:
            self._rope_at[key] = rotary_tables(torch.full((1, 1), position, device=device), self.head_dim,
                                               self.rope_base)
        return self._rope_at[key]

    def forward(self, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, N, C] at rotary `positions` [B, N] -> [B, N, C], causal over N."""
        rope = rotary_tables(positions, self.head_dim, self.rope_base)
        for block in self.blocks:
            x = block(x, rope, mask)
        return self.norm(x)

    def new_cache(self, batch_size: int, capacity: int, like: torch.Tensor) -> KVCache:
        return KVCache.empty(batch_size, len(self.blocks), self.num_heads, self.head_dim, capacity,
                             like.device, like.dtype)

    def step(self, x: torch.Tensor, positions: torch.Tensor | int, cache: KVCache,
             valid: torch.Tensor | None = None) -> torch.Tensor:
        """Append x [B, N, C] at rotary `positions` [B, N] (an int: one position for every item, N = 1) to the
        cache (`valid` [B, N] marks real positions; None: all are); returns [B, N, C]. Each new position
        attends causally to the cached real positions and to itself."""
        start, n = cache.length, x.shape[1]
        end = start + n
        if end > cache.capacity:
            raise ValueError(f"KV cache full ({cache.capacity} positions)")
        cache.key_valid[:, start:end] = True if valid is None else valid
        slots = torch.arange(start, end, device=x.device)
        if n == 1 and valid is None:  # one real position: it sees every real key so far, itself included
            mask = cache.key_valid[:, None, :end]
        else:
            every = torch.arange(end, device=x.device)
            mask = (every[None, :] <= slots[:, None])[None] & cache.key_valid[:, None, :end]
            mask = mask | (every[None, :] == slots[:, None])[None]
        # (A padding query with no visible key would give NaN: every query sees itself; its output is unused.)
        if isinstance(positions, int):
            cos, sin = self.rope_at(positions, x.device)
        else:
            cos, sin = rotary_tables(positions, self.head_dim, self.rope_base)
        cache.length = end
        inputs = (x, cos, sin, mask, slots, *(t[:, :, :end] for t in cache.tensors()))  # the filled slots
        if n == 1 and self.traced is not None:
            return self.traced(x.shape[0], self._step, inputs, written=2 * len(self.blocks))
        return self._step(*inputs)

    def _step(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor, slots: torch.Tensor,
              *kv: torch.Tensor) -> torch.Tensor:
        for block, layer in zip(self.blocks, layer_caches(kv), strict=True):
            x = block(x, (cos, sin), mask, layer, slots)
        return self.norm(x)

    def trace_steps_(self) -> None:
        """One-position steps (generation) through traced graphs, one per batch size (`traced.py`).
        Inference only: the parameters stop requiring gradients."""
        self.traced = TracedSteps(self)
