"""The phonetic first codebook: frame labels from the aligner's durations, the codec's phoneme head trained
on them, its classes exported with the codec."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from sonorant.codec import Codec
from sonorant.core.audio import load_audio
from sonorant.core.errors import SonorantError
from sonorant.data.frame_labels import IGNORE, frame_labels
from sonorant.text.frontend import TextFrontend
from sonorant.training.recipe import load_recipe_dict
from sonorant.training.run import export_run, train_codec

IPA = "həloʊ wɜːld"


def _align(corpus, shards, ids=("0", "1", "2", "3", "5")):
    """Alignments as `data align` writes them: every token of IPA gets an equal share of the 75 frames."""
    tokens = len(TextFrontend.build([IPA], ["en-us"]).utterance_ids(IPA, "en-us"))
    durations = [75 // tokens] * tokens
    durations[-1] += 75 - sum(durations)
    folder = shards / "alignments"
    folder.mkdir(parents=True)
    (folder / "index.json").write_text(json.dumps({"format_version": 1}))
    rows = [{"id": i, "ipa": IPA, "durations": durations, "cost": 1.0} for i in ids]
    (folder / "part-r000-00000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return durations


def test_labels_follow_the_durations(corpus, tmp_path):
    durations = _align(corpus, tmp_path / "shards")
    labels = frame_labels(corpus, tmp_path / "shards")
    ids = labels.frontend.utterance_ids(IPA, "en-us")
    expected = torch.repeat_interleave(torch.tensor(ids), torch.tensor(durations))
    wav = corpus / "wav" / "0.wav"
    assert torch.equal(labels.frames[wav], expected)
    crop = labels.crop(wav, 0.5, 50, 50.0)  # frames 25..74, then past the end
    assert torch.equal(crop[:50], expected[25:75])
    tail = labels.crop(wav, 1.0, 50, 50.0)
    assert torch.equal(tail[:25], expected[50:]) and (tail[25:] == IGNORE).all()
    assert (labels.crop(corpus / "wav" / "4.wav", 0.0, 10, 50.0) == IGNORE).all()  # not aligned


@pytest.mark.slow
def test_codec_with_a_phonetic_head_trains_and_exports(corpus, tmp_path):
    _align(corpus, tmp_path / "shards")
    data = load_recipe_dict("codec-tiny")
    data["model"]["phonetic_classes"] = 64
    data["train"]["max_steps"] = 2
    config = tmp_path / "phonetic.yaml"
    config.write_text(yaml.safe_dump(data))
    result = train_codec(str(config), corpus, tmp_path / "run", alignments=tmp_path / "shards", quiet=True)
    assert result.metrics["phonetic"] > 0 and 0 <= result.metrics["phonetic_accuracy"] <= 1
    release = export_run(tmp_path / "run", tmp_path / "release")
    frontend = TextFrontend.load(release / "frontend.json")
    assert frontend.utterance_ids(IPA, "en-us") == frame_labels(corpus, tmp_path / "shards").frontend.utterance_ids(
        IPA, "en-us")
    codec = Codec.from_pretrained(release)
    codes = codec.encode(torch.zeros(1, 1, 3200))
    classes = codec.phonemes(codes)
    assert classes.shape == (1, 10) and int(classes.max()) < 64
    with pytest.raises(SonorantError, match="--alignments"):
        train_codec(str(config), corpus, tmp_path / "run2", quiet=True)

    # A new decoder over this codec's tokens (head frozen too): no labels needed, the head and its classes
    # come along unchanged, the token space stays the same.
    data["train"]["frozen"] = ["encoder", "quantizer", "phonetic"]
    config.write_text(yaml.safe_dump(data))
    train_codec(str(config), corpus, tmp_path / "decoder", init_from=release, quiet=True)
    redecoded = Codec.from_pretrained(export_run(tmp_path / "decoder", tmp_path / "redecoded"))
    assert (tmp_path / "redecoded" / "frontend.json").read_text() == (release / "frontend.json").read_text()
    assert redecoded.fingerprint == codec.fingerprint
    assert torch.equal(redecoded.phonetic.weight, codec.phonetic.weight)
    assert any(not torch.equal(a, b) for a, b in zip(redecoded.decoder.parameters(), codec.decoder.parameters(),
                                                     strict=True))

    # eval codec --alignments: the head's frame accuracy from codebook 0, in the release's classes.
    from sonorant.evaluation.codec_eval import evaluate_codec, phoneme_labels

    labels = phoneme_labels(codec, release, corpus / "manifest.jsonl", tmp_path / "shards")
    wav = load_audio(corpus / "wav" / "5.wav", codec.sample_rate)[0]  # the valid item: aligned
    guess = codec.phonemes(codec.encode(wav[None, None]))[0]
    truth = labels.frames[corpus / "wav" / "5.wav"]
    expected = float((guess[:75] == truth[:75]).float().mean())
    score = evaluate_codec(codec, corpus / "manifest.jsonl", [1, 2], split="valid", labels=labels)
    assert [s.phoneme_accuracy for s in score] == [pytest.approx(expected)] * 2
    plain = Codec.from_pretrained(release)
    plain.phonetic = None
    with pytest.raises(SonorantError, match="no phonetic head"):
        phoneme_labels(plain, release, corpus / "manifest.jsonl", tmp_path / "shards")
