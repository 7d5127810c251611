from arena.wordproblems import HELDOUT_TEMPLATES, extract_answer, is_correct, make_problems


def test_answer_checker():
    assert extract_answer("3 + 4 = 7. #### 7") == "7"
    assert extract_answer("so 12 apples, then 15") == "15"
    assert extract_answer("no number") is None
    assert is_correct("... #### 1,200", "1200")
    assert is_correct("The answer is 12.0", "12")
    assert not is_correct("#### 13", "12")
    assert not is_correct("I do not know", "12")


def test_problems_are_seeded_and_solutions_are_right():
    train, test = make_problems(50, 20, seed=3)
    again, _ = make_problems(50, 20, seed=3)
    assert train == again
    for item in train + test:
        assert item["answer"].endswith(f"#### {item['target']}")
        assert is_correct(item["answer"], item["target"])


def test_heldout_templates_never_appear_in_training():
    train, test = make_problems(300, 40, seed=0)
    heldout = {t.name for t in HELDOUT_TEMPLATES}
    assert not heldout & {item["template"] for item in train}
    assert heldout & {item["template"] for item in test}
    assert not {i["question"] for i in test if not i["heldout_template"]} & {i["question"] for i in train}
