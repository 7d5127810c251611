"""The robustness study (arena/robustness.py, chapter 10): the learning-rate and seed grid, the best rate chosen on
validation alone, and the combined error of seeds and items."""

import math

import pytest

from arena import robustness, robustness_report
from arena.profiles import get_profile


def test_the_grid_names_every_rate_and_seed_once():
    profile = get_profile("smoke", robustness_methods="lora,oft", lr_factors="0.5,1,2", extra_seeds=2)
    grid = robustness.variations(profile)
    assert len(grid) == 2 * (3 + 2) and len(set(grid)) == len(grid)
    lora = [v for v in grid if v.method == "lora"]
    assert [(v.factor, v.seed) for v in lora] == [(0.5, 1), (1.0, 1), (2.0, 1), (1.0, 2), (1.0, 3)]
    specs = [robustness.spec_of(profile, v) for v in lora]
    default = specs[1]
    assert specs[0].lr == pytest.approx(default.lr / 2) and specs[3].seed == 2 and specs[3].lr == default.lr


@pytest.mark.e2e
def test_the_study_trains_distinct_keyed_runs_on_the_smoke_profile():
    """Each variation is its own stored run (its own training key and scores); the default one is chapter 01's."""
    from arena import store
    from arena.benchmark import run_method
    from arena.keys import train_key

    profile = get_profile("smoke", robustness_methods="lora", lr_factors="0.5,1", extra_seeds=1)
    rows = robustness.run_robustness(profile, workers=1, log=lambda line: None)
    assert len(rows) == 3
    keys = {store.key_hash(train_key(profile, robustness.spec_of(profile, robustness.Variation(**r["variation"]))))
            for r in rows}
    assert len(keys) == 3
    assert {(r["variation"]["factor"], r["spec"]["seed"]) for r in rows} == {(0.5, 1), (1.0, 1), (1.0, 2)}
    chapter01 = run_method(profile, "lora", stored_only=True)
    default = next(r for r in rows if r["variation"] == {"method": "lora", "factor": 1.0, "seed": 1})
    assert chapter01["train"]["folder"] == default["train"]["folder"]  # the same run, not a second one
    assert all(r["validation"]["split"] == "validation" for r in rows)
    assert robustness.stored_robustness(profile) is not None


def _row(method, factor, seed, val_gain, val_forget):
    """A study row with only what the best-rate choice may read: its variation and its validation scores (no test
    scores at all, so reading them would fail)."""
    return {"method": method, "variation": {"method": method, "factor": factor, "seed": seed},
            "validation": {"items": {"g": [val_gain]}}, "validation_base": {"items": {"g": [val_forget]}}}


def test_the_best_rate_is_chosen_on_the_validation_split_alone(monkeypatch):
    # validation changes by hand: (target gain, forgetting) per run
    changes = {(0.5, 1): (6.0, 1.0), (1.0, 1): (4.0, 0.0), (2.0, 1): (9.0, 2.0), (2.0, 2): (50.0, 0.0)}
    monkeypatch.setattr(robustness_report, "validation_changes",
                        lambda r: dict(zip(("target_gain", "forgetting"),
                                           changes[(r["variation"]["factor"], r["variation"]["seed"])])))
    rows = [_row("lora", f, s, 0, 0) for f, s in changes]
    assert robustness_report.best_rates(rows, seed=1) == {"lora": 2.0}  # 9 - 2 = 7 beats 5 and 4; seed 2 is ignored
    changes[(2.0, 1)] = (6.0, 1.0)  # a tie with 0.5 (both 5 > 4): the factor nearer 1 wins
    changes[(0.5, 1)] = (6.0, 1.0)
    assert robustness_report.best_rates(rows, seed=1) == {"lora": 0.5}


def test_the_combined_error_of_seeds_and_items_by_hand(monkeypatch):
    forgetting = {1: (1.0, 0.5), 2: (2.0, 0.6), 3: (4.0, 0.4)}  # seed: (Forgetting, its paired item SE)
    monkeypatch.setattr(robustness_report, "deltas", lambda r, base: {
        "forgetting": forgetting[r["variation"]["seed"]][0], "forgetting_se": forgetting[r["variation"]["seed"]][1],
        "target_gain": 3.0, "target_gain_se": 1.0})
    rows = [{"method": "oft", "base_eval": None, "variation": {"method": "oft", "factor": 1.0, "seed": s}}
            for s in forgetting]
    rows.append({"method": "oft", "base_eval": None, "variation": {"method": "oft", "factor": 3.0, "seed": 1}})
    table = robustness_report.seed_table(rows)
    sd = math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)  # 1.528: the other rate is left out
    assert table.loc["oft", "seeds"] == 3
    assert table.loc["oft", "Forgetting seed sd"] == pytest.approx(sd)
    assert table.loc["oft", "Forgetting combined se"] == pytest.approx(math.sqrt(0.6**2 + sd**2))
    assert table.loc["oft", "Target gain seed sd"] == 0 and table.loc["oft", "Target gain combined se"] == 1.0


def test_the_survival_sentence_reads_the_paired_verdicts(monkeypatch):
    import pandas as pd

    verdicts = {"both x0.5": ("within noise", 1.0), "both x1": ("within noise", -2.0), "both x2": ("no change", 0.0)}

    def table(rows, seed, a="oft", b="lora"):
        return pd.DataFrame([{"rates": k, "General verdict": v, "General diff": d, "General diff se": 3.0}
                             for k, (v, d) in verdicts.items()]).set_index("rates")

    monkeypatch.setattr(robustness_report, "pair_by_rate", table)
    assert "It holds at every rate" in robustness_report.survives([], 1)  # "no change" is no side either
    verdicts["both x2"] = ("oft-b32 higher", 9.0)
    sentence = robustness_report.survives([], 1)
    assert "It does not survive: both x2: oft-b32 higher (+9.0 ± 3.0)" in sentence


def test_the_plane_and_the_pairs_read_the_profile_seed_and_common_rates(monkeypatch):
    """Each method's frontier is over its own rates; OFT and LoRA are compared at the rates both ran, then at each one's
    best validation rate."""
    def row(method, factor, seed, general, target):
        return {"method": method, "label": method, "variation": {"method": method, "factor": factor, "seed": seed},
                "eval": {"general": general, "general_se": 1.0, "target": target, "target_se": 1.0}}

    rows = [row("lora", 0.5, 1, 50, 10), row("lora", 1.0, 1, 45, 20), row("lora", 2.0, 1, 40, 15),
            row("oft", 1.0, 1, 48, 12), row("oft", 2.0, 1, 44, 18), row("oft", 1.0, 2, 10, 10)]
    frame = robustness_report.plane_frame(rows, seed=1).set_index("method")
    assert len(frame) == 5  # seed 2 is not on the plane
    assert list(frame["frontier"]) == [True, True, False, True, True]  # lora x2 is beaten by lora x1 on both axes
    monkeypatch.setattr(robustness_report, "compare", lambda a, b: {"pair": f"{a['variation']['factor']}-"
                                                                          f"{b['variation']['factor']}"})
    monkeypatch.setattr(robustness_report, "best_rates", lambda rows, seed: {"oft": 2.0, "lora": 0.5})
    pairs = robustness_report.pair_by_rate(rows, seed=1)
    assert list(pairs.index) == ["both x1", "both x2", "best on validation (oft x2, lora x0.5)"]
    assert list(pairs["pair"]) == ["1.0-1.0", "2.0-2.0", "2.0-0.5"]
