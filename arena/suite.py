"""Builds the embedded evaluation data (seeded JSONL files) that the lm-eval tasks in ``arena/tasks/`` read.

General capability (stability), book/definitions.md A4 rebuilt offline:
- **BBH**: the 24 BBH subtasks that have a BIG-bench ``task.json``; lm-eval's 3 chain-of-thought exemplars per task are
  excluded. Multiple-choice subtasks are scored by log-likelihood; the free-form ones (object_counting, word_sorting,
  dyck_languages) by greedy exact match of the target (teacher-forced, one forward pass).
- **IFEval-style**: prompts written by the kit; each instruction text comes from lm-eval's own IFEval checker
  (``build_description``), so the instruction-level strict score is lm-eval's.
- **Closed-book QA** (NQ analogue): BIG-bench ``qa_wikidata`` facts as 4-way multiple choice, the three distractors
  drawn from other answers to the same relation ("The capital of ..."): a 135M model cannot produce NQ's exact-match
  answers (0 of 40 on the earlier generative version), so the group measured nothing.

With ``Profile.screen`` set, a base-only screen (``arena/screen.py``) first scores each candidate BBH and arithmetic
subtask on its own seeded items, and the suite keeps the subtasks the base does above chance; test and validation items
are drawn apart from the screen's.

Target (plasticity), math: held-out generated word problems, plus BIG-bench arithmetic and elementary_math_qa as
out-of-distribution checks.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import random
import re
from pathlib import Path

from .assets import bigbench_tasks, cache_dir, load_bigbench
from .errors import ArenaError
from .offline_nltk import ifeval_module
from .profiles import Profile
from .wordproblems import make_problems

SUITE_VERSION = 7  # bump when any file's content or format changes; 3: QA as multiple choice, the base-only screen;
# 4: 1-digit arithmetic among the screen's candidates, distinct IFEval prompts over 48 topics; 5: arithmetic scored
# by raw log-likelihood, 2 n_target_ood items over the kept tasks; 6: arithmetic's size a field of its own
# (n_arithmetic), a kept task's test draw capped to leave the validation split its items; 7: the word problems' twin
# reads its own file (n_target_twin)
TRAIN_DATA_VERSION = 1  # bump when the training problems' content or format changes (wordproblems.make_problems)

BBH_TASKS = [
    "causal_judgment", "date_understanding", "disambiguation_qa", "dyck_languages",
    "formal_fallacies_syllogisms_negation", "geometric_shapes", "hyperbaton", "logical_deduction/three_objects",
    "logical_deduction/five_objects", "logical_deduction/seven_objects", "movie_recommendation", "navigate",
    "object_counting", "penguins_in_a_table", "reasoning_about_colored_objects", "ruin_names",
    "salient_translation_error_detection", "snarks", "sports_understanding", "temporal_sequences",
    "tracking_shuffled_objects/three_objects", "tracking_shuffled_objects/five_objects",
    "tracking_shuffled_objects/seven_objects", "word_sorting",
]
# lm-eval's exemplar files use BBH's names.
LM_EVAL_BBH_NAME = {"causal_judgment": "causal_judgement", "formal_fallacies_syllogisms_negation": "formal_fallacies"}
# The screen's arithmetic candidates. The 1-digit tasks joined in suite version 4: the base answers 2- and 3-digit
# tasks below chance (0-4 % against 14 %, preferring the one-digit distractors). 1_digit_division has 23 examples, too
# few for the screen, test and validation draws.
ARITHMETIC_TASKS = ["arithmetic/1_digit_addition", "arithmetic/1_digit_subtraction",
                    "arithmetic/1_digit_multiplication", "arithmetic/2_digit_addition", "arithmetic/2_digit_subtraction",
                    "arithmetic/2_digit_multiplication", "arithmetic/3_digit_addition"]
# Free-form in BBH; dyck_languages lists 84 closing sequences as "options", which greedy exact match scores in one pass.
GREEDY_BBH = {"object_counting", "word_sorting", "dyck_languages"}
EMQA_TASK = "elementary_math_qa/question_only"
QA_TASK = "qa_wikidata"

GENERAL_TEXT_TASKS = ["causal_judgment", "penguins_in_a_table", "salient_translation_error_detection", "snarks"]
ALL_BIGBENCH_TASKS = [*BBH_TASKS, *ARITHMETIC_TASKS, EMQA_TASK, QA_TASK]

# 48 topics (12 before suite version 4): with 13 instructions, 12 topics gave 156 distinct one-instruction prompts, and
# a few hundred draws repeat many of them (a repeated prompt is the same greedy generation, not a new item).
TOPICS = ["the ocean", "a rainy day", "your favourite food", "learning to ride a bike", "the moon", "a busy market",
          "autumn leaves", "a long train journey", "a small garden", "the history of maps", "city parks", "a good book",
          "a mountain hike", "the first day of school", "a winter morning", "a village bakery", "bees and flowers",
          "an old bridge", "a night sky full of stars", "a football match", "the smell of coffee", "a lighthouse",
          "a library", "learning a new language", "a desert road", "a birthday party", "a thunderstorm",
          "a fishing boat", "the kitchen at dinner time", "a museum visit", "a snowy forest", "a bicycle repair shop",
          "a river in spring", "a quiet beach", "the invention of the wheel", "a music lesson", "a farmers' market",
          "a camping trip", "an airport at night", "a chess game", "a paper kite", "a rooftop garden",
          "a clock tower", "a school science fair", "the first snow", "a train station cafe", "a pet cat",
          "a summer festival"]
# (instruction id, kwargs) pairs whose checkers work offline (the kit ships an untrained NLTK sentence model: no
# checkers that need a trained one).
IFEVAL_SPECS = [
    ("punctuation:no_comma", {}),
    ("change_case:english_lowercase", {}),
    ("change_case:english_capital", {}),
    ("keywords:existence", {"keywords": ["river", "light"]}),
    ("keywords:forbidden_words", {"forbidden_words": ["very", "good"]}),
    ("length_constraints:number_words", {"num_words": 40, "relation": "less than"}),
    ("length_constraints:number_words", {"num_words": 30, "relation": "at least"}),
    ("detectable_format:title", {}),
    ("startend:end_checker", {"end_phrase": "Is there anything else I can help with?"}),
    ("startend:quotation", {}),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}),
    ("detectable_format:json_format", {}),
]


def bbh_id(name: str) -> str:
    return name.replace("/", "_")


def suite_dir(profile: Profile) -> Path:
    """Where this profile's evaluation files live: keyed by the sizes and seed that determine their content, and, when
    a screen chooses the subtasks, by the screen's size and the base it screens."""
    fields = [SUITE_VERSION, profile.n_train, profile.n_target_test, profile.n_target_ood, profile.bbh_per_task,
              profile.n_ifeval, profile.n_qa, profile.n_ce_docs, profile.seed, arithmetic_items(profile),
              profile.n_target_twin]
    if profile.screened:
        fields += [screen_dir(profile).name]  # the screen's choice (its items, its base)
    return cache_dir() / "suites" / hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:12]


# The screen's candidates per group: every BBH subtask and every arithmetic task (elementary_math_qa is one task).
SCREEN_GROUPS = {"bbh": BBH_TASKS, "arithmetic": ARITHMETIC_TASKS}
SCREEN_SEED = 104729  # the screen's own random stream (test and validation items exclude its items)
# The screen's own version: its candidates, items and scoring. Bump it with SUITE_VERSION when a change reaches them;
# a change to the suite's other files alone (suite version 7) leaves the stored screen valid. 6: the suite version of
# its last change, so screens stored before the split keep their folder.
SCREEN_VERSION = 6


def screen_dir(profile: Profile) -> Path:
    """Where the screen's items and outcome live: keyed by what determines them (its size, seed and base; it scores in
    fp32 on every machine), not by the suite's sizes, so resizing the suite keeps the screen."""
    key = json.dumps([SCREEN_VERSION, profile.screen, profile.seed, dataclasses.asdict(profile.model)])
    return cache_dir() / "screens" / hashlib.sha256(key.encode()).hexdigest()[:12]


def write_screen(profile: Profile) -> Path:
    """The screen's items: ``profile.screen`` seeded items of every candidate, laid out as a suite folder (``bbh/``
    per subtask; ``arithmetic.jsonl`` with each item's ``subtask``), so the same lm-eval tasks score them."""
    out = screen_dir(profile)
    if (out / "ITEMS").exists():
        return out
    (out / "bbh").mkdir(parents=True, exist_ok=True)
    bigbench_tasks(ALL_BIGBENCH_TASKS)
    rng = random.Random(profile.seed + SCREEN_SEED)
    for name in BBH_TASKS:
        _write(out / "bbh" / f"{bbh_id(name)}.jsonl", _bbh_items(name, profile.screen, rng))
    _write(out / "arithmetic.jsonl", [{**_mc_item(e, ""), "subtask": t} for t in ARITHMETIC_TASKS
                                      for e in _sample_examples(t, profile.screen, rng)])
    (out / "ITEMS").write_text(json.dumps({"version": SCREEN_VERSION, "items_per_candidate": profile.screen}))
    return out


def screen_result(profile: Profile) -> dict | None:
    """The screen's outcome (``arena/screen.py`` writes it), or None for a profile without a screen."""
    if not profile.screened:
        return None
    path = screen_dir(profile) / "result.json"
    if not path.exists():
        raise ArenaError(f"the suite of profile {profile.name!r} keeps the subtasks a base-only screen chooses, and "
                         f"the screen has not run: python -m arena assets --profile {profile.name}")
    return json.loads(path.read_text())


def _screened_inputs(profile: Profile, file: str) -> set[str]:
    """Normalised inputs of the screen's items in ``file``, which test and validation items never reuse."""
    path = screen_dir(profile) / file
    return {_norm(r["input"]) for r in read_jsonl(path)} if profile.screened and path.exists() else set()


def training_data_name(profile: Profile) -> str:
    """What determines the training problems of a CPU profile (the first ``n_train`` of ``make_problems`` at the
    profile's seed), apart from the evaluation files beside them: a training key names this, so a change to the
    evaluation suite rescores stored runs without retraining them."""
    key = json.dumps([TRAIN_DATA_VERSION, profile.n_train, profile.seed])
    return "train-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def build_suite(profile: Profile) -> Path:
    """Write every JSONL file of the embedded suite (idempotent: an existing complete suite is reused). A profile that
    scores lm-eval's stock tasks (the paper profile) needs only the general text of the cross-entropy proxy."""
    out = suite_dir(profile)
    if (out / "DONE").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    if profile.uses_stock_tasks:
        bigbench_tasks(GENERAL_TEXT_TASKS)
        _write(out / "general_text.jsonl", _general_text(profile.n_ce_docs, random.Random(profile.seed)))
        (out / "DONE").write_text(json.dumps({"version": SUITE_VERSION, "profile": profile.name}))
        return out
    kept = kept_subtasks(profile)
    (out / "bbh").mkdir(parents=True, exist_ok=True)
    bigbench_tasks(ALL_BIGBENCH_TASKS)  # one pass over the 358 MB sdist for every missing file, not one per task
    rng = random.Random(profile.seed)
    for name in kept["bbh"]:
        seen = _screened_inputs(profile, f"bbh/{bbh_id(name)}.jsonl")
        _write(out / "bbh" / f"{bbh_id(name)}.jsonl", _bbh_items(name, profile.bbh_per_task, rng, seen))
    _write(out / "ifeval.jsonl", ifeval_items(profile.n_ifeval, rng))
    _write(out / "qa.jsonl", _qa_items(profile.n_qa, rng))
    train, test = make_problems(profile.n_train, profile.n_target_test, seed=profile.seed)
    _write(out / "wordproblems_train.jsonl", train)
    _write(out / "wordproblems_test.jsonl", test)
    _write(out / "wordproblems_gold.jsonl", test[:profile.n_target_twin])  # the Target-LL twin's items
    seen = _screened_inputs(profile, "arithmetic.jsonl")
    per_task = arithmetic_per_task(arithmetic_items(profile), kept["arithmetic"])
    reserve = arithmetic_per_task(2 * profile.val_n_ood, kept["arithmetic"])  # the validation split's draw
    _write(out / "arithmetic.jsonl", [_mc_item(e, "") for t in kept["arithmetic"]
                                      for e in _sample_examples(t, per_task, rng, seen, reserve)])
    _write(out / "emqa.jsonl", [_mc_item(e, "") for e in _sample_examples(EMQA_TASK, profile.n_target_ood, rng)])
    _write(out / "general_text.jsonl", _general_text(profile.n_ce_docs, rng))
    (out / "DONE").write_text(json.dumps({"version": SUITE_VERSION, "profile": profile.name}))
    return out


def arithmetic_items(profile: Profile) -> int:
    """The arithmetic group's test items: ``n_arithmetic``, or 2 ``n_target_ood`` where the profile leaves it unset."""
    return profile.n_arithmetic if profile.n_arithmetic is not None else 2 * profile.n_target_ood


def arithmetic_per_task(n_items: int, tasks: list[str]) -> int:
    """Items per kept arithmetic task: the group holds about ``n_items`` however many tasks the screen keeps (a
    16-item group of one kept task had a standard error of 12 points)."""
    return -(-n_items // len(tasks))


def kept_subtasks(profile: Profile) -> dict[str, list[str]]:
    """The candidate subtasks the suite scores per screened group: the screen's choice, or every candidate."""
    result = screen_result(profile)
    return {g: (result["kept"][g] if result else list(names)) for g, names in SCREEN_GROUPS.items()}


def validation_name(profile: Profile) -> str:
    """The validation split's folder name: keyed by its sizes (the test suite's key covers the rest)."""
    key = json.dumps([profile.val_bbh_per_task, profile.val_n_ifeval, profile.val_n_qa, profile.val_n_target,
                      profile.val_n_ood])
    if profile.uses_stock_tasks:
        key = json.dumps(sorted(profile.stock_validation.items()))
    return "validation-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def build_validation(profile: Profile) -> Path:
    """The validation split of the profile's suite (rewinding's selection, book/definitions.md D5), written on first
    use: same file names and lm-eval tasks as the test suite, every item drawn from the same sources but disjoint from it
    (checked by normalised input text) and, for word problems, from the training set too."""
    test = build_suite(profile)
    if profile.uses_stock_tasks:
        return test  # a held-out slice of each stock task (scores.stock_slices): nothing to write
    out = test / validation_name(profile)
    if (out / "DONE").exists():
        return out
    kept = kept_subtasks(profile)
    (out / "bbh").mkdir(parents=True, exist_ok=True)
    rng = random.Random(profile.seed + 7919)  # a different stream from the test suite's
    for name in kept["bbh"]:
        file = f"bbh/{bbh_id(name)}.jsonl"
        seen = {_norm(r["input"]) for r in read_jsonl(test / file)} | _screened_inputs(profile, file)
        _write(out / file, _bbh_items(name, profile.val_bbh_per_task, rng, seen))
    test_prompts = {r["prompt"] for r in read_jsonl(test / "ifeval.jsonl")}
    ifeval = [r for r in ifeval_items(4 * profile.val_n_ifeval + 8, rng) if r["prompt"] not in test_prompts]
    _write(out / "ifeval.jsonl", ifeval[:profile.val_n_ifeval])
    test_qa = {_norm(r["input"]) for r in read_jsonl(test / "qa.jsonl")}
    _write(out / "qa.jsonl", _qa_items(profile.val_n_qa, rng, test_qa))
    # The same generator continued past the test items: the first n_target_test are the test set, the rest are new.
    train, both = make_problems(profile.n_train, profile.n_target_test + profile.val_n_target, seed=profile.seed)
    known = {r["question"] for r in train} | {r["question"] for r in both[:profile.n_target_test]}
    problems = [r for r in both[profile.n_target_test:] if r["question"] not in known]
    _write(out / "wordproblems_test.jsonl", problems)
    _write(out / "wordproblems_gold.jsonl", problems)  # a few dozen: every one keeps its twin
    arithmetic = arithmetic_per_task(2 * profile.val_n_ood, kept["arithmetic"])
    for file, tasks, per_task in (("arithmetic.jsonl", kept["arithmetic"], arithmetic),
                                  ("emqa.jsonl", [EMQA_TASK], profile.val_n_ood)):
        seen = {_norm(r["input"]) for r in read_jsonl(test / file)} | _screened_inputs(profile, file)
        _write(out / file, [_mc_item(e, "") for t in tasks for e in _sample_examples(t, per_task, rng, seen)])
    (out / "DONE").write_text(json.dumps({"version": SUITE_VERSION, "profile": profile.name, "split": "validation"}))
    return out


def _write(path: Path, items: list[dict]) -> None:
    if not items:
        raise ValueError(f"refusing to write an empty evaluation file {path.name}")
    path.write_text("".join(json.dumps(item) + "\n" for item in items))


def _sample_examples(task: str, n: int, rng: random.Random, exclude: set[str] = frozenset(),
                     reserve: int = 0) -> list[dict]:
    """``n`` examples of ``task`` not in ``exclude``, or as many as leave ``reserve`` of them for a later draw (the
    1-digit arithmetic tasks have 100 examples each)."""
    examples = [e for e in load_bigbench(task)["examples"] if _norm(e["input"]) not in exclude]
    return rng.sample(examples, max(0, min(n, len(examples) - reserve)))


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _bbh_exemplars(name: str) -> set[str]:
    """Normalised inputs of lm-eval's 3 CoT exemplars for a BBH task (to exclude them from the test set)."""
    import importlib.resources

    import yaml

    stem = LM_EVAL_BBH_NAME.get(name, bbh_id(name))
    path = importlib.resources.files("lm_eval") / "tasks" / "bbh" / "cot_fewshot" / f"{stem}.yaml"

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_constructor("!function", lambda loader, node: None)
    config = yaml.load(path.read_text(), Loader=_Loader)
    return {_norm(s["input"]) for s in config["fewshot_config"]["samples"]}


def _bbh_items(name: str, n: int, rng: random.Random, exclude: set[str] = frozenset()) -> list[dict]:
    task = load_bigbench(name)
    exemplars = _bbh_exemplars(name)
    prefix = task.get("task_prefix", "")
    # An exemplar's text contains the task prefix and the options, so test containment, not equality.
    pool = [e for e in task["examples"] if not any(_norm(e["input"]) in ex for ex in exemplars)
            and _norm((prefix + e["input"]).strip()) not in exclude]
    chosen = rng.sample(pool, min(n, len(pool)))
    return [_greedy_item(e, prefix) if name in GREEDY_BBH else _mc_item(e, prefix) for e in chosen]


def _mc_item(example: dict, prefix: str) -> dict:
    choices = list(example["target_scores"])
    gold = max(range(len(choices)), key=lambda i: example["target_scores"][choices[i]])
    return {"input": (prefix + example["input"]).strip(), "choices": choices, "gold": gold}


def _greedy_item(example: dict, prefix: str) -> dict:
    if "target_scores" in example:  # dyck_languages: the one correct closing sequence among 84 listed
        return {"input": (prefix + example["input"]).strip(), "target": _mc_item(example, "")["choices"][
            _mc_item(example, "")["gold"]]}
    target = example["target"]
    target = target[-1] if isinstance(target, list) else target  # object_counting lists ["three", "3"]: use digits
    return {"input": (prefix + example["input"]).strip(), "target": str(target)}


def ifeval_items(n: int, rng: random.Random) -> list[dict]:
    """``n`` distinct IFEval-format prompts (key, prompt, instruction_id_list, kwargs); texts from lm-eval's
    checkers."""

    instructions_registry = ifeval_module("instructions_registry")

    items, seen, draws = [], set(), 0
    while len(items) < n and draws < 50 * n:  # distinct prompts; the bound stops a request for more than exist
        draws += 1
        key = len(items)
        topic = rng.choice(TOPICS)
        specs = rng.sample(IFEVAL_SPECS, 2 if key % 3 == 0 else 1)
        if len({s[0] for s in specs}) < len(specs) or _conflict(specs):
            specs = specs[:1]
        texts = []
        for instruction_id, kwargs in specs:
            checker = instructions_registry.INSTRUCTION_DICT[instruction_id](instruction_id)
            texts.append(checker.build_description(**kwargs))
        prompt = f"Write a short paragraph about {topic}. " + " ".join(texts)
        if prompt in seen:
            continue
        seen.add(prompt)
        items.append({"key": key, "prompt": prompt, "instruction_id_list": [s[0] for s in specs],
                      "kwargs": [dict(s[1]) for s in specs]})
    return items


def _conflict(specs) -> bool:
    ids = {s[0] for s in specs}
    return len(ids & {"change_case:english_lowercase", "change_case:english_capital"}) > 1 or (
        "detectable_format:json_format" in ids and len(ids) > 1)


QA_OPTIONS = 4
_RELATION = (re.compile(r"^(The .+? of) .+ (?:is|are|was|were)$"),
             re.compile(r"^.+? ((?:is|are|was|were) [a-z ]+?(?: in| with| by| of| to| for| from| as| on| at)?)$"))


def qa_relation(text: str) -> str | None:
    """The relation a qa_wikidata statement asks about ("The capital of", "is located in"), or None."""
    for pattern in _RELATION:
        match = pattern.match(text)
        if match:
            return match.group(1)
    return None


@functools.cache
def _qa_answers_by_relation() -> dict[str, list[str]]:
    answers: dict[str, set[str]] = {}
    for e in load_bigbench(QA_TASK)["examples"]:
        relation = qa_relation(e["input"])
        if relation:
            answers.setdefault(relation, set()).update(_targets(e))
    return {r: sorted(a) for r, a in answers.items()}


def _targets(example: dict) -> list[str]:
    return example["target"] if isinstance(example["target"], list) else [example["target"]]


def _qa_items(n: int, rng: random.Random, exclude: set[str] = frozenset()) -> list[dict]:
    """Closed-book facts as ``QA_OPTIONS``-way multiple choice: the first listed answer against distractors drawn
    from the answers to other statements of the same relation (none of them among this statement's answers)."""
    answers = _qa_answers_by_relation()
    items = []
    for e in _sample_examples(QA_TASK, 4 * n, rng, exclude):
        targets, relation = _targets(e), qa_relation(e["input"])
        if relation is None or not all(len(t.split()) <= 4 for t in targets):  # short factual answers, like NQ's
            continue
        pool = [a for a in answers[relation] if a not in targets and len(a.split()) <= 4]
        if len(pool) < QA_OPTIONS - 1:
            continue
        choices = [targets[0], *rng.sample(pool, QA_OPTIONS - 1)]
        rng.shuffle(choices)
        items.append({"input": e["input"], "choices": choices, "gold": choices.index(targets[0])})
        if len(items) == n:
            break
    return items


def _general_text(n: int, rng: random.Random) -> list[dict]:
    """General-text documents for the cross-entropy forgetting proxy (book/definitions.md P): BIG-bench passages, not
    math."""
    docs = []
    for name in GENERAL_TEXT_TASKS:
        docs += [{"text": e["input"]} for e in load_bigbench(name)["examples"] if len(e["input"]) > 120]
    return rng.sample(docs, min(n, len(docs)))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
