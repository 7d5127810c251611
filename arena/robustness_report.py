"""The robustness chapter's numbers, from the study's rows (``robustness.run_robustness``): every run's changes on the
test split and on the validation split, each method's best rate chosen on validation, OFT against LoRA at every rate,
the spread between training seeds beside the item-sampling error, and the sentence that says whether chapter 02's
verdict survives. Pure functions of the rows; every difference is paired (book/definitions.md S).
"""

from __future__ import annotations

import pandas as pd

from .report import compare, deltas
from .robustness import combined_se, seed_sd
from .scores import paired_difference
from .stats import non_dominated


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


def survives(rows: list[dict], seed: int, a: str = "oft", b: str = "lora") -> str:
    """Whether chapter 02's General verdict of ``a`` against ``b`` (at the default rates and seed) holds at every
    common rate and at each method's best validation rate: one sentence, computed from the paired verdicts."""
    table = pair_by_rate(rows, seed, a, b)
    if table.empty:
        return f"{a} and {b} are not both in the study: nothing to check."
    default = table.loc[[i for i in table.index if i == "both x1"]]
    if default.empty:
        return "the default rate is not in the grid: chapter 02's verdict has no counterpart here."
    def side(v: str) -> str:  # "within noise" and "no change" both say neither method is ahead
        return "neither" if v in ("within noise", "no change") else v

    expected = default.iloc[0]["General verdict"]
    changed = [(i, r["General verdict"], r["General diff"], r["General diff se"]) for i, r in table.iterrows()
               if side(r["General verdict"]) != side(expected)]
    head = (f"Chapter 02's verdict on General, {a} - {b} at the default rates: {expected} "
            f"({default.iloc[0]['General diff']:+.1f} ± {default.iloc[0]['General diff se']:.1f} points). ")
    if not changed:
        return head + f"It holds at every rate of the grid and at each method's best validation rate ({len(table)} " \
                      "paired comparisons)."
    where = "; ".join(f"{i}: {v} ({d:+.1f} ± {se:.1f})" for i, v, d, se in changed)
    return head + f"It does not survive: {where}."

