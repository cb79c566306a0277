"""`bench codec-train`: equal wall-clock budgets, peers' architectures trained by our trainer, honest rows."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from sonorant.cli.app import app, main
from sonorant.core.errors import SonorantError
from sonorant.data.manifest import Item, write_manifest
from sonorant.evaluation.bench_codec_train import (
    GroupScore,
    RaceSettings,
    TrainedCodec,
    _run_one,
    race_table,
    train_and_score,
)
from sonorant.training.codec_task import CodecTask
from sonorant.training.distributed import World
from sonorant.training.recipe import codec_recipe, load_recipe_dict
from sonorant.training.trainer import Trainer

from .conftest import tone


@pytest.fixture
def three_domains(tmp_path: Path) -> Path:
    """Train tones, and a test split with synthetic speech, a 'real' voice, music and a sound."""
    root = tmp_path / "corpus"
    (root / "wav").mkdir(parents=True)
    t = np.arange(16000) / 16000
    chord = sum(np.sin(2 * np.pi * f * t) for f in (262, 330, 392)).astype(np.float32) * 0.1
    clips = [(f"train{i}", tone(1.5, seed=i), "speech", "train", "espeak-ng:en") for i in range(6)]
    clips += [("speech", tone(1.5, seed=10), "speech", "test", "flite:slt"),
              ("real", tone(1.5, seed=11), "speech", "test", "hedgewars:Default"),
              ("music", chord, "music", "test", None),
              ("sound", (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32), "sound", "test",
               None)]
    items = []
    for name, wav, domain, split, base in clips:
        sf.write(root / "wav" / f"{name}.wav", wav, 16000)
        items.append(Item(id=name, path=f"wav/{name}.wav", duration=len(wav) / 16000, sample_rate=16000,
                          domain=domain, split=split, base_speaker=base))
    write_manifest(root / "manifest.jsonl", items)
    return root


@pytest.mark.slow
def test_training_stops_when_the_wall_clock_budget_is_spent(corpus, tmp_path, monkeypatch):
    clock = iter(range(10**6))  # a fake clock: one second more at every reading
    monkeypatch.setattr("sonorant.training.trainer.time", SimpleNamespace(perf_counter=lambda: float(next(clock))))
    recipe = codec_recipe(load_recipe_dict("codec-tiny"), {"max_steps": 10**6, "max_minutes": 0.5,
                                                           "checkpoint_every": 10**6})
    generator = torch.Generator().manual_seed(0)
    world = World(0, 1, 0, torch.device("cpu"))
    trainer = Trainer(CodecTask(recipe, corpus, world, generator), recipe.train, tmp_path / "run", world, generator,
                      quiet=True)
    trainer.fit()
    assert 5 <= trainer.step <= 30  # 30 fake seconds, a few readings per step; not a million steps
    assert (tmp_path / "run" / "checkpoint.pt").is_file()  # the end-of-run checkpoint still happens
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["step"] == trainer.step and {"train", "valid"} <= {row["split"] for row in logged}


@pytest.mark.parametrize("key", ["sonorant", "encodec"])
def test_each_architecture_learns_under_our_trainer(key, three_domains, tmp_path):
    if key == "encodec":
        pytest.importorskip("encodec")  # installed with the dev extras
    settings = RaceSettings(str(three_domains), str(three_domains / "manifest.jsonl"), budget_minutes=5.0,
                            tiny=True, max_items=2, max_steps=40)  # 40 steps: a few seconds here
    row = train_and_score(key, settings, tmp_path / key)
    assert row.error is None and row.steps == 40
    # stopped by the step count, not scheduled to it: the learning rate is still the budget run's (at its peak)
    logged = [json.loads(line) for line in (tmp_path / key / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in logged if r["split"] == "train"][-1]
    peak = codec_recipe(load_recipe_dict("codec-tiny")).train.lr
    assert last["step"] == 40 and last["lr"] == pytest.approx(peak, rel=1e-3)
    after = np.mean([s.mel_distance for s in row.scores])
    assert after < row.untrained_mel_distance - 0.1
    groups = {s.group: s for s in row.scores}
    assert set(groups) == {"speech", "speech-real", "music", "sound"}
    for name in ("speech", "speech-real"):
        assert 1.0 <= groups[name].pesq_wb <= 4.7 and 0.0 <= groups[name].stoi <= 1.0
    for name in ("music", "sound"):  # speech metrics are not reported for music or sound
        assert groups[name].pesq_wb is None and groups[name].stoi is None
    assert row.kbps == pytest.approx(50 * 4 * 6 / 1000)  # the tiny recipe's 4 x 64 codes at 50 Hz


def test_a_peer_that_cannot_run_gets_a_row_saying_why(three_domains, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # a virtual environment cannot be made under a file
    settings = RaceSettings(str(three_domains), str(three_domains / "manifest.jsonl"), budget_minutes=0.05, tiny=True)
    try:
        import dac  # noqa: F401
    except ImportError:
        row = _run_one("dac", settings, tmp_path / "dac", venv=blocker / "venv")
        assert row.error is not None and "environment could not be made" in row.error
        assert "not run: " + row.error in race_table([row], 0.05)
    else:
        pytest.skip("descript-audio-codec is importable here")


def test_race_table_reports_speech_metrics_for_speech_only():
    row = TrainedCodec("sonorant", "Ours", params_millions=1.0, kbps=4.0, steps=10, train_minutes=1.0,
                       seconds_per_step=6.0, untrained_mel_distance=1.5,
                       scores=[GroupScore("speech", 3, 2.5, 0.9, 0.5, 1.0, 5.0),
                               GroupScore("music", 2, None, None, 0.7, 1.2, 3.0)])
    table = race_table([row, TrainedCodec("dac", "DAC", error="descript-audio-codec is not installed")], 1.0)
    speech = table.split("Held-out speech")[1].split("Held-out music")[0]
    music = table.split("Held-out music")[1]
    assert "PESQ-WB" in speech and "| Ours | 2.50 | 0.900 | 0.500 |" in speech
    assert "PESQ-WB" not in music and "| Ours | 0.700 | 1.200 | 3.0 |" in music
    assert "1.500 -> 0.600" in table and "not run: descript-audio-codec is not installed" in table


def test_cli_needs_held_out_audio(tmp_path, capsys):
    folder = tmp_path / "audio"
    folder.mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "codec-train", "--data", str(folder), "--budget-minutes", "1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "no such manifest" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_writes_json_with_provenance(three_domains, tmp_path, monkeypatch):
    out = tmp_path / "race.json"
    args = ["bench", "codec-train", "--data", str(three_domains), "--budget-minutes", "0.03", "--tiny", "--arch",
            "sonorant", "--out", str(tmp_path / "runs"), "--max-items", "1", "--json", str(out)]
    monkeypatch.setattr("sys.argv", ["sonorant", *args])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["meta"]["command"].startswith("sonorant bench codec-train")
    assert data["meta"]["machine"] and data["meta"]["date"]
    assert [r["key"] for r in data["rows"]] == ["sonorant"] and data["rows"][0]["steps"] >= 1


@pytest.mark.slow
def test_eval_codec_scores_one_group_at_a_time(three_domains, tiny_codec):
    from sonorant.evaluation.codec_eval import evaluate_codec

    manifest = three_domains / "manifest.jsonl"
    speech, = evaluate_codec(tiny_codec, manifest, [4], group="speech")
    real, = evaluate_codec(tiny_codec, manifest, [4], group="speech-real")
    music, = evaluate_codec(tiny_codec, manifest, [4], group="music")
    assert speech.items == real.items == music.items == 1
    assert speech.pesq_wb is not None and real.stoi is not None
    assert music.pesq_wb is None and music.stoi is None and music.mel_distance > 0
    with pytest.raises(SonorantError, match="group 'sound'"):
        evaluate_codec(tiny_codec, manifest, [4], split="train", group="sound")
