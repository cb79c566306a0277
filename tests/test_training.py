"""The trainer: one step on CPU, exact resume, export to a release, adversarial mode, learning."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from sonorant.codec import Codec
from sonorant.codec.losses import MultiScaleMelLoss
from sonorant.training.checkpoint import load_checkpoint
from sonorant.training.recipe import codec_recipe
from sonorant.training.run import export_run, train_codec

from .conftest import run, tone


def _weights(run_dir):
    return load_checkpoint(run_dir / "checkpoint.pt")["modules"]["codec"]


def test_one_step_through_the_cli_then_export(corpus, tmp_path):
    out = tmp_path / "run"
    assert run(["train", "codec", "--config", "codec-tiny", "--data", corpus, "--out", out, "--max-steps", "1",
                "--quiet"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 1
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"train", "valid"} <= {row["split"] for row in logged}
    assert any(p.name.startswith("events") for p in (out / "tensorboard").iterdir())
    assert run(["train", "export", out, "-o", tmp_path / "release"]) == 0
    codec = Codec.from_pretrained(tmp_path / "release")
    assert torch.equal(codec.state_dict()["decoder.layers.0.conv.parametrizations.weight.original1"],
                       _weights(out)["decoder.layers.0.conv.parametrizations.weight.original1"])
    # A run recorded before each task had its own train section (every task's keys, old names) still exports.
    recorded = yaml.safe_load((out / "recipe.yaml").read_text())
    recorded["train"].update(max_frames=1500, speakers=[], max_seconds=20.0, max_items=0, batch_frames=0)
    (out / "recipe.yaml").write_text(yaml.safe_dump(recorded))
    assert run(["train", "export", out, "-o", tmp_path / "again"]) == 0


@pytest.mark.slow
def test_resume_is_exact(corpus, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_codec("codec-tiny", corpus, straight, quiet=True)  # 4 steps
    train_codec("codec-tiny", corpus, split, max_steps=2, quiet=True)
    result = train_codec("codec-tiny", corpus, split, resume=True, quiet=True)
    assert result.resumed and result.step == 4
    a, b = _weights(straight), _weights(split)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_run_needs_resume(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    train_codec("codec-tiny", corpus, out, max_steps=1, quiet=True)
    assert run(["train", "codec", "--config", "codec-tiny", "--data", corpus, "--out", out, "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_adversarial_step_and_init_from(corpus, tmp_path, tiny_codec):
    tiny_codec.save_pretrained(tmp_path / "init")
    config = tmp_path / "adv.yaml"
    from sonorant.training.recipe import load_recipe_dict

    data = load_recipe_dict("codec-tiny")
    data["loss"] = {"adversarial": True, "discriminator_channels": 4}
    config.write_text(yaml.safe_dump(data))
    result = train_codec(str(config), corpus, tmp_path / "run", init_from=tmp_path / "init", max_steps=1, quiet=True)
    assert {"discriminator", "generator", "feature_matching"} <= set(result.metrics)
    assert "discriminator" in load_checkpoint(tmp_path / "run" / "checkpoint.pt")["modules"]


def test_unknown_recipe_and_bad_keys(corpus, tmp_path, capsys):
    assert run(["train", "codec", "--config", "nope", "--data", corpus, "--out", tmp_path / "r"]) == 2
    assert "codec-16k" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_sise: 3\n")
    assert run(["train", "codec", "--config", bad, "--data", corpus, "--out", tmp_path / "r"]) == 2
    assert "batch_sise" in capsys.readouterr().err


def test_each_task_refuses_the_train_keys_of_another():
    """A key of another task's train section is an error, not silently ignored; a renamed key names its new
    name; a run recorded with every task's keys (before the sections split) still resumes."""
    from sonorant.training.recipe import (
        RecipeError,
        aligner_recipe,
        codec_recipe,
        lm_recipe,
        load_recipe_dict,
        recorded_recipe,
    )

    codec = load_recipe_dict("codec-tiny")
    with pytest.raises(RecipeError, match="speakers does not apply"):
        codec_recipe({**codec, "train": {**codec["train"], "speakers": ["flite:"]}})
    lm = load_recipe_dict("lm-tiny")
    with pytest.raises(RecipeError, match="sample_every, segment_seconds do not apply"):
        lm_recipe({**lm, "train": {**lm["train"], "segment_seconds": 2.0, "sample_every": 10}})
    with pytest.raises(RecipeError, match="`max_frames` is now `max_item_frames`"):
        lm_recipe({**lm, "train": {**lm["train"], "max_frames": 500}})
    aligner = load_recipe_dict("aligner")
    with pytest.raises(RecipeError, match="frozen does not apply"):
        aligner_recipe({**aligner, "train": {**aligner["train"], "frozen": ["encoder"]}})
    old = {**lm, "train": {**lm["train"], "max_frames": 500, "segment_seconds": 1.0, "max_seconds": 20.0,
                           "sample_every": 1000, "frozen": []}}
    assert lm_recipe(recorded_recipe(old)).train.max_item_frames == 500
    with pytest.raises(RecipeError, match="batch_sise"):
        lm_recipe(recorded_recipe({**lm, "train": {**lm["train"], "batch_sise": 3}}))


@pytest.mark.slow
@pytest.mark.parametrize("model", [{}, {"encoder": "spectral", "encoder_dim": 32, "encoder_blocks": 2,
                                        "decoder": "istft", "decoder_dim": 32, "decoder_blocks": 2}],
                         ids=["seanet", "spectral-istft"])
def test_training_improves_reconstruction(corpus, tmp_path, model):
    """A short run lowers the mel distance of a held-out clip (the recipe actually learns), with either design."""
    clip = torch.from_numpy(tone(1.0, seed=9))[None, None]
    mel = MultiScaleMelLoss(16000)
    config = tmp_path / "learn.yaml"
    from sonorant.training.recipe import load_recipe_dict

    data = load_recipe_dict("codec-tiny")
    data["model"].update(model)
    data["train"].update(max_steps=60, batch_size=4, lr=0.003, warmup_steps=5, valid_every=1000,
                         checkpoint_every=1000, sample_every=1000, log_every=20)
    config.write_text(yaml.safe_dump(data))
    torch.manual_seed(0)
    train_codec(str(config), corpus, tmp_path / "r0", max_steps=1, quiet=True)
    train_codec(str(config), corpus, tmp_path / "r60", quiet=True)
    export_run(tmp_path / "r0", tmp_path / "m0")
    export_run(tmp_path / "r60", tmp_path / "m60")
    with torch.no_grad():
        losses = [float(mel(Codec.from_pretrained(tmp_path / m)(clip).audio, clip)) for m in ("m0", "m60")]
    assert losses[1] < 0.8 * losses[0]


def test_export_of_a_non_run_fails(tmp_path, capsys):
    assert run(["train", "export", tmp_path, "-o", tmp_path / "x"]) == 2
    assert "not a training run" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "frame_rate", "kbps", "latency_ms"), [
    ("codec-16k", 50.0, 4.0, 20.0), ("codec-16k-decoder", 50.0, 4.0, 40.0), ("codec-24k", 75.0, 6.0, 13.3),
    ("codec-44k", 86.1, 7.75, 11.6), ("codec-16k-spectral", 50.0, 4.0, 40.0),
    ("codec-16k-spectral-locked", 50.0, 4.0, 40.0)])
def test_shipped_recipes_build(name, frame_rate, kbps, latency_ms):
    """Each shipped recipe builds the codec its comment promises, and that codec keeps a clip's length."""
    from sonorant.training.recipe import codec_recipe, load_recipe_dict

    recipe = codec_recipe(load_recipe_dict(name))
    codec = Codec(recipe.model).eval()
    assert round(codec.frame_rate, 1) == frame_rate and round(codec.config.bitrate() / 1000, 2) == kbps
    assert round(codec.config.algorithmic_latency_ms, 1) == latency_ms
    wav = 0.1 * torch.randn(1, 1, codec.hop_length * 3 + 7)
    with torch.no_grad():
        assert codec(wav).audio.shape == wav.shape


def test_new_decoder_for_a_frozen_token_space(corpus, tmp_path, tiny_codec):
    """An istft decoder trained over a loaded, frozen encoder and quantizer: only the decoder moves, the token
    space (and so the fingerprint every token file, voice and LM records) stays the one it was loaded from."""
    from sonorant.training.recipe import load_recipe_dict

    tiny_codec.save_pretrained(tmp_path / "init")
    data = load_recipe_dict("codec-tiny")
    data["model"].update(decoder="istft", decoder_blocks=2)
    data["train"].update(frozen=["encoder", "quantizer"], max_steps=2)
    config = tmp_path / "istft.yaml"
    config.write_text(yaml.safe_dump(data))
    result = train_codec(str(config), corpus, tmp_path / "run", init_from=tmp_path / "init", quiet=True)
    assert {"amplitude", "phase", "group_delay", "phase_time", "complex", "consistency", "level"} <= set(result.metrics)
    export_run(tmp_path / "run", tmp_path / "release")
    trained = Codec.from_pretrained(tmp_path / "release")
    assert trained.config.decoder == "istft"
    before, after = tiny_codec.state_dict(), trained.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("encoder.", "quantizer.")))
    fresh = Codec(trained.config).state_dict()
    assert not torch.equal(after["decoder.head.weight"], fresh["decoder.head.weight"])
    assert trained.fingerprint == tiny_codec.fingerprint
    wav = torch.from_numpy(tone(0.5, seed=3))[None, None]
    assert torch.equal(trained.encode(wav), tiny_codec.encode(wav))
    half = Codec.from_pretrained(export_run(tmp_path / "run", tmp_path / "half", half=True))  # decoder in float16
    assert half.fingerprint == trained.fingerprint  # the tokens' weights stay exact
    sizes = [(tmp_path / d / "model.safetensors").stat().st_size for d in ("half", "release")]
    assert sizes[0] < sizes[1]
    with torch.no_grad():
        assert (half(wav).audio - trained(wav).audio).abs().max() < 1e-2


def test_a_locked_phase_trains_from_a_predicted_release(corpus, tmp_path, tiny_codec):
    """`decoder_phase: locked` trains on from an istft release with the same weights (only the phase it plays
    differs), its phase losses on the bins left unlocked, and exports a release that says so."""
    from sonorant.training.recipe import load_recipe_dict

    data = load_recipe_dict("codec-tiny")
    data["model"].update(decoder="istft", decoder_blocks=2)
    data["train"].update(max_steps=1)
    Codec(codec_recipe(data).model).save_pretrained(tmp_path / "init")
    data["model"]["decoder_phase"] = "locked"
    data["train"]["max_steps"] = 2
    data["loss"] = {"complex_weight": 0.0}
    config = tmp_path / "locked.yaml"
    config.write_text(yaml.safe_dump(data))
    result = train_codec(str(config), corpus, tmp_path / "run", init_from=tmp_path / "init", quiet=True)
    assert all(math.isfinite(v) for k, v in result.metrics.items() if k in ("mel", "amplitude", "phase", "loss"))
    assert Codec.from_pretrained(export_run(tmp_path / "run", tmp_path / "release")).config.decoder_phase == "locked"


def test_frozen_parts_need_init_from(corpus, tmp_path, capsys):
    from sonorant.training.recipe import load_recipe_dict

    data = load_recipe_dict("codec-tiny")
    data["train"]["frozen"] = ["encoder"]
    config = tmp_path / "frozen.yaml"
    config.write_text(yaml.safe_dump(data))
    assert run(["train", "codec", "--config", config, "--data", corpus, "--out", tmp_path / "r"]) == 2
    assert "--init-from" in capsys.readouterr().err
