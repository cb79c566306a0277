"""From frames per token to phoneme and word times in seconds (what `sonorant align` prints)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ..text.frontend import WORD, symbols

_BEFORE = "ˈˌ"  # stress marks belong to the phone after them
_AFTER = "ːˑ̩̯̃"  # length and diacritic marks belong to the phone before them


@dataclass(frozen=True)
class Segment:
    label: str
    start: float  # seconds
    end: float

    def to_dict(self, key: str) -> dict:
        return {key: self.label, "start": round(self.start, 3), "end": round(self.end, 3)}


def is_punctuation(symbol: str) -> bool:
    return all(unicodedata.category(ch)[0] in "PS" for ch in symbol)


def spoken_words(normalised: str) -> list[str]:
    """The words of a normalised text as a reader counts them: tokens holding a letter or digit, stripped of
    surrounding punctuation ("--" is no word, '"quote"' is quote)."""
    words = []
    for token in normalised.split():
        if any(ch.isalnum() for ch in token):
            words.append(re.sub(r"^\W+|\W+$", "", token))
    return words


def timed_segments(ipa: str, durations: list[int], frame_rate: float, words: list[str] | None = None,
                   word_lengths: list[int] | None = None,
                   shifts: tuple[float, float] = (0.0, 0.0)) -> tuple[list[Segment], list[Segment]]:
    """(words, phonemes) of an utterance whose tokens (language tag, `symbols(ipa)`, closing boundary)
    got `durations` frames each. A word spans its phones, not the punctuation or pause next to it; words
    are labelled with `words` (the normalised text's) when they pair one to one with the phoneme words.
    G2P joins some words ("in the" -> one phoneme word): given each word's own symbol count
    (`word_lengths`), a joined phoneme word is shared among its words by those counts; else the phoneme
    words are labelled with their IPA. `shifts` (seconds) move every word's start and end (see
    `AlignerConfig.word_start_shift`); words never overlap after it."""
    syms = symbols(ipa)
    if len(durations) != len(syms) + 2:
        raise ValueError(f"{len(durations)} durations for {len(syms) + 2} tokens")
    edges = [0]
    for d in durations:
        edges.append(edges[-1] + int(d))
    phones: list[list] = []  # [label, first token, last token]
    word_spans: list[list] = []  # [ipa, first token, last token]
    new_word, open_stress, punctuated = True, False, set()
    for i, sym in enumerate(syms, start=1):  # token 0 is the language tag
        if sym == WORD:
            new_word = True
            continue
        if is_punctuation(sym):
            punctuated.add(len(word_spans))  # the gap before the next word holds punctuation
            continue
        if new_word:
            word_spans.append(["", i, i])
            new_word = False
        word_spans[-1][0] += sym
        word_spans[-1][2] = i
        if open_stress or (sym in _AFTER and phones and phones[-1][2] == i - 1):
            phones[-1][0] += sym  # the stressed phone, or a mark of the phone before
            phones[-1][2] = i
        else:
            phones.append([sym, i, i])
        open_stress = sym in _BEFORE
    seconds = [e / frame_rate for e in edges]
    phone_segments = [Segment(label, seconds[a], seconds[b + 1]) for label, a, b in phones]
    if words is not None and len(words) == len(word_spans):
        word_segments = [Segment(label, seconds[a], seconds[b + 1]) for label, (_, a, b) in
                         zip(words, word_spans, strict=True)]
    elif words is not None and word_lengths is not None and len(word_lengths) == len(words):
        word_segments = _split_merged(word_spans, words, word_lengths, seconds)
    else:
        word_segments = [Segment(ipa_word, seconds[a], seconds[b + 1]) for ipa_word, a, b in word_spans]
    pauses = {seconds[word_spans[k][1]] for k in punctuated if 0 < k < len(word_spans)}
    words_out = _close_joints(word_segments, pauses, JOINT_FRAMES / frame_rate)
    if shifts != (0.0, 0.0):
        words_out = _shifted(words_out, shifts, seconds[-1])
    return words_out, phone_segments


# Every word boundary token takes at least one frame, even where one word runs into the next: a gap of
# at most this many frames between two words is such a joint (both meet in its middle), a longer one with
# punctuation in it a pause.
JOINT_FRAMES = 2
# A longer gap with no punctuation in it is no pause either: within a phrase, silence between two words is
# mostly the closure of a stop that starts the next word (which the engines count as that word's). Such a
# joint is placed this far into the gap (measured on validation clips: see `eval align`).
CLOSURE_SHARE = 0.25


def _close_joints(words: list[Segment], pauses: set[float], joint: float) -> list[Segment]:
    """Words that meet: consecutive words share one joint unless a pause (a gap starting at a time in
    `pauses`, longer than `joint`) lies between them."""
    out = list(words)
    for k in range(len(out) - 1):
        gap = out[k + 1].start - out[k].end
        if gap <= 0 or (gap > joint + 1e-9 and out[k + 1].start in pauses):
            continue
        at = out[k].end + gap * (0.5 if gap <= joint + 1e-9 else CLOSURE_SHARE)
        out[k] = Segment(out[k].label, out[k].start, at)
        out[k + 1] = Segment(out[k + 1].label, at, out[k + 1].end)
    return out


def _shifted(words: list[Segment], shifts: tuple[float, float], total: float) -> list[Segment]:
    return without_overlaps([Segment(w.label, min(max(0.0, w.start + shifts[0]), total),
                                     min(max(0.0, w.end + shifts[1]), total)) for w in words])


def without_overlaps(words: list[Segment]) -> list[Segment]:
    """Words whose boundaries were moved one by one: where one now starts before the last ended, the two
    meet in the middle again; no word ends before it starts."""
    out = list(words)
    for k in range(len(out) - 1):
        if out[k + 1].start < out[k].end:
            middle = (out[k + 1].start + out[k].end) / 2
            out[k] = Segment(out[k].label, out[k].start, middle)
            out[k + 1] = Segment(out[k + 1].label, middle, out[k + 1].end)
    return [Segment(w.label, w.start, max(w.start, w.end)) for w in out]


def phone_count(ipa: str) -> int:
    """Symbols of an IPA word that are phones (not stress or length marks, not punctuation)."""
    return sum(ch not in _BEFORE + _AFTER and not ch.isspace() and not is_punctuation(ch) for ch in ipa)


def _split_merged(spans: list[list], words: list[str], lengths: list[int], seconds: list[float]) -> list[Segment]:
    """Assign consecutive words to each phoneme word by their phone counts, then share its tokens."""
    out: list[Segment] = []
    i = 0
    for k, (ipa_word, first, last) in enumerate(spans):
        if i >= len(words):  # more phoneme words than words: label them with their IPA
            return [Segment(w, seconds[a], seconds[b + 1]) for w, a, b in spans]
        size, spans_left = phone_count(ipa_word), len(spans) - k - 1
        group = [i]
        i += 1
        # Take the next word while that brings the group no further from the phoneme word's phone count,
        # leaving a word for every phoneme word still to come.
        while i < len(words) and len(words) - i > spans_left and \
                abs(sum(lengths[j] for j in group) + lengths[i] - size) <= abs(sum(lengths[j] for j in group) - size):
            group.append(i)
            i += 1
        total = sum(max(1, lengths[j]) for j in group)
        tokens = last - first + 1
        start = first
        for n, j in enumerate(group):
            end = last + 1 if n == len(group) - 1 else start + max(1, round(tokens * max(1, lengths[j]) / total))
            end = min(end, last + 1 - (len(group) - 1 - n))
            out.append(Segment(words[j], seconds[start], seconds[end]))
            start = end
    if i != len(words):
        return [Segment(w, seconds[a], seconds[b + 1]) for w, a, b in spans]
    return out


def _key(word: str) -> str:
    return re.sub(r"[^\w]", "", word.lower())


def boundary_errors(predicted: list[Segment], reference: list[tuple[str, float, float]]) -> list[float]:
    """Absolute differences (seconds) of the start and end of every word the two word lists share, paired
    in order by spelling (words an engine spelled otherwise, "3" for "three", are left out)."""
    return [abs(e) for pair in signed_errors(predicted, reference) for e in pair]


def signed_errors(predicted: list[Segment], reference: list[tuple[str, float, float]]) -> list[tuple[float, float]]:
    """(start, end) differences, ours minus the reference's, in seconds, of the words both lists share."""
    return [(p.start - start, p.end - end) for p, (_, start, end), _ in paired_words(predicted, reference)]


# A gap of at least this much between two words of the reference is a pause (for `boundary_contexts`).
PAUSE_SECONDS = 0.03


def boundary_contexts(predicted: list[Segment],
                      reference: list[tuple[str, float, float]]) -> list[tuple[float, bool]]:
    """(absolute error in seconds, next to a pause?) of the start and the end of every shared word: a start
    is next to a pause when the reference leaves at least PAUSE_SECONDS before it (or it starts the
    utterance), an end when it leaves that much after it (or it ends the utterance)."""
    out = []
    for p, (_, start, end), k in paired_words(predicted, reference):
        before = start - reference[k - 1][2] if k > 0 else float("inf")
        after = reference[k + 1][1] - end if k + 1 < len(reference) else float("inf")
        out += [(abs(p.start - start), before >= PAUSE_SECONDS), (abs(p.end - end), after >= PAUSE_SECONDS)]
    return out


def paired_words(predicted: list[Segment], reference: list[tuple[str, float, float]]
                 ) -> list[tuple[Segment, tuple[str, float, float], int]]:
    """The words both lists share, paired in order by spelling: (ours, theirs, index of theirs)."""
    from difflib import SequenceMatcher

    ours = [_key(w.label) for w in predicted]
    theirs = [_key(w) for w, _, _ in reference]
    pairs = []
    for block in SequenceMatcher(None, ours, theirs, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            pairs.append((predicted[block.a + k], reference[block.b + k], block.b + k))
    return pairs
