"""The hierarchical LM: causality, cached generation == teacher forcing, overfitting, sampling, stop."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sonorant.lm import Conditioning, Generation, HierarchicalLM, LMBatch, LMConfig, SamplingConfig
from sonorant.lm.batch import pointer_from_durations
from sonorant.lm.sampling import exponential, filter_logits, guided, noise_width, sample

K, CARD, VOCAB = 4, 32, 20


def tiny_config(**overrides) -> LMConfig:
    base = dict(num_codebooks=K, codebook_size=CARD, text_vocab_size=VOCAB, dim=32, num_layers=2, num_heads=2,
                local_dim=16, local_layers=1, local_heads=2, codebook_weights=(2.0, 1.0, 1.0, 1.0),
                condition_dropout=0.0)
    return LMConfig(**{**base, **overrides})


def make_batch(seed: int = 0) -> LMBatch:
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(1, VOCAB, (3, 7), generator=g)
    prompt = torch.randint(0, CARD, (3, K, 5), generator=g)
    codes = torch.randint(0, CARD, (3, K, 9), generator=g)
    # Items 0 and 1 speak 7 and 4 phonemes over 9 and 6 frames; item 2 has no text (it ends by the end token).
    cond = Conditioning(text, torch.tensor([7, 4, 0]), prompt, torch.tensor([5, 2, 0]))
    pointer = torch.zeros(3, 9, dtype=torch.long)
    pointer[0] = pointer_from_durations([1, 2, 1, 1, 2, 1, 1])
    pointer[1, :6] = pointer_from_durations([2, 1, 2, 1])
    return LMBatch(cond, codes, torch.tensor([9, 6, 3]), pointer)


def finite(x: torch.Tensor) -> torch.Tensor:
    return x.masked_fill(torch.isinf(x), 0.0)


@pytest.fixture(params=["first", "every"])
def model(request) -> HierarchicalLM:
    torch.manual_seed(0)
    return HierarchicalLM(tiny_config(local_context=request.param)).eval()


def test_future_frames_and_later_codebooks_do_not_change_past_logits(model):
    batch = make_batch()
    ref = finite(model(batch).logits)
    changed = batch.codes.clone()
    changed[0, 2:, 5] = (changed[0, 2:, 5] + 1) % CARD  # codebooks 2.. of frame 5
    changed[0, :, 6:] = (changed[0, :, 6:] + 1) % CARD  # every later frame
    out = finite(model(LMBatch(batch.condition, changed, batch.code_lengths, batch.pointer)).logits)
    assert torch.equal(out[0, :5], ref[0, :5])
    assert torch.equal(out[0, 5, :3], ref[0, 5, :3])  # codebook j sees codebooks < j only
    assert not torch.equal(out[0, 5, 3], ref[0, 5, 3])
    assert not torch.equal(out[0, 7], ref[0, 7])
    assert torch.equal(out[1:], ref[1:])  # other items are untouched


def test_cached_generation_equals_teacher_forced_logits(model):
    batch = make_batch()
    gen = Generation(model, batch.condition, SamplingConfig(seed=3, max_frames=6, repetition_ratio=0.0),
                     keep_logits=True)
    frames = list(gen)
    codes = torch.stack([f.codes for f in frames], dim=-1)
    lengths = torch.stack([f.valid for f in frames], dim=-1).sum(-1)
    tokens = torch.stack([f.token for f in frames], dim=-1)
    # Teacher-force the generated frames on the tokens the pointer was on (the prompt lengths differ, so
    # generation was left-padded).
    forced = model(LMBatch(batch.condition, codes, lengths, tokens)).logits
    for t, frame in enumerate(frames):
        for i in range(3):
            if frame.valid[i]:
                # (generation also bars the end token of items with text: their pointer ends them)
                assert torch.allclose(finite(frame.logits[i, :, :CARD]), finite(forced[i, t, :, :CARD]), atol=1e-4)


def test_batch_generation_equals_one_item_at_a_time(model):
    batch = make_batch()
    greedy = SamplingConfig(temperature=0.0, max_frames=5)
    together = Generation(model, batch.condition, greedy).run()
    for i in range(3):
        alone = batch.condition.map(lambda t, i=i: t[i:i + 1])
        single = Generation(model, alone, greedy).run()
        n = int(single.lengths[0])
        assert int(together.lengths[i]) == n
        assert torch.equal(together.codes[i, :, :n], single.codes[0, :, :n])


def test_tiny_model_overfits_and_stops_by_itself():
    torch.manual_seed(0)
    model = HierarchicalLM(tiny_config())
    batch = make_batch()
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    first = None
    for _ in range(150):
        loss = model(batch).loss
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    final = model(batch).loss.item()
    assert final < 0.1 * first
    result = Generation(model.eval(), batch.condition, SamplingConfig(temperature=0.0, max_frames=30)).run()
    assert result.ended.all()  # the pointer (text) and the end token (no text) stopped every item
    assert torch.equal(result.lengths, batch.code_lengths)
    assert torch.equal(result.tokens[0], batch.pointer[0])  # the learnt durations
    for i in range(3):
        n = int(batch.code_lengths[i])
        assert torch.equal(result.codes[i, :, :n], batch.codes[i, :, :n])


def test_same_seed_same_tokens_and_cfg_scale_one_is_the_conditional_pass(model):
    cond = make_batch().condition
    sampling = SamplingConfig(seed=7, max_frames=8)
    a = Generation(model, cond, sampling, keep_logits=True).run()
    b = Generation(model, cond, sampling).run()
    other = Generation(model, cond, SamplingConfig(seed=8, max_frames=8)).run()
    assert torch.equal(a.codes, b.codes)
    assert not torch.equal(a.codes, other.codes)
    scale_one = SamplingConfig(seed=7, max_frames=8, cfg_scale=1.0)
    frames_c = list(Generation(model, cond, sampling, keep_logits=True))
    frames_g = list(Generation(model, cond, scale_one, keep_logits=True))
    assert len(frames_c) == len(frames_g)
    for fc, fg in zip(frames_c, frames_g, strict=True):
        assert torch.equal(fc.codes, fg.codes)
        # The guided run pads the batch differently; the conditional pass is the same up to rounding.
        assert torch.allclose(finite(fc.logits), finite(fg.logits), atol=1e-5)
    strong = list(Generation(model, cond, SamplingConfig(seed=7, max_frames=8, cfg_scale=3.0), keep_logits=True))
    assert not torch.equal(strong[0].logits, frames_c[0].logits)


def test_without_text_the_cap_stops_generation():
    model = HierarchicalLM(tiny_config(max_frames_without_text=7)).eval()
    cond = Conditioning(torch.zeros(2, 1, dtype=torch.long), torch.tensor([0, 0]))
    # Forbid the end token so only the cap can stop generation.
    step = model.local_step
    end = torch.tensor([model.config.end_token])
    model.local_step = lambda *args: step(*args).index_fill(-1, end, float("-inf"))
    assert Generation(model, cond, SamplingConfig(seed=0)).run().lengths.tolist() == [7, 7]
    result = Generation(model, cond, SamplingConfig(seed=0, max_frames=4)).run()
    assert result.lengths.tolist() == [4, 4] and not result.ended.any()


def test_guidance_and_filters():
    cond, uncond = torch.tensor([[2.0, 0.0, float("-inf")]]), torch.tensor([[1.0, 1.0, float("-inf")]])
    assert torch.equal(guided(cond, uncond, 1.0), cond)
    assert torch.equal(guided(cond, uncond, 2.0), torch.tensor([[3.0, -1.0, float("-inf")]]))
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, 2, 1.0)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, 0, 0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, 0, 0.5)).tolist() == [[False, True, True, True]]


def test_repetition_aware_sampling_leaves_a_loop():
    logits = torch.log(torch.tensor([[0.9, 0.05, 0.05]])).expand(400, -1)
    config = SamplingConfig(top_k=1, repetition_window=10, repetition_ratio=0.5)
    g = torch.Generator().manual_seed(0)
    race = exponential((400, noise_width(config, 3)), g)
    fresh = torch.full((400, 10), -1)
    assert (sample(logits, config, race, fresh) == 0).all()  # top-1 without a loop
    looping = torch.zeros(400, 10, dtype=torch.long)  # token 0 filled the whole window
    tokens = sample(logits, config, race, looping)
    share = (tokens != 0).float().mean()
    assert 0.03 < share < 0.2  # resampled from the full distribution (10% would be non-zero)


def test_release_round_trip(tmp_path, model):
    batch = make_batch()
    model.save_pretrained(tmp_path / "lm")
    loaded = HierarchicalLM.from_pretrained(tmp_path / "lm")
    assert loaded.config == model.config
    assert torch.equal(finite(loaded(batch).logits), finite(model(batch).logits))


def test_local_transformer_on_a_subset_of_frames_trains():
    torch.manual_seed(0)
    model = HierarchicalLM(tiny_config(local_frame_fraction=0.5)).train()
    out = model(make_batch())
    assert out.logits is None and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.heads.grad is not None and model.global_transformer.blocks[0].attn.qkv.weight.grad is not None


@pytest.mark.slow
def test_bench_lm_compares_against_the_flat_baseline_and_cache():
    from sonorant.evaluation.bench_lm import bench_lm, bench_table
    from sonorant.training.recipe import lm_recipe, load_recipe_dict

    config = lm_recipe(load_recipe_dict("lm-tiny")).model
    result = bench_lm(config, "lm-tiny", frames=(40,), repeats=1, generate_frames=12, threads=1)
    flat = next(c for c in result.train if c.model == "flat")
    hier = next(c for c in result.train if c.model == "hierarchical")
    assert flat.sequence > config.num_codebooks * 40 > hier.sequence
    assert result.cached_equals_uncached
    assert "KV cache speed-up" in bench_table(result)


def test_sequence_layout_prompt_then_target():
    seq = HierarchicalLM(tiny_config()).build_sequence(make_batch().condition)
    # [PROMPT][prompt frames][BOS]: the phonemes are not in the sequence, they ride on the target frames
    assert seq.prompt_mark.tolist() == [0, 0, 0] and seq.bos.tolist() == [6, 3, 1]


def test_draw_follows_the_tempered_distribution_and_top_k_keeps_the_best():
    from sonorant.lm.sampling import draw

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    logits = probs.log().expand(20000, -1)
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(draw(logits, 1.0, exponential((20000, 5), g)), minlength=5) / 20000
    assert torch.allclose(counts, probs, atol=0.015) and counts[4] == 0  # -inf is never drawn
    sharp = torch.bincount(draw(logits, 0.5, exponential((20000, 5), g)), minlength=5) / 20000  # p^2, renormalised
    assert torch.allclose(sharp, probs**2 / (probs**2).sum(), atol=0.015)
    top2_config = SamplingConfig(top_k=2, repetition_ratio=0.0)
    top2 = sample(logits, top2_config, exponential((20000, noise_width(top2_config, 5)), g))
    assert set(top2.tolist()) == {0, 1} and abs((top2 == 0).float().mean() - 0.5 / 0.8) < 0.015


def test_traced_steps_generate_exactly_what_eager_steps_do(model):
    from sonorant.core.errors import ModelError

    batch = make_batch()
    guided = SamplingConfig(seed=5, max_frames=8, cfg_scale=2.0)  # the guided batch: twice the items

    def frames(config: SamplingConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(f.codes, f.logits) for f in Generation(model, batch.condition, config, keep_logits=True)]

    eager = frames(guided), frames(SamplingConfig(seed=5, max_frames=8))
    with pytest.raises(ModelError):
        model.train().trace_steps_()
    model.eval().trace_steps_()
    traced = frames(guided), frames(SamplingConfig(seed=5, max_frames=8))
    # Graphs are made on first use: the global step's one per batch size; the frame's (local steps, guidance,
    # sampling) one per batch size and sampling setting.
    assert sorted(model.global_transformer.traced.graphs) == [3, 6]
    assert sorted(key[:3] for key in model.traced_frames.graphs) == [(3, 3, None), (6, 3, 2.0)]
    for before, after in zip(eager, traced, strict=True):
        assert len(before) == len(after) == 8
        for (codes, a), (same, b) in zip(before, after, strict=True):
            assert torch.equal(codes, same)  # the same noise draws the same codes
            assert torch.equal(a.isinf(), b.isinf()) and torch.allclose(finite(a), finite(b), atol=1e-5)


def test_a_voice_s_start_is_computed_once_and_copied_bit_for_bit(model):
    from sonorant.lm import PrefixStore

    g = torch.Generator().manual_seed(3)
    prompt, forced = torch.randint(0, CARD, (1, K, 6), generator=g), torch.randint(0, CARD, (1, K, 5), generator=g)
    spoken = pointer_from_durations([2, 2, 1])[None]  # the forced frames speak the first three phonemes

    def conditioning(text: list[int], voice: torch.Tensor) -> Conditioning:
        return Conditioning(torch.tensor([text]), torch.tensor([len(text)]), voice, torch.tensor([6]))

    def logits(cond: Conditioning, store: PrefixStore | None) -> list[torch.Tensor]:
        sampling = SamplingConfig(seed=1, max_frames=6, cfg_scale=2.0)
        return [f.logits for f in Generation(model, cond, sampling, keep_logits=True, prefix=forced,
                                             prefix_pointer=spoken, start=torch.tensor([3]), store=store)]

    first, second = [3, 4, 5, 6, 7, 8, 9], [3, 4, 5, 11, 12, 13]  # the prompt's transcript, then new text
    for int8 in (False, True):
        if int8:
            model.int8_()  # activations quantized per call: only the same calls give the same numbers
        store, restored = PrefixStore(), []

        def spy(x, *rest, restore=store.restore, restored=restored):
            restored.append((x.shape[1], restore(x, *rest)))
            return restored[-1][1]

        store.restore = spy
        logits(conditioning(first, prompt), store)
        reused = logits(conditioning(second, prompt), store)
        # Marker, 6 prompt frames, BOS, 5 forced frames, each from BOS on with the phonemes of the frame it
        # predicts. The window of a frame on phoneme 1 reaches phoneme 3, the new text: the 9 positions
        # before the first such frame's are the voice's.
        assert restored == [(9, False), (9, True)]
        for a, b in zip(reused, logits(conditioning(second, prompt), None), strict=True):
            assert torch.equal(a, b)
        logits(conditioning(second, torch.randint(0, CARD, (1, K, 6), generator=g)), store)  # another voice
        assert restored[-1] == (9, False) and len(store._entries) == 2


def test_int8_weights_keep_the_logits_and_refuse_training(model):
    from sonorant.core.errors import ModelError
    from sonorant.lm.int8 import Int8Linear

    batch = make_batch()
    model.eval()
    with torch.no_grad():
        reference = model(batch).logits
        with pytest.raises(ModelError):
            model.train().int8_()
        model.eval().int8_()
        assert isinstance(model.global_transformer.blocks[0].attn.qkv, Int8Linear)
        quantized = model(batch).logits
    seen = ~torch.isinf(reference)
    scale = reference[seen].abs().max()
    assert (quantized[seen] - reference[seen]).abs().max() < 0.05 * scale
    assert (quantized[seen] - reference[seen]).abs().mean() < 0.01 * scale


def test_the_beat_clock_reads_the_same_frame_in_generation_and_teacher_forcing():
    """A caption's tempo is a clock every frame reads: generation (after forced frames too) must give each
    frame the phase teacher forcing gives it, and the clock must matter."""
    torch.manual_seed(0)
    model = HierarchicalLM(tiny_config(caption_dim=8)).eval()
    with torch.no_grad():
        model.beat_projection.weight.normal_(0.0, 1.0)  # a loud clock: a frame read at the wrong phase shows
    g = torch.Generator().manual_seed(1)
    cond = Conditioning(torch.zeros(3, 1, dtype=torch.long), torch.zeros(3, dtype=torch.long),
                        caption=torch.randn(3, 8, generator=g), has_caption=torch.tensor([True, True, False]),
                        beats_per_frame=torch.tensor([0.04, 0.07, 0.05]))
    forced = torch.randint(0, CARD, (3, K, 4), generator=g)
    sampling = SamplingConfig(seed=3, max_frames=6, min_frames=6, repetition_ratio=0.0)
    frames = list(Generation(model, cond, sampling, keep_logits=True, prefix=forced))
    codes = torch.cat([forced, torch.stack([f.codes for f in frames], dim=-1)], dim=-1)
    lengths = torch.full((3,), codes.shape[-1])
    teacher = model(LMBatch(cond, codes, lengths, torch.zeros(3, codes.shape[-1], dtype=torch.long))).logits
    for t, frame in enumerate(frames):
        assert torch.allclose(finite(frame.logits[:, :, :CARD]), finite(teacher[:, 4 + t, :, :CARD]), atol=1e-4)

    other = dataclasses.replace(cond, beats_per_frame=torch.tensor([0.05, 0.0, 0.09]))
    moved = model(LMBatch(other, codes, lengths, torch.zeros(3, codes.shape[-1], dtype=torch.long))).logits
    assert not torch.allclose(moved[0, 1:], teacher[0, 1:])  # another tempo: other phases from frame 1 on
    assert torch.equal(moved[0, 0], teacher[0, 0])  # frame 0 is on the beat at any tempo
    assert not torch.allclose(moved[1], teacher[1])  # a tempo against none
    assert torch.equal(moved[2], teacher[2])  # no caption (dropped for guidance): no clock


def test_a_caption_states_its_tempo():
    from sonorant.text.captions import beats_per_frame, caption_tempo

    assert caption_tempo("wistful arpeggios on the harpsichord in D minor, 100 bpm with drums") == 100.0
    assert caption_tempo("a slow groove at 72.5 BPM") == 72.5
    assert caption_tempo("rain on a tin roof") is None
    assert caption_tempo("a 5 bpm drone") is None  # no beat to keep
    assert torch.allclose(beats_per_frame(["120 bpm", "birdsong"], 50.0), torch.tensor([0.04, 0.0]))
