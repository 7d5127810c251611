"""The chapters' verdict sentences and joined tables (arena/verdicts.py) on small hand-made inputs."""

import math

import pandas as pd
import pytest

from arena import verdicts
from arena.scores import summarise


def _items(general: float, target: float) -> dict:
    """Per-item scores whose General and Target are ``general`` and ``target`` (0-1), 4 items per task."""
    g = [general] * 4
    return {"arena_bbh_a": g, "arena_ifeval:inst": [[general]] * 4, "arena_ifeval": g, "arena_qa": g,
            "arena_wordproblems": [target] * 4, "arena_arithmetic": [target] * 4}


def _record(label: str, general: float, target: float, ce: float) -> dict:
    items = _items(general, target)
    return {"label": label, "method": label, "eval": {"items": items, **summarise(items), "proxies": {"ce_drift": ce}},
            "train": {"train_tokens_per_s": 10.0, "peak_rss_mb": 1.0}}


BASE = {"items": _items(0.5, 0.2), **summarise(_items(0.5, 0.2))}
RECORDS = [_record("a", 0.4, 0.3, 0.1), _record("b", 0.45, 0.25, 0.05), _record("c", 0.3, 0.4, 0.3)]


def test_csd_table_means_over_modules_and_joins_each_methods_forgetting():
    rows = [{"method": m, "module": mod, "dataset": d, "csd_rel": v}
            for m, scale in (("a", 1.0), ("b", 2.0), ("c", 3.0)) for mod in ("q", "k")
            for d, v in (("general", 2 * scale), ("target", scale))]
    table = verdicts.csd_table(pd.DataFrame(rows), RECORDS, BASE)
    assert table.loc["b", "CSD_G,rel"] == 4.0 and table.loc["b", "ratio"] == 2.0
    assert table.loc["a", verdicts.FORGETTING] == pytest.approx(100 * (0.5 - 0.4))
    assert table.loc["c", verdicts.CE] == 0.3


def _corr(pr, pr_low, ck, ck_high, raw):
    index = pd.MultiIndex.from_tuples([(m, verdicts.FORGETTING) for m in ("proc_residual", "cka", "raw_residual")])
    return pd.DataFrame([{"pearson": pr, "pearson_low": pr_low, "pearson_high": 1.0},
                         {"pearson": ck, "pearson_low": -1.0, "pearson_high": ck_high},
                         {"pearson": raw, "pearson_low": -1.0, "pearson_high": 1.0}], index=index)


def test_the_distortion_claim_is_confirmed_only_by_intervals_that_exclude_zero():
    firm = verdicts.distortion_claim(_corr(0.8, 0.2, -0.7, -0.1, 0.1), verdicts.FORGETTING)
    loose = verdicts.distortion_claim(_corr(0.8, -0.2, -0.7, 0.1, 0.1), verdicts.FORGETTING)
    none = verdicts.distortion_claim(_corr(0.8, math.nan, -0.7, math.nan, 0.9), verdicts.FORGETTING)
    wrong = verdicts.distortion_claim(_corr(-0.5, -0.9, 0.4, 0.9, 0.1), verdicts.FORGETTING)
    half = verdicts.distortion_claim(_corr(0.8, 0.2, -0.7, 0.1, 0.1), verdicts.FORGETTING)
    assert "supports the claim" in firm and "both intervals exclude zero" in firm
    assert "both intervals include zero" in loose
    assert "but the CKA interval includes zero" in half  # the Procrustes interval excludes it: say which one does not
    assert "too few methods" in none and "does not support" in wrong
    # raw movement against the residual is an untested difference of correlations: never "about as well" or "less well"
    for sentence in (firm, loose, half, none, wrong):
        assert "not tested here" in sentence and "as well" not in sentence and "less well," not in sentence


def test_overshoot_and_selection_sentences():
    shoot = {"lora": {"point": None, "overshoot": False, "verdict": "no overshoot beyond noise"},
             "oft": {"point": "dense a=0.6", "overshoot": True, "verdict": "the final overshoots", "general_gap": 4.0,
                     "general_gap_se": 1.0, "target_change": -1.0, "target_change_se": 0.4, "candidates": 4,
                     "threshold": 2.53}}
    lines = verdicts.overshoot_sentences(shoot)
    assert "no overshoot" in lines[0] and "the final overshoots" in lines[1]
    assert "best of 4 earlier points it needs 2.53 standard errors" in lines[1]
    gain = {"general": 4.0, "general_se": 1.0, "target": 0.5, "target_se": 1.0}
    result = {"methods": {"lora": {"gain_test": gain, "selected": {"label": "final"}},
                          "oft": {"gain_test": gain, "selected": {"label": "dense a=0.6"}}}}
    lines = verdicts.selection_sentences(result, shoot)
    assert "the final checkpoint itself" in lines[0] and "changes General by +4.0 ± 1.0" in lines[1]
    assert lines[1].startswith("- oft: the final overshoots on the validation split")


def test_a_general_gain_with_an_undistinguished_target_is_not_called_an_overshoot_or_dominance():
    """On the test split +4 +- 1 General and -0.5 +- 1.5 Target: the old rule read "not lower beyond noise" as "kept"
    and said "dominates"; the Target's lower bound (-3.5) is past the 2-point margin, so it is not shown kept."""
    from test_report import _study

    from arena import report

    study = _study()
    study["methods"]["oft"]["gain_test"] = {"general": 4.0, "general_se": 1.0, "target": -0.5, "target_se": 1.5}
    line = verdicts.rewinding_summary(study)[0]
    assert line.startswith("- oft: better on General; Target not distinguishable on the validation split")
    assert line.endswith("(is better on General than the final; Target not distinguishable)")
    sentence, = verdicts.selection_sentences(study, report.overshoot(study))
    assert "it is better on General than the final; Target not distinguishable." in sentence


def test_forgetting_verdicts_say_within_noise_inside_two_standard_errors():
    table = pd.DataFrame([{"method": "base"}, {"method": "a", "Forgetting": 1.0, "Forgetting se": 1.0,
                                               "forgetting is": "within noise", "CE drift": 0.5, "CE drift se": 0.1,
                                               "Target gain": 3.0, "Target gain se": 1.0, "gain is": "measurable"}]
                         ).set_index("method")
    row = verdicts.forgetting_verdicts(table).loc["a"]
    assert row["Forgetting (General)"] == "+1.00 ± 1.00: within noise" and row["CE drift"].endswith("measurable")


def test_the_per_method_verdicts_carry_holms_correction_over_the_whole_table():
    """Nine methods, 18 verdicts: KeepLoRA's Target loss at z = 2.96 reads "negative" alone (p = 0.003) but not after
    Holm over 18 (it needs p <= 0.0455 / 18 = 0.0025 when it is the smallest); a z = 5 forgetting survives."""
    rows = [{"method": "base"}]
    for i in range(9):
        rows.append({"method": f"m{i}", "Forgetting": 0.5, "Forgetting se": 1.0, "forgetting is": "within noise",
                     "CE drift": 0.0, "CE drift se": 0.1, "Target gain": 1.0, "Target gain se": 1.0,
                     "gain is": "within noise"})
    rows[1] |= {"method": "keeplora", "Target gain": -2.96, "gain is": "negative"}
    rows[2] |= {"method": "full", "Forgetting": 5.0, "forgetting is": "measurable"}
    table = pd.DataFrame(rows).set_index("method")
    out = verdicts.forgetting_verdicts(table)
    assert out.loc["keeplora", "Target gain"] == "-2.96 ± 1.00: negative"
    assert out.loc["keeplora", "Target gain, Holm over 18"].startswith("within noise (adjusted p = 0.05")
    assert out.loc["full", "Forgetting, Holm over 18"] == "measurable (adjusted p < 0.001)"
    note = verdicts.family_note(table)
    assert note.startswith("18 verdicts at 2 standard errors each: if no method changed anything, about 0.8 of them")
    assert "at least one would with probability 57%" in note


def test_the_snr_sentence_is_a_test_against_equal_methods():
    """Forgetting's SNR of 1.82 over 9 methods is p ~ 0.001 against "all methods equal": the old sentence called any
    SNR up to 2 "near what noise alone draws"."""
    certainty = pd.DataFrame([{"measure": m, "yardstick": "accuracy (the paper's)", "unit": "points",
                               "paired se (largest)": 2.0, "detectable effect": 5.6, "target se": 2.0,
                               "meets target": True} for m in ("Forgetting", "Target gain")]).set_index("measure")
    snr = pd.DataFrame([{"measure": "Forgetting", "methods": 9, "SNR": 1.82, "F = SNR²": 1.82**2,
                         "p (all equal)": 0.00086, "null 95 %": 1.39},
                        {"measure": "Target gain", "methods": 9, "SNR": 1.2, "F = SNR²": 1.44, "p (all equal)": 0.17,
                         "null 95 %": 1.39}]).set_index("measure")
    forgetting, gain = verdicts.certainty_sentences(certainty, snr)
    assert "noise alone" not in forgetting and "the methods differ on it beyond noise" in forgetting
    assert "F = 3.31 on 8 degrees of freedom, p < 0.001" in forgetting
    assert "its spread is what equal methods would draw, so it cannot tell them apart" in gain


def test_every_correlation_interval_is_labelled_fisher_nominal_with_its_n():
    row = pd.Series({"smoothness score": "s", "forgetting measure": "f", "rho": 0.6, "n": 9, "ci_low": 0.1,
                     "ci_high": 0.9})
    assert "(Fisher z, 95 % nominal, n = 9; each method's own error not included) excludes zero" in \
        verdicts.smoothness_sentence(row)
    general = pd.DataFrame({"proc_residual": [0.1, 0.2, 0.3, 0.4, 0.5], verdicts.FORGETTING: [1.0, 2.0, 3.0, 4.5, 4.0]})
    line, = verdicts.correlation_sentences(general, ("proc_residual",))
    assert "(Fisher z, 95 % nominal, n = 5; each method's own error not included)" in line
    r = general.corr().iloc[0, 1]
    low = math.tanh(math.atanh(r) - 1.959964 / math.sqrt(2))
    assert f"[{low:+.2f}, " in line


def test_a_smoothness_correlation_is_confirmed_only_by_an_interval_excluding_zero():
    row = pd.Series({"smoothness score": "s", "forgetting measure": "f", "rho": 0.6, "n": 9, "ci_low": 0.1,
                     "ci_high": 0.9})
    assert "excludes zero" in verdicts.smoothness_sentence(row) and "more forgetting" in verdicts.smoothness_sentence(row)
    assert "cannot confirm" in verdicts.smoothness_sentence(row.copy().replace({0.1: -0.2}))
    assert "too few methods" in verdicts.smoothness_sentence(row.copy().replace({0.1: math.nan}))


def test_the_paper_base_rows_come_from_the_papers_table():
    from arena import card
    from arena.report import PAPER_E1

    table = card.paper_base_beside({"general": 30.0, "target": 5.0}, "m")
    assert list(table["General"]) == [PAPER_E1["base"]["qwen_math"][1], PAPER_E1["base"]["llama_math"][1], 30.0]


def _full(label, method, general, target, ce=0.1):
    r = _record(label, general, target, ce)
    r["method"] = method
    r["train"] |= {"trained_parameters": 1234, "train_wall_s": 12.0}
    r["spec"], r["lr"], r["family"], r["count"], r["budget"] = {"seed": 0, "steps": 30}, 1e-3, "additive", 100, 100
    return r


def test_the_chapter_sentences_are_computed_from_the_records():
    from arena import report

    lora, oft = _full("lora-r8", "lora", 0.45, 0.3), _full("oft-b32", "oft", 0.3, 0.25)
    mine = _full("x-r4", "x", 0.55, 0.4)
    assert (verdicts.trained_summary(mine)
            == "x-r4: 1,234 trainable, trained in 12 s, General 55.0 ± 0.0, Target 40.0 ± 0.0")
    frame = report.pareto_frame([lora, oft, mine], BASE)
    line, = verdicts.your_method_sentences([mine], [lora, oft], frame, BASE)
    assert line.startswith("- x-r4: forgetting -5.0 ± 0.0, target gain +20.0 ± 0.0 pts; on the non-dominated "
                           "frontier")
    assert "against lora-r8 on the same items: General +10.0" in line
    cmp = verdicts.oft_lora_sentences([lora, oft])
    assert cmp[0].startswith("This run: OFT - LoRA = General -15.0") and "Paper, Qwen2.5-7B math" in cmp[1]
    assert verdicts.oft_lora_sentences([lora]) == []
    seeds = pd.DataFrame({"Forgetting seed sd": [6.0, 8.0], "Target gain seed sd": [0.0, 0.0]}, index=["oft", "lora"])
    cmp = verdicts.oft_lora_sentences([lora, oft], seeds)
    assert "General -15.0 ± 0.0 (lora-r8 higher)" in cmp[0]
    assert cmp[1] == ("With the spread between training seeds (chapter 10) in the error, "
                      "√(se² + sd_OFT² + sd_LoRA²): General ± 10.0 (within noise), Target ± 0.0 (lora-r8 higher).")


def test_headline_sentences_place_oft_here_and_in_the_paper():
    from types import SimpleNamespace

    from arena import report

    records = [_full("lora-r8", "lora", 0.45, 0.3), _full("oft-b32", "oft", 0.3, 0.25)]
    ranking, best = report.tradeoff_ranking(records, BASE), report.best_margin(records, BASE)
    paper = {s: report.paper_ranking(s) for s in ("qwen_math", "llama_math")}
    profile = SimpleNamespace(model=SimpleNamespace(name="m"), budget=None, steps=30)
    first, oft, front = verdicts.headline_sentences(profile, records, ranking, best, paper)
    assert "the best trade-off is lora-r8" in first and "(the size of LoRA r8)" in first
    assert oft.startswith("OFT ranks 2 of 2 here.")
    assert front == "Non-dominated in this run: lora-r8."


def test_the_report_joins_by_label():
    from arena import report

    records = [_full("lora-r8", "lora", 0.45, 0.3), _full("oft-b32", "oft", 0.3, 0.25)]
    assert report.labels_of(records) == ["lora-r8", "oft-b32"]
    assert report.labels_of(records, ["oft", "full", "lora"]) == ["oft-b32", "lora-r8"]
    frame = pd.DataFrame([{"method": m, "name": n, "fluctuation_retention": v, "fluctuation_adaptation": 2 * v,
                           "fluctuation_scale_free_retention": v, "fluctuation_scale_free_adaptation": v,
                           "stable_rank": 1.0, "intruders": i, "relative_dW": v}
                          for m, v in (("lora-r8", 1.0), ("oft-b32", 3.0)) for n, i in (("fig", 0), ("other", 2))])
    fluct = report.fluctuation_table(frame, "fig")
    assert fluct.loc["oft-b32", "fluctuation_adaptation"] == 6.0
    assert fluct.loc["lora-r8", "intruders (all matrices)"] == 1
    intr = report.intruder_table(frame)
    assert intr.loc["lora-r8", "intruders_total"] == 2 and intr.loc["lora-r8", "matrices_with_intruders"] == 0.5
    beside = report.paper_fluctuation_beside(records, frame, "fig")
    assert beside.loc["oft-b32", "retention (this run)"] == 3.0
    assert beside.loc["oft-b32", "retention (paper, SFT)"] == report.PAPER_B6_FLUCTUATION["oft"][0]
    speed = report.speed_table([*records, _full("x", "x", 0.1, 0.1)])
    assert speed["vs LoRA"].tolist() == [1.0, 1.0, 1.0]
    assert report.provenance_table(records).loc["lora-r8", "seed"] == 0


def test_chapter_times_read_papermills_metadata(tmp_path):
    import json

    from arena import report

    assert report.chapter_times(tmp_path) is None
    for name, seconds in (("00_base", 10.0), ("01_bench", 50.0)):
        (tmp_path / f"{name}.ipynb").write_text(json.dumps({"metadata": {"papermill": {"duration": seconds}}}))
    (tmp_path / "02_x.partial.ipynb").write_text("{}")
    assert report.chapter_times(tmp_path)["seconds"].to_dict() == {"00_base": 10.0, "01_bench": 50.0}


def test_the_paper_rows_beside_this_runs_name_the_papers_configuration():
    from arena import report

    table = report.paper_beside_ours([_full("oft-b32", "oft", 0.3, 0.25)], BASE)
    assert table.loc["oft", "paper config"] == "oft b32" and table.loc["base", "paper config"] == "base"
    assert table.loc["base", "General (paper, Qwen math)"] == report.PAPER_E1["base"]["qwen_math"][1]


def test_the_analysis_tables_and_the_ranking_beside_the_paper():
    from arena import report

    spectra = {"lora-r8": {"rows": [{}, {}], "wall_s": 3.0, "peak_rss_mb": 10.0},
               "oft-b32": {"rows": [{}], "wall_s": 1.0}}
    costs = report.analysis_costs(spectra, "matrices")
    assert costs.loc["lora-r8", "matrices"] == 2 and costs.loc["lora-r8", "peak RSS (MB)"] == 10.0
    assert "peak RSS (MB)" not in report.analysis_costs({"a": {"rows": [], "wall_s": 1.0}}).columns
    rows = report.geometry_rows({"a": {"rows": [{"dataset": "general", "cka": 0.5},
                                                {"dataset": "target", "cka": 0.7}]}})
    assert rows.to_dict("records") == [{"method": "a", "dataset": "general", "cka": 0.5},
                                       {"method": "a", "dataset": "target", "cka": 0.7}]
    records = [_full("lora-r8", "lora", 0.45, 0.3), _full("oft-b32", "oft", 0.3, 0.25)]
    paper = {s: report.paper_ranking(s) for s in ("qwen_math", "llama_math")}
    side = report.ranking_beside_paper(report.tradeoff_ranking(records, BASE), paper)
    assert side.loc["oft-b32", "paper, Qwen math"] == round(paper["qwen_math"].loc["oft", "TargetGain - Forgetting"], 2)


def test_correlation_and_rewinding_sentences():
    from test_report import _study

    from arena import report

    general = pd.DataFrame({"proc_residual": [0.1, 0.2, 0.3, 0.4], verdicts.FORGETTING: [1.0, 2.0, 3.0, 4.5]})
    line, = verdicts.correlation_sentences(general, ("proc_residual",))
    assert line.startswith("proc_residual vs forgetting across 4 methods: Pearson r = +0.99")
    assert line.endswith(f"paper (C5): {report.PAPER_C5_CORRELATION['proc_residual'][0]:+.2f}")
    oft, paper = verdicts.rewinding_summary(_study())
    assert oft.startswith("- oft: ") and "selected dense a=0.3: test General +4.0 ± 1.0, Target +1.0 ± 1.0" in oft
    assert paper.startswith("Paper (D6, OFT-b32, Qwen math): uniform 0.4 gains +3.16 General")
