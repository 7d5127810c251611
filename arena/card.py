"""The base model's card (chapter 00): size and architecture, zero-shot scores against chance, a sample generation."""

from __future__ import annotations

import math
from pathlib import Path

from .models import count_parameters
from .report import PAPER_E1
from .runs import training_rows
from .scores import chance_level, GENERAL, is_stock, STOCK_GENERAL, STOCK_TARGET
from .suite import ifeval_items, read_jsonl, suite_dir


def architecture(model) -> dict:
    """Parameter count and the config values the paper's budget formulas use (book/definitions.md A1, A8)."""
    c = model.config

    quantised = any(type(p).__name__ == "Params4bit" for p in model.parameters())
    return {"class": type(model).__name__, "parameters": count_parameters(model)[1],
            "weights": "4-bit NF4 (bitsandbytes)" if quantised else str(next(model.parameters()).dtype),
            "layers": c.num_hidden_layers, "hidden": c.hidden_size, "mlp": c.intermediate_size,
            "heads": c.num_attention_heads, "kv_heads": c.num_key_value_heads, "vocab": c.vocab_size,
            "tied_embeddings": bool(getattr(c, "tie_word_embeddings", False)),
            "identity": getattr(c, "arena_identity", None)}


def task_table(result: dict, data_dir: Path):
    """One row per scored candidate (a reasoning family at its setting, a fact relation, an arithmetic operation):
    its group, the scoring rule the screen chose, accuracy and standard error (%), chance level (%), the margin over
    chance in standard errors, and items. lm-eval's stock tasks (the hub profiles) are listed per task, without a
    chance level."""
    import pandas as pd

    rows = []
    if is_stock(result["items"]):
        group_of = {task: g for g, (task, _) in {**STOCK_GENERAL, **STOCK_TARGET}.items()}
        for task in (t for t in result["items"] if ":" not in t):
            acc, se, n = _mean_se(result["items"][task])
            rows.append({"candidate": task, "group": group_of.get(task, "bbh"),
                         "accuracy": 100 * acc, "se": 100 * se, "chance": None, "items": n})
        return pd.DataFrame(rows)
    files = {f"arena_bbh_{p.stem}": ("bbh", p) for p in sorted((data_dir / "bbh").glob("*.jsonl"))}
    files |= {"arena_qa": ("qa", data_dir / "qa.jsonl"), "arena_qa_gen": ("qa", data_dir / "qa_gen.jsonl"),
              "arena_arithmetic": ("arithmetic", data_dir / "arithmetic.jsonl")}
    for task, (group, path) in files.items():
        if task not in result["items"]:  # an optional task the screen dropped
            continue
        docs, scores = read_jsonl(path), result["items"][task]
        for candidate in dict.fromkeys(d.get("candidate", task) for d in docs):
            mine = [i for i, d in enumerate(docs) if d.get("candidate", task) == candidate]
            acc, se, n = _mean_se([scores[i] for i in mine])
            chance = sum(1 / len(docs[i]["choices"]) if "choices" in docs[i] else 0.0 for i in mine) / n
            label = candidate + (" (generated)" if task == "arena_qa_gen" else "")
            rows.append({"candidate": label, "group": group, "rule": docs[mine[0]].get("rule"),
                         "accuracy": 100 * acc, "se": 100 * se, "chance": 100 * chance,
                         "margin (SE)": (acc - chance) / se if se > 0 else float("nan"), "items": n})
    return pd.DataFrame(rows)


def _mean_se(scores: list[float]) -> tuple[float, float, int]:
    n = len(scores)
    acc = sum(scores) / n
    return acc, (math.sqrt(acc * (1 - acc) / n) if n > 1 else 0.0), n


def group_chance(result: dict, data_dir: Path | None) -> dict[str, float | None]:
    """Each group's chance level (0-1): a multiple-choice group's mean over its items' 1/#options (BBH: the mean of
    its families'); 0 for free-form answers (a guess scores about nothing); None where unknown (lm-eval's stock
    tasks, or no suite folder given)."""
    if data_dir is None or is_stock(result["items"]):
        return {g: None for g in result["groups"]}
    bbh = [chance_level(p) for p in sorted((Path(data_dir) / "bbh").glob("*.jsonl"))]
    out = {g: 0.0 for g in result["groups"]}
    out["bbh"] = sum(bbh) / len(bbh) if bbh else None
    if "arithmetic" in out:
        out["arithmetic"] = chance_level(Path(data_dir) / "arithmetic.jsonl")
    if "qa" in out:  # its multiple-choice items at 1/options, its generated ones (where kept) at 0, pooled
        files = [Path(data_dir) / f for f in ("qa.jsonl", "qa_gen.jsonl") if (Path(data_dir) / f).exists()]
        counts = [len(read_jsonl(f)) for f in files]
        out["qa"] = sum(chance_level(f) * n for f, n in zip(files, counts)) / sum(counts)
    return out


MARGIN = 3.0  # a yardstick "measures something at base" when its score is this many SEs above chance


def group_table(result: dict, data_dir: Path | None = None):
    """The groups behind General and Target, with standard errors (%), and, given the suite folder, each group's
    chance level and the base's margin over it in standard errors (a group at chance or at floor cannot show a
    change: it needs ``MARGIN`` SEs)."""
    import pandas as pd

    general = set(STOCK_GENERAL if is_stock(result["items"]) else GENERAL)
    chance = group_chance(result, data_dir)
    rows = []
    for g, v in result["groups"].items():
        row = {"group": g, "role": "general" if g in general else "target", **v}
        if chance[g] is not None:
            margin = (v["score"] - 100 * chance[g]) / v["se"] if v["se"] > 0 else float("nan")
            row |= {"chance": 100 * chance[g], "margin (SE)": margin, f"above chance by {MARGIN:g} SE": margin > MARGIN}
        rows.append(row)
    rows += [{"group": "General", "role": "composite", "score": result["general"], "se": result["general_se"]},
             {"group": "Target", "role": "composite", "score": result["target"], "se": result["target_se"]}]
    return pd.DataFrame(rows)


def paper_base_beside(result: dict, model_name: str):
    """The paper's base rows (book/definitions.md E1, math) beside this run's base, General and Target (%)."""
    import pandas as pd

    qwen, llama = PAPER_E1["base"]["qwen_math"], PAPER_E1["base"]["llama_math"]
    protocol = "OpenCompass BBH/IFEval/NQ; MATH500/AMC23/AIME24"
    rows = [{"source": "paper", "model": "Qwen2.5-7B", "protocol": protocol, "General": qwen[1],
             "Target (math)": qwen[0]},
            {"source": "paper", "model": "Llama-3.2-3B-Instruct", "protocol": "same", "General": llama[1],
             "Target (math)": llama[0]},
            {"source": "this run", "model": model_name,
             "protocol": "kit offline suite on lm-eval (screened generated reasoning families, kit IFEval prompts, "
                         "fact-table multiple choice; word problems, generated arithmetic)",
             "General": round(result["general"], 2), "Target (math)": round(result["target"], 2)}]
    return pd.DataFrame(rows).set_index("source")


def sample_prompts(profile) -> list[tuple[str, str | None]]:
    """Chapter 00: ``(prompt, expected answer or None)`` to show the base answering: a question of the target task
    (a held-out word problem; for a stock-task profile, the first SFT question, whose answer is long, so cut to its
    end) and an instruction-following prompt (the suite's first; for a stock-task profile, one IFEval-format prompt
    the kit writes from lm-eval's instruction registry)."""
    import random

    if profile.uses_stock_tasks:
        row = training_rows(profile)[0]
        answer = row["answer"] if len(row["answer"]) <= 200 else "..." + row["answer"][-200:]
        return [(row["question"], answer), (ifeval_items(1, random.Random(profile.seed))[0]["prompt"], None)]
    folder = suite_dir(profile)
    problem = read_jsonl(folder / "wordproblems_test.jsonl")[0]
    return [(problem["question"], problem["target"]), (read_jsonl(folder / "ifeval.jsonl")[0]["prompt"], None)]


def generate(model, tokenizer, prompt: str, max_new_tokens: int = 64, chat: bool = True) -> str:
    """Greedy answer to one prompt (chat template when the tokenizer has one)."""
    import torch

    text = prompt
    if chat and tokenizer.chat_template:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
