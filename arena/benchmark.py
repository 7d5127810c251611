"""The stability-plasticity benchmark (book/definitions.md A, E1): train each method at a comparable budget, score it,
and keep everything in the results store so a finished run is never recomputed.

``run_method`` is what the CLI (``python -m arena train``) and the notebooks call for one method; ``run_benchmark``
runs several, in parallel worker processes on CPU (one thread each: on this class of machine two single-threaded
processes do about twice the work of one two-threaded one; chapter 08 gives the times).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from typing import TypedDict

from . import activation_analysis, weight_analysis
from .errors import ArenaError
from .keys import base_eval_key, scoring_quantization
from .methods import get_method
from .methods.quantized import base_quantization
from .methods.registry import loadable_elsewhere, register_from, source_module
from .models import configure_torch, device
from .pipeline import ensure_assets
from .plan import methods_on
from .processes import process_pool
from .profiles import command, get_profile, other_bases, Profile
from .progress import quiet_libraries
from .rewind import is_oft, rewind_method
from .runs import (evaluate_base, evaluate_step, found_eval, log_note, sized_method, starting_bases, stored_run,
                   train_method, train_spec)
from .suite import build_suite, build_validation
from .train import TrainSpec


class _Timed(TypedDict, total=False):
    run_wall_s: float  # wall time of run_method (absent from stored_records)


class RunRecord(_Timed):
    """What the chapters read about one method's run (``run_method``, ``stored_records``); report and verdicts take
    lists of these. Scores are the evaluation records of ``runs.evaluate_base`` / ``runs.evaluate_step``: ``general``,
    ``target`` and their ``_se``, ``groups``, per-item ``items`` (paired with the base's), ``proxies``."""

    method: str
    label: str  # the sized method, "lora-r8"
    family: str  # the registry's: "full", "additive", "multiplicative", "scaling"
    size: int | None
    count: int  # trainable parameters at that size
    budget: int  # the profile's parameter budget (book/definitions.md A5)
    matched: bool  # whether the size was chosen by budget matching
    lr: float
    spec: dict  # the TrainSpec, as a dict
    train: dict  # the training record: losses, tokens/s, wall time, provenance, folder
    eval: dict  # the final checkpoint's scores
    base_eval: dict  # the scores of the base it started from: Forgetting and Target gain are against it
    base_quantization: str | None  # that base's quantisation (None: full precision)
    base_note: str | None  # why it is not the profile's 4-bit base, when it is not


def run_method(profile: Profile | str, method: str, size: int | None = None, lr: float | None = None,
               force: bool = False, stored_only: bool = False, seed: int | None = None) -> RunRecord | None:
    """Train (cached) and evaluate (cached) one method at the profile's budget; the benchmark's unit of work.
    ``stored_only`` returns None instead of computing a run that is not finished; ``seed`` is the training seed (data
    order and initialisation; default the profile's, which also draws the evaluation items, and those never change)."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    get_method(method)  # unknown names fail before any work
    ensure_assets(profile)
    sized = sized_method(profile, method, size)
    spec = train_spec(profile, sized, lr)
    if seed is not None:
        spec = replace(spec, seed=seed)
    start = time.perf_counter()
    found = None if force else stored_run(profile, spec)
    if found is None and stored_only:
        return None
    if found:
        trained, scored = found
    else:
        trained = train_method(profile, spec, force=force)
        scored = evaluate_step(profile, spec, force=force)
    base = evaluate_base(profile, method=method)  # the base it started from: Forgetting and Target gain are against it
    return _record(profile, sized, spec, trained, scored, base) | {"run_wall_s": time.perf_counter() - start}


def _record(profile: Profile, sized, spec: TrainSpec, trained: dict, scored: dict, base: dict) -> RunRecord:
    """What the chapters read about one method's run: size and budget, training and scores, and its own base."""
    method = sized.method
    return RunRecord(**{"method": method, "base_quantization": scoring_quantization(profile, method), "base_eval": base,
            "base_note": base_quantization(profile, method)[1], "label": sized.label, "size": sized.size,
            "count": sized.count, "budget": sized.budget, "matched": sized.matched,
            "family": get_method(method).family, "lr": spec.lr, "spec": asdict(spec),
            "train": {k: v for k, v in trained.items() if k != "key"}, "eval": scored})


def stored_records(profile: Profile | str, methods=None) -> list[RunRecord]:
    """The stored runs of ``methods`` (default: the profile's), for chapters that only read: nothing is trained or
    scored here. A missing run is one ArenaError naming the command that computes it."""

    profile = get_profile(profile) if isinstance(profile, str) else profile
    methods = list(methods or planned_methods(profile))
    records, missing = [], []
    for m in methods:
        get_method(m)
        sized = sized_method(profile, m)
        spec = train_spec(profile, sized)
        found = stored_run(profile, spec)
        base = found_eval(base_eval_key(profile, "test", m))
        if found is None or base is None:
            missing.append(m)
        else:
            records.append(_record(profile, sized, spec, *found, base))
    if missing:
        raise ArenaError(f"no stored results for {', '.join(missing)}: run chapter 01 first (make reproduce), or "
                         f"{command('benchmark', profile, missing)}")
    return records


def analyses_of(profile: Profile, records: list[RunRecord], kind: str) -> dict:
    """``{run label: its analysis}`` of each record's final checkpoint: ``kind`` "spectra" (``weight_analysis``) or
    "geometry" (``activation_analysis``). Stored by the benchmark's workers; computed here only when missing (and
    not at all under ``store.read_only``)."""
    analyse = {"spectra": weight_analysis, "geometry": activation_analysis}[kind].analyse_checkpoint
    return {r["label"]: analyse(profile, TrainSpec(**r["spec"])) for r in records}


def _worker_init() -> None:
    os.environ.setdefault("ARENA_QUIET", "1")
    # both cores are taken: scoring starts a side process only once a peer worker idles (evaluate.spare_core)
    os.environ["ARENA_WORKER"] = "1"

    quiet_libraries()
    configure_torch()


def _run_in_worker(args) -> RunRecord:
    profile, method, force, analyse, module = args
    register_from(module)
    record = run_method(profile, method, force=force)
    if analyse:
        analyse_record(profile, record, force=force)
    return record


def analyse_record(profile: Profile, record: dict, force: bool = False) -> None:
    """Compute (and store) the weight-space and activation-space analyses of a run's final checkpoint and, for the
    profile's rewinding methods, the rewinding study, so chapters 03-05 only read them; done inside the benchmark's
    workers to use both CPU cores."""

    spec = TrainSpec(**record["spec"])
    weight_analysis.analyse_checkpoint(profile, spec, force=force)
    activation_analysis.analyse_checkpoint(profile, spec, force=force)
    if record["method"] in profile.rewind_methods:  # chapter 05
        rewind_method(profile, spec, force=force)


def planned_methods(profile: Profile) -> list[str]:
    """The profile's methods that fit this card on its first base (``plan.methods_on``: full finetuning of the 7B
    does not fit a 24 GB card) for a hub profile on CUDA, each one left out said on stderr; every method elsewhere
    (a CPU runs what it is asked to, as slowly as it must)."""
    if device() != "cuda" or not any(spec.source == "hub" for spec in profile.models):
        return list(profile.methods)
    fit = methods_on(profile, 0)
    for why in fit["skip"].values():
        log_note(why)
    return fit["run"]


def default_workers(methods) -> int:
    """Two single-threaded workers on a CPU with two or more cores; one on a GPU, or when a method was defined in
    ``__main__`` (a plain notebook cell: a fresh process cannot import it; a method in an importable module can go)."""

    if device() == "cuda" or not all(loadable_elsewhere(get_method(m)) for m in methods):
        return 1
    return max(1, min(2, os.cpu_count() or 1, len(methods)))


def run_benchmark(profile: Profile | str, methods=None, workers: int | None = None, force: bool = False,
                  log=print, analyse: bool = True) -> list[RunRecord]:
    """Every method of the profile (or ``methods``), in the given order; cached runs return at once. ``analyse``
    also stores the spectral and activation analyses of each new run (chapters 03-04)."""
    quiet_libraries()
    profile = get_profile(profile) if isinstance(profile, str) else profile
    methods = list(methods or planned_methods(profile))
    for m in methods:
        get_method(m)
    ensure_assets(profile)
    build_suite(profile)  # once, here: two workers must not both write it
    starting_bases(profile, methods)  # every base a method starts from is scored once, here, not in two workers
    rewound = [m for m in methods if m in profile.rewind_methods]
    if analyse and rewound:
        build_validation(profile)  # the rewinding studies' split, likewise written once
        starting_bases(profile, rewound, split="validation")  # alpha = 0 of their paths (chapter 05 reads it)
    done = {} if force else {m: r for m in methods if (r := run_method(profile, m, stored_only=True))}
    if analyse:  # a run stopped between its scoring and the end of its analyses finishes them here (cached: at once)
        for record in done.values():
            analyse_record(profile, record)
    # the rewinding methods carry a dozen extra evaluations: start them first so no core idles at the end

    todo = sorted((m for m in methods if m not in done),
                  key=lambda m: (m not in profile.rewind_methods, not is_oft(m)))
    workers = min(workers or default_workers(todo), max(1, len(todo)))
    fresh = {}
    if profile.dry_run or (device() == "cuda" and all(loadable_elsewhere(get_method(m)) for m in todo)):
        # one process at a time, and a fresh one per method, so each method's memory goes back to the system (and the
        # card) before the next starts: in one long-lived process CUDA's caching allocator and fragmentation build up
        # across methods; a 7B-wide random base of a dry run is ~6 GB in fp32 and a rewinding study peaks near 22 GB
        workers, fresh = 1, {"max_tasks_per_child": 1}
    start = time.perf_counter()
    if workers == 1 and not fresh:
        for m in todo:
            done[m] = _run_in_worker((profile, m, force, analyse, None))
            log(f"{done[m]['label']}: done ({time.perf_counter() - start:.0f} s)")
        return [done[m] for m in methods]
    from concurrent.futures import as_completed

    # an interrupted benchmark (Ctrl-C, a killed kernel) leaves no worker training on: a resumed run finds its cores
    with process_pool(workers, initializer=_worker_init, finish_on_error=True, **fresh) as pool:
        futures = {pool.submit(_run_in_worker, (profile, m, force, analyse, source_module(get_method(m)))): m
                   for m in todo}
        for future in as_completed(futures):
            done[futures[future]] = record = future.result()
            log(f"{record['label']}: done ({time.perf_counter() - start:.0f} s)")
    return [done[m] for m in methods]


def run_other_bases(profile: Profile, workers: int | None = None, force: bool = False,
                    log=print) -> list[tuple[Profile, dict, list[RunRecord]]]:
    """The benchmark on each of the profile's other bases (``models[1:]``: Llama-3.2-3B-Instruct on the hub
    profiles), as (profile on that base, its base scores, its runs): every method trained and scored on test, as in
    the paper's table (E1). No analyses and no rewinding: the paper's analyses (B-D) are on its first base, and
    chapters 03-05 read the first base here too. A one-base profile returns []."""
    return [(other, evaluate_base(other), run_benchmark(other, workers=workers, force=force, log=log, analyse=False))
            for other in other_bases(profile)]


def stored_other_bases(profile: Profile) -> list[tuple[Profile, dict, list[RunRecord]]]:
    """``run_other_bases`` read from the store (for the reading chapters)."""
    return [(other, evaluate_base(other), stored_records(other)) for other in other_bases(profile)]
