"""The robustness study: is the headline comparison a property of the methods, or of one learning rate and one seed?

Each of ``Profile.robustness_methods`` trains at its default learning rate times each of ``Profile.lr_factors`` and,
at the default rate, with ``Profile.extra_seeds`` more training seeds (data order and initialisation; the evaluation
items stay the same, so every comparison stays paired). Every run goes through the benchmark's own trainer, scorer and
store (``benchmark.run_method``): the default-rate, default-seed run is chapter 01's, and nothing is computed twice.
Each run is also scored on the validation split, so that a method's best rate is chosen without seeing the test items.
"""

from __future__ import annotations

import dataclasses
import math
import statistics

from .benchmark import default_workers, run_method, _worker_init
from .pipeline import ensure_assets
from .processes import process_pool
from .profiles import command, Profile
from .rewind import evaluate_point
from .runs import evaluate_base, sized_method, train_spec
from .suite import build_suite, build_validation
from .train import TrainSpec


@dataclasses.dataclass(frozen=True)
class Variation:
    method: str
    factor: float  # times the method's default learning rate
    seed: int  # the training seed (the profile's own is chapter 01's run)

    @property
    def label(self) -> str:
        return f"{self.method} lr x{self.factor:.3g} seed {self.seed}"


def variations(profile: Profile) -> list[Variation]:
    """Every run of the study: each method at each rate factor (profile seed), then at factor 1 with each extra seed."""
    out = []
    for method in profile.robustness_methods:
        out += [Variation(method, factor, profile.seed) for factor in profile.lr_factors]
        out += [Variation(method, 1.0, profile.seed + k) for k in range(1, profile.extra_seeds + 1)]
    return list(dict.fromkeys(out))


def spec_of(profile: Profile, v: Variation) -> TrainSpec:
    """The training spec of a variation: the method's default spec with its rate scaled and its seed set."""
    spec = train_spec(profile, sized_method(profile, v.method))
    return dataclasses.replace(spec, lr=spec.lr * v.factor, seed=v.seed)


def run_variation(profile: Profile, v: Variation, stored_only: bool = False) -> dict | None:
    """One run of the study: the benchmark's record (``benchmark.run_method``: trained, scored on test against its own
    base) plus its final checkpoint on the validation split and that split's base. None when ``stored_only`` and any
    part is missing."""
    spec = spec_of(profile, v)
    record = run_method(profile, v.method, lr=spec.lr, seed=spec.seed, stored_only=stored_only)
    if record is None:
        return None
    validation = evaluate_point(profile, spec, {"path": "final"}, "validation", stored_only=stored_only)
    if validation is None:
        return None
    return {**record, "variation": dataclasses.asdict(v), "validation": validation,
            "validation_base": evaluate_base(profile, split="validation", method=v.method)}


def _run(args) -> dict:
    profile, v = args
    return run_variation(profile, v)


def run_robustness(profile: Profile, workers: int | None = None, log=print) -> list[dict]:
    """Every variation (cached), in the benchmark's worker processes on CPU."""
    ensure_assets(profile)
    build_suite(profile)
    build_validation(profile)
    for method in profile.robustness_methods:  # the bases, once, before two workers could both score them
        evaluate_base(profile, method=method)
        evaluate_base(profile, split="validation", method=method)
    todo = variations(profile)
    workers = min(workers or default_workers(profile.robustness_methods), len(todo))
    if workers <= 1:
        return [_run((profile, v)) for v in todo]
    with process_pool(workers, initializer=_worker_init, finish_on_error=True) as pool:
        rows = []
        for v, row in zip(todo, pool.map(_run, [(profile, v) for v in todo])):
            log(f"{v.label}: done")
            rows.append(row)
    return rows


def stored_robustness(profile: Profile) -> list[dict] | None:
    """The study read from the store, or None when any run of it is missing (the chapter then names the command)."""
    rows = [run_variation(profile, v, stored_only=True) for v in variations(profile)]
    return None if any(r is None for r in rows) else rows


def study_command(profile: Profile) -> str:
    return command("robustness", profile)


def combined_se(item_se: float, seed_sd: float) -> float:
    """The error of one run's change when training seeds vary as well as items: sqrt(se_items^2 + sd_seeds^2). The
    items are the same for every seed, so the spread between seeds is training noise alone, on top of the item
    sampling error each run already carries."""
    return math.sqrt(item_se**2 + seed_sd**2)


def seed_sd(values: list[float]) -> float:
    """Sample standard deviation over seeds (0 for fewer than two)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0

