import json
import random

from arena import suite
from arena.profiles import get_profile


def test_bbh_items_exclude_lm_eval_exemplars(monkeypatch):
    exemplars = suite._bbh_exemplars("navigate")
    assert len(exemplars) == 3
    # A fake task file whose first examples are the exemplars' questions (as BIG-bench holds them, without options).
    import re

    raw = [re.split(r"\noptions:", e, flags=re.I)[0] for e in exemplars]
    examples = [{"input": text, "target_scores": {"Yes": 1, "No": 0}} for text in raw]
    examples += [{"input": f"Take {i} steps. Turn around.", "target_scores": {"Yes": 0, "No": 1}} for i in range(5)]
    monkeypatch.setattr(suite, "load_bigbench", lambda name: {"examples": examples, "task_prefix": ""})
    items = suite._bbh_items("navigate", 100, random.Random(0))
    assert len(items) == 5 and all("steps. Turn around" in it["input"] for it in items)
    assert all(it["choices"][it["gold"]] == "No" for it in items)


def test_greedy_items_take_the_correct_option_or_digit_target():
    dyck = suite._greedy_item({"input": "[ (", "target_scores": {") ]": 1, "]": 0}}, "")
    assert dyck["target"] == ") ]"
    assert suite._greedy_item({"input": "count", "target": ["three", "3"]}, "")["target"] == "3"


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


def test_ifeval_scorer_rewards_following_and_penalises_not(monkeypatch):
    from arena.tasks.utils import ifeval_results

    doc = {"key": 0, "prompt": "p", "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
           "kwargs": [{}, {}]}
    assert ifeval_results(doc, ["all lower case and no commas here"])["inst_level_strict_acc"] == [True, True]
    assert ifeval_results(doc, ["Has, A comma"])["inst_level_strict_acc"] == [False, False]


def test_qa_items_are_multiple_choice_with_distractors_of_the_same_relation(monkeypatch):
    gold = {f"The capital of {c} is": t for c, t in
            (("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Peru", "Lima"), ("Chile", "Santiago"))}
    examples = [{"input": q, "target": t} for q, t in gold.items()]
    examples += [{"input": "The religion of Jim is", "target": ["Buddhism", "Zen"]}]
    monkeypatch.setattr(suite, "load_bigbench", lambda name: {"examples": examples})
    suite._qa_answers_by_relation.cache_clear()
    try:
        items = suite._qa_items(10, random.Random(0))
    finally:
        suite._qa_answers_by_relation.cache_clear()
    assert len(items) == 5  # the religion has no three other answers to draw from
    for item in items:
        assert len(item["choices"]) == 4 == len(set(item["choices"])) and set(item["choices"]) <= set(gold.values())
        assert item["choices"][item["gold"]] == gold[item["input"]]
    assert suite.qa_relation("Michoacán is located in") == "is located in"
    assert suite.qa_relation("The native language of Milo Yiannopoulos is") == "The native language of"

def test_validation_split_is_disjoint_from_test_and_training():
    from arena.profiles import get_profile
    from arena.suite import build_suite, build_validation, read_jsonl

    profile = get_profile("smoke")
    test, val = build_suite(profile), build_validation(profile)
    assert val != test and (val / "DONE").exists()

    def inputs(folder, name, field="input"):
        files = sorted((folder / "bbh").glob("*.jsonl")) if name == "bbh" else [folder / name]
        return [r[field] for f in files for r in read_jsonl(f)]

    for name, field in [("bbh", "input"), ("qa.jsonl", "input"), ("ifeval.jsonl", "prompt"),
                        ("arithmetic.jsonl", "input"), ("emqa.jsonl", "input"),
                        ("wordproblems_test.jsonl", "question")]:
        v = inputs(val, name, field)
        assert v, name
        assert not set(v) & set(inputs(test, name, field)), f"{name}: validation items in the test split"
    train = {r["question"] for r in read_jsonl(test / "wordproblems_train.jsonl")}
    assert not set(inputs(val, "wordproblems_test.jsonl", "question")) & train
    assert len(inputs(val, "bbh")) == 24 * profile.val_bbh_per_task


def test_the_word_problems_twin_scores_the_first_n_test_problems_and_every_validation_one():
    from arena.profiles import get_profile
    from arena.suite import build_suite, build_validation, read_jsonl, suite_dir

    every = get_profile("smoke")
    some = get_profile("smoke", n_target_twin=4)
    assert suite_dir(some) != suite_dir(every)  # the twin's size is part of the suite's key
    for profile, expected in ((every, every.n_target_test), (some, 4)):
        test, val = build_suite(profile), build_validation(profile)
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


def test_arithmetic_keeps_its_size_however_many_tasks_the_screen_keeps():
    one, four = ["a"], ["a", "b", "c", "d"]
    assert suite.arithmetic_per_task(64, one) == 64 and suite.arithmetic_per_task(64, four) == 16
    assert suite.arithmetic_per_task(16, ["a", "b", "c"]) == 6  # rounded up: never fewer than asked
    assert suite.arithmetic_items(get_profile("smoke")) == 2 * get_profile("smoke").n_target_ood
    assert suite.arithmetic_items(get_profile("smoke", n_arithmetic=10)) == 10


def test_a_capped_draw_leaves_the_validation_split_its_items(monkeypatch):
    examples = [{"input": f"{i} + 1 =", "target_scores": {str(i + 1): 1}} for i in range(10)]
    monkeypatch.setattr(suite, "load_bigbench", lambda task: {"examples": examples})
    rng = random.Random(0)
    assert len(suite._sample_examples("t", 4, rng, reserve=3)) == 4  # enough for both
    drawn = suite._sample_examples("t", 9, rng, exclude={"0 + 1 ="}, reserve=3)
    assert len(drawn) == 6 and all(e["input"] != "0 + 1 =" for e in drawn)  # 9 left, 3 kept back
    assert suite._sample_examples("t", 5, rng, reserve=20) == []
