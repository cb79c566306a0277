"""Hostile input: every mistake a user can make ends in one line on stderr starting `sonorant: error:`, exit
status 2, no traceback and no new file; the mistakes that need no model are found before any model loads.

The fuzz table below runs each bad command line in this process (`sonorant.cli.app.main`) against a tiny bundle,
a folder of damaged inputs and a voices folder with damaged voices, and compares every file under the test's
folder before and after.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sonorant.cli.app import main
from sonorant.codec.model import Codec
from sonorant.codec.tokenfile import TokenFile
from sonorant.lm.model import HierarchicalLM
from sonorant.tts.bundle import lm_codec_fingerprint
from sonorant.tts.voices import Voice, save_voice

from .conftest import EXAMPLE_WAV, make_bundle, tone

LONG_TRANSCRIPT = "The birch canoe slid on the smooth planks. " * 1200  # 52,800 characters


class ModelLoaded(BaseException):
    """Raised where a model would load, for commands that must fail before (not a SonorantError: never caught)."""


@dataclass
class Case:
    args: list[str]
    message: str  # a part of the one error line
    model: bool = False  # the mistake is found only once the models are loaded (they may load)
    stdin: str | None = None
    needs: list[str] = field(default_factory=list)  # skip unless these hold: "no-cuda"

    @property
    def id(self) -> str:
        return " ".join(a if len(a) < 30 else a[:20] + "..." for a in self.args)[:90]


def _voice(codes: torch.Tensor, fingerprint: str) -> Voice:
    return Voice(codes=codes, audio=torch.from_numpy(tone(2.0))[None], sample_rate=16000,
                 codec_fingerprint=fingerprint, text="A test voice.", language="en-us")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """work/ with in/ (damaged inputs), out/ (outputs go here), home/voices (damaged voices), bundle/."""
    root = tmp_path_factory.mktemp("hostile")
    bundle = make_bundle(root / "bundle")
    fingerprint = lm_codec_fingerprint(bundle / "tts")
    broken = shutil.copytree(bundle, root / "broken")  # LM weights that do not fit its config
    config = json.loads((broken / "tts" / "config.json").read_text())
    (broken / "tts" / "config.json").write_text(json.dumps({**config, "dim": 48}))

    inputs = root / "in"
    inputs.mkdir()
    (root / "out").mkdir()
    shutil.copy(EXAMPLE_WAV, inputs / "speech.wav")
    sf.write(inputs / "short.wav", tone(0.3), 16000)
    sf.write(inputs / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(inputs / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    nan = tone(1.0)
    nan[100] = np.nan
    sf.write(inputs / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(inputs / "loud.wav", tone(2.0) * 1e30, 16000, subtype="FLOAT")
    (inputs / "text.wav").write_text("this is not audio\n")
    (inputs / "trunc.wav").write_bytes((inputs / "speech.wav").read_bytes()[:30])
    (inputs / "dir.wav").mkdir()
    (inputs / "nomodel").mkdir()

    tokens = TokenFile(codes=torch.randint(0, 1024, (4, 50)), fingerprint=fingerprint, sample_rate=16000,
                       hop_length=320, bits=10, num_samples=50 * 320)
    tokens.write(inputs / "good.stok")
    data = bytearray(tokens.to_bytes())
    data[16] ^= 0x80  # the sample rate: 16000 -> 16128 Hz
    (inputs / "flipped.stok").write_bytes(bytes(data))
    data = bytearray(tokens.to_bytes())
    data[4] = 9
    (inputs / "v9.stok").write_bytes(bytes(data))
    (inputs / "trunc.stok").write_bytes(tokens.to_bytes()[:-20])
    TokenFile(codes=tokens.codes, fingerprint="0123456789abcdef", sample_rate=16000, hop_length=320, bits=10,
              num_samples=50 * 320).write(inputs / "other.stok")
    TokenFile(codes=torch.full((4, 50), 60000), fingerprint=fingerprint, sample_rate=16000, hop_length=320, bits=16,
              num_samples=50 * 320).write(inputs / "wide.stok")

    def jsonl(name: str, *rows) -> None:
        (inputs / name).write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))

    (inputs / "bin.jsonl").write_bytes(bytes(range(256)) * 4)
    jsonl("types.jsonl", {"text": 123, "output": "../out/a.wav"})
    jsonl("list.jsonl", [1, 2])
    jsonl("dup.jsonl", {"text": "One.", "output": "../out/a.wav"}, {"text": "Two.", "output": "../out/a.wav"})
    jsonl("unknown.jsonl", {"text": "One.", "output": "../out/a.wav", "voice-text": "x"})
    jsonl("two.jsonl", {"text": "One.", "output": "../out/a.wav"}, {"text": "Two.", "output": "../out/b.wav"})
    jsonl("second-bad.jsonl", {"text": "One.", "output": "../out/a.wav"}, {"text": "", "output": "../out/b.wav"})
    jsonl("badjson.jsonl", '{"text": "One.", "output": ')
    jsonl("novoice.jsonl", {"text": "One.", "output": "../out/a.wav", "voice": "missing.wav"})
    jsonl("rawout.jsonl", {"text": "One.", "output": "../out/a.raw"})
    (inputs / "texts.txt").write_text("Hello there.\n\U0001F600 \U0001F600\n")
    (inputs / "latin1.txt").write_bytes("Gr\xfc\xdfe.\n".encode("latin-1"))
    jsonl("manifest-types.jsonl", {"id": 1, "path": 5, "duration": 1.0, "sample_rate": 16000, "domain": "speech",
                                   "split": "train"})
    jsonl("manifest-domain.jsonl", {"id": "a", "path": "speech.wav", "duration": 1.0, "sample_rate": 16000,
                                    "domain": "noise", "split": "train"})

    voices = root / "home" / "voices"
    good = save_voice(_voice(torch.randint(0, 1024, (4, 100)), fingerprint), "good", root=voices)
    for name in ("notutf", "alist", "emptyobj", "wrongtype", "nofingerprint", "badshape", "outofrange", "noprompt"):
        shutil.copytree(good, voices / name)
    (voices / "notutf" / "voice.json").write_bytes(b"\xff\xfe{")
    (voices / "alist" / "voice.json").write_text("[1, 2]")
    (voices / "emptyobj" / "voice.json").write_text("{}")
    meta = json.loads((good / "voice.json").read_text())
    (voices / "wrongtype" / "voice.json").write_text(json.dumps({**meta, "sample_rate": "fast"}))
    (voices / "nofingerprint" / "voice.json").write_text(json.dumps({k: v for k, v in meta.items()
                                                                     if k != "codec_fingerprint"}))
    from safetensors.torch import save_file

    save_file({"codes": torch.zeros(4, dtype=torch.int32)}, str(voices / "badshape" / "codes.safetensors"))
    save_file({"codes": torch.full((4, 100), 5000, dtype=torch.int32)},
              str(voices / "outofrange" / "codes.safetensors"))
    (voices / "noprompt" / "prompt.flac").unlink()
    shutil.copytree(good, voices / "v1.0")  # a name earlier versions allowed
    return root


def _cases() -> list[Case]:
    bundle = ["--model", "../bundle"]
    say = ["tts", "Hello there.", "-o", "../out/x.wav", *bundle]
    enc = ["codec", "encode", "speech.wav", "-o", "../out/x.stok", "--model", "../bundle"]
    dec = ["codec", "decode", "good.stok", "-o", "../out/x.wav", "--model", "../bundle"]
    return [
        # codec encode / decode / roundtrip / info
        Case(["codec", "encode", "missing.wav", "-o", "../out/x.stok"], "no such file"),
        Case(["codec", "encode", "text.wav", "-o", "../out/x.stok"], "not a readable audio file"),
        Case(["codec", "encode", "trunc.wav", "-o", "../out/x.stok"], "not a readable audio file"),
        Case(["codec", "encode", "empty.wav", "-o", "../out/x.stok"], "holds no samples"),
        Case(["codec", "encode", "dir.wav", "-o", "../out/x.stok"], "is a folder"),
        Case(["codec", "encode", "silent.wav", "-o", "../out/x.stok"], "silent", model=True),
        Case(["codec", "encode", "nan.wav", "-o", "../out/x.stok"], "NaN", model=True),
        Case(["codec", "encode", "loud.wav", "-o", "../out/x.stok"], "samples reach", model=True),
        Case([*enc[:4], "../out"], "is a folder"),
        Case([*enc[:4], "../out/none/x.stok"], "no such folder"),
        Case([*enc[:4], "../out/x.wav"], "must end in .stok"),
        Case([*enc[:4], "/proc/x.stok"], "cannot write there"),
        Case([*enc, "--bitrate", "nan"], "nan is not a finite number"),
        Case([*enc, "--bitrate", "-4"], "--bitrate must be a positive number", model=True),
        Case([*enc, "--bitrate", "3.3"], "not available", model=True),
        Case([*enc, "--codebooks", "0"], "--codebooks"),
        Case([*enc, "--codebooks", "99"], "between 1 and 8", model=True),
        Case([*enc, "--codebooks", "2", "--bitrate", "1"], "not both", model=True),
        Case([*enc, "--device", "foo"], "not a device"),
        Case([*enc, "--device", "cuda"], "no CUDA GPU", needs=["no-cuda"]),
        Case([*enc[:5], "--model", "nomodel"], "no codec model here"),
        Case(["codec", "decode", "speech.wav", "-o", "../out/x.wav"], "not a sonorant token file"),
        Case(["codec", "decode", "flipped.stok", "-o", "../out/x.wav"], "checksum"),
        Case(["codec", "decode", "v9.stok", "-o", "../out/x.wav"], "version 9"),
        Case(["codec", "decode", "trunc.stok", "-o", "../out/x.wav"], "truncated"),
        Case(["codec", "decode", "missing.stok", "-o", "../out/x.wav"], "no such token file"),
        Case(["codec", "decode", "other.stok", "-o", "../out/x.wav", "--model", "../bundle"], "made by codec",
             model=True),
        Case(["codec", "decode", "wide.stok", "-o", "../out/x.wav", "--model", "../bundle"], "1024 entries",
             model=True),
        Case([*dec[:4], "../out/x.raw"], "unknown audio format"),
        Case([*dec[:4], "/proc/x.wav"], "cannot write there"),
        Case(["codec", "info", "flipped.stok"], "checksum"),
        Case(["codec", "info", "speech.wav"], "not a sonorant token file"),
        Case(["codec", "info", "dir.wav"], "no such token file"),
        Case(["codec", "roundtrip", "speech.wav", "-o", "../out/x.raw"], "unknown audio format"),
        Case(["codec", "roundtrip", "speech.wav", "-o", "/proc/x.wav"], "cannot write there"),
        Case(["codec", "roundtrip", "missing.wav", "-o", "../out/x.wav"], "no such file"),
        # tts: text
        Case(["tts", "", "-o", "../out/x.wav", *bundle], "text is empty"),
        Case(["tts", "   \n\t", "-o", "../out/x.wav", *bundle], "text is empty"),
        Case(["tts", "\U0001F600\U0001F389\U0001F600", "-o", "../out/x.wav", *bundle], "nothing to say"),
        Case(["tts", "!!! ... ???", "-o", "../out/x.wav", *bundle], "nothing to say"),
        Case(["tts", "-", "-o", "../out/x.wav", *bundle], "text is empty", stdin=""),
        Case(["tts", "x" * 100_001, "-o", "../out/x.wav", *bundle], "split it"),
        Case(["tts", "Hello.", *bundle], "choose one output"),
        Case([*say, "--stream"], "choose one output"),
        Case(["tts", "Hello.", "--batch", "texts.txt", "-o", "../out/b"], "drop TEXT"),
        # tts: outputs
        Case(["tts", "Hello.", "-o", "../out", *bundle], "is a folder"),
        Case(["tts", "Hello.", "-o", "../out/x.raw", *bundle], "unknown audio format"),
        Case(["tts", "Hello.", "-o", "../out/none/x.wav", *bundle], "no such folder"),
        Case(["tts", "Hello.", "-o", "/proc/x.wav", *bundle], "cannot write there"),
        Case([*say, "--timestamps", "../out/t.txt"], "must end in .json"),
        Case([*say, "--timestamps", "../out"], "is a folder"),
        # tts: voices and transcripts
        Case([*say, "--voice", "missing.wav"], "no such file"),
        Case([*say, "--voice", "text.wav"], "not a readable audio file"),
        Case([*say, "--voice", "dir.wav"], "is a folder"),
        Case([*say, "--voice", "nobody"], "no saved voice named 'nobody'"),
        Case([*say, "--voice", "v1.0"], "no such file"),
        Case([*say, "--voice", "notutf"], "not UTF-8"),
        Case([*say, "--voice", "alist"], "holds a list"),
        Case([*say, "--voice", "emptyobj"], "damaged voice"),
        Case([*say, "--voice", "wrongtype"], "sample_rate is 'fast'"),
        Case([*say, "--voice", "nofingerprint"], "codec_fingerprint"),
        Case([*say, "--voice", "badshape"], "codes of shape"),
        Case([*say, "--voice", "noprompt"], "no prompt.flac"),
        Case([*say, "--voice", "outofrange"], "codes up to 5000", model=True),
        Case([*say, "--voice", "loud.wav"], "samples reach", model=True),
        Case([*say, "--voice", "short.wav"], "at least 1 s", model=True),
        Case([*say, "--voice", "silent.wav"], "silent", model=True),
        Case([*say, "--voice", "speech.wav", "--voice-text", LONG_TRANSCRIPT], "cannot say that much"),
        Case([*say, "--voice", "speech.wav", "--voice-text", "\U0001F600"], "transcript: nothing to say"),
        Case([*say, "--lang", "xx-nope"], "language"),
        # tts: flags and models
        Case([*say, "--seed", str(2**64)], "--seed"),
        Case([*say, "--seed", "-1"], "--seed"),
        Case([*say, "--device", "foo"], "not a device"),
        Case([*say, "--device", "cuda"], "no CUDA GPU", needs=["no-cuda"]),
        Case([*say, "--top-p", "0"], "--top-p"),
        Case([*say, "--speed", "nan"], "--speed"),
        Case(["tts", "Hello.", "-o", "../out/x.wav", "--model", "nomodel"], "holds no LM"),
        Case(["tts", "Hello.", "-o", "../out/x.wav", "--model", "missing"], "no such model folder"),
        Case(["tts", "Hello.", "-o", "../out/x.wav", "--model", "../broken"], "weights do not match", model=True),
        # tts --batch
        Case(["tts", "--batch", "missing.jsonl", *bundle], "no such batch file"),
        Case(["tts", "--batch", "bin.jsonl", *bundle], "not a text file"),
        Case(["tts", "--batch", "types.jsonl", *bundle], "'text' must be text"),
        Case(["tts", "--batch", "list.jsonl", *bundle], "JSON object"),
        Case(["tts", "--batch", "dup.jsonl", *bundle], "also the output of line 1"),
        Case(["tts", "--batch", "unknown.jsonl", *bundle], "unknown field"),
        Case(["tts", "--batch", "second-bad.jsonl", *bundle], "second-bad.jsonl:2"),
        Case(["tts", "--batch", "badjson.jsonl", *bundle], "bad batch line"),
        Case(["tts", "--batch", "novoice.jsonl", *bundle], "no such file"),
        Case(["tts", "--batch", "rawout.jsonl", *bundle], "unknown audio format"),
        Case(["tts", "--batch", "texts.txt", *bundle], "needs -o FOLDER"),
        Case(["tts", "--batch", "texts.txt", "-o", "speech.wav", *bundle], "needs -o FOLDER"),
        Case(["tts", "--batch", "texts.txt", "-o", "../out/x", *bundle], "texts.txt:2: nothing to say"),
        Case(["tts", "--batch", "latin1.txt", "-o", "../out/b", *bundle], "not a text file"),
        Case(["tts", "--batch", "two.jsonl", "--timestamps", "../out/t.json", *bundle], "--timestamps is for one"),
        # voice
        Case(["voice", "add", "v1.0", "speech.wav", *bundle], "voice name 'v1.0'"),
        Case(["voice", "add", "../evil", "speech.wav", *bundle], "voice name"),
        Case(["voice", "add", "", "speech.wav", *bundle], "voice name"),
        Case(["voice", "add", "good", "speech.wav", *bundle], "exists already"),
        Case(["voice", "add", "new", "missing.wav", *bundle], "no such file"),
        Case(["voice", "add", "new", "speech.wav", "--text", "\U0001F600", *bundle], "nothing to say"),
        Case(["voice", "add", "new", "speech.wav", "--text", LONG_TRANSCRIPT, *bundle], "cannot say that much"),
        Case(["voice", "add", "new", "speech.wav", "--model", "nomodel"], "holds no LM"),
        Case(["voice", "add", "new", "speech.wav", "--lang", "xx-nope", *bundle], "language"),
        Case(["voice", "add", "new", "short.wav", *bundle], "at least 1 s", model=True),
        Case(["voice", "remove", "nobody"], "no saved voice"),
        Case(["voice", "remove", "../home"], "voice name"),
        # continue / generate
        Case(["continue", "missing.wav", "-o", "../out/c.wav", *bundle], "no such file"),
        Case(["continue", "text.wav", "-o", "../out/c.wav", *bundle], "not a readable audio file"),
        Case(["continue", "speech.wav", "-o", "../out/c.raw", *bundle], "unknown audio format"),
        Case(["continue", "speech.wav", "-o", "../out", *bundle], "is a folder"),
        Case(["continue", "speech.wav", "-o", "../out/c.wav", "--seconds", "0", *bundle], "--seconds"),
        Case(["continue", "speech.wav", "-o", "../out/c.wav", "--seed", str(2**70), *bundle], "--seed"),
        Case(["continue", "speech.wav", "-o", "../out/c.wav", "--device", "foo", *bundle], "not a device"),
        Case(["continue", "silent.wav", "-o", "../out/c.wav", *bundle], "silent", model=True),
        Case(["generate", "", "-o", "../out/g.wav", *bundle], "caption is empty"),
        Case(["generate", "rain", "-o", "../out/g.raw", *bundle], "unknown audio format"),
        Case(["generate", "rain", "-o", "../out/g.wav", *bundle], "not trained with captions"),
        Case(["generate", "rain", "-o", "../out/g.wav", "--seconds", "9999", *bundle], "--seconds"),
        # data
        Case(["data", "import", "folder", "missing", "-o", "../out/m.jsonl"], "no such folder"),
        Case(["data", "import", "folder", ".", "-o", "../out/m.txt"], "must end in .jsonl"),
        Case(["data", "import", "folder", ".", "-o", "../out"], "is a folder"),
        Case(["data", "import", "ljspeech", ".", "-o", "../out/m.jsonl"], "metadata.csv"),
        Case(["data", "import", "nonsense", ".", "-o", "../out/m.jsonl"], "nonsense"),
        Case(["data", "encode", "--manifest", "missing.jsonl", "--out", "../out/sh"], "no such manifest"),
        Case(["data", "encode", "--manifest", "bin.jsonl", "--out", "../out/sh"], "not UTF-8"),
        Case(["data", "encode", "--manifest", "manifest-types.jsonl", "--out", "../out/sh"], "must be text"),
        Case(["data", "encode", "--manifest", "manifest-domain.jsonl", "--out", "../out/sh"], "domain"),
        Case(["data", "encode", "--manifest", "manifest-domain.jsonl", "--out", "speech.wav"], "is a file"),
        Case(["data", "build", "--out", "speech.wav"], "is a file"),
        Case(["data", "build", "--out", "../out/c", "--hours", "0"], "--hours"),
        Case(["data", "align", "--manifest", "bin.jsonl", "--out", "../out/al"], "not UTF-8"),
    ]


CASES = _cases()


def test_the_fuzz_table_is_large():
    assert len(CASES) >= 60
    assert {c.args[0] for c in CASES} >= {"codec", "tts", "voice", "continue", "generate", "data"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, world, monkeypatch, capsys):
    if "no-cuda" in case.needs and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    monkeypatch.setenv("SONORANT_HOME", str(world / "home"))
    monkeypatch.chdir(world / "in")
    if case.stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(case.stdin))
    for cls in (Codec, HierarchicalLM):  # a model loads once for the whole table; a case that must not load one
        monkeypatch.setattr(cls, "from_pretrained", classmethod(_loaded if case.model else _refused))
    before = _tree(world)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(case.args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sonorant: error: "), err
    assert case.message in lines[0], lines[0]
    assert "Traceback" not in err
    assert _tree(world) == before


_LOADED: dict[tuple, torch.nn.Module] = {}
_LOADERS = {cls: cls.from_pretrained for cls in (Codec, HierarchicalLM)}


def _loaded(cls, directory, device="cpu"):
    key = (cls, str(Path(directory).resolve()), str(device))
    if key not in _LOADED:
        _LOADED[key] = _LOADERS[cls](directory, device=device)
    return _LOADED[key]


def _refused(cls, *args, **kwargs):
    raise ModelLoaded


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `root` (hidden ones too), with a file's size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (-1, 0)
            for p in root.rglob("*")}


def test_voice_list_shows_damaged_voices_and_keeps_the_rest(world, monkeypatch, capsys):
    monkeypatch.setenv("SONORANT_HOME", str(world / "home"))
    with pytest.raises(SystemExit) as exit_info:
        main(["voice", "list"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    rows = dict(line.split("\t", 1) for line in out.strip().splitlines())
    assert rows["good"].startswith("2.0 s\ten-us\tA test voice.")
    assert "damaged: voice.json holds a list" in rows["alist"] and "a name with a '.'" in rows["v1.0"]
    assert all("damaged" in rows[name] for name in ("notutf", "emptyobj", "wrongtype", "nofingerprint", "badshape",
                                                    "noprompt"))


def test_a_saved_voice_and_a_file_of_the_same_name(world, monkeypatch, tmp_path):
    from sonorant.tts.voices import VoiceError, voice_source

    monkeypatch.chdir(tmp_path)
    root = world / "home" / "voices"
    assert voice_source("good", None, root).kind == "saved" and voice_source("good", None, root).note is None
    (tmp_path / "good").mkdir()  # a folder cannot be a voice prompt: the saved voice is used, and we say so
    source = voice_source("good", None, root)
    assert source.kind == "saved" and "not the folder ./good" in source.note
    (tmp_path / "good").rmdir()
    (tmp_path / "good").write_bytes((world / "in" / "speech.wav").read_bytes())  # a file: ambiguous
    with pytest.raises(VoiceError, match="write ./good for the file"):
        voice_source("good", None, root)
    assert voice_source("./good", None, root).kind == "file"
    assert voice_source("v1.0", None, root).kind == "file"  # names have no '.': this is a file name


def test_emoji_and_empty_texts_keep_their_places_in_phonemize():
    from sonorant.text.frontend import phonemize

    with pytest.warns(UserWarning, match="dropped characters"):
        out = phonemize(["Hello.", "\U0001F600", "", "World."])
    assert len(out) == 4 and out[1] == out[2] == "" and out[0] and out[3]


def test_resume_refuses_a_checkpoint_that_is_not_ours(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for content in (b"not a checkpoint at all", None):
        if content is None:
            torch.save({"weights": torch.zeros(3)}, run / "checkpoint.pt")
        else:
            (run / "checkpoint.pt").write_bytes(content)
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "codec", "--config", "codec-tiny", "--data", str(corpus), "--out", str(run), "--resume",
                  "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(err) == 1 and "not a sonorant training checkpoint" in err[0], err
        assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]


def test_stream_to_a_full_disk_is_one_error(world, monkeypatch, capsys):
    class Full(io.RawIOBase):
        full = True

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            if self.full:
                raise OSError(28, "No space left on device")
            return len(data)

    disk = Full()
    stdout = io.TextIOWrapper(io.BufferedWriter(disk))
    monkeypatch.setattr(sys, "stdout", stdout)
    with pytest.raises(SystemExit) as exit_info:
        main(["tts", "Hello there.", "--stream", "--model", str(world / "bundle"), "--voice",
              str(world / "in" / "speech.wav"), "--max-seconds", "0.5", "--quiet"])
    disk.full = False
    stdout.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and err == ["sonorant: error: cannot write to stdout (No space left on device)"]


def test_the_prompt_is_read_only_as_far_as_it_is_used(tmp_path):
    """A voice prompt or a continuation's context is a few seconds of what may be a long file."""
    from sonorant.core.audio import load_audio

    path = tmp_path / "long.wav"
    sf.write(path, tone(30.0, 8000), 8000)
    head = load_audio(path, 16000, max_seconds=2.0)
    tail = load_audio(path, 16000, start_seconds=28.0)
    whole = load_audio(path, 16000)
    assert head.shape[-1] == 32000 and tail.shape[-1] == 32000
    torch.testing.assert_close(head[:, :31000], whole[:, :31000], atol=1e-5, rtol=0)
    torch.testing.assert_close(tail[:, 1000:], whole[:, -31000:], atol=1e-5, rtol=0)
    assert math.isclose(whole.shape[-1], 480000)


# `data import` with a manifest write that stops half way (the temporary file open), until it is killed.
STALLED_WRITE = """
import sys, time
import sonorant.data.manifest as manifest
to_json = manifest.Item.to_json
def stalled(self):
    print("writing", flush=True)
    time.sleep(120)
    return to_json(self)
manifest.Item.to_json = stalled
from sonorant.cli.app import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_write_leaves_no_temporary_file(tmp_path, signum, capsys):
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    corpus.mkdir()
    out.mkdir()
    sf.write(corpus / "a.wav", tone(0.5), 16000)
    command = ["data", "import", "folder", str(corpus), "-o", str(out / "m.jsonl")]
    child = subprocess.Popen([sys.executable, "-c", STALLED_WRITE, *command], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signum)
    _, err = child.communicate(timeout=120)
    if signum == signal.SIGTERM:  # handled like Ctrl-C: the temporary file is removed on the way out
        assert child.returncode == 143 and err.strip().splitlines()[-1] == "sonorant: terminated", err
        assert list(out.iterdir()) == []
        return
    left = list(out.iterdir())  # SIGKILL cannot be handled: the next write to the same file removes what it left
    assert child.returncode == -signal.SIGKILL and len(left) == 1 and left[0].name.startswith(".m.jsonl.")
    mine = out / f".m.jsonl.{os.getpid()}.abcdefgh.tmp"  # a live writer's temporary file stays
    mine.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(command)
    assert exit_info.value.code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [mine.name, "m.jsonl"]


# The CLI in a child process: after each command, whether torch was imported.
LIGHT = """
import sys
from sonorant.cli.app import main
for args in [a.split("|") for a in sys.argv[1:]]:
    try:
        main(args)
    except SystemExit as e:
        print(e.code, "torch" in sys.modules, file=sys.stderr, flush=True)
"""


def test_help_and_user_errors_load_no_model(tmp_path):
    """`--help`, `voice list` and the mistakes found before any model loads do not even import torch."""
    commands = ["--help", "tts|--help", "voice|list", "codec|encode|missing.wav|-o|x.stok",
                "tts|Hello.|-o|x.wav|--voice|missing.wav", "tts|\U0001F600|-o|x.wav", "codec|info|missing.stok",
                "voice|add|v1.0|missing.wav", "continue|missing.wav|-o|x.wav", "data|import|folder|none|-o|m.jsonl"]
    done = subprocess.run([sys.executable, "-c", LIGHT, *commands], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**os.environ, "SONORANT_HOME": str(tmp_path / "home")})
    results = [line.split() for line in done.stderr.splitlines() if line.split()[-1] in ("True", "False")]
    assert [code for code, _ in results] == ["0", "0", "0"] + ["2"] * 7, done.stderr
    assert all(imported == "False" for _, imported in results), done.stderr
