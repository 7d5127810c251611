"""The base-only screen that chooses which candidates the suite scores (book/definitions.md S).

A yardstick the base answers at chance cannot show forgetting, and a generated family can sit at chance at one
difficulty and well above it at another. Inspired by the noisy-subtask filter of Heineman et al. (2025), the screen
scores the **base** (never a trained model; always in full precision, so 4-bit and full-precision runs share one suite)
on seeded items of every candidate (``suite.write_screen``: ``Profile.screen`` per candidate, a quarter of a finite
source at most), drawn apart from the test and validation items. For each candidate it takes the better of two scoring
rules, raw log-likelihood (``acc``) and log-likelihood per character (``acc_norm``), and keeps the candidate when

    z = (acc - c) / sqrt(c (1 - c) / m) >= SCREEN_Z = 2      (c: chance, m: screen items)

An at-chance candidate passes that bar about 2-4 % of the time (one-sided normal tail, doubled for the choice of rule),
where a 1-SE bar on 24 items kept it 12-20 % of the time. A reasoning family keeps its passing setting with the
largest z (ties: the harder); a group none of whose candidates passes keeps them all (each family at its easiest
setting) so that its meaning survives, and its base score then sits at chance for everyone to see (chapter 00).

Choosing the best of three settings and two rules lets an at-chance family through about 10 % of the time, so each
candidate chosen from an unbounded generator is then **confirmed** on as many fresh items
(``suite.write_confirmation``), under its chosen rule, at the same bar (``confirm``): one pre-chosen test. A finite
source (a fact table, a small reasoning setting, 1-digit arithmetic) has no items to spare and is not confirmed; the
test items, which neither stage saw, show whether every choice holds: chapter 00 shows each group's base score
against chance in SEs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from pathlib import Path

from .evaluate import hf_language_model, run_tasks, score_aside, spare_core
from .groups import family
from .itemfiles import read_jsonl
from .models import load_base, release_memory
from .suite import _parts, screen_dir, screen_result, write_confirmation, write_screen

SCREEN_Z = 2.0
FLOOR = 0.10  # a generated answer's floor: one in ten exact (chance is zero; a few lucky answers are not knowledge)
RULES = ("acc", "acc_norm")  # the first wins a tie: raw log-likelihood is the simpler rule
# In fp32 and at a fixed batch, not the profile's scoring settings: in bf16 a batch's padding can flip a near-tie,
# and the screen's choice must not move with a setting or a machine.
SCREEN_BATCH = 8


def z_score(accuracy: float, chance: float, items: int) -> float:
    """How many standard errors of guessing ``accuracy`` lies above ``chance`` on ``items`` items."""
    return (accuracy - chance) / math.sqrt(chance * (1 - chance) / items)


def decide(scores: dict[str, dict[str, dict[str, list[float]]]], chance: dict[str, dict[str, float]],
           one_per_family: set[str] = frozenset(), z: float = SCREEN_Z, optional: set[str] = frozenset()) -> dict:
    """Pure: ``scores[group][candidate][rule]`` = the base's per-item screen scores under each rule, ``chance`` by
    group and candidate. Returns ``{"kept": {group: {candidate: {"rule": r}}}, "rows": [per candidate: group,
    candidate, items, chance, accuracy under each rule, rule, accuracy, z, passed, kept], "whole": [groups kept whole
    because no candidate passed], "z": z}``. A free-form candidate (chance 0) passes at ``FLOOR`` correct answers; an
    ``optional`` group with no passing candidate keeps none."""
    kept, rows, whole = {}, [], []
    for group, candidates in scores.items():
        judged = {}
        for name, by_rule in candidates.items():
            c, m = chance[group][name], len(next(iter(by_rule.values())))
            means = {r: sum(v) / m for r, v in by_rule.items()}
            rule = max((r for r in RULES if r in means), key=lambda r: (means[r], -RULES.index(r)))
            # free-form answers (chance 0): a floor of correct answers, not a margin over guessing
            score = z_score(means[rule], c, m) if c > 0 else float("nan")
            judged[name] = {"group": group, "candidate": name, "items": m, "chance": c,
                            **{f"accuracy_{r}": means[r] for r in means}, "rule": rule, "accuracy": means[rule],
                            "z": score, "passed": score >= z if c > 0 else means[rule] >= FLOOR}
        passed = [n for n, row in judged.items() if row["passed"]]
        if group in one_per_family:  # the passing setting with the largest margin; a tie goes to the harder one
            best, margin = {}, lambda n: judged[n]["z"] if judged[n]["chance"] > 0 else judged[n]["accuracy"]
            for n in passed:
                if family(n) not in best or margin(n) >= margin(best[family(n)]):
                    best[family(n)] = n
            passed = [n for n in judged if n in best.values()]
        if not passed and group in optional:  # a variant kept only where the base is above its floor
            kept[group] = {}
            rows += [{**row, "kept": False} for row in judged.values()]
            continue
        if not passed:
            whole.append(group)
            passed = _whole(judged, group in one_per_family)
        kept[group] = {n: {"rule": judged[n]["rule"]} for n in passed}
        rows += [{**row, "kept": n in kept[group]} for n, row in judged.items()]
    return {"kept": kept, "rows": rows, "whole": whole, "z": z}


def _whole(judged: dict[str, dict], per_family: bool) -> list[str]:
    """A group none of whose candidates holds: every candidate, or each family's first (easiest) setting."""
    return [n for n in judged if not per_family or n == next(m for m in judged if family(m) == family(n))]


def confirm(outcome: dict, scores: dict[str, dict[str, list[float]]], chance: dict[str, dict[str, float]],
            one_per_family: set[str] = frozenset(), optional: set[str] = frozenset(), z: float | None = None) -> dict:
    """Pure: the screen's ``outcome`` (``decide``) after a confirmation. ``scores[group][candidate]`` = the base's
    per-item scores on fresh items under the rule the screen chose, ``chance`` likewise. A kept candidate with such
    items stays kept only where

        z_confirm = (acc - c) / sqrt(c (1 - c) / m) >= z

    on them (``z``: the screen's bar, ``outcome["z"]``): one pre-chosen test, so a candidate that passed the screen by
    the luck of the best of several settings and rules (an at-chance family is picked that way about 10 % of the time)
    stays about 2 % of that. Every row gains ``confirm_items``, ``confirm_accuracy``, ``confirm_z`` and ``confirmed``
    (None where nothing was confirmed: a candidate not kept, a finite source, a group already kept whole); a group left
    with nothing is kept whole, or dropped when ``optional``, as by ``decide``. A family whose chosen setting fails is
    dropped, not replaced by its next setting: that would be a second choice, tested again by luck."""
    z = outcome.get("z", SCREEN_Z) if z is None else z
    kept = {g: dict(c) for g, c in outcome["kept"].items()}
    rows, whole = [], list(outcome["whole"])
    for row in outcome["rows"]:
        group, name = row["group"], row["candidate"]
        values = scores.get(group, {}).get(name)
        if not values or not row["kept"] or group in outcome["whole"]:
            rows.append({**row, "confirm_items": 0, "confirm_accuracy": None, "confirm_z": None, "confirmed": None})
            continue
        c, m = chance[group][name], len(values)
        accuracy = sum(values) / m
        score = z_score(accuracy, c, m) if c > 0 else float("nan")
        held = score >= z if c > 0 else accuracy >= FLOOR
        rows.append({**row, "confirm_items": m, "confirm_accuracy": accuracy, "confirm_z": score, "confirmed": held})
        if not held:
            kept[group].pop(name)
    for group in outcome["kept"]:
        if kept.get(group) or group in whole:
            continue
        if group in optional:
            kept[group] = {}
            continue
        whole.append(group)
        judged = {r["candidate"]: r for r in rows if r["group"] == group}
        kept[group] = {n: {"rule": judged[n]["rule"]} for n in _whole(judged, group in one_per_family)}
    rows = [{**r, "kept": r["candidate"] in kept[r["group"]]} for r in rows]
    return {**outcome, "kept": kept, "rows": rows, "whole": whole}


def run_screen(profile) -> dict[str, dict]:
    """The profile's screen, one outcome per part (General, the domain), each computed once and stored in its folder
    (``suite.screen_dir``, ``result.json``)."""
    parts = dict(_parts(profile))
    todo = [p for p in parts if not (screen_dir(profile, p) / "result.json").exists()]
    if todo:
        model, tokenizer = load_base(profile.model, None)
        lm = hf_language_model(model, tokenizer, SCREEN_BATCH, bf16=False)
        for part in todo:
            _screen_part(profile, part, parts[part], lm, tokenizer)
        del model, lm
        release_memory()  # chapter 00 loads the next model
    return {p: screen_result(profile, p) for p in parts}


def _screen_part(profile, part, groups, lm, tokenizer) -> None:
    folder = write_screen(profile, part)
    tasks = sorted({g.task(c) for g in groups for c in g.candidates})
    # two fixed halves, each its own lm-eval call wherever it runs, so the batches (and the choice) never depend on
    # whether a second core scored one of them
    halves = [tasks[0::2], tasks[1::2]]
    aside = (score_aside(functools.partial(load_base, profile.model, None), halves[1], folder, False, SCREEN_BATCH,
                         bf16=False) if profile.score_aside and spare_core() and halves[1]
             else contextlib.nullcontext(lambda: run_tasks(lm, tokenizer, halves[1], folder, chat=False)
                                         if halves[1] else {}))
    with aside as second_half:
        items = run_tasks(lm, tokenizer, halves[0], folder, chat=False) | second_half()
    scores, chance = by_candidate(groups, items, folder)
    per_family, optional = {g.name for g in groups if g.one_per_family}, {g.name for g in groups if g.optional}
    out = decide(scores, chance, per_family, optional=optional)
    fresh = write_confirmation(profile, part, {g: c for g, c in out["kept"].items() if g not in out["whole"]})
    tasks = sorted({g.task(c) for g in groups for c in g.candidates if (fresh / g.file(c)).exists()})
    items = run_tasks(lm, tokenizer, tasks, fresh, chat=False) if tasks else {}
    scores, chance = by_candidate([g for g in groups if g.name in out["kept"]], items, fresh, confirmation=True)
    out = confirm(out, scores, chance, per_family, optional)
    out |= {"base": profile.model.name, "items_per_candidate": profile.screen, "part": part}
    (folder / "result.json").write_text(json.dumps(out, indent=1))


def by_candidate(groups, items: dict, folder: Path, confirmation: bool = False) -> tuple[dict, dict]:
    """Per-item screen scores under each rule (``confirmation``: under the rule each item records), and chance levels,
    by group and candidate: a task's scores are in its file's row order, and each row names its candidate. A
    confirmation holds only the candidates it drew."""
    scores, chance = {}, {}
    for group in groups:
        scores[group.name], chance[group.name] = {}, {}
        for c in group.candidates:
            if not (folder / group.file(c)).exists():
                continue
            task, rows = group.task(c), read_jsonl(folder / group.file(c))
            mine = [i for i, r in enumerate(rows) if r["candidate"] == c]
            if not mine:
                continue
            if confirmation:
                scores[group.name][c] = [items[task][i] for i in mine]
            else:
                scores[group.name][c] = {r: [items[f"{task}:{r}"][i] for i in mine] for r in RULES
                                         if f"{task}:{r}" in items}  # a free-form task has one rule
            chance[group.name][c] = sum(1 / len(rows[i]["choices"]) if "choices" in rows[i] else 0.0
                                        for i in mine) / len(mine)
    return scores, chance


def screen_table(profile) -> "pd.DataFrame | None":
    """The screen's decisions (percent) for every part, or None for a profile without one."""
    import pandas as pd

    if not profile.screened:
        return None
    rows = [row for part, _ in _parts(profile) for row in screen_result(profile, part)["rows"]]
    frame = pd.DataFrame(rows)
    for column in [c for c in frame.columns if c.startswith("accuracy") or c in ("chance", "confirm_accuracy")]:
        frame[column] = 100 * frame[column]
    return frame.set_index(["group", "candidate"])
