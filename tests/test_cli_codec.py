"""`sonorant codec ...`: round trips of real files, exact lengths, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sonorant.codec import Codec
from sonorant.codec.files import decode_audio, encode_audio
from sonorant.core.audio import load_audio

from .conftest import run, tone


@pytest.fixture
def model(tiny_codec, tmp_path) -> Path:
    return tiny_codec.save_pretrained(tmp_path / "model")


@pytest.fixture
def stereo_44k(tmp_path) -> Path:
    path = tmp_path / "in.flac"
    left, right = tone(1.23, 44100, seed=1), tone(1.23, 44100, seed=2)
    sf.write(path, np.stack([left, right], axis=1), 44100)
    return path


def test_encode_info_decode_round_trip(model, stereo_44k, tmp_path, capsys):
    stok, wav = tmp_path / "a.stok", tmp_path / "a.wav"
    assert run(["codec", "encode", stereo_44k, "-o", stok, "--model", model, "--codebooks", "2"]) == 0
    assert run(["codec", "info", stok]) == 0
    assert "2 x 6 bits" in capsys.readouterr().out
    assert run(["codec", "decode", stok, "-o", wav, "--model", model]) == 0
    data, rate = sf.read(wav)
    assert rate == 16000
    assert len(data) == round(1.23 * 16000)  # exactly the original length, no padding


def test_roundtrip_equals_encode_then_decode(model, stereo_44k, tmp_path):
    assert run(["codec", "roundtrip", stereo_44k, "-o", tmp_path / "r.wav", "--model", model]) == 0
    assert run(["codec", "encode", stereo_44k, "-o", tmp_path / "a.stok", "--model", model]) == 0
    assert run(["codec", "decode", tmp_path / "a.stok", "-o", tmp_path / "d.wav", "--model", model]) == 0
    assert np.array_equal(sf.read(tmp_path / "r.wav")[0], sf.read(tmp_path / "d.wav")[0])


def test_bitrate_flag_selects_codebooks(model, stereo_44k, tmp_path, capsys):
    # tiny codec: 50 Hz x 6 bits = 0.3 kbps per codebook
    assert run(["codec", "encode", stereo_44k, "-o", tmp_path / "a.stok", "--model", model, "--bitrate", "0.6"]) == 0
    assert run(["codec", "info", tmp_path / "a.stok"]) == 0
    assert "codebooks:   2" in capsys.readouterr().out


def test_chunked_processing_equals_offline(tiny_codec):
    # Long files go through the streaming path in chunks; the result must not depend on the chunking.
    codec = tiny_codec.double()
    wav = torch.from_numpy(tone(3.1, seed=3)).double()[None]
    with torch.no_grad():
        offline = codec.encode(wav[None])[0]
        chunked = encode_audio(codec, wav, 4, chunk_frames=7)
        assert torch.equal(chunked, offline)
        audio = torch.cat(list(decode_audio(codec, offline, chunk_frames=11)))
        assert (audio - codec.decode(offline[None])[0, 0]).abs().max() < 1e-6


def _bad_wavs(tmp_path: Path) -> dict[str, Path]:
    files = {}
    files["missing"] = tmp_path / "missing.wav"
    files["not audio"] = tmp_path / "text.wav"
    files["not audio"].write_text("hello, this is not a wav file")
    files["empty"] = tmp_path / "empty.wav"
    sf.write(files["empty"], np.zeros(0, dtype=np.float32), 16000)
    files["silent"] = tmp_path / "zeros.wav"
    sf.write(files["silent"], np.zeros(16000, dtype=np.float32), 16000)
    files["nan"] = tmp_path / "nan.wav"
    nan = tone(0.5)
    nan[100] = np.nan
    sf.write(files["nan"], nan, 16000, subtype="FLOAT")
    files["folder"] = tmp_path
    return files


@pytest.mark.parametrize("case", ["missing", "not audio", "empty", "silent", "nan", "folder"])
def test_bad_audio_gives_one_line_and_exit_2(model, tmp_path, capsys, case):
    src = _bad_wavs(tmp_path)[case]
    out = tmp_path / "out.stok"
    assert run(["codec", "encode", src, "-o", out, "--model", model]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sonorant: error:") and "\n" not in err
    assert not out.exists()
    assert run(["codec", "roundtrip", src, "-o", tmp_path / "out.wav", "--model", model]) == 2
    assert not (tmp_path / "out.wav").exists()


def test_codebooks_out_of_range(model, stereo_44k, tmp_path, capsys):
    for k in ("0", "5"):
        assert run(["codec", "encode", stereo_44k, "-o", tmp_path / "a.stok", "--model", model, "--codebooks", k]) == 2
    assert "between 1 and 4" in capsys.readouterr().err
    assert run(["codec", "encode", stereo_44k, "-o", tmp_path / "a.stok", "--model", model, "--bitrate", "0.5"]) == 2
    assert not (tmp_path / "a.stok").exists()


def test_tokens_of_another_codec_rejected(model, tiny_config, stereo_44k, tmp_path, capsys):
    torch.manual_seed(1)
    other = Codec(tiny_config).save_pretrained(tmp_path / "other")
    stok = tmp_path / "a.stok"
    assert run(["codec", "encode", stereo_44k, "-o", stok, "--model", model]) == 0
    assert run(["codec", "decode", stok, "-o", tmp_path / "x.wav", "--model", other]) == 2
    assert "made by codec" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_truncated_token_file_rejected(model, stereo_44k, tmp_path, capsys):
    stok = tmp_path / "a.stok"
    assert run(["codec", "encode", stereo_44k, "-o", stok, "--model", model]) == 0
    stok.write_bytes(stok.read_bytes()[:-5])
    assert run(["codec", "decode", stok, "-o", tmp_path / "x.wav", "--model", model]) == 2
    assert "truncated" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_missing_model_and_bad_output_format(stereo_44k, tmp_path, capsys, model):
    assert run(["codec", "roundtrip", stereo_44k, "-o", tmp_path / "x.wav", "--model", tmp_path / "nope"]) == 2
    assert run(["codec", "roundtrip", stereo_44k, "-o", tmp_path / "x.xyz", "--model", model]) == 2
    assert "unknown audio format" in capsys.readouterr().err


def test_load_audio_downmixes_and_resamples(stereo_44k):
    wav = load_audio(stereo_44k, 16000)
    assert wav.shape == (1, round(1.23 * 16000))
    assert wav.dtype == torch.float32


def test_python_module_entry_point():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "sonorant.cli", "codec", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "roundtrip" in result.stdout


def test_bad_flags_give_one_line_and_exit_2(stereo_44k, tmp_path, capsys):
    assert run(["codec", "encode", stereo_44k, "-o", tmp_path / "a.stok", "--codebooks", "many"]) == 2
    assert run(["codec", "encode", stereo_44k]) == 2
    assert run(["codec", "frobnicate"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("sonorant: error:") for line in lines)
    assert not (tmp_path / "a.stok").exists()
