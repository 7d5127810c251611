"""Screened groups: a yardstick built from candidates that a base-only screen keeps or drops (``screen``).

A **candidate** is one generator at one setting: a reasoning family at a difficulty (``"navigate@3"``), a fact relation
(``"capital"``), an arithmetic operation at a number of digits (``"addition@2"``). Each group says how to draw a
candidate's items, which file holds them and which lm-eval task scores that file. General's two screened groups live
here; a domain's live with the domain (``domains``).

- **bbh** (BBH's role, multi-step reasoning): the kit's generated families (``reasoning``); the screen keeps one setting
  per family, and the group's score is the mean of its families' (as BBH's is of its subtasks').
- **qa** (NQ's role, closed-book knowledge): relations of pinned fact packages (``facts``) as 4-way multiple choice;
- **qa_gen**, its generative exact-match variant (the paper's NQ is generative): the answer must be the model's greedy
  continuation (scored teacher-forced, one forward pass). Optional: the screen keeps a relation only where the base is
  above the floor, and the group may keep none. Its items join the knowledge group's score; no fact is asked both ways.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import facts, reasoning
from .itemfiles import inputs, leave_reserve, write_jsonl

CONFIRM = "confirm"  # the screen's confirmation items: a folder inside the screen's (``suite.write_confirmation``)


@dataclass(frozen=True)
class Group:
    name: str
    candidates: tuple[str, ...]
    # (candidate, n, rng, exclude: normalised inputs) -> up to n items {"input", "choices", "gold", ...}
    draw: Callable[[str, int, random.Random, set], list[dict]]
    file: Callable[[str], str]  # the suite file a candidate's items go to (relative)
    task: Callable[[str], str]  # the lm-eval task that scores that file
    one_per_family: bool = False  # keep one setting per family ("family@setting"), not every passing candidate
    shares_size: bool = True  # the group's item count is shared over its kept candidates (else: each family's)
    # The most items a finite source holds for a candidate (a fact table's pairs, a small setting's questions); None:
    # unbounded for any draw the kit makes
    capacity: Callable[[str], int | None] = lambda candidate: None
    optional: bool = False  # no candidate above the bar: the group is dropped, not kept whole
    apart_from: tuple[str, ...] = ()  # files (of the same split and screen) whose questions it never asks again


def family(candidate: str) -> str:
    return candidate.split("@", 1)[0]


def setting(candidate: str):
    if "@" not in candidate:
        return None
    text = candidate.split("@", 1)[1]
    try:
        return json.loads(text)
    except ValueError:  # a word ("large")
        return text


def _reasoning_draw(candidate, n, rng, exclude):
    return reasoning.items(family(candidate), setting(candidate), n, rng, exclude)


BBH = Group(
    "bbh", tuple(f"{name}@{json.dumps(s)}" for name, f in reasoning.FAMILIES.items() for s in f.settings),
    _reasoning_draw, lambda c: f"bbh/{family(c)}.jsonl", lambda c: f"arena_bbh_{family(c)}", one_per_family=True,
    shares_size=False, capacity=lambda c: reasoning.capacity(family(c), setting(c)))
# A relation with a "_large" twin (capitals of countries over 8 M people) is one family at two difficulties: both
# would ask the same questions, so the screen keeps one.
_QA_CANDIDATES = tuple(f"{r}@large" if f"{r}_large" in facts.RELATIONS else r for r in facts.RELATIONS
                       if not r.endswith("_large")) + tuple(f"{r.removesuffix('_large')}@all" for r in facts.RELATIONS
                                                             if r.endswith("_large"))


def relation(candidate: str) -> str:
    """The fact relation a knowledge candidate reads: ``capital@large`` -> capital_large, ``capital@all`` -> capital."""
    return family(candidate) + ("_large" if setting(candidate) == "large" else "")


QA = Group("qa", _QA_CANDIDATES, lambda c, n, rng, exclude: facts.items(relation(c), n, rng, exclude),
           lambda c: "qa.jsonl", lambda c: "arena_qa", one_per_family=True,
           capacity=lambda c: len(facts.pairs(relation(c))))


def _generative(candidate, n, rng, exclude):
    return [{"input": item["input"], "target": item["answer"], "relation": item["relation"]}
            for item in facts.items(relation(candidate), n, rng, exclude)]


QA_GEN = Group("qa_gen", _QA_CANDIDATES, _generative, lambda c: "qa_gen.jsonl", lambda c: "arena_qa_gen",
               one_per_family=True, capacity=lambda c: len(facts.pairs(relation(c))), optional=True,
               apart_from=("qa.jsonl",))
GENERAL_GROUPS = (BBH, QA, QA_GEN)


def write_group(group: Group, kept: dict, n: int, reserve: int, rng: random.Random, out: Path,
                 screen: Path | None, test: Path | None) -> None:
    """``n`` items of every kept candidate (``reserve`` more left in a finite source for the validation draw), none
    among the screen's (its confirmation's included) or the test split's items, each marked with its candidate and
    scoring rule."""
    files: dict[str, list[dict]] = {}
    earlier = {f: set().union(*(inputs(folder / f) for folder in (screen, screen and screen / CONFIRM, test) if folder))
               for f in {group.file(c) for c in kept} | set(group.apart_from)}  # read once per file, not per candidate
    for c, choice in kept.items():
        file = group.file(c)
        exclude = set()
        for f in (file, *group.apart_from):  # the screen's and the test split's items, and a sibling group's here
            exclude |= inputs(out / f) if f != file else set()
            exclude |= earlier[f]
        drawn = leave_reserve(group.draw(c, n + reserve, rng, exclude), n, reserve)
        files.setdefault(file, []).extend({**item, "candidate": c, "rule": choice["rule"]} for item in drawn)
    for file, rows in files.items():
        if rows or not group.optional:  # an optional group whose sources ran dry is left out, not written empty
            write_jsonl(out / file, rows)
