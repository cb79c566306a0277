"""Silence at the edges of words belongs to the pause beside them, not to the word.

The forward-sum aligner places token boundaries where the text and audio encoders change their minds,
and around a pause it often lets the first or last phone of a word take part of the silence: word
starts after a comma came out about 100 ms early on held-out voices. The frame level says plainly
where speech starts, so after the search every word's silent leading and trailing frames are handed to
the pause tokens beside it (each token keeps at least one frame; durations still sum to the frames).
"""

from __future__ import annotations

import torch

from ..text.frontend import WORD, symbols
from .words import is_punctuation

# A frame is silent when its level is this far below the utterance's loud frames (their 90th percentile).
SILENCE_DB = 35.0


def silent_frames(log_mel: torch.Tensor, silence_db: float = SILENCE_DB) -> list[bool]:
    """log_mel [n_mels, T] (natural log of mel magnitudes) -> for every frame, whether it is silent."""
    level_db = (10.0 / torch.log(torch.tensor(10.0))) * torch.logsumexp(2.0 * log_mel.float(), dim=0)  # [T]
    loud = torch.quantile(level_db, 0.9)
    return (level_db < loud - silence_db).tolist()


def trim_pauses(durations: list[int], pause: list[bool], silent: list[bool]) -> list[int]:
    """Frames per token with the silent edge frames of every word (a run of tokens that are not `pause`
    tokens: language tag, word boundaries, punctuation, closing boundary) given to the pause tokens
    beside it. `silent` has one entry per frame (sum(durations))."""
    edges = [0]
    for d in durations:
        edges.append(edges[-1] + d)
    n = len(durations)
    i = 0
    while i < n:
        if pause[i]:
            i += 1
            continue
        a = i
        while i < n and not pause[i]:
            i += 1
        b = i - 1  # the word's tokens are a..b, pause tokens (or the utterance's ends) beside them
        if a == 0 or b == n - 1:
            continue
        count = b - a + 1
        start, end = edges[a], edges[b + 1]
        while start < end - count and silent[start]:
            start += 1
        while end > start + count and silent[end - 1]:
            end -= 1
        for j in range(a, b + 1):  # token j starts at edge j: never before the new start, one frame apart
            edges[j] = max(edges[j], start + (j - a))
        for j in range(b + 1, a, -1):  # and ends at edge j: never after the new end
            edges[j] = min(edges[j], end - (b + 1 - j))
    return [edges[k + 1] - edges[k] for k in range(n)]


def pause_tokens(ipa: str) -> list[bool]:
    """For every utterance token (language tag, `symbols(ipa)`, closing boundary): whether it is a pause
    token (not part of a word)."""
    return [True, *(sym == WORD or is_punctuation(sym) for sym in symbols(ipa)), True]


def without_edge_silence(durations: list[int], ipa: str, log_mel: torch.Tensor) -> list[int]:
    """`trim_pauses` of an utterance's durations, its silence read off its log-mel [n_mels, T]."""
    return trim_pauses(durations, pause_tokens(ipa), silent_frames(log_mel[:, : sum(durations)]))
