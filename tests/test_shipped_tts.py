"""The shipped TTS bundle: release files only, installed as package data, reading its text, the main job."""

from __future__ import annotations

import fnmatch
import json

import pytest
import soundfile as sf
import tomllib
import torch

from sonorant.codec import Codec
from sonorant.core.paths import default_model_dir
from sonorant.lm import Conditioning, LMBatch
from sonorant.lm.batch import pointer_from_durations
from sonorant.text.frontend import phonemize
from sonorant.tts import Synthesizer
from sonorant.tts.bundle import lm_codec_fingerprint, resolve_bundle

from .conftest import EXAMPLE_WAV, REPO

# Measured on the shipped LM: 1.19 nats per frame between the default voice's own phonemes and these.
GAP = 0.5
OTHER_TEXT = "Nothing is easier than to denounce the evildoer; nothing is more difficult than to understand him."


@pytest.fixture(scope="module")
def synth() -> Synthesizer:
    return Synthesizer.from_pretrained()


def test_the_bundle_is_release_files_within_80_mb_and_all_package_data():
    root = default_model_dir()
    paths = resolve_bundle(None)
    assert paths.lm == root / "tts" and paths.codec == root / "codec" and paths.voices == root / "voices"
    assert paths.aligner == root / "aligner" and (paths.aligner / "frontend.json").is_file()
    for release in (paths.lm, paths.codec, paths.aligner):
        assert json.loads((release / "config.json").read_text())["kind"] in ("lm", "codec", "aligner")
        assert (release / "model.safetensors").is_file()
    assert (root / "voices" / "default.wav").is_file() and (root / "voices" / "default.txt").read_text().strip()
    files = [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert not [p for p in files if p.suffix in (".pt", ".pth", ".pkl", ".ckpt", ".bin")]  # nothing pickled
    assert sum(p.stat().st_size for p in files) < 80 * 2**20
    # Every release file matches the wheel's package-data patterns, so an installed wheel finds it.
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "sonorant.pretrained"]
    shipped = [p.relative_to(root).as_posix() for p in files if p.suffix in (".json", ".safetensors", ".wav", ".txt")]
    assert all(any(fnmatch.fnmatch(name, pattern.replace("**/", "*")) or fnmatch.fnmatch(name, pattern)
                   for pattern in patterns) for name in shipped)
    recorded = json.loads((paths.lm / "config.json").read_text())["extra"]["codec"]["fingerprint"]
    assert lm_codec_fingerprint(paths.lm) == recorded
    assert Codec.from_pretrained(paths.codec).fingerprint == recorded  # config keys added since keep its name
    # the codec's phonetic head ships with its classes, so `eval codec --alignments` can score the bundle's codec
    phonetic = json.loads((paths.codec / "config.json").read_text()).get("phonetic_classes", 0)
    assert (paths.codec / "frontend.json").is_file() == bool(phonetic)


def test_the_shipped_lm_reads_its_phonemes(synth):
    # Teacher-forced loss of the default voice's clip (a training voice) on its own aligned phonemes against
    # another sentence's phonemes at the same pointer positions, prompted by a held-out voice: an LM that
    # ignores the phonemes scores both the same.
    default = synth.resolve_voice(None)
    codes = default.codes[: synth.lm.num_codebooks][None]  # [1, K, T]
    durations = synth.aligned_prompt(default, "en-us", [])
    assert durations is not None and sum(durations) == codes.shape[-1]
    pointer = pointer_from_durations(durations)[None]
    prompt = synth.voice_from_audio(EXAMPLE_WAV).codes[: synth.lm.num_codebooks][None]
    right, wrong = phonemize([default.text, OTHER_TEXT], "en-us")

    def loss(ipa: str) -> float:
        ids = torch.tensor([synth.frontend.utterance_ids(ipa, "en-us")])
        cond = Conditioning(ids, torch.tensor([ids.shape[1]]), prompt, torch.tensor([prompt.shape[-1]]))
        with torch.no_grad():
            return float(synth.lm(LMBatch(cond, codes, torch.tensor([codes.shape[-1]]), pointer)).loss)

    assert loss(wrong) - loss(right) > GAP


def test_main_job_speaks_and_stops_by_itself(cli, tmp_path):
    result = cli(["tts", "Hello there.", "-o", "hello.wav", "--seed", "0"], tmp_path)
    assert result.returncode == 0, result.stderr
    audio, rate = sf.read(tmp_path / "hello.wav")
    assert rate == 16000 and 0.4 < len(audio) / rate < 3.0  # two words, not run-on audio
    assert "1 text chunk(s), 1 ended by the model" in result.stderr, result.stderr
