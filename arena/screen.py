"""The base-only screen that chooses which candidate subtasks the suite scores (book/definitions.md S).

A group the base answers at chance cannot show forgetting, and at 135M many BBH subtasks and arithmetic tasks sit at
chance. Following the noisy-subtask filter of Heineman et al. (2025), the screen scores the **base** (never a trained
model; always in full precision, so 4-bit and full-precision runs share one suite) on ``Profile.screen`` seeded items of
every candidate subtask, drawn apart from the test and validation items (``suite.write_screen``), and keeps a candidate
when its screen accuracy clears chance by ``SCREEN_Z`` standard errors of guessing:

    keep  iff  acc >= c + z * sqrt(c (1 - c) / m)      (c: chance, m: items; free-form, c = 0: any correct item)

A group none of whose candidates passes keeps them all, so that its meaning survives, and its base score then sits at
chance for everyone to see (chapter 00). The outcome is written once per screen folder (``suite.screen_dir``,
``suite.screen_result``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from pathlib import Path

from .evaluate import hf_language_model, run_tasks, score_aside, spare_core
from .models import load_base
from .scores import chance_level
from .suite import BBH_TASKS, SCREEN_GROUPS, bbh_id, read_jsonl, screen_dir, screen_result, write_screen

SCREEN_Z = 1.0
# In fp32 and at a fixed batch, not the profile's scoring settings: in bf16 a batch's padding can flip a near-tie,
# and the screen's choice must not move with a setting or a machine.
SCREEN_BATCH = 8


def threshold(chance: float, items: int, z: float = SCREEN_Z) -> float:
    """The screen accuracy a candidate must reach: chance plus ``z`` standard errors of guessing on ``items``."""
    return chance + z * math.sqrt(chance * (1 - chance) / items)


def decide(scores: dict[str, dict[str, list[float]]], chance: dict[str, dict[str, float]],
           z: float = SCREEN_Z) -> dict:
    """Pure: ``scores[group][candidate]`` = the base's per-item screen scores, ``chance`` alike. Returns ``{"kept":
    {group: [candidates]}, "rows": [per candidate: group, candidate, items, accuracy, chance, threshold, kept],
    "whole": [groups kept whole because no candidate passed]}``."""
    kept, rows, whole = {}, [], []
    for group, candidates in scores.items():
        passed = []
        for name, values in candidates.items():
            c, m = chance[group][name], len(values)
            accuracy, bar = sum(values) / m, threshold(chance[group][name], m, z)
            ok = accuracy > 0 if c == 0 else accuracy >= bar
            passed += [name] if ok else []
            rows.append({"group": group, "candidate": name, "items": m, "accuracy": accuracy, "chance": c,
                         "threshold": bar, "kept": ok})
        kept[group] = passed or list(candidates)
        whole += [] if passed else [group]
    return {"kept": kept, "rows": rows, "whole": whole, "z": z}


def run_screen(profile) -> dict:
    """The profile's screen, computed once and stored in its folder (``suite.screen_dir``, ``result.json``)."""
    folder = screen_dir(profile)
    result = folder / "result.json"
    if result.exists():
        return json.loads(result.read_text())
    write_screen(profile)
    model, tokenizer = load_base(profile.model, None)
    tasks = [f"arena_bbh_{bbh_id(n)}" for n in BBH_TASKS] + ["arena_arithmetic"]
    # two fixed halves, each its own lm-eval call wherever it runs, so the batches (and the choice) never depend on
    # whether a second core scored one of them
    halves = [tasks[0::2], tasks[1::2]]
    lm = hf_language_model(model, tokenizer, SCREEN_BATCH, bf16=False)
    aside = (score_aside(functools.partial(load_base, profile.model, None), halves[1], folder, False, SCREEN_BATCH,
                         bf16=False) if profile.score_aside and spare_core()
             else contextlib.nullcontext(lambda: run_tasks(lm, tokenizer, halves[1], folder, chat=False)))
    with aside as second_half:
        items = run_tasks(lm, tokenizer, halves[0], folder, chat=False) | second_half()
    scores, chance = _by_candidate(items, folder)
    out = decide(scores, chance) | {"base": profile.model.name, "items_per_candidate": profile.screen}
    result.write_text(json.dumps(out, indent=1))
    return out


def _by_candidate(items: dict, folder: Path) -> tuple[dict, dict]:
    """Per-item screen scores and chance levels by group and candidate (arithmetic's items carry their subtask)."""
    scores = {"bbh": {n: items[f"arena_bbh_{bbh_id(n)}"] for n in BBH_TASKS}}
    chance = {"bbh": {n: chance_level(folder / "bbh" / f"{bbh_id(n)}.jsonl") for n in BBH_TASKS}}
    rows = read_jsonl(folder / "arithmetic.jsonl")
    scores["arithmetic"] = {t: [s for s, r in zip(items["arena_arithmetic"], rows) if r["subtask"] == t]
                            for t in SCREEN_GROUPS["arithmetic"]}
    chance["arithmetic"] = {t: sum(1 / len(r["choices"]) for r in rows if r["subtask"] == t)
                            / sum(r["subtask"] == t for r in rows) for t in SCREEN_GROUPS["arithmetic"]}
    return scores, chance


def screen_table(profile) -> "pd.DataFrame | None":
    """The screen's decisions (percent), or None for a profile without one."""
    import pandas as pd

    result = screen_result(profile)
    if result is None:
        return None
    frame = pd.DataFrame(result["rows"])
    for column in ("accuracy", "chance", "threshold"):
        frame[column] = 100 * frame[column]
    return frame.set_index(["group", "candidate"])
