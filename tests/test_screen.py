"""The base-only screen that chooses the suite's subtasks (arena/screen.py, book/definitions.md S)."""

import json
import math
import shutil

import pytest

from arena import screen, suite
from arena.profiles import get_profile


def test_decide_by_hand():
    scores = {"bbh": {"two_way_pass": [1] * 11 + [0] * 5, "two_way_edge": [1] * 10 + [0] * 6,
                      "two_way_fail": [1] * 9 + [0] * 7, "free_form_one": [1] + [0] * 15, "free_form_none": [0] * 16},
              "arithmetic": {"a": [0] * 16, "b": [1] + [0] * 15}}
    chance = {"bbh": {"two_way_pass": 0.5, "two_way_edge": 0.5, "two_way_fail": 0.5, "free_form_one": 0.0,
                      "free_form_none": 0.0}, "arithmetic": {"a": 1 / 7, "b": 1 / 7}}
    assert screen.threshold(0.5, 16) == pytest.approx(0.5 + math.sqrt(0.25 / 16))  # 0.625
    out = screen.decide(scores, chance)
    assert out["kept"]["bbh"] == ["two_way_pass", "two_way_edge", "free_form_one"]
    # no arithmetic task clears chance by one SE of guessing (b: 1/16 < 1/7): the group is kept whole
    assert out["kept"]["arithmetic"] == ["a", "b"] and out["whole"] == ["arithmetic"]
    assert len(out["rows"]) == 7


@pytest.fixture
def screened_profile():
    profile = get_profile("smoke", screen=3, seed=4242)  # a suite folder of its own in the shared asset cache
    yield profile
    shutil.rmtree(suite.suite_dir(profile), ignore_errors=True)
    shutil.rmtree(suite.screen_dir(profile), ignore_errors=True)


def test_a_screened_suite_keeps_the_chosen_subtasks_on_items_the_screen_never_saw(screened_profile, monkeypatch):
    profile = screened_profile
    with pytest.raises(Exception, match="python -m arena assets --profile smoke"):
        suite.build_suite(profile)  # the screen has not run: a one-line error naming the fix
    folder = suite.write_screen(profile)
    kept = {"bbh": ["navigate", "snarks"], "arithmetic": ["arithmetic/2_digit_addition"]}
    (folder / "result.json").write_text(json.dumps({"kept": kept, "rows": [], "whole": []}))
    test, validation = suite.build_suite(profile), suite.build_validation(profile)
    for split in (test, validation):
        assert sorted(p.stem for p in (split / "bbh").glob("*.jsonl")) == ["navigate", "snarks"]
        assert all(" plus " in r["input"] for r in suite.read_jsonl(split / "arithmetic.jsonl"))
        for file in ("bbh/navigate.jsonl", "arithmetic.jsonl"):
            screened = {suite._norm(r["input"]) for r in suite.read_jsonl(folder / file)}
            assert not screened & {suite._norm(r["input"]) for r in suite.read_jsonl(split / file)}
    from arena.evaluate import suite_tasks

    assert suite_tasks(test, ["arena_bbh", "arena_qa"]) == ["arena_bbh_navigate", "arena_bbh_snarks", "arena_qa"]
    assert get_profile("smoke").screen == 0 and suite.suite_dir(profile) != suite.suite_dir(get_profile("smoke"))
    # resizing the suite keeps the screen (its folder is keyed by the screen's own size, seed and base)
    resized = get_profile("smoke", screen=3, seed=4242, bbh_per_task=2)
    assert suite.screen_dir(resized) == folder and suite.suite_dir(resized) != suite.suite_dir(profile)
    # so does a new suite version; a new screen version does not (undone here: the fixture's clean-up reads both)
    with monkeypatch.context() as patch:
        patch.setattr(suite, "SUITE_VERSION", suite.SUITE_VERSION + 1)
        assert suite.screen_dir(profile) == folder and suite.suite_dir(profile) != test
        patch.setattr(suite, "SCREEN_VERSION", suite.SCREEN_VERSION + 1)
        assert suite.screen_dir(profile) != folder


def test_the_screen_scores_the_base_on_every_candidate(screened_profile):
    """run_screen end to end on the smoke model: every candidate scored on its own items, the outcome stored."""
    out = screen.run_screen(screened_profile)
    assert len(out["rows"]) == len(suite.BBH_TASKS) + len(suite.ARITHMETIC_TASKS)
    assert all(r["items"] == 3 for r in out["rows"])
    assert set(out["kept"]) == {"bbh", "arithmetic"} and all(out["kept"].values())
    assert screen.run_screen(screened_profile) == out  # stored: read back, not recomputed
    table = screen.screen_table(screened_profile)
    assert list(table.columns) == ["items", "accuracy", "chance", "threshold", "kept"]


def test_the_screen_decides_the_same_with_half_its_candidates_scored_in_a_second_process(screened_profile):
    from dataclasses import replace

    from arena.evaluate import spare_core

    if not spare_core():
        pytest.skip("one CPU core: nothing is scored aside")
    alone = screen.run_screen(screened_profile)
    (suite.screen_dir(screened_profile) / "result.json").unlink()
    beside = screen.run_screen(replace(screened_profile, score_aside=True))
    assert beside["rows"] == alone["rows"] and beside["kept"] == alone["kept"]
