"""The base-only screen that chooses the suite's candidates (arena/screen.py, book/definitions.md S)."""

import json
import random
import shutil

import pytest

from arena import screen, suite
from arena.itemfiles import inputs, norm, read_jsonl
from arena.profiles import get_profile


def _rules(acc, acc_norm=None):
    return {"acc": acc, "acc_norm": acc_norm if acc_norm is not None else acc}


def test_decide_by_hand():
    # 60 two-way items: z = (acc - 0.5) / sqrt(0.25 / 60) = (acc - 0.5) * 15.49; z >= 2 needs 38 of 60 (z = 2.07)
    scores = {"bbh": {"nav@1": _rules([1] * 38 + [0] * 22), "nav@2": _rules([1] * 40 + [0] * 20),
                      "nav@3": _rules([1] * 37 + [0] * 23), "bool@1": _rules([1] * 30 + [0] * 30,
                                                                             [1] * 45 + [0] * 15)},
              "arithmetic": {"a": _rules([1] * 16 + [0] * 44), "b": _rules([1] * 17 + [0] * 43)}}
    chance = {"bbh": {n: 0.5 for n in scores["bbh"]}, "arithmetic": {"a": 0.25, "b": 0.25}}
    out = screen.decide(scores, chance, one_per_family={"bbh"})
    assert screen.z_score(38 / 60, 0.5, 60) == pytest.approx(2.066, abs=1e-3)
    # nav@2 has the largest margin of nav's passing settings; bool passes only by acc_norm, which it records
    assert out["kept"]["bbh"] == {"nav@2": {"rule": "acc"}, "bool@1": {"rule": "acc_norm"}}
    # no arithmetic candidate clears chance by two SEs (b: z = 0.45): the group is kept whole
    assert out["kept"]["arithmetic"] == {"a": {"rule": "acc"}, "b": {"rule": "acc"}}
    assert out["whole"] == ["arithmetic"] and len(out["rows"]) == 6
    nav3 = next(r for r in out["rows"] if r["candidate"] == "nav@3")
    assert not nav3["passed"] and not nav3["kept"] and nav3["z"] == pytest.approx(1.807, abs=1e-3)


def test_a_family_none_of_whose_settings_passes_is_dropped_and_a_group_with_none_keeps_the_easiest():
    scores = {"bbh": {"a@1": _rules([1] * 40 + [0] * 20), "b@1": _rules([0] * 60), "b@2": _rules([1] * 30 + [0] * 30)}}
    out = screen.decide(scores, {"bbh": {n: 0.5 for n in scores["bbh"]}}, one_per_family={"bbh"})
    assert list(out["kept"]["bbh"]) == ["a@1"]
    scores = {"bbh": {"b@1": _rules([0] * 60), "b@2": _rules([0] * 60), "c@1": _rules([0] * 60)}}
    out = screen.decide(scores, {"bbh": {n: 0.5 for n in scores["bbh"]}}, one_per_family={"bbh"})
    assert list(out["kept"]["bbh"]) == ["b@1", "c@1"] and out["whole"] == ["bbh"]


def test_the_screen_keeps_an_at_chance_candidate_rarely():
    """A 4-way candidate at chance, 60 items, the better of two (here independent) rules: kept about 2-5 % of the
    time, not the 12-20 % of a 1-SE bar on 24 items."""
    rng = random.Random(0)
    kept = 0
    for _ in range(4000):
        rules = _rules([float(rng.random() < 0.25) for _ in range(60)], [float(rng.random() < 0.25) for _ in range(60)])
        kept += screen.decide({"qa": {"x": rules}}, {"qa": {"x": 0.25}})["rows"][0]["passed"]
    assert 0.01 < kept / 4000 < 0.06


def test_confirm_by_hand():
    """A kept candidate stays only where its fresh items clear the same bar; a group left empty is kept whole."""
    rows = [{"group": "bbh", "candidate": c, "rule": "acc", "passed": c in ("a@2", "b@1"), "kept": c in ("a@2", "b@1")}
            for c in ("a@1", "a@2", "b@1")] + [{"group": "qa", "candidate": "capital", "rule": "acc_norm",
                                                 "passed": True, "kept": True}]
    outcome = {"kept": {"bbh": {"a@2": {"rule": "acc"}, "b@1": {"rule": "acc"}},
                        "qa": {"capital": {"rule": "acc_norm"}}}, "rows": rows, "whole": [], "z": 2.0}
    # 38 of 60 two-way items: z = 2.07 holds; 37 (z = 1.81) does not
    scores = {"bbh": {"a@2": [1] * 38 + [0] * 22, "b@1": [1] * 37 + [0] * 23}}
    chance = {"bbh": {"a@2": 0.5, "b@1": 0.5}}
    out = screen.confirm(outcome, scores, chance, one_per_family={"bbh"})
    assert out["kept"] == {"bbh": {"a@2": {"rule": "acc"}}, "qa": {"capital": {"rule": "acc_norm"}}}
    by = {r["candidate"]: r for r in out["rows"]}
    assert by["a@2"]["confirmed"] and by["b@1"]["confirmed"] is False and not by["b@1"]["kept"]
    assert by["b@1"]["confirm_z"] == pytest.approx(1.807, abs=1e-3) and by["b@1"]["confirm_items"] == 60
    assert by["capital"]["confirmed"] is None and by["capital"]["kept"]  # a finite table: not confirmed, still kept
    assert by["a@1"]["confirmed"] is None and not by["a@1"]["kept"]
    # nothing holds: the group is kept whole (each family's easiest setting), as when nothing passes the screen
    out = screen.confirm(outcome, {"bbh": {"a@2": [0] * 60, "b@1": [0] * 60}}, chance, one_per_family={"bbh"})
    assert list(out["kept"]["bbh"]) == ["a@1", "b@1"] and out["whole"] == ["bbh"]
    assert screen.confirm(outcome, {"bbh": {"a@2": [0] * 60, "b@1": [0] * 60}}, chance, one_per_family={"bbh"},
                          optional={"bbh"})["kept"]["bbh"] == {}


def test_the_confirmation_keeps_an_at_chance_family_far_more_rarely_than_the_screen_alone():
    """A two-way family at chance with three settings and two (independent) rules, 60 items each: the best of six
    passes z >= 2 about 10 % of the time; confirmed on 60 fresh items, about 2 % of that."""
    rng = random.Random(1)
    draw = lambda: [float(rng.random() < 0.5) for _ in range(60)]  # noqa: E731
    screened = confirmed = 0
    for _ in range(3000):
        scores = {"bbh": {f"f@{s}": _rules(draw(), draw()) for s in range(3)}}
        chance = {"bbh": {n: 0.5 for n in scores["bbh"]}}
        out = screen.decide(scores, chance, one_per_family={"bbh"}, optional={"bbh"})
        screened += bool(out["kept"]["bbh"])
        fresh = {"bbh": {n: draw() for n in out["kept"]["bbh"]}}
        confirmed += bool(screen.confirm(out, fresh, chance, {"bbh"}, {"bbh"})["kept"]["bbh"])
    assert screened / 3000 > 0.06 and confirmed / 3000 < 0.01


@pytest.fixture
def screened_profile():
    profile = get_profile("smoke", screen=3, seed=4242)  # a suite folder of its own in the shared asset cache
    yield profile
    for folder in (suite.suite_dir(profile), suite.general_dir(profile), suite.domain_dir(profile)):
        shutil.rmtree(folder, ignore_errors=True)
    for part in ("general", "math"):
        shutil.rmtree(suite.screen_dir(profile, part), ignore_errors=True)


def test_a_screened_suite_keeps_the_chosen_candidates_on_items_the_screen_never_saw(screened_profile, monkeypatch):
    profile = screened_profile
    with pytest.raises(Exception, match="python -m arena assets --profile smoke"):
        suite.build_suite(profile)  # the screen has not run: a one-line error naming the fix
    general, math = suite.write_screen(profile), suite.write_screen(profile, "math")
    kept = {"bbh": {"navigate@4": {"rule": "acc"}, "comparison@1": {"rule": "acc_norm"}},
            "qa": {"capital@large": {"rule": "acc"}}}
    (general / "result.json").write_text(json.dumps({"kept": kept, "rows": [], "whole": []}))
    (math / "result.json").write_text(json.dumps({"kept": {"arithmetic": {"addition@2": {"rule": "acc"}}},
                                                  "rows": [], "whole": []}))
    fresh = suite.write_confirmation(profile, "general", kept)
    # a finite fact table and a small setting (1-digit comparison: 180 questions) are not confirmed
    assert not (fresh / "qa.jsonl").exists() and not (fresh / "bbh/comparison.jsonl").exists()
    assert not inputs(fresh / "bbh/navigate.jsonl") & inputs(general / "bbh/navigate.jsonl")
    assert {(r["candidate"], r["rule"]) for r in read_jsonl(fresh / "bbh/navigate.jsonl")} == {("navigate@4", "acc")}
    test, validation = suite.build_suite(profile), suite.build_validation(profile)
    for split in (test, validation):
        assert sorted(p.stem for p in (split / "bbh").glob("*.jsonl")) == ["comparison", "navigate"]
        assert all(" plus " in r["input"] for r in read_jsonl(split / "arithmetic.jsonl"))
        assert {r["rule"] for r in read_jsonl(split / "bbh" / "comparison.jsonl")} == {"acc_norm"}
        assert {r["setting"] for r in read_jsonl(split / "bbh" / "navigate.jsonl")} == {4}
        for folder, file in ((general, "bbh/navigate.jsonl"), (general, "qa.jsonl"), (math, "arithmetic.jsonl"),
                             (fresh, "bbh/navigate.jsonl")):
            screened = {norm(r["input"]) for r in read_jsonl(folder / file)}
            assert not screened & {norm(r["input"]) for r in read_jsonl(split / file)}
    from arena.evaluate import suite_tasks

    assert suite_tasks(test, ["arena_bbh", "arena_qa"]) == ["arena_bbh_comparison", "arena_bbh_navigate", "arena_qa"]
    assert get_profile("smoke").screen == 0 and suite.suite_dir(profile) != suite.suite_dir(get_profile("smoke"))
    # resizing the suite keeps the screen (its folder is keyed by the screen's own size, seed and base)
    resized = get_profile("smoke", screen=3, seed=4242, bbh_per_task=2)
    assert suite.screen_dir(resized) == general and suite.suite_dir(resized) != suite.suite_dir(profile)
    # so does a new suite version; a new screen version does not (undone here: the fixture's clean-up reads both)
    with monkeypatch.context() as patch:
        patch.setattr(suite, "SUITE_VERSION", suite.SUITE_VERSION + 1)
        assert suite.screen_dir(profile) == general and suite.suite_dir(profile) != test
        patch.setattr(suite, "SCREEN_VERSION", suite.SCREEN_VERSION + 1)
        assert suite.screen_dir(profile) != general


def test_the_screen_scores_the_base_on_every_candidate(screened_profile):
    """run_screen end to end on the smoke model: every candidate scored under both rules on its own items."""
    from arena.groups import BBH, QA, QA_GEN
    from arena.domains import ARITHMETIC

    out = screen.run_screen(screened_profile)
    rows = out["general"]["rows"] + out["math"]["rows"]
    assert len(rows) == len(BBH.candidates) + len(QA.candidates) + len(QA_GEN.candidates) + len(ARITHMETIC.candidates)
    assert all(r["items"] == 3 and r["rule"] in ("acc", "acc_norm") for r in rows)
    assert {r["rule"] for r in rows if r["group"] == "qa_gen"} == {"acc"}  # a generated answer: greedy match only
    assert set(out["general"]["kept"]) == {"bbh", "qa", "qa_gen"} and out["general"]["kept"]["bbh"]
    assert screen.run_screen(screened_profile) == out  # stored: read back, not recomputed
    table = screen.screen_table(screened_profile)
    assert {"items", "chance", "accuracy", "rule", "z", "confirm_items", "confirm_z", "confirmed", "kept"} <= set(
        table.columns)
    suite.build_suite(screened_profile)  # the screen's outcome builds a suite


def test_the_screen_decides_the_same_with_half_its_candidates_scored_in_a_second_process(screened_profile):
    from dataclasses import replace

    from arena.evaluate import spare_core

    if not spare_core():
        pytest.skip("one CPU core: nothing is scored aside")
    alone = screen.run_screen(screened_profile)
    for part in ("general", "math"):
        (suite.screen_dir(screened_profile, part) / "result.json").unlink()
    beside = screen.run_screen(replace(screened_profile, score_aside=True))
    for part in ("general", "math"):
        assert beside[part]["rows"] == alone[part]["rows"] and beside[part]["kept"] == alone[part]["kept"]


def test_a_generated_variant_is_kept_above_its_floor_and_dropped_whole_below_it():
    scores = {"qa_gen": {"capital@large": {"acc": [1] * 9 + [0] * 51}, "capital@all": {"acc": [1] * 5 + [0] * 55},
                         "currency": {"acc": [1] * 5 + [0] * 55}}}
    chance = {"qa_gen": {n: 0.0 for n in scores["qa_gen"]}}
    out = screen.decide(scores, chance, one_per_family={"qa_gen"}, optional={"qa_gen"})
    assert out["kept"]["qa_gen"] == {"capital@large": {"rule": "acc"}}  # 15 % >= the 10 % floor; 8 % is not
    del scores["qa_gen"]["capital@large"]
    out = screen.decide(scores, chance, one_per_family={"qa_gen"}, optional={"qa_gen"})
    assert out["kept"]["qa_gen"] == {} and out["whole"] == []  # none above the floor: none kept, not all
