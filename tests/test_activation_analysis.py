"""Activation-space analysis on trained smoke checkpoints (paper_spec.md C)."""

import pytest

from arena import activation_analysis
from arena.runs import sized_method, train_method, train_spec
from arena.profiles import get_profile


def _run(method):
    profile = get_profile("smoke", steps=3, save_every=3)
    spec = train_spec(profile, sized_method(profile, method))
    train_method(profile, spec)
    return profile, spec, activation_analysis.analyse_checkpoint(profile, spec)


def test_prompt_sets_come_from_the_suite_and_are_fixed():
    profile = get_profile("smoke")
    a, b = activation_analysis.prompt_sets(profile), activation_analysis.prompt_sets(profile)
    assert a == b and a["general"] and a["target"]
    assert not set(a["general"]) & set(a["target"])


def test_rows_cover_both_datasets_and_the_paper8_modules():
    _, _, out = _run("lora")
    assert len(out["modules"]) == 8
    assert {(r["dataset"], r["module"]) for r in out["rows"]} == {(d, m) for d in ("general", "target")
                                                                  for m in out["modules"]}
    for r in out["rows"]:
        assert r["n_tokens"] > 0 and 0 <= r["proc_residual"] <= r["raw_residual"] + 1e-6
        assert r["csd_abs"] > 0


def test_an_untouched_model_has_no_distortion():
    profile = get_profile("smoke", steps=3, save_every=3, lr_scale=0.0)
    spec = train_spec(profile, sized_method(profile, "oft"))
    assert spec.lr == 0.0
    train_method(profile, spec)
    out = activation_analysis.analyse_checkpoint(profile, spec)
    for r in out["rows"]:
        assert r["csd_abs"] == pytest.approx(0, abs=1e-12)
        assert r["cka"] == pytest.approx(1, abs=1e-5) and r["raw_residual"] == pytest.approx(0, abs=1e-5)
