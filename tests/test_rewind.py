"""Rewinding (paper_spec.md D): the interpolation ends reproduce base and trained model, the OFT generator
path stays orthogonal where the dense path does not, and selection never reads the test split."""


import pytest
import torch

from arena.errors import ArenaError
from arena.methods import build, get_method
from arena.models import smoke_model, smoke_tokenizer
from arena.oft_path import dense_factor, oft_rotation, orthogonality_error
from arena.rewind import (DenseInterpolation, generator_path, layer_scales, layerwise, rotation_errors, select_point,
                          variants)
from arena.train import collate, encode_example

METHODS = ["lora", "dora", "pissa", "milora", "keeplora", "adalora", "oft", "boft", "ia3", "vera", "miss"]


def _batch():
    tok = smoke_tokenizer()
    return collate([encode_example(tok, "What is 1 plus 2?", "1 + 2 = 3. #### 3", 192),
                    encode_example(tok, "Name a colour.", "Blue.", 192)], tok.pad_token_id)


def _trained(name, scale=0.02):
    torch.manual_seed(0)
    model = build(name, smoke_model(), init_batch=_batch(), steps=4)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn_like(p))
    return model.eval()


def _logits(model):
    batch = _batch()
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def _read_w0():
    state = {k: v.detach().float() for k, v in smoke_model().state_dict().items()}
    return lambda name: state[name]


@pytest.mark.parametrize("name", [*METHODS, "full"])
def test_dense_path_ends_are_base_and_trained(name):
    base_logits = _logits(smoke_model().eval())
    model = _trained(name)
    trained_logits = _logits(model)
    assert (trained_logits - base_logits).abs().max() > 1e-3  # the test would pass vacuously on an untouched model
    path = DenseInterpolation(model, _read_w0(), residual=get_method(name).residual)
    with path.at(0.0):
        assert torch.allclose(_logits(model), base_logits, atol=1e-5), name
    with path.at(1.0):
        assert torch.allclose(_logits(model), trained_logits, atol=1e-4), name
    with path.at(0.5):
        half = _logits(model)
        assert not torch.allclose(half, trained_logits, atol=1e-4) and not torch.allclose(half, base_logits, atol=1e-4)
    assert torch.equal(_logits(model), trained_logits), "the trained weights must come back exactly"


def retained_bytes(obj, model, source) -> int:
    """Bytes of the tensors that ``obj`` and the hooks on ``model`` hold (attributes, containers, closures) beyond
    ``model``'s own parameters and buffers and the W0 ``source`` it reads: what an interpolation costs on top of the
    model it walks."""
    owned = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    hooks = [h for m in model.modules() for h in [*m._forward_hooks.values(), *m._forward_pre_hooks.values()]]
    seen, storages, stack = {id(source)}, {}, [vars(obj), hooks]
    while stack:
        x = stack.pop()
        if id(x) in seen or isinstance(x, torch.nn.Module):
            continue
        seen.add(id(x))
        if isinstance(x, torch.Tensor):
            storage = x.untyped_storage()
            if storage.data_ptr() not in owned:
                storages[storage.data_ptr()] = storage.nbytes()
        elif isinstance(x, dict):
            stack += [*x.keys(), *x.values()]
        elif isinstance(x, (list, tuple, set)):
            stack += list(x)
        elif callable(x) and getattr(x, "__closure__", None):
            stack += [cell.cell_contents for cell in x.__closure__]
    return sum(storages.values())


def largest_pair_bytes(model) -> int:
    """One W0 and one dW of the model's largest matrix, in fp32."""
    return 2 * 4 * max(p.numel() for p in model.parameters() if p.dim() == 2)


@pytest.mark.parametrize("name", ["oft", "dora", "full"])
def test_dense_path_retains_less_than_one_matrix_pair(name):
    """At 7B an fp32 W0 and dW of every matrix are 48.6 GiB: the path rebuilds W0 + alpha dW layer by layer on each
    call instead, so what it holds between calls stays below a single matrix pair, and inside a call too where the
    trained weights can be rebuilt (an adapter's base is W0; full FT's trained weights wait on the host)."""
    model, read_w0 = _trained(name), _read_w0()
    bound = largest_pair_bytes(model)
    path = DenseInterpolation(model, read_w0, residual=get_method(name).residual)
    assert retained_bytes(path, model, read_w0) < bound, name
    with path.at(0.5):
        if name != "full":
            assert retained_bytes(path, model, read_w0) < bound, name
    assert retained_bytes(path, model, read_w0) < bound, name


@pytest.mark.nf4
def test_dense_path_on_a_4bit_oft_keeps_no_weights_and_is_exact_at_both_ends():
    """OFT on an nf4 base, as the one-GPU profile trains it at 7B: the 4-bit weight cannot hold W0 + alpha dW, so the
    layers' outputs are interpolated, with no dequantised or bf16 matrix kept, and the ends are the base and the
    trained model exactly."""
    from arena.models import load_base
    from arena.profiles import get_profile
    from arena.runs import prepare_for_training, sized_method
    from arena.weight_analysis import pretrained_source

    nf4 = get_profile("smoke", quantization="nf4")
    torch.manual_seed(0)
    model = build("oft", prepare_for_training(load_base(nf4.model, "nf4")[0], "nf4", False),
                  sized_method(nf4, "oft").size, steps=2)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    model.eval()
    trained = _logits(model)
    with model.disable_adapter():
        base = _logits(model)
    read_w0 = pretrained_source(nf4)
    bound = largest_pair_bytes(smoke_model())
    path = DenseInterpolation(model, read_w0)
    assert retained_bytes(path, model, read_w0) < bound
    with path.at(0.0):
        assert torch.equal(_logits(model), base)
    with path.at(0.5):
        assert retained_bytes(path, model, read_w0) < bound
        half = _logits(model)
    with path.at(1.0):
        assert torch.equal(_logits(model), trained)
    assert not torch.allclose(half, trained) and not torch.allclose(half, base)
    assert torch.equal(_logits(model), trained)


def test_plain_lora_is_rewound_by_its_scaling_and_residual_inits_are_not():
    assert DenseInterpolation(_trained("lora"), _read_w0()).scale_only
    for residual in ("pissa", "milora", "keeplora"):  # detected from base != W0, no hint needed
        assert not DenseInterpolation(_trained(residual), _read_w0()).scale_only, residual
    assert not DenseInterpolation(_trained("dora"), _read_w0()).scale_only


class _Additive(torch.nn.Module):
    """A plain-torch method's layer (Method.wrap): W0 + B A, exposing delta_weight()."""

    def __init__(self, linear):
        super().__init__()
        self.base = linear
        self.A = torch.nn.Parameter(0.05 * torch.randn(2, linear.in_features))
        self.B = torch.nn.Parameter(0.05 * torch.randn(linear.out_features, 2))

    def forward(self, x):
        return self.base(x) + x @ self.A.T @ self.B.T

    def delta_weight(self):
        return self.B @ self.A


def test_dense_path_of_a_plain_torch_method():
    torch.manual_seed(0)
    model = smoke_model().eval()
    base_logits = _logits(model)
    for layer in model.model.layers:
        layer.mlp.down_proj = _Additive(layer.mlp.down_proj)
    trained = _logits(model)
    path = DenseInterpolation(model, _read_w0())
    with path.at(0.0):
        assert torch.allclose(_logits(model), base_logits, atol=1e-5)
    with path.at(1.0):
        assert torch.allclose(_logits(model), trained, atol=1e-4)
    assert torch.equal(_logits(model), trained)


@pytest.mark.parametrize("name", ["lora", "oft", "dora", "ia3"])
def test_merged_view_computes_the_same_model_and_restores_the_base(name):
    from arena.rewind import merged_view

    model = _trained(name)
    unmerged = _logits(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with merged_view(model):
        assert torch.allclose(_logits(model), unmerged, atol=1e-4)
        assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())  # it did merge
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert torch.equal(_logits(model), unmerged)
    with merged_view(model):  # the layers were left unmerged, so a second view merges again
        assert torch.allclose(_logits(model), unmerged, atol=1e-4)
    assert torch.equal(_logits(model), unmerged)


def test_lora_scaling_equals_the_dense_weight_path():
    model = _trained("lora")
    scaled = DenseInterpolation(model, _read_w0())
    dense = DenseInterpolation(model, _read_w0(), allow_scaling=False)  # the weight-writing route on the same model
    assert scaled.scale_only and not dense.scale_only and dense.writes
    with scaled.at(0.3):
        a = _logits(model)
    with dense.at(0.3):
        b = _logits(model)
    assert torch.allclose(a, b, atol=1e-5)


def test_generator_path_ends_and_orthogonality():
    model = _trained("oft", scale=0.01)  # trained generators are small; Neumann's truncation error grows as ||Q||^5
    base_logits, trained_logits = _logits(smoke_model().eval()), _logits(model)
    with generator_path(model, 1.0):
        assert torch.equal(_logits(model), trained_logits)  # the same routine: bit for bit
    with generator_path(model, 0.0):
        assert torch.allclose(_logits(model), base_logits, atol=1e-5)
    for schedule in ("sqrt", "linear"):
        rows = rotation_errors(model, [0.1, 0.3, 0.5, 0.7, 1.0], schedule)
        trained_error = rows[-1]["generator_error"]
        for row in rows:
            # every point as orthogonal as the trained rotation itself (Cayley-Neumann's own truncation error)
            assert row["generator_error"] <= trained_error + 1e-6, row
        half = next(r for r in rows if r["alpha"] == 0.5)
        assert half["dense_error"] > 20 * max(trained_error, 1e-7), half
    # the same numbers from the public helpers, on one layer
    _, layer, _ = next(iter(__import__("arena.oft_path", fromlist=["x"]).iter_oft_layers(model)))
    R = oft_rotation(layer, 1.0, blocks=True).double()
    assert orthogonality_error(dense_factor(R[0], 0.5)) > orthogonality_error(oft_rotation(layer, 0.5 ** 0.5,
                                                                                          blocks=True))


def test_sqrt_and_linear_schedules_trace_the_same_models():
    model = _trained("oft", scale=0.05)
    with generator_path(model, 0.25, "sqrt"):
        a = _logits(model)
    with generator_path(model, 0.5, "linear"):
        b = _logits(model)
    assert torch.equal(a, b)


def test_layerwise_rules_scale_late_layers_and_restore():
    model = _trained("oft", scale=0.05)
    trained = _logits(model)
    safe, low = layer_scales(model, "safe"), layer_scales(model, "min")
    assert all(0 < c <= 1 for c in [*safe.values(), *low.values()])
    assert all(low[k] <= safe[k] + 1e-12 for k in safe)  # the minimum is never above the mean of the first five
    assert set(layer_scales(model, "uniform", 0.4).values()) == {0.4}
    with layerwise(model, "uniform", 0.4):
        assert not torch.allclose(_logits(model), trained)
    assert torch.equal(_logits(model), trained)
    with pytest.raises(ArenaError, match="unknown layer-wise rule"):
        layer_scales(model, "median")


def test_generator_path_refuses_non_oft_models():
    with pytest.raises(ArenaError, match="needs an OFT model"):
        with generator_path(_trained("lora"), 0.5):
            pass


def test_selection_rule_and_split_guard():
    final = {"general": 30.0, "target": 40.0, "target_se": 5.0, "alpha": 1.0}
    points = [{"general": 36.0, "target": 33.0, "alpha": 0.3},  # too much target lost
              {"general": 34.0, "target": 37.0, "alpha": 0.6},  # within one SE: chosen
              {"general": 34.0, "target": 36.0, "alpha": 0.5}]  # tie on General: the larger alpha wins
    assert select_point(points, final)["alpha"] == 0.6
    assert select_point(points, final, delta=0.0) is final  # nothing keeps the target: the final stays
    with pytest.raises(ArenaError, match="validation scores only"):
        select_point([{**points[1], "split": "test"}], final)


def test_variants_cover_the_paths():
    from arena.runs import sized_method, train_spec
    from arena.profiles import get_profile

    profile = get_profile("smoke")
    oft = variants(profile, train_spec(profile, sized_method(profile, "oft")))
    lora = variants(profile, train_spec(profile, sized_method(profile, "lora")))
    assert {p["path"] for p in oft} == {"train", "dense", "generator", "layerwise"}
    assert {p["path"] for p in lora} == {"train", "dense"}
    assert [p["step"] for p in lora if p["path"] == "train"] == [2]  # saved steps 0, 2, 4: the interior one


@pytest.mark.e2e
def test_smoke_rewinding_selects_on_validation_before_any_test_score(monkeypatch, tmp_path):
    """The whole study on the smoke profile, in its own results store: per method, validation scores, then one
    selection, then at most one test score (the chosen point's; the final's comes from the benchmark)."""
    import arena.evaluate
    import arena.rewind as rewind
    import arena.runs
    from arena.benchmark import run_method

    monkeypatch.setenv("PEFT_ARENA_RESULTS", str(tmp_path / "results"))
    for method in ("lora", "oft"):
        run_method("smoke", method)  # trained and scored on test before the study starts
    events = []
    real_evaluate, real_select = arena.evaluate.evaluate, rewind.select_point

    def spy_evaluate(model, tokenizer, profile, batch_size=None, split="test", reload=None):
        events.append(split)
        return real_evaluate(model, tokenizer, profile, batch_size, split, reload)

    def spy_select(candidates, final, delta=None):
        events.append("select")
        return real_select(candidates, final, delta)

    for module in (arena.evaluate, arena.runs, rewind):  # every name the study scores through
        monkeypatch.setattr(module, "evaluate", spy_evaluate)
    monkeypatch.setattr(rewind, "select_point", spy_select)
    out = rewind.run_rewinding("smoke", ["lora", "oft"], log=lambda *_: None)
    assert set(out["methods"]) == {"lora", "oft"}
    assert events.count("select") == 2 and events.count("validation") >= 2 * 4
    for i, event in enumerate(events):
        if event == "test":
            assert events[i - 1] == "select", f"a test score was read outside selection: {events}"
    oft = out["methods"]["oft"]
    assert {r["path"] for r in oft["validation"]} == {"train", "dense", "generator", "layerwise", "final"}
    assert oft["test"]["final"]["split"] == "test" and oft["selected"]["split"] == "validation"
    assert all(r["generator_error"] <= oft["rotation_errors"][-1]["generator_error"] + 1e-6
               for r in oft["rotation_errors"])
    n_events = len(events)
    again = rewind.run_rewinding("smoke", ["lora"], log=lambda *_: None)  # cached: no new evaluation
    assert again["methods"]["lora"]["gain_test"] == out["methods"]["lora"]["gain_test"]
    assert events[n_events:] == ["select"]


def test_uniform_04_is_the_generator_path_at_alpha_04():
    """D4/D6's "uniform 0.4" and the generator path's alpha = 0.4 are one model (generators scaled by sqrt(0.4)), as
    the paper's figure shows them."""
    from arena.profiles import get_profile
    from arena.rewind import point_alpha, point_label, uniform_scale
    from arena.runs import sized_method, train_spec

    profile = get_profile("smoke")
    uniform = next(p for p in variants(profile, train_spec(profile, sized_method(profile, "oft")))
                   if p.get("rule") == "uniform")
    assert point_label(uniform) == "uniform 0.4" and point_alpha(uniform, 10) == 0.4
    assert uniform_scale(uniform) == pytest.approx(0.4 ** 0.5)
    model = _trained("oft", scale=0.05)
    with generator_path(model, 0.4):
        on_path = _logits(model)
    with layerwise(model, "uniform", uniform_scale(uniform)):
        assert torch.equal(_logits(model), on_path)
