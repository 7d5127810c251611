"""Greedy generation, side by side in one process: one ``model.generate`` call per batch (lm-eval's HFLM path) against
``arena.generation.generate_compacting`` (finished rows leave the batch), at two batch sizes, on the bf16 scoring copy
the kit scores on CPU. Prints the wall time of each and how many decoded answers differ from the one-call path.

    python benchmarks/generation_speed.py --task ifeval --items 128 [--method lora] [--batch-sizes 32,64]

``--method`` scores a stored trained run (its answers end sooner than the base's). A measurement, not a test.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--task", default="ifeval", choices=["ifeval", "wordproblems"])
    parser.add_argument("--items", type=int, default=128)
    parser.add_argument("--method", default=None)
    parser.add_argument("--batch-sizes", default="32,64")
    args = parser.parse_args()

    import torch

    from arena.generation import generate_compacting
    from arena.models import configure_torch, load_base
    from arena.pipeline import ensure_assets
    from arena.profiles import get_profile
    from arena.runs import load_trained, sized_method, train_spec
    from arena.suite import build_suite

    configure_torch()
    profile = get_profile(args.profile)
    ensure_assets(profile)
    if args.method:
        model, tok = load_trained(profile, train_spec(profile, sized_method(profile, args.method)), scoring=True)
    else:
        model, tok = load_base(profile.model, None)
    model = copy.deepcopy(model).to(torch.bfloat16).eval()
    field, cap, file = {"ifeval": ("prompt", 96, "ifeval"), "wordproblems": ("question", 48, "wordproblems_test")}[
        args.task]  # the task YAMLs' max_gen_toks
    rows = [json.loads(line) for line in open(build_suite(profile) / f"{file}.jsonl")][:args.items]
    texts = [tok.apply_chat_template([{"role": "user", "content": r[field]}], tokenize=False,
                                     add_generation_prompt=True) for r in rows]
    texts.sort(key=lambda t: -len(tok(t)["input_ids"]))  # longest first, as lm-eval orders requests
    tok.padding_side = "left"

    def run(mode: str, batch: int):
        outs, start = [], time.perf_counter()
        for i in range(0, len(texts), batch):
            enc = tok(texts[i:i + batch], return_tensors="pt", padding=True)
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                if mode == "one call":
                    out = model.generate(**enc, max_new_tokens=cap, do_sample=False, pad_token_id=tok.pad_token_id)
                else:
                    out = generate_compacting(model, enc["input_ids"], enc["attention_mask"], cap,
                                              lambda rs: [False] * len(rs), tok.pad_token_id)
            outs += tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return time.perf_counter() - start, outs

    print(f"{args.method or 'base'}, {args.task}, {len(texts)} prompts, {cap} tokens at most")
    results = {}
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        for mode in ("one call", "compacting"):
            results[mode, batch] = run(mode, batch)
        (one, a), (fast, b) = results["one call", batch], results["compacting", batch]
        print(f"batch {batch}: one call {one:.1f} s, compacting {fast:.1f} s, ratio {fast / one:.2f}, "
              f"answers differing {sum(x != y for x, y in zip(a, b))}")
    first = next(iter(results))
    for key, (seconds, outs) in results.items():
        print(f"  {key[0]} at batch {key[1]}: {seconds / results[first][0]:.2f} of {first[0]} at batch {first[1]}, "
              f"answers differing from it {sum(x != y for x, y in zip(outs, results[first][1]))}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    main()
