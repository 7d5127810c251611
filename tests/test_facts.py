"""The knowledge group's fact relations: pool sizes, known facts, and the multiple-choice draw (no model)."""

import random

import pytest

from arena import facts
from arena.errors import ArenaError

# Lower bounds a little under the pinned packages' counts: a shrinking pool means a package changed under us.
MIN_SIZE = {"capital": 200, "capital_large": 90, "currency": 220, "continent": 220, "element_symbol": 118,
            "element_name": 118, "city_country": 450, "language": 200}


def test_every_relation_has_a_pool_of_the_expected_size_without_duplicate_subjects():
    assert set(MIN_SIZE) <= set(facts.RELATIONS)
    for name, relation in facts.RELATIONS.items():
        pool = facts.pairs(name)
        subjects = [s for s, _ in pool]
        assert len(pool) >= MIN_SIZE.get(name, 100), (name, len(pool))
        assert len(set(subjects)) == len(subjects) and subjects == sorted(subjects), name
        assert all(s.strip() == s and a.strip() == a and s and a for s, a in pool), name
        assert "{subject}" in relation.question and relation.source
    assert len(facts.pairs("element_symbol")) == 118
    assert len(facts.pairs("capital_large")) < len(facts.pairs("capital"))


def test_known_facts_hold():
    assert dict(facts.pairs("capital"))["France"] == "Paris"
    assert dict(facts.pairs("capital_large"))["Japan"] == "Tokyo"
    assert "Monaco" not in dict(facts.pairs("capital_large"))
    assert dict(facts.pairs("element_symbol"))["Iron"] == "Fe"
    assert dict(facts.pairs("element_name"))["Fe"] == "Iron"
    assert dict(facts.pairs("continent"))["Brazil"] == "South America"
    assert "Yen" in dict(facts.pairs("currency"))["Japan"]
    assert dict(facts.pairs("city_country"))["Mumbai"] == "India"
    assert dict(facts.pairs("language"))["France"] == "French"


def test_answers_are_not_readable_off_the_question():
    # Mexico -> Mexico City, South Africa -> Africa, Mexico City -> Mexico, Córdoba (Argentina and Spain) is ambiguous
    assert "Mexico" not in dict(facts.pairs("capital"))
    assert "South Africa" not in dict(facts.pairs("continent"))
    cities = dict(facts.pairs("city_country"))
    assert "Mexico City" not in cities and "Singapore" not in cities and "Córdoba" not in cities


def test_items_are_well_formed_multiple_choice():
    for name in facts.RELATIONS:
        answers = {a.casefold() for _, a in facts.pairs(name)}
        truth = dict(facts.pairs(name))
        for item in facts.items(name, 30, random.Random(0)):
            choices = item["choices"]
            assert len(choices) == 4 and len({c.casefold() for c in choices}) == 4
            assert choices[item["gold"]] == item["answer"] and item["relation"] == name
            assert {c.casefold() for c in choices} <= answers  # distractors are other answers of the same relation
            subject = next(s for s in truth if facts.RELATIONS[name].question.format(subject=s) == item["input"])
            assert truth[subject] == item["answer"]


def test_shared_answers_never_appear_as_distractors():
    # 30-odd countries use the Euro: an item for one of them must not offer "Euro" twice or as a wrong option
    for item in facts.items("currency", 200, random.Random(1)):
        assert [c.casefold() for c in item["choices"]].count(item["answer"].casefold()) == 1
    golds = {item["gold"] for item in facts.items("continent", 100, random.Random(2))}
    assert golds == {0, 1, 2, 3}


def test_items_are_deterministic_for_a_seed():
    assert facts.items("capital", 20, random.Random(7)) == facts.items("capital", 20, random.Random(7))
    assert facts.items("capital", 20, random.Random(7)) != facts.items("capital", 20, random.Random(8))


def test_exclude_and_reserve():
    pool = facts.pairs("element_name")
    first = facts.items("element_name", 10, random.Random(0), reserve=len(pool) - 10)
    assert len(first) == 10
    # Everything left is reserved: nothing more to draw.
    assert facts.items("element_name", 10, random.Random(0), reserve=len(pool)) == []
    used = {facts.norm(i["input"]) for i in first}
    rest = facts.items("element_name", 1000, random.Random(1), exclude=used)
    assert len(rest) == len(pool) - 10 and not used & {facts.norm(i["input"]) for i in rest}
    # With the first 10 excluded and 100 held back, only 8 remain to draw.
    assert len(facts.items("element_name", 50, random.Random(2), exclude=used, reserve=100)) == len(pool) - 110
    # exclude is compared after normalising case and whitespace
    shouty = {"  " + i["input"].upper().replace(" ", "   ") for i in first}
    assert len(facts.items("element_name", 1000, random.Random(1), exclude=shouty)) == len(pool) - 10


def test_n_larger_than_the_pool_returns_the_whole_pool():
    got = facts.items("capital_large", 10_000, random.Random(0))
    assert sorted(i["answer"] for i in got) == sorted(a for _, a in facts.pairs("capital_large"))


def test_norm():
    assert facts.norm("  What IS\n the  capital? ") == "what is the capital?"


def test_unknown_relation_is_a_one_line_error_naming_the_choices():
    with pytest.raises(ArenaError, match="capital") as err:
        facts.items("capitals", 5, random.Random(0))
    assert "\n" not in str(err.value) and "element_symbol" in str(err.value)
    with pytest.raises(ArenaError):
        facts.pairs("nope")
