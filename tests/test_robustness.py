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


def _study(rng, planted=None, gap=0.0, n=150):
    """A hand-made study: OFT and LoRA at rate factors 1/3, 1 and 3 (seed 1) and at factor 1 with seeds 2 and 3, every
    run answering the same ``n`` items per task, each right with probability 0.5 (General and Target), independently
    per run: nothing depends on the method, the rate or the seed. ``gap`` adds to OFT's General probability at every
    rate; ``planted`` = (method, factor, General probability) changes one run."""
    def draw(p):
        return [float(x) for x in rng.random(n) < p]

    def items(pg, pt):
        inst = [[x] for x in draw(pg)]
        return {"arena_bbh_a": draw(pg), "arena_ifeval:inst": inst, "arena_ifeval": [c[0] for c in inst],
                "arena_qa": draw(pg), "arena_wordproblems": draw(pt), "arena_arithmetic": draw(pt)}

    base = {"items": items(0.5, 0.5)}
    rows = []
    for method in ("oft", "lora"):
        for factor, seed in ((1 / 3, 1), (1.0, 1), (3.0, 1), (1.0, 2), (1.0, 3)):
            pg = 0.5 + (gap if method == "oft" else 0.0)
            if planted and planted[:2] == (method, factor) and seed == 1:
                pg = planted[2]
            run = {"eval": {"items": items(pg, 0.5)}}
            rows.append({"method": method, "label": method, "count": 1, "base_eval": base, **run,
                         "validation": run["eval"], "validation_base": base,
                         "variation": {"method": method, "factor": factor, "seed": seed}})
    return rows


def test_the_survival_verdict_is_inconclusive_on_pure_noise():
    """Nothing differs between methods, rates or seeds: the old sentence said chapter 02's within-noise verdict "holds
    at every rate"; a non-significant gap that stays non-significant shows nothing, so both axes are inconclusive.
    Over 40 such studies a change of the gap is called beyond noise at most at Holm's family-wise rate."""
    import numpy as np

    sentence = robustness_report.survives(_study(np.random.default_rng(0)), 1)
    assert "holds" not in sentence and "does not survive" not in sentence
    assert "General: at the default rates" in sentence and "Target: at the default rates" in sentence
    assert sentence.count("inconclusive") == 2
    alarms = sum("does not survive" in robustness_report.survives(_study(np.random.default_rng(k)), 1)
                 for k in range(1, 41))
    assert alarms <= 3


def test_the_survival_verdict_fires_on_a_planted_change_of_the_gap_and_holds_on_a_planted_stable_gap():
    import numpy as np

    # OFT at 3x the rate answers 90 % of General right where every other run answers 50 %: the gap moves by ~ +40
    sentence = robustness_report.survives(_study(np.random.default_rng(0), planted=("oft", 3.0, 0.9)), 1)
    assert "General: at the default rates" in sentence
    general = sentence[sentence.index("General:"):sentence.index("Target:")]
    assert "the gap changes with the rate, so chapter 02's verdict does not survive: both x3:" in general
    assert "inconclusive" in sentence[sentence.index("Target:"):]
    # OFT 30 points ahead on General at every rate and seed: the gap is beyond noise everywhere and does not move
    stable = robustness_report.survives(_study(np.random.default_rng(0), gap=0.3), 1)
    assert "it holds: the gap is beyond 2 standard errors on the same side at every rate" in stable


def test_the_change_of_the_gap_is_a_paired_difference_of_differences_with_the_seed_spread_in_its_error():
    import numpy as np

    from arena.report import compare

    rows = _study(np.random.default_rng(5))
    table = robustness_report.gap_changes(rows, 1)
    at = {(r["method"], r["variation"]["factor"]): r for r in rows if r["variation"]["seed"] == 1}
    here, default = compare(at[("oft", 3.0)], at[("lora", 3.0)]), compare(at[("oft", 1.0)], at[("lora", 1.0)])
    row = table.loc[("both x3", "General")]
    assert row["change of the gap"] == pytest.approx(here["General diff"] - default["General diff"])
    assert row["gap here"] == pytest.approx(here["General diff"])
    seeds = robustness_report.seed_table(rows)
    sd = seeds["Forgetting seed sd"]
    assert row["seeds sd part"] == pytest.approx(math.sqrt(2 * sd["oft"] ** 2 + 2 * sd["lora"] ** 2))
    assert row["se"] == pytest.approx(math.hypot(row["items se"], row["seeds sd part"]))
    assert table["p (Holm)"].min() >= table["p"].min() * len(table) - 1e-12 or table["p (Holm)"].min() == 1.0


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
