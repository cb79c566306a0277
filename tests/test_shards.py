"""Token shards: encode == codec.encode, resume, codec mismatch, memory-mapped reading, LM batches."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch

from sonorant.codec import Codec
from sonorant.core.audio import load_audio
from sonorant.data.encode import encode_manifest
from sonorant.data.manifest import Item, read_manifest, write_manifest
from sonorant.data.shards import ShardError, TokenShards
from sonorant.data.token_dataset import TokenDataset, random_length_batch

from .conftest import tone


@pytest.fixture
def speech_corpus(tmp_path):
    """Nine clips of three speakers (one of them long enough to take the streaming path)."""
    root = tmp_path / "corpus"
    (root / "wav").mkdir(parents=True)
    items = []
    for i in range(9):
        seconds = 0.3 + 0.1 * i
        sf.write(root / "wav" / f"{i}.wav", tone(seconds, 22050, seed=i), 22050)
        items.append(Item(id=f"u{i}", path=f"wav/{i}.wav", duration=seconds, sample_rate=22050, domain="speech",
                          split="test" if i == 8 else "train", text=f"sentence number {i}.", language="en",
                          speaker=f"spk{i % 3}"))
    write_manifest(root / "manifest.jsonl", items)
    return root


def test_shards_hold_the_codec_tokens_and_metadata(speech_corpus, tiny_codec, tmp_path):
    out = tmp_path / "shards"
    result = encode_manifest(speech_corpus / "manifest.jsonl", tiny_codec, out, batch_seconds=1.5, long_seconds=1.0)
    assert result.encoded == 9 and not result.skipped
    shards = TokenShards(out)
    assert len(shards) == 9
    shards.check_codec(tiny_codec.fingerprint)
    by_id = {m.id: i for i, m in enumerate(shards.meta)}
    for item in read_manifest(speech_corpus / "manifest.jsonl"):
        wav = load_audio(speech_corpus / item.path, tiny_codec.sample_rate)
        expected = tiny_codec.encode(wav[None])[0]  # one item alone, offline
        index = by_id[item.id]
        assert torch.equal(shards.codes(index), expected)
        meta = shards.meta[index]
        assert (meta.text, meta.speaker, meta.language, meta.split) == (item.text, item.speaker, "en", item.split)
    assert len(TokenShards(out, split="test")) == 1
    # Everything on disk is raw codes or JSON.
    assert {p.suffix for p in out.iterdir()} == {".json", ".codes", ".jsonl"}


def test_interrupted_encode_resumes_and_ranks_split_the_work(speech_corpus, tiny_codec, tmp_path):
    out = tmp_path / "shards"
    manifest = speech_corpus / "manifest.jsonl"
    first = encode_manifest(manifest, tiny_codec, out, rank=0, world=2, shard_frames=30)
    assert first.encoded == 5
    again = encode_manifest(manifest, tiny_codec, out, rank=0, world=2)
    assert (again.encoded, again.already_done) == (0, 5)
    second = encode_manifest(manifest, tiny_codec, out, rank=1, world=2)
    assert second.encoded == 4
    shards = TokenShards(out)
    assert sorted(m.id for m in shards.meta) == [f"u{i}" for i in range(9)]
    assert len({m.shard for m in shards.meta}) > 2  # rank 0 wrote several small shards


def test_shards_of_another_codec_are_refused(speech_corpus, tiny_codec, tiny_config, tmp_path):
    out = tmp_path / "shards"
    encode_manifest(speech_corpus / "manifest.jsonl", tiny_codec, out)
    torch.manual_seed(1)
    other = Codec(tiny_config).eval()
    with pytest.raises(ShardError, match="another codec"):
        encode_manifest(speech_corpus / "manifest.jsonl", other, out)
    with pytest.raises(ShardError, match="re-encode"):
        TokenShards(out).check_codec(other.fingerprint)


def test_damaged_shards_and_unreadable_audio(speech_corpus, tiny_codec, tmp_path):
    (speech_corpus / "wav" / "3.wav").write_bytes(b"not audio at all")
    out = tmp_path / "shards"
    result = encode_manifest(speech_corpus / "manifest.jsonl", tiny_codec, out)
    assert result.encoded == 8 and sum(result.skipped.values()) == 1
    codes = next(out.glob("*.codes"))
    codes.write_bytes(codes.read_bytes()[:-3])
    with pytest.raises(ShardError, match="whole number"):
        TokenShards(out)
    with pytest.raises(ShardError, match="no index.json"):
        TokenShards(tmp_path)
    (out / "index.json").write_text(json.dumps({"format_version": 99, "codec": {}}))
    with pytest.raises(ShardError, match="newer"):
        TokenShards(out)


def test_prompts_come_from_another_utterance_of_the_same_speaker(speech_corpus, tiny_codec, tmp_path):
    encode_manifest(speech_corpus / "manifest.jsonl", tiny_codec, tmp_path / "shards")
    shards = TokenShards(tmp_path / "shards", split="train")
    dataset = TokenDataset(shards, prompt_frames=(5, 8))
    g = torch.Generator().manual_seed(0)
    speaker = {m.id: m.speaker for m in shards.meta}
    for position in range(len(dataset)):
        example = dataset.example(position, g)
        assert example.prompt_id is not None and example.prompt_id != example.id
        assert speaker[example.prompt_id] == example.speaker
        assert 5 <= example.prompt.shape[-1] <= 8 or example.prompt.shape[-1] == shards.codes(
            [m.id for m in shards.meta].index(example.prompt_id)).shape[-1]
    assert len(TokenDataset(shards, max_item_frames=20)) < len(dataset)
    only = TokenDataset(shards, prompt_frames=(5, 8), speakers=("spk1",))
    assert len(only) == 3 and {shards.meta[i].speaker for i in only.indices} == {"spk1"}


def test_encode_keeps_only_the_speakers_asked_for(speech_corpus, tiny_codec, tmp_path):
    result = encode_manifest(speech_corpus / "manifest.jsonl", tiny_codec, tmp_path / "shards",
                             speakers=("spk0", "spk2"))
    assert result.encoded == 6
    assert {m.speaker for m in TokenShards(tmp_path / "shards").meta} == {"spk0", "spk2"}


def test_a_random_length_batch_fits_the_frame_budget_and_repeats_with_its_generator():
    lengths = [int(x) for x in torch.randint(10, 200, (300,), generator=torch.Generator().manual_seed(0))]
    order = sorted(range(300), key=lengths.__getitem__)
    for seed in range(20):
        batch = random_length_batch(order, lengths, torch.Generator().manual_seed(seed), 1000)
        assert len(set(batch)) == len(batch) >= 1
        assert max(lengths[i] for i in batch) * len(batch) <= 1000 or len(batch) == 1
        assert batch == random_length_batch(order, lengths, torch.Generator().manual_seed(seed), 1000)
    assert len(random_length_batch(order, lengths, torch.Generator(), 0, max_items=7)) == 7
    assert len(random_length_batch(order, [5000] * 300, torch.Generator(), 1000, min_items=2)) == 2
