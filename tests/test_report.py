"""The report tables and the forgetting proxies, on synthetic records and the smoke model."""

import math

import pytest
from arena import report
from arena.budget import at_size
from arena.errors import ArenaError
from arena.scores import summarise
from arena.forgetting import cross_entropy_and_kl, summarise_proxies
from arena.models import base_config, smoke_model, smoke_tokenizer
from arena.profiles import SMOKE_MODEL
from arena.stats import correlations, rank_correlation


def _items(general, target):
    """Items where every general task scores ``general`` and every target task ``target`` (0/1 per item)."""
    g, t = [general] * 4, [target] * 4
    return {"arena_bbh_a": g, "arena_ifeval:inst": [[general]] * 4, "arena_ifeval": g, "arena_qa": g,
            "arena_wordproblems": t, "arena_arithmetic": t}


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


def _mixed(general_hits, target_hits, n=4):
    """Items with the first ``general_hits`` general items and ``target_hits`` target items right (0/1 each)."""
    g = [1.0 if i < general_hits else 0.0 for i in range(n)]
    t = [1.0 if i < target_hits else 0.0 for i in range(n)]
    return {"arena_bbh_a": g, "arena_ifeval:inst": [[x] for x in g], "arena_ifeval": g, "arena_qa": g,
            "arena_wordproblems": t, "arena_arithmetic": t}


def _scored(method, general_hits, target_hits):
    items = _mixed(general_hits, target_hits)
    return {**_record(method, 0, 0), "eval": {**_record(method, 0, 0)["eval"], "items": items, **summarise(items)}}


def test_tradeoff_ranking_and_margin_on_paired_items():
    base = {"items": _mixed(2, 0), **summarise(_mixed(2, 0))}
    records = [_scored("a", 2, 3), _scored("b", 1, 4), _scored("c", 0, 0)]
    ranking = report.tradeoff_ranking(records, base)
    # a: General +0, Target +75 -> +75; b: General -25, Target +100 -> +75; c: -50 + 0 -> -50
    assert list(ranking.index)[-1] == "c" and ranking.loc["c", "TargetGain - Forgetting"] == pytest.approx(-50)
    assert ranking.loc["a", "TargetGain - Forgetting"] == pytest.approx(75)
    margin = report.best_margin(records, base)
    assert {margin["best"], margin["runner_up"]} == {"a", "b"} and margin["margin"] == pytest.approx(0)
    assert margin["verdict"] == "within noise"
    paper = report.paper_ranking("qwen_math")
    assert paper.index[0] == "oft" and paper.loc["oft", "Target gain"] == pytest.approx(46.93 - 35.30)


@pytest.mark.parametrize("general,target,expected", [
    ((5.0, 1.0), (0.0, 1.0), "dominates the final"),
    ((5.0, 1.0), (-0.01, 1.0), "dominates the final"),  # a flat axis does not make it a trade-off
    ((5.0, 1.0), (-5.0, 1.0), "trades one axis for the other"),
    ((-5.0, 1.0), (0.5, 1.0), "is dominated by the final"),
    ((1.0, 1.0), (-1.0, 1.0), "differs from the final within noise"),
    ((0.0, 0.0), (0.0, 0.0), "equals the final"),
])
def test_dominance_judges_each_axis(general, target, expected):
    gain = {"general": general[0], "general_se": general[1], "target": target[0], "target_se": target[1]}
    assert report.dominance(gain) == expected


def _study():
    def row(label, path, alpha, general, target):
        return {"label": label, "path": path, "alpha": alpha, "general": general, "general_se": 5.0,
                "target": target, "target_se": 5.0, "point": {"path": path}, "split": "validation"}

    def gain(g, t, se=1.0):
        return {"general": g, "general_se": se, "target": t, "target_se": se}

    validation = [row("step 10", "train", 0.33, 40, 10), row("dense a=0.3", "dense", 0.3, 45, 28),
                  row("SafeScale", "layerwise", 1.0, 60, 30), row("final", "final", 1.0, 30, 30)]
    gains = {"step 10": gain(10, -20), "dense a=0.3": gain(15, -2), "SafeScale": gain(30, 0)}
    return {"base": row("base", "base", 0.0, 35, 0),
            "methods": {"oft": {"validation": validation, "gain_validation": gains,
                                "selected": validation[1], "gain_test": gain(4, 1, 1.0)}}}


def test_overshoot_ignores_points_that_lose_the_target_and_the_layerwise_rules():
    o = report.overshoot(_study())["oft"]
    # step 10 loses Target beyond noise and SafeScale is not on a path: dense a=0.3 is the earlier point that counts
    assert o["point"] == "dense a=0.3" and o["general_gap"] == 15 and o["overshoot"]


def test_rewind_frame_and_gains_tables():
    study = _study()
    frame = report.rewind_frame(study)
    paths = frame.groupby("path")["point"].apply(list).to_dict()
    assert paths["dense"] == ["base", "dense a=0.3", "final"] and paths["training"] == ["base", "step 10", "final"]
    assert paths["layerwise"] == ["SafeScale"]
    gains = report.rewind_gains(study)
    assert gains.loc[("oft", "dense a=0.3 (selected)"), "split"] == "test"
    assert gains.loc[("oft", "SafeScale"), "paper ΔGeneral (math)"] == pytest.approx(46.69 - 44.37, abs=0.01)
    beside = report.paper_rewind_beside(study)
    assert beside.loc[("oft", "generator", 0.3), "paper General"] == 48.6


def test_number_sources_name_the_device_and_protocol_of_each_kind_of_number():
    from arena.profiles import get_profile
    from arena.report import number_sources

    rec = {"spec": {"steps": 30, "batch_size": 6, "grad_accum": 1},
           "train": {"provenance": {"device": {"device": "cuda", "gpu": "NVIDIA H100"}}, "base_quantization": "nf4",
                     "processes": 2},
           "eval": {"provenance": {"device": {"device": "cpu", "gpu": None}}}}
    table = number_sources(get_profile("embedded"), [rec])
    train, scores = table.iloc[0], table.iloc[1]
    assert train["device"] == "cuda (NVIDIA H100)" and "nf4" in train["protocol"] and "2 process" in train["protocol"]
    assert scores["device"] == "cpu" and "offline suite" in scores["protocol"] and "HFLM" in scores["protocol"]
    paper = number_sources(get_profile("paper", eval_backend="vllm"), [rec]).iloc[1]["protocol"]
    assert "stock tasks" in paper and "vLLM" in paper


def test_each_starting_base_is_listed_once_with_its_paired_gap_and_quantiser_errors_are_tabled():
    import pandas as pd

    from arena import report

    nf4 = {"items": {"arena_qa": [1.0, 0.0]}, "general": 40.0, "general_se": 1.0, "target": 10.0, "target_se": 1.0,
           "quantization": "nf4"}
    full = {"items": {"arena_qa": [1.0, 1.0]}, "general": 45.0, "general_se": 1.0, "target": 9.0, "target_se": 1.0}
    records = [{"base_eval": nf4, "base_quantization": "nf4"}, {"base_eval": full, "base_quantization": None},
               {"base_eval": full, "base_quantization": None}]
    bases = report.bases_of(records, nf4)
    assert list(bases) == ["nf4", None] and bases[None] is full
    frame = pd.DataFrame([{"method": "lora", "name": "a", "quantization_error": 0.1, "relative_dW": 0.01},
                          {"method": "lora", "name": "b", "quantization_error": 0.3, "relative_dW": 0.03},
                          {"method": "full", "name": "a", "quantization_error": 0.0, "relative_dW": 0.5}])
    table = report.quantization_errors(frame)
    assert list(table.index) == ["lora"] and table.loc["lora", "quantisation_error_max"] == 0.3
    assert report.quantization_errors(frame.assign(quantization_error=0.0)) is None


def test_overshoot_needs_the_family_threshold_for_the_best_of_its_points():
    study = _study()
    # two earlier points on the paths: the best of 2 needs 2.28 standard errors, not 2
    study["methods"]["oft"]["gain_validation"]["dense a=0.3"] = {"general": 2.1, "general_se": 1.0,
                                                                 "target": 0.0, "target_se": 1.0}
    o = report.overshoot(study)["oft"]
    assert o["candidates"] == 2 and o["threshold"] == pytest.approx(2.28, abs=0.01) and not o["overshoot"]


def test_claims_are_decided_by_paired_verdicts_not_point_estimates():
    def noisy(method, general, target):
        """20 items per task; ``general`` / ``target``: how many of them are right."""
        g, t = [1] * general + [0] * (20 - general), [1] * target + [0] * (20 - target)
        items = {"arena_bbh_a": g, "arena_ifeval:inst": [[x] for x in g], "arena_ifeval": g, "arena_qa": g,
                 "arena_wordproblems": t, "arena_arithmetic": t}
        return {**_record(method, 0, 0), "eval": {**_record(method, 0, 0)["eval"], "items": items,
                                                  **summarise(items)}}

    records = [noisy("full", 2, 20), noisy("lora", 18, 10), noisy("oft", 19, 10)]
    table = report.claims(records, BASE).set_index("claim")["holds here"]
    assert table["full FT has the largest target gain"] == "yes"
    assert table["full FT has the largest general loss"] == "yes"
    # OFT above LoRA by one item of 20: a point estimate would say "holds"; the paired verdict says noise
    assert table["OFT keeps more General than LoRA at a matched budget"] == "within noise"
    assert table["OFT's Target is similar to or above LoRA's"] == "yes"
    flipped = report.claims([noisy("full", 20, 2), noisy("lora", 2, 20)], BASE).set_index("claim")["holds here"]
    assert flipped["full FT has the largest target gain"] == "no"


def test_profile_curves_draw_raw_retention_as_the_papers_plots_and_the_scaled_view_beside():
    curves = {"retention": [4.0, 2.0], "retention_normalised": [0.4, 0.2], "adaptation_normalised": [0.7, 0.3],
              "sigma_over_max": [1.0, 0.5], "sigma_over_sum": [2 / 3, 1 / 3]}
    frame = report.profile_curves({"lora": {"curves": curves}}, ["lora"])
    panels = frame.pivot_table(index=["method", "index"], columns="panel", values="value")
    assert panels.loc[("lora", 1), report.RETENTION_RAW] == 4.0
    assert panels.loc[("lora", 1), report.RETENTION_SCALED] == 0.4
    assert panels.loc[("pretrained", 2), report.RETENTION_RAW] == 0.5 == panels.loc[("pretrained", 2),
                                                                                    report.RETENTION_SCALED]
    assert panels.loc[("pretrained", 2), report.ADAPTATION] == pytest.approx(1 / 3)


def test_power_table_holds_each_se_to_its_target_with_the_detectable_effect():
    import pandas as pd

    table = pd.DataFrame([{"method": "base"},
                          {"method": "lora", "Forgetting se": 1.5, "Target gain se": 3.0}]).set_index("method")
    power = report.power_table(table, {"general_se": 4.0})
    assert bool(power.loc[("lora", "Forgetting"), "meets target"]) and not power.loc[("lora", "Target gain"),
                                                                                     "meets target"]
    assert power.loc[("lora", "Forgetting"), "detectable effect"] == pytest.approx(2.8016 * 1.5, abs=1e-3)
    assert not power.loc[("base", "validation General"), "meets target"]
    assert list(report.power_table(table).index.get_level_values(0)) == ["lora", "lora"]


def test_other_bases_table_stacks_each_base_and_charts_stack_one_above_another():
    from types import SimpleNamespace

    from arena import charts

    assert report.other_bases_table([]) is None
    other = SimpleNamespace(model=SimpleNamespace(name="second"))
    table = report.other_bases_table([(other, BASE, [_record("lora", 0, 1)])])
    assert list(table.index.get_level_values("base").unique()) == ["second"]
    assert table.loc[("second", "lora"), "Target gain"] == pytest.approx(100)
    frame = report.pareto_frame([_record("lora", 0, 1)], BASE)
    one = charts.pareto(frame, "a")
    assert charts.stack([one]) is one and type(charts.stack([one, one])).__name__ == "VConcatChart"
