"""Small pieces of the GPU path and the results keys that every run depends on: where a process puts its model,
which process writes, which base a method is scored on, and that the stored keys of the default settings stay put."""

import pytest

from arena.profiles import get_profile


def test_each_launched_process_loads_onto_its_own_gpu(monkeypatch):
    from arena import models

    monkeypatch.setattr(models, "device", lambda: "cuda")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert models.local_device_map() == {"": 0}
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert models.local_device_map() == {"": 3}
    monkeypatch.setattr(models, "device", lambda: "cpu")
    assert models.local_device_map() == {"": "cpu"}  # bitsandbytes' CPU kernels: the model stays on the CPU


def test_only_process_zero_writes(monkeypatch):
    from arena.distributed import Single, context, is_main, world_size

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert world_size() == 1 and is_main() and isinstance(context(), Single)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert world_size() == 4 and not is_main()


def test_a_registered_method_can_declare_its_4bit_path():
    from arena.methods import Method, register, unregister
    from arena.methods.quantized import base_quantization, four_bit_support

    register(Method("fourbit_probe", "test", "additive", lr=1e-3, four_bit="its own 4-bit layer"))
    register(Method("plain_probe", "test", "additive", lr=1e-3))
    try:
        nf4 = get_profile("smoke", quantization="nf4")
        assert four_bit_support("fourbit_probe") == "its own 4-bit layer"
        assert base_quantization(nf4, "fourbit_probe") == ("nf4", None)
        assert four_bit_support("plain_probe") is None and base_quantization(nf4, "plain_probe")[0] is None
    finally:
        unregister("fourbit_probe")
        unregister("plain_probe")


def test_scoring_base_per_method_and_backend():
    from arena.keys import scoring_quantization

    nf4 = get_profile("smoke", quantization="nf4")
    assert scoring_quantization(nf4) == "nf4" and scoring_quantization(nf4, "lora") == "nf4"
    assert scoring_quantization(nf4, "pissa") is None  # trained on the full-precision fallback base, scored on it
    vllm = get_profile("smoke", quantization="nf4", eval_backend="vllm")
    assert scoring_quantization(vllm) is None and scoring_quantization(vllm, "lora") is None


def test_quantised_weights_are_recognised():
    import torch

    from arena.updates import is_quantized

    Params4bit = type("Params4bit", (), {})  # bitsandbytes' class, by name (it needs CUDA to build)
    assert is_quantized(Params4bit()) and not is_quantized(torch.nn.Parameter(torch.zeros(2)))


def test_cpu_bf16_can_be_turned_off(monkeypatch):
    from arena.models import bf16_compute, compute_precision

    monkeypatch.setenv("ARENA_CPU_BF16", "0")
    assert not bf16_compute("cpu")
    if not __import__("torch").cuda.is_available():
        assert compute_precision() == "fp32"  # part of every evaluation key: fp32 scores are stored apart


def test_the_validation_split_is_keyed_by_its_own_sizes():
    from arena.suite import validation_name

    base = validation_name(get_profile("smoke"))
    assert validation_name(get_profile("smoke", val_n_qa=5)) != base
    assert validation_name(get_profile("smoke", n_qa=50)) == base  # the test suite's sizes key the suite folder


@pytest.mark.parametrize("split, what", [("test", {"variant": "base"}),
                                         ("validation", {"variant": "base", "split": "validation"})])
def test_base_evaluation_keys_are_the_stored_ones(monkeypatch, split, what):
    """The base scores of both splits come from one function; their keys are the ones earlier runs stored under."""
    from arena import keys, runs, store
    from arena.models import model_identity

    profile = get_profile("smoke")
    seen = {}
    monkeypatch.setattr(store, "cached", lambda kind, key, compute, force=False: seen.update(kind=kind, key=key))
    runs.evaluate_base(profile, split=split)
    assert seen == {"kind": "eval", "key": keys.eval_key(profile, model_identity(profile.model), what)}


def test_store_keys_hash_as_they_did_before_keys_moved_to_one_module():
    """Stored runs stay valid: the training, spectra, geometry and base-activation keys of the smoke LoRA hash to
    pinned values, so no change moves them by accident (evaluation keys also hold the machine's compute precision, so
    they are checked against eval_key above instead). A training key names its training problems, not the suite
    folder (suite.training_data_name); the geometry and base-activation keys name the suite whose prompts they run,
    so a new suite version moves those two on purpose (pinned again at suite version 8: generated suite)."""
    from arena import keys, store
    from arena.runs import sized_method, train_spec

    profile = get_profile("smoke")
    spec = train_spec(profile, sized_method(profile, "lora"))
    modules = keys.default_modules(profile)
    assert store.key_hash(keys.train_key(profile, spec)) == "fa11f4eb29cfade2"
    assert store.key_hash(keys.spectra_key(profile, spec, spec.steps)) == "bd6d05850338a766"
    assert store.key_hash(keys.geometry_key(profile, spec, spec.steps, modules, 1024)) == "1951057f86e8bb45"
    assert store.key_hash(keys.activations_key(profile, modules, 1024, None)) == "304b9e2556808a72"


def test_the_command_a_reading_chapter_names_rebuilds_the_profile():
    from arena.profiles import command

    assert command("benchmark", get_profile("smoke")) == "python -m arena benchmark --profile smoke"
    changed = get_profile("embedded", steps=5, quantization="nf4")
    assert command("benchmark", changed, ["lora", "dora"]) == ("python -m arena benchmark --profile embedded --methods "
                                                               "lora,dora --steps 5 --quantization nf4")


def test_a_training_key_names_the_training_problems_not_the_evaluation_suite():
    """Changing how the suite scores (its sizes) rescores stored runs and never retrains them."""
    from arena.keys import eval_key, train_key
    from arena.runs import sized_method, train_spec

    def keys(**overrides):
        profile = get_profile("smoke", **overrides)
        spec = train_spec(profile, sized_method(profile, "lora", None))
        return train_key(profile, spec), eval_key(profile, "m", {"variant": "base"})

    (train, scored), (train_more_items, scored_more_items) = keys(), keys(bbh_per_task=5, n_qa=30)
    assert train == train_more_items and scored != scored_more_items
    assert keys(n_train=123)[0]["data"] != train["data"]  # other training problems


def test_a_geometry_key_names_the_suite_whose_prompts_it_runs():
    """Geometry runs the suite's prompts, so a new suite re-measures it even though the training key stays."""
    from arena.keys import default_modules, geometry_key, train_key
    from arena.runs import sized_method, train_spec

    def keys(**overrides):
        profile = get_profile("smoke", **overrides)
        spec = train_spec(profile, sized_method(profile, "lora", None))
        return train_key(profile, spec), geometry_key(profile, spec, spec.steps, default_modules(profile), 1024)

    (train, geometry), (train_other, geometry_other) = keys(), keys(bbh_per_task=5, n_qa=30)
    assert train == train_other and geometry != geometry_other
