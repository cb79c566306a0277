"""Monotonic alignment search and the beta-binomial alignment prior.

The search is `monotonic-alignment-search` (Coqui's maintained packaging of Glow-TTS' Cython MAS): a
compiled wheel for Linux, macOS and Windows, so there is no hand-written dynamic programme to keep.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from monotonic_alignment_search import maximum_path


@lru_cache(maxsize=4096)
def beta_binomial_prior(tokens: int, frames: int, scaling: float = 1.0) -> torch.Tensor:
    """log P(token | frame) [frames, tokens] of RAD-TTS' prior: frame t of T draws its token from a
    beta-binomial centred on t / T, which favours the diagonal without forbidding anything."""
    k = torch.arange(tokens, dtype=torch.float64)
    n = tokens - 1
    t = torch.arange(1, frames + 1, dtype=torch.float64)[:, None]
    a, b = scaling * t, scaling * (frames + 1 - t)

    def log_beta(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.lgamma(x) + torch.lgamma(y) - torch.lgamma(x + y)

    log_choose = torch.lgamma(torch.tensor(n + 1.0)) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
    return (log_choose + log_beta(k + a, n - k + b) - log_beta(a, b)).float()


def hard_alignment(log_attention: torch.Tensor, token_lengths: torch.Tensor,
                   frame_lengths: torch.Tensor) -> torch.Tensor:
    """The most likely monotonic path through log_attention [B, T, N] that visits every token for at
    least one frame: 0/1 [B, T, N]."""
    b, t, n = log_attention.shape
    mask = ((torch.arange(n)[None, None, :] < token_lengths.cpu()[:, None, None])
            & (torch.arange(t)[None, :, None] < frame_lengths.cpu()[:, None, None]))
    # maximum_path takes [B, tokens, frames] and ignores values outside the mask.
    value = log_attention.detach().cpu().float().transpose(1, 2).contiguous()
    path = maximum_path(value, mask.transpose(1, 2).float(), implementation="cython")
    return path.transpose(1, 2).to(log_attention.device)


def durations_of(path: torch.Tensor) -> torch.Tensor:
    """Frames per token [B, N] of a hard alignment [B, T, N]."""
    return path.sum(dim=1).long()
