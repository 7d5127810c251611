"""The robustness chapter's numbers, from the study's rows (``robustness.run_robustness``): every run's changes on the
test split and on the validation split, each method's best rate chosen on validation, OFT against LoRA at every rate,
the spread between training seeds beside the item-sampling error, and whether the OFT - LoRA gap of chapter 02 changes
with the rate (a paired difference of differences, with the seed spread in its error, Holm-corrected). Pure functions
of the rows; every difference is paired (book/definitions.md S).
"""

from __future__ import annotations

import math

import pandas as pd

from .report import ALPHA, compare, deltas, SEED_SD, verdict, Z
from .robustness import combined_se, seed_sd
from .scores import paired_difference, summarise
from .stats import holm, non_dominated, two_sided_p


def _factor(r: dict) -> float:
    return r["variation"]["factor"]


def _seed(r: dict) -> int:
    return r["variation"]["seed"]


def validation_changes(r: dict) -> dict:
    """Forgetting and Target gain of a run's final checkpoint on the validation split, against that split's base."""
    diff = paired_difference(r["validation"]["items"], r["validation_base"]["items"])
    return {"forgetting": -diff["general"], "forgetting_se": diff["general_se"], "target_gain": diff["target"],
            "target_gain_se": diff["target_se"]}


def study_table(rows: list[dict]) -> pd.DataFrame:
    """One row per run: method, rate factor, seed, learning rate, and Forgetting / Target gain (test) with paired
    errors, plus the validation split's trade-off (Target gain - Forgetting) that chooses the best rate."""
    out = []
    for r in rows:
        d, v = deltas(r, r["base_eval"]), validation_changes(r)
        out.append({"method": r["method"], "lr factor": _factor(r), "seed": _seed(r), "lr": f"{r['lr']:.2e}",
                    "General": r["eval"]["general"], "Target": r["eval"]["target"],
                    "Forgetting": d["forgetting"], "Forgetting se": d["forgetting_se"],
                    "Target gain": d["target_gain"], "Target gain se": d["target_gain_se"],
                    "validation trade-off": v["target_gain"] - v["forgetting"]})
    return pd.DataFrame(out).set_index(["method", "lr factor", "seed"])


def best_rates(rows: list[dict], seed: int) -> dict[str, float]:
    """Each method's best rate factor at the profile's ``seed``, chosen on the **validation** split alone: the
    highest validation trade-off (Target gain - Forgetting, one point of each weighted the same, as the summary's
    ranking); a tie goes to the factor nearest 1 (the default)."""
    best = {}
    for r in rows:
        if _seed(r) != seed:
            continue
        v = validation_changes(r)
        score = (v["target_gain"] - v["forgetting"], -abs(_factor(r) - 1.0))
        if r["method"] not in best or score > best[r["method"]][0]:
            best[r["method"]] = (score, _factor(r))
    return {m: f for m, (_, f) in best.items()}


def plane_frame(rows: list[dict], seed: int) -> pd.DataFrame:
    """Each method's points over the rate grid (profile seed) on the stability-plasticity plane, with the frontier
    over rates within each method (``charts.pareto`` with ``frontier_by="family"``)."""
    frame = pd.DataFrame([{"method": f"{r['label']} lr x{_factor(r):.3g}", "family": r["method"],
                           "General": r["eval"]["general"], "General se": r["eval"]["general_se"],
                           "Target": r["eval"]["target"], "Target se": r["eval"]["target_se"]}
                          for r in rows if _seed(r) == seed])
    frame["frontier"] = False
    for _, group in frame.groupby("family"):
        keep = non_dominated(list(zip(group["General"], group["Target"])))
        frame.loc[group.index[keep], "frontier"] = True
    return frame


def pair_by_rate(rows: list[dict], seed: int, a: str = "oft", b: str = "lora") -> pd.DataFrame:
    """Method ``a`` against ``b`` (paired, test split) at every common rate factor, then each at its best rate."""
    at = {(r["method"], _factor(r)): r for r in rows if _seed(r) == seed}
    factors = sorted({f for m, f in at if m == a} & {f for m, f in at if m == b})
    out = [{"rates": f"both x{f:.3g}", **compare(at[(a, f)], at[(b, f)])} for f in factors]
    best = best_rates(rows, seed)
    if a in best and b in best:
        out.append({"rates": f"best on validation ({a} x{best[a]:.3g}, {b} x{best[b]:.3g})",
                    **compare(at[(a, best[a])], at[(b, best[b])])})
    return pd.DataFrame(out).set_index("rates")


def seed_table(rows: list[dict]) -> pd.DataFrame:
    """Per method, at its default rate: the spread of Forgetting and Target gain between training seeds beside the
    item-sampling error of one run, and the combined error (``robustness.combined_se``) of a single run."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        runs = [r for r in rows if r["method"] == method and _factor(r) == 1.0]
        changes = [deltas(r, r["base_eval"]) for r in runs]
        row = {"method": method, "seeds": len(runs)}
        for axis, key in (("Forgetting", "forgetting"), ("Target gain", "target_gain")):
            item = max(c[f"{key}_se"] for c in changes)
            spread = seed_sd([c[key] for c in changes])
            row |= {f"{axis} item se": item, f"{axis} seed sd": spread,
                    f"{axis} combined se": combined_se(item, spread)}
        out.append(row)
    return pd.DataFrame(out).set_index("method")


def _combine(parts: list[tuple[float, dict]]) -> dict:
    """Per-item sum_r c_r x_r over runs scored on the same items (``parts``: (coefficient, items) per run), in the
    layout of ``scores.summarise``: the summary of it is the combination of the runs' scores, with its paired error.
    A task that one run lacks (a likelihood twin scored later) is left out, as ``scores.paired_difference`` does."""
    out = {}
    for task in parts[0][1]:
        if any(task not in items for _, items in parts):
            continue
        if task.endswith(":inst"):  # prompt clusters of instructions
            out[task] = [[sum(c * items[task][i][j] for c, items in parts) for j in range(len(prompt))]
                         for i, prompt in enumerate(parts[0][1][task])]
        else:
            out[task] = [sum(c * items[task][i] for c, items in parts) for i in range(len(parts[0][1][task]))]
    return out


def _linear(terms: list[tuple[float, dict]], sds: dict) -> dict:
    """A signed sum of runs' scores, General and Target, each with its error from items and seeds: the items' part
    is the paired error of the per-item combination; each distinct run adds c^2 sd_m^2, sd_m its method's spread
    between seeds at the default rate (taken to hold at every rate: it is measured there only)."""
    runs: dict[int, tuple[float, dict]] = {}
    for c, r in terms:
        runs[id(r)] = (runs.get(id(r), (0.0, r))[0] + c, r)
    runs = {k: (c, r) for k, (c, r) in runs.items() if c}
    if not runs:
        return {"General": (0.0, 0.0, 0.0), "Target": (0.0, 0.0, 0.0)}
    summary = summarise(_combine([(c, r["eval"]["items"]) for c, r in runs.values()]))
    out = {}
    for axis, key in (("General", "general"), ("Target", "target")):
        seed = math.sqrt(sum(c**2 * sds.get((r["method"], axis), 0.0) ** 2 for c, r in runs.values()))
        out[axis] = (summary[key], summary[f"{key}_se"], seed)
    return out


def gap_changes(rows: list[dict], seed: int, a: str = "oft", b: str = "lora") -> pd.DataFrame:
    """Does the gap a - b of chapter 02 (default rates, profile seed) change with the learning rate? Per other common
    rate factor f, and with each method at its best validation rate (unless that is a common factor, already a row),
    on General and Target: the gap there and the paired change of the gap, (a_f - b_f) - (a_1 - b_1) (a difference of
    differences on the same items), each with its error from items and seeds, sqrt(se_items^2 + sum_r c_r^2 sd_r^2)
    over the runs r it involves; two-sided p-values, Holm-adjusted over every change in the table, a change "beyond
    noise" at adjusted p <= ALPHA."""
    at = {(r["method"], _factor(r)): r for r in rows if _seed(r) == seed}
    if (a, 1.0) not in at or (b, 1.0) not in at:
        return pd.DataFrame()
    seeds = seed_table(rows)
    sds = {(m, axis): float(seeds.loc[m, column]) for m in seeds.index for axis, column in SEED_SD.items()}
    base_a, base_b = at[(a, 1.0)], at[(b, 1.0)]
    common = sorted({f for m, f in at if m == a} & {f for m, f in at if m == b})
    pairs = [(f"both x{f:.3g}", at[(a, f)], at[(b, f)]) for f in common if f != 1.0]
    best = best_rates(rows, seed)
    if a in best and b in best and not (best[a] == best[b] and best[a] in common):  # else a row above already
        pairs.append((f"best on validation ({a} x{best[a]:.3g}, {b} x{best[b]:.3g})", at[(a, best[a])],
                      at[(b, best[b])]))
    default = _linear([(1, base_a), (-1, base_b)], sds)
    out = []
    for name, ra, rb in pairs:
        gap = _linear([(1, ra), (-1, rb)], sds)
        change = _linear([(1, ra), (-1, rb), (-1, base_a), (1, base_b)], sds)
        for axis in ("General", "Target"):
            value, items, spread = change[axis]
            se = math.hypot(items, spread)
            out.append({"rates": name, "axis": axis, "gap at default": default[axis][0],
                        "gap se (default)": math.hypot(*default[axis][1:]), "gap here": gap[axis][0],
                        "gap se (here)": math.hypot(*gap[axis][1:]), "change of the gap": value,
                        "items se": items, "seeds sd part": spread, "se": se, "p": two_sided_p(value, se)})
    table = pd.DataFrame(out)
    if table.empty:
        return table
    table["p (Holm)"] = holm(list(table["p"]))
    table["change is"] = ["beyond noise" if q <= ALPHA else "within noise" for q in table["p (Holm)"]]
    return table.set_index(["rates", "axis"])


def survives(rows: list[dict], seed: int, a: str = "oft", b: str = "lora") -> str:
    """Whether chapter 02's gap a - b (default rates) is a property of the methods or of the rate, per axis, from
    ``gap_changes``: "changes with the rate" when a change of the gap is beyond noise after Holm's correction; "holds"
    when the gap is beyond Z standard errors (items and seeds) on the same side at the default and at every other
    rate; else "inconclusive" (neither shown: a within-noise gap that stays within noise proves nothing)."""
    table = gap_changes(rows, seed, a, b)
    if table.empty:
        return f"{a} and {b} are not both in the study at the default rate and another: nothing to check."
    seeds = seed_table(rows)
    spread = "" if (seeds["seeds"] > 1).all() else " (one seed only: no seed spread measured, item errors alone)"
    lines = [f"{a} - {b} across learning rates: {len(table)} paired changes of the gap, Holm-corrected{spread}."]
    for axis in ("General", "Target"):
        part = table.xs(axis, level="axis")
        gap, gap_se = part["gap at default"].iloc[0], part["gap se (default)"].iloc[0]
        side = verdict(gap, gap_se, f"{a} higher", f"{b} higher")
        head = f"{axis}: at the default rates {gap:+.1f} ± {gap_se:.1f} points (items and seeds: {side})"
        moved = part[part["change is"] == "beyond noise"]
        sides = {verdict(g, se, "+", "-") for g, se in zip(part["gap here"], part["gap se (here)"])}
        if not moved.empty:
            where = "; ".join(f"{i}: {r['change of the gap']:+.1f} ± {r['se']:.1f} (Holm p = {r['p (Holm)']:.2g})"
                              for i, r in moved.iterrows())
            lines.append(f"{head}; the gap changes with the rate, so chapter 02's verdict does not survive: {where}.")
        elif side not in ("within noise", "no change") and sides == {"+" if gap > 0 else "-"}:
            lines.append(f"{head}; it holds: the gap is beyond {Z:g} standard errors on the same side at every rate "
                         f"and no change of it is beyond noise.")
        else:
            lines.append(f"{head}; inconclusive: no change of the gap between rates is beyond noise "
                         f"(largest {part['change of the gap'].abs().max():.1f} points, smallest Holm p = "
                         f"{part['p (Holm)'].min():.2g}), and the gap itself is within noise at the default or "
                         "another rate, so neither a stable ranking nor a rate-dependent one is shown.")
    return " ".join(lines)
