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
