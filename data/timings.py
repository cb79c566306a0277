"""Word timings from the engines themselves: when each word of a synthetic clip starts and ends.

They are the ground truth the forced aligner is measured against (`sonorant eval align`):
- flite prints every phone with its end time (`-psdur`) and the words (`-pr Word`); `t2p` gives each
  word's phone count, which assigns the phones to words (a clip whose counts disagree gets no timings);
- festival's utterance carries `word_start` / `word_end` on its Word relation;
- espeak-ng's library (the one espeakng-loader ships) reports word and phoneme events with sample
  positions while it synthesises, so espeak clips are rendered through it rather than its command.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class WordTime:
    word: str
    start: float  # seconds
    end: float

    def to_list(self) -> list:
        return [self.word, round(self.start, 4), round(self.end, 4)]


def scaled(words: list[WordTime] | None, factor: float) -> list[WordTime] | None:
    """Timings of a clip whose time axis was stretched by `factor` (a pseudo-speaker's tempo change)."""
    return None if words is None else [WordTime(w.word, w.start * factor, w.end * factor) for w in words]


# -- flite --------------------------------------------------------------------------------------

@lru_cache(maxsize=65536)
def _t2p_count(word: str) -> int:
    """Phones flite's lexicon and letter-to-sound rules give a word (without the surrounding pauses)."""
    out = subprocess.run(["t2p", word], capture_output=True, text=True, timeout=30).stdout.split()
    return sum(p != "pau" for p in out)


def flite_words(stdout: str) -> list[WordTime] | None:
    """Word timings from `flite -pr Word -psdur` output: a line of words, then `phone:end` pairs."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    words = lines[0].split()
    phones = [(name, float(end)) for name, end in (p.rsplit(":", 1) for p in lines[1].split())]
    starts = [0.0] + [end for _, end in phones[:-1]]
    spoken = [(start, end) for (name, end), start in zip(phones, starts, strict=True) if name != "pau"]
    counts = [_t2p_count(w) for w in words]
    if sum(counts) != len(spoken) or 0 in counts:
        return None  # post-lexical changes: the phones cannot be assigned to words with certainty
    out, i = [], 0
    for word, n in zip(words, counts, strict=True):
        out.append(WordTime(word, spoken[i][0], spoken[i + n - 1][1]))
        i += n
    return out


# -- festival -----------------------------------------------------------------------------------

def festival_script(voice: str, text: str, out: Path, stretch: float) -> str:
    """A festival program that synthesises `text`, saves the wave and prints each word's start and end."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return (f"(voice_{voice})\n(Parameter.set 'Duration_Stretch {stretch:.3f})\n"
            f'(set! utt (SynthText "{quoted}"))\n'
            f'(utt.save.wave utt "{out}" \'riff)\n'
            '(mapcar (lambda (w) (format t "W\\t%s\\t%f\\t%f\\n" (item.name w) (item.feat w "word_start") '
            "(item.feat w \"word_end\"))) (utt.relation.items utt 'Word))\n")


def festival_words(stdout: str) -> list[WordTime]:
    words = []
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "W":
            words.append(WordTime(parts[1], float(parts[2]), float(parts[3])))
    return words


# -- espeak-ng (library) --------------------------------------------------------------------------

_LIST_END, _EVENT_WORD, _EVENT_PHONEME = (0, 1, 7)
_AUDIO_SYNCHRONOUS, _PHONEME_EVENTS, _CHARS_UTF8, _POS_CHARACTER = (2, 1, 1, 1)
_RATE, _PITCH = (1, 3)


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class EspeakLibrary:
    """espeak-ng's library in this process: one synthesis at a time (its state is global)."""

    _lock = threading.Lock()
    _instance: EspeakLibrary | None = None

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_SYNCHRONOUS, 0,
                                                      espeakng_loader.get_data_path().encode(), _PHONEME_EVENTS)
        if self.sample_rate <= 0:
            raise RuntimeError("espeak-ng's library failed to initialise")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, bytes]] = []
        self._callback = _Callback(self._receive)  # kept referenced: the library calls it
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> EspeakLibrary:
        with cls._lock:  # the corpus builder renders from several threads: initialise once
            if cls._instance is None:
                cls._instance = cls()
        return cls._instance

    def _receive(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        i = 0
        while events[i].type != _LIST_END:
            e = events[i]
            self._events.append((e.type, e.text_position, e.length, e.sample, bytes(e.id).split(b"\0")[0]))
            i += 1
        return 0

    def synthesize(self, voice: str, text: str, rate_wpm: int, pitch: int) -> tuple[np.ndarray, list[WordTime]]:
        """int16 audio at `sample_rate` and the word timings of `text` spoken by `voice` ("en-us+f2")."""
        with self._lock:
            self._chunks, self._events = [], []
            # The library names British English "en" (the command also knows it as "en-gb").
            name = re.sub(r"^en-gb(?=\+|$)", "en", voice)
            if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
                raise subprocess.CalledProcessError(1, ["espeak-ng", "-v", voice])
            self.lib.espeak_SetParameter(_RATE, rate_wpm, 0)
            self.lib.espeak_SetParameter(_PITCH, pitch, 0)
            data = text.encode("utf-8")
            if self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
                raise subprocess.CalledProcessError(1, ["espeak-ng", "-v", voice])
            self.lib.espeak_Synchronize()
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return audio, espeak_words(self._events, data, self.sample_rate, len(audio))


def espeak_words(events: list[tuple[int, int, int, int, bytes]], text: bytes, sample_rate: int,
                 total: int) -> list[WordTime]:
    """Words from the event stream: a word starts at its first phoneme and ends where the next phoneme
    (of the next word, or a pause) starts, or at the end of the audio."""
    words: list[list] = []  # [word, first phoneme sample, end sample]
    current: list | None = None
    for kind, position, _length, sample, name in events:
        if kind == _EVENT_WORD:
            # The whole written word (the event's length can stop at an apostrophe: "Don't" -> "Don").
            rest = text[position - 1:].decode("utf-8", "replace")
            current = [rest.split(maxsplit=1)[0] if rest.strip() else "", None, None]
            words.append(current)
        elif kind == _EVENT_PHONEME:
            for word in words:  # the phoneme ends every open word before it
                if word is not current and word[1] is not None and word[2] is None:
                    word[2] = sample
            if current is None:
                continue
            if name.startswith(b"_"):  # a pause ends the word it follows
                if current[1] is not None and current[2] is None:
                    current[2] = sample
                current = None
            elif current[1] is None:
                current[1] = sample
    return [WordTime(w, s / sample_rate, (e if e is not None else total) / sample_rate)
            for w, s, e in words if s is not None]


def espeak_render(voice: str, text: str, out: Path, rate_wpm: int, pitch: int) -> list[WordTime]:
    library = EspeakLibrary.get()
    audio, words = library.synthesize(voice, text, rate_wpm, pitch)
    if not len(audio):
        raise subprocess.CalledProcessError(1, ["espeak-ng", "-v", voice])
    sf.write(str(out), audio, library.sample_rate, subtype="PCM_16", format="WAV")
    return words
