"""Comparable budgets: counts match the closed forms of paper_spec.md A8, matching picks the closest size, and a budget
no size can meet fails with the reachable range."""

import pytest

from arena.budget import default_budget, match, size_counts
from arena.errors import ArenaError
from arena.methods import build, count_trainable
from arena.models import base_config, smoke_model
from arena.profiles import SMOKE_MODEL

CONFIG = base_config(SMOKE_MODEL)
LAYERS = 4
# smoke model: hidden 64, 2 kv heads x 16 = 32, MLP 128 -> (d_in, d_out) of q, k, v, o, gate, up, down
SHAPES = [(64, 64), (64, 32), (64, 32), (64, 64), (64, 128), (64, 128), (128, 64)]


def test_counts_follow_the_closed_forms():
    sum_io = sum(i + o for i, o in SHAPES)
    assert count_trainable("lora", CONFIG, 8) == LAYERS * 8 * sum_io
    assert count_trainable("dora", CONFIG, 8) == LAYERS * (8 * sum_io + sum(o for _, o in SHAPES))
    assert count_trainable("oft", CONFIG, 16) == LAYERS * sum(i * 15 // 2 for i, _ in SHAPES)
    assert count_trainable("miss", CONFIG, 8) == LAYERS * 8 * sum(o for _, o in SHAPES)
    ia3 = sum(o for _, o in SHAPES[:-1]) + SHAPES[-1][0]  # down_proj scales its input
    assert count_trainable("ia3", CONFIG) == LAYERS * ia3


def test_meta_count_equals_the_built_model():
    for name, size in [("lora", 4), ("oft", 8), ("vera", 256), ("adalora", 4), ("boft", 4)]:
        model = build(name, smoke_model(), size)
        built = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert count_trainable(name, CONFIG, size) == built, name


def test_default_budget_is_lora_r8_and_oft_pairs_with_it():
    budget = default_budget(CONFIG)
    assert budget == count_trainable("lora", CONFIG, 8)
    assert match("lora", CONFIG, None).size == 8
    oft = match("oft", CONFIG, None)
    counts = size_counts("oft", CONFIG)
    assert oft.count == min(counts.values(), key=lambda c: abs(c - budget))
    assert oft.matched and abs(oft.ratio - 1) < 0.5


def test_fixed_size_methods_report_their_count_unmatched():
    full = match("full", CONFIG, None)
    assert not full.matched and full.count > 0 and full.size is None


@pytest.mark.parametrize("budget", [10, 10**12])
def test_budget_no_size_can_meet(budget):
    with pytest.raises(ArenaError, match="can reach"):
        match("lora", CONFIG, budget)


@pytest.mark.parametrize("budget", [0, -5, 2.5, "big", True])
def test_bad_budget_values(budget):
    with pytest.raises(ArenaError, match="positive number"):
        match("lora", CONFIG, budget)
