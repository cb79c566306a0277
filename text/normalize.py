"""Text normalisation: numbers, ordinals, dates, times, currency, abbreviations and symbols -> words.

Runs before G2P, in training and at inference alike (`frontend.phonemize` calls it), so the model
hears the same spelled-out words for "$5" whichever side produced them. Numbers go through
`num2words` in the text's language; abbreviations and symbol words exist for English, German and
Spanish. Characters that are neither letters, digits, whitespace nor ordinary punctuation are dropped
with a warning (emoji, box drawing...), never a crash.
"""

from __future__ import annotations

import re
import unicodedata
import warnings

from num2words import num2words

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]

# Abbreviations that espeak would otherwise spell or read as a word. Keys match case-sensitively
# and must be followed by a dot (the dot is part of the abbreviation, not a sentence end).
_ABBREVIATIONS = {
    "en": {"Mr": "mister", "Mrs": "missus", "Ms": "miz", "Dr": "doctor", "Prof": "professor", "St": "saint",
           "Jr": "junior", "Sr": "senior", "Mt": "mount", "vs": "versus", "etc": "et cetera",
           "e.g": "for example", "i.e": "that is", "No": "number", "approx": "approximately",
           "Inc": "incorporated", "Ltd": "limited", "Co": "company", "Capt": "captain", "Gen": "general",
           "Lt": "lieutenant", "Sgt": "sergeant", "Col": "colonel", "Jan": "January", "Feb": "February",
           "Aug": "August", "Sept": "September", "Oct": "October", "Nov": "November", "Dec": "December"},
    "de": {"Dr": "Doktor", "Prof": "Professor", "z.B": "zum Beispiel", "usw": "und so weiter", "bzw":
           "beziehungsweise", "Nr": "Nummer", "ca": "circa", "d.h": "das heißt", "Hr": "Herr", "Fr": "Frau"},
    "es": {"Sr": "señor", "Sra": "señora", "Srta": "señorita", "Dr": "doctor", "Dra": "doctora", "etc":
           "etcétera", "pág": "página", "Ud": "usted", "Uds": "ustedes", "núm": "número"},
}
_SYMBOLS = {
    "en": {"&": "and", "%": "percent", "+": "plus", "=": "equals", "@": "at", "#": "number", "°": "degrees",
           "×": "times", "/": "slash"},
    "de": {"&": "und", "%": "Prozent", "+": "plus", "=": "gleich", "@": "at", "#": "Nummer", "°": "Grad",
           "×": "mal", "/": "Schrägstrich"},
    "es": {"&": "y", "%": "por ciento", "+": "más", "=": "igual a", "@": "arroba", "#": "número", "°": "grados",
           "×": "por", "/": "barra"},
}
_CURRENCIES = {"$": "USD", "€": "EUR", "£": "GBP"}
_AND = {"en": "and", "de": "und", "es": "y"}
_POINT = {"en": "point", "de": "Komma", "es": "coma"}
_KEEP_PUNCTUATION = set(".,;:!?'\"()-–—…¡¿«»„“”‘’")


def base_language(language: str) -> str:
    """espeak code -> num2words code: 'en-us' -> 'en', 'es-419' -> 'es'."""
    return language.split("-")[0].split("_")[0].lower()


def _number(value: str, lang: str, **kwargs) -> str:
    try:
        return num2words(value, lang=lang, **kwargs)
    except (NotImplementedError, OverflowError, ValueError, TypeError):
        return num2words(value, lang="en", **kwargs)


def _decimal(whole: str, frac: str, lang: str) -> str:
    digits = " ".join(_number(d, lang) for d in frac)
    return f"{_number(whole, lang)} {_POINT.get(lang, 'point')} {digits}"


def _money(symbol: str, amount: str, lang: str) -> str:
    amount = amount.replace(",", "")
    value = float(amount)
    try:
        words = num2words(value, lang=lang, to="currency", currency=_CURRENCIES[symbol]).replace(",", "")
        if value == int(value):  # "five dollars", not "five dollars zero cents"
            zero = _number(0, lang)
            words = re.sub(rf"\s+(?:(?:and|und|con|y)\s+)?{zero}\s+\w+$", "", words)
        return words
    except (NotImplementedError, KeyError, ValueError):
        return f"{_number(amount, lang)} {_CURRENCIES[symbol]}"


def _time(hours: str, minutes: str, suffix: str | None, lang: str) -> str:
    h, m = int(hours), int(minutes)
    if lang != "en":
        words = f"{_number(h, lang)} {_AND.get(lang, 'and')} {_number(m, lang)}" if m else _number(h, lang)
        return words
    if m == 0:
        words = f"{_number(h, lang)} o'clock" if not suffix else _number(h, lang)
    elif m < 10:
        words = f"{_number(h, lang)} oh {_number(m, lang)}"
    else:
        words = f"{_number(h, lang)} {_number(m, lang)}"
    if suffix:
        # "p.m." at a sentence end also ends the sentence: keep a full stop for the prosody
        words += " " + " ".join(suffix.replace(".", "").lower()) + ("." if suffix.endswith(".") else "")
    return words


def _date_iso(year: str, month: str, day: str, lang: str) -> str:
    m, d = int(month), int(day)
    if not (1 <= m <= 12 and 1 <= d <= 31):
        return f"{year} {month} {day}"
    if lang == "en":
        return f"{_MONTHS[m - 1]} {_number(d, lang, to='ordinal')}, {_number(int(year), lang, to='year')}"
    return f"{_number(d, lang, to='ordinal')} {_number(m, lang, to='ordinal')} {_number(int(year), lang)}"


def _year_or_number(value: str, lang: str) -> str:
    n = int(value)
    if lang == "en" and 1100 <= n <= 2099 and len(value) == 4:
        return _number(n, lang, to="year")
    return _number(n, lang)


_RULES: list[tuple[re.Pattern, object]] = [
    # 2024-03-05
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), lambda m, lang: _date_iso(*m.groups(), lang)),
    # $1,234.50  €5  £3.20
    (re.compile(r"([$€£])\s?(\d[\d,]*(?:\.\d+)?)"), lambda m, lang: _money(m[1], m[2], lang)),
    # 5 €, 5,50 € (amount before the symbol, as written in German and Spanish)
    (re.compile(r"(\d+)(?:,(\d{2}))?\s?([$€£])"),
     lambda m, lang: _money(m[3], f"{m[1]}.{m[2]}" if m[2] else m[1], lang)),
    # 3:30 pm, 10:00
    (re.compile(r"\b(\d{1,2}):(\d{2})\s?([AaPp]\.?[Mm]\.?)?(?![\w:])"), lambda m, lang: _time(m[1], m[2], m[3], lang)),
    # 5 pm, 11am
    (re.compile(r"\b(\d{1,2})\s?([AaPp]\.?[Mm]\b\.?)"), lambda m, lang: _time(m[1], "0", m[2], lang)),
    # 1st 2nd 3rd 4th (English), 1. in German is left alone (too ambiguous with sentence ends)
    (re.compile(r"\b(\d+)(st|nd|rd|th)\b"), lambda m, lang: _number(int(m[1]), lang, to="ordinal")),
    # 50% -> fifty percent (before the plain-number rule eats the digits)
    (re.compile(r"(\d+(?:\.\d+)?)\s?%"), lambda m, lang: _numeric(m[1], lang) + " " + _SYMBOLS[_sym(lang)]["%"]),
    # 1,234,567
    (re.compile(r"\b\d{1,3}(?:,\d{3})+\b"), lambda m, lang: _number(int(m[0].replace(",", "")), lang)),
    # 3.14
    (re.compile(r"\b(\d+)\.(\d+)\b"), lambda m, lang: _decimal(m[1], m[2], lang)),
    # plain integers; four-digit ones in the year range read as years in English
    (re.compile(r"\b\d+\b"), lambda m, lang: _year_or_number(m[0], lang)),
]


def _sym(lang: str) -> str:
    return lang if lang in _SYMBOLS else "en"


def _numeric(value: str, lang: str) -> str:
    if "." in value:
        whole, frac = value.split(".", 1)
        return _decimal(whole, frac, lang)
    return _number(int(value), lang)


def _expand_abbreviations(text: str, lang: str) -> str:
    table = _ABBREVIATIONS.get(lang, {})
    if not table:
        return text
    keys = sorted(table, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.])(" + "|".join(re.escape(k) for k in keys) + r")\.")
    return pattern.sub(lambda m: table[m[1]], text)


def _drop_unknown(text: str) -> str:
    kept, dropped = [], []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] in "LNM" or ch.isspace() or ch in _KEEP_PUNCTUATION:
            kept.append(ch)
        else:
            dropped.append(ch)
    if dropped:
        shown = "".join(sorted(set(dropped)))
        warnings.warn(f"dropped characters the text frontend cannot speak: {shown!r}", stacklevel=3)
    return "".join(kept)


def normalize(text: str, language: str = "en-us") -> str:
    """Spell out what G2P would misread; whitespace collapsed. Never raises on odd characters."""
    lang = base_language(language)
    text = unicodedata.normalize("NFC", text)
    text = _expand_abbreviations(text, lang)
    for pattern, rule in _RULES:
        text = pattern.sub(lambda m, rule=rule: f" {rule(m, lang)} ", text)
    symbols = _SYMBOLS[_sym(lang)]
    text = re.sub(r"[&%+=@#°×]|(?<=\s)/(?=\s)", lambda m: f" {symbols[m[0]]} ", text)
    text = _drop_unknown(text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()
