"""The SFT trainer: response-only loss, checkpoints along the path, resume after a kill, caching, clear errors."""

import pytest
import torch

from arena import store
from arena.benchmark import RunRecord, run_method
from arena.runs import load_trained, sized_method, train_method, train_spec
from arena.errors import ArenaError
from arena.models import smoke_tokenizer
from arena.profiles import get_profile
from arena.train import IGNORE, StoppedEarly, checkpoint_dir, encode_dataset, encode_example, load_weights


def test_loss_covers_response_tokens_only():
    tok = smoke_tokenizer()
    example = encode_example(tok, "What is 2 plus 3?", "2 + 3 = 5. #### 5", 192)
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 2 plus 3?"}], add_generation_prompt=True,
                                     tokenize=False)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    labels = example["labels"]
    assert labels[:n_prompt] == [IGNORE] * n_prompt
    assert labels[n_prompt:] == example["input_ids"][n_prompt:]
    assert tok.decode(labels[n_prompt:]) == "2 + 3 = 5. #### 5" + tok.eos_token


def test_overlong_examples_are_dropped_and_empty_sets_fail():
    tok = smoke_tokenizer()
    assert encode_example(tok, "x" * 300, "y", 64) is None
    with pytest.raises(ArenaError, match="empty"):
        encode_dataset(tok, [], 64)
    with pytest.raises(ArenaError, match="max_length"):
        encode_dataset(tok, [{"question": "x" * 300, "answer": "1"}], 64)


def _profile(**kw):
    return get_profile("smoke", steps=4, save_every=2, **kw)


def _spec(profile, method="lora"):
    return train_spec(profile, sized_method(profile, method))


def _adapter(profile, spec, step):
    from safetensors.torch import load_file

    return load_file(str(checkpoint_dir(store.run_dir("train", __import__("arena.keys").keys.train_key(
        profile, spec)), step) / "weights.safetensors"))


@pytest.mark.parametrize("method", ["lora", "adalora"])
def test_resume_after_a_kill_gives_the_same_run(tmp_path, monkeypatch, method):
    profile = _profile()
    spec = _spec(profile, method)
    monkeypatch.setenv("PEFT_ARENA_RESULTS", str(tmp_path / "straight"))
    straight = train_method(profile, spec)
    final_straight = _adapter(profile, spec, 4)

    monkeypatch.setenv("PEFT_ARENA_RESULTS", str(tmp_path / "killed"))
    with pytest.raises(StoppedEarly):
        train_method(profile, spec, stop_after=3)  # killed after step 3: the last checkpoint is step 2
    resumed = train_method(profile, spec)
    assert resumed["resumed_from"] == 2
    load_trained(profile, spec, 4)  # the final checkpoint loads back into a fresh model
    assert resumed["losses"] == pytest.approx(straight["losses"], abs=1e-6)
    final_resumed = _adapter(profile, spec, 4)
    for k in final_straight:
        assert torch.allclose(final_straight[k], final_resumed[k], atol=1e-6), k


def test_checkpoints_are_saved_along_the_path_and_load_back():
    profile = _profile()
    spec = _spec(profile, "oft")
    record = train_method(profile, spec)
    assert record["checkpoints"] == [0, 2, 4]
    folder = store.run_dir("train", record["key"])
    for step in record["checkpoints"]:
        assert (checkpoint_dir(folder, step) / "weights.safetensors").exists()
    model0, _ = load_trained(profile, spec, 0)
    model4, _ = load_trained(profile, spec, 4)
    w0 = dict(model0.named_parameters())["model.layers.0.self_attn.q_proj.weight"]
    w4 = dict(model4.named_parameters())["model.layers.0.self_attn.q_proj.weight"]
    assert not torch.allclose(w0, w4)
    with pytest.raises(ArenaError, match="no checkpoint at step 3"):
        load_trained(profile, spec, 3)


def test_a_finished_run_is_not_recomputed(monkeypatch):
    profile = _profile()
    first = run_method(profile, "lora")
    import arena.runs as runs

    def boom(*a, **k):
        raise AssertionError("recomputed a cached run")

    monkeypatch.setattr(runs, "train", boom)
    monkeypatch.setattr(runs, "evaluate", boom)  # the name the run scores through
    again = run_method(profile, "lora")
    assert again["eval"]["general"] == first["eval"]["general"]
    assert set(first) == set(RunRecord.__required_keys__) | set(RunRecord.__optional_keys__)  # the typed record
    assert again["train"]["losses"] == first["train"]["losses"]


def test_checkpoint_from_another_base_is_refused(tmp_path):
    profile = _profile()
    spec = _spec(profile)
    record = train_method(profile, spec)
    path = checkpoint_dir(store.run_dir("train", record["key"]), 4)
    model, _ = load_trained(profile, spec, 4, merge=False)
    with pytest.raises(ArenaError, match="trained on base"):
        load_weights(model, path, expected_base="Qwen/Qwen2.5-7B@main")


def test_a_damaged_checkpoint_names_the_fix(tmp_path):
    profile = _profile()
    spec = _spec(profile)
    record = train_method(profile, spec)
    path = checkpoint_dir(store.run_dir("train", record["key"]), 2)
    file = path / "weights.safetensors"
    file.write_bytes(file.read_bytes()[:100])
    model, _ = load_trained(profile, spec, 4, merge=False)
    with pytest.raises(ArenaError, match="delete its run folder"):
        load_weights(model, path)


def test_unknown_method_fails_before_any_work():
    with pytest.raises(ArenaError, match="known methods"):
        run_method(_profile(), "lorra")


def test_trained_model_beats_base_on_training_loss():
    profile = get_profile("smoke", steps=12, save_every=12)
    record = train_method(profile, train_spec(profile, sized_method(profile, "full")))
    assert record["losses"][-1] < record["losses"][0]
