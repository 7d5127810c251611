"""One whole scoring (``evaluate``) of a stored method's final checkpoint, two ways side by side, alternating: in one
process, and with its log-likelihood tasks in a second process while the first generates (``evaluate.score_aside``,
which a benchmark worker now uses once its peer has nothing left to do, and the CLI and single runs whenever the
profile sets ``score_aside``). Prints the best wall time of each, their ratio, and how many per-item scores differ
(expected: none).

    python benchmarks/aside_speed.py [--profile embedded] [--method lora] [--repeats 1]

Needs the method trained in the results store (``python -m arena train --method lora``, or a finished ``make
reproduce``; otherwise the loader says so) and a CPU with two free cores. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    from dataclasses import replace

    from arena.evaluate import evaluate, spare_core
    from arena.models import configure_torch
    from arena.profiles import get_profile
    from arena.runs import load_trained, sized_method, train_spec, trained_loader

    configure_torch()
    profile = replace(get_profile(args.profile), score_aside=True)
    spec = train_spec(profile, sized_method(profile, args.method))
    if not spare_core():
        raise SystemExit("one usable CPU core: there is no second process to compare")
    model, tokenizer = load_trained(profile, spec, scoring=True)
    reload = trained_loader(profile, spec, spec.steps)
    best, items = {"one process": float("inf"), "aside": float("inf")}, {}
    for _ in range(args.repeats):
        for way, loader in (("one process", None), ("aside", reload)):
            start = time.perf_counter()
            items[way] = evaluate(model, tokenizer, profile, reload=loader)["items"]
            seconds = time.perf_counter() - start
            best[way] = min(best[way], seconds)
            print(f"  {way}: {seconds:.1f} s", flush=True)
    one, aside = items["one process"], items["aside"]
    differ = sum(a != b for k in one for a, b in zip(one[k], aside[k]))
    print(f"{args.profile} {spec.method} (size {spec.size}): one process {best['one process']:.1f} s, "
          f"aside {best['aside']:.1f} s, ratio {best['aside'] / best['one process']:.2f}; per-item scores differing: {differ} of "
          f"{sum(len(v) for v in one.values())}")


if __name__ == "__main__":  # score_aside spawns a process: the guard keeps it from re-running this script
    main()
