"""Command line: ``python -m arena {profile,assets,plan,train,evaluate,benchmark,robustness,export} ...`` runs the same
code the notebooks call.

Examples::

    python -m arena train --method oft --size 32             # train one method (cached; resumes if killed)
    python -m arena evaluate --method lora                   # train if needed, then score it against the base
    python -m arena evaluate                                 # score the base model
    python -m arena benchmark --methods lora,oft --steps 40  # a sweep, two CPU workers
    python -m arena export --method lora --out my-lora       # a peft adapter folder (PeftModel.from_pretrained)
    python -m arena plan --profile onegpu --gpu-gib 24       # work, GPU memory and time estimates, before a run

Every ArenaError is printed as one line (``error: ...``) with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import dataclasses
import functools
import json
import os
import sys

from .benchmark import run_benchmark, run_method, run_other_bases
from .distributed import is_main, main_first, world_size
from .errors import ArenaError
from .export import export_run
from .pipeline import ensure_assets, preflight
from .plan import format_plan, plans, require_fit
from .profiles import as_dict, CLI_FIELDS, get_profile
from .robustness import run_robustness
from .runs import evaluate_base, sized_method, train_method, train_spec
from .scores import paired_difference


DRY_RUN_HELP = "a hub profile on random architecture-exact bases and local fixtures (CPU, no hub)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m arena", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split(
                                         "\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("profile", help="validate a profile and print it as JSON")
    p.add_argument("name", nargs="?", default=None)
    p.add_argument("--quantization", default=None, help="auto | nf4 | none")
    p.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    p = sub.add_parser("assets", help="check hub access (hub profiles), then fetch, verify (and rebuild if corrupt) what "
                                      "a profile needs")
    p.add_argument("--profile", default=None)
    p.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    p.add_argument("--preflight-only", action="store_true",
                   help="only check hub access for every base and the training data (seconds; nothing downloads)")
    p = sub.add_parser("plan", help="what a profile will cost (work, GPU memory, time estimates), before anything runs")
    p.add_argument("--profile", default=None)
    p.add_argument("--gpu-gib", "--gpu-memory", dest="gpu_gib", type=float, default=None,
                   help="GiB of the card to plan for (default: the one here; without one: 24, 48 and 80 GB cards)")
    p.add_argument("--methods", default=None, help="comma-separated method names")
    p.add_argument("--json", action="store_true", help="print the plan as JSON instead of tables")
    p.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    for field, kind in CLI_FIELDS.items():
        p.add_argument("--" + field.replace("_", "-"), dest=field, type=kind, default=None)
    for name, text in [("train", "train one method along its checkpointed path"),
                       ("evaluate", "score the base (no --method) or a trained method (trains it if needed)"),
                       ("benchmark", "train and score several methods (the profile's list by default)"),
                       ("robustness", "the headline methods across learning rates and seeds (make robustness)"),
                       ("export", "write a trained run as a peft adapter folder, or a merged model")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("--profile", default=None)
        if name in ("benchmark", "robustness"):
            if name == "benchmark":
                p.add_argument("--methods", default=None, help="comma-separated method names")
            p.add_argument("--workers", type=int, default=None, help="parallel worker processes (CPU)")
        else:
            p.add_argument("--method", required=name in ("train", "export"), default=None)
            p.add_argument("--size", type=int, default=None, help="rank or block size (default: match the budget)")
            p.add_argument("--lr", type=float, default=None, help="learning rate (default: the method's)")
        if name == "export":
            p.add_argument("--step", type=int, default=None, help="a saved checkpoint's step (default: the last)")
            p.add_argument("--out", required=True, help="a new, empty folder")
        for field, kind in CLI_FIELDS.items():
            p.add_argument("--" + field.replace("_", "-"), dest=field, type=kind, default=None)
        p.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
        if name != "robustness":  # the study reuses chapter 01's runs: forcing them belongs to `benchmark`
            p.add_argument("--force", action="store_true", help="recompute even if a finished result exists")
    return parser


def _summary(record: dict, base: dict) -> dict:
    e = record["eval"]
    diff = paired_difference(base["items"], e["items"])
    return {"method": record["label"], "trainable": record["count"], "budget": record["budget"],
            "general": round(e["general"], 2), "general_se": round(e["general_se"], 2),
            "target": round(e["target"], 2), "target_se": round(e["target_se"], 2),
            "forgetting": round(diff["general"], 2), "forgetting_se": round(diff["general_se"], 2),
            "target_gain": round(-diff["target"], 2), "target_gain_se": round(diff["target_se"], 2),
            "ce_drift": e["proxies"]["ce_drift"], "kl": e["proxies"]["kl"],
            "train_tokens_per_s": record["train"]["train_tokens_per_s"]}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = sys.stdout
    # stdout carries only the JSON result: library chatter (lm-eval, progress) goes to stderr
    with contextlib.redirect_stdout(sys.stderr):
        return _run(args, out)


def _run(args, out) -> int:
    print = functools.partial(builtins.print, file=out)  # noqa: A001  (results to the real stdout)
    try:
        if args.command == "profile":
            print(json.dumps(as_dict(get_profile(args.name, quantization=args.quantization,
                                                 dry_run=args.dry_run or None)), indent=1))
            return 0

        if world_size() > 1 and args.command != "train":
            raise ArenaError(f"`{args.command}` runs in one process; under `accelerate launch` only `train` runs "
                             "data-parallel. Train there, then run `python -m arena evaluate --method ...` alone")
        if not is_main():
            print = functools.partial(builtins.print, file=open(os.devnull, "w"))  # noqa: A001  (one report)
        overrides = {f: getattr(args, f) for f in CLI_FIELDS if getattr(args, f, None) is not None}
        overrides |= {"dry_run": True} if getattr(args, "dry_run", False) else {}
        if args.command == "export":  # reads a stored run: no assets to fetch, nothing to train
            print(json.dumps(export_run(get_profile(args.profile, **overrides), args.method, args.out, args.size,
                                        args.lr, args.step), indent=1))
            return 0
        if args.command == "plan":  # before anything downloads or trains
            methods = {"methods": args.methods} if args.methods else {}
            results = plans(get_profile(args.profile, **overrides, **methods), args.gpu_gib)
            if args.json:
                print(json.dumps(results if len(results) > 1 else results[0], indent=1, default=str))
            else:
                print("\n\n".join(format_plan(r) for r in results))
            require_fit(results[-1])  # the card named or present; without one, the largest class
            return 0
        profile = get_profile(args.profile, **overrides)
        if args.command == "assets":  # hub access before any download: a refusal now, not in chapter 01's last cell
            checks = preflight(profile)
            for line in checks:
                print(line)
            if args.preflight_only:
                print(f"hub preflight for profile {profile.name!r}: " + (f"{len(checks)} checks passed" if checks
                                                                         else "no hub access needed"))
                return 0

        with main_first():  # under a launch, process 0 fetches and builds the shared caches first
            ensure_assets(profile)
        if args.command == "assets":
            print(f"assets for profile {profile.name!r} are in place")
        elif args.command == "train":
            spec = train_spec(profile, sized_method(profile, args.method, args.size), args.lr)
            record = train_method(profile, spec, force=args.force)
            print(json.dumps({k: record[k] for k in ("label", "trained_parameters", "train_tokens_per_s",
                                                     "train_wall_s", "folder")} | {"final_loss": record["losses"][-1]},
                             indent=1))
        elif args.command == "evaluate":
            base = evaluate_base(profile, force=args.force and not args.method)
            if args.method is None:
                print(json.dumps({k: base[k] for k in ("general", "general_se", "target", "target_se", "groups")},
                                 indent=1))
            else:
                record = run_method(profile, args.method, args.size, args.lr, force=args.force)
                print(json.dumps(_summary(record, record["base_eval"]), indent=1))  # against its own starting base
        elif args.command == "benchmark":
            methods = args.methods.split(",") if args.methods else None
            log = lambda line: builtins.print(line, file=sys.stderr)  # noqa: E731
            records = run_benchmark(profile, methods, workers=args.workers, force=args.force, log=log)
            summaries = [{"base": profile.model.name, **_summary(r, r["base_eval"])} for r in records]
            every = dataclasses.replace(profile, methods=tuple(methods)) if methods else profile
            for other, _, more in run_other_bases(every, workers=args.workers, force=args.force, log=log):
                summaries += [{"base": other.model.name, **_summary(r, r["base_eval"])} for r in more]
            print(json.dumps(summaries, indent=1))
        elif args.command == "robustness":
            log = lambda line: builtins.print(line, file=sys.stderr)  # noqa: E731
            rows = run_robustness(profile, workers=args.workers, log=log)
            print(json.dumps([{**r["variation"], **_summary(r, r["base_eval"])} for r in rows], indent=1))
    except ArenaError as err:
        builtins.print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
