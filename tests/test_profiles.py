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
