"""The shipped caption LM (the bundle's generate/): it keeps the tempo its caption states, and `generate` works
with the default bundle."""

from __future__ import annotations

import random
import re
import shutil

import pytest
import soundfile as sf
import torch

from sonorant.codec.files import encode_audio
from sonorant.core.audio import load_audio
from sonorant.data.music import compose, draw_piece, render, soundfont
from sonorant.lm import Conditioning, HierarchicalLM, LMBatch
from sonorant.text.captions import beats_per_frame, caption_encoder
from sonorant.tts import Synthesizer

can_render = pytest.mark.skipif(shutil.which("fluidsynth") is None or soundfont() is None,
                                reason="needs fluidsynth and a GM soundfont (installed by the test command)")


def caption_loss(lm: HierarchicalLM, codes: torch.Tensor, caption: str, tempo_of: str, frame_rate: float) -> float:
    """Teacher-forced loss of `codes` [K, T] under `caption`, its beat clock taken from `tempo_of`."""
    cond = Conditioning(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, dtype=torch.long),
                        caption=caption_encoder(lm.config.caption_encoder).encode([caption]),
                        has_caption=torch.ones(1, dtype=torch.bool),
                        beats_per_frame=beats_per_frame([tempo_of], frame_rate))
    with torch.no_grad():
        return float(lm(LMBatch(cond, codes[None], torch.tensor([codes.shape[-1]]))).loss)


@can_render
def test_the_shipped_caption_lm_keeps_the_tempo_its_caption_states(tmp_path):
    synth = Synthesizer.from_pretrained(captions=True, int8=False)
    lm, codec = synth.lm, synth.codec
    margins = []
    for seed in (10_001, 10_002):  # pieces drawn with seeds the corpus builder never uses
        piece = draw_piece(random.Random(seed))
        compose(piece).save(str(tmp_path / "piece.mid"))
        render(tmp_path / "piece.mid", tmp_path / "piece.wav")
        audio = load_audio(tmp_path / "piece.wav", codec.sample_rate)[:, : 8 * codec.sample_rate]
        codes = encode_audio(codec, audio, lm.num_codebooks)
        faster = re.sub(r"\d+ bpm", f"{round(piece.tempo * 1.3)} bpm", piece.caption)
        right = caption_loss(lm, codes, piece.caption, piece.caption, codec.frame_rate)
        margins.append(caption_loss(lm, codes, piece.caption, faster, codec.frame_rate) - right)
    # Measured on the shipped LM: 0.078 and 0.025 nats per frame; a model that ignores the tempo scores 0.
    assert min(margins) > 0.01 and sum(margins) / len(margins) > 0.03, margins


def test_generate_works_with_the_shipped_bundle(tmp_path, cli):
    out = cli(["generate", "cheerful arpeggios on the piano in C major, 120 bpm with drums", "-o", "g.wav",
               "--seconds", "2", "--seed", "1"], tmp_path)
    assert out.returncode == 0, out.stderr
    audio, rate = sf.read(tmp_path / "g.wav")
    assert abs(len(audio) / rate - 2.0) < 0.1 and float((audio**2).mean()) > 1e-6
