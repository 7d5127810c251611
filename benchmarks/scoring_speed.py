"""Scoring time per task group on the profile's base, two ways side by side in one process, alternating, so the
ratio holds on any machine: lm-eval's HFLM against the kit's scorer (arena/context_once.py: shared
multiple-choice contexts encoded once; generation that lets finished rows leave the batch, arena/generation.py), or
(``--batch-sizes A,B``) the kit's scorer at two batch sizes.

    python benchmarks/scoring_speed.py [--profile embedded] [--split test] [--repeats 2] [--batch-sizes 32,64]
        [--method lora]  # a trained run from the results store instead of the base (answers end sooner)

Each group is scored ``--repeats`` times each way in turn; the table prints the best wall time of each, their ratio,
and how many per-item scores differ between the two (expected: none, or a few where bf16 rounding flips a greedy
token). A measurement, not a test.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the profile's eval_batch_size")
    parser.add_argument("--batch-sizes", default=None, help="A,B: the kit's scorer at batch sizes A and B")
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: the whole suite)")
    parser.add_argument("--method", default=None, help="score this method's stored final checkpoint, not the base")
    args = parser.parse_args()

    from lm_eval.models.huggingface import HFLM

    from arena.context_once import ContextOnceLM
    from arena.evaluate import run_tasks, scoring_language_model, suite_tasks
    from arena.models import configure_torch, load_base, resolve_quantization
    from arena.pipeline import ensure_assets
    from arena.profiles import get_profile
    from arena.scores import CHAT_TASKS, PLAIN_TASKS
    from arena.suite import build_suite, build_validation

    configure_torch()
    profile = get_profile(args.profile)
    ensure_assets(profile)
    if args.method:
        from arena.runs import load_trained, sized_method, train_spec

        model, tokenizer = load_trained(profile, train_spec(profile, sized_method(profile, args.method)), scoring=True)
    else:
        model, tokenizer = load_base(profile.model, resolve_quantization(profile))
    data_dir = build_suite(profile) if args.split == "test" else build_validation(profile)
    batch = args.batch_size or profile.eval_batch_size
    if args.batch_sizes:  # one scorer, two batch sizes
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        scorers = {f"batch {b}": scoring_language_model(model, tokenizer, b) for b in sizes}
        print(f"profile {profile.name}, split {args.split}, the kit's scorer, best of {args.repeats}")
    else:  # both as the kit scores (a bf16 copy where the device has bf16), differing only in the log-likelihood pass
        scorers = {name: scoring_language_model(model, tokenizer, batch, cls)
                   for name, cls in (("HFLM", HFLM), ("once", ContextOnceLM))}
        print(f"profile {profile.name}, split {args.split}, batch size {batch}, best of {args.repeats}, "
              f"{args.method or 'base'}")
    first, second = scorers
    print(f"{'tasks':<34}{first + ' s':>11}{second + ' s':>11}{'ratio':>8}{'items':>7}{'differ':>8}")
    total = dict.fromkeys(scorers, 0.0)
    plain = suite_tasks(data_dir, PLAIN_TASKS)
    wanted = set(args.tasks.split(",")) if args.tasks else None
    for task, chat in [*((t, True) for t in CHAT_TASKS), *((t, False) for t in plain)]:
        if wanted and task not in wanted:
            continue
        best, items = {}, {}
        for _ in range(args.repeats):
            for name, lm in scorers.items():
                start = time.perf_counter()
                items[name] = run_tasks(lm, tokenizer, [task], data_dir, chat=chat)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
        differ = sum(a != b for key in items[first] if ":" not in key  # scores, not the twins' floats
                     for a, b in zip(items[first][key], items[second][key]))
        count = sum(len(v) for k, v in items[first].items() if ":" not in k)
        for name in total:
            total[name] += best[name]
        print(f"{task:<34}{best[first]:>11.1f}{best[second]:>11.1f}{best[second] / best[first]:>8.2f}{count:>7}"
              f"{differ:>8}")
    print(f"{'all':<34}{total[first]:>11.1f}{total[second]:>11.1f}{total[second] / total[first]:>8.2f}")


if __name__ == "__main__":
    main()
