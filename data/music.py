"""Generated music: MIDI pieces composed from drawn parameters, rendered with fluidsynth, captioned from
those same parameters (instrument, tempo, key, mood, style, drums), so every caption is true of its audio;
and single notes (one instrument, one pitch, one loudness per clip), captioned the same way.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import mido

from ..core.errors import SonorantError

# General MIDI programs (0-based) with the names captions use.
INSTRUMENTS = {
    "piano": 0, "electric piano": 4, "harpsichord": 6, "vibraphone": 11, "marimba": 12, "church organ": 19,
    "accordion": 21, "nylon guitar": 24, "steel guitar": 25, "electric guitar": 27, "string ensemble": 48,
    "choir": 52, "trumpet": 56, "brass section": 61, "saxophone": 65, "clarinet": 71, "flute": 73,
    "pan flute": 75, "synth lead": 81, "synth pad": 89, "harp": 46, "cello": 42, "violin": 40,
}
BASS = {"acoustic bass": 32, "electric bass": 33, "synth bass": 38}
NOTES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PROGRESSIONS = {"major": ((0, 4, 5, 3), (0, 3, 4, 4), (0, 5, 3, 4)),
                "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 4))}
STYLES = ("arpeggio", "chords", "melody", "waltz")
MOODS = {"major": ("bright", "cheerful", "warm"), "minor": ("melancholic", "dark", "wistful")}
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2",
              "/usr/share/sounds/sf2/default-GM.sf2")
TICKS = 480
# Single notes: loudness words by MIDI velocity, and the range each instrument is drawn in (else NOTE_RANGE).
DYNAMICS = {"soft": 45, "medium": 80, "loud": 115}
NOTE_RANGE = (48, 84)  # C3 .. C6
NOTE_RANGES = {"cello": (36, 67), "choir": (48, 76), "trumpet": (55, 82), "clarinet": (50, 84),
               "saxophone": (49, 80), "flute": (60, 91), "pan flute": (60, 88), "violin": (55, 91)}


@dataclass(frozen=True)
class Piece:
    """What a generated piece is: all drawn at random, all said in its caption."""

    instrument: str
    bass: str | None
    tonic: int  # 0 = C
    mode: str  # major | minor
    tempo: int  # beats per minute
    style: str
    drums: bool
    bars: int
    seed: int

    @property
    def beats_per_bar(self) -> int:
        return 3 if self.style == "waltz" else 4

    @property
    def seconds(self) -> float:
        return self.bars * self.beats_per_bar * 60.0 / self.tempo

    @property
    def caption(self) -> str:
        mood = random.Random(self.seed).choice(MOODS[self.mode])
        style = {"arpeggio": "arpeggios", "chords": "chords", "melody": "a melody", "waltz": "a waltz"}[self.style]
        parts = [f"{mood} {style} on the {self.instrument} in {NOTES[self.tonic]} {self.mode}, {self.tempo} bpm"]
        if self.bass:
            parts.append(f"with {self.bass}")
        if self.drums:
            parts.append("and drums" if self.bass else "with drums")
        return " ".join(parts)


    @property
    def family(self) -> str:
        return family(self.instrument)


def family(instrument: str) -> str:
    """The General MIDI family of an instrument of the captions (GM groups its programs in eights)."""
    return GM_FAMILIES[INSTRUMENTS[instrument] // 8]


GM_FAMILIES = ("piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed",
               "pipe", "synth lead", "synth pad")


def note_name(pitch: int) -> str:
    """Scientific pitch notation of a MIDI note: 60 -> C4."""
    return f"{NOTES[pitch % 12]}{pitch // 12 - 1}"


@dataclass(frozen=True)
class Note:
    """One note of one instrument, held for `held` seconds: the corpus' single-note clips."""

    instrument: str
    pitch: int  # MIDI note number
    dynamics: str  # a key of DYNAMICS
    held: float

    @property
    def caption(self) -> str:
        return f"a {self.dynamics} {self.instrument} note, {note_name(self.pitch)}"

    @property
    def family(self) -> str:
        return family(self.instrument)


def draw_note(rng: random.Random) -> Note:
    instrument = rng.choice(sorted(INSTRUMENTS))
    low, high = NOTE_RANGES.get(instrument, NOTE_RANGE)
    return Note(instrument, rng.randint(low, high), rng.choice(sorted(DYNAMICS)), round(rng.uniform(0.8, 2.5), 2))


def compose_note(note: Note) -> mido.MidiFile:
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS)  # 120 bpm: a beat is 0.5 s
    midi.tracks.append(_track([(0, round(note.held * 2 * TICKS), note.pitch, DYNAMICS[note.dynamics])], channel=0,
                              program=INSTRUMENTS[note.instrument]))
    return midi


_PIECE_CAPTION = re.compile(
    r"^(?P<mood>\w+) (?P<style>arpeggios|chords|a melody|a waltz) on the (?P<instrument>[a-z ]+) in "
    r"(?P<tonic>[A-G][#b]?) (?P<mode>major|minor), (?P<tempo>\d+) bpm(?: with (?P<bass>" + "|".join(BASS) + "))?"
    r"(?P<drums> (?:and|with) drums)?$")
_STYLE_WORDS = {"arpeggios": "arpeggio", "chords": "chords", "a melody": "melody", "a waltz": "waltz"}


def caption_facts(caption: str) -> tuple[str, int, str, str, bool] | None:
    """(instrument, tonic, mode, style, drums) that a generated piece's caption states; None for any other
    caption. What a held-out caption must not share with a training one."""
    m = _PIECE_CAPTION.match(caption)
    if m is None or m["instrument"] not in INSTRUMENTS:
        return None
    return m["instrument"], NOTES.index(m["tonic"]), m["mode"], _STYLE_WORDS[m["style"]], m["drums"] is not None


def piece_facts(piece: Piece) -> tuple[str, int, str, str, bool]:
    return piece.instrument, piece.tonic, piece.mode, piece.style, piece.drums


def draw_piece(rng: random.Random, seconds: tuple[float, float] = (8.0, 20.0)) -> Piece:
    style = rng.choice(STYLES)
    tempo = rng.randrange(60, 161, 4)
    beats = 3 if style == "waltz" else 4
    bars = max(2, round(rng.uniform(*seconds) * tempo / 60 / beats))
    return Piece(instrument=rng.choice(sorted(INSTRUMENTS)), bass=rng.choice([None, *sorted(BASS)]),
                 tonic=rng.randrange(12), mode=rng.choice(("major", "minor")), tempo=tempo, style=style,
                 drums=rng.random() < 0.5, bars=bars, seed=rng.randrange(2**31))


def compose(piece: Piece) -> mido.MidiFile:
    """The piece as a type-1 MIDI file: a chord progression in its key, voiced by its style."""
    rng = random.Random(piece.seed)
    scale = SCALES[piece.mode]
    progression = rng.choice(PROGRESSIONS[piece.mode])
    beat, bar = TICKS, TICKS * piece.beats_per_bar
    lead: list[tuple[int, int, int, int]] = []  # (start tick, length, note, velocity)
    low: list[tuple[int, int, int, int]] = []
    drums: list[tuple[int, int, int, int]] = []
    root_note = 60 + piece.tonic if piece.tonic < 6 else 48 + piece.tonic

    def degree(d: int, octave: int = 0) -> int:
        return root_note + scale[d % 7] + 12 * (d // 7 + octave)

    for b in range(piece.bars):
        start = b * bar
        chord_root = progression[b % len(progression)]
        chord = [degree(chord_root), degree(chord_root + 2), degree(chord_root + 4)]
        if piece.style == "chords":
            for n in chord:
                lead.append((start, bar - 10, n, 80))
        elif piece.style == "arpeggio":
            pattern = [*chord, chord[0] + 12]
            for i in range(piece.beats_per_bar * 2):
                lead.append((start + i * beat // 2, beat // 2, pattern[i % len(pattern)], 85))
        elif piece.style == "waltz":
            lead.append((start, beat, chord[0] - 12, 90))
            for i in (1, 2):
                for n in chord[1:]:
                    lead.append((start + i * beat, beat - 10, n, 70))
        else:  # melody over held chords
            for n in chord:
                lead.append((start, bar - 10, n - 12, 55))
            d = chord_root + 7
            for i in range(piece.beats_per_bar):
                d += rng.choice((-2, -1, 1, 2)) if i else 0
                length = beat if rng.random() < 0.7 else beat // 2
                lead.append((start + i * beat, length, degree(d), 95))
        if piece.bass:
            low.append((start, bar // 2, degree(chord_root, -2), 90))
            low.append((start + bar // 2, bar // 2 - 10, degree(chord_root + 4, -2), 80))
        if piece.drums:
            for i in range(piece.beats_per_bar * 2):
                t = start + i * beat // 2
                drums.append((t, 60, 42, 60))  # closed hi-hat on every half beat
                if i % piece.beats_per_bar == 0:
                    drums.append((t, 60, 36, 100))  # kick on the bar (and half bar in 4/4)
                elif piece.beats_per_bar == 4 and i % 4 == 2:
                    drums.append((t, 60, 38, 90))  # snare on 2 and 4
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(piece.tempo), time=0),
                           mido.MetaMessage("time_signature", numerator=piece.beats_per_bar, denominator=4)])
    midi.tracks.append(meta)
    midi.tracks.append(_track(lead, channel=0, program=INSTRUMENTS[piece.instrument]))
    if low:
        midi.tracks.append(_track(low, channel=1, program=BASS[piece.bass]))
    if drums:
        midi.tracks.append(_track(drums, channel=9, program=None))
    return midi


def _track(notes: list[tuple[int, int, int, int]], channel: int, program: int | None) -> mido.MidiTrack:
    events = []
    for start, length, note, velocity in notes:
        events.append((start, 1, note, velocity))
        events.append((start + length, 0, note, 0))
    events.sort()
    track = mido.MidiTrack()
    if program is not None:
        track.append(mido.Message("program_change", program=program, channel=channel, time=0))
    now = 0
    for tick, on, note, velocity in events:
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=note, velocity=velocity, channel=channel, time=tick - now))
        now = tick
    return track


def soundfont() -> Path | None:
    """The first General MIDI soundfont installed (fluid-soundfont-gm, timgm6mb-soundfont, ...)."""
    return next((Path(p) for p in SOUNDFONTS if Path(p).is_file()), None)


def render(midi_path: Path, out: Path, sample_rate: int = 22050, font: Path | None = None) -> None:
    """Render a MIDI file to a wav file with fluidsynth (no audio device, no shell)."""
    font = font or soundfont()
    if shutil.which("fluidsynth") is None or font is None:
        raise SonorantError("rendering music needs fluidsynth and a GM soundfont "
                            "(apt-get install fluidsynth timgm6mb-soundfont)")
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(sample_rate), "-F", str(out), str(font),
                    str(midi_path)], check=True, capture_output=True, timeout=300)
