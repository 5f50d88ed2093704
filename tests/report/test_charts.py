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
