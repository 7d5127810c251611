"""Paired differences, the Pareto frontier and the forgetting verdicts (paper_spec.md A5)."""

import math

import pytest

from arena.scores import paired_difference, summarise
from arena.report import verdict
from arena.stats import mean_se, non_dominated


def _items(bbh, ifeval_inst, qa, wp, arith, more_arith):
    return {"arena_bbh_a": bbh, "arena_ifeval:inst": ifeval_inst,
            "arena_ifeval": [sum(x) / len(x) for x in ifeval_inst], "arena_qa": qa, "arena_wordproblems": wp,
            "arena_arithmetic": arith + more_arith}  # one group, drawn in two parts


def test_paired_difference_equals_difference_of_summaries():
    base = _items([1, 1, 0, 1], [[1, 0], [1]], [1, 0, 0], [0, 0, 1], [0, 1], [1, 0])
    tuned = _items([1, 0, 0, 1], [[0, 0], [1]], [1, 0, 1], [1, 1, 1], [1, 1], [1, 1])
    diff = paired_difference(base, tuned)
    a, b = summarise(base), summarise(tuned)
    assert diff["general"] == pytest.approx(a["general"] - b["general"])
    assert diff["target"] == pytest.approx(a["target"] - b["target"])


def test_paired_error_is_zero_when_nothing_changes_on_any_item():
    items = _items([1, 0, 1], [[1, 0]], [0, 1], [1, 0], [0, 1], [1, 1])
    diff = paired_difference(items, items)
    assert diff["general"] == 0 and diff["general_se"] == 0
    assert summarise(items)["general_se"] > 0  # while the unpaired error is not


def test_mean_se_closed_form():
    mean, se = mean_se([0, 1, 1, 0])
    assert mean == 0.5 and se == pytest.approx(math.sqrt((4 * 0.25 / 3) / 4))


def test_non_dominated_points():
    points = [(10, 10), (12, 8), (9, 11), (8, 8), (12, 8), (11, 11)]
    # (11, 11) beats (10, 10) and (9, 11); equal points do not dominate each other, so both (12, 8) stay
    assert non_dominated(points) == [5, 1, 4]


def test_verdicts_use_two_standard_errors():
    assert verdict(3.0, 1.0, "up", "down") == "up"
    assert verdict(-3.0, 1.0, "up", "down") == "down"
    assert verdict(1.5, 1.0, "up", "down") == "within noise"
    assert verdict(0.0, 0.0, "up", "down") == "no change"


def test_a_one_item_subtask_takes_the_pooled_variance_of_the_others():
    from arena.stats import stratified_se

    # subtasks [1, 0, 1] (var 1/3, n 3) and [0] (n 1): the pooled within-subtask variance (2/3) / (2 dof) = 1/3
    # stands in for the single item's; se = sqrt(1/3 / 3 + 1/3 / 1) / 2 = 1/3
    assert stratified_se([[1, 0, 1], [0]]) == pytest.approx(1 / 3)
    # every subtask one item: the variance of all items about their mean (1/3 for [1, 0, 1]); se = sqrt(3 * 1/3) / 3
    assert stratified_se([[1], [0], [1]]) == pytest.approx(1 / 3)
    # two items everywhere: each subtask's own error, as mean_se gives it
    assert stratified_se([[1, 0], [1, 1]]) == pytest.approx(math.sqrt(mean_se([1, 0])[1] ** 2) / 2)
    # the validation split's BBH (one item per subtask) no longer reads as exact
    one_each = _items([1], [[1]], [1], [1], [1], [1]) | {"arena_bbh_b": [0], "arena_bbh_c": [1]}
    assert summarise(one_each)["groups"]["bbh"]["se"] == pytest.approx(100 / 3)


def test_instruction_level_ifeval_has_a_prompt_clustered_error():
    from arena.stats import cluster_mean_se

    # prompts [1, 1] and [0]: mean 2/3; totals about the mean: 2 - 4/3 and 0 - 2/3; var = 2/1 * (4/9 + 4/9) / 9
    mean, se = cluster_mean_se([[1, 1], [0]])
    assert mean == pytest.approx(2 / 3) and se == pytest.approx(math.sqrt(2 * (8 / 9) / 9))
    # one instruction per prompt: the plain standard error of the mean
    assert cluster_mean_se([[1], [0], [1], [1]])[1] == pytest.approx(mean_se([1, 0, 1, 1])[1])
    # instructions that pass or fail together in a prompt carry less information than independent ones
    together = cluster_mean_se([[1, 1, 1], [0, 0, 0], [1, 1, 1], [0, 0, 0]])[1]
    assert together > mean_se([1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0])[1]
    assert summarise(_items([1, 0], [[1, 1], [0]], [1, 0], [1], [1], [1]))["groups"]["ifeval"]["se"] == \
        pytest.approx(100 * se)


def test_the_family_threshold_is_quiet_on_noise_and_fires_on_a_planted_effect():
    """The best of k noisy paired gains, judged by stats.family_threshold: on pure noise (k = 10 correlated-free
    candidates, 4000 simulated studies) it fires at most at the single-test rate of z = 2 (2.3 %), where the plain
    two-standard-error rule fires in about a fifth; a planted 4-standard-error gain on one candidate fires nearly
    always."""
    import numpy as np

    from arena.stats import family_threshold

    rng = np.random.default_rng(0)
    k, n = 10, 4000
    noise = rng.standard_normal((n, k))  # gains in units of their standard error
    threshold = family_threshold(k)
    assert threshold == pytest.approx(2.837, abs=1e-3) and family_threshold(1) == pytest.approx(2.0)
    assert (noise.max(axis=1) > threshold).mean() <= 0.0228 + 3 * math.sqrt(0.0228 / n)
    assert (noise.max(axis=1) > 2.0).mean() > 0.15
    planted = noise.copy()
    planted[:, 3] += 4.0
    assert (planted.max(axis=1) > threshold).mean() > 0.8


def test_a_stored_evaluation_is_resummarised_from_its_items():
    from arena.scores import resummarised

    items = _items([1, 0], [[1, 1], [0]], [1, 0], [1], [1], [1])
    stale = {"items": items, **summarise(items), "general_se": 99.0, "wall_s": 3.0}
    fresh = resummarised(stale)
    assert fresh["general_se"] == summarise(items)["general_se"] and fresh["wall_s"] == 3.0
    assert resummarised(None) is None and resummarised({"wall_s": 1.0}) == {"wall_s": 1.0}


def test_the_base_card_puts_each_group_against_its_chance_level(tmp_path):
    import json

    from arena import card

    (tmp_path / "bbh").mkdir()
    # two BBH subtasks with 2 and 4 options (chance 50 % and 25 %), free-form arithmetic
    (tmp_path / "bbh" / "a.jsonl").write_text(json.dumps({"choices": ["x", "y"]}) + "\n")
    (tmp_path / "bbh" / "b.jsonl").write_text(json.dumps({"choices": ["w", "x", "y", "z"]}) + "\n")
    (tmp_path / "arithmetic.jsonl").write_text(json.dumps({"target": "4"}) + "\n")
    (tmp_path / "qa.jsonl").write_text(json.dumps({"targets": ["Paris"]}) + "\n")  # a free-form file: chance 0
    items = _items([1, 1, 1, 1], [[1], [1], [0], [1]], [0, 0], [1, 0], [0, 0], [1, 0])
    items["arena_bbh_b"] = [1, 1, 1, 0]
    table = card.group_table({"items": items, **summarise(items)}, tmp_path).set_index("group")
    assert table.loc["bbh", "chance"] == pytest.approx(37.5) and "emqa" not in table.index
    assert table.loc["qa", "chance"] == 0 and table.loc["arithmetic", "chance"] == 0
    bbh = table.loc["bbh"]
    assert bbh["margin (SE)"] == pytest.approx((bbh["score"] - 37.5) / bbh["se"])
    assert bool(table.loc["ifeval", "above chance by 3 SE"]) is False  # 75 ± 25: 3 SE
    assert math.isnan(table.loc["qa", "margin (SE)"])  # at floor with no spread: nothing to measure
    (tmp_path / "qa.jsonl").write_text(json.dumps({"choices": list("abcd")}) + "\n")  # QA as multiple choice
    assert card.group_table({"items": items, **summarise(items)}, tmp_path).set_index("group").loc["qa", "chance"] == 25


def _composite_var(v, w, n):
    return sum(wi**2 * vi / ni for vi, wi, ni in zip(v, w, n))


def test_the_cheapest_allocation_is_neymans_for_one_method_and_meets_every_method_for_several():
    """stats.cheapest_allocation: one row is Neyman's allocation with costs in closed form; several rows meet every
    row's target, cost no more than any of 2000 random allocations scaled to meet them, and equal the single-row
    answer when one row dominates; a cap moves items to the other groups (up to the edge of the possible), a group
    without variance gets none, and an impossible cap is an error."""
    import numpy as np

    from arena.stats import cheapest_allocation

    w, t = [1 / 3] * 3, 0.1
    # n_g = w_g sqrt(V_g / c_g) sum_h w_h sqrt(V_h c_h) / T^2 with V = (1, 4, 9), c = 1: (1, 2, 3) * 200 / 3
    assert cheapest_allocation([[1, 4, 9]], w, [1, 1, 1], t) == pytest.approx([200 / 3, 400 / 3, 200])
    v, c = [[1, 4, 9], [9, 4, 1]], [1, 2, 3]
    n = cheapest_allocation(v, w, c, t)
    assert max(_composite_var(row, w, n) for row in v) <= t**2 * (1 + 1e-6)
    rng = np.random.default_rng(0)
    for trial in rng.uniform(0.1, 10, (2000, 3)):
        scaled = trial * max(_composite_var(row, w, trial) for row in v) / t**2  # just meets the worse row
        assert np.dot(c, n) <= np.dot(c, scaled) * (1 + 1e-6)
    assert cheapest_allocation([[1, 4, 9], [0.5, 2, 4.5]], w, c, t) == pytest.approx(
        cheapest_allocation([[1, 4, 9]], w, c, t), rel=1e-4)
    capped = cheapest_allocation([[1, 4, 9]], w, [1, 1, 1], t, most=[None, None, 150])
    assert capped[2] == pytest.approx(150, rel=1e-4) and capped[0] > 200 / 3 and capped[1] > 400 / 3
    assert _composite_var([1, 4, 9], w, capped) <= t**2 * (1 + 1e-6)
    # a cap that takes 99.5 % of the budget leaves the rest to the others (sum_g a_g / cap_g just under 1)
    assert cheapest_allocation([[1, 4, 9]], w, [1, 1, 1], t, most=[None, None, 100.5]) == pytest.approx(
        [6700, 13400, 100.5], rel=1e-6)
    assert cheapest_allocation([[1, 0, 9], [9, 0, 1]], w, c, t)[1] == 0  # no variance, no items
    with pytest.raises(ValueError, match="caps"):
        cheapest_allocation([[1, 4, 9]], w, [1, 1, 1], t, most=[1, 1, 1])


def test_the_snr_null_level_is_checked_by_simulating_nine_equal_methods():
    """Nine methods that all change a measure equally, each estimate drawn with its own paired error (1.6-2.1 points,
    as Forgetting's): their SNR is about 1, its 95th percentile about 1.39 (stats.spread_test's ``null_95``), and the
    test's p falls below 5 % about one time in twenty. An SNR of 1.82 over nine methods is then p ~ 0.001, not noise."""
    import numpy as np
    from scipy.stats import chi2

    from arena.stats import spread_test

    rng = np.random.default_rng(1)
    ses = np.linspace(1.6, 2.1, 9)
    draws = rng.standard_normal((20000, 9)) * ses + 3.0  # every method's true change is the same 3 points
    snr = draws.std(axis=1, ddof=1) / math.sqrt((ses**2).mean())
    null_95 = spread_test(list(draws[0]), list(ses))["null_95"]
    assert null_95 == pytest.approx(1.392, abs=1e-3)
    assert np.median(snr) == pytest.approx(0.96, abs=0.03)
    assert np.percentile(snr, 95) == pytest.approx(null_95, abs=0.03)
    p = np.array([spread_test(list(d), list(ses))["p"] for d in draws[:4000]])
    assert (p <= 0.05).mean() == pytest.approx(0.05, abs=0.012)
    # by hand: (0 x 8, 3) has variance 9 / 9 = 1 over 8 degrees of freedom; errors of 1 give SNR 1, chi^2 = 8 on 8
    t = spread_test([0.0] * 8 + [3.0], [1.0] * 9)
    assert t["snr"] == pytest.approx(1.0) and t["p"] == pytest.approx(chi2.sf(8, 8))
    assert spread_test([0.0] * 8 + [3.0 * 1.82], [1.0] * 9)["p"] == pytest.approx(0.00086, abs=2e-5)


def test_holm_and_the_equivalence_test_by_hand():
    from arena.stats import holm, tost, two_sided_p

    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running maximum 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5] and holm([0.9, 0.8]) == [1.0, 1.0]  # 2 x 0.8 is capped at 1
    assert two_sided_p(2.96, 1.0) == pytest.approx(0.00308, abs=1e-5)
    # within +-2 points: 0 +- 0.5 is shown equivalent; 3.2 +- 0.9 (measurable, but could be 1.5) is not
    assert tost(0.0, 0.5, 2.0) == pytest.approx(3.17e-5, rel=1e-2)
    assert tost(3.2, 0.9, 2.0) == pytest.approx(0.909, abs=1e-3)


def test_fisher_intervals_cover_at_their_nominal_level_over_nine_methods():
    """Pearson's r over 9 bivariate-normal points (rho = 0.6): the Fisher-z interval covers the truth about 95 % of the
    time (a percentile bootstrap over the 9 points covers about 91 %), and its bounds are the closed form."""
    import numpy as np

    from arena.stats import correlations, fisher_interval

    rng = np.random.default_rng(2)
    rho, n, covered = 0.6, 9, 0
    cov = [[1, rho], [rho, 1]]
    for _ in range(3000):
        x, y = rng.multivariate_normal([0, 0], cov, n).T
        lo, hi = fisher_interval(float(np.corrcoef(x, y)[0, 1]), n)
        covered += lo <= rho <= hi
    assert covered / 3000 == pytest.approx(0.95, abs=0.012)
    x, y = [1, 2, 3, 4, 5, 6, 7, 8, 9], [2, 1, 4, 3, 6, 5, 9, 7, 8]
    out = correlations(x, y)
    r = out["pearson"]
    assert out["pearson_low"] == pytest.approx(math.tanh(math.atanh(r) - 1.959964 / math.sqrt(6)), abs=1e-6)
    assert out["spearman_high"] == pytest.approx(
        math.tanh(math.atanh(out["spearman"]) + 1.959964 * math.sqrt((1 + out["spearman"] ** 2 / 2) / 6)), abs=1e-6)
