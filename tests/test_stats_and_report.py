"""Paired differences, the Pareto frontier and the forgetting verdicts (paper_spec.md A5)."""

import math

import pytest

from arena.scores import paired_difference, summarise
from arena.report import verdict
from arena.stats import mean_se, non_dominated


def _items(bbh, ifeval_inst, qa, wp, arith, emqa):
    return {"arena_bbh_a": bbh, "arena_ifeval:inst": ifeval_inst,
            "arena_ifeval": [sum(x) / len(x) for x in ifeval_inst], "arena_qa": qa, "arena_wordproblems": wp,
            "arena_arithmetic": arith, "arena_emqa": emqa}


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
