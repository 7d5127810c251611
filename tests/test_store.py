from arena import store


def test_cached_computes_once_and_force_recomputes():
    calls = []

    def compute(folder):
        calls.append(folder)
        return {"value": len(calls)}

    key = {"base": "x", "variant": "lora", "seed": 1}
    assert store.cached("eval", key, compute) == {"value": 1}
    assert store.cached("eval", key, compute) == {"value": 1} and len(calls) == 1
    assert store.cached("eval", dict(key, seed=2), compute) == {"value": 2}
    assert store.cached("eval", key, compute, force=True) == {"value": 3}


def test_interrupted_write_leaves_no_finished_looking_run():
    folder = store.run_dir("eval", {"k": 1})
    (folder / "metrics.json.tmp").write_text("{partial")
    assert store.load_metrics(folder) is None
    (folder / "metrics.json").write_text("{truncated")
    assert store.load_metrics(folder) is None  # unreadable counts as unfinished, so it is recomputed
