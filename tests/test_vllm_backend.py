"""lm-eval's vLLM backend: what can be checked without vLLM or a GPU, and a real run where both exist."""

import ast
import importlib.util
from pathlib import Path

import pytest
import torch

from arena.errors import ArenaError
from arena.profiles import get_profile
from arena.vllm_backend import export_merged, score_with_vllm, vllm_args

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_backend_names_are_checked():
    with pytest.raises(ArenaError, match="hf or vllm"):
        get_profile("smoke", eval_backend="tgi")


def test_the_backend_keys_evaluations_only_when_not_the_default():
    from arena.keys import eval_key, scoring_quantization

    assert "backend" not in eval_key(get_profile("smoke"), "m", {"variant": "base"})
    vllm = get_profile("smoke", eval_backend="vllm", quantization="nf4")
    assert eval_key(vllm, "m", {"variant": "base"})["backend"] == "vllm"
    assert scoring_quantization(vllm) is None  # vLLM scores the full-precision merge, never a 4-bit one


def test_vllm_arguments_exist_in_the_installed_lm_eval():
    """Read lm-eval's VLLM signature from its source (importing it needs vllm): every argument the kit passes is a
    named parameter, or goes through **kwargs to vllm.LLM."""
    spec = importlib.util.find_spec("lm_eval")
    source = Path(spec.origin).parent / "models" / "vllm_causallms.py"
    tree = ast.parse(source.read_text())
    init = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "VLLM").body
    init = next(n for n in init if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    named = {a.arg for a in init.args.args}
    args = vllm_args(Path("/x"), get_profile("paper"), context=131072, gpu_share=0.8)
    assert init.args.kwarg is not None and "self.model_args.update(kwargs)" in source.read_text()  # on to vllm.LLM
    assert {k for k in args if k != "gpu_memory_utilization"} <= named
    assert args["dtype"] == "bfloat16" and args["max_model_len"] == 16384 and args["gpu_memory_utilization"] == 0.8


def test_export_is_the_merged_model_and_leaves_the_caller_alone(tmp_path):
    from transformers import AutoModelForCausalLM

    from arena.methods import build
    from arena.models import smoke_model, smoke_tokenizer

    model = build("lora", smoke_model(), 4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # a trained-looking adapter, so the merge matters
    model.eval()
    folder = export_merged(model, smoke_tokenizer(), tmp_path / "merged")
    assert hasattr(model, "peft_config")  # still the caller's adapter model
    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.randint(0, 256, (2, 24))
    with torch.no_grad():
        want = model(input_ids=ids).logits
        got = loaded(input_ids=ids).logits
    assert torch.allclose(got, want, atol=0.05, rtol=0.02)  # bf16 weights
    base = smoke_model().eval()
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=ids).logits, got, atol=1e-3)  # the adapter is in the export


def test_a_disabled_adapter_is_dropped_not_merged(tmp_path):
    """Rewinding writes W0 + alpha dW into the base and switches the adapter off: the export is what the model
    computes then, not that plus the adapter once more."""
    from transformers import AutoModelForCausalLM

    from arena.methods import build
    from arena.models import smoke_model, smoke_tokenizer

    model = build("oft", smoke_model(), 16)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "oft_R" in name:
                p.normal_(0, 0.05)
    model.eval()
    ids = torch.randint(0, 256, (1, 16))
    with model.disable_adapter(), torch.no_grad():
        want = model(input_ids=ids).logits
        folder = export_merged(model, smoke_tokenizer(), tmp_path / "off")
    with torch.no_grad():
        got = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()(input_ids=ids).logits
    assert torch.allclose(got, want, atol=0.05, rtol=0.02)


def test_plain_torch_methods_cannot_be_exported(tmp_path):
    from arena.models import smoke_model, smoke_tokenizer

    model = smoke_model()
    layer = model.model.layers[0].mlp.down_proj
    layer.delta_weight = lambda: torch.zeros_like(layer.weight)
    with pytest.raises(ArenaError, match="eval_backend='hf'"):
        export_merged(model, smoke_tokenizer(), tmp_path / "x")


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_without_vllm_the_error_names_the_install():
    from arena.models import smoke_model, smoke_tokenizer

    with pytest.raises(ArenaError, match="pip install vllm"):
        score_with_vllm(smoke_model(), smoke_tokenizer(), get_profile("smoke", eval_backend="vllm"), print)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_VLLM, reason="needs vllm (pip install vllm): not among the kit's pins")
@pytest.mark.embedded
def test_vllm_scores_the_embedded_base_like_hf():
    """The two backends run the same tasks: on the embedded base their General scores agree within noise."""
    from arena.runs import evaluate_base

    hf = evaluate_base(get_profile("embedded"))
    vllm = evaluate_base(get_profile("embedded", eval_backend="vllm"))
    assert abs(hf["general"] - vllm["general"]) < 3 * (hf["general_se"] + vllm["general_se"])
