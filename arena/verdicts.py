"""The sentences and verdict tables the chapters print, computed from the run's numbers (chapters 01 and 03-07).

Every verdict says what the data support (book/definitions.md S): a change is "within noise" unless it is more than
two standard errors from zero (``report.verdict``), and a table of many such verdicts carries Holm's correction
beside them; "similar", "near" and "kept" need an equivalence or non-inferiority test, never a non-significant one;
a spread across methods is tested against "all methods equal"; a correlation across methods is confirmed only when its
Fisher-z interval (95 % nominal, over a handful of methods) excludes zero.
"""

from __future__ import annotations

import pandas as pd

from .report import (ALPHA, compare, compare_with_seeds, deltas, dominance, NO_OVERSHOOT, overshoot,
                     PAPER_C5_CORRELATION, PAPER_D6, PAPER_E1, verdict, Z)
from .stats import correlations, holm, rank_correlation, two_sided_p

FORGETTING, CE = "forgetting (General, pts)", "CE drift"
SMOOTHNESS = ("fluctuation_scale_free_retention", "fluctuation_scale_free_adaptation")
GEOMETRY = ["mean_cosine_drift", "mean_abs_log_norm_ratio", "gram_cosine_dist", "raw_residual", "proc_residual",
            "proc_improvement", "cka", "pca_dist_k32", "pca_dist_k64", "csd_rel", "csd_update_norm"]


def forgetting_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """Chapter 01: per method, Forgetting, CE drift and Target gain as "value ± se: verdict" (``results_table``), and
    Forgetting and Target gain again under Holm's correction over the table's 2m tests (m methods, two-sided normal
    p = 2 Phi(-|value| / se), ``stats.holm``) at the single verdict's level ``ALPHA``: what survives it is measurable
    with at most that chance of any false "measurable" in the whole table."""
    methods = table.drop(index="base")
    axes = ("Forgetting", "Target gain")
    tests = [(m, axis) for m in methods.index for axis in axes]
    adjusted = dict(zip(tests, holm([two_sided_p(methods.loc[m, a], methods.loc[m, f"{a} se"]) for m, a in tests])))
    rows = []
    for method, row in methods.iterrows():
        ce = verdict(row["CE drift"], row["CE drift se"], "measurable", "negative")
        forgetting = f"{row['Forgetting']:+.2f} ± {row['Forgetting se']:.2f}: {row['forgetting is']}"
        out = {"method": method, "Forgetting (General)": forgetting,
               "CE drift": f"{row['CE drift']:+.4f} ± {row['CE drift se']:.4f}: {ce}",
               "Target gain": f"{row['Target gain']:+.2f} ± {row['Target gain se']:.2f}: {row['gain is']}"}
        for axis in axes:
            p = adjusted[(method, axis)]
            word = ("measurable" if row[axis] > 0 else "negative") if p <= ALPHA else "within noise"
            out[f"{axis}, Holm over {len(tests)}"] = f"{word} ({_p(p, 'adjusted p')})"
        rows.append(out)
    return pd.DataFrame(rows).set_index("method")


def family_note(table: pd.DataFrame) -> str:
    """Chapter 01: what the per-method verdicts of ``forgetting_verdicts`` mean as a family: m tests at the single
    level ALPHA expect m ALPHA false alarms where nothing changed, and at least one with chance 1 - (1 - ALPHA)^m
    (independent tests); the Holm columns hold that chance at ALPHA."""
    m = 2 * len(table.drop(index="base"))
    return (f"{m} verdicts at {Z:g} standard errors each: if no method changed anything, about {m * ALPHA:.1f} of them "
            f"would read measurable by chance, and at least one would with probability {1 - (1 - ALPHA) ** m:.0%}. "
            f"The Holm columns keep that probability at {ALPHA:.1%} over the whole table.")


def _p(p: float, name: str = "p") -> str:
    return f"{name} < 0.001" if p < 0.001 else f"{name} = {p:.2g}"


def cost_table(table: pd.DataFrame, records: list[dict]) -> pd.DataFrame:
    """Chapter 01: trainable parameters, training and scoring seconds (and whether the scoring had a second core's
    help, ``evaluate.spare_core``), tokens/s and peak memory per method."""
    cost = table.drop(index="base")[["trainable", "train s", "eval s", "eval aside"]].copy()
    by_label = {r["label"]: r for r in records}
    cost["train tokens/s"] = [by_label[m]["train"]["train_tokens_per_s"] for m in cost.index]
    cost["peak RSS (MB)"] = [by_label[m]["train"].get("peak_rss_mb") for m in cost.index]
    return cost


def _forgetting_columns(frame: pd.DataFrame, records: list[dict], base: dict) -> pd.DataFrame:
    """Adds each method's Forgetting (against its own base) and CE drift to a frame indexed by method label."""
    by_label = {r["label"]: r for r in records}
    frame[FORGETTING] = [deltas(by_label[m], base)["forgetting"] for m in frame.index]
    frame[CE] = [by_label[m]["eval"]["proxies"]["ce_drift"] for m in frame.index]
    return frame


def smoothness_vs_forgetting(spectra: pd.DataFrame, records: list[dict], base: dict):
    """Chapter 03: ``(per_method, correlations)``: the model-wide mean scale-free fluctuation scores per method beside
    its forgetting, and their Spearman correlations with Fisher-z intervals over methods
    (``stats.rank_correlation``)."""
    per_method = _forgetting_columns(spectra.groupby("method")[list(SMOOTHNESS)].mean(), records, base)
    rows = [{"smoothness score": score, "forgetting measure": target,
             **rank_correlation(per_method[score], per_method[target])}
            for score in SMOOTHNESS for target in (FORGETTING, CE)]
    return per_method, pd.DataFrame(rows)


def smoothness_sentence(row) -> str:
    """One line per correlation of ``smoothness_vs_forgetting``: its sign, and whether its interval confirms it."""
    sign = "more" if row.rho > 0 else "less"
    label = interval_label(row.n)
    sure = (f"too few methods for an interval ({label})" if row.ci_low != row.ci_low else
            f"its interval [{row.ci_low:+.2f}, {row.ci_high:+.2f}] ({label}) excludes zero"
            if row.ci_low > 0 or row.ci_high < 0 else
            f"its interval [{row.ci_low:+.2f}, {row.ci_high:+.2f}] ({label}) includes zero, so this run cannot "
            "confirm it")
    return (f"- {row['smoothness score']} vs {row['forgetting measure']}: Spearman rho = {row.rho:+.2f} over "
            f"{row.n} methods (rougher profiles go with {sign} forgetting); {sure}.")


def interval_label(n: int) -> str:
    """How every correlation interval is labelled: Fisher z, its nominal level and the number of methods, and what it
    leaves out (each method's own measurement error)."""
    return f"Fisher z, 95 % nominal, n = {n}; each method's own error not included"


def geometry_vs_forgetting(geometry: pd.DataFrame, records: list[dict], base: dict) -> pd.DataFrame:
    """Chapter 04: every geometry and CSD metric on general data, averaged over modules, per method, beside its
    forgetting and CE drift."""
    general = geometry[geometry["dataset"] == "general"].groupby("method")[GEOMETRY].mean()
    return _forgetting_columns(general, records, base)


def csd_table(geometry: pd.DataFrame, records: list[dict], base: dict) -> pd.DataFrame:
    """Chapter 04 (the paper's CSD family table): CSD_rel on general and target data and the mean of their per-module
    ratio, per method, beside its forgetting."""
    g = geometry[geometry["dataset"] == "general"].set_index(["method", "module"])["csd_rel"]
    t = geometry[geometry["dataset"] == "target"].set_index(["method", "module"])["csd_rel"]
    out = pd.DataFrame({"CSD_G,rel": g.groupby("method").mean(), "CSD_T,rel": t.groupby("method").mean(),
                        "ratio": (g / t).groupby("method").mean()})
    return _forgetting_columns(out, records, base)


def geometry_correlations(general: pd.DataFrame) -> pd.DataFrame:
    """Chapter 04: Pearson and Spearman correlations (Fisher-z intervals, ``stats.correlations``) of each metric with
    forgetting and CE drift across methods, with the paper's values beside the forgetting rows."""
    rows = []
    for metric in GEOMETRY:
        for target in (FORGETTING, CE):
            paper = PAPER_C5_CORRELATION.get(metric, (None, None)) if target == FORGETTING else (None, None)
            rows.append({"metric": metric, "vs": target, **correlations(general[metric], general[target]),
                         "paper pearson": paper[0], "paper spearman": paper[1]})
    return pd.DataFrame(rows).set_index(["metric", "vs"])


def distortion_claim(corr: pd.DataFrame, target: str) -> str:
    """Chapter 04: does this run support the paper's claim that forgetting follows the non-isometric part of the
    change (Procrustes residual up, CKA down)? Raw movement's correlation is printed beside it: whether it separates
    the methods less well (the paper's finding) is a difference of two dependent correlations that this run does not
    test, so the sentence claims nothing about it."""
    pr, ck, raw = (corr.loc[(m, target)] for m in ("proc_residual", "cka", "raw_residual"))
    pr_firm, ck_firm = pr["pearson_low"] > 0, ck["pearson_high"] < 0
    signs = pr["pearson"] > 0 and ck["pearson"] < 0
    no_interval = pr["pearson_low"] != pr["pearson_low"]  # NaN: too few methods for an interval
    loose = ("both intervals include" if not (pr_firm or ck_firm) else
             "the CKA interval includes" if pr_firm else "the Procrustes interval includes")
    said = ("supports the claim (both intervals exclude zero)" if pr_firm and ck_firm else
            "points the same way as the paper (too few methods for an interval)" if signs and no_interval else
            f"points the same way as the paper, but {loose} zero" if signs else
            "does not support the claim")
    n = f" ({interval_label(int(pr['n']))})" if "n" in pr else ""
    return (f"- vs {target}: Procrustes r = {pr['pearson']:+.2f} [{pr['pearson_low']:+.2f}, "
            f"{pr['pearson_high']:+.2f}], CKA r = {ck['pearson']:+.2f} [{ck['pearson_low']:+.2f}, "
            f"{ck['pearson_high']:+.2f}]{n}: this run {said}. Raw residual r = {raw['pearson']:+.2f} (the paper finds "
            "raw movement separates methods less well; the difference of the two correlations is not tested here).")


def overshoot_sentences(shoot: dict) -> list[str]:
    """Chapter 05: per method, whether an earlier point beats the final on General and keeps its Target
    (``report.overshoot``: non-inferior within ``report.MARGIN``)."""
    lines = []
    for method, o in shoot.items():
        if o["point"] is None:
            lines.append(f"- {method}: every earlier point loses Target beyond noise: no overshoot")
            continue
        lines.append(f"- {method}: {o['point']} has General {o['general_gap']:+.1f} ± {o['general_gap_se']:.1f} pts "
                     f"over the final with Target {o['target_change']:+.1f} ± {o['target_change_se']:.1f}; as the "
                     f"best of {o['candidates']} earlier points it needs {o['threshold']:.2f} standard errors: "
                     + o["verdict"])
    return lines


def selection_sentences(result: dict, shoot: dict) -> list[str]:
    """Chapter 05: per method, the point the validation rule selects and what it changes on the test split."""
    lines = []
    for method, rec in result["methods"].items():
        g, chosen = rec["gain_test"], rec["selected"]["label"]
        said = shoot[method]["verdict"]
        lines.append(f"- {method}: " + (said if said == NO_OVERSHOOT else f"{said} on the validation split")
                     + f"; the selection rule picks {chosen}, which on the test split "
                     + (f"changes General by {g['general']:+.1f} ± {g['general_se']:.1f} and Target by "
                        f"{g['target']:+.1f} ± {g['target_se']:.1f} pts: it {dominance(g)}." if chosen != "final" else
                        "is the final checkpoint itself: rewinding found no better point."))
    return lines


def trained_summary(r: dict) -> str:
    """Chapter 06: one line per newly trained method (a run record): its size, training time and scores."""
    return (f"{r['label']}: {r['train']['trained_parameters']:,} trainable, trained in "
            f"{r['train']['train_wall_s']:.0f} s, General {r['eval']['general']:.1f} ± {r['eval']['general_se']:.1f}, "
            f"Target {r['eval']['target']:.1f} ± {r['eval']['target_se']:.1f}")


def your_method_sentences(mine: list[dict], others: list[dict], frame: pd.DataFrame, base: dict) -> list[str]:
    """Chapter 06: per new method, its Forgetting and Target gain, whether it is on the frontier (``pareto_frame``),
    and its paired difference from LoRA on the same items when LoRA is among ``others``."""
    ranked = frame[frame["method"] != "base"].set_index("method")
    lora = next((o for o in others if o["method"] == "lora"), None)
    lines = []
    for r in mine:
        d = deltas(r, base)
        versus = ""
        if lora:
            c = compare(r, lora)
            versus = (f"; against {lora['label']} on the same items: General {c['General diff']:+.1f} ± "
                      f"{c['General diff se']:.1f}, Target {c['Target diff']:+.1f} ± {c['Target diff se']:.1f}")
        lines.append(f"- {r['label']}: forgetting {d['forgetting']:+.1f} ± {d['forgetting_se']:.1f}, target gain "
                     f"{d['target_gain']:+.1f} ± {d['target_gain_se']:.1f} pts; "
                     + ("on the non-dominated frontier" if ranked.loc[r["label"], "frontier"]
                        else "dominated by another method") + versus)
    return lines


def headline_sentences(profile, records: list[dict], ranking: pd.DataFrame, best: dict, paper: dict) -> list[str]:
    """Chapter 07: the best trade-off of this run with its margin over the runner-up, where OFT ranks here and in the
    paper (E1), and the non-dominated methods; ``ranking`` is ``tradeoff_ranking``, ``best`` ``best_margin``,
    ``paper`` maps a setting to ``paper_ranking``."""
    oft = next((r["label"] for r in records if r["method"] == "oft"), None)
    budget_note = (f"{records[0]['budget']:,} trainable parameters"
                   + (" (the size of LoRA r8)" if profile.budget is None else ""))
    lines = [f"In this run ({profile.model.name}, {len(records)} methods matched to a budget of {budget_note}; full FT "
             f"and the fixed-size methods at their own size; {profile.steps} steps), the best trade-off is "
             f"{best['best']}: TargetGain - Forgetting = {ranking.iloc[0]['TargetGain - Forgetting']:+.1f} "
             f"± {ranking.iloc[0]['se']:.1f} points, {best['margin']:+.1f} ± {best['margin_se']:.1f} ahead of "
             f"{best['runner_up']} on the same items ({best['verdict']})."]
    if oft:
        place = list(ranking.index).index(oft) + 1
        paper_best = {s: p.index[0] for s, p in paper.items()}
        paper_oft = {s: list(p.index).index("oft") + 1 for s, p in paper.items()}
        lines.append(f"OFT ranks {place} of {len(ranking)} here. In the paper (table E1, same formula) the best is "
                     f"{paper_best['qwen_math']} on Qwen2.5-7B math and {paper_best['llama_math']} on Llama-3.2-3B "
                     f"math; OFT ranks {paper_oft['qwen_math']} and {paper_oft['llama_math']} of "
                     f"{len(paper['qwen_math'])}.")
    front = [m for m in ranking.index if ranking.loc[m, "frontier"]]
    lines.append(f"Non-dominated in this run: {', '.join(front)}.")
    return lines


def oft_lora_sentences(records: list[dict], seeds: pd.DataFrame | None = None) -> list[str]:
    """Chapter 07: OFT - LoRA on both axes in this run (paired, with verdicts) beside the paper's differences (E1);
    with ``seeds`` (the robustness study's ``seed_table``), the same differences with the seed spread in their error
    (``report.compare_with_seeds``). Empty when either method is missing."""
    by = {r["method"]: r for r in records}
    if "oft" not in by or "lora" not in by:
        return []
    cmp = compare_with_seeds(by["oft"], by["lora"], seeds)
    lines = [f"This run: OFT - LoRA = General {cmp['General diff']:+.1f} ± {cmp['General diff se']:.1f} "
             f"({cmp['General verdict']}), Target {cmp['Target diff']:+.1f} ± {cmp['Target diff se']:.1f} "
             f"({cmp['Target verdict']}), at {cmp['trainable a / b']:.2f}x the trainable parameters; errors from "
             "item sampling, one training seed each."]
    if seeds is not None:
        lines.append("With the spread between training seeds (chapter 10) in the error, "
                     "√(se² + sd_OFT² + sd_LoRA²): "
                     + ", ".join(f"{axis} ± {cmp[f'{axis} diff se (items + seeds)']:.1f} "
                                 f"({cmp[f'{axis} verdict (items + seeds)']})" for axis in ("General", "Target"))
                     + ".")
    for s, name in (("qwen_math", "Qwen2.5-7B"), ("llama_math", "Llama-3.2-3B")):
        lines.append(f"Paper, {name} math: General {PAPER_E1['oft'][s][1] - PAPER_E1['lora'][s][1]:+.1f}, "
                     f"Target {PAPER_E1['oft'][s][0] - PAPER_E1['lora'][s][0]:+.1f} (no errors reported).")
    return lines


def correlation_sentences(general: pd.DataFrame, metrics=("proc_residual", "cka")) -> list[str]:
    """Chapter 07: Pearson r of each metric with forgetting across methods (``geometry_vs_forgetting``), with its
    Fisher-z interval and the paper's value (C5)."""
    lines = []
    for metric in metrics:
        cc = correlations(general[metric], general[FORGETTING])
        lines.append(f"{metric} vs forgetting across {len(general)} methods: Pearson r = {cc['pearson']:+.2f} "
                     f"[{cc['pearson_low']:+.2f}, {cc['pearson_high']:+.2f}] ({interval_label(len(general))}); "
                     f"paper (C5): {PAPER_C5_CORRELATION[metric][0]:+.2f}")
    return lines


def rewinding_summary(result: dict) -> list[str]:
    """Chapter 07: per rewound method, the overshoot verdict on the validation split and what the selected point
    changes on the test split, then the paper's uniform-0.4 gain (D6)."""
    shoot = overshoot(result)
    lines = []
    for method, rec in result["methods"].items():
        g = rec["gain_test"]
        lines.append(f"- {method}: {shoot[method]['verdict']} on the validation split; selected "
                     f"{rec['selected']['label']}: test General "
                     f"{g['general']:+.1f} ± {g['general_se']:.1f}, Target {g['target']:+.1f} ± {g['target_se']:.1f} "
                     f"vs the final ({dominance(g)})")
    d6 = PAPER_D6
    lines.append(f"Paper (D6, OFT-b32, Qwen math): uniform 0.4 gains "
                 f"{d6['uniform 0.4']['math'][1] - d6['final']['math'][1]:+.2f} General and "
                 f"{d6['uniform 0.4']['math'][0] - d6['final']['math'][0]:+.2f} Target over the final.")
    return lines


def certainty_sentences(certainty: pd.DataFrame, snr: pd.DataFrame | None = None) -> list[str]:
    """The "How sure are these numbers?" page: per measure (``report.certainty_table``), what its largest paired
    error lets a reader conclude, and, with ``report.signal_to_noise``, whether the methods differ on it at all: its
    SNR as a test against "every method changes it equally" (F = SNR^2, chi^2_{k-1} / (k - 1)), beyond noise when
    p <= ``report.ALPHA``."""
    out = []
    for measure, row in certainty.iterrows():
        if row["paired se (largest)"] != row["paired se (largest)"]:  # NaN: no method to compare
            continue
        unit = row["unit"]
        if row["paired se (largest)"] == 0:
            out.append(f"{measure} ({row['yardstick']}): no method changed a single item, so it has nothing to "
                       "separate.")
            continue
        line = (f"{measure} ({row['yardstick']}): paired standard errors up to {row['paired se (largest)']:.3g} "
                f"{unit}, so a true change smaller than {row['detectable effect']:.3g} {unit} is missed more than one "
                "time in five")
        if row["target se"] == row["target se"] and row["target se"] is not None:
            line += (f"; the kit's target of {row['target se']:.3g} {unit} is "
                     + ("met" if row["meets target"] else "not met"))
        if snr is not None and measure in snr.index and snr.loc[measure, "SNR"] == snr.loc[measure, "SNR"]:
            t, k = snr.loc[measure], int(snr.loc[measure, "methods"])
            beyond = t["p (all equal)"] <= ALPHA
            line += (f"; across its {k} methods the signal-to-noise ratio is {t['SNR']:.2g} (equal methods "
                     f"exceed {t['null 95 %']:.2f} one time in twenty; F = {t['F = SNR²']:.2f} on "
                     f"{k - 1} degrees of freedom, {_p(t['p (all equal)'])} against \"all methods "
                     "change it equally\"): "
                     + ("the methods differ on it beyond noise" if beyond else
                        "its spread is what equal methods would draw, so it cannot tell them apart"))
        out.append(line + ".")
    return out
