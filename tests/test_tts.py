"""The TTS pipeline on a tiny bundle (shipped codec + a small untrained LM): voices, prompts, streaming."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from sonorant.core.errors import AudioError, ModelError, SonorantError
from sonorant.lm import Conditioning, Generation, HierarchicalLM, LMBatch, LMConfig, SamplingConfig
from sonorant.text import TextError
from sonorant.tts import Synthesizer, VoiceError, list_voices, load_voice, remove_voice, save_voice
from sonorant.tts.prompt import TARGET_LUFS, prepare_prompt

from .conftest import EXAMPLE_WAV, REPO, SENTENCES, make_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def synth(bundle) -> Synthesizer:
    return Synthesizer.from_pretrained(bundle)


@pytest.mark.slow
def test_stream_yields_after_a_few_frames_and_equals_synthesize(synth):
    chunks = list(synth.stream("The quick brown fox.", seed=3, first_frames=2, chunk_frames=5))
    assert chunks[0].frames == 2  # the first audio left after two LM frames, not after all of them
    assert len(chunks) > 3 and chunks[-1].frames > 10
    # two frames' audio, less the decoder's lag (one hop of the istft decoder, which the last chunk returns)
    assert chunks[0].samples.numel() == 2 * synth.codec.hop_length - synth.codec.config.decoder_lag
    audio = synth.synthesize("The quick brown fox.", seed=3)
    assert audio.info.first_audio_s is not None and audio.info.first_audio_s <= audio.info.synthesis_s
    torch.testing.assert_close(torch.cat([c.samples for c in chunks]), audio.samples)
    assert not torch.equal(synth.synthesize("The quick brown fox.", seed=4).samples, audio.samples)


def test_modes_follow_the_transcript(synth):
    assert synth.synthesize("Hello.", seed=0).info.mode == "transcript"  # the bundle's default voice has a .txt
    assert synth.synthesize("Hello.", voice=str(EXAMPLE_WAV), seed=0).info.mode == "reference"
    transcript = EXAMPLE_WAV.with_suffix(".txt").read_text().strip()
    with_text = synth.synthesize("Hello.", voice=str(EXAMPLE_WAV), voice_text=transcript, seed=0)
    assert with_text.info.mode == "transcript"
    # A transcript that is not what the prompt says: the aligner refuses it and the prompt is a reference.
    wrong = synth.synthesize("Hello.", voice=str(EXAMPLE_WAV), voice_text="The weather in Paris was lovely.", seed=0)
    assert wrong.info.mode == "reference" and any("does not match" in n for n in wrong.info.notes)


@pytest.mark.slow
def test_word_timestamps_follow_the_pointer_and_speed_shortens(synth):
    slow = synth.synthesize("Hello there, my friend.", seed=0, speed=0.5)
    fast = synth.synthesize("Hello there, my friend.", seed=0, speed=2.0)
    assert slow.seconds > fast.seconds
    words = slow.info.words
    assert [w.label for w in words] == ["Hello", "there", "my", "friend"]
    assert all(a.end <= b.start + 1e-6 for a, b in zip(words, words[1:], strict=False))
    assert 0 <= words[0].start and words[-1].end <= slow.seconds + 1e-6
    streamed = [w.label for chunk in synth.stream("Hello there, my friend.", seed=0) for w in chunk.words]
    assert streamed == ["Hello", "there", "my", "friend"]


@pytest.mark.slow
def test_long_text_is_spoken_chunk_by_chunk_with_pauses_and_capped(synth):
    text = " ".join(SENTENCES)
    audio = synth.synthesize(text, voice=str(EXAMPLE_WAV), seed=1, max_chunk_chars=60, pause_seconds=0.5)
    assert len(audio.info.text_chunks) == 4 and all(len(c) <= 60 for c in audio.info.text_chunks)
    assert len(audio.info.ended) == 4
    pause = int(0.5 * synth.sample_rate)
    assert audio.samples.numel() == audio.info.frames * synth.codec.hop_length + 3 * pause
    capped = synth.synthesize(text, voice=str(EXAMPLE_WAV), seed=1, max_chunk_chars=60, max_seconds=0.5)
    assert capped.info.frames <= 0.5 * synth.codec.frame_rate
    assert any("max-seconds" in note for note in capped.info.notes)


def test_empty_text_and_bad_voices_are_clear_errors(synth, tmp_path):
    with pytest.raises(TextError):
        synth.synthesize("   ")
    with pytest.raises(AudioError, match="no such file"):
        synth.synthesize("Hi.", voice=str(tmp_path / "missing.wav"))
    with pytest.raises(VoiceError, match="no saved voice"):
        synth.synthesize("Hi.", voice="nobody")


def test_generation_prefix_continues_the_teacher_forced_sequence():
    torch.manual_seed(0)
    lm = HierarchicalLM(LMConfig(num_codebooks=3, codebook_size=16, text_vocab_size=12, dim=32, num_layers=2,
                                 num_heads=2, local_dim=16, local_layers=1, local_heads=2,
                                 codebook_weights=(1.0, 1.0, 1.0))).eval()
    text = torch.randint(1, 12, (1, 5))
    prompt, prefix = torch.randint(0, 16, (1, 3, 7)), torch.randint(0, 16, (1, 3, 6))
    cond = Conditioning(text, torch.tensor([5]), prompt, torch.tensor([7]))
    pointer = torch.tensor([[0, 0, 1, 1, 1, 2, 3]])  # the 6 forced frames, then the first new one on token 3
    first = next(iter(Generation(lm, cond, SamplingConfig(seed=0), keep_logits=True, prefix=prefix,
                                 prefix_pointer=pointer[:, :6], start=torch.tensor([3]))))
    codes = torch.cat([prefix, first.codes[:, :, None]], dim=-1)
    forced = lm(LMBatch(cond, codes, torch.tensor([7]), pointer)).logits[:, 6, 0]  # after the 6 forced frames
    vocab = lm.config.codebook_size  # (generation bars the end token of an item with text)
    torch.testing.assert_close(first.logits[:, 0, :vocab], forced[:, :vocab], atol=1e-4, rtol=1e-4)


def test_prompt_is_trimmed_normalised_and_cut_at_a_pause(tmp_path):
    speech, rate = sf.read(EXAMPLE_WAV, dtype="float32")
    quiet = np.concatenate([np.zeros(rate), 0.05 * speech, np.zeros(rate)])
    sf.write(tmp_path / "quiet.wav", np.stack([quiet, quiet], axis=1), rate)  # stereo, padded with silence
    prepared = prepare_prompt(tmp_path / "quiet.wav", 16000)
    assert abs(prepared.seconds - len(speech) / rate) < 0.3  # the two seconds of silence are gone
    assert abs(float(torchaudio.functional.loudness(prepared.audio, 16000)) - TARGET_LUFS) < 1.0
    long = np.concatenate([speech, np.zeros(rate // 4, dtype=np.float32), speech, speech])
    sf.write(tmp_path / "long.wav", long, rate)
    cut = prepare_prompt(tmp_path / "long.wav", 16000)
    assert 6.0 < cut.seconds <= 10.0 and "cut" in cut.notes[0]
    sf.write(tmp_path / "short.wav", speech[: rate // 2], rate)
    with pytest.raises(AudioError, match="at least"):
        prepare_prompt(tmp_path / "short.wav", 16000)


def test_saved_voices_round_trip_without_pickle(synth, tmp_path):
    voice = synth.resolve_voice(str(EXAMPLE_WAV), "As he was taken away he made a bargain.")
    folder = save_voice(voice, "king", root=tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["codes.safetensors", "prompt.flac", "voice.json"]
    loaded = load_voice("king", root=tmp_path)
    assert torch.equal(loaded.codes, voice.codes) and loaded.phonemes == voice.phonemes
    assert [v["name"] for v in list_voices(tmp_path)] == ["king"]
    with pytest.raises(VoiceError, match="exists"):
        save_voice(voice, "king", root=tmp_path)
    with pytest.raises(VoiceError, match="voice name"):
        save_voice(voice, "../evil", root=tmp_path)
    (folder / "codes.safetensors").write_bytes(b"junk")
    with pytest.raises(VoiceError, match="damaged"):
        load_voice("king", root=tmp_path)
    remove_voice("king", root=tmp_path)
    assert list_voices(tmp_path) == [] and not list(tmp_path.iterdir())


def test_an_lm_of_another_codec_is_refused(tmp_path):
    make_bundle(tmp_path / "b", codec_fingerprint="0123456789abcdef")
    with pytest.raises(ModelError, match="trained on tokens of codec 0123456789abcdef"):
        Synthesizer.from_pretrained(tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "tts" / "config.json").read_text())
    assert meta["kind"] == "lm"


def test_a_folder_without_an_lm_is_a_clear_error(tmp_path):
    shutil.copytree(REPO / "pretrained" / "codec", tmp_path / "codec")
    with pytest.raises(ModelError, match="holds no LM"):
        Synthesizer.from_pretrained(tmp_path)
    with pytest.raises(ModelError, match="no such model folder"):
        Synthesizer.from_pretrained(tmp_path / "missing")


def test_train_bundle_assembles_a_loadable_bundle_and_refuses_a_foreign_lm(bundle, tmp_path):
    from sonorant.tts.bundle import assemble_bundle

    transcript = EXAMPLE_WAV.with_suffix(".txt").read_text().strip()
    out = assemble_bundle(tmp_path / "b", bundle / "tts", REPO / "pretrained" / "codec",
                          {"default": (EXAMPLE_WAV, transcript)}, REPO / "pretrained" / "aligner")
    assert sorted(p.name for p in (out / "voices").iterdir()) == ["default.txt", "default.wav"]
    assert (out / "aligner" / "frontend.json").is_file()
    assert Synthesizer.from_pretrained(out).synthesize("Hi.", seed=0).info.mode == "transcript"
    foreign = make_bundle(tmp_path / "foreign", codec_fingerprint="0123456789abcdef")
    before = (out / "tts" / "model.safetensors").read_bytes()
    with pytest.raises(SonorantError, match="trained on tokens of codec 0123456789abcdef"):
        assemble_bundle(out, foreign / "tts")
    assert (out / "tts" / "model.safetensors").read_bytes() == before and not list(out.glob(".bundle.*"))
