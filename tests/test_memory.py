"""One model on the device at a time, and each method's own memory peak: what a 24 GB card needs of a run that
scores a trained model and then its base, and of a worker that trains several methods in turn."""

import gc
import weakref

import pytest

from arena.profiles import get_profile


@pytest.fixture
def private_store(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFT_ARENA_CACHE", str(tmp_path))  # nothing stored: every model is loaded for real
    monkeypatch.setenv("PEFT_ARENA_RESULTS", str(tmp_path / "results"))  # not the session's shared results store
    return get_profile("smoke", methods=("lora",))


def _alive(refs) -> int:
    gc.collect()
    return sum(ref() is not None for ref in refs)


def test_scoring_a_checkpoint_never_holds_two_models(private_store, monkeypatch):
    from arena import runs
    from arena.benchmark import run_method

    profile, loaded, most = private_store, [], []
    original = runs.load_base  # every model a run loads comes through it: the base, training's, a checkpoint's

    def counting(*args, **kwargs):
        most.append(_alive(loaded))  # how many models are alive when another one is loaded
        model, tokenizer = original(*args, **kwargs)
        loaded.append(weakref.ref(model))
        return model, tokenizer

    monkeypatch.setattr(runs, "load_base", counting)
    record = run_method(profile, "lora")
    assert record["eval"]["proxies"]["ce_drift"] == record["eval"]["proxies"]["ce_drift"]  # computed, not NaN
    assert len(loaded) >= 3 and max(most) == 0, f"models alive at each load: {most}"
    assert _alive(loaded) == 0  # and none once the run is recorded


def test_no_model_is_alive_after_run_method_returns(private_store):
    from transformers import PreTrainedModel

    from arena.benchmark import run_method

    run_method(private_store, "lora")
    gc.collect()
    # a meta-device skeleton (methods.registry.skeleton, for parameter counts) holds no memory
    assert not [o for o in gc.get_objects() if isinstance(o, PreTrainedModel)
                and any(p.device.type != "meta" for p in o.parameters())]


def test_a_new_peak_starts_with_each_method():
    import numpy as np

    from arena.provenance import peak_memory_mb, reset_peak_memory

    block = np.ones(300 * 2**20 // 8)  # 300 MB resident
    high = peak_memory_mb()["peak_rss_mb"]
    del block
    gc.collect()
    reset_peak_memory()
    assert peak_memory_mb()["peak_rss_mb"] < high - 200  # the earlier method's peak is gone


def test_training_resets_the_peak(monkeypatch):
    from arena import train

    calls = []
    monkeypatch.setattr(train, "reset_peak_memory", lambda: calls.append(1))
    with pytest.raises(Exception):
        train.train(None, [], None, "/nonexistent", {}, 0)  # fails past the reset: the reset comes first
    assert calls == [1]


def test_on_cuda_every_method_trains_in_a_fresh_process(private_store, monkeypatch):
    """A long-lived process keeps CUDA's cache and fragmentation from one method to the next: on a GPU each method
    gets a process of its own (max_tasks_per_child=1), one at a time."""
    import contextlib
    from concurrent.futures import Future

    from arena import benchmark

    pools = []

    @contextlib.contextmanager
    def recording_pool(workers, **kwargs):
        pools.append((workers, kwargs))

        class InProcess:  # runs each task here: the test checks the pool asked for, not the spawning
            def submit(self, fn, *args):
                future = Future()
                future.set_result(fn(*args))
                return future

        yield InProcess()

    monkeypatch.setattr(benchmark, "process_pool", recording_pool)
    monkeypatch.setattr(benchmark, "device", lambda: "cuda")
    monkeypatch.setattr(benchmark, "ensure_assets", lambda profile: None)
    monkeypatch.setattr(benchmark, "starting_bases", lambda *args, **kwargs: {})
    monkeypatch.setattr(benchmark, "_run_in_worker", lambda args: {"label": args[1], "method": args[1]})
    benchmark.run_benchmark(private_store, ["lora", "oft"], analyse=False)
    assert [(w, k.get("max_tasks_per_child")) for w, k in pools] == [(1, 1)]


def test_a_hub_profile_on_a_24_gb_card_runs_only_what_fits(monkeypatch):
    """Full finetuning of the 7B needs far more than 24 GB: the benchmark leaves it out and says why; a CPU runs every
    method it is asked for."""
    from arena import benchmark, plan

    onegpu = get_profile("onegpu")
    assert "full" in onegpu.methods
    assert benchmark.planned_methods(onegpu) == list(onegpu.methods)  # no CUDA here: as asked
    monkeypatch.setattr(benchmark, "device", lambda: "cuda")
    monkeypatch.setattr(plan, "present_gpu_gib", lambda: 23.6)
    run = benchmark.planned_methods(onegpu)
    assert "full" not in run and "lora" in run and "oft" in run
    assert any("full" in why and "GiB" in why for why in plan.fit_sentences(onegpu, 23.6))
