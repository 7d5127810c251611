"""Trained runs leave the kit as standard folders: peft adapters that PeftModel.from_pretrained loads to the kit's
logits, or a merged Hugging Face model."""

import pytest
import torch

from arena.runs import load_trained, sized_method, train_method, train_spec
from arena.errors import ArenaError
from arena.export import base_path, export_run
from arena.profiles import get_profile

PROFILE = get_profile("smoke", steps=2, save_every=2, seed=3)


def _trained(method):
    spec = train_spec(PROFILE, sized_method(PROFILE, method))
    train_method(PROFILE, spec)
    return spec


def _ids():
    return torch.randint(0, 256, (2, 20), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("method", ["lora", "oft"])
def test_an_exported_adapter_loads_with_peft_to_the_kits_logits(method, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    spec = _trained(method)
    written = export_run(PROFILE, method, tmp_path / "out")
    assert written["kind"] == "peft adapter"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (tmp_path / "out").iterdir()}
    base = AutoModelForCausalLM.from_pretrained(base_path(PROFILE.model), dtype=torch.float32)
    theirs = PeftModel.from_pretrained(base, str(tmp_path / "out")).eval()
    ours, _ = load_trained(PROFILE, spec, merge=False)
    with torch.no_grad():
        a, b = theirs(_ids()).logits, ours.eval()(_ids()).logits
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), float((a - b).abs().max())


def test_full_finetuning_exports_a_merged_model(tmp_path):
    from transformers import AutoModelForCausalLM

    spec = _trained("full")
    assert export_run(PROFILE, "full", tmp_path / "full")["kind"] == "merged model"
    theirs = AutoModelForCausalLM.from_pretrained(str(tmp_path / "full"), dtype=torch.float32).eval()
    ours, _ = load_trained(PROFILE, spec)
    with torch.no_grad():
        assert torch.allclose(theirs(_ids()).logits, ours.eval()(_ids()).logits, atol=1e-5, rtol=1e-5)


def test_export_refuses_a_non_empty_folder(tmp_path):
    _trained("lora")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    with pytest.raises(ArenaError, match="not empty"):
        export_run(PROFILE, "lora", tmp_path / "taken")
