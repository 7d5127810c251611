"""The results store: one folder per run, keyed by a hash of everything that determines it.

Folders are named ``<label>-<hash>`` so a person can browse them by method: ``train/lora-r8-1f2e...``,
``eval/lora-r8-step30-9a0b...``, ``eval/base-nf4-...``. The hash alone identifies the run; folders stored before
labels existed (``<hash>``) are renamed on first use, so nothing is recomputed.

A finished run (``metrics.json`` present) is never recomputed unless ``force=True``; an unfinished one keeps its
partial state (checkpoints) so it can resume. Failed runs leave no ``metrics.json`` and are retried.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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


def describe(key: dict, label: str | None = None) -> str:
    """The human part of a run's folder name: ``label`` if given (a trained path's sized method, ``lora-r8``), else
    built from the key: the trained path it derives from (its folder's label), the step or rewinding point, the
    variant and split."""
    if label is None:
        parts = []
        if isinstance(key.get("train"), str):
            trained = _existing(results_root() / "train", key["train"])
            parts.append(trained.name.removesuffix(f"-{key['train']}") if trained and trained.name != key["train"]
                         else "run")
        elif key.get("variant") == "base" or "modules" in key:
            parts.append("base" + (f"-{key['quantization']}" if key.get("quantization") else ""))
        elif "method" in key:
            parts.append(str(key["method"]))
        if isinstance(key.get("point"), dict):
            parts += [str(v) for v in key["point"].values()]
        elif "step" in key:
            parts.append(f"step{key['step']}")
        if key.get("split") == "validation":
            parts.append("validation")
        label = "-".join(parts) or "run"
    return re.sub(r"[^A-Za-z0-9._]+", "-", label).strip("-")


def _existing(root: Path, digest: str) -> Path | None:
    """The folder of the run whose key hashes to ``digest``: ``<label>-<digest>``, or ``<digest>`` from before labels."""
    for folder in (root / digest, *root.glob(f"*-{digest}")):
        if folder.is_dir():
            return folder
    return None


def _locate(kind: str, key: dict, label: str | None, make: bool) -> Path | None:
    root = results_root() / kind
    digest = key_hash(key)
    folder = _existing(root, digest)
    if folder is not None and folder.name != digest:
        return folder
    named = root / f"{describe(key, label)}-{digest}"
    if folder is not None:  # stored before folders had labels: give it one, keep everything in it
        try:
            folder.rename(named)
        except OSError:  # another process renamed it first
            pass
        return _existing(root, digest)
    if make:
        named.mkdir(parents=True, exist_ok=True)
        return named
    return None


def run_dir(kind: str, key: dict, label: str | None = None) -> Path:
    """``<results>/<kind>/<label>-<hash>/`` (made if absent) with ``key.json`` written for humans and for lookups."""
    folder = _locate(kind, key, label, make=True)
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


def find(kind: str, key: dict, label: str | None = None) -> dict | None:
    """The stored metrics of run ``key``, or None; a lookup only (no folder is made for a run that does not exist)."""
    folder = _locate(kind, key, label, make=False)
    return None if folder is None else load_metrics(folder)


_READING: str | None = None  # set by read_only(): the command that computes what this process finds missing


def read_only(command: str | None) -> None:
    """For the rest of this process, a run missing from the store is a one-line ArenaError naming ``command`` (the
    reading chapters 02-08 call this first: they read, never compute); None lets runs compute again."""
    global _READING
    _READING = command


def cached(kind: str, key: dict, compute: Callable[[Path], dict], force: bool = False,
           label: str | None = None) -> dict:
    """The stored metrics of run ``key``, computing (and storing) them with ``compute(folder)`` only when absent;
    ``label`` names a new folder (``describe``)."""
    if not force and (found := find(kind, key, label)) is not None:
        return found
    if _READING is not None:
        what = key.get("method") or key.get("variant") or key_hash(key)
        raise ArenaError(f"no stored {kind} result ({what}) in {results_root()}; compute it with: {_READING}")
    folder = run_dir(kind, key, label)
    metrics = compute(folder)
    if is_main():  # under `accelerate launch` every process computes the run; process 0 writes it
        save_metrics(folder, metrics)
    return metrics
