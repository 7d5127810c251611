"""The report tables and the forgetting proxies, on synthetic records and the smoke model."""

import math

import pytest
from arena import report
from arena.budget import at_size
from arena.errors import ArenaError
from arena.evaluate import summarise
from arena.forgetting import cross_entropy_and_kl, summarise_proxies
from arena.models import base_config, smoke_model, smoke_tokenizer
from arena.profiles import SMOKE_MODEL
from arena.stats import correlations, rank_correlation


def _items(general, target):
    """Items where every general task scores ``general`` and every target task ``target`` (0/1 per item)."""
    g, t = [general] * 4, [target] * 4
    return {"arena_bbh_a": g, "arena_ifeval:inst": [[general]] * 4, "arena_ifeval": g, "arena_qa": g,
            "arena_wordproblems": t, "arena_arithmetic": t, "arena_emqa": t}


def _record(method, general, target, family="additive"):
    items = _items(general, target)
    proxies = {"ce_drift": 0.1, "ce_drift_se": 0.01, "kl": 0.2, "kl_se": 0.02}
    return {"method": method, "label": method, "family": family, "count": 10,
            "eval": {"items": items, **summarise(items), "proxies": proxies, "eval_wall_s": 1.0},
            "train": {"train_wall_s": 2.0, "losses": [1.0, 0.5]}}


BASE = {"items": _items(1, 0), **summarise(_items(1, 0))}


def test_forgetting_and_gain_have_the_papers_signs():
    d = report.deltas(_record("lora", 0, 1), BASE)
    assert d["forgetting"] == pytest.approx(100)  # General fell from 100 to 0
    assert d["target_gain"] == pytest.approx(100)  # Target rose from 0 to 100


def test_pareto_frame_marks_the_non_dominated_points():
    records = [_record("a", 1, 1), _record("b", 0, 0), _record("c", 1, 0)]
    frame = report.pareto_frame(records, BASE).set_index("method")
    assert frame.loc["a", "frontier"] and not frame.loc["b", "frontier"] and not frame.loc["c", "frontier"]
    assert not frame.loc["base", "frontier"]  # (100, 0) is beaten by a at (100, 100)


def test_compare_is_a_minus_b():
    c = report.compare(_record("oft", 1, 1), _record("lora", 0, 1))
    assert c["General diff"] == pytest.approx(100) and c["Target diff"] == pytest.approx(0)
    assert c["General verdict"] == "oft higher" and c["Target verdict"] == "no change"


def test_results_table_has_a_row_per_method_and_the_base():
    table = report.results_table([_record("lora", 0, 1)], BASE)
    assert list(table.index) == ["base", "lora"]
    assert table.loc["lora", "Forgetting"] == pytest.approx(100)


def test_proxies_are_zero_for_the_model_against_itself():
    model, tok = smoke_model(), smoke_tokenizer()
    per_doc = cross_entropy_and_kl(model, model, tok, ["a general sentence of text", "another one here"])
    out = summarise_proxies(per_doc)
    assert out["ce_drift"] == 0 and out["kl"] == pytest.approx(0, abs=1e-6)
    other = smoke_model(seed=1)
    assert summarise_proxies(cross_entropy_and_kl(other, model, tok, ["a general sentence"]))["kl"] > 0


def test_correlations_and_their_intervals():
    x = [1, 2, 3, 4, 5, 6]
    out = correlations(x, [2 * v for v in x])
    assert out["pearson"] == pytest.approx(1) and out["spearman"] == pytest.approx(1)
    assert out["pearson_low"] == pytest.approx(1)
    few = rank_correlation([1, 2, 3], [3, 2, 1])
    assert few["rho"] == pytest.approx(-1) and math.isnan(few["ci_low"])  # too few points for an interval


def test_at_size_counts_and_refuses_bad_sizes():
    config = base_config(SMOKE_MODEL)
    assert at_size("lora", config, 2).count == 4 * 2 * 1024 and not at_size("lora", config, 2).matched
    with pytest.raises(ArenaError, match="does not divide"):
        at_size("oft", config, 7)
