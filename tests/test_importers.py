"""Corpus importers on tiny replicas of the real layouts, irregularities included, and `sonorant data import`."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import soundfile as sf

from sonorant.data.importers import (
    CorpusError,
    Domain,
    assign_splits,
    folder,
    import_corpus,
    libritts,
    ljspeech,
    split_of,
    vctk,
)
from sonorant.data.manifest import DOMAINS, Item, read_manifest, write_manifest

from .conftest import run

SECONDS = 0.2


def _audio(path: Path, rate: int, seconds: float = SECONDS, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    subtype = "PCM_16" if path.suffix in (".wav", ".flac") else None
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), rate, subtype=subtype, format=fmt)
    return path


def _text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def _check_paths(items: list[Item], manifest_dir: Path) -> None:
    manifest_dir.mkdir(parents=True, exist_ok=True)  # where the manifest would be written
    for it in items:
        audio = manifest_dir / it.path
        assert audio.is_file(), it.path
        assert it.duration == pytest.approx(sf.info(str(audio)).duration, abs=1e-3)


def _by_id(items: list[Item]) -> dict[str, Item]:
    return {it.id: it for it in items}


@pytest.fixture
def libritts_root(tmp_path) -> Path:
    root = tmp_path / "LibriTTS"
    for subset, speaker, chapter, n in [("train-clean-100", "19", "198", 2), ("train-clean-100", "26", "495", 1),
                                        ("dev-clean", "84", "121123", 2)]:
        for i in range(n):
            wav = _audio(root / subset / speaker / chapter / f"{speaker}_{chapter}_000000_00000{i}.wav", 24000)
            _text(wav.with_suffix(".original.txt"), f"Original {speaker} {i}.")
            if i == 0:  # the second utterance of each chapter has only the original transcript
                _text(wav.with_suffix(".normalized.txt"), f"Normalized {speaker} {i}.")
    _audio(root / "train-clean-100" / "19" / "198" / "stray.wav", 24000)  # not an utterance name: ignored
    return root


def test_libritts_root_and_single_subset(libritts_root, tmp_path):
    manifest_dir = tmp_path / "manifests"
    result = libritts(libritts_root, manifest_dir)
    items = _by_id(result.items)
    assert len(items) == 5 and result.speakers == 3 and result.skipped == {}
    assert items["19_198_000000_000000"].text == "Normalized 19 0."
    assert items["19_198_000000_000001"].text == "Original 19 1."
    assert {it.speaker for it in result.items} == {"19", "26", "84"}
    assert all(it.language == "en" and it.sample_rate == 24000 and it.domain == "speech" for it in result.items)
    assert result.hours == pytest.approx(5 * SECONDS / 3600, rel=1e-3)
    _check_paths(result.items, manifest_dir)
    subset = libritts(libritts_root / "dev-clean")
    assert sorted(it.id for it in subset.items) == ["84_121123_000000_000000", "84_121123_000000_000001"]
    _check_paths(subset.items, libritts_root / "dev-clean")  # default: paths relative to src


def test_ljspeech_uses_normalized_text_and_skips_missing_wavs(tmp_path):
    root = tmp_path / "LJSpeech-1.1"
    rows = ['LJ001-0001|Printing, in 1 sense|Printing, in one sense',
            'LJ001-0002|"Quoted," he said|',  # empty normalized column: fall back to the raw text, quotes literal
            'LJ001-0003|Only two columns',
            'LJ001-0004|No wav for this row|No wav for this row']
    _text(root / "metadata.csv", "\n".join(rows))
    for name in ("LJ001-0001", "LJ001-0002", "LJ001-0003"):
        _audio(root / "wavs" / f"{name}.wav", 22050)
    result = ljspeech(root)
    items = _by_id(result.items)
    assert sorted(items) == ["LJ001-0001", "LJ001-0002", "LJ001-0003"]
    assert items["LJ001-0001"].text == "Printing, in one sense"
    assert items["LJ001-0002"].text == '"Quoted," he said'
    assert items["LJ001-0003"].text == "Only two columns"
    assert result.skipped == {"missing audio": 1} and result.speakers == 1
    assert {it.speaker for it in result.items} == {"LJ"} and items["LJ001-0001"].sample_rate == 22050
    _check_paths(result.items, root)


def _vctk_092(root: Path) -> Path:
    for speaker in ("p225", "p226", "p315"):
        for i in (1, 2):
            utt = f"{speaker}_00{i}"
            _audio(root / "wav48_silence_trimmed" / speaker / f"{utt}_mic1.flac", 48000)
            if not (speaker == "p226" and i == 2):
                _audio(root / "wav48_silence_trimmed" / speaker / f"{utt}_mic2.flac", 48000, seconds=0.1)
            if speaker != "p315":  # p315 has no transcripts at all
                _text(root / "txt" / speaker / f"{utt}.txt", f"Please call {speaker} {i}.")
    _text(root / "txt" / "p225" / "p225_003.txt", "A transcript whose audio is missing.")
    return root


def test_vctk_092_mic1_only_and_untranscribed_speaker(tmp_path):
    root = _vctk_092(tmp_path / "VCTK-Corpus-0.92")
    manifest_dir = tmp_path / "out"
    result = vctk(root, manifest_dir)
    items = _by_id(result.items)
    assert sorted(items) == [f"{s}_00{i}" for s in ("p225", "p226", "p315") for i in (1, 2)]
    assert all(it.path.endswith("_mic1.flac") for it in result.items)
    assert items["p225_001"].text == "Please call p225 1." and items["p225_001"].speaker == "p225"
    assert items["p315_001"].text is None and result.untranscribed == 2
    assert result.skipped == {"transcript without audio": 1} and result.speakers == 3
    assert all(it.duration == pytest.approx(SECONDS, abs=1e-3) for it in result.items)  # mic1, not the mic2 length
    _check_paths(result.items, manifest_dir)


def test_vctk_080_wav48(tmp_path):
    root = tmp_path / "VCTK-Corpus"
    for speaker in ("p225", "p226"):
        _audio(root / "wav48" / speaker / f"{speaker}_001.wav", 48000)
        _text(root / "txt" / speaker / f"{speaker}_001.txt", f"Hello from {speaker}.")
    result = vctk(root)
    assert [(it.id, it.text, it.sample_rate) for it in result.items] == [
        ("p225_001", "Hello from p225.", 48000), ("p226_001", "Hello from p226.", 48000)]


def test_folder_texts_speakers_and_unreadable_audio(tmp_path):
    root = tmp_path / "mine"
    _audio(root / "intro.wav", 16000)
    _audio(root / "alice" / "a1.flac", 44100)
    _audio(root / "alice" / "a2.ogg", 44100, fmt="OGG")
    _audio(root / "bob" / "b1.mp3", 44100, seconds=0.5, fmt="MP3")
    _audio(root / "bob" / "b2.wav", 16000)
    _text(root / "bob" / "b2.txt", "From a text file.")
    (root / "bob" / "broken.wav").write_bytes(np.random.default_rng(0).bytes(2000))
    _text(root / "metadata.csv", "intro|Bare name.\nalice/a1.flac|raw|Relative path with extension.\n"
                                 "alice/a2|Relative path without extension.\nb1.mp3|Bare name with extension.")
    result = folder(root, domain="music")
    items = _by_id(result.items)
    assert sorted(items) == ["alice/a1", "alice/a2", "bob/b1", "bob/b2", "intro"]
    assert items["intro"].text == "Bare name." and items["intro"].speaker is None
    assert items["alice/a1"].text == "Relative path with extension." and items["alice/a1"].speaker == "alice"
    assert items["alice/a2"].text == "Relative path without extension."
    assert items["bob/b1"].text == "Bare name with extension." and items["bob/b1"].duration > 0.4
    assert items["bob/b2"].text == "From a text file."
    assert result.skipped == {"unreadable audio": 1} and result.speakers == 2
    assert {it.domain for it in result.items} == {"music"} and all(it.language is None for it in result.items)
    _check_paths(result.items, root)


def test_splits_are_deterministic_and_by_speaker():
    items = [Item(id=f"s{s}_{u}", path=f"{s}/{u}.wav", duration=1.0, sample_rate=16000, domain="speech",
                  split="train", speaker=f"s{s}") for s in range(400) for u in range(3)]
    first, second = assign_splits(items), assign_splits(list(reversed(items)))
    assert _by_id(first) == _by_id(second)
    splits_of_speaker = defaultdict(set)
    for it in first:
        splits_of_speaker[it.speaker].add(it.split)
    assert all(len(s) == 1 for s in splits_of_speaker.values())  # no speaker in two splits
    shares = {name: sum(s == {name} for s in splits_of_speaker.values()) / 400 for name in ("valid", "test")}
    assert 0.02 < shares["valid"] < 0.09 and 0.02 < shares["test"] < 0.09
    assert all(it.split == split_of(it.speaker) for it in first)


def test_few_speakers_split_by_item_and_train_is_never_empty():
    items = [Item(id=f"LJ{i:04d}", path=f"{i}.wav", duration=1.0, sample_rate=22050, domain="speech",
                  split="train", speaker="LJ") for i in range(1000)]
    splits = [it.split for it in assign_splits(items)]
    assert 20 < splits.count("valid") < 90 and 20 < splits.count("test") < 90
    held_out = next(f"u{i}" for i in range(1000) if split_of(f"u{i}") != "train")
    lone = Item(id=held_out, path="u.wav", duration=1.0, sample_rate=16000, domain="speech", split="test")
    assert [it.split for it in assign_splits([lone])] == ["train"]
    assert assign_splits([]) == []


def _corrupt_only(tmp_path: Path) -> Path:
    (tmp_path / "bad.wav").write_bytes(b"RIFF nonsense")
    return tmp_path


@pytest.mark.parametrize("kind, make, message", [
    ("libritts", lambda p: p / "nowhere", "no such folder"),
    ("libritts", lambda p: p, "no usable LibriTTS utterances"),
    ("ljspeech", lambda p: p, "no metadata.csv"),
    ("vctk", lambda p: p, "no wav48_silence_trimmed or wav48"),
    ("vctk", lambda p: (p / "wav48").mkdir() or p, "no txt"),
    ("folder", lambda p: p, "no audio files"),
    ("folder", _corrupt_only, r"no usable audio files \(1 unreadable audio\)"),
    ("timit", lambda p: p, "unknown corpus kind"),
])
def test_missing_folder_or_wrong_layout_is_a_clear_error(tmp_path, kind, make, message):
    (tmp_path / "src").mkdir()
    src = make(tmp_path / "src")
    with pytest.raises(CorpusError, match=message):
        import_corpus(kind, src, tmp_path / "m.jsonl")
    assert not (tmp_path / "m.jsonl").exists()


def test_domain_is_for_folder_imports_only(libritts_root, tmp_path):
    assert get_args(Domain) == DOMAINS
    with pytest.raises(CorpusError, match="speech corpus"):
        import_corpus("libritts", libritts_root, tmp_path / "m.jsonl", domain="music")


def test_cli_import_writes_a_readable_manifest(tmp_path, capsys):
    root = _vctk_092(tmp_path / "vctk")
    manifest = tmp_path / "manifests" / "vctk.jsonl"
    assert run(["data", "import", "vctk", root, "-o", manifest]) == 0
    items = read_manifest(manifest)
    assert len(items) == 6
    _check_paths(items, manifest.parent)
    err = capsys.readouterr().err.strip()
    assert err == f"{manifest}: 6 items, 3 speakers, 0.00 h, 2 without text; skipped: 1 transcript without audio"


def test_cli_missing_folder_exits_2_with_one_line(tmp_path, capsys):
    assert run(["data", "import", "ljspeech", tmp_path / "nowhere", "-o", tmp_path / "m.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sonorant: error:") and "no such folder" in err


def test_hedgewars_english_packs_become_held_out_voices_with_joined_prompts(tmp_path):
    src = tmp_path / "voices"
    lines = ["Amazing", "Comeonthen", "Enemydown", "Hello", "Illgetyou", "Takecover", "Victory", "Yessir", "Ow1"]
    for pack in ("British", "Pirate", "Default_es"):
        (src / pack).mkdir(parents=True)
        for i, name in enumerate(lines):
            sf.write(src / pack / f"{name}.ogg", 0.3 * np.sin(np.arange(44100) * (0.02 + 0.002 * i)), 44100)
    (src / "Pirate" / "Hello.ogg").write_bytes(b"not audio")
    result = import_corpus("hedgewars", src, tmp_path / "out" / "manifest.jsonl")
    items = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert {i.speaker for i in items} == {"hedgewars:British", "hedgewars:Pirate"}  # Default_es is not English
    assert all(i.split == "test" and i.language == "en" for i in items)
    assert result.skipped == {"line without words": 2, "unreadable audio": 1}
    by_id = {i.id: i for i in items}
    assert by_id["British/Comeonthen"].text == "Come on then!" and "Pirate/Hello" not in by_id
    joined = [i for i in items if "joined" in i.id]
    assert joined and all(4.0 <= i.duration <= 9.0 for i in joined)
    for item in items:
        assert (tmp_path / "out" / item.path).is_file()
    first = [i for i in joined if i.speaker == "hedgewars:British"][0]
    assert len(first.text.split("!")) - 1 == round((first.duration + 0.25) / 1.25)  # one line per 1 s + gap


def test_tts_cases_pair_each_target_with_another_utterance_of_its_speaker(tmp_path):
    from sonorant.evaluation.tts_eval import cases_from_manifest

    items = [Item(id=f"{s}{i}", path=f"{s}{i}.wav", duration=d, sample_rate=16000, domain="speech", split="test",
                  text=f"text {s}{i}", speaker=s) for s in "ab" for i, d in enumerate([1.0, 1.2, 5.0, 6.0])]
    items.append(Item(id="c0", path="c0.wav", duration=5.0, sample_rate=16000, domain="speech", split="test",
                      text="alone", speaker="c"))
    write_manifest(tmp_path / "m.jsonl", items)
    cases = cases_from_manifest(tmp_path / "m.jsonl", max_cases=10)
    assert len(cases) == 4 and {c.speaker for c in cases} == {"a", "b"}  # c has no second utterance
    for case in cases:
        assert case.voice_wav != case.reference_wav and Path(case.voice_wav).name.startswith(case.speaker)
        assert case.text.endswith(("2", "3"))  # the long clips are the targets; ASR fails on 1 s lines
        assert case.voice_text and case.voice_text != case.text
