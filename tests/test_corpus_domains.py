"""Music and sound in the offline corpus: captions true to the generated MIDI, recordings cut into clips
that keep one split, and a build that resumes where it stopped and reports what it skipped."""

from __future__ import annotations

import json
import random
import re
import shutil

import mido
import numpy as np
import pytest
import soundfile as sf

from sonorant.data.build import build_corpus
from sonorant.data.manifest import read_manifest
from sonorant.data.music import BASS, INSTRUMENTS, NOTES, SCALES, compose, draw_piece, render, soundfont
from sonorant.data.recordings import Source, import_file, split_of, words

from .conftest import tone

can_render = pytest.mark.skipif(shutil.which("fluidsynth") is None or soundfont() is None,
                                reason="needs fluidsynth and a GM soundfont (installed by the test command)")


@pytest.mark.parametrize("seed", range(6))
def test_the_midi_says_what_the_caption_says(seed):
    piece = draw_piece(random.Random(seed))
    midi = compose(piece)
    tempos = [m.tempo for m in midi.tracks[0] if m.type == "set_tempo"]
    assert [round(mido.tempo2bpm(t)) for t in tempos] == [piece.tempo]
    programs = {m.channel: m.program for t in midi.tracks for m in t if m.type == "program_change"}
    assert programs[0] == INSTRUMENTS[piece.instrument]
    assert (1 in programs) == (piece.bass is not None) and (piece.bass is None or programs[1] == BASS[piece.bass])
    notes = [m for t in midi.tracks for m in t if m.type == "note_on" and m.velocity > 0]
    in_key = {(piece.tonic + step) % 12 for step in SCALES[piece.mode]}
    assert {m.note % 12 for m in notes if m.channel != 9} <= in_key  # every pitched note is in the key
    assert any(m.channel == 9 for m in notes) == piece.drums
    assert abs(midi.length - piece.seconds) < 60 / piece.tempo  # the drawn length, to a beat
    caption = piece.caption
    assert piece.instrument in caption and f"{NOTES[piece.tonic]} {piece.mode}" in caption
    assert f"{piece.tempo} bpm" in caption and ("drums" in caption) == piece.drums


@can_render
def test_rendered_music_sounds_for_as_long_as_the_piece(tmp_path):
    piece = draw_piece(random.Random(3), seconds=(4.0, 6.0))
    compose(piece).save(str(tmp_path / "p.mid"))
    render(tmp_path / "p.mid", tmp_path / "p.wav", sample_rate=16000)
    audio, rate = sf.read(tmp_path / "p.wav")
    assert rate == 16000 and np.abs(audio).max() > 0.05
    assert piece.seconds <= len(audio) / rate < piece.seconds + 4.0  # plus the instruments' release


def test_recordings_are_cut_into_clips_that_share_a_split(tmp_path):
    source = Source("some-game-data", "music", "/music/", "{name}, game music from Some Game")
    path = tmp_path / "BattleMusic_02-epic.flac"
    sf.write(path, np.tile(tone(5.0, 22050), 9), 22050)  # 45 s
    items = import_file(source, path, tmp_path / "corpus", "some-game/battle")
    assert [round(i.duration) for i in items] == [20, 20, 5]
    assert len({i.split for i in items}) == 1 and items[0].split == split_of(str(path))
    assert items[0].caption == "battle music epic, game music from Some Game"
    written = tmp_path / "corpus" / items[0].path
    before = written.stat().st_mtime_ns
    assert import_file(source, path, tmp_path / "corpus", "some-game/battle") == items
    assert written.stat().st_mtime_ns == before  # a resumed build keeps what it wrote
    assert words("GMRockKit") == "gm rock kit" and words("Kick-Softy_01") == "kick softy"


def test_an_unreadable_recording_gives_no_items(tmp_path):
    bad = tmp_path / "broken.ogg"
    bad.write_bytes(b"OggS not really")
    assert import_file(Source("p", "sound", "/", "{name}"), bad, tmp_path / "c", "p/broken") == []


@can_render
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (installed by the test command)")
@pytest.mark.slow
def test_build_resumes_and_reports(tmp_path, monkeypatch):
    """All three domains, with one stand-in recording package installed and one missing (the real ones
    are large and not installed for the tests)."""
    import sonorant.data.build as build
    import sonorant.data.hedgewars as hedgewars

    recording = tmp_path / "usr" / "BattleMusic.flac"
    recording.parent.mkdir()
    sf.write(recording, np.tile(tone(5.0, 22050), 6), 22050)
    sources = (Source("stand-in-music", "music", "/usr/", "{name}, stand-in music"),
               Source("missing-sounds", "sound", "/sfx/", "{name}"))
    monkeypatch.setattr(build, "SOURCES", sources)
    broken = recording.with_name("Broken.ogg")
    broken.write_bytes(b"OggS not really")
    monkeypatch.setattr(build, "source_files",
                        lambda s: [broken, recording] if s.package == "stand-in-music" else None)
    monkeypatch.setattr(hedgewars, "DEFAULT_SOURCE", tmp_path / "no-hedgewars")
    out = tmp_path / "corpus"
    first = build_corpus(out, hours=0.02, seed=5)
    items = read_manifest(first.manifest)
    generated = [i for i in items if i.id.startswith("generated/")]
    real = [i for i in items if i.caption == "battle music, stand-in music"]
    assert generated and all("bpm" in i.caption and i.domain == "music" for i in generated)
    notes = [i for i in items if i.id.startswith("note/")]  # single notes: one instrument, one pitch
    assert notes and all(re.fullmatch(r"a (soft|medium|loud) [a-z ]+ note, [A-G][#b]?\d", i.caption) for i in notes)
    assert real and abs(sum(i.duration for i in real) - 0.02 * 3600 * 0.15 / 2) < 0.1  # half the music hours
    assert "sound: missing-sounds not installed" in first.skipped
    assert "music: 1 recordings unreadable, silent or shorter than 0.2 s" in first.skipped
    assert "real voices: hedgewars-data not installed" in first.skipped
    assert set(first.domains) == {"speech", "music"} and first.domains["speech"] > 0.015
    report = json.loads((out / "report.json").read_text())
    assert report["domains"] == first.domains and report["items"] == len(items) and report["skipped"] == first.skipped
    # Interrupted: the manifest was never written and one clip is missing. The same command resumes.
    (out / "manifest.jsonl").unlink()
    lost = out / generated[0].path
    lost.unlink()
    kept = out / items[0].path
    before = kept.stat().st_mtime_ns
    again = build_corpus(out, hours=0.02, seed=5)
    assert read_manifest(again.manifest) == items
    assert lost.is_file() and kept.stat().st_mtime_ns == before
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporary files left
