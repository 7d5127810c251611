"""Tables the benchmark chapters show: budgets, results with paired errors, forgetting verdicts, the paper beside us.

Pure functions of stored run records (``benchmark.run_method``) and the base evaluation; they compute nothing heavy.
"""

from __future__ import annotations

from statistics import NormalDist

from .methods import get_method
from .methods.quantized import four_bit_support
from .scores import GENERAL, paired_difference, STOCK_GENERAL
from .stats import detectable_effect, family_threshold, non_dominated, spread_test, tost
from .store import results_root

Z = 2.0  # "above noise": the estimate is more than two standard errors from zero
ALPHA = 2 * NormalDist().cdf(-Z)  # that rule's two-sided level (4.55 %): a family of tests is held to the same
MARGIN = 2.0  # points: "similar", "near base" and "kept" mean within this much, shown by the 2-SE interval (TOST)

# book/definitions.md E1 (SFT, Target / General, %): the paper's reported numbers, shown beside ours and labelled as
# such.
PAPER_E1 = {
    "base": {"qwen_math": (35.30, 46.97), "llama_math": (27.63, 53.03)},
    "full": {"qwen_math": (50.63, 34.22), "llama_math": (33.90, 39.83)},
    "lora": {"qwen_math": (42.47, 39.22), "llama_math": (24.07, 36.57)},
    "dora": {"qwen_math": (42.33, 40.25), "llama_math": (23.83, 35.65)},
    "pissa": {"qwen_math": (44.53, 24.78), "llama_math": (0.67, 7.08)},
    "milora": {"qwen_math": (42.60, 37.62), "llama_math": (23.60, 35.59)},
    "oft": {"qwen_math": (46.93, 44.37), "llama_math": (30.60, 40.73)},
    "ia3": {"qwen_math": (35.13, 44.71), "llama_math": (29.70, 45.72)},
    "vera": {"qwen_math": (39.43, 47.25), "llama_math": (28.80, 46.79)},
    "miss": {"qwen_math": (43.17, 39.12), "llama_math": (23.37, 33.93)},
    "adalora": {"qwen_math": (40.43, 35.41), "llama_math": (20.83, 34.53)},
    "keeplora": {"qwen_math": (40.53, 43.75), "llama_math": (15.20, 40.74)},
}
# book/definitions.md B6 [F]: fluctuation scores (retention, adaptation) at Qwen2.5-7B layer 18 down_proj, SFT, read off
# the paper's log-scale bar chart (about ±0.5 on the axis unit).
PAPER_B6_FLUCTUATION = {"full": (3.5e-4, 3.3e-4), "oft": (1.1e-4, 1.1e-3), "lora": (1.8e-4, 6e-3),
                        "miss": (1.0e-3, 2.4e-2), "pissa": (2.5e-3, 1.4e-2), "vera": (8e-5, 3e-4),
                        "adalora": (1.1e-4, 3e-3)}
# book/definitions.md C5: (Pearson, Spearman) of each general-data metric with Forgetting across SFT checkpoints.
PAPER_C5_CORRELATION = {"proc_residual": (0.711, 0.568), "gram_cosine_dist": (0.485, 0.361), "cka": (-0.761, -0.711),
                        "csd_rel": (0.347, 0.317), "csd_update_norm": (0.481, 0.603)}


def budget_table(sized: list) -> "pd.DataFrame":
    """Method, size, achieved trainable count, and its ratio to the budget (budget.Sized rows)."""
    import pandas as pd

    return pd.DataFrame([{"method": s.label, "trainable": s.count, "budget": s.budget,
                          "count / budget": round(s.ratio, 3) if s.ratio else None,
                          "size matched": "yes" if s.matched else "fixed size"} for s in sized]).set_index("method")


def own_base(record: dict, base: dict) -> dict:
    """The evaluation of the base ``record``'s method started from (``benchmark.run_method`` stores it), else
    ``base``: a method that fell back to full precision under an nf4 profile is compared with the full-precision
    base, not with the nf4 one."""
    return record.get("base_eval") or base


def base_label(quantization: str | None) -> str:
    return f"base ({quantization})" if quantization else "base (full precision)"


def deltas(record: dict, base: dict) -> dict:
    """Forgetting = General(base) - General(ckpt) and TargetGain = Target(ckpt) - Target(base) (A5), in points,
    with paired standard errors, plus per-group changes; ``base`` is the method's own starting base (``own_base``)."""
    diff = paired_difference(record["eval"]["items"], own_base(record, base)["items"])
    out = {"forgetting": -diff["general"], "forgetting_se": diff["general_se"], "target_gain": diff["target"],
           "target_gain_se": diff["target_se"],
           "groups": {g: (v["score"], v["se"]) for g, v in diff["groups"].items()}}
    if "ll" in diff:  # the likelihood twins in bits per byte: forgetting raises General's, learning lowers Target's
        ll = diff["ll"]
        out |= {"forgetting_ll": ll["general"], "forgetting_ll_se": ll["general_se"], "target_gain_ll": -ll["target"],
                "target_gain_ll_se": ll["target_se"]}
    return out


def bases_of(records: list[dict], base: dict) -> dict:
    """``{quantization: evaluation}`` of every distinct base the records started from."""
    out = {base.get("quantization"): base}
    for r in records:
        if r.get("base_eval") and r.get("base_quantization") not in out:
            out[r["base_quantization"]] = r["base_eval"]
    return out


def base_precision_table(bases: dict) -> "pd.DataFrame":
    """The bases this run's methods start from (``runs.starting_bases``), with the paired gap of each to the
    profile's own (first) base: the nf4-versus-full-precision gap when both are in play."""
    import pandas as pd

    (q0, first), *others = bases.items()
    rows = [{"base": base_label(q0), "General": first["general"], "General se": first["general_se"],
             "Target": first["target"], "Target se": first["target_se"]}]
    for q, b in others:
        gap = paired_difference(b["items"], first["items"])
        rows.append({"base": base_label(q), "General": b["general"], "General se": b["general_se"],
                     "Target": b["target"], "Target se": b["target_se"],
                     f"General - {base_label(q0)}": gap["general"], "gap se (General)": gap["general_se"],
                     "General gap is": verdict(gap["general"], gap["general_se"], "higher", "lower"),
                     f"Target - {base_label(q0)}": gap["target"], "gap se (Target)": gap["target_se"],
                     "Target gap is": verdict(gap["target"], gap["target_se"], "higher", "lower")})
    return pd.DataFrame(rows).set_index("base")


def quantization_errors(frame: "pd.DataFrame") -> "pd.DataFrame | None":
    """Per method that started from a 4-bit base: ||deq(Q(W0)) - W0|| / ||W0|| over its matrices (mean, max) beside
    its update's ||dW|| / ||W_start||; None when no method did. The spectra measure dW from deq(Q(W0)), so this error
    is reported here and is not part of any update."""
    if "quantization_error" not in frame or not (frame["quantization_error"] > 0).any():
        return None
    quantised = frame[frame["quantization_error"] > 0]
    return quantised.groupby("method").agg(matrices=("name", "count"),
                                           quantisation_error_mean=("quantization_error", "mean"),
                                           quantisation_error_max=("quantization_error", "max"),
                                           relative_update_mean=("relative_dW", "mean"))


def verdict(value: float, se: float, positive: str, negative: str) -> str:
    if se == 0:
        return "no change" if value == 0 else (positive if value > 0 else negative)
    if abs(value) <= Z * se:
        return "within noise"
    return positive if value > 0 else negative


def other_bases_table(others: list) -> "pd.DataFrame | None":
    """``results_table`` of each other base (``benchmark.run_other_bases``), stacked under the base's name; None for
    a one-base profile."""
    import pandas as pd

    if not others:
        return None
    return pd.concat({other.model.name: results_table(records, base) for other, base, records in others},
                     names=["base"]).round(2)


def results_table(records: list[dict], base: dict) -> "pd.DataFrame":
    """One row per method: scores with standard errors, the base it started from and that base's scores, paired
    changes against that base, the proxies, cost (``base_precision_table`` compares the bases themselves)."""
    import pandas as pd

    rows = [{"method": "base", "trainable": 0, "General": base["general"], "General se": base["general_se"],
             "Target": base["target"], "Target se": base["target_se"]}]
    for r in records:
        e, d, p, b = r["eval"], deltas(r, base), r["eval"]["proxies"], own_base(r, base)
        rows.append({"method": r["label"], "trainable": r["count"],
                     "starts from": base_label(r.get("base_quantization", base.get("quantization"))),
                     "its base General": b["general"], "its base Target": b["target"], "General": e["general"],
                     "General se": e["general_se"], "Target": e["target"], "Target se": e["target_se"],
                     "Forgetting": d["forgetting"], "Forgetting se": d["forgetting_se"],
                     "forgetting is": verdict(d["forgetting"], d["forgetting_se"], "measurable", "negative"),
                     "Target gain": d["target_gain"], "Target gain se": d["target_gain_se"],
                     "gain is": verdict(d["target_gain"], d["target_gain_se"], "measurable", "negative"),
                     "CE drift": p["ce_drift"], "CE drift se": p["ce_drift_se"], "KL": p["kl"], "KL se": p["kl_se"],
                     "train s": r["train"]["train_wall_s"], "eval s": e.get("eval_wall_s"),
                     "eval aside": e.get("scored_aside", False)})
    return pd.DataFrame(rows).set_index("method")


def likelihood_table(records: list[dict], base: dict) -> "pd.DataFrame | None":
    """The likelihood twins of ``results_table`` (not the paper's yardstick; ``scores.twin_score``): per method, the
    gold answers' bits per byte on the General and Target groups, and the paired changes against its base,
    Forgetting-LL = bpb(ckpt) - bpb(base) on General and Target gain-LL = bpb(base) - bpb(ckpt) on Target (positive:
    forgot, learned), with verdicts. None where the results carry no twins (the stock tasks)."""
    import pandas as pd

    if "ll" not in base:
        return None
    rows = [{"method": "base", "General-LL": base["ll"]["general"], "General-LL se": base["ll"]["general_se"],
             "Target-LL": base["ll"]["target"], "Target-LL se": base["ll"]["target_se"]}]
    for r in records:
        d, ll = deltas(r, base), r["eval"].get("ll")
        if ll is None or "forgetting_ll" not in d:
            continue
        rows.append({"method": r["label"], "General-LL": ll["general"], "General-LL se": ll["general_se"],
                     "Target-LL": ll["target"], "Target-LL se": ll["target_se"],
                     "Forgetting-LL": d["forgetting_ll"], "Forgetting-LL se": d["forgetting_ll_se"],
                     "forgetting-LL is": verdict(d["forgetting_ll"], d["forgetting_ll_se"], "measurable", "negative"),
                     "Target gain-LL": d["target_gain_ll"], "Target gain-LL se": d["target_gain_ll_se"],
                     "gain-LL is": verdict(d["target_gain_ll"], d["target_gain_ll_se"], "measurable", "negative")})
    return pd.DataFrame(rows).set_index("method")


def signal_to_noise(table: "pd.DataFrame", likelihood: "pd.DataFrame | None" = None,
                    seeds: "pd.DataFrame | None" = None) -> "pd.DataFrame":
    """How well each yardstick separates the methods, as a test against "every method changes it equally"
    (``stats.spread_test``): signal = the standard deviation of the methods' estimates, noise = the root mean square
    of their paired standard errors, SNR = signal / noise; F = SNR^2 is chi^2_{k-1} / (k - 1) under that null, with its
    p-value and the SNR noise alone exceeds one time in twenty ("null 95 %", 1.39 for 9 methods). Inspired by Heineman
    et al. 2025, whose noise is training noise between checkpoints; here it is item sampling. With ``seeds`` (the
    robustness study's ``seed_table``) the training noise they mean is offered beside it: the root mean square of the
    measured seed spreads, and the same test with noise = sqrt(rms se^2 + rms seed sd^2)."""
    import math

    import pandas as pd

    rows = []
    for frame, measures, kind in ((table, ("Forgetting", "Target gain"), "accuracy (the paper's)"),
                                  (likelihood, ("Forgetting-LL", "Target gain-LL"), "likelihood twin")):
        if frame is None:
            continue
        frame = frame.drop(index="base", errors="ignore")
        for measure in measures:
            values, ses = frame[measure].astype(float), frame[f"{measure} se"].astype(float)
            if len(values) < 2:
                continue
            t = spread_test(list(values), list(ses))
            row = {"measure": measure, "yardstick": kind, "methods": len(values), "signal (sd)": t["signal"],
                   "noise (rms se)": t["noise"], "SNR": t["snr"], "F = SNR²": t["f"], "p (all equal)": t["p"],
                   "null 95 %": t["null_95"]}
            column = f"{measure} seed sd"
            if seeds is not None and column in seeds:
                seed = math.sqrt(float((seeds[column].astype(float) ** 2).mean()))
                both = spread_test(list(values), [math.hypot(se, seed) for se in ses])
                row |= {"seed sd (rms)": seed, "SNR (items + seeds)": both["snr"],
                        "p (items + seeds)": both["p"]}
            rows.append(row)
    columns = ["measure", "yardstick", "methods", "signal (sd)", "noise (rms se)", "SNR", "F = SNR²", "p (all equal)",
               "null 95 %"]
    if any("seed sd (rms)" in r for r in rows):
        columns += ["seed sd (rms)", "SNR (items + seeds)", "p (items + seeds)"]
    return pd.DataFrame(rows, columns=columns).set_index("measure")


# The power each verdict needs (points): the paired SE of Forgetting and of Target gain for every method, and the SE of
# the base's General on the validation split (rewinding's selection).
POWER_TARGETS = {"Forgetting": 2.0, "Target gain": 2.5, "validation General": 3.5}


def power_table(table: "pd.DataFrame", validation_base: dict | None = None) -> "pd.DataFrame":
    """How much each yardstick can see, from ``results_table``: per method and axis, the paired standard error
    against ``POWER_TARGETS``, and the minimum detectable effect (``stats.detectable_effect``: 5 % two-sided, 80 %
    power); plus the base's General SE on the validation split when it was scored."""
    import pandas as pd

    rows = []
    for method, r in table.drop(index="base").iterrows():
        for axis in ("Forgetting", "Target gain"):
            se = r[f"{axis} se"]
            rows.append({"method": method, "measure": axis, "se": se, "target se": POWER_TARGETS[axis],
                         "meets target": se <= POWER_TARGETS[axis], "detectable effect": detectable_effect(se)})
    if validation_base is not None:
        se, target = validation_base["general_se"], POWER_TARGETS["validation General"]
        rows.append({"method": "base", "measure": "validation General", "se": se, "target se": target,
                     "meets target": se <= target, "detectable effect": detectable_effect(se)})
    return pd.DataFrame(rows).set_index(["method", "measure"])


def certainty_table(table: "pd.DataFrame", likelihood: "pd.DataFrame | None" = None,
                    validation_base: dict | None = None) -> "pd.DataFrame":
    """One row per measure (the paper's accuracy composites and, where present, their likelihood twins): the base's
    standard error, the paired standard error of the change across methods (median and largest), the minimum
    detectable effect at the largest, and the power target where the kit sets one (``POWER_TARGETS``)."""
    import pandas as pd

    rows = []

    def add(measure, kind, unit, base_se, paired):
        largest = max(paired) if paired else float("nan")
        target = POWER_TARGETS.get(measure)
        rows.append({"measure": measure, "yardstick": kind, "unit": unit, "base se": base_se,
                     "paired se (median)": float(pd.Series(paired).median()) if paired else float("nan"),
                     "paired se (largest)": largest, "detectable effect": detectable_effect(largest),
                     "target se": target, "meets target": (largest <= target) if target and paired else None})

    for frame, kind, unit, measures in (
            (table, "accuracy (the paper's)", "points", (("Forgetting", "General se"), ("Target gain", "Target se"))),
            (likelihood, "likelihood twin", "bits per byte",
             (("Forgetting-LL", "General-LL se"), ("Target gain-LL", "Target-LL se")))):
        if frame is None:
            continue
        for measure, base_se in measures:
            add(measure, kind, unit, frame.loc["base", base_se], list(frame.drop(index="base")[f"{measure} se"]))
    if validation_base is not None:
        se = validation_base["general_se"]
        add("validation General", "accuracy (the paper's)", "points", se, [se])
    return pd.DataFrame(rows).set_index("measure")


def group_table(records: list[dict], base: dict) -> "pd.DataFrame":
    """Per-benchmark scores (%) of the base and every method."""
    import pandas as pd

    names = list(base["groups"])  # the suite's groups, or the stock tasks' on the hub profiles
    rows = [{"method": "base" if b is base else base_label(q), **{g: b["groups"][g]["score"] for g in names}}
            for q, b in bases_of(records, base).items()]
    rows += [{"method": r["label"], **{g: r["eval"]["groups"][g]["score"] for g in names}} for r in records]
    return pd.DataFrame(rows).set_index("method")


def group_deltas(records: list[dict], base: dict) -> "pd.DataFrame":
    """Long table: method, benchmark, change against the base (points) with its paired standard error."""
    import pandas as pd

    rows = []
    for r in records:
        for g, (value, se) in deltas(r, base)["groups"].items():
            rows.append({"method": r["label"], "benchmark": g, "axis": "general" if g in GENERAL or g in STOCK_GENERAL else "target",
                         "change": value, "se": se})
    return pd.DataFrame(rows)


def pareto_frame(records: list[dict], base: dict, likelihood: bool = False) -> "pd.DataFrame | None":
    """Points in (General, Target) with errors, the family, and whether each is on the non-dominated frontier. With
    ``likelihood``, the likelihood twins' plane instead, in negative bits per byte of the gold answers (so that up and
    right stay better); None where the results carry no twins."""
    import pandas as pd

    def point(e):
        if not likelihood:
            return {"General": e["general"], "General se": e["general_se"], "Target": e["target"],
                    "Target se": e["target_se"]}
        ll = e["ll"]
        return {"General": -ll["general"], "General se": ll["general_se"], "Target": -ll["target"],
                "Target se": ll["target_se"]}

    if likelihood and ("ll" not in base or any("ll" not in r["eval"] for r in records)):
        return None
    rows = [{"method": "base" if b is base else base_label(q), "family": "base", **point(b)}
            for q, b in bases_of(records, base).items()]
    rows += [{"method": r["label"], "family": r["family"], **point(r["eval"])} for r in records]
    frame = pd.DataFrame(rows)
    frontier = set(non_dominated(list(zip(frame["General"], frame["Target"]))))
    frame["frontier"] = [i in frontier for i in range(len(frame))]
    return frame


def compare(a: dict, b: dict) -> dict:
    """Method a minus method b on the same items: General and Target differences with paired errors, and, where the
    results carry them, the likelihood twins' differences (bits per byte; the lower side is the better)."""
    diff = paired_difference(a["eval"]["items"], b["eval"]["items"])
    twins = {}
    if "ll" in diff:  # the likelihood twins, in bits per byte (lower is better): a positive difference favours b
        ll = diff["ll"]
        twins = {"General-LL diff": ll["general"], "General-LL diff se": ll["general_se"],
                 "General-LL verdict": verdict(ll["general"], ll["general_se"], f"{b['label']} better",
                                               f"{a['label']} better"),
                 "Target-LL diff": ll["target"], "Target-LL diff se": ll["target_se"],
                 "Target-LL verdict": verdict(ll["target"], ll["target_se"], f"{b['label']} better",
                                              f"{a['label']} better")}
    return {"pair": f"{a['label']} - {b['label']}", "trainable a / b": a["count"] / b["count"],
            "General diff": diff["general"], "General diff se": diff["general_se"],
            "General verdict": verdict(diff["general"], diff["general_se"], f"{a['label']} higher",
                                       f"{b['label']} higher"),
            "Target diff": diff["target"], "Target diff se": diff["target_se"],
            "Target verdict": verdict(diff["target"], diff["target_se"], f"{a['label']} higher",
                                      f"{b['label']} higher")} | twins


SEED_SD = {"General": "Forgetting seed sd", "Target": "Target gain seed sd"}  # a change's seed spread is its score's


def compare_with_seeds(a: dict, b: dict, seeds: "pd.DataFrame | None") -> dict:
    """``compare(a, b)`` and, per axis, the error of the difference of two single runs when training seeds vary as well
    as items: sqrt(se^2 + sd_a^2 + sd_b^2), sd a method's spread between seeds at its default rate (``seeds``: the
    robustness study's ``seed_table``, indexed by method), with its verdict; NaN and "no seed spread" where either
    method's spread was not measured."""
    import math

    c = compare(a, b)
    for axis, column in SEED_SD.items():
        sds = [seeds.loc[m, column] if seeds is not None and m in seeds.index else math.nan
               for m in (a["method"], b["method"])]
        se = math.sqrt(c[f"{axis} diff se"] ** 2 + sum(sd**2 for sd in sds))
        c[f"{axis} diff se (items + seeds)"] = se
        c[f"{axis} verdict (items + seeds)"] = (verdict(c[f"{axis} diff"], se, f"{a['label']} higher",
                                                        f"{b['label']} higher") if se == se else "no seed spread")
    return c


def pair_table(records: list[dict], pairs=(("oft", "lora"), ("oft", "full"), ("lora", "full")),
               seeds: "pd.DataFrame | None" = None) -> "pd.DataFrame":
    """Chapter 02: each pair of methods present, a - b on the same items (``compare``); with ``seeds``, the error and
    verdict with the seed spread as well (``compare_with_seeds``) beside the item-only ones."""
    import pandas as pd

    by = {r["method"]: r for r in records}
    rows = [compare_with_seeds(by[a], by[b], seeds) if seeds is not None else compare(by[a], by[b])
            for a, b in pairs if a in by and b in by]
    return pd.DataFrame(rows, columns=None if rows else ["pair"]).set_index("pair")


def paper_beside_ours(records: list[dict], base: dict) -> "pd.DataFrame":
    """The paper's SFT rows (Qwen2.5-7B and Llama-3.2-3B, math) beside this run's, for the methods both have."""
    import pandas as pd

    ours = {"base": (base["target"], base["general"])}
    ours |= {r["method"]: (r["eval"]["target"], r["eval"]["general"]) for r in records}
    labels = {"base": "base"} | {r["method"]: r["label"] for r in records}
    rows = []
    for method, (t, g) in ours.items():
        paper = PAPER_E1.get(method)
        row = {"method": method, "this run": labels[method], "Target (this run)": t, "General (this run)": g}
        if paper:
            size = (get_method(method).paper_size or "") if method != "base" else ""
            row |= {"paper config": f"{method} {size}".strip(),
                    "Target (paper, Qwen math)": paper["qwen_math"][0],
                    "General (paper, Qwen math)": paper["qwen_math"][1],
                    "Target (paper, Llama math)": paper["llama_math"][0],
                    "General (paper, Llama math)": paper["llama_math"][1]}
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


CANNOT_TELL = "within noise: cannot tell"


def _sign(value: float, se: float) -> str:
    """One paired difference as "yes" (above zero by more than Z standard errors), "no" (below by as much) or
    ``CANNOT_TELL``."""
    return {"up": "yes", "down": "no"}.get(_axis(value, se), CANNOT_TELL)


def _not_below(value: float, se: float, margin: float = MARGIN) -> str:
    """"a is similar to or above b" for a paired difference a - b: "yes" when it is non-inferior (value - Z se >
    -margin: the lower half of a TOST), "no" when it is below -margin beyond noise (value + Z se < -margin), else
    ``CANNOT_TELL``."""
    return "yes" if value - Z * se > -margin else "no" if value + Z * se < -margin else CANNOT_TELL


def _near(value: float, se: float, margin: float = MARGIN) -> str:
    """"the true change is within +-margin": "yes" when the TOST rejects at the kit's level (the Z-SE interval lies
    inside (-margin, margin)), "no" when the interval lies wholly outside it, else ``CANNOT_TELL``."""
    if tost(value, se, margin) < NormalDist().cdf(-Z):
        return "yes"
    return "no" if abs(value) - Z * se > margin else CANNOT_TELL


def _all(answers: list[str]) -> str:
    """A claim made of several parts: "no" if any part is contradicted, "yes" if every part is shown, else
    ``CANNOT_TELL``."""
    return "no" if "no" in answers else "yes" if answers and all(a == "yes" for a in answers) else CANNOT_TELL


def claims(records: list[dict], base: dict) -> "pd.DataFrame":
    """The paper's qualitative SFT claims (book/definitions.md E, claims 1, 3, 5), checked on this run's numbers,
    each by the test that matches its words, on paired differences (``compare``, ``deltas``), never point estimates:
    "more" and "less" by a difference beyond Z paired standard errors; "similar to or above" by non-inferiority
    (difference - Z se > -MARGIN); "near base" by equivalence (TOST with a MARGIN-point margin: the Z-SE interval of
    the change inside +-MARGIN). A claim is "yes" when every part is shown, "no" when one part is contradicted beyond
    noise, else "within noise: cannot tell"."""
    import pandas as pd

    by = {r["method"]: r for r in records}
    rows = []

    def row(claim, answers, evidence):
        rows.append({"claim": claim, "holds here": _all(answers), "evidence": "; ".join(evidence)})

    if "full" in by and len(by) > 1:
        vs = [compare(by["full"], r) for m, r in by.items() if m != "full"]
        row("full FT has the largest target gain", [_sign(c["Target diff"], c["Target diff se"]) for c in vs],
            [f"{c['pair']} Target {c['Target diff']:+.1f} ± {c['Target diff se']:.1f}" for c in vs])
        row("full FT has the largest general loss", [_sign(-c["General diff"], c["General diff se"]) for c in vs],
            [f"{c['pair']} General {c['General diff']:+.1f} ± {c['General diff se']:.1f}" for c in vs])
    if "oft" in by and "lora" in by:
        c = compare(by["oft"], by["lora"])
        row("OFT keeps more General than LoRA at a matched budget", [_sign(c["General diff"], c["General diff se"])],
            [f"{c['General diff']:+.1f} ± {c['General diff se']:.1f} ({c['General verdict']})"])
        d, se = c["Target diff"], c["Target diff se"]
        row(f"OFT's Target is similar to (within {MARGIN:g} points) or above LoRA's", [_not_below(d, se)],
            [f"{d:+.1f} ± {se:.1f}; lower {Z:g}-SE bound {d - Z * se:+.1f} against -{MARGIN:g}"])
    for m in ("vera", "ia3"):
        if m in by and "lora" in by:
            c, f = compare(by[m], by["lora"]), deltas(by[m], base)
            row(f"{m} keeps General near base (within {MARGIN:g} points) but gains less Target than LoRA",
                [_near(f["forgetting"], f["forgetting_se"]), _sign(-c["Target diff"], c["Target diff se"])],
                [f"Forgetting {f['forgetting']:+.1f} ± {f['forgetting_se']:.1f} (its {Z:g}-SE interval "
                 f"[{f['forgetting'] - Z * f['forgetting_se']:+.1f}, {f['forgetting'] + Z * f['forgetting_se']:+.1f}] "
                 f"against ±{MARGIN:g})",
                 f"Target {c['Target diff']:+.1f} ± {c['Target diff se']:.1f} vs LoRA"])
    return pd.DataFrame(rows)


def methods_table(names) -> "pd.DataFrame":
    """What each method is, from the registry (family, default learning rate, size knob, how it is built, whether it
    trains on a 4-bit base (``methods.quantized``), description)."""
    import pandas as pd

    rows = []
    for name in names:
        m = get_method(name)
        built_by = ("plain torch (its own wrap)" if m.wrap else "torch (every weight)" if m.config is None
                    else "kit init on a peft LoRA" if m.init else "peft")
        rows.append({"method": m.name, "family": m.family, "size knob": m.size_name or "-", "default LR": m.lr,
                     "built by": built_by, "4-bit base": four_bit_support(name) or "no: full-precision base",
                     "what it is": m.description})
    return pd.DataFrame(rows).set_index("method")


def spectra_frame(analyses: dict) -> "pd.DataFrame":
    """Long table of per-matrix spectral summaries; ``analyses`` maps a method label to ``analyse_checkpoint``."""
    import pandas as pd

    return pd.DataFrame([{"method": label, **{k: v for k, v in row.items() if k != "top_sv"}}
                         for label, a in analyses.items() for row in a["rows"]])


RETENTION_RAW = "retention  |u_i^T dW v_i|  (raw: the paper's plots)"
RETENTION_SCALED = "retention  |u_i^T dW v_i| / sigma_1"
ADAPTATION = "adaptation  ||dW v_i|| / sum"


def profile_curves(analyses: dict, labels) -> "pd.DataFrame":
    """The figure matrix's profiles (book/definitions.md B4) for the given methods, plus the pretrained references,
    one panel each: retention as raw ΔP, as the paper's plotting code draws it, and as ΔP/σ₁ (the kit's second,
    scale-matched view), both against σ/σ₁; adaptation E/ΣE against σ/Σσ."""
    import pandas as pd

    rows = []
    for label in labels:
        curves = analyses[label]["curves"]
        for i, (raw, r, a) in enumerate(zip(curves["retention"], curves["retention_normalised"],
                                            curves["adaptation_normalised"])):
            rows += [{"method": label, "index": i + 1, "panel": RETENTION_RAW, "value": raw},
                     {"method": label, "index": i + 1, "panel": RETENTION_SCALED, "value": r},
                     {"method": label, "index": i + 1, "panel": ADAPTATION, "value": a}]
    curves = analyses[labels[0]]["curves"]
    for i, (s1, s2) in enumerate(zip(curves["sigma_over_max"], curves["sigma_over_sum"])):
        rows += [{"method": "pretrained", "index": i + 1, "panel": panel, "value": s1}
                 for panel in (RETENTION_RAW, RETENTION_SCALED)]
        rows.append({"method": "pretrained", "index": i + 1, "panel": ADAPTATION, "value": s2})
    return pd.DataFrame(rows)


# book/definitions.md D6: OFT-b32 on Qwen2.5-7B, (Target, General) in %, math and medical SFT.
PAPER_D6 = {"final": {"math": (46.93, 44.37), "med": (48.63, 42.40)},
            "uniform 0.4": {"math": (48.10, 47.53), "med": (48.83, 48.15)},
            "SafeScale": {"math": (47.17, 46.69), "med": (50.01, 47.61)},
            "MinScale": {"math": (47.83, 46.86), "med": (49.76, 47.79)}}
# book/definitions.md D3 (Qwen2.5-7B SFT-math, OFT-b32; Target / General): the two paths at alpha = 0.3 and the final.
PAPER_D3 = {"dense a=0.3": (43.93, 43.91), "generator a=0.3": (45.77, 48.64), "final": (46.93, 44.37)}
# book/definitions.md D2 (approximate, read off the figure): Target / General along the dense (Full FT, LoRA) and
# generator (OFT) paths at alpha = 0.3, 0.6 and 1.
PAPER_D2 = {"full": {0.3: (47.2, 44.5), 0.6: (50.6, 38.2), 1.0: (51.9, 34.6)},
            "lora": {0.3: (44.5, 48.8), 0.6: (46.2, 43.8), 1.0: (42.5, 39.2)},
            "oft": {0.3: (45.8, 48.6), 0.6: (46.9, 45.8), 1.0: (46.9, 44.4)}}


def rewind_frame(result: dict) -> "pd.DataFrame":
    """Every point of every rewinding path on the validation split, with the base (alpha 0) and final (alpha 1) as
    the ends of each path, so each path can be drawn from base to final."""
    import pandas as pd

    rows = []
    for method, rec in result["methods"].items():
        base = result.get("bases", {}).get(method, result["base"])  # alpha 0: the base this method started from
        final = next(r for r in rec["validation"] if r["path"] == "final")
        for path in sorted({r["path"] for r in rec["validation"]} - {"final", "layerwise"}):
            ends = [{**base, "label": "base", "alpha": 0.0}, {**final, "label": "final", "alpha": 1.0}]
            for r in [*ends, *(r for r in rec["validation"] if r["path"] == path)]:
                rows.append({"method": method, "path": "training" if path == "train" else path, "point": r["label"],
                             "alpha": r["alpha"], "General": r["general"], "General se": r["general_se"],
                             "Target": r["target"], "Target se": r["target_se"]})
        for r in rec["validation"]:
            if r["path"] == "layerwise":
                rows.append({"method": method, "path": "layerwise", "point": r["label"], "alpha": None,
                             "General": r["general"], "General se": r["general_se"], "Target": r["target"],
                             "Target se": r["target_se"]})
    return pd.DataFrame(rows).sort_values(["method", "path", "alpha"], na_position="last").reset_index(drop=True)


def rewind_gains(result: dict) -> "pd.DataFrame":
    """Gains over the final checkpoint (points, paired SE): each method's selected point on the test split, and the
    OFT layer-wise rules on the validation split (they need no selection), with the paper's D6 gains beside."""
    import pandas as pd

    rows = []
    for method, rec in result["methods"].items():
        g = rec["gain_test"]
        rows.append({"method": method, "point": rec["selected"]["label"] + " (selected)", "split": "test",
                     "ΔGeneral": g["general"], "ΔGeneral se": g["general_se"], "ΔTarget": g["target"],
                     "ΔTarget se": g["target_se"], "verdict": dominance(g)})
        for label, g in rec["gain_validation"].items():
            if label in PAPER_D6:
                paper = PAPER_D6[label]["math"]
                final = PAPER_D6["final"]["math"]
                rows.append({"method": method, "point": label, "split": "validation", "ΔGeneral": g["general"],
                             "ΔGeneral se": g["general_se"], "ΔTarget": g["target"], "ΔTarget se": g["target_se"],
                             "verdict": dominance(g), "paper ΔGeneral (math)": round(paper[1] - final[1], 2),
                             "paper ΔTarget (math)": round(paper[0] - final[0], 2)})
    return pd.DataFrame(rows).set_index(["method", "point"])


def _axis(value: float, se: float) -> str:
    """'up', 'down' or 'flat': :func:`verdict` on one paired change (more than Z standard errors from zero)."""
    word = verdict(value, se, "up", "down")
    return word if word in ("up", "down") else "flat"


def _kept(value: float, se: float, margin: float = MARGIN) -> bool:
    """Non-inferiority of a paired change: its lower Z-SE bound is above -margin (value - Z se > -margin)."""
    return value - Z * se > -margin


def dominance(gain: dict) -> str:
    """A point against the final checkpoint, axis by axis (paired changes, Z standard errors): it dominates when it is
    above noise on one axis and kept on the other (non-inferior: lower Z-SE bound above -MARGIN); it is dominated in
    the mirror case (below noise on one, upper bound under +MARGIN on the other). Better on one axis with the other
    neither lower beyond noise nor shown kept: "is better on X than the final; Y not distinguishable"."""
    g, t = _axis(gain["general"], gain["general_se"]), _axis(gain["target"], gain["target_se"])
    if {g, t} == {"up", "down"}:
        return "trades one axis for the other"
    axes = {"General": (g, gain["general"], gain["general_se"]), "Target": (t, gain["target"], gain["target_se"])}
    for word in ("up", "down"):
        moved = [name for name, (a, _, _) in axes.items() if a == word]
        if not moved:
            continue
        if len(moved) == 2:
            return "dominates the final" if word == "up" else "is dominated by the final"
        other, (_, value, se) = next((n, v) for n, v in axes.items() if n != moved[0])
        held = _kept(value, se) if word == "up" else _kept(-value, se)
        if held:
            return "dominates the final" if word == "up" else "is dominated by the final"
        return f"is {'better' if word == 'up' else 'worse'} on {moved[0]} than the final; {other} not distinguishable"
    if gain["general"] == 0 and gain["target"] == 0:
        return "equals the final"
    return "differs from the final within noise"


OVERSHOOTS, GENERAL_ONLY, NO_OVERSHOOT = ("the final overshoots", "better on General; Target not distinguishable",
                                         "no overshoot beyond noise")


def _largest_general(points: list[dict], gains: dict) -> dict | None:
    return max(points, key=lambda r: gains[r["label"]]["general"], default=None)


def _clears(gain: dict, threshold: float) -> bool:
    return gain["general"] > threshold * gain["general_se"]


def overshoot(result: dict) -> dict:
    """Per method, on the validation split: does a point before the final (training checkpoints and interpolation
    points; not the layer-wise rescalings) have more General and keep the Target (D1-D2's pattern)? The General gain
    must clear ``stats.family_threshold(k)`` paired standard errors, k the number of earlier points (the best of
    several noisy gains is biased upward, and the threshold keeps the false-alarm rate at one test's); the Target must
    be kept, non-inferior: its lower Z-SE bound above -MARGIN. The point shown is the one of largest General gain among
    those that keep the Target ("the final overshoots" when it clears the threshold), else among those whose Target is
    not lower beyond Z standard errors ("better on General; Target not distinguishable" when it clears it), else "no
    overshoot beyond noise"."""
    out = {}
    for method, rec in result["methods"].items():
        gains = rec["gain_validation"]
        earlier = [r for r in rec["validation"] if r["path"] in ("train", "dense", "generator")]
        threshold = family_threshold(max(1, len(earlier)), Z)
        kept = _largest_general([r for r in earlier if _kept(gains[r["label"]]["target"],
                                                             gains[r["label"]]["target_se"])], gains)
        seen = _largest_general([r for r in earlier
                                 if _axis(gains[r["label"]]["target"], gains[r["label"]]["target_se"]) != "down"], gains)
        if kept is not None and _clears(gains[kept["label"]], threshold):
            best, word = kept, OVERSHOOTS
        elif seen is not None and _clears(gains[seen["label"]], threshold):
            best, word = seen, GENERAL_ONLY
        else:
            best, word = kept if kept is not None else seen, NO_OVERSHOOT
        base = {"candidates": len(earlier), "threshold": threshold, "overshoot": word == OVERSHOOTS, "verdict": word}
        if best is None:
            out[method] = base | {"point": None, "general_gap": None, "general_gap_se": None, "target_change": None}
            continue
        g = gains[best["label"]]
        out[method] = base | {"point": best["label"], "general_gap": g["general"], "general_gap_se": g["general_se"],
                              "target_change": g["target"], "target_change_se": g["target_se"]}
    return out


def paper_rewind_beside(result: dict) -> "pd.DataFrame":
    """Our validation-split points at the paper's alphas beside the paper's D2/D3 points (Target / General)."""
    import pandas as pd

    rows = []
    for method, rec in result["methods"].items():
        path = "generator" if method == "oft" else "dense"
        ours = {r["alpha"]: r for r in rec["validation"] if r["path"] in (path, "final")}
        for alpha, (t, g) in PAPER_D2.get(method, {}).items():
            r = ours.get(alpha)
            rows.append({"method": method, "path": path, "alpha": alpha, "paper Target": t, "paper General": g,
                         "ours Target (val)": r["target"] if r else None,
                         "ours General (val)": r["general"] if r else None})
    return pd.DataFrame(rows).set_index(["method", "path", "alpha"])


def tradeoff_ranking(records: list[dict], base: dict) -> "pd.DataFrame":
    """Methods ranked by the sum of their changes against the base on both axes, TargetGain - Forgetting =
    (General - General_base) + (Target - Target_base), with paired standard errors: one number for "the best
    stability-plasticity trade-off" that weighs a point of forgetting the same as a point of target gain. Also marks
    the non-dominated frontier (A5)."""
    import math

    import pandas as pd

    frame = pareto_frame(records, base).set_index("method")
    rows = []
    for r in records:
        d = deltas(r, base)
        rows.append({"method": r["label"], "family": r["family"], "TargetGain - Forgetting":
                     d["target_gain"] - d["forgetting"],
                     "se": math.hypot(d["target_gain_se"], d["forgetting_se"]), "Target gain": d["target_gain"],
                     "Forgetting": d["forgetting"], "frontier": bool(frame.loc[r["label"], "frontier"])})
    return pd.DataFrame(rows).sort_values("TargetGain - Forgetting", ascending=False).set_index("method")


def best_margin(records: list[dict], base: dict) -> dict:
    """The top method of :func:`tradeoff_ranking` and its margin over the runner-up, with the paired standard error
    of that margin (both methods answer the same items)."""
    import math

    ranking = tradeoff_ranking(records, base)
    by_label = {r["label"]: r for r in records}
    first, second = ranking.index[0], ranking.index[1]
    diff = compare(by_label[first], by_label[second])
    margin = diff["General diff"] + diff["Target diff"]
    se = math.hypot(diff["General diff se"], diff["Target diff se"])
    return {"best": first, "runner_up": second, "margin": margin, "margin_se": se,
            "verdict": verdict(margin, se, f"{first} ahead", f"{second} ahead")}


def paper_ranking(setting: str = "qwen_math") -> "pd.DataFrame":
    """The same ranking computed from the paper's E1 table (Target, General) for one setting."""
    import pandas as pd

    t0, g0 = PAPER_E1["base"][setting]
    rows = [{"method": m, "TargetGain - Forgetting": (v[setting][0] - t0) + (v[setting][1] - g0),
             "Target gain": v[setting][0] - t0, "Forgetting": g0 - v[setting][1]}
            for m, v in PAPER_E1.items() if m != "base"]
    return pd.DataFrame(rows).sort_values("TargetGain - Forgetting", ascending=False).set_index("method")


def number_sources(profile, records: list[dict]) -> "pd.DataFrame":
    """Which device and protocol produced each kind of number in the book, read from the run records: the
    device each training and scoring record stored, its base precision, process count and scoring backend, beside
    the paper's setup (book/definitions.md A4, A6)."""
    import pandas as pd

    bench = stored_throughput()

    def devices(part: str) -> str:
        seen = set()
        for r in records:
            d = (r[part].get("provenance") or {}).get("device") or {}
            seen.add(f"{d.get('device', '?')}" + (f" ({d['gpu']})" if d.get("gpu") else ""))
        return ", ".join(sorted(seen)) or "no stored records"

    bases = sorted({str(r["train"].get("base_quantization") or "none") for r in records}) or ["none"]
    processes = sorted({r["train"].get("processes", 1) for r in records}) or [1]
    spec = records[0]["spec"] if records else {}
    suite = (f"lm-eval stock tasks ({', '.join(t for t, _ in STOCK_GENERAL.values())}; math targets)"
             if profile.uses_stock_tasks else "the kit's offline suite on lm-eval (generated BBH-style reasoning "
             "families, IFEval-style prompts, fact-table knowledge; held-out word problems and generated "
             "arithmetic), the candidates a base-only screen keeps; multiple choice by log-likelihood, by the rule "
             "the screen chose per candidate; each group but IFEval also keeps a likelihood twin (gold-answer bits "
             "per byte, not the paper's)")
    backend = ("lm-eval vLLM backend, bf16 merge into the full-precision base" if profile.eval_backend == "vllm"
               else "lm-eval HFLM on the model object (4-bit bases unmerged), shared multiple-choice contexts encoded "
                    "once (arena/context_once.py)")
    rows = [
        {"numbers": "training loss, tokens/s, peak memory (chapters 01, 08)", "device": devices("train"),
         "protocol": f"the kit's trainer: {spec.get('steps')} steps x {spec.get('batch_size')} x "
                     f"{spec.get('grad_accum')} sequences, AdamW ({spec.get('optimizer', 'adamw')}); base "
                     f"quantisation {', '.join(bases)}; {', '.join(map(str, processes))} process(es)",
         "paper": "verl FSDP2 SFT, 8 GPUs, 780 steps x 256 sequences, bf16 (A6)"},
        {"numbers": "General, Target, Forgetting, TargetGain (chapters 00-02, 05-07)", "device": devices("eval"),
         "protocol": f"{suite}; {backend}; greedy decoding",
         "paper": "OpenCompass + vLLM, greedy (A4); BBH, IFEval, NQ; MATH500, AMC23, AIME24 (A3)"},
        {"numbers": "weight spectra, activation geometry, rewinding (chapters 03-05)",
         "device": devices("eval"),
         "protocol": "computed by the kit in the same worker processes that scored each method; geometry on "
                     "general-text prompts; rewinding points chosen on the validation split, reported on test",
         "paper": "the paper's checkpoints and prompts (B, C, D)"},
        {"numbers": "standard errors and verdicts (every chapter)", "device": "computed from the stored items",
         "protocol": "item sampling only, for one training seed per method (chapter 10 measures the seed spread); "
                     "paired on the same items; BBH-style reasoning stratified by family; IFEval clustered by prompt "
                     "and conditional on the kit's fixed set of instruction types (a new draw of types would add "
                     "variance it does not count); construct changes against the paper: "
                     + "; ".join(construct_changes(profile).index),
         "paper": "none reported"},
        {"numbers": "the paper's numbers printed beside ours", "device": "not recomputed",
         "protocol": "copied from the paper's tables (book/definitions.md E) and labelled 'paper'",
         "paper": "as reported"},
        {"numbers": "measurements of benchmarks/train_throughput.py (chapter 08)",
         "device": ", ".join(sorted(set(bench["device"]))) if bench is not None else "none stored",
         "protocol": "the script's own timed steps (random sequences for --architecture), run outside make reproduce:"
                     " `make bench BENCH_ARGS='--architecture Qwen/Qwen2.5-7B'` on a CUDA GPU",
         "paper": "not reported"},
    ]
    return pd.DataFrame(rows).set_index("numbers")


def construct_changes(profile) -> "pd.DataFrame":
    """Where the profile's suite measures something other than the paper's protocol (A3-A4), one row per change: what
    the paper does and what this profile does instead. The chapters print it beside the protocol table."""
    import pandas as pd

    if profile.uses_stock_tasks:
        rows = [("chat template on an instruct base", "IFEval and NQ through the chat template; BBH too on an "
                 "instruct base (A4)", "the same choice, lm-eval's stock tasks (scores.stock_task_lists)"),
                ("ranking by likelihood without generation", "every General task generated, greedy",
                 "every task generated, greedy: no likelihood ranking"),
                ("screened families", "all 27 BBH subtasks", "all stock subtasks: no screen"),
                ("in-distribution templates inside Target", "MATH500, AMC23, AIME24: none from the SFT data",
                 "MATH500 and AIME24 (lm-eval has no AMC23): none from the SFT data")]
    else:
        rows = [("chat template on an instruct base", "IFEval and NQ through the chat template; BBH too on an "
                 "instruct base (A4)", "the instruct base answers the generated tasks (IFEval-style prompts, word "
                 "problems) through its chat template and the log-likelihood tasks (reasoning, knowledge, arithmetic) "
                 "without it"),
                ("ranking by likelihood without generation", "BBH 3-shot chain of thought and NQ exact match, "
                 "generated", "reasoning families, fact-table knowledge and arithmetic are multiple choice ranked by "
                 "log-likelihood (the rule the screen chose): no generation, no chain of thought"),
                ("screened families", "all 27 BBH subtasks, whatever the base scores",
                 "only the candidates (family and difficulty, fact relation, arithmetic operation and digits) a "
                 "base-only screen finds 2 SE above chance" if profile.screened else
                 "no screen on this profile: every candidate is scored"),
                ("in-distribution templates inside Target", "MATH500, AMC23, AIME24: none from the SFT data",
                 "half the held-out word problems use training templates with new numbers")]
    return pd.DataFrame(rows, columns=["construct change", "paper", "this profile"]).set_index("construct change")


def stored_throughput() -> "pd.DataFrame | None":
    """The measurements ``benchmarks/train_throughput.py`` stored (latest per setting), one row per method with its
    device and setting; None when the script was never run against this results store."""
    import json

    import pandas as pd

    rows = []
    for path in sorted((results_root() / "benchmarks").glob("train_throughput-*.json")):
        run = json.loads(path.read_text())
        dev = run["provenance"]["device"]
        lora = next((r for r in run["rows"] if r["method"].startswith("lora")), run["rows"][0])
        mem = "peak_gpu_mb" if "peak_gpu_mb" in lora else "peak_rss_mb"
        for r in run["rows"]:
            rows.append({"setting": run["setting"], "device": dev.get("gpu") or dev.get("device"),
                         "measured": run["provenance"]["time"], "method": r["method"],
                         "tokens/s": r["tokens_per_s"], "vs LoRA": r["tokens_per_s"] / lora["tokens_per_s"],
                         "peak memory MB": r[mem], "memory kind": mem.replace("peak_", "").replace("_mb", ""),
                         "memory vs LoRA": r[mem] / lora[mem]})
    return pd.DataFrame(rows).set_index(["setting", "method"]) if rows else None


def labels_of(records: list[dict], methods=None) -> list[str]:
    """The run labels (``lora-r8``) of ``records``, or of those whose method is in ``methods``, in that order."""
    if methods is None:
        return [r["label"] for r in records]
    by_method = {r["method"]: r["label"] for r in records}
    return [by_method[m] for m in methods if m in by_method]


def fluctuation_table(frame: "pd.DataFrame", figure: str) -> "pd.DataFrame":
    """Chapter 03: the fluctuation scores, stable rank and intruder count at the figure matrix, beside their means over
    every analysed matrix (book/definitions.md B3-B6)."""
    cols = ["fluctuation_retention", "fluctuation_adaptation", "fluctuation_scale_free_retention",
            "fluctuation_scale_free_adaptation", "stable_rank", "intruders"]
    at_figure = frame[frame["name"] == figure].set_index("method")
    return at_figure[cols].join(frame.groupby("method")[cols].mean().add_suffix(" (all matrices)"))


def intruder_table(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Chapter 03: per method, intruder dimensions summed over matrices, the share of matrices with any, and the mean
    relative update ||dW||/||W0|| (book/definitions.md B7)."""
    return frame.groupby("method").agg(intruders_total=("intruders", "sum"),
                                       matrices_with_intruders=("intruders", lambda s: float((s > 0).mean())),
                                       relative_update=("relative_dW", "mean"))


def paper_fluctuation_beside(records: list[dict], frame: "pd.DataFrame", figure: str) -> "pd.DataFrame":
    """Chapter 03: this run's fluctuation scores at the figure matrix beside the paper's (B6, read off its chart)."""
    import pandas as pd

    at_figure = frame[frame["name"] == figure].set_index("method")
    rows = []
    for r in records:
        if r["label"] in at_figure.index:
            p = PAPER_B6_FLUCTUATION.get(r["method"], (None, None))
            here = at_figure.loc[r["label"]]
            rows.append({"method": r["label"], "retention (this run)": here["fluctuation_retention"],
                         "adaptation (this run)": here["fluctuation_adaptation"],
                         "retention (paper, SFT)": p[0], "adaptation (paper, SFT)": p[1]})
    return pd.DataFrame(rows).set_index("method")


def analysis_costs(analyses: dict, count: str = "rows") -> "pd.DataFrame":
    """What each stored analysis cost: how many matrices (or rows) it covers, its wall time and peak memory."""
    import pandas as pd

    memory = any("peak_rss_mb" in a for a in analyses.values())  # the spectra record it, the geometry does not
    rows = [{"method": k, count: len(a["rows"]), "wall s": a["wall_s"]}
            | ({"peak RSS (MB)": a.get("peak_rss_mb")} if memory else {}) for k, a in analyses.items()]
    return pd.DataFrame(rows).set_index("method").round(1)


def geometry_rows(analyses: dict) -> "pd.DataFrame":
    """Long table of the activation analyses (one row per method, dataset and module); ``analyses`` maps a run label
    to ``activation_analysis.analyse_checkpoint``."""
    import pandas as pd

    return pd.DataFrame([{"method": k, **row} for k, a in analyses.items() for row in a["rows"]])


def ranking_beside_paper(ranking: "pd.DataFrame", paper: dict) -> "pd.DataFrame":
    """Chapter 07: this run's trade-off ranking with the paper's TargetGain - Forgetting (E1) for the same methods;
    ``paper`` maps a setting to ``paper_ranking``."""
    side = ranking[["TargetGain - Forgetting", "se", "Target gain", "Forgetting", "frontier"]].round(2)
    for setting, name in (("qwen_math", "paper, Qwen math"), ("llama_math", "paper, Llama math")):
        side[name] = [paper[setting]["TargetGain - Forgetting"].get(m.split("-")[0]) for m in side.index]
    return side.round(2)


def provenance_table(records: list[dict]) -> "pd.DataFrame":
    """Chapter 08: per run, seed, steps and learning rate, and when, where and at which commit it was trained and
    scored (read from the stored records)."""
    import pandas as pd

    rows = []
    for r in records:
        tp, ep = r["train"].get("provenance", {}), r["eval"].get("provenance", {})
        rows.append({"method": r["label"], "seed": r["spec"]["seed"], "steps": r["spec"]["steps"], "lr": r["lr"],
                     "trained at": tp.get("time"), "trained on": (tp.get("device") or {}).get("device"),
                     "train commit": (tp.get("git") or {}).get("commit", "")[:10],
                     "scored at": ep.get("time"), "eval commit": (ep.get("git") or {}).get("commit", "")[:10]})
    return pd.DataFrame(rows).set_index("method")


def speed_table(records: list[dict]) -> "pd.DataFrame":
    """Chapter 08: training tokens/s per run, as a ratio to LoRA's measured in the same run, with wall times and peak
    memory (the first run stands in when LoRA is absent)."""
    import pandas as pd

    lora = next((r for r in records if r["method"] == "lora"), records[0])
    return pd.DataFrame([{"method": r["label"], "train tokens/s": r["train"]["train_tokens_per_s"],
                          "vs LoRA": r["train"]["train_tokens_per_s"] / lora["train"]["train_tokens_per_s"],
                          "train s": r["train"]["train_wall_s"], "peak RSS MB": r["train"].get("peak_rss_mb"),
                          "peak GPU MB": r["train"].get("peak_gpu_mb"), "eval s": r["eval"].get("eval_wall_s"),
                          "eval aside": r["eval"].get("scored_aside", False)}
                         for r in records]).set_index("method")


def chapter_times(folder) -> "pd.DataFrame | None":
    """Chapter 08: each executed chapter's papermill duration and end time in ``folder``, or None when there are none
    (the notebook was run outside make reproduce)."""
    import json
    from pathlib import Path

    import pandas as pd

    times = []
    for nb in sorted(Path(folder).glob("[0-9]*.ipynb")):
        if nb.name.endswith(".partial.ipynb"):
            continue
        meta = json.loads(nb.read_text()).get("metadata", {}).get("papermill", {})
        times.append({"chapter": nb.stem, "seconds": meta.get("duration"), "finished": meta.get("end_time")})
    return pd.DataFrame(times).set_index("chapter") if times else None
