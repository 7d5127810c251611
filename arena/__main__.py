"""Command line: ``python -m arena {profile,assets,evaluate} ...`` runs the same code the notebooks call.

Every ArenaError is printed as one line (``error: ...``) with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import ArenaError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m arena", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("profile", help="validate a profile and print it as JSON")
    p.add_argument("name", nargs="?", default=None)
    p = sub.add_parser("assets", help="fetch, verify (and rebuild if corrupt) what a profile needs")
    p.add_argument("--profile", default=None)
    p = sub.add_parser("evaluate", help="score the base model on the profile's suite (cached)")
    p.add_argument("--profile", default=None)
    p.add_argument("--force", action="store_true", help="recompute even if a cached result exists")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from .profiles import as_dict, get_profile

        profile = get_profile(args.profile if args.command != "profile" else args.name)
        if args.command == "profile":
            print(json.dumps(as_dict(profile), indent=1))
        elif args.command == "assets":
            from .pipeline import ensure_assets

            ensure_assets(profile)
            print(f"assets for profile {profile.name!r} are in place")
        elif args.command == "evaluate":
            from .pipeline import ensure_assets, evaluate_base

            ensure_assets(profile)
            result = evaluate_base(profile, force=args.force)
            print(json.dumps({k: result[k] for k in ("general", "general_se", "target", "target_se", "groups")},
                             indent=1))
    except ArenaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
