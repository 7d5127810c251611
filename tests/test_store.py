import pytest

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


def test_a_read_only_store_returns_stored_runs_and_names_the_command_for_missing_ones(tmp_path, monkeypatch):
    from arena import store
    from arena.errors import ArenaError

    monkeypatch.setenv("PEFT_ARENA_RESULTS", str(tmp_path))
    stored = store.cached("eval", {"variant": "base"}, lambda folder: {"general": 1.0})
    store.read_only("python -m arena benchmark --profile smoke")
    try:
        assert store.cached("eval", {"variant": "base"}, lambda folder: {"general": 2.0}) == stored
        with pytest.raises(ArenaError, match="no stored train result .lora.*python -m arena benchmark --profile smoke"):
            store.cached("train", {"method": "lora"}, lambda folder: {"never": "computed"})
        assert not (tmp_path / "train").exists()  # a lookup makes no folder
    finally:
        store.read_only(None)
    assert store.cached("train", {"method": "lora"}, lambda folder: {"computed": True}) == {"computed": True}
