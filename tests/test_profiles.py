import pytest

from arena.errors import ArenaError
from arena.profiles import PROFILES, get_profile


def test_default_is_embedded_smollm2():
    profile = get_profile()
    assert profile.name == "embedded" and profile.model.source == "embedded"


def test_unknown_profile_names_the_choices():
    with pytest.raises(ArenaError) as err:
        get_profile("nope")
    message = str(err.value)
    assert "\n" not in message and all(name in message for name in PROFILES)


def test_overrides_are_validated():
    assert get_profile("smoke", steps=7).steps == 7
    with pytest.raises(ArenaError, match="unknown profile field"):
        get_profile("smoke", stepz=7)
    with pytest.raises(ArenaError, match="quantization"):
        get_profile("smoke", quantization="int3")


def test_paper_profile_names_the_papers_models():
    paper = get_profile("paper")
    assert [m.repo_id for m in paper.models] == ["Qwen/Qwen2.5-7B", "meta-llama/Llama-3.2-3B-Instruct"]
    assert paper.models[0].instruct is False and paper.batch_size * paper.grad_accum == 256


def test_a_list_field_takes_the_text_forms_papermill_and_the_shell_pass():
    assert get_profile("smoke", methods='["lora", "dora"]').methods == ("lora", "dora")
    assert get_profile("smoke", methods="lora,milora").methods == ("lora", "milora")
    assert get_profile("smoke", rewind_alphas="[0.2, 0.5]").rewind_alphas == (0.2, 0.5)
    with pytest.raises(ArenaError, match="is not a list"):
        get_profile("smoke", methods="[lora")


def test_on_base_puts_the_chosen_base_first_and_keeps_the_first_bases_keys():
    from arena import keys, store
    from arena.profiles import on_base
    from arena.runs import sized_method, train_spec

    onegpu = get_profile("onegpu")
    second = on_base(onegpu, 1)
    assert second.model.name == "Llama-3.2-3B-Instruct" and set(second.models) == set(onegpu.models)
    assert on_base(onegpu, 0) == onegpu
    # keys read only the first base: the profile on base 0 is the profile itself, key for key
    spec = train_spec(onegpu, sized_method(onegpu, "lora"))
    assert store.key_hash(keys.train_key(on_base(onegpu, 0), spec)) == store.key_hash(keys.train_key(onegpu, spec))
    with pytest.raises(ArenaError, match="has 2 base"):
        on_base(onegpu, 2)


def test_run_other_bases_benchmarks_each_further_base_without_analyses(monkeypatch):
    from arena import benchmark

    calls = []
    monkeypatch.setattr(benchmark, "evaluate_base", lambda p: {"base": p.model.name})
    monkeypatch.setattr(benchmark, "run_benchmark",
                        lambda p, analyse=True, **kw: calls.append((p.model.name, analyse)) or ["records"])
    out = benchmark.run_other_bases(get_profile("onegpu"))
    assert calls == [("Llama-3.2-3B-Instruct", False)]
    assert [(o.model.name, b, r) for o, b, r in out] == [("Llama-3.2-3B-Instruct",
                                                          {"base": "Llama-3.2-3B-Instruct"}, ["records"])]
    assert benchmark.run_other_bases(get_profile("smoke")) == []
