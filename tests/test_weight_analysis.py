"""Whole-model weight-space analysis on trained smoke checkpoints (paper_spec.md B)."""

import pytest

from arena import weight_analysis
from arena.runs import sized_method, train_method, train_spec
from arena.profiles import get_profile


def _analysis(method, size=None):
    profile = get_profile("smoke", steps=3, save_every=3)
    spec = train_spec(profile, sized_method(profile, method, size))
    train_method(profile, spec)
    return profile, spec, weight_analysis.analyse_checkpoint(profile, spec)


def test_every_adapted_matrix_is_analysed_with_the_figure_curves():
    _, _, out = _analysis("lora")
    assert len(out["rows"]) == 4 * 7
    assert {r["module"] for r in out["rows"]} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                  "down_proj"}
    assert out["figure"] == "model.layers.3.mlp.down_proj" and out["curves"]["retention"]


def test_lora_updates_have_stable_rank_at_most_r():
    _, _, out = _analysis("lora", 2)
    assert all(r["stable_rank"] <= 2 + 1e-4 for r in out["rows"])


def test_oft_updates_keep_the_pretrained_spectrum():
    _, _, out = _analysis("oft", 16)
    # W1 = W0 R^T with R (nearly) orthogonal: the finetuned matrix keeps W0's singular vectors' span (no intruders)
    # and its right singular vectors stay aligned with the pretrained ones on average
    assert all(r["intruders"] == 0 for r in out["rows"])
    assert all(r["sva_mean"] > 0.5 for r in out["rows"])


def test_analysis_is_stored_and_not_recomputed(monkeypatch):
    profile, spec, first = _analysis("full")
    monkeypatch.setattr(weight_analysis, "analyse_model", lambda *a, **k: pytest.fail("recomputed"))
    again = weight_analysis.analyse_checkpoint(profile, spec)
    assert again["rows"] == first["rows"]


def test_spectra_modules_limit_the_analysis_and_move_the_figure_matrix():
    from dataclasses import replace

    from arena import keys, store

    profile, spec, whole = _analysis("lora")
    some = replace(profile, spectra_modules=("k_proj", "v_proj"))
    out = weight_analysis.analyse_checkpoint(some, spec)
    assert {r["module"] for r in out["rows"]} == {"k_proj", "v_proj"} and len(out["rows"]) == 4 * 2
    assert out["figure"] == "model.layers.3.self_attn.k_proj" and out["curves"]["retention"]
    # the same matrices, the same numbers as in the whole-model analysis
    same = {r["name"]: r["stable_rank"] for r in whole["rows"]}
    assert all(r["stable_rank"] == pytest.approx(same[r["name"]]) for r in out["rows"])
    assert store.key_hash(keys.spectra_key(some, spec, 3)) != store.key_hash(keys.spectra_key(profile, spec, 3))
    assert weight_analysis.figure_matrix(28, ("down_proj", "q_proj")) == "model.layers.18.mlp.down_proj"
