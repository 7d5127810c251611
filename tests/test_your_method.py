"""Bring your own method: a method written outside ``arena/`` goes through training, evaluation and the
analyses, and lands on the Pareto data beside the cached results of the others, which are not recomputed."""

import os
import sys
import textwrap

import pytest
import torch

TOY = textwrap.dedent('''
    """A toy plain-torch method: a learned rank-r update inside each linear's top-r singular subspace."""
    import torch
    from torch import nn

    from arena.methods import Method, register

    TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


    class TopSubspace(nn.Module):
        def __init__(self, linear, r):
            super().__init__()
            self.base = linear
            W = linear.weight
            if W.is_meta:  # counting parameters on a skeleton: shapes only
                U, V = torch.empty(W.shape[0], r, device="meta"), torch.empty(W.shape[1], r, device="meta")
            else:
                U, _, Vh = torch.linalg.svd(W.detach().float(), full_matrices=False)
                U, V = U[:, :r], Vh[:r].T
            self.register_buffer("U", U, persistent=False)
            self.register_buffer("V", V, persistent=False)
            self.M = nn.Parameter(torch.zeros(r, r, device=W.device))

        def forward(self, x):
            return self.base(x) + ((x @ self.V.to(x.dtype)) @ self.M.T.to(x.dtype)) @ self.U.T.to(x.dtype)

        def delta_weight(self):
            return self.U @ self.M.float() @ self.V.T


    def wrap(model, r):
        for module in list(model.modules()):
            for name, child in list(module.named_children()):
                if name in TARGETS and isinstance(child, nn.Linear):
                    setattr(module, name, TopSubspace(child, r))
        return model


    for name, lr in (("toy-subspace", 1e-3), ("toy-subspace-slow", 1e-4)):
        register(Method(name, "r x r update in the top-r singular subspace (test)", "additive", lr=lr,
                        wrap=wrap, size_name="r", sizes=(2, 4, 8, 16, 32), default_size=8), replace=True)
''')


@pytest.fixture
def toy_module(tmp_path, monkeypatch):
    (tmp_path / "toy_methods.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module("toy_methods")
    yield module
    from arena.methods import unregister

    unregister("toy-subspace")
    unregister("toy-subspace-slow")
    sys.modules.pop("toy_methods", None)


@pytest.mark.e2e
def test_a_method_from_outside_arena_reaches_the_pareto_data(toy_module, monkeypatch):
    import arena.benchmark as benchmark
    from arena import report, runs, weight_analysis
    from arena.methods.registry import source_module
    from arena.methods import get_method
    from arena.profiles import get_profile
    from arena.train import TrainSpec

    profile = get_profile("smoke")
    base = runs.evaluate_base(profile)
    others = benchmark.run_benchmark(profile, analyse=False, log=lambda *_: None)  # the cached "paper" methods
    assert source_module(get_method("toy-subspace")) == "toy_methods"
    expected = 1 if torch.cuda.is_available() else min(2, os.cpu_count() or 1)  # an importable method is not forced
    assert benchmark.default_workers(["toy-subspace", "toy-subspace-slow"]) == expected  # to 1 (one GPU: one worker)

    trained = []
    real = benchmark.train_method  # the name run_method calls
    monkeypatch.setattr(benchmark, "train_method", lambda *a, **k: trained.append(a[1].method) or real(*a, **k))
    # two new methods: two spawn workers, which import toy_methods themselves (the analyses read delta_weight)
    mine = benchmark.run_benchmark(profile, ["toy-subspace", "toy-subspace-slow", "lora"], workers=2,
                                   log=lambda *_: None)
    again = benchmark.run_benchmark(profile, log=lambda *_: None)
    assert trained == [], "trained in this process"  # the toys trained in the workers, the rest came from the store
    assert [r["eval"]["general"] for r in again] == [r["eval"]["general"] for r in others]

    toy = mine[0]
    assert toy["method"] == "toy-subspace" and toy["train"]["trained_parameters"] > 0
    frame = report.pareto_frame([*again, toy], base)
    assert toy["label"] in set(frame["method"]) and len(frame) == len(others) + 2  # + base row
    assert mine[2]["eval"]["general"] == next(r for r in others if r["method"] == "lora")["eval"]["general"]
    spectra = weight_analysis.analyse_checkpoint(profile, TrainSpec(**toy["spec"]))
    assert len(spectra["rows"]) == 4 * 7 and all(r["dW_fro"] > 0 for r in spectra["rows"])


def test_plain_torch_method_counts_and_builds(toy_module):
    from arena.budget import match
    from arena.methods import build, count_trainable
    from arena.models import base_config, smoke_model
    from arena.profiles import get_profile
    from arena.updates import module_update

    config = base_config(get_profile("smoke").model)
    sized = match("toy-subspace", config, count_trainable("toy-subspace", config, 8))
    assert sized.size == 8 and sized.count == count_trainable("toy-subspace", config, 8)
    model = build("toy-subspace", smoke_model(), 4)
    assert {n.rsplit(".", 1)[-1] for n, p in model.named_parameters() if p.requires_grad} == {"M"}
    layer = model.model.layers[0].self_attn.q_proj
    with torch.no_grad():
        layer.M.normal_()
    W0 = layer.base.weight.detach()
    x = torch.randn(3, W0.shape[1])
    assert torch.allclose(layer(x), x @ (W0 + module_update(layer, W0)).T, atol=1e-4)


def test_editing_a_method_changes_its_cache_key(toy_module, tmp_path):
    import importlib

    from arena.methods import get_method
    from arena.methods.registry import fingerprint

    before = fingerprint(get_method("toy-subspace"))
    assert before == fingerprint(get_method("toy-subspace")) and fingerprint(get_method("lora")) is None
    # an edit inside the layer class (not in the registered functions) must change the key too
    (tmp_path / "toy_methods.py").write_text(TOY.replace("self.base(x) + ", "self.base(x) + 0.5 * "))
    importlib.reload(toy_module)
    assert fingerprint(get_method("toy-subspace")) != before


def test_a_method_defined_in_a_cell_is_hashed_with_its_classes():
    import functools

    from arena.methods import Method
    from arena.methods.registry import fingerprint, source_module

    class Layer(torch.nn.Module):
        pass

    def wrap(model, r):
        return Layer

    m = Method("cell-method", "test", "additive", lr=1e-3, wrap=functools.partial(wrap), size_name="r", sizes=(2, 4))
    assert source_module(m) == "test_your_method"  # the partial is looked through, not "functools"
    assert fingerprint(m) == fingerprint(m)


def test_a_fresh_process_can_load_the_kits_methods_and_those_of_importable_modules_only():
    import sys

    from arena.methods import get_method, Method
    from arena.methods.registry import loadable_elsewhere, register_from

    def wrap(model, r):
        return model

    wrap.__module__ = "__main__"  # as if defined in a notebook cell
    assert loadable_elsewhere(get_method("lora"))
    def toy(name):
        return Method(name, "test", "additive", lr=1e-3, wrap=wrap, size_name="r", sizes=(2,))

    assert not loadable_elsewhere(toy("in-a-cell"))
    wrap.__module__ = "json"  # any importable module
    assert loadable_elsewhere(toy("in-a-module"))
    sys.modules.pop("colorsys", None)
    register_from("colorsys")
    assert "colorsys" in sys.modules
    register_from(None)  # the kit's own: nothing to import
