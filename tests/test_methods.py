"""Every registered method wraps the smoke model and trains a step; the kit's MiLoRA and KeepLoRA match their
definitions (paper_spec.md A8, F5); registration and bad names fail clearly."""

import pytest
import torch

from arena.errors import ArenaError
from arena.methods import Method, build, get_method, method_names, register, unregister
from arena.methods.init import keeplora_factors, lora_layers, minor_components
from arena.models import smoke_model, smoke_tokenizer
from arena.train import collate, encode_example

PAPER_METHODS = ["full", "lora", "dora", "pissa", "milora", "oft", "boft", "ia3", "vera", "miss", "adalora",
                 "keeplora"]


def _batch(n=2):
    tok = smoke_tokenizer()
    rows = [encode_example(tok, f"What is {i} plus {i}?", f"{i} + {i} = {2 * i}. #### {2 * i}", 192)
            for i in range(1, n + 1)]
    return collate(rows, tok.pad_token_id)


def test_registry_has_every_paper_method():
    assert set(PAPER_METHODS) <= set(method_names())


@pytest.mark.parametrize("name", PAPER_METHODS)
def test_method_wraps_and_trains_a_step(name):
    torch.manual_seed(0)
    batch = _batch()
    model = build(name, smoke_model(), init_batch=batch, steps=4)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable, f"{name} has nothing to train"
    before = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    model.train()
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    moved = sum(not torch.equal(a, b) for a, b in zip(before, trainable))
    assert moved > 0, f"{name}: a step changed no trainable tensor"


@pytest.mark.parametrize("name", ["pissa", "milora", "keeplora"])
def test_residual_methods_start_at_the_base_model(name):
    batch = _batch()
    base = smoke_model().eval()
    with torch.no_grad():
        expected = base(**batch).logits
    model = build(name, smoke_model(), init_batch=batch, steps=4).eval()
    with torch.no_grad():
        got = model(**batch).logits
    assert torch.allclose(got, expected, atol=1e-4), "W0 - s*B0*A0 + s*B0*A0 must equal W0"


def test_minor_components_reconstruct_the_bottom_of_the_spectrum():
    torch.manual_seed(0)
    w = torch.randn(12, 20)
    b, a = minor_components(w, r=3, scaling=2.0)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    minor = u[:, -3:] @ torch.diag(s[-3:]) @ vh[-3:]
    assert torch.allclose(2.0 * b @ a, minor, atol=1e-5)
    # A's rows span the minor right-singular subspace
    assert torch.allclose(a @ vh[:-3].T, torch.zeros(3, 9), atol=1e-5)


def test_milora_init_sets_factors_and_residual_base():
    model = build("milora", smoke_model(), steps=4)
    name, layer = lora_layers(model)[0]
    w0 = dict(smoke_model().named_parameters())[name.replace("base_model.model.", "") + ".weight"]
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    s = layer.scaling["default"]
    r = a.shape[0]
    u, sv, vh = torch.linalg.svd(w0.detach(), full_matrices=False)
    assert torch.allclose(s * b @ a, u[:, -r:] @ torch.diag(sv[-r:]) @ vh[-r:], atol=1e-5)
    assert torch.allclose(layer.get_base_layer().weight + s * b @ a, w0, atol=1e-5)


def test_keeplora_factors_follow_the_definition():
    torch.manual_seed(0)
    w, g = torch.randn(16, 24), torch.randn(16, 24)
    r, k = 2, 8
    b, a = keeplora_factors(w, g, r, k)
    v_k = torch.linalg.svd(w, full_matrices=False)[2][:k].T
    g_res = g - g @ v_k @ v_k.T
    u, s, vh = torch.linalg.svd(g_res, full_matrices=False)
    assert torch.allclose(b @ a, u[:, :r] @ torch.diag(s[:r]) @ vh[:r], atol=1e-5)  # best rank-r of G_res
    assert torch.allclose(a @ v_k, torch.zeros(r, k), atol=1e-5)  # A avoids W's top-k right subspace
    assert torch.allclose(a @ a.T, torch.eye(r), atol=1e-5)  # A = V^T: orthonormal rows
    assert torch.allclose(b, u[:, :r] * s[:r], atol=1e-5)  # B = U S


def test_keeplora_init_freezes_a_and_trains_b():
    model = build("keeplora", smoke_model(), init_batch=_batch(), steps=4)
    for _, layer in lora_layers(model):
        assert not layer.lora_A["default"].weight.requires_grad
        assert layer.lora_B["default"].weight.requires_grad
        assert layer.lora_B["default"].weight.abs().sum() > 0  # B = U S from the gradient, not zeros


def test_keeplora_without_a_batch_fails_clearly():
    with pytest.raises(ArenaError, match="init_batch"):
        build("keeplora", smoke_model(), steps=4)


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ArenaError) as err:
        get_method("lorax")
    assert "lora" in str(err.value) and "oft" in str(err.value)


def test_registering_a_method_is_one_call():
    from peft import LoraConfig

    try:
        register(Method("qv-lora", "LoRA on q and v only", "additive", lr=1e-3, size_name="r", sizes=(4, 8),
                        default_size=4, config=lambda r, targets, steps: LoraConfig(r=r, target_modules=["q_proj",
                                                                                                          "v_proj"])))
        model = build("qv-lora", smoke_model())
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 4 * 4 * (64 + 64 + 64 + 32)
        with pytest.raises(ArenaError, match="already registered"):
            register(get_method("qv-lora"))
    finally:
        unregister("qv-lora")


def test_registry_rows_agree_with_what_the_methods_build():
    """A method's facts sit on its registry row; they must match what its config builds: ``rotation`` exactly for the
    peft OFT layers (rewinding's generator path), ``paper_size`` the default size (the paper's configuration)."""
    for name in method_names():
        m = get_method(name)
        built = m.config(m.default_size, ["q_proj"], 1) if m.config else None
        assert m.rotation == (type(built).__name__ == "OFTConfig"), name
        if m.paper_size:
            assert m.paper_size == m.label(m.default_size).removeprefix(f"{m.name}-"), name
