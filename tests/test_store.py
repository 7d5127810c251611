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


def test_folders_are_named_by_label_and_hash_and_old_hash_folders_are_renamed_in_place(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFT_ARENA_RESULTS", str(tmp_path))
    train = {"method": "lora", "size": 8, "lr": 1e-3}
    digest = store.key_hash(train)
    legacy = tmp_path / "train" / digest  # a run stored before folders had labels
    legacy.mkdir(parents=True)
    store.save_metrics(legacy, {"losses": [1.0]})
    (legacy / "checkpoint").mkdir()
    assert store.cached("train", train, lambda f: pytest.fail("recomputed"), label="lora-r8") == {"losses": [1.0]}
    assert not legacy.exists() and (tmp_path / "train" / f"lora-r8-{digest}" / "checkpoint").is_dir()
    # runs derived from a trained path carry its label; base runs say which base
    step = {"variant": "trained", "train": digest, "step": 30}
    assert store.run_dir("eval", step).name == f"lora-r8-step30-{store.key_hash(step)}"
    point = {"variant": "rewind", "train": digest, "point": {"path": "dense", "alpha": 0.6}, "split": "validation"}
    assert store.run_dir("eval", point).name.startswith("lora-r8-dense-0.6-validation-")
    base = {"variant": "base", "quantization": "nf4"}
    assert store.run_dir("eval", base).name == f"base-nf4-{store.key_hash(base)}"
    assert store.find("eval", base) is None  # a folder with no metrics is not a stored run
