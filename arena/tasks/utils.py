"""Loader and scorers for the kit's lm-eval tasks (referenced from the YAML files with ``!function utils.*``)."""

from __future__ import annotations

from pathlib import Path
from arena.offline_nltk import ifeval_module
from arena.wordproblems import is_correct


def load_items(data_dir: str | None = None, file: str | None = None, **_):
    """A DatasetDict with one ``test`` split read from ``<data_dir>/<file>`` (data_dir comes from TaskManager metadata)."""
    import datasets

    if not data_dir:
        raise ValueError("arena tasks need metadata data_dir: run them through arena.evaluate, not lm_eval directly")
    path = Path(data_dir) / file
    if not path.exists() or path.stat().st_size == 0:
        raise FileNotFoundError(f"{path} is missing or empty; rebuild the suite with arena.suite.build_suite")
    import json

    # In memory, not through load_dataset's JSON builder: that writes an Arrow cache per file (~0.2 s each, 30 files per
    # scoring). Rows whose nested dicts differ in keys (IFEval's kwargs) lose them in Dataset.from_list's inferred
    # schema, so a file that does not read back unchanged takes the builder.
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    table = datasets.Dataset.from_list(rows)
    if table.to_list() != rows:
        table = datasets.load_dataset("json", data_files=str(path), split="train")
    return datasets.DatasetDict({"test": table})


def math_results(doc, results):
    """Final-number match by math-verify (``#### N`` if present, else the last number)."""

    return {"exact_match": float(is_correct(results[0], doc["target"]))}


def ifeval_results(doc, results):
    """lm-eval's IFEval scorer; its sentence counter needs NLTK punkt, which we replace by an untrained tokenizer."""

    _offline_punkt(ifeval_module("instructions_util"))
    return ifeval_module("utils").process_results(doc, results)


def agg_inst_level_acc(items):
    return ifeval_module("utils").agg_inst_level_acc(items)


def _offline_punkt(module) -> None:
    # lm-eval's counter loads the old punkt pickle; the untrained Punkt model (arena/offline_nltk.py) splits instead.
    if getattr(module, "_arena_patched", False):
        return
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    tokenizer = PunktSentenceTokenizer()
    module.count_sentences = lambda text: len(tokenizer.tokenize(text))
    module._arena_patched = True
