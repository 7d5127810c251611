import subprocess
import sys

import pytest

from arena.errors import ArenaError
from arena.models import load_base, model_identity, smoke_tokenizer
from arena.profiles import SMOKE_MODEL, ModelSpec


def test_cli_unknown_profile_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "arena", "profile", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "choose one of" in proc.stderr and "Traceback" not in proc.stderr


def test_smoke_model_is_seeded_and_chat_templated():
    a, tok = load_base(SMOKE_MODEL)
    b, _ = load_base(SMOKE_MODEL)
    assert all((pa == pb).all() for pa, pb in zip(a.parameters(), b.parameters()))
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    assert tok.decode(tok("héllo 42").input_ids) == "héllo 42"  # byte-level: lossless on any text
    assert model_identity(SMOKE_MODEL).startswith("smoke-llama@")


def test_hub_model_offline_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ArenaError) as err:
        load_base(ModelSpec("x", "hub", "Qwen/Qwen2.5-7B"))
    assert "\n" not in str(err.value) and "Fix:" in str(err.value)


def test_an_unknown_quantisation_names_the_fix():
    with pytest.raises(ArenaError, match="QUANT=nf4 or QUANT=none"):
        load_base(SMOKE_MODEL, quantization="int3")


@pytest.mark.embedded
def test_hub_loader_loads_the_shipped_model_folder():
    """The paper profile's loading code (_from_pretrained) on what ships: the materialised SmolLM2 folder."""
    import torch

    from arena.assets import smollm2_dir
    from arena.models import _from_pretrained

    model, tok = _from_pretrained(str(smollm2_dir()), None, None, torch.float32)
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30
    assert tok.eos_token == "<|im_end|>"


@pytest.mark.gpu
@pytest.mark.bnb
def test_nf4_load_on_cuda():
    from transformers import BitsAndBytesConfig  # noqa: F401

    from arena.assets import smollm2_dir
    from arena.models import _from_pretrained

    model, _ = _from_pretrained(str(smollm2_dir()), None, "nf4", None)
    assert any("4bit" in type(m).__name__ for m in model.modules())
