"""The sweep command line: one method end to end, and bad input as one line with exit code 2."""

import json
import subprocess
import sys

import pytest


def _cli(*args, env_results):
    import os

    env = {**os.environ, "PEFT_ARENA_RESULTS": str(env_results)}
    return subprocess.run([sys.executable, "-m", "arena", *args], capture_output=True, text=True, env=env,
                          timeout=900)


def test_evaluate_one_method_end_to_end(tmp_path):
    proc = _cli("evaluate", "--profile", "smoke", "--method", "lora", "--steps", "2", "--save-every", "1",
                env_results=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["method"] == "lora-r8" and out["trainable"] > 0
    for key in ("general", "target", "forgetting", "forgetting_se", "target_gain", "ce_drift", "kl"):
        assert isinstance(out[key], float), key


@pytest.mark.parametrize("args, message", [
    (["train", "--profile", "smoke", "--method", "lorax"], "unknown method 'lorax'; known methods: full, lora"),
    (["train", "--profile", "smoke", "--method", "lora", "--budget", "7"], "pick a budget in that range"),
    (["train", "--profile", "smoke", "--method", "oft", "--size", "7"], "b=7 does not divide"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    proc = _cli(*args, env_results=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_a_run_stopped_before_its_analyses_finishes_them_on_the_next_benchmark(monkeypatch):
    """A method whose training and scoring are stored but whose analyses or rewinding study were cut short (a killed
    process) is not retrained, but its analyses run again (each finished part is cached)."""
    from arena import benchmark
    from arena.profiles import get_profile

    calls = []
    for name in ("ensure_assets", "build_suite", "starting_bases", "build_validation"):
        monkeypatch.setattr(benchmark, name, lambda *a, **k: None)
    monkeypatch.setattr(benchmark, "run_method", lambda p, m, stored_only=False, **k: {"method": m, "label": m})
    monkeypatch.setattr(benchmark, "analyse_record", lambda p, r, force=False: calls.append(r["method"]))
    assert benchmark.run_benchmark(get_profile("smoke", methods=("lora",))) == [{"method": "lora", "label": "lora"}]
    assert calls == ["lora"]
    calls.clear()
    benchmark.run_benchmark(get_profile("smoke", methods=("lora",)), analyse=False)
    assert calls == []
