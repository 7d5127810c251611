"""The embedded target task (plasticity): GSM-style arithmetic word problems, generated and seeded.

Templates take one to three steps and come with short worked solutions ending in ``#### N`` (the GSM8K convention).
``TRAIN_TEMPLATES`` feed training and half of the held-out test; ``HELDOUT_TEMPLATES`` appear only in the test, so the
test measures transfer to unseen problem shapes, not recall. Answers are checked with math-verify.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jamal", "Kira", "Leo", "Mei", "Nora"]
ITEMS = ["apples", "marbles", "stickers", "books", "pencils", "cookies", "shells", "coins", "cards", "stamps"]


@dataclass(frozen=True)
class Template:
    name: str
    steps: int
    make: Callable[[random.Random], tuple[str, str, int]]  # rng -> (question, worked solution, answer)


def _who(rng):
    a, b = rng.sample(NAMES, 2)
    return a, b, rng.choice(ITEMS)


def _add(rng):
    n, _, it = _who(rng)
    a, b = rng.randint(3, 60), rng.randint(2, 40)
    return f"{n} has {a} {it}. {n} finds {b} more. How many {it} does {n} have now?", f"{a} + {b} = {a + b}.", a + b


def _sub(rng):
    n, m, it = _who(rng)
    a = rng.randint(20, 90)
    b = rng.randint(2, a - 1)
    return f"{n} had {a} {it} and gave {b} to {m}. How many {it} does {n} have left?", f"{a} - {b} = {a - b}.", a - b


def _mul(rng):
    _, _, it = _who(rng)
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    return f"Each box holds {a} {it}. How many {it} are in {b} boxes?", f"{a} * {b} = {a * b}.", a * b


def _packs_minus(rng):
    n, _, it = _who(rng)
    a, b = rng.randint(2, 9), rng.randint(3, 12)
    c = rng.randint(1, a * b - 1)
    q = f"{n} buys {a} packs of {b} {it} and then loses {c}. How many {it} does {n} have?"
    return q, f"{a} * {b} = {a * b}. {a * b} - {c} = {a * b - c}.", a * b - c


def _more_than_together(rng):
    n, m, it = _who(rng)
    a, b = rng.randint(3, 40), rng.randint(1, 20)
    q = f"{n} has {a} {it}. {m} has {b} more {it} than {n}. How many {it} do they have together?"
    return q, f"{m} has {a} + {b} = {a + b}. Together {a} + {a + b} = {2 * a + b}.", 2 * a + b


def _change(rng):
    n, m, it = _who(rng)
    p, a, b = rng.randint(2, 9), rng.randint(1, 5), rng.randint(1, 5)
    bill = 10 * ((p * (a + b)) // 10 + 1 + rng.randint(0, 3))
    q = (f"A shop sells {it} for {p} dollars each. {n} buys {a} and {m} buys {b}. They pay together with {bill} "
         f"dollars. How much change do they get?")
    s = f"They buy {a} + {b} = {a + b}. Cost {a + b} * {p} = {p * (a + b)}. Change {bill} - {p * (a + b)} = "
    return q, s + f"{bill - p * (a + b)}.", bill - p * (a + b)


def _share(rng):
    n, _, it = _who(rng)
    b, each = rng.randint(2, 9), rng.randint(2, 12)
    return (f"{n} shares {b * each} {it} equally among {b} friends. How many {it} does each friend get?",
            f"{b * each} / {b} = {each}.", each)


# Held out: these shapes never appear in training.
def _reading(rng):
    n, _, _ = _who(rng)
    a, b, c = rng.randint(5, 30), rng.randint(2, 7), rng.randint(1, 20)
    q = f"{n} reads {a} pages a day for {b} days and then {c} more pages. How many pages does {n} read in total?"
    return q, f"{a} * {b} = {a * b}. {a * b} + {c} = {a * b + c}.", a * b + c


def _groups(rng):
    size, groups = rng.randint(2, 8), rng.randint(2, 12)
    q = f"There are {size * groups} students. They form groups of {size}. How many groups are there?"
    return q, f"{size * groups} / {size} = {groups}.", groups


def _savings(rng):
    n, _, _ = _who(rng)
    a, w, spend = rng.randint(3, 15), rng.randint(2, 8), rng.randint(1, 20)
    total = a * w
    spend = min(spend, total - 1)
    q = f"{n} saves {a} dollars every week for {w} weeks, then spends {spend} dollars. How many dollars are left?"
    return q, f"{a} * {w} = {total}. {total} - {spend} = {total - spend}.", total - spend


TRAIN_TEMPLATES = [
    Template("add", 1, _add), Template("sub", 1, _sub), Template("mul", 1, _mul), Template("share", 1, _share),
    Template("packs_minus", 2, _packs_minus), Template("more_than_together", 2, _more_than_together),
    Template("change", 3, _change),
]
HELDOUT_TEMPLATES = [Template("reading", 2, _reading), Template("groups", 1, _groups), Template("savings", 2, _savings)]


def _render(t: Template, rng: random.Random) -> dict:
    question, steps, answer = t.make(rng)
    return {"question": question, "answer": f"{steps} #### {answer}", "target": str(answer), "template": t.name,
            "steps": t.steps}


def make_problems(n_train: int, n_test: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """``(train, test)``: train from TRAIN_TEMPLATES; test half seen-template (new numbers), half held-out templates.

    No test question appears verbatim in training.
    """
    rng = random.Random(seed)
    train, seen = [], set()
    while len(train) < n_train:
        item = _render(rng.choice(TRAIN_TEMPLATES), rng)
        if item["question"] not in seen:
            seen.add(item["question"])
            train.append(item)
    test, tries = [], 0
    while len(test) < n_test:
        tries += 1
        pool = HELDOUT_TEMPLATES if len(test) % 2 else TRAIN_TEMPLATES
        item = _render(rng.choice(pool), rng)
        if item["question"] not in seen or tries > 100 * n_test:
            seen.add(item["question"])
            item["heldout_template"] = pool is HELDOUT_TEMPLATES
            test.append(item)
    return train, test


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def extract_answer(text: str) -> str | None:
    """The final answer of a response: the number after the last ``####``, else the last number in the text."""
    if "####" in text:
        found = _NUMBER.findall(text.rsplit("####", 1)[1])
        if found:
            return found[0].replace(",", "")
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


def is_correct(response: str, gold: str) -> bool:
    """Whether the response's final answer equals ``gold``, compared by math-verify (so 12, 12.0 and 1,2 agree)."""
    from math_verify import parse, verify

    pred = extract_answer(response)
    if pred is None:
        return False
    try:
        return bool(verify(parse(gold), parse(pred)))
    except Exception:  # math-verify raises on exotic input; a mismatch is the honest verdict
        return pred.strip() == gold.strip()
