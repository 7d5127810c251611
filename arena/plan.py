"""What a profile will cost before anything downloads or trains (``python -m arena plan``, ``make plan``).

Memory, per method and base, in both phases a method goes through on one CUDA card:

- **training** at the profile's micro-batch (``batch_size`` rows of ``max_length`` tokens: the peak is at the longest
  row): the base's weights (nf4 linears at 4.127 bits per weight; peft's k-bit preparation casts the embeddings, the
  head and the norms to fp32; a method with no 4-bit path trains on a bf16 base, full finetuning on fp32 master
  weights), the trainable state (fp32 weight, gradient and AdamW's two moments), the checkpointed layers' inputs,
  and the larger of two transient phases: the loss (logits, autocast's bf16 copy of the head and of the trained
  weights) and one layer's recomputation and backward;
- **scoring**: the weights as scored (no k-bit preparation: head and embeddings stay bf16), the key-value cache of a
  generation batch at its longest task, or the logits of the forgetting proxy's document, whichever is larger; one
  model resident at a time.

A method runs on a base where both phases fit the card (``methods_on``; ``fit_sentences`` says why not, with these
numbers): full finetuning of the 3B fits an 80 GB card, of the 7B no single card.

The byte counts per term come from measuring the kit's own training step on CPU (bitsandbytes' CPU kernels run the
same Python as on CUDA under bf16 autocast; ``tests/test_plan.py`` measures the smoke model in nf4 against them);
``benchmarks/gpu_check.py`` measures them at the real shapes on a GPU.

Time, per base: downloads, model loads, training (a micro-batch costs its longest row, taken at ``max_length``),
the weight analysis's SVDs, every scoring pass (a generation batch costs its longest answer: a row that never stops
runs to the task's cap, 8,192 tokens for math), the forgetting proxies and chapter 06's worked example. Every
throughput figure is stated in ``GPU_CLASSES`` and ``SHARED`` with its status ("assumed" until a GPU measures it;
``benchmarks/gpu_check.py`` stores measurements the plan then uses for that card class) and its source.
"""

from __future__ import annotations

import dataclasses
import json
import math

from .errors import ArenaError
from .methods import get_method
from .methods.quantized import base_quantization
from .methods.registry import skeleton
from .models import base_config
from .profiles import Profile
from .reasoning import FAMILIES
from .rewind import variants
from .runs import sized_method, train_spec
from .scores import STOCK_GEN_TOKENS, stock_slices
from .store import results_root
from .suite import arithmetic_items

GIB = 1024 ** 3
NF4_BYTES = 4.127 / 8  # per weight: 4-bit codes, an 8-bit absmax per 64 weights, an fp32 scale per 256 absmax
NF4_MATRIX_BYTES = 1092  # per matrix: the nested quantisation's 256-entry fp32 code book, nf4's 16 and an offset
CUDA_OVERHEAD = 1 * GIB  # CUDA context and the caching allocator's slack
REFERENCE_PARAMETERS = 7.6e9  # Qwen2.5-7B: the figures are stated for it, other bases scale by their parameters
REFERENCE_SVD = (3584, 18944)  # Qwen2.5-7B's MLP matrix: the SVD the figures time


@dataclasses.dataclass(frozen=True)
class Figure:
    """One number the time estimate rests on, with whether it was measured and where it comes from."""

    value: float
    unit: str
    status: str  # "assumed" or "measured"
    source: str


@dataclasses.dataclass(frozen=True)
class GpuClass:
    """A class of card by memory: what torch reports as its memory, and the figures for the reference base on it."""

    name: str
    examples: str
    gib: float
    figures: dict


_SPEC = "the example card's spec sheet"
_READING = "a reading of the kit's path and public reports, nothing measured on a GPU yet"
GPU_CLASSES = (
    GpuClass("24 GB", "RTX 4090", 23.6, {
        "memory bandwidth": Figure(1008, "GB/s", "assumed", _SPEC),
        "train tokens/s": Figure(1500, "tokens/s", "assumed", "LoRA r8 on Qwen2.5-7B nf4, 1 x 2048, checkpointing: "
                                 "the kit's earlier planning figure, " + _READING),
        "svd s": Figure(6.0, "s", "assumed", "fp32 torch.linalg.svd of 3584 x 18944 on the card; " + _READING),
        "vllm tokens/s": Figure(600, "tokens/s", "assumed", "vLLM on a bf16 7B whose weights leave ~6 GB of cache; "
                                + _READING)}),
    GpuClass("48 GB", "L40S / RTX A6000", 44.4, {
        "memory bandwidth": Figure(864, "GB/s", "assumed", _SPEC + " (L40S; an A6000 has 768)"),
        "train tokens/s": Figure(1700, "tokens/s", "assumed", "as the 24 GB class, scaled by dense bf16 throughput; "
                                 + _READING),
        "svd s": Figure(6.0, "s", "assumed", _READING),
        "vllm tokens/s": Figure(1000, "tokens/s", "assumed", _READING)}),
    GpuClass("80 GB", "H100 80GB", 79.1, {
        "memory bandwidth": Figure(3350, "GB/s", "assumed", _SPEC + " (SXM; PCIe has 2000)"),
        "train tokens/s": Figure(4000, "tokens/s", "assumed", "about 2.7x the 24 GB class (dense bf16 throughput, "
                                 "less bitsandbytes' dequantisation); " + _READING),
        "svd s": Figure(3.0, "s", "assumed", _READING),
        "vllm tokens/s": Figure(2500, "tokens/s", "assumed", _READING)}),
)
# Figures that do not depend on the card: decoding with transformers' generate is bound by the host's Python and
# kernel launches at these batch sizes (a step of a 7B nf4 model moves ~5 GB, a few ms of bandwidth).
SHARED = {
    "decode host ms (nf4)": Figure(20.0, "ms per step", "assumed", "host time of one generate step of a 28-layer "
                                   "model with bitsandbytes' per-layer calls; " + _READING),
    "decode host ms (bf16)": Figure(12.0, "ms per step", "assumed", "as above without bitsandbytes; " + _READING),
    "adapter host ms": Figure(0.05, "ms per adapted matrix per step", "assumed", "an unmerged peft layer's extra "
                              "kernels (OFT: 3x, it rebuilds its rotation at every forward); " + _READING),
    "bandwidth efficiency": Figure(0.6, "of the spec", "assumed", "fused 4-bit and bf16 GEMV kernels; " + _READING),
    "prefill / train": Figure(3.0, "x training tokens/s", "assumed", "a forward is about a third of a checkpointed "
                              "training step's work (forward, recomputation, backward)"),
    "load s": Figure(40.0, "s per load", "assumed", "a 7B base from local safetensors, quantised on the GPU; "
                     + _READING),
    "download MB/s": Figure(100.0, "MB/s", "assumed", "the hub to a cloud machine; " + _READING),
    "svdvals / svd": Figure(0.35, "of a full SVD", "assumed", "singular values only (no vectors); " + _READING),
}
# A training step's cost relative to LoRA's on the same base (time per token).
METHOD_COST = {
    "lora": Figure(1.0, "x LoRA", "assumed", "the reference"),
    "dora": Figure(2.0, "x LoRA", "assumed", "DoRA recomputes each adapted weight's column norms at every forward "
                   "(a dequantised weight per matrix): about twice LoRA"),
    "oft": Figure(1.27, "x LoRA", "assumed", "peers.md: OFT at ~0.79x LoRA's speed on a GPU"),
    "boft": Figure(7.1, "x LoRA", "assumed", "peers.md: BOFT at ~0.14x LoRA's speed"),
    "vera": Figure(1.1, "x LoRA", "assumed", "rank-256 shared projections at every layer"),
    "full": Figure(1.4, "x LoRA", "assumed", "weight gradients of every matrix, and an fp32 optimiser step"),
    "full-precision LoRA": Figure(0.8, "x LoRA", "assumed", "a LoRA on a bf16 base (PiSSA, MiLoRA, KeepLoRA, "
                                  "chapter 06): no dequantisation"),
}
# Generated answers per stock task: the length of an ordinary answer, the share of rows that never stop (they run to
# the cap), and the prompt (with the chat template).
ANSWERS = {
    "bbh_cot_fewshot": (200, 0.05, 1000),  # 3-shot chain-of-thought exemplars; stops at "Q" or a blank line
    "ifeval": (400, 0.15, 80),
    "nq_open": (10, 0.02, 30),  # stops at a newline or a full stop
    "minerva_math500": (700, 0.10, 1100),  # 4-shot Minerva exemplars
    "aime24": (2000, 0.35, 150),
    "embedded suite": (60, 0.05, 120),
}
ANSWERS_SOURCE = Figure(0, "", "assumed", "a reading of each task's prompt and stop strings and of how a 7B base "
                        "answers (runaway rows: repetition loops, a base model that never emits its end of turn; "
                        "halved for an instruct base, which ends its turns); no answer was generated here")
# The worked example of chapter 06 (notebooks/06_your_method.ipynb): two methods with no 4-bit path, so trained on
# the bf16 base, scored on test and analysed, on the first base; ``subspace`` takes an SVD of every adapted matrix
# each time it is built (training, scoring, the two analyses).
CHAPTER_06 = {"methods": ("subspace", "loha"), "svd builds": 4}

# Bytes per token of one decoder layer's recomputation and backward (coefficients of hidden, key/value and
# intermediate width), measured with a dispatch-mode tensor tracker on CPU under bf16 autocast across widths; the
# per-method differences are dropout copies, bitsandbytes' fp32 outputs and each method's own intermediates.
LAYER_BYTES = {
    ("nf4", "lora"): (60.5, 4.1, 26.1), ("nf4", "dora"): (81.2, 12.4, 38.3), ("nf4", "oft"): (32.8, 4.1, 24.1),
    ("nf4", "vera"): (51.4, 9.1, 30.3), ("nf4", "miss"): (48.4, 4.1, 24.1),
    ("bf16", "lora"): (58.8, 4.3, 22.4), ("fp32", "full"): (37.4, 4.2, 12.5),
}
RANK_BYTES = 21.5  # VeRA: bytes per token per unit of its rank (256), over every adapted matrix of a layer
DORA_MATRIX_BYTES = 14  # DoRA: the dequantised weight, B A and their fp32 sum, per weight of the largest matrix
LOGIT_BYTES = 12  # training: log-softmax's saved output, its incoming and outgoing gradients (fp32)
HEAD_INPUT_BYTES = 6  # training: per hidden unit, what the final norm and the head keep for their backward
PROXY_LOGIT_BYTES = 10  # scoring: the bf16 logits, their fp32 copy and the log-softmax of one proxy document


# --------------------------------------------------------------------------------------------------- the base

def _counts(config) -> dict:
    """Parameters of the base by role (quantisable linears, the LM head and embeddings, the rest) and the shapes of
    the adapted matrices."""
    key = config.to_json_string()
    if key not in _COUNTS:
        _COUNTS[key] = _count(config)
    return _COUNTS[key]


_COUNTS: dict[str, dict] = {}
_SIZED: dict[tuple, object] = {}


def _sized(profile: Profile, method: str):
    """``runs.sized_method`` at the profile's budget, matched once per base, budget and method (a match builds the
    method on a skeleton, a second or two)."""
    key = (profile.model, profile.budget, method)
    if key not in _SIZED:
        _SIZED[key] = sized_method(profile, method)
    return _SIZED[key]


def _count(config) -> dict:
    import torch

    model = skeleton(config)
    head = model.get_output_embeddings()
    counts = {"linear": 0, "head_embed": 0, "other": 0, "head": head.weight.numel(), "shapes": [], "kinds": []}
    seen = set()
    for name, module in model.named_modules():
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue  # tied embeddings count once
            seen.add(id(p))
            if isinstance(module, torch.nn.Linear) and module is not head and p is module.weight:
                counts["linear"] += p.numel()  # biases stay in their dtype under nf4: "other"
                counts["shapes"].append(tuple(p.shape))
                counts["kinds"].append(name.rsplit(".", 1)[-1])  # q_proj, down_proj, ...
            elif isinstance(module, torch.nn.Embedding) or module is head:
                counts["head_embed"] += p.numel()
            else:
                counts["other"] += p.numel()
    counts["total"] = counts["linear"] + counts["head_embed"] + counts["other"]
    counts["kv"] = config.num_key_value_heads * _head_dim(config)
    return counts


def _head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def svd_cache_bytes(config) -> int:
    """Disk of the base-SVD cache the weight analysis keeps (fp32 U, S, Vh of every adapted linear, chapter 03)."""
    return sum(min(m, n) * (m + n + 1) * 4 for m, n in _counts(config)["shapes"])


def _svd_units(shapes) -> float:
    """SVDs of ``shapes`` in units of the reference matrix's (time ~ m n min(m, n))."""
    m0, n0 = REFERENCE_SVD
    return sum(m * n * min(m, n) for m, n in shapes) / (m0 * n0 * min(m0, n0))


def _precision(profile: Profile, method: str) -> str:
    """What the method trains on under ``profile`` on a GPU: nf4, a bf16 base (no 4-bit path), or fp32 (full FT)."""
    m = get_method(method)
    if m.config is None and m.wrap is None:
        return "fp32"
    return base_quantization(profile, method)[0] or "bf16"


def _is_full(method: str) -> bool:
    m = get_method(method)
    return m.config is None and m.wrap is None


# --------------------------------------------------------------------------------------------------- memory

def memory(profile: Profile, method: str, model_index: int = 0, checkpointing: bool | None = None) -> dict:
    """GPU memory in bytes of ``method`` on ``profile.models[model_index]``: every term of training at the profile's
    micro-batch and of scoring (module docstring), each phase's total, and ``total`` (the larger)."""
    one = _on_gpu(profile, profile.models[model_index])
    config = base_config(one.model)
    c = _counts(config)
    precision = _precision(one, method)
    trainable = _sized(one, method).count
    h, i, layers, vocab = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    tokens = profile.batch_size * profile.max_length
    ckpt = profile.gradient_checkpointing != "off" if checkpointing is None else checkpointing

    # training
    if precision == "nf4":  # k-bit preparation: every non-4-bit parameter becomes fp32
        weights = c["linear"] * NF4_BYTES + len(c["shapes"]) * NF4_MATRIX_BYTES
        embed, residual = (c["head_embed"] + c["other"]) * 4, 4
    elif precision == "bf16":
        weights, embed, residual = c["linear"] * 2, (c["head_embed"] + c["other"]) * 2, 2
    else:
        weights, embed, residual = c["linear"] * 4, (c["head_embed"] + c["other"]) * 4, 4
    state_bytes = 10 if "8bit" in profile.optimizer else 16
    state = trainable * (state_bytes - 4 if _is_full(method) else state_bytes)  # full FT's weights are above
    head_copy = c["head"] * 2 if precision != "bf16" else 0  # autocast's bf16 cast, kept for the head's backward
    weight_copies = trainable * 2  # autocast caches bf16 casts of trained (leaf) weights through the forward
    logits = tokens * (vocab * LOGIT_BYTES + h * HEAD_INPUT_BYTES)
    a, b, per_i = LAYER_BYTES.get((precision, method)) or LAYER_BYTES.get((precision, "lora")) or LAYER_BYTES[
        ("nf4", "lora")]
    one_layer = tokens * (a * h + b * c["kv"] + per_i * i)
    if method == "vera":
        one_layer += tokens * RANK_BYTES * _sized(one, method).size
    if method == "dora":
        one_layer += DORA_MATRIX_BYTES * max(m * n for m, n in c["shapes"])
    inputs = layers * h * residual * tokens if ckpt else layers * one_layer  # without: every layer keeps its own
    loss_phase = head_copy + weight_copies + logits
    layer_phase = one_layer if ckpt else 0
    train_total = weights + embed + state + inputs + max(loss_phase, layer_phase) + CUDA_OVERHEAD

    # scoring: 4-bit bases are scored unmerged without k-bit preparation; the others as a bf16 merge
    scored_nf4 = precision == "nf4" and one.eval_backend != "vllm"
    score_weights = (c["linear"] * NF4_BYTES + len(c["shapes"]) * NF4_MATRIX_BYTES + trainable * 4 if scored_nf4
                     else c["linear"] * 2)
    score_weights += (c["head_embed"] + c["other"]) * 2
    rows = profile.generation_batch_size or profile.eval_batch_size
    longest = max(r["max new tokens"] + ANSWERS.get(r["task"], ANSWERS["embedded suite"])[2]
                  for r in scoring_pass(one))
    kv_cache = rows * longest * layers * 2 * c["kv"] * 2
    prompt = max(ANSWERS.get(r["task"], ANSWERS["embedded suite"])[2] for r in scoring_pass(one))
    prefill = rows * prompt * (3 * i + 4 * h) * 2  # the widest activations of a prefill, one layer at a time
    proxy_logits = profile.max_length * vocab * PROXY_LOGIT_BYTES
    score_total = score_weights + max(kv_cache + prefill, proxy_logits) + CUDA_OVERHEAD
    return {"method": method, "base": one.model.name, "base precision": precision, "trainable": trainable,
            "checkpointing": ckpt, "parameters": c["total"],
            "training": {"linear weights": weights, "embeddings, head and norms": embed, "trainable state": state,
                         "checkpointed layer inputs" if ckpt else "activations (no checkpointing)": inputs,
                         "autocast copy of the head": head_copy, "autocast copies of trained weights": weight_copies,
                         "logits": logits, "one layer recomputed": layer_phase,
                         "CUDA context and slack": CUDA_OVERHEAD},
            "training peak phase": "loss" if loss_phase >= layer_phase else "layer",
            "scoring": {"weights": score_weights, "key-value cache": kv_cache, "prefill": prefill,
                        "proxy logits": proxy_logits, "CUDA context and slack": CUDA_OVERHEAD},
            "training total": train_total, "scoring total": score_total, "total": max(train_total, score_total)}


# --------------------------------------------------------------------------------------------------- measuring

def tensor_bytes(model) -> int:
    """Bytes of every tensor ``model`` holds, each storage once: parameters, buffers and bitsandbytes' quantisation
    state (absmax, code books), which hangs off a 4-bit weight rather than the module."""
    import torch

    seen, total = set(), 0
    tensors = [*model.parameters(), *model.buffers()]
    for p in list(tensors):
        state = getattr(p, "quant_state", None)
        if state is not None:
            tensors += [state.absmax, state.code, getattr(state, "offset", None)]
            if getattr(state, "state2", None) is not None:
                tensors += [state.state2.absmax, state.state2.code]
    for t in tensors:
        if torch.is_tensor(t) and (key := t.untyped_storage()._cdata) not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def peak_tracker():
    """A context manager that follows the bytes of the tensors ops create while it is active, on any device (a torch
    dispatch mode, so it sees the forward, the backward and the optimiser; on CPU torch keeps no allocator
    statistics): ``peak`` is the most alive at once above what existed before, ``mark(name)`` keeps the peak so far."""
    import torch
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Tracker(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live, self.current, self.peak, self.marks = {}, 0, 0, {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            # the dead go first: a new storage may reuse a dead one's address, the key here
            for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
                self.current -= self.live.pop(key)[1]
            inputs = {t.untyped_storage()._cdata for t in tree_flatten((args, kwargs))[0] if torch.is_tensor(t)}
            for t in tree_flatten(out)[0]:
                if not torch.is_tensor(t):
                    continue
                storage = t.untyped_storage()
                key = storage._cdata
                if key not in inputs and key not in self.live:  # a view or an in-place result allocates nothing
                    self.live[key] = (StorageWeakRef(storage), storage.nbytes())
                    self.current += storage.nbytes()
            self.peak = max(self.peak, self.current)
            return out

        def mark(self, name: str) -> None:
            self.marks[name] = self.peak

    return Tracker()


# --------------------------------------------------------------------------------------------------- GPU classes

def gpu_class(gib: float) -> GpuClass:
    """The class whose figures apply to a card of ``gib`` GiB (the nearest by memory), with any figure a stored
    ``benchmarks/gpu_check.py`` measurement on that class replaces."""
    nearest = min(GPU_CLASSES, key=lambda g: abs(math.log(g.gib / gib)))
    measured = measured_figures(nearest)
    return dataclasses.replace(nearest, gib=gib, figures={**nearest.figures, **measured}) if measured else \
        dataclasses.replace(nearest, gib=gib)


def measured_figures(cls: GpuClass) -> dict:
    """Figures measured by ``benchmarks/gpu_check.py`` on a card of this class (the latest stored), as Figures."""
    path = results_root() / "benchmarks" / "gpu_check.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if stored.get("gpu GiB") is None or min(GPU_CLASSES, key=lambda g: abs(math.log(g.gib / stored["gpu GiB"]))) \
            .name != cls.name:
        return {}
    where = f"benchmarks/gpu_check.py on {stored.get('gpu')} ({stored.get('time', '?')})"
    return {name: Figure(value, cls.figures[name].unit if name in cls.figures else SHARED[name].unit, "measured",
                         where) for name, value in stored.get("figures", {}).items()
            if name in cls.figures or name in SHARED}


def _figure(cls: GpuClass, name: str) -> float:
    return (cls.figures.get(name) or SHARED[name]).value


def decode_ms(cls: GpuClass, config, precision: str, rows: int, context: int, adapted: int = 0,
              rotation: bool = False) -> float:
    """Estimated milliseconds of one generate step: the host's time (per layer, per unmerged adapted matrix) plus
    the bytes the step reads (weights as scored, the head, the key-value cache) over the card's bandwidth."""
    c = _counts(config)
    host = _figure(cls, "decode host ms (nf4)" if precision == "nf4" else "decode host ms (bf16)")
    host *= config.num_hidden_layers / 28
    host += adapted * _figure(cls, "adapter host ms") * (3 if rotation else 1)
    weights = c["linear"] * (NF4_BYTES if precision == "nf4" else 2) + c["head"] * 2
    cache = rows * context * config.num_hidden_layers * 2 * c["kv"] * 2
    bandwidth = _figure(cls, "memory bandwidth") * 1e9 * _figure(cls, "bandwidth efficiency")
    return host + (weights + cache) / bandwidth * 1e3


# --------------------------------------------------------------------------------------------------- scoring work

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
    """How many times each base is scored: the base once per precision its methods start from (a method with no
    4-bit path is compared with the bf16 base, ``runs.starting_bases``), every method's final checkpoint, and
    (``rewinding``: the first base only, ``benchmark.run_other_bases``) each rewound method's points on the
    validation split (with its final and the base's) plus its chosen point on test."""
    bases = {"nf4" if _precision(profile, m) == "nf4" else "bf16" for m in methods} | {
        "nf4" if profile.quantization == "nf4" else "bf16"}
    test, validation = len(bases) + len(methods), 0
    for method in methods:
        if rewinding and method in profile.rewind_methods:
            spec = train_spec(profile, _sized(profile, method))
            validation += len(variants(profile, spec)) + 1
            test += 1
    validation += 1 if validation else 0  # the base on validation
    return {"test": test, "validation": validation, "bases": sorted(bases)}


def _task_seconds(cls: GpuClass, config, profile: Profile, row: dict, precision: str, adapted: int,
                  rotation: bool, prefill_rate: float, scale: float) -> tuple[float, int]:
    """(seconds, decode steps) of one task's prompts: batches of the generation batch size, each as long as its
    longest answer, or with vLLM every answer's own length at its rate."""
    typical, runaway, prompt = ANSWERS.get(row["task"], ANSWERS["embedded suite"])
    runaway *= 0.5 if profile.model.instruct else 1.0
    cap, n = row["max new tokens"], row["prompts"]
    seconds = n * prompt / prefill_rate
    if profile.eval_backend == "vllm":
        tokens = n * (runaway * cap + (1 - runaway) * typical)
        return seconds + tokens / (_figure(cls, "vllm tokens/s") * scale), 0
    size = profile.generation_batch_size or profile.eval_batch_size
    steps_total = 0
    for rows in [size] * (n // size) + ([n % size] if n % size else []):
        ordinary = (1 - runaway) ** rows
        steps = cap * (1 - ordinary) + min(typical, cap) * ordinary
        steps_total += steps
        ms = decode_ms(cls, config, precision, rows, int(prompt + steps / 2), adapted, rotation)
        seconds += steps * ms / 1e3
    return seconds, round(steps_total)


def _pass_hours(cls, config, profile, split, precision, adapted=0, rotation=False, prefill_rate=1.0,
                scale=1.0) -> tuple[float, int]:
    seconds, steps = 0.0, 0
    for row in scoring_pass(profile, split):
        s, k = _task_seconds(cls, config, profile, row, precision, adapted, rotation, prefill_rate, scale)
        seconds, steps = seconds + s, steps + k
    return seconds / 3600, steps


# --------------------------------------------------------------------------------------------------- the plan

def methods_on(profile: Profile, index: int = 0, gpu_gib: float | None = None) -> dict:
    """Which of the profile's methods run on ``profile.models[index]`` on a card of ``gpu_gib`` GiB (default: the
    GPU present, else the 24 GB class): ``{"run": [...], "skip": {method: why, with the plan's numbers}}``. A method
    runs where both its training and its scoring fit."""
    gib = gpu_gib or present_gpu_gib() or GPU_CLASSES[0].gib
    cls = gpu_class(gib)
    run, skip = [], {}
    for method in profile.methods:
        mem = memory(profile, method, index)
        if mem["total"] <= gib * GIB:
            run.append(method)
        else:
            skip[method] = why_not(mem, cls)
    return {"run": run, "skip": skip}


def why_not(mem: dict, cls: GpuClass) -> str:
    """One sentence: why a method does not fit a card, with the plan's largest terms and the class it would fit."""
    phase = "training" if mem["training total"] >= mem["scoring total"] else "scoring"
    terms = sorted(mem[phase].items(), key=lambda kv: -kv[1])[:3]
    larger = next((g for g in GPU_CLASSES if g.gib * GIB >= mem["total"]), None)
    where = (f"it fits {_a(larger.name)} card (e.g. {larger.examples}; python -m arena plan --gpu-gib {larger.gib:g})"
             if larger else f"no card of the {', '.join(g.name for g in GPU_CLASSES)} classes holds it")
    return (f"{mem['method']} on {mem['base']} needs about {mem[phase + ' total'] / GIB:.1f} GiB for {phase} "
            f"({', '.join(f'{k} {v / GIB:.1f}' for k, v in terms)}); {_a(cls.name)} card (e.g. {cls.examples}) has "
            f"{cls.gib:g} GiB: {where}")


def _a(name: str) -> str:
    return ("an " if name[0] in "8aeiou" else "a ") + name


def fit_sentences(profile: Profile, gpu_gib: float | None = None) -> list[str]:
    """The plan's word on each method that does not fit a base on this card (what the book prints)."""
    return [why for index in range(len(profile.models))
            for why in methods_on(profile, index, gpu_gib)["skip"].values()]


def plan(profile: Profile, gpu_memory_gib: float | None = None) -> dict:
    """Every table ``python -m arena plan`` prints, as data, for one card (``gpu_memory_gib``, else the GPU present,
    else the 24 GB class): per base, which methods run (``methods_on``), the memory terms of each, and every time
    term with its hours."""
    gib = gpu_memory_gib or present_gpu_gib() or GPU_CLASSES[0].gib
    cls = gpu_class(gib)
    out = {"profile": profile.name, "gpu GiB": gib, "gpu class": cls.name, "gpu examples": cls.examples,
           "figures": {k: dataclasses.asdict(v) for k, v in {**cls.figures, **SHARED}.items()},
           "method cost": {k: dataclasses.asdict(v) for k, v in METHOD_COST.items()},
           "answers": {"per task (ordinary tokens, runaway share, prompt tokens)": ANSWERS,
                       "source": ANSWERS_SOURCE.source},
           "bases": []}
    for index, spec in enumerate(profile.models):
        out["bases"].append(_base_plan(profile, index, spec, cls))
    out["hours (estimate)"] = sum(b["hours (estimate)"] for b in out["bases"])
    return out


def _base_plan(profile: Profile, index: int, spec, cls: GpuClass) -> dict:
    one = _on_gpu(profile, spec)
    config = base_config(spec)
    c = _counts(config)
    scale = REFERENCE_PARAMETERS / c["total"]  # compute per token scales with the parameters
    first = index == 0  # chapters 03-06 and rewinding read the first base (benchmark.run_other_bases)
    rows = [dict(memory(profile, m, index), fits=None) for m in profile.methods]
    chosen = methods_on(profile, index, cls.gib)
    for r in rows:
        r["fits"] = r["method"] in chosen["run"]
    runnable = chosen["run"]
    train_rate = _figure(cls, "train tokens/s") * scale
    prefill_rate = train_rate * _figure(cls, "prefill / train")
    adapted = len(c["shapes"])
    terms = []

    def term(name, hours, work, assumed):
        terms.append({"term": name, "hours": hours, "work": work, "rests on": assumed})

    download_s = c["total"] * 2 / (_figure(cls, "download MB/s") * 1e6)
    term("download", download_s / 3600, f"{c['total'] * 2 / 1e9:.1f} GB of bf16 safetensors, once", "download MB/s")

    # training: a micro-batch costs batch x its longest row, taken at max_length (the kept math rows run long)
    tokens = profile.steps * profile.grad_accum * profile.batch_size * profile.max_length
    for m in runnable:
        cost = _cost(one, m)
        term(f"training {m}", tokens * cost.value / train_rate / 3600,
             f"{profile.steps} steps x {profile.grad_accum * profile.batch_size} rows x {profile.max_length} tokens "
             f"(at most) at {cost.value:g}x LoRA's cost", "train tokens/s")

    # scoring: every pass, each with its precision and adapter
    passes = scoring_passes(one, runnable, rewinding=first)
    test_h = {}
    for base in passes["bases"]:
        test_h[f"base ({base})"] = _pass_hours(cls, config, one, "test", base, prefill_rate=prefill_rate,
                                               scale=scale)
    for m in runnable:
        precision = _precision(one, m)
        unmerged = precision == "nf4" and one.eval_backend != "vllm"
        test_h[m] = _pass_hours(cls, config, one, "test", "nf4" if unmerged else "bf16",
                                adapted if unmerged else 0, get_method(m).rotation, prefill_rate, scale)
    for name, (hours, steps) in test_h.items():
        term(f"scoring {name} on test", hours, f"{steps:,} decode steps (batches of "
             f"{one.generation_batch_size or one.eval_batch_size}, each as long as its longest answer)",
             "decode ms per step, answers")
    rewound = [m for m in runnable if first and m in one.rewind_methods]
    for m in rewound:
        spec_m = train_spec(one, _sized(one, m))
        points = len(variants(one, spec_m)) + 1
        unmerged = _precision(one, m) == "nf4" and one.eval_backend != "vllm"
        hours, steps = _pass_hours(cls, config, one, "validation", "nf4" if unmerged else "bf16",
                                   adapted if unmerged else 0, get_method(m).rotation, prefill_rate, scale)
        term(f"rewinding {m}", points * hours + test_h[m][0],
             f"{points} validation passes of {steps:,} decode steps, and its chosen point on test",
             "decode ms per step")
    if rewound:
        hours, steps = _pass_hours(cls, config, one, "validation", "nf4", prefill_rate=prefill_rate, scale=scale)
        term("rewinding: the base on validation", hours, f"{steps:,} decode steps", "decode ms per step")
    proxy_tokens = 2 * one.n_ce_docs * one.max_length
    term("forgetting proxies", len(runnable) * proxy_tokens / prefill_rate / 3600,
         f"{len(runnable)} methods x {one.n_ce_docs} documents x 2 models at <= {one.max_length} tokens", "prefill")

    # the weight analysis (chapter 03) and the methods whose initialisation or build takes SVDs
    svd_s = _figure(cls, "svd s")
    modules = one.spectra_modules
    analysed = [s for s, kind in zip(c["shapes"], c["kinds"], strict=True) if not modules or kind in modules]
    units = _svd_units(analysed)
    starts = {"nf4" if _precision(one, m) == "nf4" else "bf16" for m in runnable} | {"bf16"}  # chapter 06: bf16
    if first:
        n_methods = len(runnable) + len(CHAPTER_06["methods"])
        svds = n_methods * units * (1 + _figure(cls, "svdvals / svd")) + len(starts) * units
        term("weight analysis SVDs (chapter 03)", svds * svd_s / 3600,
             f"{len(analysed) * (2 * n_methods + len(starts)):,} SVDs: {len(analysed)} matrices x ({n_methods} "
             f"methods x (W1, dW's singular values) + {len(starts)} bases), as {svds:.0f} of "
             f"{REFERENCE_SVD[0]} x {REFERENCE_SVD[1]}", "svd s")
    residual = [m for m in runnable if get_method(m).residual]
    if residual:
        term("residual initialisations' SVDs", len(residual) * _svd_units(c["shapes"]) * svd_s / 3600,
             f"{', '.join(residual)}: an SVD of each of {adapted} matrices", "svd s")

    # loads: training, final scoring, its proxy base, the two analyses (first base), each rewinding point
    loads = len(runnable) * (3 + (2 if first else 0)) + len(passes["bases"])
    loads += sum(len(variants(one, train_spec(one, _sized(one, m)))) + 2 for m in rewound)
    term("model loads", loads * _figure(cls, "load s") / scale / 3600, f"{loads} loads", "load s")

    if first:  # chapter 06's worked example on the bf16 base
        ch06 = len(CHAPTER_06["methods"])
        bf16_pass = _pass_hours(cls, config, one, "test", "bf16", prefill_rate=prefill_rate, scale=scale)[0]
        hours = (ch06 * tokens * METHOD_COST["full-precision LoRA"].value / train_rate / 3600 + ch06 * bf16_pass
                 + (CHAPTER_06["svd builds"] * _svd_units(c["shapes"]) * svd_s
                    + ch06 * 5 * _figure(cls, "load s") / scale + ch06 * proxy_tokens / prefill_rate) / 3600)
        term("chapter 06 (your method)", hours,
             f"{ch06} methods on the bf16 base: trained, scored on test, analysed; subspace's SVDs at each of its "
             f"{CHAPTER_06['svd builds']} builds", "train tokens/s, decode, svd s")

    total = sum(t["hours"] for t in terms)
    return {"base": spec.name, "methods": rows, "runnable": runnable, "skipped": chosen["skip"],
            "scoring pass": scoring_pass(one), "validation pass": scoring_pass(one, "validation"),
            "scoring passes": passes, "training tokens per method (at most)": tokens,
            "checkpoints per method": len(train_spec(one, _sized(one, runnable[0])).save_steps())
            if runnable else 0,
            "base SVD cache disk": svd_cache_bytes(config) * len(starts) if first else 0,
            "decode ms per step": {f"{p}, batch {b}, {k // 1024}k context": decode_ms(cls, config, p, b, k)
                                   for p in ("nf4", "bf16") for b in (8, 1) for k in (1024, 8192)},
            "terms": terms, "hours (estimate)": total}


def _cost(profile: Profile, method: str) -> Figure:
    if method in METHOD_COST:
        return METHOD_COST[method]
    if _precision(profile, method) == "bf16":
        return METHOD_COST["full-precision LoRA"]
    return METHOD_COST["lora"]


def _on_gpu(profile: Profile, spec) -> Profile:
    """``profile`` for one base, as it runs on a CUDA GPU: quantisation "auto" means nf4 there."""
    quantization = "nf4" if profile.quantization == "auto" else profile.quantization
    return dataclasses.replace(profile, models=(spec,), quantization=quantization)


def present_gpu_gib() -> float | None:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory / GIB
    return None


def plans(profile: Profile, gpu_gib: float | None = None) -> list[dict]:
    """The plan for the card given, else the one present, else for each class (24, 48 and 80 GB)."""
    gib = gpu_gib or present_gpu_gib()
    return [plan(profile, gib)] if gib else [plan(profile, g.gib) for g in GPU_CLASSES]


def require_fit(result: dict) -> None:
    """Stop with the fix when a base has no method that fits the GPU."""
    for base in result["bases"]:
        if not base["runnable"]:
            raise ArenaError(f"no method of profile {result['profile']!r} fits {result['gpu GiB']:g} GiB on "
                             f"{base['base']}: lower batch_size or max_length (--batch-size, --max-length), or name a "
                             "larger GPU with --gpu-gib")


def format_plan(result: dict) -> str:
    """The plan as text tables (what ``make plan`` prints)."""
    g = lambda b: f"{b / GIB:.1f}"  # noqa: E731
    lines = [f"# plan for profile {result['profile']!r} on {_a(result['gpu class'])} card (e.g. "
             f"{result['gpu examples']}, {result['gpu GiB']:g} GiB)", "",
             "Times are ESTIMATES. The figures they rest on, each with its status and source:"]
    for name, f in result["figures"].items():
        lines.append(f"- {name}: {f['value']:g} {f['unit']} ({f['status'].upper()}: {f['source']})")
    lines.append("- method cost per token: " + ", ".join(f"{k} {v['value']:g}x" for k, v in
                                                         result["method cost"].items())
                 + " (ASSUMED: " + "; ".join(f"{k}: {v['source']}" for k, v in result["method cost"].items()
                                            if k != "lora") + ")")
    answers = result["answers"]["per task (ordinary tokens, runaway share, prompt tokens)"]
    lines.append("- answers (ordinary length, share that runs to the cap, prompt tokens): "
                 + ", ".join(f"{t} {a[0]} / {a[1]:.0%} / {a[2]}" for t, a in answers.items())
                 + f" (ASSUMED: {result['answers']['source']})")
    for b in result["bases"]:
        lines += ["", f"## {b['base']}", "", "Memory (GiB), training at the micro-batch and scoring:", "",
                  "| method | base | trainable | linear weights | embeddings, head, norms | trainable state | "
                  "layer inputs | head copy | trained-weight copies | logits | one layer | training | "
                  "scoring weights | KV cache | proxy logits | scoring | runs |",
                  "|" + "---|" * 17]
        for r in b["methods"]:
            t, s = r["training"], r["scoring"]
            inputs = t.get("checkpointed layer inputs", t.get("activations (no checkpointing)"))
            lines.append(f"| {r['method']} | {r['base precision']} | {r['trainable']:,} | {g(t['linear weights'])} | "
                         f"{g(t['embeddings, head and norms'])} | {g(t['trainable state'])} | {g(inputs)} | "
                         f"{g(t['autocast copy of the head'])} | {g(t['autocast copies of trained weights'])} | "
                         f"{g(t['logits'])} | {g(t['one layer recomputed'])} | {g(r['training total'])} | "
                         f"{g(s['weights'])} | {g(s['key-value cache'])} | {g(s['proxy logits'])} | "
                         f"{g(r['scoring total'])} | {'yes' if r['fits'] else 'NO'} |")
        lines.append("")
        lines.append("(training = weights + state + layer inputs + the larger of the loss phase (head copy, "
                     "trained-weight copies, logits) and one layer, + 1 GiB CUDA context; scoring = weights + the "
                     "larger of KV cache and proxy logits, + 1 GiB)")
        for why in b["skipped"].values():
            lines.append(f"- not run: {why}")
        lines += ["", "Decode ms per step (estimate): " + ", ".join(f"{k} {v:.0f}" for k, v in
                                                                  b["decode ms per step"].items()), "",
                  "| term | work | hours |", "|---|---|---|"]
        for t in b["terms"]:
            lines.append(f"| {t['term']} | {t['work']} | {t['hours']:.2f} |")
        lines.append(f"| **{b['base']}** | | **{b['hours (estimate)']:.1f}** |")
        passes = b["scoring passes"]
        lines += ["", "A test pass: " + ", ".join(f"{r['task']} {r['prompts']:,} prompts <= {r['max new tokens']} "
                                                   "tokens" for r in b["scoring pass"])
                  + f"; {passes['test']} test passes, {passes['validation']} validation passes ("
                  + ", ".join(f"{r['task']} {r['prompts']}" for r in b["validation pass"]) + ")."]
    lines += ["", f"Total on {_a(result['gpu class'])} card (e.g. {result['gpu examples']}): "
              f"{result['hours (estimate)']:.1f} h (estimate)."]
    return "\n".join(lines)
