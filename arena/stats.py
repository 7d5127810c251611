"""Small statistics the chapters share: means with standard errors, the Pareto frontier, correlations with
bootstrap intervals (book/definitions.md S)."""

from __future__ import annotations

import math

MIN_BOOTSTRAP = 5  # below this many points a bootstrap interval is meaningless: report none (NaN)


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n)); se = 0 for n < 2."""
    n = len(values)
    if n == 0:
        raise ValueError("mean of no values")
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


def non_dominated(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better on both), i.e. the Pareto frontier
    in (General, Target) (book/definitions.md A5), sorted by the first coordinate."""
    keep = []
    for i, (x, y) in enumerate(points):
        dominated = any((u >= x and v >= y) and (u > x or v > y) for j, (u, v) in enumerate(points) if j != i)
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: points[i])


def _bootstrap_interval(fn, x, y, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile 95 % interval of ``fn(x, y)`` over pairs resampled with replacement; NaN below MIN_BOOTSTRAP
    points, where an interval is meaningless."""
    import numpy as np

    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot if len(x) >= MIN_BOOTSTRAP else 0):
        idx = rng.integers(0, len(x), len(x))
        if np.ptp(x[idx]) > 0 and np.ptp(y[idx]) > 0:  # a constant resample has no correlation
            boots.append(fn(x[idx], y[idx]))
    if not boots:
        return float("nan"), float("nan")
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(lo), float(hi)


def rank_correlation(x: list[float], y: list[float], n_boot: int = 2000, seed: int = 0) -> dict:
    """Spearman's rho of paired values with a percentile bootstrap interval and scipy's p-value. With a handful of
    methods the interval is wide; the chapters say so."""
    import numpy as np
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    rho, p = stats.spearmanr(x, y)
    lo, hi = _bootstrap_interval(lambda a, b: stats.spearmanr(a, b)[0], x, y, n_boot, seed)
    return {"rho": float(rho), "p": float(p), "ci_low": lo, "ci_high": hi, "n": int(len(x))}


def correlations(x: list[float], y: list[float], n_boot: int = 2000, seed: int = 0) -> dict:
    """Pearson's r and Spearman's rho with percentile bootstrap intervals (pairs resampled together)."""
    import numpy as np
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    out = {"n": int(len(x))}
    for name, fn in (("pearson", lambda a, b: stats.pearsonr(a, b)[0]),
                     ("spearman", lambda a, b: stats.spearmanr(a, b)[0])):
        lo, hi = _bootstrap_interval(fn, x, y, n_boot, seed)
        out |= {name: float(fn(x, y)), f"{name}_low": lo, f"{name}_high": hi}
    return out
