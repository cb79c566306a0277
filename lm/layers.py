"""Transformer parts: rotary positions, attention with an explicit KV cache, SwiGLU, pre-norm blocks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


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


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate x [B, H, N, D] by its positions [B, N] (RoPE, half-split layout)."""
    half = x.shape[-1] // 2
    freqs = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.float()[:, None, :, None] * freqs  # [B, 1, N, D/2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float, rope_base: float) -> None:
        super().__init__()
        self.num_heads, self.rope_base, self.dropout = num_heads, rope_base, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None = None,
                cache: LayerCache | None = None, start: int = 0) -> torch.Tensor:
        """x [B, N, C] at `positions` [B, N]. Without a cache: causal self-attention (plus `mask`
        [B, N, N] when given). With a cache: x fills slots start..start+N and attends to slots
        0..start+N under `mask` [B, N, start+N]."""
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        q, k = rotary(q, positions, self.rope_base), rotary(k, positions, self.rope_base)
        dropout = self.dropout if self.training else 0.0
        if cache is not None:
            end = start + x.shape[1]
            cache.k[:, :, start:end], cache.v[:, :, start:end] = k, v
            k, v = cache.k[:, :, :end], cache.v[:, :, :end]
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], dropout_p=dropout)
        return self.out(rearrange(y, "b h n d -> b n (h d)"))


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
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float, rope_base: float) -> None:
        super().__init__()
        self.attn_norm, self.mlp_norm = nn.RMSNorm(dim), nn.RMSNorm(dim)
        self.attn = Attention(dim, num_heads, dropout, rope_base)
        self.mlp = SwiGLU(dim, mlp_ratio)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None = None,
                cache: LayerCache | None = None, start: int = 0) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_norm(x), positions, mask, cache, start))
        return x + self.drop(self.mlp(self.mlp_norm(x)))


class Transformer(nn.Module):
    """A stack of causal pre-norm blocks with a final norm."""

    def __init__(self, dim: int, num_layers: int, num_heads: int, mlp_ratio: float, dropout: float,
                 rope_base: float) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, dropout, rope_base) for _ in range(num_layers))
        self.norm = nn.RMSNorm(dim)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, N, C] -> [B, N, C], causal over N."""
        for block in self.blocks:
            x = block(x, positions, mask)
        return self.norm(x)

    def new_cache(self, batch_size: int, capacity: int, like: torch.Tensor) -> KVCache:
        return KVCache.empty(batch_size, len(self.blocks), self.num_heads, self.head_dim, capacity,
                             like.device, like.dtype)

    def step(self, x: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Append x [B, N, C] (`valid` [B, N] marks real positions) to the cache; returns [B, N, C].

        Each new position attends causally to the cached real positions and to itself.
        """
        start, n = cache.length, x.shape[1]
        end = start + n
        if end > cache.capacity:
            raise ValueError(f"KV cache full ({cache.capacity} positions)")
        cache.key_valid[:, start:end] = valid
        causal = torch.ones(n, end, dtype=torch.bool, device=x.device).tril(diagonal=start)
        mask = causal[None] & cache.key_valid[:, None, :end]
        # A padding query with no visible key would give NaN; let it see itself (its output is unused).
        slots = torch.arange(end, device=x.device)
        mask = mask | (slots[None, :] == start + torch.arange(n, device=x.device)[:, None])[None]
        for block, layer in zip(self.blocks, cache.layers, strict=True):
            x = block(x, positions, mask, layer, start)
        cache.length = end
        return self.norm(x)
