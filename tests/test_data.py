"""Manifests and the offline speech corpus builder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from sonorant.data.build import build_corpus, held_out
from sonorant.data.manifest import Item, ManifestError, read_manifest, write_manifest
from sonorant.data.segments import audio_files

from .conftest import run


def test_manifest_round_trip(tmp_path):
    items = [Item(id="a", path="a.wav", duration=1.5, sample_rate=16000, domain="speech", split="train", text="Hi.")]
    write_manifest(tmp_path / "m.jsonl", items)
    assert read_manifest(tmp_path / "m.jsonl") == items
    assert "caption" not in (tmp_path / "m.jsonl").read_text()  # absent optional fields are not written


@pytest.mark.parametrize("line, message", [
    ("{not json", "not JSON"),
    ('{"id": "a", "path": "a.wav", "duration": 1, "sample_rate": 16000, "domain": "speech"}', "missing split"),
    ('{"id": "a", "path": "a.wav", "duration": 1, "sample_rate": 16000, "domain": "noise", "split": "train"}',
     "domain"),
    ('{"id": "a", "path": "a.wav", "duration": -1, "sample_rate": 16000, "domain": "speech", "split": "train"}',
     "duration"),
])
def test_bad_manifest_line_names_its_number(tmp_path, line, message):
    good = '{"id": "a", "path": "a.wav", "duration": 1, "sample_rate": 16000, "domain": "speech", "split": "train"}'
    (tmp_path / "m.jsonl").write_text(good + "\n\n" + line + "\n")
    with pytest.raises(ManifestError, match=f"m.jsonl:3: .*{message}"):
        read_manifest(tmp_path / "m.jsonl")


def test_folder_of_audio_is_a_data_source(tmp_path):
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "x.flac", [0.1] * 1000, 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    assert [p.name for p in audio_files(tmp_path)] == ["x.flac"]


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("flite")),
                    reason="espeak-ng and flite are installed by the README's test command (as root)")
@pytest.mark.slow
def test_build_small_corpus_through_the_cli(tmp_path):
    out = tmp_path / "corpus"
    assert run(["data", "build", "--out", out, "--hours", "0.01", "--seed", "3", "--domain", "speech"]) == 0
    items = [it for it in read_manifest(out / "manifest.jsonl") if not it.speaker.startswith("hedgewars:")]
    assert sum(it.duration for it in items) >= 36
    assert {it.split for it in items} <= {"train", "valid", "test"}
    engines = {it.speaker.split(":")[0] for it in items}
    installed = {e for e, program in (("espeak-ng", "espeak-ng"), ("flite", "flite"), ("festival", "text2wave"))
                 if shutil.which(program)}
    assert engines == installed  # every engine installed takes its turn
    for it in items:
        info = sf.info(str(out / it.path))
        assert info.frames > 0 and abs(info.duration - it.duration) < 1e-3
        assert it.text and it.text[-1] in ".!?"
        assert (it.split == "test") == held_out(it.base_speaker)  # held-out voices only in test
    again = build_corpus(tmp_path / "again", hours=0.01, seed=3, domains=("speech",))
    first = [json.loads(line)["text"] for line in (out / "manifest.jsonl").read_text().splitlines()]
    second = [it.text for it in read_manifest(again.manifest)]
    assert first == second  # deterministic for a seed


def test_deps_reports_what_the_builder_uses(capsys):
    from sonorant.data.deps import package_status

    status = {s.package.name: s.installed for s in package_status()}
    assert {"espeak-ng", "flite", "fortunes-min"} <= set(status)
    assert status["espeak-ng"] == (shutil.which("espeak-ng") is not None)
    assert status["flite"] == (shutil.which("flite") is not None)
    assert run(["data", "deps"]) == 0
    assert "espeak-ng" in capsys.readouterr().out


def _peak_hz(path) -> float:
    import numpy as np

    wav, sr = sf.read(str(path))
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.argmax(spectrum) * sr / len(wav))


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox (installed by the test command)")
def test_voice_shift_moves_pitch_and_sets_tempo(tmp_path):
    import numpy as np

    from sonorant.data.pseudo import VoiceShift, apply_shift

    t = np.arange(32000) / 16000
    sf.write(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 200 * t), 16000)
    apply_shift(tmp_path / "a.wav", tmp_path / "octave.wav", VoiceShift(1.0, 1200, 1.0), 16000)
    assert abs(_peak_hz(tmp_path / "octave.wav") - 400) < 10
    assert abs(sf.info(str(tmp_path / "octave.wav")).duration - 2.0) < 0.05
    # A larger vocal tract (formants down) with the pitch and duration kept: speed, then pitch, then tempo.
    apply_shift(tmp_path / "a.wav", tmp_path / "formant.wav", VoiceShift(0.9, 0, 1.25), 16000)
    assert abs(_peak_hz(tmp_path / "formant.wav") - 200) < 10
    assert abs(sf.info(str(tmp_path / "formant.wav")).duration - 2.0 / 1.25) < 0.05


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox (installed by the test command)")
@pytest.mark.slow
def test_build_with_pseudo_speakers(tmp_path):
    result = build_corpus(tmp_path / "c", hours=0.03, seed=1, pseudo_speakers=2, domains=("speech",))
    assert any("pseudo-speaker check" in s for s in result.skipped)  # no speaker encoder given
    items = read_manifest(result.manifest)
    shifted = [it for it in items if "#" in it.speaker]
    assert shifted and len(shifted) < len(items)
    for it in items:
        assert it.speaker.split("#")[0] == it.base_speaker
        assert (it.split == "test") == held_out(it.base_speaker)  # whole base voices held out
    assert result.speakers > result.voices
    assert not list((tmp_path / "c" / "wav").glob(".*"))  # no intermediate files left


def test_pseudo_speakers_are_new_speakers_to_a_speaker_encoder(tmp_path):
    pytest.importorskip("resemblyzer")
    from sonorant.data.engines import Voice, synthesize
    from sonorant.data.pseudo import SHIFTS, apply_shift, speaker_similarity

    voice = Voice("espeak-ng", "en-us+m3")
    texts = ["The quick brown fox jumps over the lazy dog.", "How much wood would a woodchuck chuck?",
             "Numbers like 42 and dates like May 5th, 1999 are read aloud."]
    groups: dict = {voice.id: []}
    for i, text in enumerate(texts):
        base = tmp_path / f"{i}.wav"
        synthesize(voice, text, base)
        groups[voice.id].append(base)
        for shift in SHIFTS[:2]:
            path = tmp_path / f"{i}-{shift.id}.wav"
            apply_shift(base, path, shift, 16000)
            groups.setdefault(f"{voice.id}#{shift.id}", []).append(path)
    from sonorant.evaluation.speaker import SpeakerEncoder

    check = speaker_similarity(groups, voice.id, SpeakerEncoder().embed)
    assert check.distinct(0.85)
    off_diagonal = check.cosine[~np.eye(3, dtype=bool)]
    assert off_diagonal.max() < min(check.within.values())  # less alike than one speaker's own utterances


@pytest.mark.slow
def test_build_other_languages(tmp_path):
    from sonorant.data.sentences import fortune_sentences

    if len(fortune_sentences(language="de")) < 100:
        pytest.skip("needs fortunes-de (installed by the test command)")
    result = build_corpus(tmp_path / "c", hours=0.012, seed=2, languages=("en", "de"), domains=("speech",))
    items = read_manifest(result.manifest)
    seconds = {lang: sum(it.duration for it in items if it.language == lang) for lang in ("en", "de")}
    assert min(seconds.values()) > 10  # both languages get their share
    assert all(it.speaker.startswith("espeak-ng:de") for it in items if it.language == "de")
    assert any(ch in "äöüß" for it in items if it.language == "de" for ch in it.text) or len(items) < 10
    synthetic = [it.path[4:] for it in items if it.path.startswith("wav/")]
    # every clip kept and no other (each with the engine's word timings beside it, for a resumed build)
    assert sorted(p.name for p in (tmp_path / "c" / "wav").glob("*.wav")) == sorted(synthetic)
    assert all((tmp_path / "c" / "wav" / name).with_suffix(".words.json").is_file() for name in synthetic)
    assert run(["data", "build", "--out", tmp_path / "x", "--hours", "0.01", "--language", "xx"]) == 2


def test_merged_manifest_lists_every_corpus_with_its_splits(tmp_path, cli):
    for name, domain in (("speech", "speech"), ("music", "music")):
        root = tmp_path / name
        (root / "wav").mkdir(parents=True)
        sf.write(root / "wav" / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
        write_manifest(root / "manifest.jsonl", [
            Item(id=f"{name}-a", path="wav/a.wav", duration=0.1, sample_rate=16000, domain=domain, split="train"),
            Item(id=f"{name}-b", path="wav/a.wav", duration=0.1, sample_rate=16000, domain=domain, split="test")])
    merged = cli(["data", "merge", "speech/manifest.jsonl", "music/manifest.jsonl", "-o", "both/all.jsonl"])
    assert merged.returncode == 0, merged.stderr
    items = read_manifest(tmp_path / "both" / "all.jsonl")
    assert [(i.id, i.domain, i.split) for i in items] == [
        ("speech-a", "speech", "train"), ("speech-b", "speech", "test"),
        ("music-a", "music", "train"), ("music-b", "music", "test")]
    assert audio_files(tmp_path / "both" / "all.jsonl", "train") == [
        tmp_path / "both" / "../speech/wav/a.wav", tmp_path / "both" / "../music/wav/a.wav"]
    assert all(p.is_file() for p in audio_files(tmp_path / "both" / "all.jsonl", None))
    twice = cli(["data", "merge", "speech/manifest.jsonl", "speech/manifest.jsonl", "-o", "twice.jsonl"])
    assert twice.returncode == 2 and "'speech-a' is also in" in twice.stderr
    assert not (tmp_path / "twice.jsonl").exists()
