"""Shared fixtures: a private results store per test session, and CUDA-only markers that skip on CPU."""

import pytest


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine (nf4 tests run on CPU: -m nf4)")
    for item in items:
        if "gpu" in item.keywords or "bnb" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_results(tmp_path_factory, monkeypatch):
    # Results written by tests never mix with a user's cached runs; downloaded assets are shared (they are verified).
    monkeypatch.setenv("PEFT_ARENA_RESULTS", str(tmp_path_factory.getbasetemp() / "results"))


def _guarded_reproduce(tmp_path_factory, name: str, *make_args: str, profile: str = "smoke", timeout: int = 3600):
    """`make reproduce PROFILE=<profile> ...` under the network guard (tests/netguard): (output folder, finished process,
    wall seconds). Assets are fetched first, outside the guard: package downloads are allowed."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).parent.parent
    out = tmp_path_factory.mktemp(name) / "build"
    env = {**os.environ, "PEFT_ARENA_RESULTS": str(tmp_path_factory.getbasetemp() / "results")}
    subprocess.run([sys.executable, "-m", "arena", "assets", "--profile", "smoke"], cwd=root, check=True,
                   capture_output=True, env=env, timeout=1800)
    log = out.parent / "network-attempts.log"
    log.write_text("")
    guard = str(root / "tests" / "netguard")
    env |= {"ARENA_NETGUARD_LOG": str(log),
            "PYTHONPATH": os.pathsep.join(p for p in (guard, env.get("PYTHONPATH")) if p)}
    start = time.perf_counter()
    proc = subprocess.run(["make", "reproduce", f"PROFILE={profile}", f"OUT={out}", *make_args], cwd=root,
                          capture_output=True, text=True, timeout=timeout, env=env)
    return out, proc, time.perf_counter() - start


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory):
    """`make reproduce PROFILE=smoke` once per test session, under the network guard."""
    return _guarded_reproduce(tmp_path_factory, "smoke")


@pytest.fixture(scope="session")
def smoke_nf4_build(tmp_path_factory):
    """`make reproduce PROFILE=smoke QUANT=nf4` once per test session (bitsandbytes' CPU kernels), guarded."""
    return _guarded_reproduce(tmp_path_factory, "smoke-nf4", "QUANT=nf4")
