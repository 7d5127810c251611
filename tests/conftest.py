"""Shared fixtures: a private results store per test session, and CUDA-only markers that skip on CPU."""

import pytest


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (bitsandbytes 4-bit runs on CUDA only); none on this machine")
    for item in items:
        if "gpu" in item.keywords or "bnb" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_results(tmp_path_factory, monkeypatch):
    # Results written by tests never mix with a user's cached runs; downloaded assets are shared (they are verified).
    monkeypatch.setenv("PEFT_ARENA_RESULTS", str(tmp_path_factory.getbasetemp() / "results"))


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory):
    """`make reproduce PROFILE=smoke` once per test session: (output folder, finished process, wall seconds)."""
    import os
    import subprocess
    import time
    from pathlib import Path

    out = tmp_path_factory.mktemp("smoke") / "build"
    env = {**os.environ, "PEFT_ARENA_RESULTS": str(tmp_path_factory.getbasetemp() / "results")}
    start = time.perf_counter()
    proc = subprocess.run(["make", "reproduce", "PROFILE=smoke", f"OUT={out}"], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=1800, env=env)
    return out, proc, time.perf_counter() - start
