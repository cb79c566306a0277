"""Keys and values of earlier prefills, reused when a generation starts the way an earlier one did.

Every sentence a voice speaks starts with the same positions: the prompt marker, the voice prompt's
frames and, in transcript mode, the prompt's frames again on their own phonemes. Causal attention makes
the keys and values of a position a function of the inputs up to it, so a prefill whose first inputs
(and their positions) equal those of a kept one copies that one's keys and values instead of computing
them, and computes only the rest: the same attention state for a fraction of the work (vLLM's automatic
prefix caching, for one process). What matches is found by comparing the inputs, so nothing needs to
know which part of a sequence depends on the text. In float32 the state is the same to rounding; with
int8 weights (`int8.py`) activations are quantized per call, so a split prefill differs from a whole one
by quantization noise (measured on the shipped LM: the split one is the closer to float32).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from .layers import KVCache


@dataclass(frozen=True)
class _Entry:
    x: torch.Tensor  # [B, N, C] the prefill's inputs
    positions: torch.Tensor  # [B, N]
    valid: torch.Tensor  # [B, N]
    kv: tuple[torch.Tensor, ...]  # per layer keys and values [B, H, N, D] (`KVCache.tensors` order)


class PrefixStore:
    """The inputs and keys/values of the last `capacity` prefills (one per voice, in practice); safe to
    share between threads (entries are never changed, only replaced)."""

    def __init__(self, capacity: int = 4) -> None:
        if capacity < 1:
            raise ValueError("a prefix store keeps at least one prefill")
        self.capacity = capacity
        self._entries: list[_Entry] = []
        self._lock = threading.Lock()

    def restore(self, x: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, cache: KVCache,
                limit: int) -> int:
        """Fill the empty `cache` with the keys and values of the longest kept prefix of the sequence
        (x [B, N, C] at `positions` [B, N], `valid` [B, N]), at most `limit` positions; returns how many
        (the cache's length)."""
        with self._lock:
            entries = list(self._entries)
        best, length = None, 0
        for entry in entries:
            n = _common_prefix(entry, x, positions, valid, limit)
            if n > length:
                best, length = entry, n
        if best is None:
            return 0
        for target, kept in zip(cache.tensors(), best.kv, strict=True):
            target[:, :, :length] = kept[:, :, :length]
        cache.key_valid[:, :length] = best.valid[:, :length]
        cache.length = length
        return length

    def keep(self, x: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, cache: KVCache) -> None:
        """Remember the prefill that just filled `cache` with the sequence x [B, N, C]. It replaces the kept
        ones it shares more than a first position with (the same voice, another sentence) and, beyond
        `capacity`, the least recently kept."""
        n = x.shape[1]
        entry = _Entry(x.clone(), positions.clone(), valid.clone(),
                       tuple(t[:, :, :n].clone() for t in cache.tensors()))
        with self._lock:
            others = [e for e in self._entries if _common_prefix(e, x, positions, valid, n) <= 1]
            self._entries = [*others[len(others) + 1 - self.capacity:], entry]


def _common_prefix(entry: _Entry, x: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor,
                   limit: int) -> int:
    """How many leading positions of the sequence equal the entry's in every item (inputs, positions and
    padding alike), at most `limit`."""
    if entry.x.shape[0] != x.shape[0] or entry.x.shape[2] != x.shape[2]:
        return 0
    n = min(entry.x.shape[1], x.shape[1], limit)
    if n <= 0:
        return 0
    same = ((entry.x[:, :n] == x[:, :n]).all(dim=-1) & (entry.positions[:, :n] == positions[:, :n])
            & (entry.valid[:, :n] == valid[:, :n])).all(dim=0)  # [n]
    differs = (~same).nonzero()
    return int(differs[0]) if differs.numel() else n
