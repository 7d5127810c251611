"""The cheapest suite that meets the kit's power targets (``report.POWER_TARGETS``), from a finished run's own
variances and this machine's scoring costs: per group, the items that keep the paired standard error of Forgetting
and of Target gain under target for every method, and the base's validation General SE under its target, at the least
scoring time (``stats.cheapest_allocation``, Neyman's allocation with costs), beside the profile's items, with the
minutes per scoring and per run either way.

    python benchmarks/power_budget.py [--profile embedded] [--costs FILE | --save-costs FILE] [--most bbh=545,...]

Run it after ``make reproduce`` on the same results store (``$PEFT_ARENA_RESULTS``, else ``$PEFT_ARENA_CACHE/results``).
Costs: seconds per item of each group, measured here on the base's test split (the kit's scorer, one process, about
10 minutes on a 2-core CPU) unless ``--costs`` names a file an earlier run saved with ``--save-costs``. A group's error
at n items is its measured error scaled by sqrt(n_run / n), so the answer holds for methods like the ones scored. The
word problems' likelihood twin is kept at the run's size (``n_target_twin``; with None it grows with the word
problems, which this does not model). The kit's suite only: the paper profile's stock tasks weigh differently.
A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

GENERAL_W = {"bbh": 1 / 3, "ifeval": 1 / 3, "qa": 1 / 3}  # scores.summarise: General = mean(BBH, IFEval, QA)
TARGET_W = {"wordproblems": 1 / 2, "arithmetic": 1 / 2}  # scores.summarise: Target = mean(word problems, arithmetic)


def items_of(items: dict, group: str) -> int:
    """The units a group's error is computed over: BBH items over its subtasks, IFEval prompts, else items."""
    if group == "bbh":
        return sum(len(v) for k, v in items.items() if k.startswith("arena_bbh_") and ":" not in k)
    if group == "ifeval":
        return len(items["arena_ifeval:inst"])
    from arena.scores import GENERAL, TARGET

    return len(items[{**GENERAL, **TARGET}[group][0]])


def unit_variances(summaries: list[dict], items: dict, groups: list[str]) -> tuple[list[list[float]], list[int]]:
    """Per summary (``scores.summarise``'s "groups": a paired difference, or one model's own scores) and group:
    n * se^2 (points^2), with n counted on ``items``, the per-item scores they summarise."""
    counts = [items_of(items, g) for g in groups]
    return [[n * s[g]["se"] ** 2 for g, n in zip(groups, counts)] for s in summaries], counts


def measure_costs(profile) -> dict[str, list[float]]:
    """Seconds and items of each group (and the word problems' twin) on the base's test split, one process."""
    from arena.evaluate import run_tasks, scoring_language_model, suite_tasks
    from arena.models import configure_torch, load_base, resolve_quantization
    from arena.pipeline import ensure_assets
    from arena.scores import BPB, CHAT_TASKS, GENERAL, TARGET, TWIN_TASKS
    from arena.suite import build_suite

    configure_torch()
    ensure_assets(profile)
    model, tokenizer = load_base(profile.model, resolve_quantization(profile))
    data_dir = build_suite(profile)
    lm = scoring_language_model(model, tokenizer, profile.eval_batch_size,
                                generation_batch_size=profile.generation_batch_size)
    out = {}
    twin = next(iter(TWIN_TASKS))
    run_tasks(lm, tokenizer, ["arena_qa"], data_dir, chat=False, samples={"arena_qa": [0]})  # imports, untimed
    tasks = {g: t for g, (t, _) in {**GENERAL, **TARGET}.items()} | {"twin": twin}
    for group, task in tasks.items():
        start = time.perf_counter()
        items = run_tasks(lm, tokenizer, suite_tasks(data_dir, [task]), data_dir, chat=task in CHAT_TASKS)
        seconds = time.perf_counter() - start
        # the twin's scores are filed under the task it twins (evaluate.run_tasks)
        out[group] = [seconds, items_of(items, group) if group != "twin" else len(items[TWIN_TASKS[twin] + BPB])]
        print(f"  measured {group}: {seconds:.1f} s for {out[group][1]} items", flush=True)
    return out


def scorings_in_store(profile) -> dict[str, int]:
    """Evaluations the results store holds for this profile's suite, base and scoring, per split: a run's scorings
    when the store holds one run (robustness runs and other seeds count too)."""
    from arena.keys import base_eval_key
    from arena.store import results_root

    same = {k: v for k, v in base_eval_key(profile).items() if k in ("suite", "suite_version", "scoring", "base",
                                                                       "compute")}
    counts = {"test": 0, "validation": 0}
    for key_file in (results_root() / "eval").glob("*/key.json"):
        key = json.loads(key_file.read_text())
        if all(key.get(k) == v for k, v in same.items()) and (key_file.parent / "metrics.json").exists():
            counts["validation" if key.get("split") == "validation" else "test"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--costs", default=None, help="a JSON file of {group: [seconds, items]} (from --save-costs)")
    parser.add_argument("--save-costs", default=None, help="write the measured costs here")
    parser.add_argument("--most", default="", help="caps on a group's test items (not validation's), e.g. "
                        "arithmetic=136,bbh=545 (BBH: items over all its kept families)")
    args = parser.parse_args()

    from arena import benchmark, runs
    from arena.keys import base_eval_key
    from arena.profiles import get_profile
    from arena.report import POWER_TARGETS
    from arena.scores import paired_difference
    from arena.stats import cheapest_allocation

    profile = get_profile(args.profile)
    if profile.uses_stock_tasks:
        raise SystemExit(f"profile {profile.name!r} scores lm-eval's stock tasks; this script sizes the kit's suite")
    most = {k: float(v) for k, v in (p.split("=") for p in args.most.split(",") if p)}
    if unknown := set(most) - {*GENERAL_W, *TARGET_W}:
        raise SystemExit(f"--most: unknown group(s) {sorted(unknown)}; use {sorted({*GENERAL_W, *TARGET_W})}")
    records = benchmark.stored_records(profile)  # a missing run is one line naming the command
    validation = runs.found_eval(base_eval_key(profile, "validation"))
    costs = json.loads(Path(args.costs).read_text()) if args.costs else measure_costs(profile)
    if args.save_costs:
        Path(args.save_costs).write_text(json.dumps(costs, indent=1))
    per_item = {g: s / n for g, (s, n) in costs.items()}
    paired = [paired_difference(r["eval"]["items"], r["base_eval"]["items"])["groups"] for r in records]
    method_items = records[0]["eval"]["items"]
    print(f"profile {profile.name}: {len(records)} methods; seconds per item "
          + ", ".join(f"{g} {c:.3f}" for g, c in per_item.items()))

    seconds = {}
    plans = [("Forgetting", GENERAL_W, paired, method_items), ("Target gain", TARGET_W, paired, method_items)]
    if validation is not None:  # the base's own General SE on validation (found_eval summarised it), not paired
        plans.append(("validation General", GENERAL_W, [validation["groups"]], validation["items"]))
    print(f"\n{'measure':<20}{'group':<14}{'items':>7}{'cheapest':>10}{'se now':>9}{'se then':>9}{'s/scoring':>11}"
          f"{'then':>8}")
    for measure, weights, summaries, items in plans:
        groups = list(weights)
        v, n_now = unit_variances(summaries, items, groups)
        caps = [most.get(g) if measure != "validation General" else None for g in groups]
        n_best = [math.ceil(x) for x in cheapest_allocation(v, list(weights.values()), [per_item[g] for g in groups],
                                                            POWER_TARGETS[measure], caps)]
        for i, g in enumerate(groups):
            worst_now = max(math.sqrt(r[i] / n_now[i]) for r in v)
            worst_then = max(math.sqrt(r[i] / n_best[i]) for r in v)
            print(f"{measure:<20}{g:<14}{n_now[i]:>7}{n_best[i]:>10}{worst_now:>9.2f}{worst_then:>9.2f}"
                  f"{per_item[g] * n_now[i]:>11.1f}{per_item[g] * n_best[i]:>8.1f}")
        composite = [max(math.sqrt(sum(w**2 * r[i] / n[i] for i, w in enumerate(weights.values()))) for r in v)
                     for n in (n_now, n_best)]
        spent = [sum(per_item[g] * n[i] for i, g in enumerate(groups)) for n in (n_now, n_best)]
        seconds[measure] = spent
        print(f"{measure:<20}{'composite':<14}{'':>17}{composite[0]:>9.2f}{composite[1]:>9.2f}{spent[0]:>11.1f}"
              f"{spent[1]:>8.1f}   (target se {POWER_TARGETS[measure]})")

    counts = scorings_in_store(profile)
    fixed = costs["twin"][0] if "twin" in costs else 0.0
    test = [seconds["Forgetting"][k] + seconds["Target gain"][k] + fixed for k in (0, 1)]
    val = [0.0, 0.0]
    if validation is not None:  # its Target groups and twin (every validation word problem) stay as they are
        kept = sum(per_item[g] * items_of(validation["items"], g) for g in TARGET_W)
        kept += per_item.get("twin", 0.0) * items_of(validation["items"], "wordproblems")
        val = [seconds["validation General"][k] + kept for k in (0, 1)]
    print(f"\none test scoring: {test[0] / 60:.1f} min now, {test[1] / 60:.1f} min at the cheapest allocation")
    print(f"one validation scoring: {val[0] / 60:.1f} min now, {val[1] / 60:.1f} min then (its Target groups as now)")
    bbh = len([k for k in records[0]["eval"]["items"] if k.startswith("arena_bbh_") and ":" not in k])
    print(f"(BBH counts items over its {bbh} kept families: bbh_per_task is that / {bbh}; arithmetic is "
          "n_arithmetic, word problems n_target_test)")
    total = [(counts["test"] * t + counts["validation"] * u) / 60 for t, u in zip(test, val)]
    print(f"this run's {counts['test']} test and {counts['validation']} validation scorings: {total[0]:.0f} CPU-min "
          f"now, {total[1]:.0f} then, at the base's per-item costs (trained models' answers can end sooner)")


if __name__ == "__main__":
    main()
