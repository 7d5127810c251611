import math

import pytest

from arena.scores import summarise


def _items(bbh_a, bbh_b, ifeval_inst, qa, wp, arith, emqa):
    return {"arena_bbh_a": bbh_a, "arena_bbh_b": bbh_b, "arena_ifeval:inst": ifeval_inst,
            "arena_ifeval": [sum(x) / len(x) for x in ifeval_inst], "arena_qa": qa, "arena_wordproblems": wp,
            "arena_arithmetic": arith, "arena_emqa": emqa}


def test_general_and_target_arithmetic():
    items = _items([1, 1, 0, 0], [1, 0, 0, 0], [[1, 1], [0]], [1, 0], [1, 1, 1, 0], [0, 0], [1, 1])
    out = summarise(items)
    bbh = (0.5 + 0.25) / 2  # unweighted mean of subtask means
    ifeval = 2 / 3  # instruction level: 2 of 3 instructions followed (not the prompt-level 0.5)
    assert out["groups"]["bbh"]["score"] == pytest.approx(100 * bbh)
    assert out["groups"]["ifeval"]["score"] == pytest.approx(100 * ifeval)
    assert out["general"] == pytest.approx(100 * (bbh + ifeval + 0.5) / 3)
    assert out["target"] == pytest.approx(100 * (0.75 + (0 + 1) / 2) / 2)


def test_standard_errors_combine_as_independent_groups():
    items = _items([1, 0], [1, 0], [[1], [0]], [1, 0], [1, 0], [1, 0], [1, 0])
    out = summarise(items)
    se = math.sqrt(0.5 / 2)  # sample variance of [1, 0] is 0.5; se = sqrt(var / n)
    assert out["groups"]["qa"]["se"] == pytest.approx(100 * se)
    bbh_se = math.sqrt(2 * se**2) / 2
    assert out["general_se"] == pytest.approx(100 * math.sqrt(bbh_se**2 + se**2 + se**2) / 3)
