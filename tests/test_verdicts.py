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
            "arena_wordproblems": [target] * 4, "arena_arithmetic": [target] * 4, "arena_emqa": [target] * 4}


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
    assert "supports the claim" in firm and "less well, as in the paper" in firm
    assert "intervals include zero" in loose
    assert "too few methods" in none and "about as well here" in none
    assert "does not support" in wrong


def test_overshoot_and_selection_sentences():
    shoot = {"lora": {"point": None, "overshoot": False},
             "oft": {"point": "dense a=0.6", "overshoot": True, "general_gap": 4.0, "general_gap_se": 1.0,
                     "target_change": -1.0, "target_change_se": 2.0}}
    lines = verdicts.overshoot_sentences(shoot)
    assert "no overshoot" in lines[0] and "the final overshoots" in lines[1]
    gain = {"general": 4.0, "general_se": 1.0, "target": 0.5, "target_se": 1.0}
    result = {"methods": {"lora": {"gain_test": gain, "selected": {"label": "final"}},
                          "oft": {"gain_test": gain, "selected": {"label": "dense a=0.6"}}}}
    lines = verdicts.selection_sentences(result, shoot)
    assert "the final checkpoint itself" in lines[0] and "changes General by +4.0 ± 1.0" in lines[1]


def test_forgetting_verdicts_say_within_noise_inside_two_standard_errors():
    table = pd.DataFrame([{"method": "base"}, {"method": "a", "Forgetting": 1.0, "Forgetting se": 1.0,
                                               "forgetting is": "within noise", "CE drift": 0.5, "CE drift se": 0.1,
                                               "Target gain": 3.0, "Target gain se": 1.0, "gain is": "measurable"}]
                         ).set_index("method")
    row = verdicts.forgetting_verdicts(table).loc["a"]
    assert row["Forgetting (General)"] == "+1.00 ± 1.00: within noise" and row["CE drift"].endswith("measurable")


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
