"""Text frontend: text -> phoneme symbols (offline espeak-ng G2P) -> ids of a vocabulary saved with the model.

The vocabulary is built from the training texts and stored in `frontend.json` next to the LM, so
inference maps every symbol exactly as training did. Symbols are the characters of espeak's IPA
output (phones, stress and length marks, punctuation) plus a word boundary; a language tag token
starts every sequence.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..core.errors import SonorantError
from .normalize import normalize

FRONTEND_FORMAT_VERSION = 1
PAD, UNK, WORD = "<pad>", "<unk>", "|"
SPECIALS = (PAD, UNK, WORD)


class TextError(SonorantError):
    """Text that cannot be turned into phonemes (empty, unknown language...)."""


def clean_text(text: str) -> str:
    """Unicode-normalise, drop control characters, collapse whitespace."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\n\t")
    return re.sub(r"\s+", " ", text).strip()


def check_speakable(text: str) -> str:
    """`text` cleaned, or TextError when there is nothing to say in it: empty, or no letter or digit at all
    (only punctuation, symbols or emoji, which are not spoken)."""
    cleaned = clean_text(text)
    if not cleaned:
        raise TextError("the text is empty")
    if not any(ch.isalnum() for ch in cleaned):
        raise TextError("nothing to say: the text has no letters or digits (only punctuation, symbols or emoji)")
    return cleaned


# Bare codes that espeak only knows with a region (manifests and users often write "en").
_ESPEAK_DEFAULTS = {"en": "en-us", "pt": "pt-br", "zh": "cmn"}


def canonical_language(language: str) -> str:
    """'en' / 'en_US' / 'EN-us' -> 'en-us': the espeak code used for G2P and for the language tag."""
    code = language.strip().replace("_", "-").lower()
    return _ESPEAK_DEFAULTS.get(code, code)


_ESPEAK_LOCK = threading.RLock()


@lru_cache(maxsize=16)
def _backend(language: str):
    import espeakng_loader
    from phonemizer.backend import EspeakBackend
    from phonemizer.backend.espeak.wrapper import EspeakWrapper

    EspeakWrapper.set_library(espeakng_loader.get_library_path())
    EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
    try:
        return EspeakBackend(language, preserve_punctuation=True, with_stress=True)
    except RuntimeError as e:
        raise TextError(f"unknown language {language!r} for the espeak G2P ({e})") from None


def phonemize(texts: list[str], language: str = "en-us") -> list[str]:
    """Normalised (`normalize.normalize`) IPA strings, words separated by ' | ' (one espeak call: fast)."""
    from phonemizer.separator import Separator

    language = canonical_language(language)
    cleaned = [normalize(clean_text(t), language) for t in texts]
    spoken = [i for i, t in enumerate(cleaned) if t.strip()]  # phonemizer drops empty lines: keep the places
    cleaned = [cleaned[i] for i in spoken]
    with _ESPEAK_LOCK:  # one espeak-ng library per process, with global state: one caller at a time
        out = _backend(language).phonemize(cleaned, separator=Separator(phone="", word=f" {WORD} "), strip=True,
                                           njobs=1)
    result = [""] * len(texts)
    for i, s in zip(spoken, out, strict=True):
        result[i] = re.sub(r"\s+", " ", s).strip()
    return result


def symbols(ipa: str) -> list[str]:
    """' | '-separated IPA -> symbols: one per character, `|` between words."""
    out: list[str] = []
    for word in ipa.split(" "):
        if word == WORD:
            out.append(WORD)
        else:
            out.extend(word)
    return out


@dataclass
class TextFrontend:
    """Phoneme vocabulary and languages of a model; `encode(text, language) -> ids`."""

    vocabulary: list[str] = field(default_factory=lambda: list(SPECIALS))
    languages: list[str] = field(default_factory=lambda: ["en-us"])

    def __post_init__(self) -> None:
        self._ids = {s: i for i, s in enumerate(self.vocabulary)}

    @classmethod
    def build(cls, phoneme_strings: list[str], languages: list[str]) -> TextFrontend:
        """A vocabulary covering every symbol of the training texts (in a stable order) plus language tags."""
        seen = sorted({s for ipa in phoneme_strings for s in symbols(ipa)} - set(SPECIALS))
        languages = sorted({canonical_language(lang) for lang in languages})
        return cls(list(SPECIALS) + [f"<{lang}>" for lang in languages] + seen, languages)

    def extended(self, other: TextFrontend) -> TextFrontend:
        """This vocabulary with `other`'s new symbols and languages appended: every id this one gives stays the
        same, so a model trained with it can go on training (`--init-from`) on texts with more symbols."""
        known = set(self.vocabulary)
        added = [s for s in other.vocabulary if s not in known]
        return TextFrontend(self.vocabulary + added, self.languages + [x for x in other.languages
                                                                        if x not in self.languages])

    @property
    def size(self) -> int:
        return len(self.vocabulary)

    def ids(self, ipa: str, language: str) -> list[int]:
        """Ids of an IPA string (from `phonemize`), starting with the language tag; unknown symbols -> <unk>."""
        language = canonical_language(language)
        tag = f"<{language}>"
        if tag not in self._ids:
            raise TextError(f"language {language!r} is not one this model was trained on "
                            f"({', '.join(self.languages)})")
        unk = self._ids[UNK]
        return [self._ids[tag]] + [self._ids.get(s, unk) for s in symbols(ipa)]

    def utterance_ids(self, ipa: str, language: str) -> list[int]:
        """The token sequence aligned to an utterance's frames: `ids` and a closing word boundary. The
        language tag takes the silence before the first word, the closing boundary the silence after the
        last one, so every phone's frames are its own."""
        return self.ids(ipa, language) + [self._ids[WORD]]

    def encode(self, text: str, language: str = "en-us") -> list[int]:
        if not clean_text(text):
            raise TextError("the text is empty")
        return self.ids(phonemize([text], language)[0], language)

    def to_dict(self) -> dict:
        return {"format_version": FRONTEND_FORMAT_VERSION, "kind": "frontend", "vocabulary": self.vocabulary,
                "languages": self.languages}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TextFrontend:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise SonorantError(f"{path}: not a text frontend file ({e})") from None
        if data.get("kind") != "frontend" or data.get("format_version", 0) > FRONTEND_FORMAT_VERSION:
            raise SonorantError(f"{path}: not a text frontend file of a supported version")
        return cls(list(data["vocabulary"]), list(data["languages"]))
