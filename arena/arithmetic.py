"""Generated arithmetic, the math domain's out-of-distribution check: "What is 47 plus 38?" as multiple choice.

The training data are word problems (``wordproblems``); bare arithmetic is a shape the model never trains on. Each
candidate is an operation at a number of digits (the difficulty knob); a base-only screen keeps the candidates the base
answers above chance (``screen``). Distractors are near misses of the answer (off by one, by ten, digits swapped),
so a model must compute rather than pick the only plausible size. Seeded; nothing is downloaded.
"""

from __future__ import annotations

import random

from .errors import ArenaError
from .itemfiles import norm

OPERATIONS = {"addition": ("plus", lambda a, b: a + b), "subtraction": ("minus", lambda a, b: a - b),
              "multiplication": ("times", lambda a, b: a * b)}
DIGITS = (1, 2)
OPTIONS = 4
# The screen's candidates: "<operation>@<digits>", easiest first within each operation.
CANDIDATES = tuple(f"{op}@{d}" for op in OPERATIONS for d in DIGITS)


def parse(candidate: str) -> tuple[str, int]:
    """``"addition@2"`` -> ("addition", 2); an unknown candidate is a one-line error naming the choices."""
    op, _, digits = candidate.partition("@")
    if op not in OPERATIONS or not digits.isdigit() or int(digits) not in DIGITS:
        raise ArenaError(f"unknown arithmetic candidate {candidate!r}; choose one of: {', '.join(CANDIDATES)}")
    return op, int(digits)


def capacity(candidate: str) -> int | None:
    """The distinct questions a candidate holds: 100 at one digit (operands 0-9), None (unbounded for any draw the kit
    makes) at more."""
    return 100 if parse(candidate)[1] == 1 else None


def _near_misses(answer: int, rng: random.Random) -> list[int]:
    misses = {answer + 1, answer - 1, answer + 10, answer - 10, answer + 2, answer - 2}
    if abs(answer) >= 10:
        misses.add(int(str(abs(answer))[::-1]) * (1 if answer >= 0 else -1))
    misses.discard(answer)
    return rng.sample(sorted(misses), OPTIONS - 1)


def make_item(candidate: str, rng: random.Random) -> dict:
    """One item {"input", "choices", "gold", "subtask"}: two operands of ``digits`` digits (a difference may be
    negative, so each 1-digit operation holds 100 distinct questions), the answer among ``OPTIONS`` - 1 near
    misses."""
    op, digits = parse(candidate)
    low, high = (0 if digits == 1 else 10 ** (digits - 1)), 10 ** digits - 1
    a, b = rng.randint(low, high), rng.randint(low, high)
    word, fn = OPERATIONS[op]
    answer = fn(a, b)
    choices = [answer, *_near_misses(answer, rng)]
    rng.shuffle(choices)
    return {"input": f"Question: What is {a} {word} {b}?", "choices": [str(c) for c in choices],
            "gold": choices.index(answer), "subtask": candidate}


def items(candidate: str, n: int, rng: random.Random, exclude: set | frozenset = frozenset()) -> list[dict]:
    """Up to ``n`` items of one candidate, distinct by input and none in ``exclude``: a 1-digit candidate holds 100
    questions, so a draw past what the screen and the other split left returns fewer (the caller records how many)."""
    out, seen = [], set(exclude)
    for _ in range(50 * n + 100):
        if len(out) == n:
            break
        item = make_item(candidate, rng)
        if norm(item["input"]) not in seen:
            seen.add(norm(item["input"]))
            out.append(item)
    return out
