"""Chart definitions shared by the reports: Vega-Lite specs made with altair.

Each function takes already aggregated figures (never raw rows, so a chart's size does not
grow with the test set) and returns an altair chart; ``to_svg`` renders it to vector SVG
with vl-convert (no browser, no network) for the PDF. Axis titles carry units or say what
is counted, and sizes suit an A4 page.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import altair as alt
import pandas as pd

from rai_audit.report.dashboard import effect_unit

WIDTH = 420
BAR = 16  # px per bar of a horizontal bar chart
FONT = "DejaVu Sans, sans-serif"
BLUE, RED, GREY = "#4c78a8", "#c0392b", "#555555"


def _bars_height(n: int) -> int:
    return max(40, BAR * n)


def spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """The Vega-Lite spec the page embeds and the PDF renders: one look for both."""
    return (
        chart.configure(font=FONT)
        .configure_axis(labelFontSize=10, titleFontSize=11)
        .configure_view(stroke=None)
        .to_dict()
    )


def to_svg(chart: alt.TopLevelMixin) -> str:
    import vl_convert

    return vl_convert.vegalite_to_svg(spec(chart))


def horizontal_bars(
    rows: list[dict[str, Any]],
    *,
    label: str,
    value: str,
    label_title: str,
    value_title: str,
    target: float | None = None,
    error: tuple[str, str] | None = None,
    sort: bool = False,
) -> alt.TopLevelMixin:
    """One bar per row (e.g. per group or feature), with an optional target line and intervals."""
    data = pd.DataFrame(rows)
    order = list(data[label]) if not sort else list(data.sort_values(value, ascending=False)[label])
    base = alt.Chart(data).encode(y=alt.Y(f"{label}:N", title=label_title, sort=order, axis=alt.Axis(labelLimit=220)))
    layers = [
        base.mark_bar(color=BLUE).encode(
            x=alt.X(f"{value}:Q", title=value_title, axis=alt.Axis(labelOverlap=True, tickCount=5)),
            tooltip=[label, value],
        )
    ]
    if error:
        layers.append(base.mark_rule(color=GREY).encode(x=f"{error[0]}:Q", x2=f"{error[1]}:Q"))
    if target is not None:
        layers.append(
            alt.Chart(pd.DataFrame({"target": [target]})).mark_rule(color=RED, strokeDash=[4, 3]).encode(x="target:Q")
        )
    return alt.layer(*layers).properties(width=WIDTH, height=_bars_height(len(data)))


def bars_spec(rows: list[dict[str, Any]], *, label_title: str, value_title: str) -> dict[str, Any]:
    """``spec(horizontal_bars(rows, label="label", value="value", ...))`` with the rows inline.

    The page holds hundreds of these (each feature's distribution in each cohort view), and
    altair spends ~40 ms building and validating each (most of gather's time on Adult): altair
    builds one per pair of titles, and each chart is that spec with its own rows, order and
    height (tests/report/test_charts.py checks it equals altair's own for the same rows)."""
    out = copy.deepcopy(_bars_template(label_title, value_title))
    out["data"] = {"values": [{"label": r["label"], "value": r["value"]} for r in rows]}
    out["layer"][0]["encoding"]["y"]["sort"] = [r["label"] for r in rows]
    out["height"] = _bars_height(len(rows))
    return out


@functools.lru_cache(maxsize=256)
def _bars_template(label_title: str, value_title: str) -> dict[str, Any]:
    out = spec(
        horizontal_bars(
            [{"label": "", "value": 0.0}],
            label="label",
            value="value",
            label_title=label_title,
            value_title=value_title,
        )
    )
    del out["datasets"]
    return out


def confusion_matrix(labels: list[Any], matrix: list[list[int]]) -> alt.TopLevelMixin:
    """Counts per (true, predicted) class; the text shows the count and the share of its row."""
    cells = []
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        for j, count in enumerate(row):
            cells.append(
                {
                    "true class": str(labels[i]),
                    "predicted class": str(labels[j]),
                    "rows": count,
                    "text": f"{count:,} ({_percent(count, total)})",
                }
            )
    data = pd.DataFrame(cells)
    order = [str(label) for label in labels]
    size = min(90 * len(labels), WIDTH)
    base = alt.Chart(data).encode(
        x=alt.X("predicted class:N", sort=order, title="predicted class"),
        y=alt.Y("true class:N", sort=order, title="true class"),
    )
    # No colour legend: the cells print their counts (and weasyprint draws no SVG gradients).
    heat = base.mark_rect().encode(color=alt.Color("rows:Q", scale=alt.Scale(scheme="blues"), legend=None))
    dark = max((c["rows"] for c in cells), default=0) / 2
    text = base.mark_text(fontSize=10).encode(
        text="text:N", color=alt.condition(alt.datum.rows > dark, alt.value("white"), alt.value("black"))
    )
    return alt.layer(heat, text).properties(width=size, height=size)


def binned_scatter(cells: list[dict[str, Any]], *, x_title: str, y_title: str) -> alt.TopLevelMixin:
    """Row counts over a 2-D grid of bins (``x0, x1, y0, y1, rows``): a scatter plot for any
    number of rows, with the diagonal y = x."""
    data = pd.DataFrame(cells)
    low = float(min(data["x0"].min(), data["y0"].min()))
    high = float(max(data["x1"].max(), data["y1"].max()))
    heat = (
        alt.Chart(data)
        .mark_rect()
        .encode(
            x=alt.X("x0:Q", title=x_title, scale=alt.Scale(domain=[low, high])),
            x2="x1:Q",
            y=alt.Y("y0:Q", title=y_title, scale=alt.Scale(domain=[low, high])),
            y2="y1:Q",
            color=alt.Color("rows:Q", scale=alt.Scale(scheme="blues", type="log"), legend=None),
        )
    )
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [low, high], "y": [low, high]}))
        .mark_line(color=RED, strokeDash=[4, 3])
        .encode(x="x:Q", y="y:Q")
    )
    return alt.layer(heat, diagonal).properties(width=WIDTH * 0.75, height=WIDTH * 0.75)


def histogram(edges: list[float], counts: list[int], *, x_title: str) -> alt.TopLevelMixin:
    data = pd.DataFrame({"x0": edges[:-1], "x1": edges[1:], "rows": counts})
    return (
        alt.Chart(data)
        .mark_rect(color=BLUE)
        .encode(x=alt.X("x0:Q", title=x_title, bin="binned"), x2="x1:Q", y=alt.Y("rows:Q", title="rows"))
        .properties(width=WIDTH, height=140)
    )


def treatment_effects(
    effects: list[dict[str, Any]], outcome: str, treatments: list[dict[str, Any]]
) -> alt.TopLevelMixin:
    """The causal step's effect records (treatment, level vs control, point, interval): one
    panel per treatment, each on its own scale and titled with its unit (``effect_unit``: a
    numeric treatment's effect is per 1 unit of it, a categorical one's per level against the
    control), since the effects of different treatments are in different units. An effect
    without a valid interval (its inference was invalid) is drawn as a point only."""
    panels = []
    for treatment in dict.fromkeys(e["treatment"] for e in effects):
        mine = [e for e in effects if e["treatment"] == treatment]
        numeric = mine[0]["level"] is None
        unit = effect_unit(mine[0], treatments) if numeric else f"each level vs {mine[0]['control']}"
        per_unit = unit.startswith("per 1 unit")
        rows = [
            {
                "label": treatment if per_unit else effect_unit(e, treatments),
                **{k: e[k] for k in ("point", "ci_lower", "ci_upper")},
            }
            for e in mine
        ]
        panels.append(
            effects_chart(rows, value_title=f"change of the {outcome}").properties(
                title=alt.TitleParams(f"{treatment}: effect {unit}", anchor="start", fontSize=11, limit=WIDTH + 200)
            )
        )
    if len(panels) == 1:
        return panels[0]
    return alt.vconcat(*panels, spacing=12).resolve_scale(x="independent")


def effects_chart(rows: list[dict[str, Any]], *, value_title: str) -> alt.TopLevelMixin:
    """Point estimates with confidence intervals, one line per treatment (level), and zero."""
    data = pd.DataFrame(rows)
    base = alt.Chart(data).encode(
        y=alt.Y("label:N", title=None, sort=list(data["label"]), axis=alt.Axis(labelLimit=240))
    )
    # Long decimals must not run into each other. The PDF draws the labels wider than vl-convert
    # measures them, so the labels at the ends are centred on their ticks (not flush with the
    # axis' ends, which pushed "0.0000" into "0.0005") and kept a few pixels apart.
    axis = alt.Axis(labelOverlap="greedy", labelSeparation=4, labelFlush=False, tickCount=6)
    interval = (
        base.transform_filter("isValid(datum.ci_lower)")
        .mark_rule(color=GREY, strokeWidth=2)
        .encode(x=alt.X("ci_lower:Q", title=value_title, axis=axis), x2="ci_upper:Q")
    )
    point = base.mark_point(filled=True, color=BLUE, size=60).encode(x=alt.X("point:Q", title=value_title, axis=axis))
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color=RED, strokeDash=[4, 3]).encode(x="x:Q")
    return alt.layer(interval, point, zero).properties(width=WIDTH, height=_bars_height(len(data)) + 10)


def _percent(count: int, total: int) -> str:
    """A share as a whole percentage, but never 0% or 100% for a share that is neither."""
    share = 100 * count / total if total else 0.0
    if 0 < share < 1:
        return "<1%"
    if 99 < share < 100:
        return ">99%"
    return f"{share:.0f}%"
