"""Real English sentences from the fortune databases Debian ships (packages fortunes-min, fortunes).

Licence: the BSD fortune collection (see /usr/share/doc/fortunes-min/copyright). Fortunes are
quotations and jokes written by people, so they carry real numbers, dates, abbreviations,
questions and punctuation rather than template text.
"""

from __future__ import annotations

import re
from pathlib import Path

FORTUNE_DIRS = (Path("/usr/share/games/fortunes"),)
SOURCE = "Debian fortunes-min/fortunes (BSD fortune databases)"

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_ALLOWED = re.compile(r"^[A-Za-z0-9 ,.;:!?'\"()$%&-]+$")


def fortune_sentences(min_chars: int = 20, max_chars: int = 180) -> list[str]:
    """Distinct sentences, in a stable order, from every plain-text fortune file found."""
    seen: dict[str, None] = {}
    for folder in FORTUNE_DIRS:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix or not path.is_file() or path.name.startswith("."):
                continue
            text = path.read_text(encoding="utf-8", errors="ignore")
            for entry in text.split("\n%\n"):
                if "--" in entry and entry.strip().startswith(("--", "\t\t--")):
                    continue
                body = " ".join(entry.split())
                body = re.sub(r"\s*--\s*[A-Z][^.!?]*$", "", body)  # drop a trailing attribution
                for sentence in _SPLIT.split(body):
                    sentence = sentence.strip()
                    if "--" in sentence or re.search(r"\b[A-Z]\.$", sentence):
                        continue  # attributions and initials ("-- A.", "Q.") are not sentences
                    if min_chars <= len(sentence) <= max_chars and _ALLOWED.match(sentence) and \
                            sentence[-1] in ".!?" and sum(c.isalpha() for c in sentence) > 0.6 * len(sentence):
                        seen.setdefault(sentence, None)
    return list(seen)
