"""Scoring time per task group on the profile's base: lm-eval's HFLM against the kit's context-once scorer
(arena/context_once.py), side by side in one process, alternating, so the ratio holds on any machine (issue 18).

    python benchmarks/scoring_speed.py [--profile embedded] [--split test] [--repeats 2]

Each group is scored ``--repeats`` times by each scorer in turn; the table prints the best wall time of each, their
ratio, and how many per-item scores differ between the two (expected: none). A measurement, not a test.
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
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: the whole suite)")
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
    model, tokenizer = load_base(profile.model, resolve_quantization(profile))
    data_dir = build_suite(profile) if args.split == "test" else build_validation(profile)
    batch = args.batch_size or profile.eval_batch_size
    # both as the kit scores (a bf16 copy where the device has bf16), differing only in the log-likelihood pass
    scorers = {name: scoring_language_model(model, tokenizer, batch, cls)
               for name, cls in (("hflm", HFLM), ("context_once", ContextOnceLM))}
    print(f"profile {profile.name}, split {args.split}, batch size {batch}, best of {args.repeats}")
    print(f"{'tasks':<34}{'HFLM s':>9}{'once s':>9}{'ratio':>8}{'items':>7}{'differ':>8}")
    total = {"hflm": 0.0, "context_once": 0.0}
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
        differ = sum(a != b for key in items["hflm"] if ":" not in key  # scores, not the twins' floats
                     for a, b in zip(items["hflm"][key], items["context_once"][key]))
        count = sum(len(v) for k, v in items["hflm"].items() if ":" not in k)
        for name in total:
            total[name] += best[name]
        print(f"{task:<34}{best['hflm']:>9.1f}{best['context_once']:>9.1f}"
              f"{best['context_once'] / best['hflm']:>8.2f}{count:>7}{differ:>8}")
    print(f"{'all':<34}{total['hflm']:>9.1f}{total['context_once']:>9.1f}{total['context_once'] / total['hflm']:>8.2f}")


if __name__ == "__main__":
    main()
