import json
import random

import pytest

from arena import arithmetic, domains, groups, suite
from arena.itemfiles import leave_reserve, norm, read_jsonl
from arena.profiles import get_profile


def test_ifeval_items_use_lm_eval_checkers_and_are_seeded():
    a = suite.ifeval_items(12, random.Random(5))
    b = suite.ifeval_items(12, random.Random(5))
    assert a == b and len(a) == 12
    from lm_eval.tasks.ifeval import instructions_registry

    for item in a:
        assert len(item["instruction_id_list"]) == len(item["kwargs"]) >= 1
        assert all(i in instructions_registry.INSTRUCTION_DICT for i in item["instruction_id_list"])
        json.dumps(item)


def test_ifeval_prompts_are_distinct_at_the_embedded_size():
    """A repeated prompt is the same greedy generation, not a new item: 12 topics repeated dozens of prompts."""
    n = get_profile("embedded").n_ifeval
    items = suite.ifeval_items(n, random.Random(0))
    assert len({i["prompt"] for i in items}) == len(items) == n
    assert [i["key"] for i in items] == list(range(n))


def test_ifeval_scorer_rewards_following_and_penalises_not():
    from arena.tasks.utils import ifeval_results

    doc = {"key": 0, "prompt": "p", "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
           "kwargs": [{}, {}]}
    assert ifeval_results(doc, ["all lower case and no commas here"])["inst_level_strict_acc"] == [True, True]
    assert ifeval_results(doc, ["Has, A comma"])["inst_level_strict_acc"] == [False, False]


def test_arithmetic_items_are_right_and_their_distractors_near_misses():
    items = arithmetic.items("subtraction@2", 40, random.Random(0))
    assert len({i["input"] for i in items}) == 40
    for item in items:
        a, _, b = item["input"].removeprefix("Question: What is ").rstrip("?").partition(" minus ")
        assert item["choices"][item["gold"]] == str(int(a) - int(b))
        assert len(set(item["choices"])) == 4 and all(abs(int(c) - (int(a) - int(b))) <= 99 for c in item["choices"])
    assert len(arithmetic.items("addition@1", 500, random.Random(0))) == 100  # a finite source returns what it holds
    # ... and declares it, so the screen takes a quarter and leaves it unconfirmed; two digits are unbounded
    assert arithmetic.capacity("addition@1") == 100 and arithmetic.capacity("multiplication@2") is None
    assert suite.screen_items(get_profile("embedded"), domains.ARITHMETIC)("addition@1") == 25
    with pytest.raises(Exception, match="choose one of"):
        arithmetic.parse("division@1")


def test_a_draw_leaves_a_finite_source_its_reserve():
    drawn = list(range(10))
    assert leave_reserve(drawn, 4, 3) == [0, 1, 2, 3]  # enough for both
    assert leave_reserve(drawn, 9, 3) == list(range(7))  # ran short: 3 kept back
    assert leave_reserve(drawn, 5, 20) == []


def test_knowledge_candidates_are_relations_and_one_setting_per_family():
    qa = groups.QA
    assert "capital@large" in qa.candidates and "capital@all" in qa.candidates and qa.one_per_family
    assert groups.relation("capital@large") == "capital_large" and groups.relation("capital@all") == "capital"
    assert groups.relation("currency") == "currency"
    assert len({groups.family(c) for c in groups.BBH.candidates}) >= 10  # BBH's role: 10 or more families


def test_unscreened_suites_keep_every_candidate_each_family_at_its_easiest_setting():
    kept = suite.kept_candidates(get_profile("smoke"))
    from arena import reasoning

    assert {groups.family(c) for c in kept["bbh"]} == set(reasoning.FAMILIES)
    for c in kept["bbh"]:
        assert groups.setting(c) == reasoning.FAMILIES[groups.family(c)].settings[0]
    assert all(v == {"rule": "acc"} for g in kept.values() for v in g.values())
    assert set(suite.kept_candidates(get_profile("smoke"), "math")["arithmetic"]) == set(arithmetic.CANDIDATES)


def test_validation_split_is_disjoint_from_test_and_training():
    profile = get_profile("smoke")
    test, val = suite.build_suite(profile), suite.build_validation(profile)
    assert val != test and (val / "DONE").exists()

    def texts(folder, name, field="input"):
        files = sorted((folder / "bbh").glob("*.jsonl")) if name == "bbh" else [folder / name]
        return [norm(r[field]) for f in files for r in read_jsonl(f)]

    for name, field in [("bbh", "input"), ("qa.jsonl", "input"), ("ifeval.jsonl", "prompt"),
                        ("arithmetic.jsonl", "input"), ("wordproblems_test.jsonl", "question")]:
        v = texts(val, name, field)
        assert v, name
        assert not set(v) & set(texts(test, name, field)), f"{name}: validation items in the test split"
        assert len(set(texts(test, name, field))) == len(texts(test, name, field)), f"{name}: a repeated item"
    train = {r["question"] for r in read_jsonl(test / "wordproblems_train.jsonl")}
    assert not set(texts(val, "wordproblems_test.jsonl", "question")) & {norm(q) for q in train}
    from arena import reasoning

    assert len(texts(val, "bbh")) == len(reasoning.FAMILIES) * profile.val_bbh_per_task
    assert all("rule" in r and "candidate" in r for r in read_jsonl(test / "qa.jsonl"))
    assert not (test / "emqa.jsonl").exists()


def test_the_general_suite_and_the_domain_are_keyed_apart():
    profile = get_profile("smoke")
    more_problems = get_profile("smoke", n_target_test=10)
    more_facts = get_profile("smoke", n_qa=9)
    assert suite.general_dir(more_problems) == suite.general_dir(profile)  # a domain's size leaves General alone
    assert suite.domain_dir(more_problems) != suite.domain_dir(profile)
    assert suite.domain_dir(more_facts) == suite.domain_dir(profile) and suite.general_dir(more_facts) != \
        suite.general_dir(profile)
    assert len({suite.suite_dir(p) for p in (profile, more_problems, more_facts)}) == 3
    with pytest.raises(Exception, match="choose one of: math"):
        domains.get_domain("medical")


def test_general_text_is_natural_prose_from_the_interpreter():
    from arena import prose

    docs = prose.documents(24, random.Random(0))
    assert len(docs) == 24 and all(len(d["text"]) >= prose.MIN_CHARS for d in docs)
    assert all(". " in d["text"] or d["text"].endswith(".") for d in docs)
    assert "python3." in prose.identity()


def test_the_word_problems_twin_scores_the_first_n_test_problems_and_every_validation_one():
    every = get_profile("smoke")
    some = get_profile("smoke", n_target_twin=4)
    assert suite.suite_dir(some) != suite.suite_dir(every)  # the twin's size is part of the suite's key
    for profile, expected in ((every, every.n_target_test), (some, 4)):
        test, val = suite.build_suite(profile), suite.build_validation(profile)
        problems, gold = read_jsonl(test / "wordproblems_test.jsonl"), read_jsonl(test / "wordproblems_gold.jsonl")
        assert gold == problems[:expected] and len(gold) == expected
        assert sum(r["heldout_template"] for r in gold) == expected // 2  # the draw alternates seen and held-out
        assert read_jsonl(val / "wordproblems_gold.jsonl") == read_jsonl(val / "wordproblems_test.jsonl")


def test_task_files_load_in_memory_and_nested_kwargs_survive(tmp_path):
    from arena.tasks.utils import load_items

    plain = [{"input": "2 + 2 =", "choices": ["4", "5"], "gold": 0}, {"input": "1 + 1 =", "choices": ["2", "3"], "gold": 0}]
    nested = [{"key": 0, "kwargs": [{"keywords": ["river", "light"]}]}, {"key": 1, "kwargs": [{"num_words": 40}]}]
    for name, rows in (("plain.jsonl", plain), ("nested.jsonl", nested)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        assert load_items(str(tmp_path), name)["test"].to_list() == rows


def test_every_reasoning_family_has_its_task_file():
    from pathlib import Path

    from arena import reasoning

    tasks = Path(suite.__file__).parent / "tasks"
    for name in reasoning.FAMILIES:
        text = (tasks / f"arena_bbh_{name}.yaml").read_text()
        assert f"task: arena_bbh_{name}\n" in text and f"file: bbh/{name}.jsonl" in text
        assert f"  - arena_bbh_{name}\n" in (tasks / "arena_bbh.yaml").read_text()
    assert len(list(tasks.glob("arena_bbh_*.yaml"))) == len(reasoning.FAMILIES)
