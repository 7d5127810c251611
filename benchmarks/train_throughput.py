"""Training throughput and peak memory per method on this device, as ratios to LoRA (issue 3; peers.md reports OFT at
~0.79x LoRA's speed and BOFT at ~0.14x on a GPU).

    python benchmarks/train_throughput.py [--profile embedded] [--methods full,lora,oft] [--steps 6] [--warmup 2]

Each method runs in a fresh process (peak memory is per process: RSS on CPU, max allocated on CUDA) on the profile's
base, batch size and data, timing ``--steps`` optimiser steps after ``--warmup`` untimed ones. Prints a table; this is a
measurement, not a test: nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def measure(profile_name: str, method: str, steps: int, warmup: int) -> dict:
    import torch

    from arena.benchmark import _prepare, sized_method, train_spec
    from arena.methods import build, get_method
    from arena.pipeline import ensure_assets
    from arena.profiles import get_profile
    from arena.provenance import peak_memory_mb
    from arena.models import bf16_compute
    from arena.train import make_optimizer, micro_batch

    profile = get_profile(profile_name)
    ensure_assets(profile)
    sized = sized_method(profile, method)
    spec = train_spec(profile, sized)
    model, tokenizer, examples = _prepare(profile, spec)
    torch.manual_seed(0)
    init = micro_batch(examples, spec, 0, 0, tokenizer.pad_token_id) if get_method(method).needs_init_batch else None
    model = build(method, model, spec.size, init_batch=init, steps=spec.steps)
    optimizer, scheduler = make_optimizer(model, spec)
    device = next(model.parameters()).device
    model.train()
    tokens, start = 0, None
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        batch = {k: v.to(device) for k, v in micro_batch(examples, spec, step, 0, tokenizer.pad_token_id).items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16_compute(device)):  # as the trainer does
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= warmup:
            tokens += int((batch["attention_mask"]).sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    return {"method": sized.label, "trainable": sized.count, "tokens_per_s": tokens / wall,
            "s_per_step": wall / steps, **peak_memory_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--methods", default=None, help="comma-separated (default: the profile's list)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one method, print JSON
    args = parser.parse_args()
    if args.one:
        from arena.models import configure_torch

        configure_torch()
        print("RESULT " + json.dumps(measure(args.profile, args.one, args.steps, args.warmup)))
        return
    from arena.models import device
    from arena.profiles import get_profile

    methods = args.methods.split(",") if args.methods else list(get_profile(args.profile).methods)
    if "lora" not in methods:
        methods.insert(0, "lora")
    rows = []
    for m in methods:
        out = subprocess.run([sys.executable, __file__, "--profile", args.profile, "--one", m, "--steps",
                              str(args.steps), "--warmup", str(args.warmup)], capture_output=True, text=True)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"{m}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[7:]))
        print(f"measured {m}", file=sys.stderr)
    lora = next(r for r in rows if r["method"].startswith("lora"))
    mem = "peak_gpu_mb" if "peak_gpu_mb" in lora else "peak_rss_mb"
    print(f"device: {device()}  profile: {args.profile}  steps timed: {args.steps} (after {args.warmup} warm-up)")
    print(f"{'method':<14}{'trainable':>12}{'tokens/s':>11}{'x LoRA':>8}{'s/step':>8}{mem:>14}{'x LoRA':>8}")
    for r in rows:
        print(f"{r['method']:<14}{r['trainable']:>12,}{r['tokens_per_s']:>11.1f}"
              f"{r['tokens_per_s'] / lora['tokens_per_s']:>8.2f}{r['s_per_step']:>8.2f}{r[mem]:>14.0f}"
              f"{r[mem] / lora[mem]:>8.2f}")


if __name__ == "__main__":
    main()
