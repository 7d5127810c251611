"""A domain is the target of finetuning: its training data, its Target groups and their files (book/definitions.md
A2-A3). The General suite never depends on one (``suite`` builds and keys the two apart), so a second domain plugs in
as one more ``Domain``.

- **math**: generated word problems (``wordproblems``; training templates, and a test set half from templates never
  trained on), and generated arithmetic as the out-of-distribution check (``arithmetic``; screened candidates).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import arithmetic
from .errors import ArenaError
from .groups import Group, write_group
from .itemfiles import write_jsonl
from .wordproblems import make_problems


@dataclass(frozen=True)
class Domain:
    name: str
    version: int  # bump when a file's content or format changes
    groups: tuple[Group, ...]  # the screened Target groups
    # (profile, split, folder, kept: {group: {candidate: {"rule": ...}}}, screen folder or None, test folder or None)
    write: Callable


ARITHMETIC = Group("arithmetic", arithmetic.CANDIDATES, lambda c, n, rng, exclude: arithmetic.items(c, n, rng, exclude),
                   lambda c: "arithmetic.jsonl", lambda c: "arena_arithmetic", capacity=arithmetic.capacity)


def arithmetic_items(profile) -> int:
    """The arithmetic group's test items: ``n_arithmetic``, or 2 ``n_target_ood`` where the profile leaves it unset."""
    return profile.n_arithmetic if profile.n_arithmetic is not None else 2 * profile.n_target_ood


def per_candidate(n_items: int, kept: list) -> int:
    """Items per kept candidate: the group holds about ``n_items`` however many the screen keeps."""
    return -(-n_items // max(1, len(kept)))


def _write_math(profile, split: str, out: Path, kept: dict, screen: Path | None, test: Path | None) -> None:
    val = split == "validation"
    train, both = make_problems(profile.n_train, profile.n_target_test + (profile.val_n_target if val else 0),
                                seed=profile.seed)
    if val:  # the same generator continued past the test items: none in training or test
        known = {r["question"] for r in train} | {r["question"] for r in both[:profile.n_target_test]}
        problems = [r for r in both[profile.n_target_test:] if r["question"] not in known]
        write_jsonl(out / "wordproblems_test.jsonl", problems)
        write_jsonl(out / "wordproblems_gold.jsonl", problems)  # a few dozen: every one keeps its twin
    else:
        write_jsonl(out / "wordproblems_train.jsonl", train)
        write_jsonl(out / "wordproblems_test.jsonl", both)
        write_jsonl(out / "wordproblems_gold.jsonl", both[:profile.n_target_twin])  # the Target-LL twin's items
    rng = random.Random(profile.seed + (7919 if val else 0))
    kept = kept["arithmetic"]
    n = per_candidate(2 * profile.val_n_ood if val else arithmetic_items(profile), kept)
    reserve = 0 if val else per_candidate(2 * profile.val_n_ood, kept)
    write_group(ARITHMETIC, kept, n, reserve, rng, out, screen, test)


MATH = Domain("math", 1, (ARITHMETIC,), _write_math)
DOMAINS = {"math": MATH}


def get_domain(name: str) -> Domain:
    if name not in DOMAINS:
        raise ArenaError(f"unknown domain {name!r}; choose one of: {', '.join(DOMAINS)}")
    return DOMAINS[name]


def domain_key(profile) -> list:
    """What determines a domain's test files (its validation folder adds the validation sizes)."""
    return [get_domain(profile.domain).version, profile.domain, profile.n_train, profile.n_target_test,
            profile.n_target_twin, arithmetic_items(profile), profile.seed]


def training_data_name(profile) -> str:
    """What determines the training problems of a CPU profile (the first ``n_train`` of ``make_problems`` at the
    profile's seed), apart from the evaluation files beside them: a training key names this, so a change to the
    evaluation suite rescores stored runs without retraining them."""
    key = json.dumps([1, profile.n_train, profile.seed] + ([] if profile.domain == "math" else [profile.domain]))
    return "train-" + hashlib.sha256(key.encode()).hexdigest()[:12]
