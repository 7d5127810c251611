"""Comparable parameter budgets (book/definitions.md A8): pick each method's size knob to land closest to a target
count.

The paper pairs LoRA r8 with OFT b32 (OFT about 13 % smaller). Counts are taken on a meta-device skeleton of the
base (``methods.count_trainable``), so matching costs no memory and also works for a 7B config.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ArenaError
from .methods import count_trainable, get_method

TOLERANCE = 0.5  # a matched count further than 50 % from the budget means no size meets it


@dataclass(frozen=True)
class Sized:
    method: str
    size: int | None
    count: int
    budget: int | None
    matched: bool  # False: the method has no size knob that moves its count (full FT, IA3, VeRA)

    @property
    def label(self) -> str:
        return get_method(self.method).label(self.size)

    @property
    def ratio(self) -> float | None:
        return self.count / self.budget if self.budget else None


def default_budget(config) -> int:
    """The size of LoRA r8 on this base: the paper's reference budget."""
    return _count("lora", config, 8)


def check_budget(budget) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ArenaError(f"budget must be a positive number of trainable parameters, not {budget!r} "
                         "(e.g. budget=2_400_000, or None for the size of LoRA r8)")
    return budget


_COUNTS: dict[tuple, int | None] = {}


def _count(method: str, config, size: int) -> int | None:
    key = (id(get_method(method)), config.to_json_string(), size)
    if key not in _COUNTS:
        _COUNTS[key] = _count_uncached(method, config, size)
    return _COUNTS[key]


def _count_uncached(method: str, config, size: int) -> int | None:
    try:
        return count_trainable(method, config, size)
    except (ArenaError, ValueError, RuntimeError):
        return None  # a size the model's shapes reject


def size_counts(method: str, config) -> dict[int, int]:
    """Trainable count for every size the method offers (sizes the model's shapes reject are left out)."""
    m = get_method(method)
    return {s: c for s in m.sizes if (c := _count(m.name, config, s)) is not None}


def _bracket(method: str, config, budget: int) -> dict[int, int]:
    """Counts grow with size, so bisect for the two sizes around the budget (a few builds instead of all)."""
    sizes = sorted(get_method(method).sizes)
    lo, hi, seen = 0, len(sizes) - 1, {}
    while lo <= hi:
        mid = (lo + hi) // 2
        count = _count(method, config, sizes[mid])
        if count is None:
            return size_counts(method, config)
        seen[sizes[mid]] = count
        if count < budget:
            lo = mid + 1
        else:
            hi = mid - 1
    for i in (lo - 1, lo):  # the last size below and the first at or above the budget
        if 0 <= i < len(sizes) and sizes[i] not in seen and (c := _count(method, config, sizes[i])) is not None:
            seen[sizes[i]] = c
    return seen


def match(method: str, config, budget: int | None) -> Sized:
    """The method's size closest to ``budget`` (absolute difference; ties go to the smaller size)."""
    m = get_method(method)
    budget = default_budget(config) if budget is None else check_budget(budget)
    if not m.matchable:
        return Sized(m.name, m.default_size, _count(m.name, config, m.default_size), budget, False)
    counts = _bracket(m.name, config, budget)
    if not counts:
        raise ArenaError(f"{m.name}: none of its sizes {m.sizes} fits this model's layer shapes")
    size = min(counts, key=lambda s: (abs(counts[s] - budget), s))
    if abs(counts[size] - budget) > TOLERANCE * budget:
        everything = size_counts(m.name, config)
        lo, hi = min(everything.values()), max(everything.values())
        raise ArenaError(f"no {m.size_name} of {m.name} comes within {TOLERANCE:.0%} of a budget of {budget:,} "
                         f"parameters on this model (it can reach {lo:,} to {hi:,}); pick a budget in that range")
    return Sized(m.name, size, counts[size], budget, True)


def at_size(method: str, config, size: int, budget: int | None = None) -> Sized:
    """The method at an explicit ``size`` (no matching); a size the model's shapes reject raises naming the knob."""
    m = get_method(method)
    try:
        count = count_trainable(m, config, size)
    except (ValueError, RuntimeError) as err:
        if isinstance(err, ArenaError):
            raise
        raise ArenaError(f"{m.label(size)} does not fit this model's layer shapes ({err}); try another "
                         f"{m.size_name}") from None
    budget = default_budget(config) if budget is None else check_budget(budget)
    return Sized(m.name, size if m.size_name else None, count, budget, False)


def match_all(methods, config, budget: int | None) -> list[Sized]:
    return [match(m, config, budget) for m in methods]
