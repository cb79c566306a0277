"""The aligned phoneme stream: pointer targets, one layout for training and generation, the guard rails."""

from __future__ import annotations

import pytest
import torch

from sonorant.lm import Conditioning, Generation, HierarchicalLM, LMBatch, LMConfig, SamplingConfig
from sonorant.lm.batch import advances, pointer_from_durations, spent_frames


def tiny(**kw) -> HierarchicalLM:
    torch.manual_seed(0)
    config = LMConfig(num_codebooks=2, codebook_size=16, dim=32, num_layers=2, num_heads=2, local_dim=16,
                      local_layers=1, local_heads=1, codebook_weights=(1.0, 1.0), text_vocab_size=20, **kw)
    return HierarchicalLM(config).eval()


def batch() -> LMBatch:
    phonemes = torch.tensor([[3, 4, 5, 6, 2], [7, 8, 9, 2, 0]])
    pointer = torch.stack([pointer_from_durations([2, 3, 3, 1, 1]),
                           torch.cat([pointer_from_durations([2, 2, 4]), torch.zeros(2, dtype=torch.long)])])
    codes = torch.randint(0, 16, (2, 2, 10), generator=torch.Generator().manual_seed(1))
    prompt = torch.randint(0, 16, (2, 2, 5), generator=torch.Generator().manual_seed(2))
    cond = Conditioning(phonemes, torch.tensor([5, 3]), prompt, torch.tensor([5, 3]))
    return LMBatch(cond, codes, torch.tensor([10, 8]), pointer)


def test_pointer_targets_from_durations():
    pointer = pointer_from_durations([2, 3, 1])[None]
    assert pointer.tolist() == [[0, 0, 1, 1, 1, 2]]
    assert spent_frames(pointer).tolist() == [[0, 1, 0, 1, 2, 0]]
    assert advances(pointer, torch.tensor([6])).tolist() == [[False, True, False, False, True, True]]


def test_generation_steps_reproduce_the_training_forward():
    # The one-frame step and the teacher-forced forward share one layout: the same advance logits.
    model, b = tiny(), batch()
    with torch.no_grad():
        offline = model(b).advance_logits  # [B, T]
        for f in (0, 3):
            cache = model.new_cache(2, 64)
            hidden, position = model.prefill(b.condition, cache, b.pointer[:, f], b.codes[:, :, :f],
                                              prefix_pointer=b.pointer[:, :f])
            assert torch.allclose(model.advance_logit(hidden), offline[:, f], atol=1e-5)
            for t in range(f + 1, 7):
                spent = spent_frames(b.pointer)[:, t]
                position = position + 1
                hidden = model.step(b.codes[:, :, t - 1], b.condition, b.pointer[:, t], spent, position,
                                    torch.full_like(spent, t), cache)
                assert torch.allclose(model.advance_logit(hidden), offline[:, t], atol=1e-5)


def test_the_pointer_never_skips_repeats_or_runs_on():
    model = tiny()
    cond = batch().condition
    with torch.no_grad():
        model.advance_head.bias.fill_(-50.0)  # a model that never wants to move on: the guard rail moves it
        out = Generation(model, cond, SamplingConfig(seed=0, max_frames_per_phoneme=3)).run()
    assert out.ended.all()
    assert out.lengths.tolist() == [15, 9]  # every phoneme for exactly the maximum
    for i, n in enumerate([5, 3]):
        tokens = out.tokens[i, : int(out.lengths[i])]
        assert tokens.unique().tolist() == list(range(n)) and (tokens.diff() >= 0).all()


def test_speed_shortens_the_utterance_monotonically():
    model = tiny()
    cond = batch().condition
    lengths = []
    with torch.no_grad():  # advance logits spread around 0 (about N(0, 2)), so the bias decides often
        torch.manual_seed(0)
        model.advance_head.weight.normal_(std=2 / model.config.dim**0.5)
        model.advance_head.bias.zero_()
        for speed in (0.5, 1.0, 2.0):
            out = Generation(model, cond, SamplingConfig(seed=0, speed=speed, max_frames_per_phoneme=30)).run()
            lengths.append(int(out.lengths.sum()))
    assert lengths[0] > lengths[1] > lengths[2]


def test_older_lm_releases_are_refused_with_one_clear_line(tmp_path):
    from sonorant.core.errors import ModelError
    from sonorant.core.release import save_release

    model = tiny()
    config = {k: v for k, v in model.config.to_dict().items() if k != "config_version"}
    save_release(tmp_path, "lm", {**config, "prompt_position": "before_text"}, model.state_dict())
    with pytest.raises(ModelError, match="aligned phoneme stream"):
        HierarchicalLM.from_pretrained(tmp_path)
