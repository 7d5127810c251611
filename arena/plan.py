"""What a profile will cost before anything downloads or trains (``python -m arena plan``, ``make plan``).

Per stage, the work: training tokens per method, prompts and generated tokens per scoring pass, checkpoints, disk.
Per method and base, the GPU memory at the profile's micro-batch (book/definitions.md A6):

- weights: nf4 linears at 4.127 bits per weight (4-bit codes, an 8-bit absmax per 64 weights, an fp32 scale per 256
  absmax: bitsandbytes' double quantisation), everything else bf16; a method with no 4-bit path loads its base in
  bf16, full finetuning in fp32 (the kit's master weights);
- trainable state: fp32 weights, fp32 gradients and AdamW's two fp32 moments, 16 bytes per trainable parameter (8-bit
  AdamW: 10);
- activations of a Llama/Qwen decoder layer in bf16, per token: 8 h + 2 kv + 4 i values (norm inputs and outputs,
  q/k/v, attention output, the MLP's gate, up, activation and product; SDPA keeps no attention matrix). With
  checkpointing, each layer keeps only its input (h) and one layer is recomputed at a time;
- logits: fp32 logits and their gradient, 8 bytes per vocabulary entry per token;
- 1 GiB for the CUDA context and allocator slack.

Times are **estimates** from the throughput assumptions in ``ASSUMED`` (stated, never measured here); memory is a
closed-form estimate too. ``make bench`` measures tokens/s on a machine that has the GPU.
"""

from __future__ import annotations

import dataclasses

from .errors import ArenaError
from .methods import get_method
from .methods.quantized import base_quantization
from .methods.registry import skeleton
from .models import base_config
from .profiles import Profile
from .rewind import variants
from .runs import sized_method, train_spec
from .scores import STOCK_GEN_TOKENS, stock_slices
from .reasoning import FAMILIES
from .suite import arithmetic_items

GIB = 1024 ** 3
NF4_BYTES = 4.127 / 8  # per weight, with double quantisation (module docstring)
CUDA_OVERHEAD = 1 * GIB
# Throughput assumptions for the time estimates, for a 7.6B-parameter base on one 24 GB GPU (RTX 4090 / L4 / A10
# class); scaled by 7.6e9 / parameters for other bases. Training: QLoRA-style nf4 with activation checkpointing.
# Generation: lm-eval's HF backend (batched generate on the nf4 model) or vLLM on a bf16 merge.
ASSUMED = {"train tokens/s": 1500.0, "generate tokens/s (hf)": 150.0, "generate tokens/s (vllm)": 1200.0,
           "generated / cap": 0.3, "reference parameters": 7.6e9}


def _counts(config) -> dict:
    """Parameters of the base by role: quantisable linears, the LM head and embeddings (bf16 under nf4), the rest."""
    import torch

    model = skeleton(config)
    head = model.get_output_embeddings()
    counts = {"linear": 0, "head_embed": 0, "other": 0}
    seen = set()
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue  # tied embeddings count once
            seen.add(id(p))
            if isinstance(module, torch.nn.Linear) and module is not head:
                counts["linear"] += p.numel()
            elif isinstance(module, torch.nn.Embedding) or module is head:
                counts["head_embed"] += p.numel()
            else:
                counts["other"] += p.numel()
    counts["total"] = sum(counts.values())
    return counts


def svd_cache_bytes(config) -> int:
    """Disk of the base-SVD cache the weight analysis keeps (fp32 U, S, Vh of every adapted linear, chapter 03)."""
    import torch

    model = skeleton(config)
    head = model.get_output_embeddings()
    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            m, n = module.weight.shape
            total += min(m, n) * (m + n + 1) * 4
    return total


def _activation_values(config) -> int:
    """bf16 values one decoder layer keeps per token for the backward pass (module docstring)."""
    h, i = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * (getattr(config, "head_dim", None) or h // config.num_attention_heads)
    return 8 * h + 2 * kv + 4 * i


def memory(profile: Profile, method: str, model_index: int = 0, checkpointing: bool | None = None) -> dict:
    """GPU memory estimate in bytes of training ``method`` on ``profile.models[model_index]`` at the profile's
    micro-batch (``batch_size`` sequences of ``max_length`` tokens): weights, trainable state, activations with and
    without checkpointing, logits, and the total for the profile's checkpointing setting (on unless "off")."""
    one = _on_gpu(profile, profile.models[model_index])
    spec = one.model
    config = base_config(spec)
    counts = _counts(config)
    m = get_method(method)
    quantization = base_quantization(one, method)[0]
    full = m.config is None and m.wrap is None
    trainable = sized_method(one, method).count
    if full:
        weights = counts["total"] * 4  # fp32 master weights, frozen embeddings included
    else:
        linear = counts["linear"] * (NF4_BYTES if quantization else 2)
        weights = linear + (counts["head_embed"] + counts["other"]) * 2
    state_bytes = 10 if "8bit" in profile.optimizer else 16
    tokens = profile.batch_size * profile.max_length
    layers = config.num_hidden_layers
    per_layer = _activation_values(config) * 2 * tokens
    with_ckpt = layers * config.hidden_size * 2 * tokens + per_layer
    without = layers * per_layer
    logits = tokens * config.vocab_size * 8
    ckpt = profile.gradient_checkpointing != "off" if checkpointing is None else checkpointing
    state = trainable * (state_bytes - 4) + (0 if full else trainable * 4)  # full FT: its weights are counted above
    total = weights + state + (with_ckpt if ckpt else without) + logits + CUDA_OVERHEAD
    return {"method": method, "base": spec.name, "base precision": "fp32" if full else (quantization or "bf16"),
            "trainable": trainable, "weights": weights, "trainable state": state, "activations (checkpointing)":
            with_ckpt, "activations (none)": without, "logits": logits, "total": total, "checkpointing": ckpt,
            "parameters": counts["total"]}


def scoring_pass(profile: Profile, split: str = "test") -> list[dict]:
    """The prompts and the generation cap of one scoring pass on ``split``, per task (stock tasks: the profile's
    slices, ``scores.stock_slices``)."""
    if profile.uses_stock_tasks:
        rows = []
        for task in STOCK_GEN_TOKENS:
            slices = stock_slices(task, profile.seed, profile.stock_validation.get(task, 0),
                                  profile.stock_limits.get(task))
            rows.append({"task": task, "prompts": sum(len(s[split]) for s in slices.values()),
                         "max new tokens": STOCK_GEN_TOKENS[task]})
        return rows
    families = len(FAMILIES)  # at most: a screen may keep fewer
    if split == "validation":
        n = (profile.val_bbh_per_task * families + profile.val_n_ifeval + profile.val_n_qa + profile.val_n_target
             + 2 * profile.val_n_ood)
    else:
        n = (profile.bbh_per_task * families + profile.n_ifeval + profile.n_qa + profile.n_target_test
             + arithmetic_items(profile))
    return [{"task": "embedded suite", "prompts": n, "max new tokens": 256}]


def scoring_passes(profile: Profile, methods, rewinding: bool = True) -> dict:
    """How many times each base is scored: the base itself, every method's final checkpoint, and (``rewinding``:
    the first base only, ``benchmark.run_other_bases``) each rewound method's points on the validation split (with
    its final and the base's) plus its chosen point on test."""
    test, validation = 1 + len(methods), 0
    for method in methods:
        if rewinding and method in profile.rewind_methods:
            spec = train_spec(profile, sized_method(profile, method))
            validation += len(variants(profile, spec)) + 1
            test += 1
    validation += 1 if validation else 0  # the base on validation
    return {"test": test, "validation": validation}


def plan(profile: Profile, gpu_memory_gib: float | None = None) -> dict:
    """Every table ``python -m arena plan`` prints, as data: per base, the work of each stage and its estimated time,
    and per method the memory estimate against the GPU's (``gpu_memory_gib``, else the GPU present, else 24)."""
    gpu = gpu_memory_gib or _present_gpu_gib() or 24.0
    backend = profile.eval_backend
    out = {"profile": profile.name, "gpu GiB": gpu, "assumed": dict(ASSUMED), "bases": []}
    for index, spec in enumerate(profile.models):
        one = _on_gpu(profile, spec)
        scale = ASSUMED["reference parameters"] / _counts(base_config(spec))["total"]
        rows = []
        for method in profile.methods:
            mem = memory(profile, method, index)
            mem["fits"] = mem["total"] <= gpu * GIB
            rows.append(mem)
        runnable = [r["method"] for r in rows if r["fits"]]
        spec0 = train_spec(one, sized_method(one, runnable[0])) if runnable else None
        tokens = profile.steps * profile.batch_size * profile.grad_accum * profile.max_length
        passes = scoring_passes(one, runnable, rewinding=index == 0)
        pass_rows = scoring_pass(one)
        cap_tokens = sum(r["prompts"] * r["max new tokens"] for r in pass_rows)
        val_cap = sum(r["prompts"] * r["max new tokens"] for r in scoring_pass(one, "validation"))
        gen_rate = ASSUMED[f"generate tokens/s ({backend})"] * scale
        train_h = len(runnable) * tokens / (ASSUMED["train tokens/s"] * scale) / 3600
        generated = (passes["test"] * cap_tokens + passes["validation"] * val_cap) * ASSUMED["generated / cap"]
        score_h = generated / gen_rate / 3600
        checkpoints = len(spec0.save_steps()) if spec0 else 0
        disk = sum(r["trainable"] * 4 * checkpoints for r in rows if r["fits"])
        out["bases"].append({"base": spec.name, "methods": rows, "runnable": runnable,
                             "skipped": {r["method"]: _why_not(r, gpu) for r in rows if not r["fits"]},
                             "training tokens per method (at most)": tokens, "checkpoints per method": checkpoints,
                             "scoring pass": pass_rows, "scoring passes": passes,
                             "generated tokens per pass (at the cap)": cap_tokens,
                             "generated tokens per validation pass (at the cap)": val_cap,
                             "checkpoint disk": disk,
                             # chapters 03-05 analyse the first base only (benchmark.run_other_bases)
                             "base SVD cache disk": svd_cache_bytes(base_config(spec)) if index == 0 else 0,
                             "training hours (estimate)": train_h,
                             "scoring hours (estimate)": score_h, "hours (estimate)": train_h + score_h})
    out["hours (estimate)"] = sum(b["hours (estimate)"] for b in out["bases"])
    return out


def _on_gpu(profile: Profile, spec) -> Profile:
    """``profile`` for one base, as it runs on a CUDA GPU: quantisation "auto" means nf4 there."""
    quantization = "nf4" if profile.quantization == "auto" else profile.quantization
    return dataclasses.replace(profile, models=(spec,), quantization=quantization)


def _why_not(row: dict, gpu: float) -> str:
    return (f"needs about {row['total'] / GIB:.1f} GiB on a {gpu:g} GiB GPU ({row['base precision']} weights "
            f"{row['weights'] / GIB:.1f} GiB, trainable state {row['trainable state'] / GIB:.1f} GiB): run it on "
            "the smaller base, on a larger GPU (--gpu-memory), or leave it out of --methods")


def _present_gpu_gib() -> float | None:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory / GIB
    return None


def require_fit(result: dict) -> None:
    """Stop with the fix when a base has no method that fits the GPU."""
    for base in result["bases"]:
        if not base["runnable"]:
            raise ArenaError(f"no method of profile {result['profile']!r} fits {result['gpu GiB']:g} GiB on "
                             f"{base['base']}: lower batch_size or max_length (--batch-size, --max-length), or name a "
                             "larger GPU with --gpu-memory")


def format_plan(result: dict) -> str:
    """The plan as text tables (what ``make plan`` prints)."""
    g = lambda b: f"{b / GIB:.1f}"  # noqa: E731
    a = result["assumed"]
    lines = [f"# plan for profile {result['profile']!r} on a {result['gpu GiB']:g} GiB GPU",
             "", "Times are ESTIMATES from these assumptions (not measurements; `make bench` measures):",
             f"  training {a['train tokens/s']:.0f} tokens/s, generation {a['generate tokens/s (hf)']:.0f} tokens/s "
             f"(hf) / {a['generate tokens/s (vllm)']:.0f} (vllm) for a {a['reference parameters'] / 1e9:.1f}B base "
             "(scaled by size); answers use "
             f"{a['generated / cap']:.0%} of their generation cap on average."]
    for b in result["bases"]:
        lines += ["", f"## {b['base']}", "",
                  "| method | base | trainable | weights GiB | trainable state GiB | activations GiB (ckpt / none) "
                  "| logits GiB | total GiB | fits |", "|---|---|---|---|---|---|---|---|---|"]
        for r in b["methods"]:
            lines.append(f"| {r['method']} | {r['base precision']} | {r['trainable']:,} | {g(r['weights'])} | "
                         f"{g(r['trainable state'])} | {g(r['activations (checkpointing)'])} / "
                         f"{g(r['activations (none)'])} | {g(r['logits'])} | {g(r['total'])} | "
                         f"{'yes' if r['fits'] else 'NO'} |")
        for method, why in b["skipped"].items():
            lines.append(f"- skipped {method}: {why}")
        lines += ["", "| stage | work | estimate |", "|---|---|---|",
                  f"| training | {len(b['runnable'])} methods × {b['training tokens per method (at most)']:,} tokens "
                  f"(at most), {b['checkpoints per method']} checkpoints each, "
                  f"{b['checkpoint disk'] / GIB:.2f} GiB of checkpoints; "
                  + (f"base SVD cache for chapter 03 {b['base SVD cache disk'] / GIB:.1f} GiB | "
                     if b["base SVD cache disk"] else "no analyses or rewinding on this base (chapters 03-05 read "
                     "the first) | ")
                  + f"{b['training hours (estimate)']:.1f} h |",
                  f"| scoring | {b['scoring passes']['test']} test passes + {b['scoring passes']['validation']} "
                  f"validation passes; a test pass is "
                  + ", ".join(f"{r['task']} {r['prompts']:,} prompts ≤ {r['max new tokens']} tokens"
                              for r in b["scoring pass"])
                  + f" ({b['generated tokens per pass (at the cap)']:,} tokens at the cap; a validation pass "
                  f"{b['generated tokens per validation pass (at the cap)']:,}) | "
                  f"{b['scoring hours (estimate)']:.1f} h |"]
    lines += ["", f"Total: {result['hours (estimate)']:.1f} h (estimate)."]
    return "\n".join(lines)
