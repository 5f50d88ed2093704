"""The page's bar charts made from a cached altair template equal altair's own charts."""

from __future__ import annotations

import altair as alt
import pytest

from rai_audit.report import charts


def _altair_with_rows_inline(rows, label_title, value_title):
    """altair's spec for these rows, its named dataset moved inline (what bars_spec writes)."""
    out = charts.spec(
        charts.horizontal_bars(rows, label="label", value="value", label_title=label_title, value_title=value_title)
    )
    datasets = out.pop("datasets")
    out["data"] = {"values": datasets[out["data"]["name"]]}
    return out


@pytest.mark.parametrize(
    "rows",
    [
        [{"label": "Male", "value": 0.25}],
        [{"label": f"{i} to {i + 1}", "value": i * 3} for i in range(12)],
        [
            {"label": "≤50K (true)", "value": 12},
            {"label": "≤50K (predicted)", "value": 0.0},
            {"label": 'a "quoted" <b>', "value": -1.5},
        ],
    ],
)
def test_bars_spec_equals_altair(rows):
    for titles in (("sex", "recall_score"), ("feature", "mean |contribution|")):
        made = charts.bars_spec(rows, label_title=titles[0], value_title=titles[1])
        assert made == _altair_with_rows_inline(rows, *titles)
        alt.LayerChart.from_dict(made, validate=True)  # a valid Vega-Lite spec


def test_bars_spec_calls_do_not_share_state():
    first = charts.bars_spec([{"label": "a", "value": 1}], label_title="x", value_title="rows")
    second = charts.bars_spec(
        [{"label": "b", "value": 2}, {"label": "c", "value": 3}], label_title="x", value_title="rows"
    )
    assert first["data"]["values"] == [{"label": "a", "value": 1}]
    assert first["layer"][0]["encoding"]["y"]["sort"] == ["a"]
    assert second["layer"][0]["encoding"]["y"]["sort"] == ["b", "c"]
    assert (first["height"], second["height"]) == (charts._bars_height(1), charts._bars_height(2))


def _text_width(text: str, size: float) -> float:
    """The width of ``text`` in DejaVu Sans (the PDF's font) at ``size`` px, from its glyph advances."""
    from fontTools.ttLib import TTFont
    from matplotlib import font_manager

    font = TTFont(font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"), fallback_to_default=False))
    cmap, advances = font.getBestCmap(), font["hmtx"].metrics
    return sum(advances[cmap[ord(c)]][0] for c in text) * size / font["head"].unitsPerEm


def _x_axis_labels(svg: str) -> list[list[tuple[float, float, str]]]:
    """Each x axis of the SVG: its shown labels as (left, right, text), left to right."""
    import xml.etree.ElementTree as ET

    axes = []
    for group in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}g"):
        if "role-axis-label" not in group.get("class", ""):
            continue
        labels = []
        for text in group.iter("{http://www.w3.org/2000/svg}text"):
            if text.get("opacity") == "0":
                continue
            x, y = (float(v) for v in text.get("transform").removeprefix("translate(").rstrip(")").split(","))
            width = _text_width(text.text, float(text.get("font-size").removesuffix("px")))
            left = {"start": x, "middle": x - width / 2, "end": x - width}[text.get("text-anchor")]
            labels.append((y, left, left + width, text.text))
        if len({y for y, *_ in labels}) == 1 and len(labels) > 1:  # a y axis' labels are one above the other
            axes.append(sorted((left, right, text) for _, left, right, text in labels))
    return axes


@pytest.mark.parametrize(
    "point, lower, upper",
    [
        (0.003129, 0.002363, 0.003895),  # the demo's hours-per-week: "0.0000" ran into "0.0005"
        (-0.00213, -0.00391, -0.00021),
        (-0.0123, -0.0456, 0.0311),
        (262.4, 230.9, 293.8),
        (1.2e-5, 3.1e-6, 2.4e-5),
        (12280.0, 9876.0, 14690.0),
    ],
)
def test_effect_axis_labels_do_not_run_into_each_other_in_the_pdfs_font(point, lower, upper):
    """The tick labels of the causal effects' axis, measured in DejaVu Sans (the font the PDF
    draws them in, wider than vl-convert's measure), do not overlap."""
    effects = [{"treatment": "t", "level": None, "control": None, "point": point, "ci_lower": lower, "ci_upper": upper}]
    [axis] = _x_axis_labels(charts.to_svg(charts.treatment_effects(effects, "outcome", [])))
    assert len(axis) >= 3
    gaps = [(a[2], b[2], b[0] - a[1]) for a, b in zip(axis, axis[1:])]
    assert all(gap > 1 for *_, gap in gaps), gaps
