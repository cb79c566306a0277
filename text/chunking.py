"""Long text -> chunks the model can speak in one go: sentences, merged up to a length limit, and
over-long sentences cut at clause punctuation, then at word boundaries."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|\n{2,}")
_CLAUSE_END = re.compile(r"(?<=[,;:—–])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` (terminal punctuation kept); blank-line paragraphs also end a sentence."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _cut(piece: str, max_chars: int) -> list[str]:
    """A piece longer than max_chars: cut at clause punctuation, then between words."""
    if len(piece) <= max_chars:
        return [piece]
    out: list[str] = []
    for clause in _CLAUSE_END.split(piece):
        if len(clause) <= max_chars:
            out.append(clause)
            continue
        line = ""
        for word in clause.split():
            word = word[:max_chars]
            if line and len(line) + 1 + len(word) > max_chars:
                out.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        if line:
            out.append(line)
    return _merge(out, max_chars)


def _merge(pieces: list[str], max_chars: int) -> list[str]:
    merged: list[str] = []
    for piece in pieces:
        if merged and len(merged[-1]) + 1 + len(piece) <= max_chars:
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged


def chunk_text(text: str, max_chars: int = 200) -> list[str]:
    """Chunks of at most `max_chars` characters, each one or more whole sentences where possible, in order."""
    if max_chars < 8:
        raise ValueError("max_chars must be at least 8")
    pieces = [cut for sentence in split_sentences(text) for cut in _cut(sentence, max_chars)]
    return _merge(pieces, max_chars)
