"""Text normalisation and chunking: what G2P would misread is spelled out; long text is cut sensibly."""

from __future__ import annotations

import warnings

import pytest

from sonorant.text.chunking import chunk_text, split_sentences
from sonorant.text.frontend import phonemize
from sonorant.text.normalize import normalize


@pytest.mark.parametrize("text, expected", [
    ("Dr. Smith paid $1,234.50.", "doctor Smith paid one thousand two hundred and thirty-four dollars fifty cents."),
    ("It costs $20 today.", "It costs twenty dollars today."),
    ("We met on 2024-03-05.", "We met on March fifth, twenty twenty-four."),
    ("Come at 3:30 pm, or at 10:00.", "Come at three thirty p m, or at ten o'clock."),
    ("Meet at 10:05 in St. Louis.", "Meet at ten oh five in saint Louis."),
    ("The 21st of 1,000 runners", "The twenty-first of one thousand runners"),
    ("50% of 3.14", "fifty percent of three point one four"),
    ("In 1999 we had 1200 cats & 2 dogs.", "In nineteen ninety-nine we had twelve hundred cats and two dogs."),
    ("Mr. and Mrs. Jones, e.g. the No. 5 team", "mister and missus Jones, for example the number five team"),
])
def test_english_normalisation(text, expected):
    assert normalize(text, "en-us") == expected


def test_other_languages_use_their_own_number_words():
    assert normalize("Es kostet 5,50 € um 10:15, z.B. heute.", "de") == \
        "Es kostet fünf Euro und fünfzig Cent um zehn und fünfzehn, zum Beispiel heute."
    assert normalize("Tengo 21 gatos y 20 €.", "es-419") == "Tengo veintiuno gatos y veinte euros."


def test_unknown_characters_are_dropped_with_a_warning_not_a_crash():
    with pytest.warns(UserWarning, match="dropped characters"):
        assert normalize("Hello \U0001F600 world \u2603!") == "Hello world!"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert normalize("Plain text, nothing odd?") == "Plain text, nothing odd?"


def test_phonemize_sees_the_normalised_words():
    assert phonemize(["I have 2 cats."])[0] == phonemize(["I have two cats."])[0]


def test_sentences_and_chunks_keep_every_word_in_order_under_the_limit():
    text = ("Hello there. How are you today? I am fine, thanks; and you!\n\nNew paragraph without a stop "
            "This one is a very long sentence that goes on and on, with many clauses, and it never seems to end "
            "because the writer likes commas, semicolons; and words like antidisestablishmentarianism. Short.")
    assert split_sentences("One. Two? Three! \"Four.\" Five")[:3] == ["One.", "Two?", "Three!"]
    chunks = chunk_text(text, max_chars=60)
    assert all(len(c) <= 60 for c in chunks)
    assert " ".join(chunks).split() == text.split()
    assert chunks[0] == "Hello there. How are you today? I am fine, thanks; and you!"  # whole sentences merged
    assert chunk_text("Short text.", 60) == ["Short text."]
