"""Small statistics the chapters share: means with standard errors, paired differences, the Pareto frontier."""

from __future__ import annotations

import math


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n)); se = 0 for n < 2."""
    n = len(values)
    if n == 0:
        raise ValueError("mean of no values")
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


def paired_difference(items_a: dict, items_b: dict) -> dict:
    """Score differences a - b on the same items (paper_spec.md A5), with paired standard errors.

    Every score is a (nested) mean of per-item scores, so the difference of the summaries is the summary of the per-item
    differences, and its standard error comes from those differences: far smaller than combining two independent
    errors, because both models answer the same questions.
    """
    from .evaluate import summarise

    diff = {}
    for task, a in items_a.items():
        b = items_b[task]
        if task.endswith(":inst"):
            diff[task] = [[x - y for x, y in zip(pa, pb)] for pa, pb in zip(a, b)]
        else:
            diff[task] = [x - y for x, y in zip(a, b)]
    return summarise(diff)


def non_dominated(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better on both), i.e. the Pareto frontier
    in (General, Target) (paper_spec.md A5), sorted by the first coordinate."""
    keep = []
    for i, (x, y) in enumerate(points):
        dominated = any((u >= x and v >= y) and (u > x or v > y) for j, (u, v) in enumerate(points) if j != i)
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: points[i])
