"""Local stand-ins for the hub profiles' data, for dry runs on a machine with no hub (``dry_run=True``).

Each of lm-eval's stock tasks gets a file in its own dataset's schema and size (so ``scores.stock_slices`` picks the
same doc ids as on the real data) and an lm-eval task spec that reads it instead of the hub: BBH's 27 subtasks
(``input``, ``target``), IFEval (``key``, ``prompt``, ``instruction_id_list``, ``kwargs``), NQ-open (``question``,
``answer``), MATH-500 (``problem``, ``solution`` with a boxed answer, ``answer``) and AIME 2024 (``ID``, ``Problem``,
``Solution``, ``Answer``). The SFT data is a parquet file in the release's schema (``extra_info.question`` /
``.answer``) filled with the kit's generated word problems. Contents are synthetic: a dry run checks the pipeline,
never a number.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

from .assets import cache_dir
from .offline_nltk import use_shipped_nltk_data
from .scores import BBH_SUBTASK_ITEMS, STOCK_GENERAL, STOCK_ITEMS
from .wordproblems import make_problems

VERSION = 1
# Where each stock task reads its items (lm-eval 0.4.13's YAMLs: split name, as the task config names it).
SPLITS = {"bbh_cot_fewshot": "test", "ifeval": "train", "nq_open": "validation", "minerva_math500": "test",
          "aime24": "train"}


def folder() -> Path:
    return cache_dir() / f"stock-fixtures-v{VERSION}"


def _rows(task: str, n: int) -> list[dict]:
    if task == "ifeval":
        return [{"key": i, "prompt": f"Write one short sentence about the number {i} without any commas.",
                 "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]} for i in range(n)]
    if task == "nq_open":
        return [{"question": f"what is {i} plus one", "answer": [str(i + 1)]} for i in range(n)]
    if task == "minerva_math500":
        return [{"problem": f"What is ${i} + {i}$?", "solution": f"${i} + {i} = \\boxed{{{2 * i}}}$.",
                 "answer": str(2 * i), "subject": "Algebra", "level": 1, "unique_id": f"fixture/{i}.json"}
                for i in range(n)]
    if task == "aime24":
        return [{"ID": f"fixture-{i}", "Problem": f"Find {i} times 3.", "Solution": f"{3 * i}", "Answer": 3 * i}
                for i in range(n)]
    return [{"input": f"Is {i} even? Options: (A) yes (B) no", "target": "(A)" if i % 2 == 0 else "(B)"}
            for i in range(n)]  # a BBH subtask


def _write(path: Path, rows: list[dict]) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(path)
    return path


@functools.cache
def _registered() -> dict:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=True).task_index


@functools.cache
def _resolved(name: str) -> dict:
    from lm_eval.tasks._factory import load_yaml

    use_shipped_nltk_data()  # resolving IFEval's functions imports it, which downloads punkt_tab if NLTK lacks it
    return dict(load_yaml(_registered()[name].yaml_path, resolve_func=True))


def _config(name: str) -> dict:
    """The registered task's whole config (its YAML with includes and functions resolved), read once per process; a
    copy, since lm-eval updates a task's generation settings in place. An lm-eval task spec given as a dict is taken
    as the whole config, not as overrides of the registered one."""
    return copy.deepcopy(_resolved(name))


DRY_RUN_BBH = 3  # BBH subtasks a dry run scores (each is an lm-eval task of its own)


def task_specs(task: str) -> list[dict]:
    """lm-eval task configs for stock ``task`` that read the local fixtures instead of the hub: the registered config
    with its dataset pointed at the fixture file and no few-shot examples (a dry run's prompts stay short); the first
    ``DRY_RUN_BBH`` BBH subtasks, else the task."""
    split = SPLITS[task]
    if task == STOCK_GENERAL["bbh"][0]:
        names = {f"{task}_{name}": n for name, n in list(BBH_SUBTASK_ITEMS.items())[:DRY_RUN_BBH]}
    else:
        names = {task: STOCK_ITEMS[task][0]}
    specs = []
    for name, n in names.items():
        path = _write(folder() / f"{name}.jsonl", _rows(task, n))
        files = {split: str(path)} | ({"train": str(path)} if split != "train" else {})  # few-shot splits too
        specs.append(_config(name) | {"task": name, "dataset_path": "json", "dataset_name": None,
                                      "dataset_kwargs": {"data_files": files}, "num_fewshot": 0})
    return specs


def sft_file(n: int = 64) -> Path:
    """A parquet file in the release's SFT schema, filled with generated word problems."""
    import pandas as pd

    path = folder() / f"sft-math-{n}.parquet"
    if not path.exists():
        train, _ = make_problems(n, 1, seed=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        pd.DataFrame({"data_source": ["fixture"] * len(train), "extra_info": [
            {"question": r["question"], "answer": r["answer"], "index": i} for i, r in enumerate(train)]}
        ).to_parquet(tmp)
        tmp.replace(path)
    return path
