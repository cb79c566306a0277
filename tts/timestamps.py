"""Word timestamps of generated speech, from the pointer: the frames it spent on each word's phonemes."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..align.words import Segment, phone_count, spoken_words, timed_segments
from ..text.frontend import WORD, clean_text, normalize, phonemize, symbols


@dataclass
class PieceWords:
    """The words of one text chunk as they are spoken. `first` is the utterance index that stands for the
    chunk's language tag (its own tag, or, continuing a voice prompt, the prompt's closing boundary):
    token `first + 1 + i` is symbol i of the chunk's IPA. Times are seconds in the output audio, from
    `offset` (where the chunk's first frame starts)."""

    ipa: str
    words: list[str]
    lengths: list[int]  # each word's own phone count (splits words that G2P joined)
    first: int
    frame_rate: float
    offset: float = 0.0
    frames: list[int] = field(default_factory=list)  # frames per chunk token so far (language tag first)
    current: int = 0  # chunk token of the last frame
    taken: int = 0
    finished: bool = False

    def add(self, token: int) -> None:
        """One more frame, spoken on utterance token `token`."""
        if not self.frames:
            self.frames = [0] * (len(symbols(self.ipa)) + 2)
        self.current = min(max(token - self.first, 0), len(self.frames) - 1)
        self.frames[self.current] += 1

    def finish(self) -> None:
        self.finished = True

    def _complete(self) -> list[Segment]:
        if not self.frames:
            return []
        words, _ = timed_segments(self.ipa, self.frames, self.frame_rate, self.words, self.lengths)
        if self.finished:
            return words
        boundary = sum(self.frames[: self.current]) / self.frame_rate  # where the current token began
        return [w for w in words if w.end <= boundary + 1e-9 and w.end > w.start]

    @property
    def ready(self) -> bool:
        return len(self._complete()) > self.taken

    def take(self) -> list[Segment]:
        """The words completed since the last call."""
        done = self._complete()
        new = done[self.taken:]
        self.taken = len(done)
        return [Segment(w.label, w.start + self.offset, w.end + self.offset) for w in new]


def piece_words(text: str, ipa: str, language: str, first: int, frame_rate: float) -> PieceWords:
    words = spoken_words(normalize(clean_text(text), language))
    alone = phonemize(words, language) if words else []
    return PieceWords(ipa, words, [phone_count(w.replace(WORD, "")) for w in alone], first, frame_rate)
