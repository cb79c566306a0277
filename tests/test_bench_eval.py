"""`sonorant bench codec`, `sonorant eval codec` and `sonorant train summary` on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from sonorant.data.manifest import Item, write_manifest
from sonorant.evaluation import metrics as M
from sonorant.evaluation.plots import plots_available
from sonorant.training.run import train_codec

from .conftest import run, tone


def test_bench_codec_writes_json(tiny_codec, tmp_path, capsys):
    model = tiny_codec.save_pretrained(tmp_path / "m")
    assert run(["bench", "codec", "--model", model, "--seconds", "2", "--repeats", "1",
                "--json", tmp_path / "b.json"]) == 0
    result = json.loads((tmp_path / "b.json").read_text())
    assert result["seconds"] == 2 and result["encode_x_realtime"] > 0 and result["offline_x_realtime"] > 0
    assert result["algorithmic_latency_ms"] == 20.0
    assert "x real time" in capsys.readouterr().out


@pytest.mark.slow
def test_eval_codec_report(tiny_codec, tmp_path):
    model = tiny_codec.save_pretrained(tmp_path / "m")
    (tmp_path / "wav").mkdir()
    items = []
    for i in range(2):
        sf.write(tmp_path / "wav" / f"{i}.wav", tone(1.0, seed=i), 16000)
        items.append(Item(id=str(i), path=f"wav/{i}.wav", duration=1.0, sample_rate=16000, domain="speech",
                          split="test"))
    write_manifest(tmp_path / "m.jsonl", items)
    assert run(["eval", "codec", "--model", model, "--manifest", tmp_path / "m.jsonl", "--report", tmp_path / "r",
                "--codebooks", "1", "--codebooks", "4", "--similarity"]) == 0
    scores = json.loads((tmp_path / "r" / "metrics.json").read_text())["scores"]
    assert [s["codebooks"] for s in scores] == [1, 4]
    assert all(-1.0 <= s["speaker_similarity"] <= 1.0 for s in scores)
    assert all(s["items"] == 2 and -0.5 <= s["pesq_wb"] <= 4.7 and len(s["perplexity"]) == s["codebooks"]
               for s in scores)
    if M.dnsmos_available():
        assert all(1.0 <= s["dnsmos"] <= 5.0 and 1.0 <= s["reference_dnsmos"] <= 5.0 for s in scores)
    report = (tmp_path / "r" / "report.md").read_text()
    assert "| 4 |" in report and "SIM |" in report
    if plots_available():  # matplotlib comes with the dev extras
        for figure in ("quality_vs_bitrate.png", "spectrograms.png"):
            assert (tmp_path / "r" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure in report


def test_metrics_rank_a_cleaner_signal_higher():
    ref = tone(2.0, seed=1).astype(np.float64)
    rng = np.random.default_rng(0)
    slightly, badly = ref + 0.005 * rng.standard_normal(ref.shape), ref + 0.1 * rng.standard_normal(ref.shape)
    assert M.pesq_wb(ref, slightly, 16000) > M.pesq_wb(ref, badly, 16000)
    assert M.stoi(ref, slightly, 16000) > M.stoi(ref, badly, 16000)
    assert M.si_sdr(ref, slightly) > M.si_sdr(ref, badly) > 0
    assert M.si_sdr(ref, 3.0 * ref) > 100  # scale-invariant
    f32 = [x.astype(np.float32) for x in (ref, slightly, badly)]
    assert M.mel_distance(f32[0], f32[1], 16000) < M.mel_distance(f32[0], f32[2], 16000)
    assert M.stft_distance(f32[0], f32[1]) < M.stft_distance(f32[0], f32[2])


def test_train_summary(corpus, tmp_path, capsys):
    train_codec("codec-tiny", corpus, tmp_path / "run", quiet=True)
    assert run(["train", "summary", tmp_path / "run"]) == 0
    out = capsys.readouterr().out
    assert "valid mel @4" in out and "| 4 |" in out


def test_word_errors_normalise_both_sides():
    from sonorant.evaluation.asr import word_errors

    assert word_errors("Hello, world!", "hello world") == (0, 2)
    assert word_errors("the cat sat", "the bat sat down") == (2, 3)  # one substitution, one insertion
    assert word_errors("a well-known fact", "a well known") == (1, 4)  # hyphens split; one deletion


def test_whisper_decodes_at_temperature_zero_only():
    from sonorant.evaluation.asr import WhisperASR

    class Model:  # faster-whisper's interface: the options of the call are what decide determinism
        def transcribe(self, audio, **options):
            self.options = options
            return iter([type("Segment", (), {"text": " Hello there. "})()]), None

    asr = WhisperASR.__new__(WhisperASR)
    asr.model = Model()
    assert asr.transcribe(np.zeros(16000)) == "Hello there."
    # a list of temperatures (the library's default) falls back to sampling: another transcript per process
    assert asr.model.options["temperature"] == 0.0 and asr.model.options["beam_size"] == 1


def test_eval_codec_reports_asr_word_error_rate(corpus, tiny_codec):
    import dataclasses

    from sonorant.data.manifest import read_manifest, write_manifest
    from sonorant.evaluation.codec_eval import evaluate_codec

    class EchoASR:  # a stand-in recogniser: hears the right words only when the audio is loud enough
        def transcribe(self, audio):
            return "ok then" if float(np.abs(audio).mean()) > 0.05 else "nothing"

    manifest = corpus / "manifest.jsonl"
    write_manifest(manifest, [dataclasses.replace(it, text="ok then") for it in read_manifest(manifest)])
    scores = evaluate_codec(tiny_codec.eval(), manifest, [1, 4], split="valid", asr=EchoASR())
    assert scores[0].reference_wer == 0.0  # the originals are loud test tones
    assert all(s.wer is not None and 0.0 <= s.wer <= 100.0 for s in scores)


def test_codec_speed_next_to_the_peers(tiny_codec):
    pytest.importorskip("encodec")  # installed with the dev extras
    from sonorant.evaluation.peers import peer_speeds, peer_table

    rows = peer_speeds(tiny_codec, seconds=1.0, repeats=1)  # no environment for DAC: its row says why
    ours, encodec, dac = rows
    assert ours.ours_vs_this == pytest.approx(1.0)
    assert encodec.error is None and encodec.encode_x_realtime > 0 and encodec.decode_x_realtime > 0
    assert encodec.ours_vs_this == pytest.approx(ours.roundtrip_x_realtime / encodec.roundtrip_x_realtime)
    if dac.error is not None:
        assert "descript-audio-codec" in dac.error
    table = peer_table(rows)
    assert "EnCodec 24 kHz" in table and "DAC 16 kHz" in table


def test_the_dac_environment_sees_this_environments_packages(tmp_path):
    """DAC runs in an environment of its own; made from a virtual environment (the usual install), it must still
    find torch and sonorant where they are installed, not only in the base Python."""
    import subprocess
    import sys

    from sonorant.evaluation.peers import peer_environment

    python = peer_environment(tmp_path / "dac", with_pip=False)
    probe = "import importlib.util, sys, sonorant.core.errors as e; print(importlib.util.find_spec('torch').origin)"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import torch

    assert done.stdout.strip() == torch.__file__ and str(tmp_path / "dac") != sys.prefix


def test_dnsmos_scores_noisy_speech_lower():
    pytest.importorskip("speechmos")  # installed with the dev extras
    from .conftest import EXAMPLE_WAV

    speech, rate = sf.read(EXAMPLE_WAV, dtype="float32")
    noise = np.random.default_rng(0).standard_normal(speech.shape).astype(np.float32)
    noisy = speech + 0.3 * np.abs(speech).max() * noise
    clean_score, noisy_score = M.dnsmos(speech, rate), M.dnsmos(noisy, rate)
    assert 1.0 <= noisy_score < clean_score - 0.5 <= 4.5


def test_train_summary_of_an_lm_shows_its_text_gap():
    from sonorant.training.summary import curve_table

    rows = [{"split": "train", "step": s, "loss": 5.0 - s / 1000, "steps_per_second": 1.0} for s in (250, 500)]
    rows += [{"split": "valid", "step": 250, "loss": 4.8, "text_gap": 0.001, "accuracy/0": 0.15},
             {"split": "valid", "step": 500, "loss": 4.4, "text_gap": 0.033, "accuracy/0": 0.194}]
    table = curve_table(rows)
    assert "text gap" in table and "| 500 | 4.500 | 4.400 | 0.0330 | 19.4% | 1.00 |" in table


def test_eval_codec_ceilings_locate_the_loss(tiny_config, tmp_path):
    """--ceilings: the decoder on the unquantized latent, and an istft decoder's amplitudes with the input's
    phase. The second is aligned frame for frame with the input: a decoder whose amplitudes were exact would,
    given the input's phase, give back the input itself (all but the last hop, which waits for a next frame)."""
    import dataclasses

    import torch

    from sonorant.codec import Codec
    from sonorant.codec.istft_decoder import FrameSpectrum, frame_spectra
    from sonorant.evaluation.codec_eval import INPUT_PHASE, LATENT, evaluate_codec, score_table

    torch.manual_seed(0)
    codec = Codec(dataclasses.replace(tiny_config, decoder="istft", decoder_blocks=2)).eval()
    hop = codec.hop_length
    wav = torch.from_numpy(tone(12 * hop / 16000, seed=4))[None, None]
    exact = frame_spectra(wav, hop)

    def exact_amplitudes(latent, state=None):  # the input's amplitudes, a wrong (random) phase
        noise = torch.randn(exact.shape + (2,))
        return FrameSpectrum(exact.abs().clamp(min=1e-7).log(), noise[..., 0], noise[..., 1])

    codec.decoder.spectrum = exact_amplitudes
    codes = codec.encode(wav, 2)
    remade = codec.decode_with_phase(codes, wav)
    assert (remade - wav)[..., :-hop].abs().max() < 1e-4
    assert (codec.decode(codes) - wav)[..., :-hop].abs().max() > 0.05  # the random phase, for contrast

    del codec.decoder.spectrum
    (tmp_path / "wav").mkdir()
    sf.write(tmp_path / "wav" / "0.wav", tone(1.0, seed=1), 16000)
    write_manifest(tmp_path / "m.jsonl", [Item(id="0", path="wav/0.wav", duration=1.0, sample_rate=16000,
                                               domain="music", split="test")])
    scores = evaluate_codec(codec, tmp_path / "m.jsonl", [1, 2], ceilings=True)
    assert [(s.variant, s.codebooks) for s in scores] == [("codes", 1), ("codes", 2), (LATENT, codec.num_codebooks),
                                                          (INPUT_PHASE, 2)]
    assert scores[2].kbps is None and scores[3].kbps == scores[1].kbps
    table = "\n".join(score_table(scores))
    assert "| latent, no quantizer | - |" in table and "| 2, input's phase |" in table
    seanet = Codec(tiny_config).eval()  # no phase of its own: the latent row alone
    assert [s.variant for s in evaluate_codec(seanet, tmp_path / "m.jsonl", [1], ceilings=True)] == ["codes", LATENT]


def test_a_looping_transcript_is_named_in_the_tts_report():
    """Whisper sometimes loops on a generation; the report names those cases (their insertions dominate a WER)."""
    from sonorant.evaluation.asr import runaway
    from sonorant.evaluation.tts_eval import tts_table

    loop = "As the bassist grew more and more and he breathed " + "very " * 60
    assert runaway(loop)
    assert not runaway("As the basses grew more and more inebriated, two of them fell asleep.")
    assert not runaway("")
    score = {"system": "transcript", "cases": 2, "wer": 120.0, "cer": 80.0, "similarity": 0.7, "stopped": 1.0,
             "duration_ratio": 1.0, "rtf": 0.5, "first_audio_s": 0.2}
    items = [{"case": "000017", "hypothesis": loop}, {"case": "000018", "hypothesis": "Wedding rings."}]
    lines = "\n".join(tts_table({"scores": [score], "items": items}))
    assert "Whisper looped on 1 of 2 generations" in lines and "case 000017." in lines and "000018" not in lines
    assert "looped" not in "\n".join(tts_table({"scores": [score], "items": items[1:]}))
