"""Real sentences from the fortune databases Debian ships: English (fortunes-min, fortunes), German
(fortunes-de) and Spanish (fortunes-es).

Licence: the BSD fortune collection (see /usr/share/doc/fortunes-min/copyright). Fortunes are
quotations and jokes written by people, so they carry real numbers, dates, abbreviations,
questions and punctuation rather than template text.
"""

from __future__ import annotations

import re
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
# Per language: the folder and the Debian packages that fill it.
FORTUNE_DIRS = {"en": (FORTUNES, "fortunes-min fortunes"), "de": (FORTUNES / "de", "fortunes-de"),
                "es": (FORTUNES / "es", "fortunes-es")}
SOURCE = "Debian fortunes-min/fortunes, fortunes-de, fortunes-es (fortune databases)"

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-ZÄÖÜÁÉÍÓÚÑ\"'(¿¡])")
_ALLOWED = {"en": re.compile(r"^[A-Za-z0-9 ,.;:!?'\"()$%&-]+$"),
            "de": re.compile(r"^[A-Za-zÄÖÜäöüß0-9 ,.;:!?'\"()$%&-]+$"),
            "es": re.compile(r"^[A-Za-zÁÉÍÓÚÑÜáéíóúñü0-9 ,.;:!?¿¡'\"()$%&-]+$")}


def fortune_files(language: str) -> list[Path]:
    """The fortune text files of a language: English uses the plain files of the top folder; the
    other languages their UTF-8 (`.u8`) versions."""
    folder = FORTUNE_DIRS[language][0]
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if language == "en":
        return [p for p in files if not p.suffix]
    return [p for p in files if p.suffix == ".u8"]


def fortune_sentences(min_chars: int = 20, max_chars: int = 180, language: str = "en") -> list[str]:
    """Distinct sentences, in a stable order, from every fortune file of `language` found."""
    if language not in FORTUNE_DIRS:
        raise ValueError(f"no sentence source for language {language!r}; known: {', '.join(FORTUNE_DIRS)}")
    allowed = _ALLOWED[language]
    seen: dict[str, None] = {}
    for path in fortune_files(language):
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
                if min_chars <= len(sentence) <= max_chars and allowed.match(sentence) and \
                        sentence[-1] in ".!?" and sum(c.isalpha() for c in sentence) > 0.6 * len(sentence):
                    seen.setdefault(sentence, None)
    return list(seen)
