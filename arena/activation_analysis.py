"""Activation-space analysis of trained checkpoints (book/definitions.md C).

- Prompt sets come from the run's own suite, fixed by the suite's seed: **general** = the BBH inputs, the instruction
  prompts and the QA questions of the stability suite, interleaved; **target** = the held-out word problems. Both are
  stored with every result.
- Modules: the paper's ``paper8`` set (q, k, v and down projections at layers 9 and 18 of 28) scaled to the model's
  depth (``geometry.default_module_set``).
- Base activations (module inputs for CSD, outputs for geometry) are captured once per starting base (full precision
  or 4-bit) and suite, and reused for every method that started from it; finetuned outputs are captured from the
  unmerged adapter, and CSD uses the fp32 update of ``updates.effective_update`` on the *base* inputs, so every
  method is scored on the same tokens (C2).
"""

from __future__ import annotations

import time

import torch

from . import store
from .evaluate import round_robin, stock_prompts
from .geometry import capture_activations, csd, geometry_metrics
from .keys import activations_key, default_modules, geometry_key, train_key
from .models import load_base
from .profiles import Profile
from .runs import load_trained
from .scores import STOCK_GENERAL, STOCK_TARGET
from .suite import build_suite, read_jsonl
from .updates import module_update, start_weight
from .weight_analysis import pretrained_source

MAX_TOKENS = 1024  # per dataset (the paper caps at 4096, C1); 1024 tokens x 576-1536 features on this base


def prompt_sets(profile: Profile) -> dict[str, list[str]]:
    """The general and target prompt lists (in a fixed, seeded order), interleaved so a token cap still samples
    every source: the suite's BBH, IFEval and QA prompts and its held-out word problems; on the hub profiles, the
    stock tasks' test items (``evaluate.stock_prompts``: BBH, IFEval, NQ; MATH500, AIME24)."""

    if profile.uses_stock_tasks:
        stock = stock_prompts(profile)
        general = round_robin([stock[STOCK_GENERAL[g][0]] for g in STOCK_GENERAL])
        target = round_robin([stock[STOCK_TARGET[g][0]] for g in STOCK_TARGET])
        return {"general": [p for group in general for p in group], "target": [p for group in target for p in group]}
    folder = build_suite(profile)
    bbh = [r["input"] for f in sorted((folder / "bbh").glob("*.jsonl")) for r in read_jsonl(f)]
    ifeval = [r["prompt"] for r in read_jsonl(folder / "ifeval.jsonl")]
    qa = [r["input"] for r in read_jsonl(folder / "qa.jsonl")]
    general = [p for group in round_robin([bbh, ifeval, qa]) for p in group]
    target = [r["question"] for r in read_jsonl(folder / "wordproblems_test.jsonl")]
    return {"general": general, "target": target}


def base_activations_file(profile: Profile, modules: list[str], max_tokens: int = MAX_TOKENS,
                          quantization: str | None = None):
    """Where the activations of this base (in full precision or ``quantization``), suite, module set and token cap
    are stored."""
    key = activations_key(profile, modules, max_tokens, quantization)
    return store.run_dir("activations", key) / "base.safetensors"


def base_activations(profile: Profile, modules: list[str], max_tokens: int = MAX_TOKENS,
                     quantization: str | None = None) -> dict:
    """``{dataset: {"input": {module: H}, "output": {module: X0}}}`` for the base a method started from (full
    precision, or ``quantization``), stored once as safetensors."""
    from safetensors.torch import load_file, save_file

    file = base_activations_file(profile, modules, max_tokens, quantization)
    folder = file.parent
    if file.exists():
        try:
            flat = load_file(str(file))
            return _unflatten(flat)
        except Exception:  # a truncated file from a killed run: capture again
            file.unlink()
    model, tokenizer = load_base(profile.model, quantization)
    out = {}
    for dataset, prompts in prompt_sets(profile).items():
        out[dataset] = capture_activations(model, tokenizer, prompts, modules, kind=("input", "output"),
                                           max_tokens=max_tokens, max_length=profile.max_length)
    import os

    tmp = folder / f"base.safetensors.{os.getpid()}.tmp"  # two workers may capture at once; the last rename wins
    save_file({f"{d}|{k}|{m}": t.contiguous() for d, kinds in out.items() for k, mods in kinds.items()
               for m, t in mods.items()}, str(tmp))
    tmp.replace(file)
    return out


def _unflatten(flat: dict) -> dict:
    out: dict = {}
    for name, tensor in flat.items():
        dataset, kind, module = name.split("|")
        out.setdefault(dataset, {}).setdefault(kind, {})[module] = tensor
    return out


def analyse_checkpoint(profile: Profile, spec, step: int | None = None, modules: list[str] | None = None,
                       max_tokens: int = MAX_TOKENS, force: bool = False) -> dict:
    """Geometry and CSD metrics per (dataset, module) of one trained checkpoint (cached in the results store)."""
    step = spec.steps if step is None else step
    modules = list(modules or default_modules(profile))
    tkey = train_key(profile, spec)
    key = geometry_key(profile, spec, step, modules, max_tokens)

    def compute(folder) -> dict:
        start = time.perf_counter()
        base = base_activations(profile, modules, max_tokens, tkey["quantization"])  # the base it started from
        model, tokenizer = load_trained(profile, spec, step, merge=False)
        named = dict(model.named_modules())
        read_w0 = pretrained_source(profile)
        rows = []
        prompts = prompt_sets(profile)
        with torch.no_grad():
            updates = {}
            for m in modules:
                module = named.get(m) or named[f"base_model.model.{m}"]
                W0 = start_weight(module, read_w0(m + ".weight"))  # deq(Q(W0)) on a 4-bit base
                updates[m] = (W0, module_update(module, W0))
            for dataset, texts in prompts.items():
                tuned = capture_activations(model, tokenizer, texts, modules, kind="output", max_tokens=max_tokens,
                                            max_length=profile.max_length)
                for m in modules:
                    W0, dW = updates[m]
                    row = {"dataset": dataset, "module": m, "n_tokens": int(tuned[m].shape[0])}
                    row |= geometry_metrics(base[dataset]["output"][m], tuned[m])
                    row |= {f"csd_{k}": v for k, v in csd(W0, dW, base[dataset]["input"][m]).items()
                            if isinstance(v, (int, float))}
                    rows.append(row)
        return {"rows": rows, "modules": modules, "method": spec.method, "step": step,
                "prompts": {k: v[:400] for k, v in prompts.items()}, "wall_s": time.perf_counter() - start}

    return store.cached("geometry", key, compute, force=force)
