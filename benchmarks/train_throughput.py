"""Training throughput and peak memory per method on this device, as ratios to LoRA (peers.md reports
OFT at ~0.79x LoRA's speed and BOFT at ~0.14x on a GPU).

    python benchmarks/train_throughput.py [--profile embedded] [--methods full,lora,oft] [--steps 6] [--warmup 2]
    python benchmarks/train_throughput.py --architecture Qwen/Qwen2.5-7B [--methods lora:8,oft:32] [--seq-len 2048]

Profile mode trains on the profile's base, batch size and data (methods at the profile's budget, or ``name:size``).
Architecture mode builds a randomly initialised model with the exact architecture of a paper base (its public config
values, no download; ``--layers`` cuts it for a dry run), nf4 on CUDA, and trains on random token sequences of
``--seq-len`` tokens: the speed and memory a user of the paper profile will see, without the weights. Each method runs
in a fresh process (peak memory is per process: RSS on CPU, max allocated on CUDA), timing ``--steps`` optimiser steps
after ``--warmup`` untimed ones. Prints a table; a measurement, not a test: nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

GPU_TARGET_GB = 24  # Qwen2.5-7B-shaped LoRA and OFT training should fit a 24 GB card


def _timed(model, optimizer, scheduler, next_batch, steps: int, warmup: int) -> dict:
    """Run ``warmup + steps`` optimiser steps with the trainer's own step (``train.optimizer_step``); time the last
    ``steps``."""
    import torch

    from arena.distributed import Single
    from arena.train import optimizer_step

    device = next(model.parameters()).device
    model.train()
    tokens, start = 0, None
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        _, _, seen = optimizer_step(model, model, [next_batch(step)], optimizer, scheduler, 1, Single())
        if step >= warmup:
            tokens += seen
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    return {"tokens_per_s": tokens / wall, "s_per_step": wall / steps}


def _split(method: str) -> tuple[str, int | None]:
    name, _, size = method.partition(":")
    return name, int(size) if size else None


def measure(profile_name: str, method: str, steps: int, warmup: int) -> dict:
    """One method on the profile's base and data."""
    import torch

    from arena.runs import _prepare, sized_method, train_spec
    from arena.methods import build, get_method
    from arena.pipeline import ensure_assets
    from arena.profiles import get_profile
    from arena.provenance import peak_memory_mb
    from arena.train import make_optimizer, micro_batch

    profile = get_profile(profile_name)
    ensure_assets(profile)
    name, size = _split(method)
    sized = sized_method(profile, name, size)
    spec = train_spec(profile, sized)
    model, tokenizer, examples = _prepare(profile, spec)
    torch.manual_seed(0)
    init = micro_batch(examples, spec, 0, 0, tokenizer.pad_token_id) if get_method(name).needs_init_batch else None
    model = build(name, model, spec.size, init_batch=init, steps=spec.steps)
    optimizer, scheduler = make_optimizer(model, spec)
    timing = _timed(model, optimizer, scheduler,
                    lambda step: micro_batch(examples, spec, step, 0, tokenizer.pad_token_id), steps, warmup)
    return {"method": sized.label, "trainable": sized.count, **timing, **peak_memory_mb()}


def measure_architecture(architecture: str, method: str, seq_len: int, batch_size: int, steps: int, warmup: int,
                         quantization: str, layers: int | None, optimizer_name: str, checkpointing: str) -> dict:
    """One method on a random model of the given architecture, on random sequences of ``seq_len`` tokens."""
    import torch

    from arena.runs import gradient_checkpointing, prepare_for_training
    from arena.budget import at_size, match
    from arena.methods import build, get_method
    from arena.models import architecture_config, configure_torch, random_base, resolve_quantization
    from arena.profiles import get_profile
    from arena.provenance import peak_memory_mb
    from arena.train import TrainSpec, make_optimizer

    configure_torch()
    if get_method(_split(method)[0]).needs_init_batch:
        raise SystemExit(f"{method} initialises from a data batch; measure it in profile mode")
    # the options as a profile would take them: the same checks, and the same auto rules as training
    options = get_profile("smoke", quantization=quantization, gradient_checkpointing=checkpointing,
                          optimizer=optimizer_name)
    quant, recompute = resolve_quantization(options), gradient_checkpointing(options)
    config = architecture_config(architecture, layers)
    name, size = _split(method)
    sized = at_size(name, config, size) if size is not None else match(name, config, None)
    model = random_base(architecture, quant, layers)
    model = prepare_for_training(model, quant, recompute)
    torch.manual_seed(0)
    model = build(name, model, sized.size, steps=warmup + steps)
    spec = TrainSpec(method=name, size=sized.size, lr=1e-4, steps=warmup + steps, batch_size=batch_size,
                     grad_accum=1, max_length=seq_len, save_every=steps, seed=0, optimizer=options.optimizer)
    optimizer, scheduler = make_optimizer(model, spec)
    generator = torch.Generator().manual_seed(0)

    def batch(step):
        ids = torch.randint(0, config.vocab_size, (batch_size, seq_len), generator=generator)
        return {"input_ids": ids, "labels": ids, "attention_mask": torch.ones_like(ids)}

    timing = _timed(model, optimizer, scheduler, batch, steps, warmup)
    return {"method": sized.label, "trainable": sized.count, **timing, **peak_memory_mb(),
            "quantization": quant or "none", "gradient_checkpointing": recompute}


def _table(rows: list[dict], header: str) -> None:
    lora = next((r for r in rows if r["method"].startswith("lora")), rows[0])
    mem = "peak_gpu_mb" if "peak_gpu_mb" in lora else "peak_rss_mb"
    print(header)
    gpu = mem == "peak_gpu_mb"
    print(f"{'method':<14}{'trainable':>13}{'tokens/s':>11}{'x LoRA':>8}{'s/step':>8}{mem:>14}{'x LoRA':>8}"
          + (f"{'reserved_mb':>13}  fits {GPU_TARGET_GB} GB" if gpu else ""))
    for r in rows:
        # fits: torch's reserved peak plus ~0.5 GB of CUDA context must stay under the card's memory
        fits = (f"{r['peak_gpu_reserved_mb']:>13.0f}  " + ("yes" if r["peak_gpu_reserved_mb"] + 512
                                                              <= GPU_TARGET_GB * 1024 else "no")) if gpu else ""
        print(f"{r['method']:<14}{r['trainable']:>13,}{r['tokens_per_s']:>11.1f}"
              f"{r['tokens_per_s'] / lora['tokens_per_s']:>8.2f}{r['s_per_step']:>8.2f}{r[mem]:>14.0f}"
              f"{r[mem] / lora[mem]:>8.2f}{fits}")


def _save(args, where: str, rows: list[dict]) -> str:
    """Keep the measurement in the results store, one file per setting (the latest wins), for the book."""
    from arena.provenance import provenance
    from arena.store import results_root

    setting = (f"{args.architecture}-seq{args.seq_len}-b{args.batch_size}-layers{args.layers or 'all'}-"
               f"{args.quantization}-{args.optimizer}-gc{args.gradient_checkpointing}"
               if args.architecture else f"profile-{args.profile}")
    folder = results_root() / "benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"train_throughput-{setting.replace('/', '--')}.json"
    path.write_text(json.dumps({"setting": where, "steps": args.steps, "warmup": args.warmup, "rows": rows,
                                "provenance": provenance()}, indent=1))
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--architecture", default=None,
                        help="smoke, Qwen/Qwen2.5-7B or meta-llama/Llama-3.2-3B-Instruct: a random model of that shape")
    parser.add_argument("--methods", default=None,
                        help="comma-separated name or name:size (default: the profile's list; lora:8,oft:32 with "
                             "--architecture)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=2048, help="architecture mode: tokens per sequence")
    parser.add_argument("--batch-size", type=int, default=1, help="architecture mode: sequences per step")
    parser.add_argument("--layers", type=int, default=None, help="architecture mode: keep only this many layers")
    parser.add_argument("--quantization", default="auto", choices=["auto", "nf4", "none"],
                        help="architecture mode: auto = nf4 on CUDA, none on CPU")
    parser.add_argument("--optimizer", default="adamw", help="architecture mode: adamw, adamw_8bit, paged_adamw_8bit")
    parser.add_argument("--gradient-checkpointing", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one method, print JSON
    args = parser.parse_args()
    if args.one:
        from arena.models import configure_torch

        configure_torch()
        if args.architecture:
            result = measure_architecture(args.architecture, args.one, args.seq_len, args.batch_size, args.steps,
                                          args.warmup, args.quantization, args.layers, args.optimizer,
                                          args.gradient_checkpointing)
        else:
            result = measure(args.profile, args.one, args.steps, args.warmup)
        print("RESULT " + json.dumps(result))
        return
    from arena.models import device
    from arena.profiles import get_profile

    if args.methods:
        methods = args.methods.split(",")
    else:
        methods = ["lora:8", "oft:32"] if args.architecture else list(get_profile(args.profile).methods)
    if not any(_split(m)[0] == "lora" for m in methods):
        methods.insert(0, "lora")
    passed = [a for a in sys.argv[1:]]
    if "--methods" in passed:
        i = passed.index("--methods")
        del passed[i:i + 2]
    rows, failed = [], []
    for m in methods:
        out = subprocess.run([sys.executable, __file__, *passed, "--one", m], capture_output=True, text=True)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"{m}: failed\n{out.stderr[-3000:]}", file=sys.stderr)
            failed.append(m)
            continue
        rows.append(json.loads(line[7:]))
        print(f"measured {m}", file=sys.stderr)
    if not rows:
        sys.exit("every method failed (see above)")
    where = (f"architecture: {args.architecture} (random weights{f', {args.layers} layers' if args.layers else ''}), "
             f"base {rows[0]['quantization']}, seq {args.seq_len} x batch {args.batch_size}, gradient checkpointing "
             f"{'on' if rows[0]['gradient_checkpointing'] else 'off'}, optimizer {args.optimizer}"
             if args.architecture else f"profile: {args.profile}")
    _table(rows, f"device: {device()}  {where}  steps timed: {args.steps} (after {args.warmup} warm-up)")
    saved = _save(args, where, rows)
    print(f"stored in {saved} (chapter 08 shows the latest measurement of each setting)")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
