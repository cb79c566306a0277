"""The forced aligner: prior, search, durations -> words, learning, refusals, CLI, data align, eval align."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from sonorant.align import Aligner, AlignerConfig
from sonorant.align.forced import AlignmentError, ForcedAligner
from sonorant.align.search import beta_binomial_prior, durations_of, hard_alignment
from sonorant.align.words import Segment, boundary_contexts, boundary_errors, spoken_words, timed_segments
from sonorant.core.errors import SonorantError
from sonorant.data.alignments import align_manifest, read_alignments, require_alignments
from sonorant.data.engines import Voice, synthesize
from sonorant.data.manifest import Item, read_manifest, write_manifest
from sonorant.text.frontend import phonemize, symbols
from sonorant.training.run import export_run, train_aligner

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "It is three thirty in the afternoon.",
             "Nothing is easier than to denounce the evildoer.", "She sells sea shells by the sea shore.",
             "A journey of a thousand miles begins with one step.", "Time flies like an arrow."]
TINY = """kind: aligner
model: {text_dim: 32, audio_dim: 32, attention_dim: 16, text_layers: 1, audio_layers: 1}
train: {max_steps: 4, batch_size: 4, log_every: 2, valid_every: 4, checkpoint_every: 4}
"""


def test_prior_is_a_distribution_over_tokens_peaking_on_the_diagonal():
    prior = beta_binomial_prior(10, 50).exp()  # [frames, tokens]
    assert torch.allclose(prior.sum(-1), torch.ones(50), atol=1e-4)
    peaks = prior.argmax(-1)
    assert peaks[0] == 0 and peaks[-1] == 9 and (peaks.diff() >= 0).all()


def test_search_visits_every_token_in_order_and_durations_sum_to_the_frames():
    torch.manual_seed(0)
    log_attention = torch.randn(2, 30, 8).log_softmax(-1)
    path = hard_alignment(log_attention, torch.tensor([8, 5]), torch.tensor([30, 12]))
    d = durations_of(path)
    assert d[0].sum() == 30 and d[1].sum() == 12 and (d[0] >= 1).all() and (d[1, :5] >= 1).all()
    assert (d[1, 5:] == 0).all()
    tokens = path[0].argmax(-1)
    assert (tokens.diff() >= 0).all() and (tokens.diff() <= 1).all()  # monotonic, never skips


def test_durations_become_word_and_phoneme_times():
    ipa = phonemize(["Hello there, friend."])[0]  # 'həlˈoʊ | ðˈɛɹ, | fɹˈɛnd.'
    syms = symbols(ipa)
    durations = [5] + [2] * len(syms) + [7]  # language tag (leading silence), tokens, closing boundary
    words, phones = timed_segments(ipa, durations, 50.0, spoken_words("Hello there, friend."))
    assert [w.label for w in words] == ["Hello", "there", "friend"]
    assert words[0].start == pytest.approx(0.1)  # after the 5 frames of leading silence
    assert all(a.end <= b.start for a, b in zip(words, words[1:], strict=False))  # the comma's frames are a pause
    assert words[-1].end == pytest.approx((5 + 2 * (len(syms) - 1)) / 50)  # the final "." is not the word's
    assert "ˈoʊ" not in [p.label for p in phones] and "ˈo" in [p.label for p in phones]  # stress joins its phone
    assert not any(p.label in ",.|" for p in phones)


def test_silence_between_words_of_a_phrase_is_a_joint_and_only_punctuation_makes_a_pause():
    from sonorant.align.words import CLOSURE_SHARE

    ipa = phonemize(["Hello there, friend."])[0]  # 'həlˈoʊ | ðˈɛɹ, | fɹˈɛnd.'
    syms = symbols(ipa)
    # A 6-frame word boundary after "Hello" (a stop's closure), a 6-frame comma and boundary after "there".
    durations = [5] + [6 if sym in "|," else 2 for sym in syms] + [7]
    hello, there, friend = timed_segments(ipa, durations, 50.0, spoken_words("Hello there, friend."))[0]
    # "Hello" (frames 5-17) and "there" meet CLOSURE_SHARE of the way into the 6 silent frames between them.
    assert hello.end == there.start == pytest.approx((17 + CLOSURE_SHARE * 6) / 50)
    # The comma's 12 frames (with its boundary) stay a pause: "there" ends and "friend" starts on speech.
    assert there.end == pytest.approx(31 / 50) and friend.start == pytest.approx(43 / 50)


def test_silence_at_word_edges_goes_to_the_pause_beside_the_word():
    from sonorant.align.pauses import silent_frames, trim_pauses

    # tag | w1: p p | comma | w2: p p p | end: word 2 took 3 silent frames of the pause, word 1 its last one
    durations = [2, 3, 2, 1, 5, 2, 2, 1]
    pause = [True, False, False, True, False, False, False, True]
    silent = [True, True, False, False, False, False, True] + [True] * 4 + [False] * 7 + [True]
    trimmed = trim_pauses(durations, pause, silent)
    assert sum(trimmed) == sum(durations) and min(trimmed) >= 1
    assert trimmed == [2, 3, 1, 5, 2, 2, 2, 1]  # the pause grew from both sides; the words start and end on sound
    # A word that is silent throughout keeps one frame per token; nothing moves where there is no silence.
    assert trim_pauses(durations, pause, [True] * 18) == [5, 1, 1, 7, 1, 1, 1, 1]
    assert trim_pauses(durations, pause, [False] * 18) == durations
    # The level test: a quiet stretch 60 dB below the rest is silent, speech-level frames are not.
    log_mel = torch.zeros(80, 10)
    log_mel[:, 3:5] = -7.0  # magnitude e^-7: about 61 dB down
    assert silent_frames(log_mel) == [False] * 3 + [True] * 2 + [False] * 5


def test_boundary_errors_pair_words_by_spelling():
    predicted = [Segment("It", 0.1, 0.2), Segment("is", 0.2, 0.3), Segment("three", 0.3, 0.6)]
    reference = [("it", 0.12, 0.2), ("is", 0.2, 0.32), ("3", 0.3, 0.6)]
    errors = boundary_errors(predicted, reference)
    assert len(errors) == 4 and max(errors) == pytest.approx(0.02)
    # Next to a pause: the utterance's edges and a gap of 30 ms or more in the reference; "it is" runs on.
    reference[2] = ("three", 0.4, 0.6)
    contexts = boundary_contexts(predicted, reference)
    assert [pause for _, pause in contexts] == [True, False, False, True, True, True]
    assert contexts[4][0] == pytest.approx(0.1)  # "three" starts 100 ms before the reference's, after its pause


def test_word_boundaries_move_towards_the_nearest_spectral_change():
    from sonorant.align.refine import SNAP_SECONDS, snapped_words

    rate = 16000
    t = torch.arange(rate) / rate
    noise = 0.01 * torch.randn(rate, generator=torch.Generator().manual_seed(0))

    def recording(change: float) -> torch.Tensor:  # a low tone, a high one from `change`, silence from 0.8 s
        tones = torch.where(t < change, torch.sin(2 * torch.pi * 220 * t), 0.5 * torch.sin(2 * torch.pi * 2500 * t))
        return (torch.where(t < 0.8, tones, torch.zeros_like(t)) + noise)[None]

    words = [Segment("low", 0.10, 0.50), Segment("high", 0.50, 0.78)]  # the aligner's 20 ms grid
    for change in (0.52, 0.48):  # the boundary moves off the grid towards the change, never past it
        low, high = snapped_words(words, recording(change), rate)
        assert low.end == high.start and 0 < (high.start - 0.5) / (change - 0.5) <= 1
    assert 0.78 < high.end <= 0.80  # towards where the sound stops
    assert abs(low.start - 0.10) <= SNAP_SECONDS + 1e-9  # no change near: it moves at most the search reach
    # the same at another sample rate; boundaries snapped past each other meet in the middle
    at_8k = snapped_words(words, torchaudio.functional.resample(recording(0.52), rate, 8000), 8000)
    assert 0.5 < at_8k[1].start <= 0.52
    a, b = snapped_words([Segment("a", 0.1, 0.53), Segment("b", 0.49, 0.7)], recording(0.51), rate)
    assert a.end == b.start


def _synthetic_batch(generator: torch.Generator, vocab: int = 12, n_mels: int = 80):
    """Utterances whose every token has its own spectrum for a random number of frames."""
    colours = torch.randn(vocab, n_mels, generator=torch.Generator().manual_seed(7)) * 2
    tokens, durations, mels = [], [], []
    for _ in range(8):
        ids = torch.randint(1, vocab, (10,), generator=generator)
        d = torch.randint(1, 6, (10,), generator=generator)
        frames = torch.repeat_interleave(ids, d)
        mels.append(colours[frames].T + 0.1 * torch.randn(n_mels, len(frames), generator=generator))
        tokens.append(ids)
        durations.append(d)
    t = max(m.shape[-1] for m in mels)
    mel = torch.zeros(8, n_mels, t)
    for i, m in enumerate(mels):
        mel[i, :, : m.shape[-1]] = m
    return (torch.stack(tokens), torch.full((8,), 10), mel, torch.tensor([m.shape[-1] for m in mels]),
            torch.stack(durations))


def test_the_aligner_learns_durations_with_the_forward_sum_loss():
    torch.manual_seed(0)
    aligner = Aligner(AlignerConfig(text_vocab_size=12, text_dim=32, audio_dim=32, attention_dim=16,
                                    text_layers=1, audio_layers=1, audio_kernel=3))
    optimiser = torch.optim.Adam(aligner.parameters(), 3e-3)
    generator = torch.Generator().manual_seed(0)
    first = None
    for _ in range(150):
        tokens, token_lengths, mel, frame_lengths, _ = _synthetic_batch(generator)
        loss = aligner(tokens, token_lengths, mel, frame_lengths).loss
        first = first if first is not None else float(loss.detach())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    tokens, token_lengths, mel, frame_lengths, truth = _synthetic_batch(torch.Generator().manual_seed(99))
    found = aligner.eval().align(tokens, token_lengths, mel, frame_lengths)
    assert float(loss.detach()) < 0.7 * first
    assert (found.durations.sum(-1) == frame_lengths).all()
    # Frame by frame, the token the aligner assigns is the one that made the frame.
    agree = [(torch.repeat_interleave(torch.arange(10), found.durations[i])
              == torch.repeat_interleave(torch.arange(10), truth[i])).float().mean() for i in range(8)]
    print(float(torch.stack(agree).mean()))
    assert float(torch.stack(agree).mean()) > 0.9


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> Path:
    """Six sentences spoken by flite and espeak-ng, with the engines' word timings, and a silent clip."""
    root = tmp_path_factory.mktemp("spoken")
    (root / "wav").mkdir()
    items = []
    for i, text in enumerate(SENTENCES):
        voice = Voice("flite", "kal16") if i % 2 else Voice("espeak-ng", "en-us+m3")
        path = root / "wav" / f"{i}.wav"
        words = synthesize(voice, text, path, 165, 50)
        info = sf.info(str(path))
        items.append(Item(id=str(i), path=f"wav/{i}.wav", duration=info.duration, sample_rate=info.samplerate,
                          domain="speech", split="valid" if i == 5 else "train", text=text, language="en",
                          speaker=voice.id, base_speaker=voice.id,
                          words=tuple(w.to_list() for w in words) if words else None))
    sf.write(root / "wav" / "silent.wav", np.zeros(32000, np.float32), 16000)
    items.append(Item(id="silent", path="wav/silent.wav", duration=2.0, sample_rate=16000, domain="speech",
                      split="train", text="Nobody said a word.", language="en"))
    write_manifest(root / "manifest.jsonl", items)
    return root


@pytest.fixture(scope="module")
def release(spoken, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "aligner"
    recipe = run.parent / "tiny.yaml"
    recipe.write_text(TINY)
    result = train_aligner(str(recipe), spoken / "manifest.jsonl", run, quiet=True)
    assert result.step == 4
    assert json.loads((run / "calibration.json").read_text())["items"] == 5  # the silent clip has no usable frames
    return export_run(run, run.parent / "release")


def test_engines_give_word_timings_in_order(spoken):
    for item in read_manifest(spoken / "manifest.jsonl")[:6]:
        assert item.words, item.speaker
        starts = [start for _, start, _ in item.words]
        assert starts == sorted(starts) and all(s < e <= item.duration + 0.05 for _, s, e in item.words)
        assert len(item.words) >= len(item.text.split()) - 1


def test_exported_aligner_is_a_release_with_a_mismatch_threshold(release):
    config = json.loads((release / "config.json").read_text())
    assert config["kind"] == "aligner" and config["max_cost"] > 0
    assert (release / "model.safetensors").is_file() and (release / "frontend.json").is_file()
    aligner = ForcedAligner.from_pretrained(release)
    assert aligner.fingerprint == ForcedAligner.from_pretrained(release).fingerprint


def test_zero_steps_from_released_weights_only_recalibrates_them(release, spoken, tmp_path):
    from safetensors.torch import load_file

    run = tmp_path / "calibrated"
    (tmp_path / "tiny.yaml").write_text(TINY)
    result = train_aligner(str(tmp_path / "tiny.yaml"), spoken / "manifest.jsonl", run, init_from=release,
                           max_steps=0, quiet=True)
    assert result.step == 0 and (run / "calibration.json").is_file()
    again = export_run(run, tmp_path / "release")
    before, after = load_file(release / "model.safetensors"), load_file(again / "model.safetensors")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    shipped, recalibrated = (json.loads((d / "config.json").read_text()) for d in (release, again))
    assert {k: v for k, v in shipped.items() if "shift" not in k} == \
        {k: v for k, v in recalibrated.items() if "shift" not in k}


def test_alignment_refuses_what_it_cannot_align(release, spoken):
    aligner = ForcedAligner.from_pretrained(release)
    silent = torch.zeros(1, 16000)
    with pytest.raises(AlignmentError, match="silent"):
        aligner.align(silent, "Hello there.")
    short = torch.randn(1, 1600) * 0.1  # 5 frames
    with pytest.raises(AlignmentError, match="more than the audio's 5 frames"):
        aligner.align(short, "This sentence has far more phonemes than five frames.")
    with pytest.raises(AlignmentError, match="empty"):
        aligner.align(short, "   ")
    aligner.aligner.config.__dict__["max_cost"] = 1e-6  # a threshold no transcript can meet
    with pytest.raises(AlignmentError, match="does not match"):
        aligner.align(torch.randn(1, 32000) * 0.1, "Hello there.")


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sonorant.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_cli_align_writes_words_in_text_order(release, spoken, tmp_path):
    out = tmp_path / "a.json"
    done = _cli(["align", str(spoken / "wav" / "1.wav"), "--text", SENTENCES[1], "--json", str(out),
                 "--model", str(release)], tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert [w["word"] for w in data["words"]] == ["It", "is", "three", "thirty", "in", "the", "afternoon"]
    ends = [w["end"] for w in data["words"]]
    assert ends == sorted(ends) and ends[-1] <= data["duration"]
    assert all(p["start"] < p["end"] for p in data["phonemes"])


@pytest.mark.slow
def test_cli_align_bad_input_is_one_line_and_exit_2(release, spoken, tmp_path):
    out = tmp_path / "a.json"
    for args in (["align", str(spoken / "wav" / "silent.wav"), "--text", "Hello."],
                 ["align", str(tmp_path / "missing.wav"), "--text", "Hello."],
                 ["align", str(spoken / "wav" / "1.wav"), "--text", "Hello. " * 200]):
        done = _cli([*args, "--json", str(out), "--model", str(release)], tmp_path)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert not out.exists()


def test_data_align_stores_durations_resumes_and_counts_skips(release, spoken, tmp_path):
    shards = tmp_path / "shards"
    with pytest.raises(SonorantError, match="sonorant data align"):
        require_alignments(shards)
    report = align_manifest(spoken / "manifest.jsonl", release, shards, check_cost=False)
    assert report.aligned == 6 and report.skipped["silent audio"] == 1
    index, alignments = read_alignments(shards)
    assert index["aligner"] == ForcedAligner.from_pretrained(release).fingerprint and "phonemizer" in index["frontend"]
    for item in read_manifest(spoken / "manifest.jsonl")[:6]:
        a = alignments[item.id]
        assert sum(a.durations) == int(np.ceil(item.duration * 16000 / 320)) or \
            abs(sum(a.durations) - item.duration * 50) <= 1
        assert len(a.durations) == len(symbols(a.ipa)) + 2
    again = align_manifest(spoken / "manifest.jsonl", release, shards, check_cost=False)
    assert again.aligned == 0 and again.already_done == 6


def test_eval_align_scores_each_engine(release, spoken, tmp_path):
    from sonorant.evaluation.align_eval import evaluate_alignment, write_report

    result = evaluate_alignment(spoken / "manifest.jsonl", release, split="train", figure=tmp_path / "a.png")
    assert {e.engine for e in result.engines} == {"flite", "espeak-ng"}
    assert all(e.words > 0 and e.median_ms >= 0 for e in result.engines) and result.hours_per_minute > 0
    assert all(e.pause_p90_ms >= 0 for e in result.engines)  # every utterance has edges: some pause boundaries
    assert (tmp_path / "a.png").stat().st_size > 1000
    path = write_report(result, tmp_path / "report", {"date": "d", "machine": "m", "command": "c"})
    assert json.loads(path.read_text())["kind"] == "eval-align"
