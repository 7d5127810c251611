"""Altair charts that draw offline: rendered to inline SVG (no CDN script), so the built book needs no network."""

from __future__ import annotations


def offline() -> None:
    """Switch Altair to the SVG renderer (vl-convert, bundled JS engine); call once per notebook."""
    import altair as alt

    alt.renderers.enable("svg")
    alt.data_transformers.disable_max_rows()


def scores_vs_chance(frame, title: str):
    """Bars of accuracy per task with a tick at chance level. ``frame`` columns: task, accuracy, chance, se."""
    import altair as alt

    base = alt.Chart(frame).encode(y=alt.Y("task:N", sort="-x", title=None))
    bars = base.mark_bar(color="#4c78a8").encode(x=alt.X("accuracy:Q", title="accuracy (%)",
                                                         scale=alt.Scale(domain=[0, 100])),
                                                tooltip=["task", "accuracy", "se", "chance"])
    errors = base.mark_errorbar().encode(x="lo:Q", x2="hi:Q")
    chance = base.mark_tick(color="#e45756", thickness=3, size=14).encode(x="chance:Q")
    return (bars + errors + chance).transform_calculate(
        lo="datum.accuracy - datum.se", hi="datum.accuracy + datum.se"
    ).properties(title=title, width=420)
