"""The attention state of a voice's start, computed once and copied into every generation that starts so.

Every sentence a voice speaks starts with the same positions: the prompt marker, the voice prompt's
frames and, in transcript mode, the prompt's frames again on their own phonemes, up to those whose
phoneme lookahead reaches the new text. `HierarchicalLM.prefill` always feeds that voice part in a call of
its own, so its keys and values are a function of the voice alone; kept here, they are copied instead of
computed when the same voice part comes again (vLLM's prefix caching, for one process). Copied or
computed, the state is bit for bit the same, so a seed gives the same audio whatever was spoken before.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from .layers import KVCache


@dataclass(frozen=True)
class _Entry:
    x: torch.Tensor  # [B, N, C] the voice part's inputs
    positions: torch.Tensor  # [B, N]
    valid: torch.Tensor  # [B, N]
    kv: tuple[torch.Tensor, ...]  # per layer keys and values [B, H, N, D] (`KVCache.tensors` order)

    def matches(self, x: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor) -> bool:
        return (self.x.shape == x.shape and torch.equal(self.x, x) and torch.equal(self.positions, positions)
                and torch.equal(self.valid, valid))


class PrefixStore:
    """The voice parts of the last `capacity` voices and their keys and values; safe to share between
    threads (entries are never changed, only replaced)."""

    def __init__(self, capacity: int = 4) -> None:
        if capacity < 1:
            raise ValueError("a prefix store keeps at least one voice")
        self.capacity = capacity
        self._entries: list[_Entry] = []
        self._lock = threading.Lock()

    def restore(self, x: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, cache: KVCache) -> bool:
        """Fill the empty `cache` with the kept keys and values of exactly these inputs (x [B, N, C] at
        `positions` [B, N], `valid` [B, N]); False when none are kept."""
        with self._lock:
            entry = next((e for e in reversed(self._entries) if e.matches(x, positions, valid)), None)
        if entry is None:
            return False
        n = x.shape[1]
        for target, kept in zip(cache.tensors(), entry.kv, strict=True):
            target[:, :, :n] = kept
        cache.key_valid[:, :n] = valid
        cache.length = n
        return True

    def keep(self, x: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, cache: KVCache) -> None:
        """Remember the keys and values `cache` holds for the inputs x [B, N, C] (its first N positions);
        beyond `capacity`, the least recently kept voice is forgotten."""
        n = x.shape[1]
        entry = _Entry(x.clone(), positions.clone(), valid.clone(), tuple(t[:, :, :n].clone() for t in cache.tensors()))
        with self._lock:
            self._entries = [*self._entries[len(self._entries) + 1 - self.capacity:], entry]
