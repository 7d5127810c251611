"""Effective updates from adapter tensors equal peft's own fp32 merge, for every method (paper_spec.md B1, F8)."""

import copy

import pytest
import torch

from arena.methods import build
from arena.models import smoke_model, smoke_tokenizer
from arena.train import collate, encode_example
from arena.updates import adapted_layers, effective_update

METHODS = ["lora", "dora", "pissa", "milora", "keeplora", "adalora", "oft", "boft", "ia3", "vera", "miss"]


def _trained(name):
    """The smoke model wrapped by ``name`` with its adapter tensors moved off their init (so dW != 0)."""
    tok = smoke_tokenizer()
    batch = collate([encode_example(tok, "What is 1 plus 2?", "1 + 2 = 3. #### 3", 192)], tok.pad_token_id)
    torch.manual_seed(0)
    model = build(name, smoke_model(), init_batch=batch, steps=4)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("name", METHODS)
def test_effective_update_matches_peft_merge(name):
    model = _trained(name)
    pretrained = dict(smoke_model().named_parameters())
    updates = {n: effective_update(layer, pretrained[n + ".weight"]) for n, layer in adapted_layers(model)}
    assert len(updates) == 4 * 7
    merged = copy.deepcopy(model).merge_and_unload()
    for n, W in merged.named_parameters():
        if n.removesuffix(".weight") in updates:
            expected = W.detach() - pretrained[n].detach()
            dW = updates[n.removesuffix(".weight")]
            assert dW.abs().max() > 0, f"{name}: zero update for {n}"
            assert torch.allclose(dW, expected, atol=2e-5, rtol=1e-4), f"{name}: {n}"


def test_untrained_lora_and_oft_give_zero_updates():
    for name in ("lora", "oft", "pissa", "milora"):
        torch.manual_seed(0)
        model = build(name, smoke_model(), steps=4)
        pretrained = dict(smoke_model().named_parameters())
        for n, layer in adapted_layers(model):
            assert effective_update(layer, pretrained[n + ".weight"]).abs().max() < 1e-5, (name, n)
