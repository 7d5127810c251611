"""Data-parallel training under `accelerate launch`, on CPU with two gloo processes: the launched run is the
single-process run (same data per step, same update), only process 0 writes, and a run resumes across modes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from arena import store
from arena.keys import train_key
from arena.runs import sized_method, train_method, train_spec
from arena.distributed import DataParallel
from arena.profiles import get_profile
from arena.train import StoppedEarly, checkpoint_dir

ROOT = Path(__file__).resolve().parent.parent
# OFT has no dropout: with dropout (LoRA's 0.05) each process draws its own masks, the one thing a launch changes
ARGS = ["--profile", "smoke", "--method", "oft", "--grad-accum", "2", "--steps", "4", "--save-every", "2"]


def _launch(results: Path, *args: str) -> subprocess.CompletedProcess:
    """`accelerate launch --multi_gpu --num_processes 2 -m arena train ...`, as a user with two GPUs would; on CPU
    accelerate needs ACCELERATE_USE_CPU (its `--cpu` flag alone starts one process)."""
    env = {**os.environ, "PEFT_ARENA_RESULTS": str(results), "ACCELERATE_USE_CPU": "true"}
    return subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                           "-m", "arena", "train", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def _final(results: Path) -> tuple[dict, dict]:
    profile = get_profile("smoke", grad_accum=2, steps=4, save_every=2)
    spec = train_spec(profile, sized_method(profile, "oft"))
    folder = next((results / "train").glob(f"oft-b*-{store.key_hash(train_key(profile, spec))}"))
    metrics = json.loads((folder / "metrics.json").read_text())
    return metrics, load_file(str(checkpoint_dir(folder, 4) / "weights.safetensors"))


def test_micro_batches_are_dealt_to_processes_without_overlap():
    shares = []
    for rank in range(4):
        parallel = object.__new__(DataParallel)  # no process group needed to deal the micro-batches
        parallel.size, parallel.rank = 4, rank
        shares.append(parallel.micro_batches(8))
    assert sorted(sum(shares, [])) == list(range(8)) and all(len(s) == 2 for s in shares)
    with pytest.raises(Exception, match="multiple of"):
        parallel.micro_batches(6)


@pytest.mark.e2e
def test_two_process_launch_equals_one_process(tmp_path, monkeypatch):
    proc = _launch(tmp_path / "ddp", *ARGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"label"') == 1  # one report, from process 0
    assert "train oft-b" in proc.stderr  # the progress bar of process 0 only
    monkeypatch.setenv("PEFT_ARENA_RESULTS", str(tmp_path / "one"))
    profile = get_profile("smoke", grad_accum=2, steps=4, save_every=2)
    train_method(profile, train_spec(profile, sized_method(profile, "oft")))
    (ddp, ddp_weights), (one, one_weights) = _final(tmp_path / "ddp"), _final(tmp_path / "one")
    assert ddp["processes"] == 2 and one["processes"] == 1
    assert ddp["losses"] == pytest.approx(one["losses"], abs=1e-5)
    assert ddp["train_tokens"] == one["train_tokens"] and ddp["response_tokens"] == one["response_tokens"]
    assert set(ddp_weights) == set(one_weights)
    for k in one_weights:
        assert torch.allclose(ddp_weights[k], one_weights[k], atol=1e-6), k


@pytest.mark.e2e
def test_a_run_killed_in_one_process_resumes_under_a_launch(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFT_ARENA_RESULTS", str(tmp_path / "straight"))
    profile = get_profile("smoke", grad_accum=2, steps=4, save_every=2)
    spec = train_spec(profile, sized_method(profile, "oft"))
    train_method(profile, spec)
    monkeypatch.setenv("PEFT_ARENA_RESULTS", str(tmp_path / "killed"))
    with pytest.raises(StoppedEarly):
        train_method(profile, spec, stop_after=3)  # the last saved state is step 2
    proc = _launch(tmp_path / "killed", *ARGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (resumed, resumed_weights), (straight, straight_weights) = _final(tmp_path / "killed"), _final(
        tmp_path / "straight")
    assert resumed["resumed_from"] == 2
    assert resumed["losses"] == pytest.approx(straight["losses"], abs=1e-5)
    for k in straight_weights:
        assert torch.allclose(resumed_weights[k], straight_weights[k], atol=1e-6), k


@pytest.mark.e2e
def test_a_launch_names_the_fix_for_an_uneven_share_and_for_evaluation(tmp_path):
    proc = _launch(tmp_path, "--profile", "smoke", "--method", "lora", "--grad-accum", "3", "--steps", "1")
    assert proc.returncode != 0 and "set --grad-accum to a multiple of 2" in proc.stderr


def test_evaluation_under_a_launch_is_refused(monkeypatch, capsys):
    from arena.__main__ import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["evaluate", "--profile", "smoke"]) == 2
    assert "only `train` runs data-parallel" in capsys.readouterr().err
