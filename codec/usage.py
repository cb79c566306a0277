"""Codebook utilisation: how many entries of each codebook the codes actually use."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class CodebookUsage:
    entropy_bits: torch.Tensor  # [K] usage entropy of each codebook, in bits (max log2 size)
    perplexity: torch.Tensor  # [K] 2 ** entropy: the effective number of entries in use
    used_fraction: torch.Tensor  # [K] share of entries that occur at least once


def codebook_usage(codes: torch.Tensor, codebook_size: int) -> CodebookUsage:
    """Usage statistics of codes [B, K, T] (or [K, T])."""
    codes = codes.reshape(-1, codes.shape[-2], codes.shape[-1]).transpose(0, 1).reshape(codes.shape[-2], -1)
    counts = torch.zeros(codes.shape[0], codebook_size, device=codes.device)
    counts.scatter_add_(1, codes.long(), torch.ones_like(codes, dtype=counts.dtype))
    probs = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    entropy = -(probs * torch.log2(probs.clamp(min=1e-12))).sum(dim=1)
    return CodebookUsage(entropy_bits=entropy, perplexity=2**entropy,
                         used_fraction=(counts > 0).float().mean(dim=1))
