"""The results store: one folder per run, keyed by a hash of everything that determines it.

A finished run (``metrics.json`` present) is never recomputed unless ``force=True``; an unfinished one keeps its
partial state (checkpoints) so it can resume. Failed runs leave no ``metrics.json`` and are retried.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from .assets import cache_dir
from .distributed import is_main
from .errors import ArenaError


def results_root() -> Path:
    """``$PEFT_ARENA_RESULTS`` or ``<cache>/results``."""
    root = Path(os.environ.get("PEFT_ARENA_RESULTS", cache_dir() / "results")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_dir(kind: str, key: dict) -> Path:
    """``<results>/<kind>/<hash>/`` with ``key.json`` written for humans and for lookups."""
    folder = results_root() / kind / key_hash(key)
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "key.json"
    if not key_file.exists():
        key_file.write_text(json.dumps(key, indent=1, sort_keys=True, default=str))
    return folder


def load_metrics(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def save_metrics(folder: Path, metrics: dict) -> None:
    """Atomic write: a run killed mid-write leaves no half-written metrics that would look finished."""
    tmp = folder / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=1, default=str))
    tmp.replace(folder / "metrics.json")


def find(kind: str, key: dict) -> dict | None:
    """The stored metrics of run ``key``, or None; a lookup only (no folder is made for a run that does not exist)."""
    return load_metrics(results_root() / kind / key_hash(key))


_READING: str | None = None  # set by read_only(): the command that computes what this process finds missing


def read_only(command: str | None) -> None:
    """For the rest of this process, a run missing from the store is a one-line ArenaError naming ``command`` (the
    reading chapters 02-08 call this first: they read, never compute); None lets runs compute again."""
    global _READING
    _READING = command


def cached(kind: str, key: dict, compute: Callable[[Path], dict], force: bool = False) -> dict:
    """The stored metrics of run ``key``, computing (and storing) them with ``compute(folder)`` only when absent."""
    if not force and (found := find(kind, key)) is not None:
        return found
    if _READING is not None:
        what = key.get("method") or key.get("variant") or key_hash(key)
        raise ArenaError(f"no stored {kind} result ({what}) in {results_root()}; compute it with: {_READING}")
    folder = run_dir(kind, key)
    metrics = compute(folder)

    if is_main():  # under `accelerate launch` every process computes the run; process 0 writes it
        save_metrics(folder, metrics)
    return metrics
