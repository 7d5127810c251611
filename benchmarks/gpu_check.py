"""What one GPU does with the onegpu path, measured beside the plan's estimate (``arena/plan.py``), in minutes and with
no hub: everything runs on random weights of the bases' exact architectures.

    python benchmarks/gpu_check.py          # on a CUDA card: planned for under 8 minutes (not yet run on one)
    python benchmarks/gpu_check.py --cpu    # reduced shapes on the CPU (seconds): what CI runs so this cannot rot

Sections, each printed as it finishes:

1. **kit path**: Qwen2.5-7B and Llama-3.2-3B-Instruct cut to 2 layers, in nf4 with gradient checkpointing on: every
   onegpu method trains 2 steps through the kit's own loader, k-bit preparation, method builder and training step at
   1 x ``max_length``: the losses, the peak memory beside the plan's training estimate for the same 2-layer base, and
   the memory left once the method's objects are gone (what would build up across methods in one process);
2. **OFT rewinding**: the dense path at alpha 0 and 1 against the base and the trained model, and its memory;
3. **training throughput** at the full Qwen2.5-7B shape: LoRA r8 and OFT b32 at 1 x 2048 (``train_throughput``'s own
   measurement);
4. **decode**: milliseconds per generate step of the full Qwen2.5-7B in nf4 at batch 8 and 1, contexts 1k and 8k,
   through the kit's scorer's generation loop (``generation.generate_compacting``);
5. **SVD**: seconds for one fp32 SVD of a 3584 x 18944 matrix (the weight analysis takes ~2,500 of its kind).

On CUDA the measured figures the plan uses (training tokens/s, SVD seconds, decode host time) are stored in the results
store (``benchmarks/gpu_check.json``), where ``make plan`` on a card of the same class picks them up as measured.
``--cpu`` (or no CUDA) runs the same code at reduced shapes: the smoke model in nf4 on bitsandbytes' CPU kernels.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import sys
import time

import torch

from train_throughput import measure_architecture

QWEN = "Qwen/Qwen2.5-7B"


@dataclasses.dataclass
class Setting:
    """The shapes of a run: the GPU check's, or ``--cpu``'s reduced ones."""

    cuda: bool
    tokens: int  # rows of the kit-path training step (the profile's max_length on a GPU)
    throughput_arch: str
    throughput_tokens: int
    decode_arch: str
    decode_contexts: tuple[int, ...]
    decode_steps: int
    svd_shape: tuple[int, int]


GPU = Setting(True, 2048, QWEN, 2048, QWEN, (1024, 8192), 32, (3584, 18944))
CPU = Setting(False, 128, "smoke", 128, "smoke", (64, 256), 16, (256, 1352))


def log(line: str = "") -> None:
    print(line, flush=True)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB" if abs(n) >= 2**20 else f"{n / 2**10:,.1f} KiB"


def allocated() -> int:
    """Bytes of tensors alive now: the CUDA allocator's count, or on the CPU every tensor the collector reaches."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        return torch.cuda.memory_allocated()
    seen, total = set(), 0
    for obj in gc.get_objects():
        try:
            if torch.is_tensor(obj) and obj.device.type == "cpu":
                storage = obj.untyped_storage()
                if storage._cdata not in seen:
                    seen.add(storage._cdata)
                    total += storage.nbytes()
        except Exception:  # a half-built object in the collector's list: nothing to count
            continue
    return total


def random_batch(vocab: int, tokens: int, seed: int) -> dict:
    ids = torch.randint(0, vocab, (1, tokens), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "labels": ids, "attention_mask": torch.ones_like(ids)}


# --------------------------------------------------------------------------------------------------- 1-2 kit path

def kit_bases(setting: Setting):
    """The onegpu profile on each base as the check runs it: the 2-layer architectures on a GPU, the smoke model on
    the CPU; nf4, checkpointing on, one row of ``setting.tokens``."""
    from arena.profiles import dry_run_of, get_profile, SMOKE_MODEL

    onegpu = get_profile("onegpu")
    specs = dry_run_of(onegpu).models if setting.cuda else (SMOKE_MODEL,)
    return [dataclasses.replace(onegpu, models=(spec,), quantization="nf4", gradient_checkpointing="on",
                                batch_size=1, grad_accum=1, max_length=setting.tokens, steps=2, save_every=2,
                                optimizer="adamw", extra={}) for spec in specs]


def train_two_steps(profile, method: str, cuda: bool):
    """The kit's path for one method: base as the trainer loads it, k-bit preparation and checkpointing, the
    method at the profile's budget, and two of the trainer's own steps. Returns (model, losses, peak bytes)."""
    from arena.distributed import Single
    from arena.methods import build, get_method
    from arena.methods.quantized import base_quantization
    from arena.models import base_config, device, load_base
    from arena.plan import peak_tracker, tensor_bytes
    from arena.runs import prepare_for_training, sized_method, train_spec, training_dtype
    from arena.train import make_optimizer, optimizer_step

    quantization, note = base_quantization(profile, method)
    before = allocated()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model, _ = load_base(profile.model, quantization,
                         dtype=training_dtype(get_method(method), quantization, note, device()))
    model = prepare_for_training(model, quantization, True)
    sized = sized_method(profile, method)
    torch.manual_seed(0)
    model = build(method, model, sized.size, steps=profile.steps)
    optimizer, scheduler = make_optimizer(model, train_spec(profile, sized))
    model.train()
    vocab = base_config(profile.model).vocab_size
    tracker, static = (None, 0) if cuda else (peak_tracker(), tensor_bytes(model))
    losses = []
    with tracker or contextlib.nullcontext():
        for step in range(profile.steps):
            loss, _, _ = optimizer_step(model, model, [random_batch(vocab, profile.max_length, step)], optimizer,
                                        scheduler, 1, Single())
            losses.append(loss)
    peak = torch.cuda.max_memory_allocated() - before if cuda else static + tracker.peak
    model.eval()
    return model, losses, peak


def kit_path(setting: Setting, failures: list) -> tuple[dict, list[str]]:
    """Every onegpu method on each 2-layer base; OFT's model on the first base also goes through rewinding, whose
    lines come back to be printed after the tables."""
    from arena.plan import CUDA_OVERHEAD, memory

    rows, rewinding = {}, []
    for profile in kit_bases(setting):
        log(f"## kit path: {profile.model.name} (nf4, gradient checkpointing on, 1 x {profile.max_length} tokens, "
            f"2 steps)")
        log(f"{'method':<8}{'losses':>22}{'peak':>14}{'plan':>14}{'plan/peak':>11}{'left after':>14}")
        start = allocated()
        for method in profile.methods:
            t0 = time.perf_counter()
            try:
                model, losses, peak = train_two_steps(profile, method, setting.cuda)
                if method == "oft" and not rewinding:
                    rows["rewinding"], rewinding = oft_rewinding(profile, model, setting)
                del model
            except Exception as err:  # one method's failure is reported, the others still run
                failures.append(f"{profile.model.name} {method}: {type(err).__name__}: {err}")
                log(f"{method:<8} FAILED: {type(err).__name__}: {str(err)[:300]}")
                continue
            left = allocated() - start
            plan = memory(profile, method)["training total"] - CUDA_OVERHEAD
            finite = all(math.isfinite(x) for x in losses)
            if not finite:
                failures.append(f"{profile.model.name} {method}: losses {losses}")
            log(f"{method:<8}{', '.join(f'{x:.3f}' for x in losses):>22}{mib(peak):>14}{mib(plan):>14}"
                f"{plan / peak:>11.2f}{mib(left):>14}   ({time.perf_counter() - t0:.0f} s)")
            rows[f"{profile.model.name} {method}"] = {"losses": losses, "peak bytes": peak, "plan bytes": plan,
                                                      "left bytes": left}
        log("(peak: bytes allocated at the step's peak, weights included; plan: its training total less the CUDA "
            "context; left: what the method leaves allocated once its model and optimiser are gone)")
        log()
    return rows, rewinding


def oft_rewinding(profile, model, setting: Setting) -> tuple[dict, list[str]]:
    """OFT's dense rewinding path at alpha 0 and 1 against the base (adapter off) and the trained model: the result
    and its report's lines."""
    from arena.models import base_config
    from arena.plan import _counts
    from arena.rewind import DenseInterpolation
    from arena.weight_analysis import pretrained_source

    batch = random_batch(base_config(profile.model).vocab_size, min(256, profile.max_length), 99)
    batch = {k: v.to(next(model.parameters()).device) for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        final = model(**batch).logits.float()
        with model.disable_adapter():
            base = model(**batch).logits.float()
        read_w0 = pretrained_source(profile)  # the smoke model's source holds its whole state: not the path's
        before = allocated()
        if setting.cuda:
            torch.cuda.reset_peak_memory_stats()
        path = DenseInterpolation(model, read_w0)
        held = allocated() - before
        out = {}
        for alpha, reference in ((0.0, base), (1.0, final)):
            with path.at(alpha) as m:
                logits = m(**batch).logits.float()
            out[alpha] = float((logits - reference).abs().max() / reference.abs().max())
        peak = torch.cuda.max_memory_allocated() - before if setting.cuda else None
        again = model(**batch).logits.float()
    restored = bool(torch.equal(again, final))
    pair = 2 * 4 * max(m * n for m, n in _counts(base_config(profile.model))["shapes"])
    lines = [f"## OFT rewinding: {profile.model.name}, dense path W0 + alpha dW",
             f"alpha 0 vs the base: max |diff| {out[0.0]:.2e} of the logits' largest; alpha 1 vs the trained model: "
             f"{out[1.0]:.2e}; the trained model restored exactly on exit: {restored}",
             f"memory: held between points {mib(held)}" + (f", peak over both points {mib(peak)}" if peak is not None
                                                           else "")
             + f" (one fp32 W0 + dW pair of the largest matrix: {mib(pair)})", ""]
    return {"alpha 0": out[0.0], "alpha 1": out[1.0], "restored": restored, "held bytes": held,
            "peak bytes": peak}, lines


# --------------------------------------------------------------------------------------------------- 3-5 full shape

def throughput(setting: Setting, cls, failures: list) -> dict:
    from arena.plan import METHOD_COST

    log(f"## training throughput: {setting.throughput_arch} (random weights, nf4, checkpointing on), "
        f"1 x {setting.throughput_tokens}")
    log(f"{'method':<10}{'tokens/s':>10}{'plan':>10}{'s/step':>9}{'peak':>12}")
    rows = {}
    for method, cost in (("lora:8", "lora"), ("oft:32", "oft")):
        gc.collect()
        if setting.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            r = measure_architecture(setting.throughput_arch, method, setting.throughput_tokens, 1, steps=3,
                                     warmup=1, quantization="nf4", layers=None, optimizer_name="adamw",
                                     checkpointing="on")
        except Exception as err:
            failures.append(f"throughput {method}: {type(err).__name__}: {err}")
            log(f"{method:<10} FAILED: {type(err).__name__}: {str(err)[:300]}")
            continue
        plan = cls.figures["train tokens/s"].value / METHOD_COST[cost].value
        peak = r.get("peak_gpu_mb", r["peak_rss_mb"]) * 2**20
        log(f"{r['method']:<10}{r['tokens_per_s']:>10.0f}{plan:>10.0f}{r['s_per_step']:>9.2f}{mib(peak):>12}")
        rows[method] = r
    log(f"(plan: the {cls.name} class's {cls.figures['train tokens/s'].status} figure over each method's cost; peak: "
        + ("GPU memory allocated)" if setting.cuda else "the process's resident memory)"))
    log()
    return rows


def decode(setting: Setting, cls) -> dict:
    """ms per generate step through the kit's generation loop, after a prefill of the context."""
    from arena.generation import generate_compacting
    from arena.models import architecture_config, random_base
    from arena.plan import decode_ms

    config = architecture_config(setting.decode_arch)
    model = random_base(setting.decode_arch, "nf4")
    model.generation_config.eos_token_id = None  # random weights: a row must not end early
    log(f"## decode: {setting.decode_arch} (random weights, nf4) through generation.generate_compacting")
    log(f"{'batch':>6}{'context':>9}{'ms/step':>10}{'plan':>8}")
    device = next(model.parameters()).device
    rows = {}
    never = lambda made: [False] * len(made)  # noqa: E731
    for rows_n in (8, 1):
        for context in setting.decode_contexts:
            ids = torch.randint(0, config.vocab_size, (rows_n, context), generator=torch.Generator().manual_seed(0))
            ids, mask = ids.to(device), torch.ones_like(ids).to(device)
            times = []
            for new in (1, 1 + setting.decode_steps):  # the difference is decode steps alone, prefill taken out
                with torch.no_grad():
                    _sync(setting)
                    t0 = time.perf_counter()
                    generate_compacting(model, ids, mask, new, never, 0)
                    _sync(setting)
                    times.append(time.perf_counter() - t0)
            ms = (times[1] - times[0]) / setting.decode_steps * 1e3
            plan = decode_ms(cls, config, "nf4", rows_n, context)
            log(f"{rows_n:>6}{context:>9}{ms:>10.1f}{plan:>8.0f}")
            rows[f"batch {rows_n}, context {context}"] = {"ms": ms, "plan ms": plan}
    log("(plan: its decode model for this card class, host time plus the bytes a step reads)")
    log()
    del model
    return rows


def _sync(setting: Setting) -> None:
    if setting.cuda:
        torch.cuda.synchronize()


def svd(setting: Setting, cls) -> dict:
    m, n = setting.svd_shape
    device = "cuda" if setting.cuda else "cpu"
    torch.linalg.svd(torch.randn(64, 256, device=device), full_matrices=False)  # solver set-up outside the timing
    W = torch.randn(m, n, device=device, generator=torch.Generator(device).manual_seed(0))
    out = {}
    for name, fn in (("svd", lambda: torch.linalg.svd(W, full_matrices=False)),
                     ("svdvals", lambda: torch.linalg.svdvals(W))):
        _sync(setting)
        t0 = time.perf_counter()
        fn()
        _sync(setting)
        out[name] = time.perf_counter() - t0
    plan = cls.figures["svd s"].value
    log(f"## SVD: fp32 {m} x {n} on {device}")
    log(f"svd {out['svd']:.2f} s (plan {plan:g} s, {cls.figures['svd s'].status}); singular values only "
        f"{out['svdvals']:.2f} s")
    log()
    return out


# --------------------------------------------------------------------------------------------------- main

def store(result: dict, setting: Setting) -> str | None:
    """The figures the plan reads as measured for this card's class (CUDA only: a CPU says nothing about a card)."""
    if not setting.cuda:
        return None
    from arena.models import architecture_config
    from arena.plan import _counts, NF4_BYTES, present_gpu_gib, SHARED
    from arena.provenance import provenance
    from arena.store import results_root

    figures = {}
    if "lora:8" in result["throughput"]:
        figures["train tokens/s"] = result["throughput"]["lora:8"]["tokens_per_s"]
    if "svd" in result["svd"]:
        figures["svd s"] = result["svd"]["svd"]
        figures["svdvals / svd"] = result["svd"]["svdvals"] / result["svd"]["svd"]
    one = result["decode"].get("batch 1, context 1024")
    if one:  # the host's share of a step: what is left once the bytes it reads are paid at the spec bandwidth
        c = _counts(architecture_config(QWEN))
        read = c["linear"] * NF4_BYTES + c["head"] * 2
        gpu_class = result["gpu class"]
        bandwidth = gpu_class.figures["memory bandwidth"].value * 1e9 * SHARED["bandwidth efficiency"].value
        figures["decode host ms (nf4)"] = max(1.0, one["ms"] - read / bandwidth * 1e3)
    folder = results_root() / "benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gpu_check.json"
    path.write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "gpu GiB": present_gpu_gib(),
                                "time": time.strftime("%F %T"), "figures": figures,
                                "measurements": {k: v for k, v in result.items() if k != "gpu class"},
                                "provenance": provenance()}, indent=1, default=str))
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="reduced shapes on the CPU (what CI runs)")
    args = parser.parse_args()
    from arena.models import configure_torch
    from arena.plan import GPU_CLASSES, gpu_class, present_gpu_gib
    from arena.progress import quiet_libraries

    setting = CPU if args.cpu or not torch.cuda.is_available() else GPU
    configure_torch()
    quiet_libraries()
    start = time.perf_counter()
    gib = present_gpu_gib() if setting.cuda else None
    cls = gpu_class(gib) if gib else GPU_CLASSES[0]
    where = (f"{torch.cuda.get_device_name(0)}, {gib:.1f} GiB: the plan's {cls.name} class" if setting.cuda else
             f"CPU at reduced shapes (--cpu); the plan's figures shown are its {cls.name} class's")
    log(f"# gpu_check on {where}")
    log()
    failures: list[str] = []
    result = {"gpu class": cls}
    result["kit path"], rewinding = kit_path(setting, failures)
    for line in rewinding or ["## OFT rewinding: not run (OFT failed above)", ""]:
        log(line)
    result["throughput"] = throughput(setting, cls, failures)
    result["decode"] = decode(setting, cls)
    result["svd"] = svd(setting, cls)
    saved = store(result, setting)
    log(f"## done in {time.perf_counter() - start:.0f} s" + (f"; measured figures stored in {saved} (make plan uses "
                                                          "them for this card class)" if saved else ""))
    if failures:
        log("FAILED: " + "; ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
