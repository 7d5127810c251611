"""Altair charts that draw offline: rendered to inline SVG (no CDN script), so the built book needs no network."""

from __future__ import annotations
from .progress import quiet_libraries


def offline() -> None:
    """Switch Altair to the SVG renderer (vl-convert, bundled JS engine) and quiet library logs; call once per
    notebook, before other arena imports do their work."""
    import altair as alt

    quiet_libraries()
    alt.renderers.enable("svg")
    alt.data_transformers.disable_max_rows()


def scores_vs_chance(frame, title: str):
    """Bars of accuracy per candidate with a tick at chance level. ``frame`` columns: candidate, accuracy, chance,
    se."""
    import altair as alt

    base = alt.Chart(frame).encode(y=alt.Y("candidate:N", sort="-x", title=None))
    bars = base.mark_bar(color="#4c78a8").encode(x=alt.X("accuracy:Q", title="accuracy (%)",
                                                         scale=alt.Scale(domain=[0, 100])),
                                                tooltip=["candidate", "accuracy", "se", "chance"])
    errors = base.mark_errorbar().encode(x="lo:Q", x2="hi:Q")
    chance = base.mark_tick(color="#e45756", thickness=3, size=14).encode(x="chance:Q")
    return (bars + errors + chance).transform_calculate(
        lo="datum.accuracy - datum.se", hi="datum.accuracy + datum.se"
    ).properties(title=title, width=420)


def pareto(frame, title: str, units: str = "%", frontier_by: str | None = None):
    """General (x) vs Target (y) with ±1 se bars, dashed base reference lines, and the non-dominated frontier;
    ``units`` name the axes' scale (the likelihood twins' plane: "-bits per byte"); ``frontier_by`` a column whose
    groups each get their own frontier line (the robustness chapter: each method over its rates). Without a base row,
    no reference lines."""
    import altair as alt

    base_rows = frame[frame["method"] == "base"]
    data = frame.assign(g_lo=frame["General"] - frame["General se"], g_hi=frame["General"] + frame["General se"],
                        t_lo=frame["Target"] - frame["Target se"], t_hi=frame["Target"] + frame["Target se"])
    enc = alt.Chart(data).encode(
        x=alt.X("General:Q", title=f"General (stability, {units})", scale=alt.Scale(zero=False)),
        y=alt.Y("Target:Q", title=f"Target (plasticity, {units})", scale=alt.Scale(zero=False)))
    points = enc.mark_point(filled=True, size=90).encode(
        color=alt.Color("family:N"), shape=alt.Shape("family:N"),
        tooltip=["method", "General", "General se", "Target", "Target se", "frontier"])
    labels = enc.mark_text(align="left", dx=7, dy=-7, fontSize=11).encode(text="method:N")
    xerr = enc.mark_rule(opacity=0.4).encode(x="g_lo:Q", x2="g_hi:Q")
    yerr = enc.mark_rule(opacity=0.4).encode(y="t_lo:Q", y2="t_hi:Q")
    front = alt.Chart(data[data["frontier"]].sort_values("General")).mark_line(
        color="#444", strokeWidth=1.5).encode(x="General:Q", y="Target:Q", order="General:Q",
                                              **({"detail": f"{frontier_by}:N"} if frontier_by else {}))
    layers = [front, xerr, yerr, points, labels]
    if not base_rows.empty:
        base_row = base_rows.iloc[0]
        layers = [alt.Chart({"values": [{"x": base_row["General"]}]}).mark_rule(strokeDash=[5, 4], color="gray")
                  .encode(x="x:Q"),
                  alt.Chart({"values": [{"y": base_row["Target"]}]}).mark_rule(strokeDash=[5, 4], color="gray")
                  .encode(y="y:Q"), *layers]
    return alt.layer(*layers).properties(title=title, width=520, height=380)


def stack(charts: list):
    """Several charts one above another (a single chart is returned as it is)."""
    import altair as alt

    return charts[0] if len(charts) == 1 else alt.vconcat(*charts)


def loss_curves(records, title: str):
    """Training loss per step for every method."""
    import altair as alt
    import pandas as pd

    rows = [{"method": r["label"], "step": i + 1, "loss": loss} for r in records
            for i, loss in enumerate(r["train"]["losses"])]
    return alt.Chart(pd.DataFrame(rows)).mark_line().encode(
        x="step:Q", y=alt.Y("loss:Q", scale=alt.Scale(type="log"), title="training loss (response tokens)"),
        color="method:N").properties(title=title, width=480, height=260)


def group_changes(frame, title: str):
    """Change against the base per benchmark and method (points, ±1 paired se)."""
    import altair as alt

    data = frame.assign(lo=frame["change"] - frame["se"], hi=frame["change"] + frame["se"])
    base = alt.Chart(data).encode(y=alt.Y("method:N", title=None), color=alt.Color("axis:N"))
    bars = base.mark_bar().encode(x=alt.X("change:Q", title="change vs base (points)"))
    errs = base.mark_rule(color="black").encode(x="lo:Q", x2="hi:Q")
    return (bars + errs).properties(width=130, height=alt.Step(14)).facet(
        column=alt.Column("benchmark:N", title=None)).properties(title=title)


def spectral_profiles(frame, title: str):
    """Retention and adaptation profiles along the pretrained singular index, log scale; pretrained dashed."""
    import altair as alt

    data = frame[frame["value"] > 0]
    line = alt.Chart(data).mark_line(strokeWidth=1).encode(
        x=alt.X("index:Q", title="pretrained singular index i"),
        y=alt.Y("value:Q", scale=alt.Scale(type="log"), title=None),
        color=alt.Color("method:N"),
        strokeDash=alt.condition(alt.datum.method == "pretrained", alt.value([5, 4]), alt.value([1, 0])))
    return line.properties(width=260, height=220).facet(column=alt.Column("panel:N", title=None)).properties(
        title=title).resolve_scale(y="independent")


def layer_heatmap(frame, value: str, title: str):
    """A layer x module heat map of one per-matrix statistic, one panel per method."""
    import altair as alt

    return alt.Chart(frame).mark_rect().encode(
        x=alt.X("layer:O"), y=alt.Y("module:N", title=None),
        color=alt.Color(f"{value}:Q", scale=alt.Scale(type="log", scheme="viridis")),
        tooltip=["method", "layer", "module", value]).properties(width=300, height=110).facet(
        facet=alt.Facet("method:N", title=None), columns=2).properties(title=title)


def by_layer(frame, value: str, title: str, log: bool = True):
    """One statistic against layer depth, a line per method."""
    import altair as alt

    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("layer:Q"), y=alt.Y(f"{value}:Q", scale=alt.Scale(type="log" if log else "linear")),
        color="method:N", tooltip=["method", "layer", value]).properties(title=title, width=480, height=260)


def scatter_labeled(frame, x: str, y: str, title: str, log_x: bool = False):
    """A labelled scatter (one point per method)."""
    import altair as alt

    enc = alt.Chart(frame).encode(x=alt.X(f"{x}:Q", scale=alt.Scale(type="log" if log_x else "linear", zero=False)),
                                  y=alt.Y(f"{y}:Q", scale=alt.Scale(zero=False)))
    return (enc.mark_point(filled=True, size=80) + enc.mark_text(align="left", dx=6, dy=-6).encode(
        text="method:N")).properties(title=title, width=420, height=280)


def rewind_paths(frame, title: str):
    """Training and interpolation paths in the (General, Target) plane, base to final, one panel per method; the
    layer-wise OFT points as black diamonds."""
    import altair as alt

    x = alt.X("General:Q", title="General (validation, %)", scale=alt.Scale(zero=False))
    y = alt.Y("Target:Q", title="Target (validation, %)", scale=alt.Scale(zero=False))
    tip = ["method", "path", "point", "alpha", "General", "Target"]
    paths = alt.Chart().transform_filter(alt.datum.path != "layerwise").encode(
        x=x, y=y, color=alt.Color("path:N"), order="alpha:Q", tooltip=tip)
    marks = alt.Chart().transform_filter(alt.datum.path == "layerwise").mark_point(
        shape="diamond", filled=True, size=90, color="black").encode(x=x, y=y, tooltip=tip)
    text = paths.mark_text(dx=6, dy=-6, fontSize=9, align="left").encode(text="point:N")
    return alt.layer(paths.mark_line(strokeWidth=1.5), paths.mark_point(filled=True, size=50), text, marks,
                     data=frame).properties(width=300, height=260).facet(
        column=alt.Column("method:N", title=None)).properties(title=title)
