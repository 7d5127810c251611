"""Tests for arena.oft_path (spec D3/D4) on a tiny random Llama wrapped with peft OFT."""
import copy
import math

import pytest
import torch

from arena import oft_path as op

TARGETS = ["q_proj", "v_proj", "down_proj"]


def _tiny_oft(use_cayley_neumann: bool, std: float = 0.05, seed: int = 0, **kw):
    from peft import OFTConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    base = LlamaForCausalLM(cfg).eval()
    model = get_peft_model(base, OFTConfig(oft_block_size=16, target_modules=TARGETS,
                                           use_cayley_neumann=use_cayley_neumann, **kw)).eval()
    with torch.no_grad():  # init is zero (identity); give every generator a random, non-trivial value
        for _, _, rot in op.iter_oft_layers(model):
            rot.weight.normal_(0.0, std)
    return model


@pytest.fixture(scope="module", params=[True, False], ids=["neumann", "exact"])
def model(request):
    return _tiny_oft(request.param)


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 128, (2, 7), generator=torch.Generator().manual_seed(1))


def _logits(m, ids):
    with torch.no_grad():
        return m(input_ids=ids).logits


def test_rotation_matches_peft_merge(model, ids):
    merged = copy.deepcopy(model)
    names = [n for n, _, _ in op.iter_oft_layers(model)]
    assert len(names) == 2 * len(TARGETS)
    # the rotation itself is bit-identical to peft's own delta weight
    for _, layer, _ in op.iter_oft_layers(model):
        assert torch.equal(op.oft_rotation(layer, 1.0), layer.get_delta_weight("default"))
    w0 = {n: l.get_base_layer().weight.detach().clone() for n, l, _ in op.iter_oft_layers(model)}
    path = {n: op.generator_path_weight(w0[n], l, 1.0) for n, l, _ in op.iter_oft_layers(model)}
    full = {n: op.apply_blocks_to_weight(w0[n], op.oft_rotation(l, 1.0)) for n, l, _ in op.iter_oft_layers(model)}
    merged = merged.merge_and_unload()
    mods = dict(merged.named_modules())
    for n in names:
        wm = mods[n.replace("base_model.model.", "", 1)].weight
        assert torch.allclose(path[n], wm, atol=1e-5), n
        assert torch.allclose(full[n], wm, atol=1e-6), n
    assert torch.allclose(_logits(merged, ids), _logits(model, ids), atol=1e-4)


def test_scale_one_and_zero_logits(model, ids):
    ref = _logits(model, ids)
    with op.scaled_generators(model, 1.0):
        assert torch.equal(_logits(model, ids), ref)
    with model.disable_adapter():
        base = _logits(model, ids)
    assert not torch.allclose(ref, base, atol=1e-3)  # the adapter really does something
    with op.scaled_generators(model, 0.0):
        assert torch.allclose(_logits(model, ids), base, atol=1e-6)
    assert torch.equal(_logits(model, ids), ref)


def test_scaled_forward_equals_path_merge(model, ids):
    """A forward with Q -> s Q in place is the model with W0 R(s)^T merged (alpha=0.25 on the sqrt path)."""
    merged = copy.deepcopy(model)
    with torch.no_grad():
        for _, layer, _ in op.iter_oft_layers(merged):
            W = layer.get_base_layer().weight
            W.copy_(op.generator_path_weight(W, layer, 0.25, mode="sqrt"))
    with merged.disable_adapter():
        ref = _logits(merged, ids)
    with op.scaled_generators(model, 0.5):
        assert torch.allclose(_logits(model, ids), ref, atol=1e-4)


def test_path_orthogonality_and_dense_factor():
    exact = _tiny_oft(False)
    for _, layer, _ in op.iter_oft_layers(exact):
        for s in (0.25, 0.5, 1.0):
            assert op.orthogonality_error(op.oft_rotation(layer, s, blocks=True)) < 1e-5
        R = op.oft_rotation(layer, 1.0, blocks=True)
        dense = op.orthogonality_error(op.dense_factor(R, 0.5))
        geo = op.orthogonality_error(op.oft_rotation(layer, math.sqrt(0.5), blocks=True))
        assert dense > 1e-2 and dense > 1e3 * geo, (dense, geo)
        # dense factor singular values are <= 1: it shrinks the spectrum of W0
        assert torch.linalg.svdvals(op.dense_factor(R, 0.5).double()).max() <= 1 + 1e-6
    small = _tiny_oft(True, std=0.005)
    errs = [op.orthogonality_error(op.oft_rotation(l, s, blocks=True))
            for _, l, _ in op.iter_oft_layers(small) for s in (0.25, 0.5, 1.0)]
    print(f"max Neumann orthogonality error (std 0.005): {max(errs):.2e}")
    assert max(errs) < 1e-4


def test_cayley_forms():
    torch.manual_seed(3)
    Q = op.skew_from_vector(0.01 * torch.randn(3, 6 * 5 // 2, dtype=torch.float64), 6)
    assert torch.equal(Q, -Q.transpose(-2, -1))
    assert torch.equal(op.vector_from_skew(Q), op.skew_from_vector(op.vector_from_skew(Q), 6)[:, *torch.triu_indices(6, 6, 1)])
    eye = torch.eye(6, dtype=Q.dtype)
    exact = op.cayley(Q)
    assert torch.allclose(exact, (eye - Q) @ torch.linalg.inv(eye + Q))
    # the Neumann series approximates (I+Q)(I-Q)^-1 = exact^T (peft's two options differ in sign convention)
    assert torch.allclose(op.cayley(Q, 5), exact.transpose(-2, -1), atol=1e-5)  # truncation ~ Q^4
    assert torch.allclose(op.cayley(Q, 5), eye + 2 * Q + 2 * Q @ Q + 2 * Q @ Q @ Q + Q @ Q @ Q @ Q)
    assert torch.equal(op.cayley(Q, 1), eye.expand(3, 6, 6))


def test_coft_and_block_share_match_peft():
    for kw in ({"coft": True, "eps": 1e-2}, {"block_share": True}):
        m = _tiny_oft(True, std=0.05, **kw)
        for _, layer, _ in op.iter_oft_layers(m):
            R = op.oft_rotation(layer, 1.0)
            assert torch.allclose(R, layer.get_delta_weight("default"), atol=1e-7)


def test_restore_exact_even_on_exception(model):
    before = {n: r.weight.detach().clone() for n, _, r in op.iter_oft_layers(model)}
    with op.scaled_generators(model, 0.3):
        assert not torch.equal(next(op.iter_oft_layers(model))[2].weight, next(iter(before.values())))
    with pytest.raises(RuntimeError, match="boom"):
        with op.scaled_generators(model, {0: 0.7, 1: 0.123}):
            raise RuntimeError("boom")
    for n, _, r in op.iter_oft_layers(model):
        assert torch.equal(r.weight, before[n]), n
    with pytest.raises(KeyError):
        op.set_generator_scale(model, {"no.such.module": 0.5})


def test_layerwise_scales_closed_form():
    strength = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 5.0, 5: 10.0, 6: 0.5}
    safe = op.layerwise_scales(strength, "safe")  # rho* = 3
    assert safe == pytest.approx({0: 1, 1: 1, 2: 1, 3: 0.75, 4: 0.6, 5: 0.3, 6: 1})
    mn = op.layerwise_scales(strength, "min")  # rho* = 0.5
    assert mn == pytest.approx({k: min(1, 0.5 / v) for k, v in strength.items()})
    assert op.layerwise_scales(strength, "uniform", 0.4) == {k: 0.4 for k in strength}
    assert all(c <= 1 for c in {**safe, **mn}.values())
    with pytest.raises(ValueError):
        op.layerwise_scales(strength, "uniform")


def test_layerwise_scales_reach_target(model):
    rho = op.layer_strength(model)
    assert sorted(rho) == [0, 1] and all(v > 0 for v in rho.values())
    # cross-check against the explicit skew generators
    q0 = sum(op.skew_from_vector(r.weight.detach().double(), r.block_size).pow(2).sum()
             for n, _, r in op.iter_oft_layers(model) if op.layer_index(n) == 0)
    assert rho[0] == pytest.approx(math.sqrt(q0))
    for rule in ("min", "safe"):
        scales = op.layerwise_scales(rho, rule)
        target = min(rho.values()) if rule == "min" else sum(rho.values()) / len(rho)
        with op.scaled_generators(model, scales):
            after = op.layer_strength(model)
        for k in rho:
            assert after[k] <= target * (1 + 1e-6)  # fp32 rounding of the in-place multiply
            assert after[k] == pytest.approx(min(rho[k], target), rel=1e-6)
    with op.scaled_generators(model, 0.4):
        assert op.layer_strength(model) == pytest.approx({k: 0.4 * v for k, v in rho.items()}, rel=1e-6)
