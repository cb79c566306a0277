"""Caption adherence: the estimators hear what a caption states, the tagger round-trips through JSON, the
held-out captions avoid the training ones, and the baselines are what they claim to be."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest

from sonorant.core.errors import SonorantError
from sonorant.data.manifest import Item
from sonorant.data.music import (
    NOTES,
    caption_facts,
    compose_note,
    draw_note,
    draw_piece,
    note_name,
    piece_facts,
    soundfont,
)
from sonorant.evaluation.generate_eval import derangement, frechet_distance, held_out_notes, held_out_pieces
from sonorant.evaluation.music_attributes import (
    Key,
    estimate_key,
    estimate_pitch,
    estimate_tempo,
    key_score,
    tempo_agrees,
)
from sonorant.evaluation.music_tagger import MusicTagger, fit_head

RATE = 16000
can_render = pytest.mark.skipif(shutil.which("fluidsynth") is None or soundfont() is None,
                                reason="needs fluidsynth and a GM soundfont (installed by the test command)")


def test_a_caption_reads_back_as_the_facts_of_its_piece():
    for seed in range(300):
        piece = draw_piece(random.Random(seed))
        assert caption_facts(piece.caption) == piece_facts(piece), piece.caption
    assert caption_facts("rain on a roof") is None
    assert caption_facts("battle music epic, game music from Some Game") is None
    assert note_name(60) == "C4" and note_name(69) == "A4"


def test_a_single_note_is_one_note_of_its_instrument():
    note = draw_note(random.Random(4))
    midi = compose_note(note)
    notes = [m for t in midi.tracks for m in t if m.type == "note_on" and m.velocity > 0]
    assert [m.note for m in notes] == [note.pitch] and note.instrument in note.caption
    assert note.caption.endswith(note_name(note.pitch)) and abs(midi.length - note.held) < 0.01


def clicks(bpm: float, seconds: float = 8.0) -> np.ndarray:
    audio = np.zeros(int(seconds * RATE), dtype=np.float32)
    burst = np.random.default_rng(0).standard_normal(400).astype(np.float32) * np.hanning(400)
    for start in np.arange(0, seconds - 0.1, 60.0 / bpm):
        audio[int(start * RATE): int(start * RATE) + 400] += burst
    return audio


@pytest.mark.parametrize("bpm", [72, 100, 132])
def test_tempo_of_a_click_track(bpm):
    assert tempo_agrees(estimate_tempo(clicks(bpm), RATE), bpm)


def chords(tonic: int, mode: str, seconds: float = 6.0) -> np.ndarray:
    """I, IV, V, I of the key (minor: i, iv, v, i), each triad of harmonic tones for a quarter of the clip."""
    scale = (0, 2, 4, 5, 7, 9, 11) if mode == "major" else (0, 2, 3, 5, 7, 8, 10)
    t = np.arange(int(seconds / 4 * RATE)) / RATE
    parts = []
    for degree in (0, 3, 4, 0):
        notes = [48 + tonic + scale[(degree + s) % 7] + 12 * ((degree + s) // 7) for s in (0, 2, 4)]
        tone = sum(np.sin(2 * np.pi * 440 * 2 ** ((n - 69) / 12) * h * t) / h for n in notes for h in (1, 2, 3))
        parts.append(tone * np.hanning(t.size) ** 0.2)
    return (0.1 * np.concatenate(parts)).astype(np.float32)


@pytest.mark.parametrize("tonic, mode", [(0, "major"), (7, "major"), (9, "minor"), (2, "minor")])
def test_key_of_a_cadence(tonic, mode):
    assert estimate_key(chords(tonic, mode), RATE) == Key(tonic, mode), f"{NOTES[tonic]} {mode}"


def test_key_scores_follow_mirex():
    c_major = Key(0, "major")
    assert key_score(c_major, c_major) == 1.0
    assert key_score(Key(7, "major"), c_major) == key_score(Key(5, "major"), c_major) == 0.5
    assert key_score(Key(9, "minor"), c_major) == 0.3 and key_score(Key(0, "minor"), c_major) == 0.2
    assert key_score(Key(1, "major"), c_major) == 0.0
    assert key_score(Key(0, "major"), Key(9, "minor")) == 0.3  # A minor's relative is C major


def test_pitch_of_a_tone():
    t = np.arange(RATE) / RATE
    assert abs(estimate_pitch((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), RATE) - 69) < 0.2
    assert estimate_pitch(np.zeros(RATE, dtype=np.float32), RATE) is None


@can_render
def test_a_rendered_note_has_the_pitch_its_caption_states():
    from sonorant.data.music import Note
    from sonorant.evaluation.generate_eval import render_clip

    note = Note("piano", 64, "medium", 1.0)
    assert note.caption == "a medium piano note, E4"
    assert abs(estimate_pitch(render_clip(note), RATE) - 64) <= 0.5


def test_tagger_heads_learn_and_survive_json(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (60, 5)), rng.normal(3, 1, (60, 5)), rng.normal(-3, 1, (60, 5))])
    labels = ["piano"] * 60 + ["brass"] * 60 + ["organ"] * 60
    head, accuracy = fit_head(x, labels)
    drums, _ = fit_head(x[:120], ["no"] * 60 + ["yes"] * 60)
    assert accuracy > 0.9 and head.predict(np.full(5, 3.0)) == ["brass"] and drums.predict(np.full(5, 3.0)) == ["yes"]
    tagger = MusicTagger({"family": head, "drums": drums}, {"family": accuracy})
    loaded = MusicTagger.load(tagger.save(tmp_path / "tagger.json"))
    assert [loaded.tag(row) for row in x[::7]] == [tagger.tag(row) for row in x[::7]]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SonorantError, match="not a tagger"):
        MusicTagger.load(tmp_path / "bad.json")
    with pytest.raises(SonorantError, match="two classes"):
        fit_head(x, ["piano"] * len(x))


def test_held_out_captions_share_no_facts_with_training_captions():
    train = [draw_piece(random.Random(s), seconds=(8.0, 8.0)) for s in range(200)]
    notes = [draw_note(random.Random(s)) for s in range(200)]
    items = [Item(id=f"g{i}", path=f"{i}.flac", duration=8.0, sample_rate=RATE, domain="music", split="train",
                  caption=c.caption) for i, c in enumerate(train + notes)]
    pieces = held_out_pieces(items, 20, 8.0, seed=0)
    seen = {piece_facts(p) for p in train}
    assert len(pieces) == 20 and not {piece_facts(p) for p in pieces} & seen
    assert len({piece_facts(p) for p in pieces}) == 20  # and none twice
    assert all(6.0 <= p.seconds <= 10.0 for p in pieces)  # whole bars of about 8 s
    assert not {n.caption for n in held_out_notes(items, 10, seed=0)} & {n.caption for n in notes}


def test_shuffled_baseline_judges_every_clip_by_another_caption_and_frechet_is_a_distance():
    for n in (2, 3, 10, 31):
        order = derangement(n)
        assert sorted(order) == list(range(n)) and all(i != j for i, j in enumerate(order))
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, (40, 4)), rng.normal(0, 1, (40, 4))
    assert abs(frechet_distance(a, a)) < 1e-6
    assert frechet_distance(a, b + 2.0) > frechet_distance(a, b) + 10


class FakeCaptions:
    """A caption encoder without weights: a fixed random vector per caption length."""

    name, dim = "fake", 8

    def encode(self, captions: list[str]):
        import torch

        return torch.stack([torch.randn(self.dim, generator=torch.Generator().manual_seed(len(c))) for c in captions])


@pytest.mark.slow
@can_render
def test_eval_generate_reports_adherence_beside_both_baselines(tmp_path, cli, monkeypatch):
    import json

    import soundfile as sf
    import torch

    from sonorant.data.manifest import write_manifest
    from sonorant.lm import HierarchicalLM, LMConfig
    from sonorant.text import captions

    from .conftest import make_bundle, tone

    monkeypatch.setitem(captions.ENCODERS, "fake", FakeCaptions)
    bundle = make_bundle(tmp_path / "bundle")
    plain = make_bundle(tmp_path / "plain")
    missing = cli(["eval", "generate", "--manifest", "m.jsonl", "--report", "r0", "--model", bundle])
    assert missing.returncode == 2 and "no such manifest" in missing.stderr
    torch.manual_seed(0)
    lm = HierarchicalLM(LMConfig(num_codebooks=4, codebook_size=1024, dim=32, num_layers=1, num_heads=2, local_dim=16,
                                 local_layers=1, local_heads=2, codebook_weights=(1.0, 1.0, 1.0, 1.0), caption_dim=8,
                                 caption_encoder="fake"))
    fingerprint = json.loads((bundle / "tts" / "config.json").read_text())["extra"]["codec"]["fingerprint"]
    lm.save_pretrained(bundle / "tts", extra={"codec": {"fingerprint": fingerprint}})
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    items = []
    for i in range(15):  # stand-ins of the three domains (the domain head), the last ones held out
        domain = ("speech", "music", "sound")[i % 3]
        sf.write(corpus / f"{i}.wav", tone(1.0 + 0.1 * i, RATE, seed=i) * (0.2 if domain == "sound" else 1.0), RATE)
        caption = None if domain == "speech" else f"{domain} {i}"
        items.append(Item(id=f"c{i}", path=f"{i}.wav", duration=1.0 + 0.1 * i, sample_rate=RATE, domain=domain,
                          split="test" if i >= 12 else "train", caption=caption))
    write_manifest(corpus / "manifest.jsonl", items)
    refused = cli(["eval", "generate", "--manifest", corpus / "manifest.jsonl", "--report", "r0", "--model", plain])
    assert refused.returncode == 2 and "not trained with captions" in refused.stderr
    result = cli(["eval", "generate", "--manifest", corpus / "manifest.jsonl", "--report", "rep", "--model", bundle,
                  "--pieces", "3", "--notes", "2", "--sounds", "1", "--seconds", "2", "--tagger-renders", "20",
                  "--tagger-per-domain", "10"])
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    systems = [a["system"] for a in metrics["agreements"]]
    assert systems == ["ground-truth renders (ceiling)", "renders through the codec (its ceiling)", "generated",
                       "generated, captions shuffled (floor)"]
    ceiling, codec, generated, floor = metrics["agreements"]
    assert ceiling["pieces"] == codec["pieces"] == generated["pieces"] == 3 and ceiling["notes"] == codec["notes"] == 2
    assert ceiling["pitch"] == 1.0  # a rendered note has the pitch of its caption
    assert all(0.0 <= a[k] <= 1.0 for a in metrics["agreements"]
               for k in ("tempo", "key", "drums", "drums_heard", "family"))
    assert floor["drums_heard"] == generated["drums_heard"]  # the same clips, judged against other captions
    assert set(metrics["tagger_accuracy"]) == {"family", "drums", "domain"}
    assert metrics["domains"] == ["music", "sound", "speech"] and metrics["sounds"]["captions"] == 1
    assert metrics["frechet"]["generated vs renders"] > 0
    assert len(list((tmp_path / "rep" / "wav").glob("*.wav"))) == 3 + 2 + 1
    assert "tempo within 10 %" in (tmp_path / "rep" / "report.md").read_text()
    # The estimators' own check, no model, with the saved tagger (no renders): the ground truth scored as if
    # generated equals the ceiling.
    # With --codec, the renders through that codec too: the ceiling of any LM that speaks through it.
    check = cli(["eval", "generate", "--manifest", corpus / "manifest.jsonl", "--report", "rep3", "--self-check",
                 "--pieces", "3", "--notes", "2", "--sounds", "1", "--seconds", "2",
                 "--tagger", tmp_path / "rep" / "tagger.json", "--codec", bundle / "codec", "--codebooks", "2"])
    assert check.returncode == 0, check.stderr
    assert json.loads((tmp_path / "rep3" / "tagger.json").read_text()) == json.loads(
        (tmp_path / "rep" / "tagger.json").read_text())
    ceiling, through, same, _ = json.loads((tmp_path / "rep3" / "metrics.json").read_text())["agreements"]
    assert through["system"] == "renders through the codec (its ceiling)" and through["pieces"] == 3
    assert {k: v for k, v in same.items() if k != "system"} == {k: v for k, v in ceiling.items() if k != "system"}
    misplaced = cli(["eval", "generate", "--manifest", corpus / "manifest.jsonl", "--report", "rep4", "--model", bundle,
                     "--codec", bundle / "codec"])
    assert misplaced.returncode == 2 and "--self-check" in misplaced.stderr
