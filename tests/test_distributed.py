"""Training under torchrun: two gloo processes equal one process on the same global batch (DDP and FSDP),
codebooks stay identical across ranks, and a killed run resumes to the same weights."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from sonorant.lm import Conditioning, HierarchicalLM, LMBatch
from sonorant.lm.model import IGNORE
from sonorant.training.batching import rank_parts
from sonorant.training.checkpoint import load_checkpoint
from sonorant.training.lm_task import share_of_loss
from sonorant.training.recipe import lm_recipe, load_recipe_dict
from sonorant.training.run import train_codec, train_lm


def torchrun(args: list, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run the CLI under torchrun. A worker killed by a signal inside torch's gloo transport (seen once in
    many runs on a loaded CI machine, in torch's own code; not reproduced in 8 runs here) gets one rerun with
    a fresh --out; any other failure, or a second crash, fails the test. The workers print their Python stack
    on a segfault (PYTHONFAULTHANDLER)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "sonorant.cli", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0 and "Signal 11 (SIGSEGV)" in result.stderr and "--resume" not in args:
        out = args[args.index("--out") + 1]
        shutil.rmtree(out, ignore_errors=True)
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def recipe(tmp_path, name: str, train: dict | None = None, quantizer: dict | None = None):
    data = load_recipe_dict(name)
    data["train"].update(train or {})
    if quantizer:
        data["model"]["quantizer"].update(quantizer)
    path = tmp_path / f"{name}-custom.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def weights(run_dir, name: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoint.pt")["modules"][name]


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float | None = 1e-5,
                 mean_atol: float = 1e-7) -> None:
    """Same weights up to float summation order: every element within `atol` (None: no bound, for Adam,
    whose first steps turn a float-noise difference in a near-zero gradient into a full step), and on
    average within `mean_atol` (a step on another batch moves weights by about the learning rate)."""
    assert a.keys() == b.keys()
    diffs = [(a[k].float() - b[k].float()).abs() for k in a if a[k].is_floating_point()]
    mean = float(sum(d.sum() for d in diffs)) / sum(d.numel() for d in diffs)
    assert mean < mean_atol, mean
    if atol is not None:
        worst = max(float(d.max()) for d in diffs)
        assert worst < atol, worst


def replica_rows(run_dir) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "replicas"]


# -- splitting the global batch ------------------------------------------------------------------------
def test_rank_parts_deal_every_item_once():
    costs = [5, 5, 6, 6, 7, 7, 8, 9]
    parts = [rank_parts(costs, 2, r, limit=12) for r in range(2)]
    assert sorted(i for rank in parts for part in rank for i in part) == list(range(8))
    assert len(parts[0]) == len(parts[1]) == 3  # the busiest rank needs 3 forwards of <= 12 frames; both run 3
    with pytest.raises(Exception, match="cannot be shared by 4 processes"):
        rank_parts([1, 1, 1], 4, 0)


def test_micro_batch_losses_add_up_to_the_global_loss():
    torch.manual_seed(0)
    model = HierarchicalLM(lm_recipe(load_recipe_dict("lm-tiny")).model).train()
    lengths = torch.tensor([7, 5, 9, 3])
    codes = torch.randint(0, 64, (4, 4, 9))
    text = torch.randint(1, 30, (4, 6))
    cond = Conditioning(text, torch.tensor([6, 4, 5, 0]))  # the last item has no text: it ends by the end token
    pointer = torch.stack([torch.arange(9) * n // max(int(m), 1) for n, m in zip([6, 4, 5, 1], lengths, strict=True)])
    has_text = cond.phoneme_lengths > 0
    drop = torch.zeros(4, dtype=torch.bool)
    whole = model(LMBatch(cond, codes, lengths, pointer, drop))
    counts = (whole.targets != IGNORE).sum(dim=(0, 1))
    assert torch.equal(model.target_counts(lengths, has_text)[:-1], counts)
    assert int(model.target_counts(lengths, has_text)[-1]) == int(lengths[has_text].sum())  # pointer decisions
    totals = model.target_counts(lengths, has_text)
    summed = 0
    for part in ([0, 2], [1, 3]):
        sub = LMBatch(cond.map(lambda t, part=part: t[part]), codes[part], lengths[part], pointer[part], drop[part])
        out = model(sub)
        summed = summed + share_of_loss(out.losses, model.target_counts(lengths[part], has_text[part]), totals,
                                        model.config.codebook_weights, model.config.pointer_weight)
    assert torch.allclose(summed, whole.loss, atol=1e-6)


def test_gradient_accumulation_equals_one_forward(shards, tmp_path):  # noqa: F811
    config = recipe(tmp_path, "lm-tiny", {"batch_size": 4})
    train_lm(str(config), shards, tmp_path / "whole", quiet=True)
    accumulated = recipe(tmp_path, "lm-tiny", {"batch_size": 4, "micro_batch_size": 1})
    train_lm(str(accumulated), shards, tmp_path / "micro", quiet=True)
    assert_close(weights(tmp_path / "whole", "lm"), weights(tmp_path / "micro", "lm"))


# -- two processes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
@pytest.mark.slow
def test_two_processes_equal_one_on_the_same_global_batch(strategy, shards, tmp_path):  # noqa: F811
    config = recipe(tmp_path, "lm-tiny", {"batch_size": 4})
    train_lm(str(config), shards, tmp_path / "one", quiet=True)
    # Two processes, each with gradient accumulation over micro-batches of one item.
    two = recipe(tmp_path, "lm-tiny", {"batch_size": 4, "micro_batch_size": 1, "strategy": strategy})
    torchrun(["train", "lm", "--config", two, "--shards", shards, "--out", tmp_path / "two", "--device", "cpu"])
    assert_close(weights(tmp_path / "one", "lm"), weights(tmp_path / "two", "lm"))
    logged = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in logged if r["split"] == "train"]
    assert len(train_rows) == 4 and all(r["samples_per_second"] > 0 and r["tokens_per_second"] > 0
                                        for r in train_rows)
    if strategy == "ddp":
        assert replica_rows(tmp_path / "two") and all(r["differing"] == 0 for r in replica_rows(tmp_path / "two"))


@pytest.mark.slow
def test_codec_under_ddp_equals_one_process(corpus, tmp_path):
    # Quantizer dropout is on (its choices come with the batch); k-means init and dead-code replacement
    # sample codebook entries at random, so they are off here and tested across ranks below.
    config = recipe(tmp_path, "codec-tiny", {"batch_size": 4}, {"dead_code_threshold": 0.0})
    train_codec(str(config), corpus, tmp_path / "one", quiet=True)
    torchrun(["train", "codec", "--config", config, "--data", corpus, "--out", tmp_path / "two", "--device", "cpu"])
    assert_close(weights(tmp_path / "one", "codec"), weights(tmp_path / "two", "codec"), atol=None, mean_atol=1e-6)


@pytest.mark.slow
def test_codebooks_stay_identical_across_ranks(corpus, tmp_path):
    """k-means init, EMA updates and dead-code replacement all on, with the discriminator: no hang, and every
    parameter and buffer (codebooks, cluster sizes) equal on both ranks at every checkpoint."""
    data = load_recipe_dict("codec-tiny")
    data["model"]["quantizer"].update(kmeans_init=True, kmeans_iters=2, dead_code_threshold=2.0)
    data["train"].update(batch_size=4, max_steps=4, checkpoint_every=2)
    data["loss"].update(adversarial=True, discriminator_channels=4)
    config = tmp_path / "codec.yaml"
    config.write_text(yaml.safe_dump(data))
    torchrun(["train", "codec", "--config", config, "--data", corpus, "--out", tmp_path / "two", "--device", "cpu"])
    rows = replica_rows(tmp_path / "two")
    assert [r["step"] for r in rows] == [2, 4]
    assert all(r["differing"] == 0 and r["tensors"] > 50 for r in rows)
    state = weights(tmp_path / "two", "codec")
    assert all(bool(v) for k, v in state.items() if k.endswith("initted"))  # k-means ran


@pytest.mark.slow
def test_killed_two_process_run_resumes_to_the_same_weights(shards, tmp_path):  # noqa: F811
    config = recipe(tmp_path, "lm-tiny", {"batch_size": 4, "max_steps": 8, "checkpoint_every": 2})
    args = ["train", "lm", "--config", config, "--shards", shards, "--device", "cpu"]
    torchrun([*args, "--out", tmp_path / "straight"])
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "sonorant.cli", *map(str, args), "--out", str(killed)]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        if (killed / "checkpoint.pt").exists():
            break
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)  # the whole job, mid-run (after the first checkpoint)
    job.wait()
    steps_done = load_checkpoint(killed / "checkpoint.pt")["step"]
    torchrun([*args, "--out", killed, "--resume"])
    assert steps_done < 8 or pytest.skip("the run finished before it could be killed")
    assert_close(weights(tmp_path / "straight", "lm"), weights(killed, "lm"), atol=1e-6)


@pytest.mark.slow
def test_compiled_training_matches_eager_with_the_same_checkpoint_keys(shards, tmp_path):  # noqa: F811
    config = recipe(tmp_path, "lm-tiny", {"max_steps": 2})
    train_lm(str(config), shards, tmp_path / "eager", quiet=True)
    train_lm(str(config), shards, tmp_path / "compiled", quiet=True, compile=True)
    assert_close(weights(tmp_path / "eager", "lm"), weights(tmp_path / "compiled", "lm"), atol=None, mean_atol=1e-6)
