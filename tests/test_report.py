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
    ((5.0, 1.0), (0.0, 0.5), "dominates the final"),  # Target kept: 0 - 2 x 0.5 = -1 > -2
    ((5.0, 1.0), (-0.01, 0.9), "dominates the final"),  # a flat axis does not make it a trade-off
    ((5.0, 1.0), (3.0, 1.0), "dominates the final"),
    # Target neither lower beyond noise nor shown kept (its lower bound -3.5 is past -2): no "dominates"
    ((5.0, 1.0), (-0.5, 1.5), "is better on General than the final; Target not distinguishable"),
    ((5.0, 1.0), (-5.0, 1.0), "trades one axis for the other"),
    ((-5.0, 1.0), (0.5, 0.5), "is dominated by the final"),
    ((-5.0, 1.0), (0.5, 1.0), "is worse on General than the final; Target not distinguishable"),
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
    study = _study()
    study["methods"]["oft"]["gain_validation"]["dense a=0.3"] |= {"target": -0.5, "target_se": 0.5}  # kept: -1.5 > -2
    o = report.overshoot(study)["oft"]
    # step 10 loses Target beyond noise and SafeScale is not on a path: dense a=0.3 is the earlier point that counts
    assert o["point"] == "dense a=0.3" and o["general_gap"] == 15 and o["overshoot"]
    assert o["verdict"] == "the final overshoots"


def test_an_overshoot_needs_the_target_kept_not_merely_not_lost():
    """dense a=0.3: General +15 +- 1 over the final, Target -2 +- 1. The Target is not lower beyond two standard
    errors, but its lower bound (-4) is past the 2-point margin, so the point is better on General and its Target is
    not shown kept: no overshoot is claimed."""
    o = report.overshoot(_study())["oft"]
    assert o["point"] == "dense a=0.3" and not o["overshoot"]
    assert o["verdict"] == "better on General; Target not distinguishable"
    study = _study()
    study["methods"]["oft"]["gain_validation"]["dense a=0.3"]["general"] = 1.0  # below the threshold: nothing at all
    assert report.overshoot(study)["oft"]["verdict"] == "no overshoot beyond noise"


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
    assert table["OFT keeps more General than LoRA at a matched budget"] == "within noise: cannot tell"
    assert table["OFT's Target is similar to (within 2 points) or above LoRA's"] == "yes"  # the same items: 0 +- 0
    flipped = report.claims([noisy("full", 20, 2), noisy("lora", 2, 20)], BASE).set_index("claim")["holds here"]
    assert flipped["full FT has the largest target gain"] == "no"


def _answers(method, general, target):
    """A record whose three General tasks answer ``general`` and whose two Target tasks answer ``target`` (0/1 lists,
    item by item, so that the pairing between records is the lists' order)."""
    items = {"arena_bbh_a": general, "arena_ifeval:inst": [[x] for x in general], "arena_ifeval": general,
             "arena_qa": general, "arena_wordproblems": target, "arena_arithmetic": target}
    return {**_record(method, 0, 0), "eval": {**_record(method, 0, 0)["eval"], "items": items, **summarise(items)}}


def _first(k, n=100):
    return [1] * k + [0] * (n - k)


def test_similar_and_near_base_need_an_equivalence_test_not_a_non_significant_one():
    """"Similar" is shown by a 2-SE interval inside the 2-point margin; a difference that is merely within noise cannot
    tell. "Near base" is tested on the method's own Forgetting, not on "more General than LoRA"."""
    base = {"items": _answers("base", _first(100), _first(0))["eval"]["items"]}
    base |= summarise(base["items"])
    # OFT and LoRA each right on half the Target items, but on opposite halves: a difference of 0 +- 7 points
    lora, oft = _answers("lora", _first(90), [1, 0] * 50), _answers("oft", _first(90), [0, 1] * 50)
    table = report.claims([lora, oft], base).set_index("claim")["holds here"]
    assert table["OFT's Target is similar to (within 2 points) or above LoRA's"] == "within noise: cannot tell"
    # 200 Target items, OFT one fewer right: -0.5 +- 0.35, its lower bound -1.2 inside the margin
    lora, oft = _answers("lora", _first(90), [1, 0] * 100), _answers("oft", _first(90), [1, 0] * 99 + [0, 0])
    assert report.claims([lora, oft], base).set_index("claim")["holds here"][
        "OFT's Target is similar to (within 2 points) or above LoRA's"] == "yes"
    # VeRA: Forgetting 3 +- 1 (its interval [1, 5] is neither inside +-2 nor beyond it), far more General than LoRA,
    # less Target; IA3 forgets nothing; MiSS-like "vera" forgetting 10 +- 1.7 is not near base
    lora = _answers("lora", _first(70), _first(100))
    vera, ia3 = _answers("vera", _first(97), _first(50)), _answers("ia3", _first(100), _first(50))
    table = report.claims([lora, vera, ia3], base).set_index("claim")["holds here"]
    assert table["vera keeps General near base (within 2 points) but gains less Target than LoRA"] == \
        "within noise: cannot tell"
    assert table["ia3 keeps General near base (within 2 points) but gains less Target than LoRA"] == "yes"
    far = report.claims([lora, _answers("vera", _first(90), _first(50))], base).set_index("claim")
    assert far.loc["vera keeps General near base (within 2 points) but gains less Target than LoRA",
                   "holds here"] == "no"
    assert "Forgetting +10.0 ± 1.7" in far.iloc[-1]["evidence"]


def test_the_protocol_tables_name_every_construct_change_and_the_errors_their_conditions():
    from arena.profiles import get_profile

    changes = report.construct_changes(get_profile("embedded"))
    assert list(changes.index) == ["chat template on an instruct base", "ranking by likelihood without generation",
                                   "screened families", "in-distribution templates inside Target"]
    assert "training templates" in changes.loc["in-distribution templates inside Target", "this profile"]
    assert "no screen" in report.construct_changes(get_profile("smoke")).loc["screened families", "this profile"]
    assert "no likelihood ranking" in report.construct_changes(get_profile("paper")).iloc[1]["this profile"]
    rec = {"spec": {}, "train": {}, "eval": {}}
    errors = report.number_sources(get_profile("embedded"), [rec]).loc["standard errors and verdicts (every chapter)"]
    assert "conditional on the kit's fixed set of instruction types" in errors["protocol"]
    assert "one training seed" in errors["protocol"] and "screened families" in errors["protocol"]


def test_the_signal_to_noise_table_tests_against_equal_methods_and_offers_the_seed_noise():
    import pandas as pd

    # nine methods, Forgetting (0 x 8, 5.46) +- 1: SNR 1.82, p ~ 0.0009 against all methods equal
    table = pd.DataFrame([{"method": "base"}] + [
        {"method": f"m{i}", "Forgetting": 5.46 if i == 8 else 0.0, "Forgetting se": 1.0, "Target gain": 1.0,
         "Target gain se": 1.0} for i in range(9)]).set_index("method")
    snr = report.signal_to_noise(table)
    assert snr.loc["Forgetting", "SNR"] == pytest.approx(1.82)
    assert snr.loc["Forgetting", "p (all equal)"] == pytest.approx(0.00086, abs=2e-5)
    assert snr.loc["Forgetting", "null 95 %"] == pytest.approx(1.392, abs=1e-3)
    seeds = pd.DataFrame({"Forgetting seed sd": [1.0, 1.0], "Target gain seed sd": [0.5, 0.5]}, index=["a", "b"])
    both = report.signal_to_noise(table, seeds=seeds)
    assert both.loc["Forgetting", "SNR (items + seeds)"] == pytest.approx(1.82 / math.sqrt(2))


def test_a_pair_shows_its_error_with_the_seed_spread_beside_the_item_only_one():
    import pandas as pd

    a, b = _answers("oft", _first(100), _first(50)), _answers("lora", _first(90), _first(50))
    seeds = pd.DataFrame({"Forgetting seed sd": [4.0, 3.0], "Target gain seed sd": [0.0, 0.0]}, index=["oft", "lora"])
    c = report.compare_with_seeds(a, b, seeds)
    assert c["General diff"] == pytest.approx(10) and c["General verdict"] == "oft higher"  # 10 +- 1.7 on items
    assert c["General diff se (items + seeds)"] == pytest.approx(math.sqrt(c["General diff se"] ** 2 + 25))
    assert c["General verdict (items + seeds)"] == "within noise"  # 10 +- 5.3
    assert report.compare_with_seeds(a, b, seeds.drop(index="lora"))["General verdict (items + seeds)"] == \
        "no seed spread"
    table = report.pair_table([a, b], seeds=seeds)
    assert list(table.index) == ["oft - lora"] and "General diff se (items + seeds)" in table
    assert "General diff se (items + seeds)" not in report.pair_table([a, b])


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
