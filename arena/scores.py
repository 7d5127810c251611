"""What the suite's scores are: the task and metric of each group, and how per-item scores become the General and
Target composites with standard errors (book/definitions.md A3-A5, S). Pure Python on per-item score lists; running the
tasks is ``evaluate``'s job.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .stats import cluster_mean_se, mean_se, stratified_se

GENERAL = {"bbh": ("arena_bbh", "acc"), "ifeval": ("arena_ifeval", "inst_level_strict_acc"),
           "qa": ("arena_qa", "acc")}
TARGET = {"wordproblems": ("arena_wordproblems", "exact_match"), "arithmetic": ("arena_arithmetic", "acc")}
CHAT_TASKS = ["arena_ifeval", "arena_wordproblems", "arena_wordproblems_gold"]
PLAIN_TASKS = ["arena_bbh", "arena_qa", "arena_qa_gen", "arena_arithmetic"]
# The knowledge group pools its multiple-choice items and, where the screen kept any, its generated ones
QA_TASKS = ("arena_qa", "arena_qa_gen")
# 2: multiple choice scored by acc_norm; every log-likelihood item also keeps its gold answer's bits per byte (":bpb")
# 3: arithmetic by raw log-likelihood (PREFERRED_METRIC); 4: finished rows leave a generation batch, whose size is
# the profile's generation_batch_size (in bf16 a batch's size and make-up can round a near-tie the other way);
# 5: a multiple-choice item is scored by the rule its file records (the screen's choice per candidate)
SCORING_VERSION = 5
# The likelihood twin ("<task>:bpb") of each group: the gold answer's bits per byte, from the group's own items where
# they are scored by log-likelihood, else from a twin task that scores the gold answer (its accuracy is not used).
# IFEval has no gold response, so no twin: General-LL averages BBH and QA.
TWIN_TASKS = {"arena_wordproblems_gold": "arena_wordproblems"}
BPB = ":bpb"
# The paper profile: lm-eval's stock tasks (they differ from the paper's OpenCompass protocol).
STOCK_GENERAL = {"bbh": ("bbh_cot_fewshot", "exact_match"), "ifeval": ("ifeval", "inst_level_strict_acc"),
                 "qa": ("nq_open", "exact_match")}
# The paper's math targets (A3) that lm-eval 0.4.13 ships; AMC23 has no stock task (the paper averages all three).
STOCK_TARGET = {"math500": ("minerva_math500", "math_verify"), "aime24": ("aime24", "exact_match")}
# minerva_math500: symbolic answer checking, as the paper's math_equal. The kit's multiple-choice items name their rule
# (the screen's choice per candidate), which takes precedence (evaluate.run_tasks).
PREFERRED_METRIC = {"minerva_math500": "math_verify"}
# The paper's generation lengths per stock task (A3: 8192 new tokens for math; A4: BBH 512, IFEval 1025, NQ 50); the
# stock YAMLs differ (minerva_math500 sets none, so HFLM stops at 256; aime24 asks for 32768).
# Items in each stock task (lm-eval 0.4.13's test splits) and its number of subtasks: a profile's ``stock_limits``
# count items per subtask (BBH's 27 subtasks share 6,511 items).
STOCK_ITEMS = {"bbh_cot_fewshot": (6511, 27), "ifeval": (541, 1), "nq_open": (3610, 1), "minerva_math500": (500, 1),
               "aime24": (30, 1)}
# BBH's 27 subtasks and their items (lm-eval's bbh/cot_fewshot, the paper's 6,511): the unit a stock slice is drawn in.
BBH_SUBTASK_ITEMS = {name: 250 for name in (
    "boolean_expressions", "date_understanding", "disambiguation_qa", "dyck_languages", "formal_fallacies",
    "geometric_shapes", "hyperbaton", "logical_deduction_five_objects", "logical_deduction_seven_objects",
    "logical_deduction_three_objects", "movie_recommendation", "multistep_arithmetic_two", "navigate",
    "object_counting", "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection",
    "sports_understanding", "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects", "web_of_lies",
    "word_sorting")} | {"causal_judgement": 187, "penguins_in_a_table": 146, "snarks": 178}
STOCK_GEN_TOKENS = {"bbh_cot_fewshot": 512, "ifeval": 1025, "nq_open": 50, "minerva_math500": 8192, "aime24": 8192}


def stock_slices(task: str, seed: int, validation: int = 0, limit: int | None = None) -> dict[str, dict]:
    """The items of stock ``task`` each split scores, per lm-eval (sub)task: ``{name: {"test": [doc ids],
    "validation": [doc ids]}}``. A seeded permutation of each (sub)task's items: its first ``validation`` items are the
    validation split (rewinding's selection, book/definitions.md D5), the next ``limit`` (default: all the rest) the
    test split, so the two never share an item."""
    import random

    prefix = STOCK_GENERAL["bbh"][0]
    sizes = ({f"{prefix}_{k}": n for k, n in BBH_SUBTASK_ITEMS.items()} if task == prefix
             else {task: STOCK_ITEMS[task][0]})
    out = {}
    for name, n in sizes.items():
        order = random.Random(f"{seed}:{name}").sample(range(n), n)
        test = order[validation:] if limit is None else order[validation:validation + limit]
        out[name] = {"validation": sorted(order[:validation]), "test": sorted(test)}
    return out


def stock_task_lists(instruct: bool) -> tuple[list[str], list[str]]:
    """(chat-template tasks, plain tasks) of the stock suite. As the paper (A4): IFEval and NQ always use the chat
    template, BBH only for instruct models; the math targets use it too (the paper's boxed prompts)."""
    chat = [STOCK_GENERAL["ifeval"][0], STOCK_GENERAL["qa"][0], *(t for t, _ in STOCK_TARGET.values())]
    bbh = STOCK_GENERAL["bbh"][0]
    return (chat + [bbh], []) if instruct else (chat, [bbh])


def group_score(items: dict, group: str) -> tuple[float, float]:
    """(score, standard error) of one group, on a 0-1 scale. BBH: mean of subtask means, its error pooled over
    subtasks where one has a single item (``stats.stratified_se``); IFEval: instruction level, its error clustered
    by prompt (``stats.cluster_mean_se``); knowledge: its multiple-choice and generated items pooled."""
    stock = _is_stock(items)
    if group == "bbh":
        prefix = STOCK_GENERAL["bbh"][0] + "_" if stock else "arena_bbh_"
        subs = [v for k, v in sorted(items.items()) if k.startswith(prefix) and ":" not in k]
        return sum(sum(v) / len(v) for v in subs) / len(subs), stratified_se(subs)
    if group == "ifeval":
        return cluster_mean_se(items[("ifeval" if stock else "arena_ifeval") + ":inst"])
    if group == "qa" and not stock:
        return mean_se([x for task in QA_TASKS for x in items.get(task, [])])
    task = ({**STOCK_GENERAL, **STOCK_TARGET} if stock else {**GENERAL, **TARGET})[group][0]
    return mean_se(items[task])


def twin_score(items: dict, group: str) -> tuple[float, float] | None:
    """(mean bits per byte of the gold answers, standard error) of one group's likelihood twin, None where it has none
    (IFEval, or results scored before twins existed). BBH: mean of subtask means, as its accuracy."""
    if group == "bbh":
        subs = [v for k, v in sorted(items.items()) if k.startswith("arena_bbh_") and k.endswith(BPB)]
        return (sum(sum(v) / len(v) for v in subs) / len(subs), stratified_se(subs)) if subs else None
    task = {**GENERAL, **TARGET}[group][0] + BPB
    return mean_se(items[task]) if task in items else None


def is_stock(items: dict) -> bool:
    """Whether per-item scores come from lm-eval's stock tasks (the paper profile) rather than the kit's suite."""
    return _is_stock(items)


def _is_stock(items: dict) -> bool:
    return STOCK_GENERAL["qa"][0] in items


def summarise(items: dict) -> dict:
    """Group scores and the composite General and Target scores (percent), each with a standard error.

    General = mean(BBH, IFEval, QA); Target = mean(word problems, arithmetic).
    Standard errors treat groups as independent: se(mean of g groups) = sqrt(sum se_g^2) / g.
    """
    if _is_stock(items):  # the paper profile: Target = mean of its math benchmarks (A3)
        groups = {g: group_score(items, g) for g in [*STOCK_GENERAL, *STOCK_TARGET]}
        general, target = [groups[g] for g in STOCK_GENERAL], [groups[g] for g in STOCK_TARGET]
    else:
        groups = {g: group_score(items, g) for g in [*GENERAL, *TARGET]}
        general = [groups[g] for g in GENERAL]
        target = [groups[g] for g in TARGET]

    def combine(parts):
        return (100 * sum(m for m, _ in parts) / len(parts),
                100 * math.sqrt(sum(se**2 for _, se in parts)) / len(parts))

    g, g_se = combine(general)
    t, t_se = combine(target)
    out = {"groups": {k: {"score": 100 * m, "se": 100 * se} for k, (m, se) in groups.items()},
           "general": g, "general_se": g_se, "target": t, "target_se": t_se}
    return out | ({"ll": _likelihood_summary(items)} if any(k.endswith(BPB) for k in items) else {})


def _likelihood_summary(items: dict) -> dict:
    """The likelihood twins' composites in bits per byte of the gold answers (lower is better), with standard errors
    as ``summarise``'s: General-LL = mean(BBH, QA) (IFEval has no gold answer); Target-LL = mean(word problems,
    arithmetic)."""
    twins = {g: twin_score(items, g) for g in [*GENERAL, *TARGET]}
    twins = {g: v for g, v in twins.items() if v is not None}

    def mean(parts):
        return sum(m for m, _ in parts) / len(parts), math.sqrt(sum(se**2 for _, se in parts)) / len(parts)

    general = mean([twins[g] for g in GENERAL if g in twins])
    target = mean([twins[g] for g in TARGET])
    return {"groups": {g: {"bpb": m, "se": se} for g, (m, se) in twins.items()},
            "general": general[0], "general_se": general[1], "target": target[0], "target_se": target[1]}


def resummarised(metrics: dict | None) -> dict | None:
    """A stored evaluation with its summary recomputed from its per-item scores, so a change in how scores and their
    errors are summarised (``summarise``) reaches stored runs without rescoring them."""
    if not metrics or "items" not in metrics:
        return metrics
    return {**metrics, **summarise(metrics["items"])}


def chance_level(items_file: Path) -> float:
    """Expected accuracy of uniform guessing on a JSONL task file: the mean of 1/#options, or 0 for free-form
    targets (guessing scores about nothing)."""
    rows = [json.loads(line) for line in Path(items_file).read_text().splitlines() if line.strip()]
    if "choices" not in rows[0]:
        return 0.0
    return sum(1 / len(r["choices"]) for r in rows) / len(rows)


def paired_difference(items_a: dict, items_b: dict) -> dict:
    """Score differences a - b on the same items (book/definitions.md A5), with paired standard errors.

    Every score is a (nested) mean of per-item scores, so the difference of the summaries is the summary of the per-item
    differences, and its standard error comes from those differences: far smaller than combining two independent
    errors, because both models answer the same questions.
    """
    diff = {}
    for task, a in items_a.items():
        if task not in items_b:  # a likelihood twin that only one side has (scored before twins existed)
            continue
        b = items_b[task]
        if task.endswith(":inst"):
            diff[task] = [[x - y for x, y in zip(pa, pb)] for pa, pb in zip(a, b)]
        else:
            diff[task] = [x - y for x, y in zip(a, b)]
    return summarise(diff)
