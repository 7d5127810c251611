"""What `make reproduce` will do, read with `make -n` (nothing runs): the profile a machine defaults to, the per-cell
limit papermill gets, and the hub profiles' preflight before anything downloads."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _dry(*args, path=None) -> str:
    env = dict(os.environ) | ({"PATH": path} if path else {})
    env.pop("PROFILE", None)
    proc = subprocess.run(["make", "-n", "reproduce", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_hub_profiles_compute_chapters_have_no_per_cell_limit():
    """Chapter 01 of onegpu is one cell of many hours: papermill's --execution-timeout would kill it."""
    assert "--execution-timeout" not in _dry("PROFILE=onegpu")
    assert "--execution-timeout" not in _dry("PROFILE=paper")
    assert "--execution-timeout 7200" in _dry("PROFILE=embedded")  # the CPU profiles keep a limit: a hang fails
    assert "--execution-timeout 7200" in _dry("PROFILE=onegpu", "DRY_RUN=1")


def _nvidia_smi(folder: Path, works: bool) -> str:
    """A PATH whose nvidia-smi lists a GPU, or fails as it does on a machine without a driver."""
    folder.mkdir()
    script = "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)'" if works else "exit 9"
    (folder / "nvidia-smi").write_text(f"#!/bin/sh\n{script}\n")
    (folder / "nvidia-smi").chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def test_the_default_profile_follows_the_gpu(tmp_path):
    with_gpu, without = _dry(path=_nvidia_smi(tmp_path / "gpu", True)), _dry(path=_nvidia_smi(tmp_path / "no", False))
    assert "-p profile onegpu" in with_gpu and "build/onegpu/" in with_gpu
    assert "-p profile embedded" in without and "build/embedded/" in without
    assert "-p profile smoke" in _dry("PROFILE=smoke", path=_nvidia_smi(tmp_path / "again", True))  # PROFILE= wins


def test_a_hub_profile_prints_its_plan_and_checks_the_hub_before_anything_downloads():
    lines = _dry("PROFILE=onegpu").splitlines()
    plan = next(i for i, line in enumerate(lines) if "-m arena plan --profile onegpu" in line)
    preflight = next(i for i, line in enumerate(lines) if "--preflight-only" in line)
    first_chapter = next(i for i, line in enumerate(lines) if "papermill" in line)
    assert plan < preflight < first_chapter
    assert "--preflight-only" not in _dry("PROFILE=onegpu", "DRY_RUN=1")  # a dry run uses no hub
