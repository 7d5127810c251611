"""Small statistics the chapters share: means with standard errors, the Pareto frontier, the tests behind the
verdicts (spread against noise, equivalence, Holm), correlations with Fisher-z intervals (book/definitions.md S)."""

from __future__ import annotations

import math
import statistics

MIN_FISHER = 4  # Fisher's z needs n - 3 > 0 points: below, no interval (NaN)


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n)); se = 0 for n < 2."""
    n = len(values)
    if n == 0:
        raise ValueError("mean of no values")
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


def stratified_se(strata: list[list[float]]) -> float:
    """Standard error of the mean of stratum means (BBH's score: the mean of its subtask means, A3).

    se = sqrt(sum_s v_s / n_s) / S over the S strata, with v_s the stratum's sample variance. A stratum with a single
    item has no variance of its own: it takes the pooled within-stratum variance of the others,
    sum_s sum_i (x_si - mean_s)^2 / sum_s (n_s - 1); when no stratum has two items, the variance of every item about
    the grand mean ("collapsed strata", Cochran 1977 5A.12: conservative, as it includes the spread between strata).
    Without this a one-item-per-subtask split would get se = 0.
    """
    if not strata or any(len(x) == 0 for x in strata):
        raise ValueError("every stratum needs at least one value")
    ss = sum(sum((v - sum(x) / len(x)) ** 2 for v in x) for x in strata)
    dof = sum(len(x) - 1 for x in strata)
    if dof:
        pooled = ss / dof
    else:
        flat = [v for x in strata for v in x]
        pooled = statistics.variance(flat) if len(flat) > 1 else 0.0
    var = sum((mean_se(x)[1] ** 2 if len(x) > 1 else pooled / len(x)) for x in strata)
    return math.sqrt(var) / len(strata)


def cluster_mean_se(clusters: list[list[float]]) -> tuple[float, float]:
    """Mean of every item of every cluster, with a cluster-robust standard error (IFEval's instruction-level score:
    instructions cluster in prompts, and one prompt's instructions succeed or fail together).

    mean = sum_c y_c / sum_c m_c (y_c the cluster's total, m_c its size); var = C / (C - 1) * sum_c (y_c - mean m_c)^2
    / (sum_c m_c)^2, the linearised variance of a ratio estimator with the CR1 small-sample factor (Cameron & Miller
    2015). With one item per cluster it is ``mean_se``'s. se = 0 for a single cluster.
    """
    clusters = [c for c in clusters if len(c)]
    if not clusters:
        raise ValueError("mean of no values")
    n = sum(len(c) for c in clusters)
    mean = sum(sum(c) for c in clusters) / n
    k = len(clusters)
    if k < 2:
        return mean, 0.0
    var = k / (k - 1) * sum((sum(c) - mean * len(c)) ** 2 for c in clusters) / n**2
    return mean, math.sqrt(var)


def family_threshold(candidates: int, z: float = 2.0) -> float:
    """The z-threshold for "the best of ``candidates`` estimates is above noise": the one-sided Bonferroni bound that
    keeps the chance of any false alarm at the single-test level of ``z``, Phi^-1(1 - (1 - Phi(z)) / k). One
    candidate gives ``z`` itself; 10 candidates at z = 2 give 2.84."""
    from scipy.stats import norm

    if candidates < 1:
        raise ValueError("candidates must be at least 1")
    return float(norm.isf(norm.sf(z) / candidates))


def detectable_effect(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The minimum detectable effect of an estimate with standard error ``se``: the true difference a two-sided test
    at level ``alpha`` finds with probability ``power``, (z_{1-alpha/2} + z_power) * se (2.80 se at the defaults)."""
    from scipy.stats import norm

    return float((norm.isf(alpha / 2) + norm.isf(1 - power)) * se)


def cheapest_allocation(unit_variances: list[list[float]], weights: list[float], costs: list[float],
                        target_se: float, most: list[float | None] | None = None) -> list[float]:
    """Items per group n_g that keep the standard error of a weighted composite sum_g w_g x_g at or below
    ``target_se`` for every row m of ``unit_variances`` (one row per method) at the least scoring cost sum_g c_g n_g.

    A group's error at n items is sqrt(V_mg / n), with V_mg = n_run * se_run^2 the per-item variance a run measured
    (paired differences, prompt clusters and subtask strata included), so the constraint is
    sum_g w_g^2 V_mg / n_g <= T^2 for every m. With one row this is Neyman's allocation with costs (Cochran 1977,
    5.5): n_g = w_g sqrt(V_g / c_g) * sum_h w_h sqrt(V_h c_h) / T^2. With several it is convex in 1/n_g and solved
    by scipy (SLSQP) from the Neyman allocation of the elementwise largest variances, which meets every row.
    ``most`` caps a group's items (the items its source holds; None: no cap): a capped group that would exceed its cap
    stays there and the others share the rest of the budget. Returns real n_g; round up. No allocation within the caps
    meets the target: ValueError.
    """
    import numpy as np
    from scipy.optimize import minimize

    v = np.atleast_2d(np.asarray(unit_variances, float))
    w2, c = np.asarray(weights, float) ** 2, np.asarray(costs, float)
    cap = np.array([np.inf if m is None else float(m) for m in (most or [None] * len(c))])
    if target_se <= 0 or (c <= 0).any() or (v < 0).any() or (cap <= 0).any():
        raise ValueError("the target error, every cost and every cap must be positive and every variance "
                         "non-negative")
    a = v * w2 / target_se**2  # row m's constraint: a[m] @ (1 / n) <= 1
    if ((a / cap).sum(axis=1) >= 1).any():  # even every capped group at its cap cannot meet a row
        raise ValueError(f"no allocation within the caps {most} meets a standard error of {target_se}: raise the "
                         "caps")
    worst = _capped_neyman(a.max(axis=0), c, cap)  # the elementwise largest variances: it meets every row
    if len(a) == 1:  # exact for one row
        return [float(x) for x in worst]
    # Optimise y = worst / n (1 at the start): cost sum (c worst) / y is convex and the constraints are linear in y;
    # the scaling keeps SLSQP's steps of order one whatever the units. SLSQP often stops on "positive directional
    # derivative" at the optimum's last digits: its point is judged by feasibility and cost, not by its flag, and
    # the feasible start stands when it is no better.
    on = worst > 0  # a group no row has variance in gets no items
    cost, rows = c[on] * worst[on], a[:, on] / worst[on]
    result = minimize(lambda y: cost @ (1 / y), np.ones(on.sum()), jac=lambda y: -cost / y**2, method="SLSQP",
                      bounds=[(s / m, None) for s, m in zip(worst[on], cap[on])],
                      constraints=[{"type": "ineq", "fun": lambda y: 1 - rows @ y, "jac": lambda y: -rows}],
                      options={"ftol": 1e-10, "maxiter": 1000})
    best = worst.copy()
    if (rows @ result.x <= 1 + 1e-6).all() and (worst[on] / result.x <= cap[on] * (1 + 1e-6)).all() and \
            cost @ (1 / result.x) < c @ worst:
        best[on] = worst[on] / result.x
    return [float(x) for x in best]


def _capped_neyman(a, c, cap):
    """The least-cost n with sum_g a_g / n_g <= 1 and n_g <= cap_g: Neyman's n_g = sqrt(a_g / c_g) sum_h
    sqrt(a_h c_h), with each group over its cap fixed there and the rest re-solved on the budget left (the KKT
    conditions of a separable convex problem); a group without variance gets no items."""
    import numpy as np

    n, fixed = np.zeros(len(a)), np.zeros(len(a), bool)
    while True:
        free = ~fixed & (a > 0)
        budget = 1 - (a[fixed] / cap[fixed]).sum()
        n[free] = np.sqrt(a[free] / c[free]) * np.sqrt(a[free] * c[free]).sum() / budget
        over = free & (n > cap)
        if not over.any():
            return n
        fixed |= over
        n[over] = cap[over]


def non_dominated(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better on both), i.e. the Pareto frontier
    in (General, Target) (book/definitions.md A5), sorted by the first coordinate."""
    keep = []
    for i, (x, y) in enumerate(points):
        dominated = any((u >= x and v >= y) and (u > x or v > y) for j, (u, v) in enumerate(points) if j != i)
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: points[i])


def two_sided_p(value: float, se: float) -> float:
    """p-value of "the true value is zero" for an estimate with standard error ``se`` (normal): 2 Phi(-|value| / se);
    1 for an exact zero, 0 for an exact non-zero."""
    from scipy.stats import norm

    if se == 0:
        return 1.0 if value == 0 else 0.0
    return float(2 * norm.sf(abs(value) / se))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979; statsmodels' ``multipletests``): with p_(1) <= ... <= p_(m),
    p~_(j) = max_{i <= j} min(1, (m - i + 1) p_(i)). Rejecting every p~ <= alpha keeps the chance of any false
    rejection among the m tests at or below alpha, whatever their dependence."""
    from statsmodels.stats.multitest import multipletests

    return [float(x) for x in multipletests(list(pvalues), method="holm")[1]] if len(pvalues) else []


def tost(estimate: float, se: float, margin: float) -> float:
    """p-value of the two one-sided tests (TOST, Schuirmann 1987) of "the true value is within +-``margin``", on a
    normal estimate: max(Phi(-(estimate + margin) / se), Phi(-(margin - estimate) / se)). Below a level alpha both
    one-sided tests reject, i.e. the interval estimate -+ z_{1-alpha} se lies inside (-margin, margin)."""
    from scipy.stats import norm

    if se == 0:
        return 0.0 if abs(estimate) < margin else 1.0
    return float(max(norm.sf((estimate + margin) / se), norm.sf((margin - estimate) / se)))


def spread_test(values: list[float], ses: list[float]) -> dict:
    """Do k estimates differ by more than their errors say? ``snr`` = sd(values) / sqrt(mean(se^2)), the kit's
    signal-to-noise ratio; under "every true value equal" with independent normal errors, SNR^2 (k - 1) is chi^2 with
    k - 1 degrees of freedom (exactly when the errors are equal), so ``f`` = SNR^2 is a chi^2_{k-1} / (k - 1) ratio
    with p-value ``p``, and ``null_95`` = sqrt(chi^2_{k-1, 0.95} / (k - 1)) is the SNR noise alone exceeds one time in
    twenty (1.39 for 9 estimates): an SNR near 1 is what equal methods draw."""
    from scipy.stats import chi2

    k = len(values)
    if k < 2:
        raise ValueError("a spread needs at least two estimates")
    mean = sum(values) / k
    signal = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1))
    noise = math.sqrt(sum(s**2 for s in ses) / k)
    snr = signal / noise if noise else float("inf") if signal else float("nan")
    f = snr**2
    p = float(chi2.sf(f * (k - 1), k - 1)) if f == f else float("nan")
    return {"signal": signal, "noise": noise, "snr": snr, "f": f, "p": p,
            "null_95": math.sqrt(chi2.isf(0.05, k - 1) / (k - 1))}


def fisher_interval(r: float, n: int, level: float = 0.95, spearman: bool = False) -> tuple[float, float]:
    """Interval for a correlation from Fisher's z = atanh(r): tanh(z -+ z_{(1+level)/2} s), s = 1 / sqrt(n - 3) for
    Pearson's r (exact under bivariate normality as n grows), s = sqrt((1 + r^2 / 2) / (n - 3)) for Spearman's rho
    (Bonett & Wright 2000). NaN below MIN_FISHER points. It treats each point as exact: the error of each method's own
    estimate is not in it."""
    from scipy.stats import norm

    if n < MIN_FISHER or r != r:
        return float("nan"), float("nan")
    if abs(r) >= 1:
        return float(r), float(r)
    s = math.sqrt(((1 + r**2 / 2) if spearman else 1.0) / (n - 3))
    half = norm.isf((1 - level) / 2) * s
    z = math.atanh(r)
    return math.tanh(z - half), math.tanh(z + half)


def rank_correlation(x: list[float], y: list[float]) -> dict:
    """Spearman's rho of paired values with scipy's p-value and a Fisher-z 95 % interval (``fisher_interval``; nominal:
    with a handful of methods its real coverage is approximate, and the chapters say so)."""
    import numpy as np
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    rho, p = stats.spearmanr(x, y)
    lo, hi = fisher_interval(float(rho), len(x), spearman=True)
    return {"rho": float(rho), "p": float(p), "ci_low": lo, "ci_high": hi, "n": int(len(x))}


def correlations(x: list[float], y: list[float]) -> dict:
    """Pearson's r and Spearman's rho with Fisher-z 95 % intervals (``fisher_interval``)."""
    import numpy as np
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    out = {"n": int(len(x))}
    for name, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr)):
        r = float(fn(x, y)[0])
        lo, hi = fisher_interval(r, len(x), spearman=name == "spearman")
        out |= {name: r, f"{name}_low": lo, f"{name}_high": hi}
    return out
