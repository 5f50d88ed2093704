"""Render ``dashboard.html``: one self-contained interactive page (no network).

The page holds the bundle's figures as JSON (``DATA.doc``), chart specs (Vega-Lite, made with
altair by ``rai_audit.report.charts``, the same definitions the PDF scorecard renders to SVG)
for every bundle cohort (``DATA.charts``), the per-row views of a bounded sample of rows
(``DATA.rows``), a seeded columnar sample of the test rows for what the page computes itself
(``DATA.table``: cohorts built or picked in the page, data explorer, threshold), the Vega
runtime (vl-convert's bundle) and the app (``templates/dashboard.js``, built from the Preact
sources in ``dashboard/`` by ``make dashboard`` and committed). The app sets user strings as
text, never as markup.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from rai_audit.report import charts

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("rai_audit.report", "templates"),
    autoescape=True,  # user text (model names, cohort names, values) is escaped, never markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if 1e4 <= abs(value) < 1e15:  # 12,280 rather than 1.228e+04; still 4 significant digits
            return f"{round(value, 3 - int(math.floor(math.log10(abs(value))))):,.0f}"
        return f"{value:.4g}"
    return str(value)


def _filter_text(node: dict[str, Any] | None) -> str:
    """A cohort filter as people read it, e.g. ``age < 30 and (sex == "Female" or ...)``."""
    if node is None:
        return "all rows"
    for key in ("and", "or"):
        if key in node:
            parts = [_filter_text(n) if not ({"and", "or"} & set(n)) else f"({_filter_text(n)})" for n in node[key]]
            return f" {key} ".join(parts)
    column, op, value = node["column"], node["op"], node.get("value")
    if value is None:
        return f"{column} is {'missing' if op == '==' else 'not missing'}"
    return f"{column} {op} {_value_text(value)}"


def _value_text(value: Any) -> str:
    """Numbers to 6 significant digits (tree thresholds carry float noise such as
    1162.0000000000002), text quoted, lists bracketed."""
    if isinstance(value, list):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value, ensure_ascii=False)


ENV.filters["fmt"] = _fmt
ENV.filters["fmt_signed"] = lambda value: f"{value:+.4g}" if isinstance(value, (int, float)) else _fmt(value)
ENV.filters["exact"] = lambda value: f"{value:.15g}" if isinstance(value, float) else str(value)  # as configured
ENV.filters["filter_text"] = _filter_text


@functools.cache
def _vega_runtime() -> str:
    import vl_convert

    return vl_convert.javascript_bundle()


def _script_json(value: Any) -> Markup:
    """JSON safe inside a <script> element: no "</script>", no HTML-significant characters."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return Markup(
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _bars(rows: list[dict[str, Any]], label_title: str, value_title: str) -> dict[str, Any] | None:
    rows = [r for r in rows if r["value"] is not None]
    if not rows:
        return None
    return charts.bars_spec(rows, label_title=label_title, value_title=value_title)


def _view_charts(doc: dict[str, Any], view: dict[str, Any], by_name: dict[str, dict]) -> dict[str, Any]:
    """The chart specs of one cohort view."""
    out: dict[str, Any] = {}
    matrix = view["metrics"].get("confusion_matrix")
    if matrix and view["count"]:
        out["confusion"] = charts.spec(charts.confusion_matrix(matrix["labels"], matrix["matrix"]))
    if view.get("residuals"):
        out["residuals"] = charts.spec(
            charts.histogram(
                view["residuals"]["edges"], view["residuals"]["counts"], x_title="residual (predicted - true)"
            )
        )
    balance = view["balance"]
    if doc["task_type"] != "regression":
        out["balance"] = _bars(
            [
                {"label": f"{c} ({side})", "value": balance[key][c]}
                for c in balance["y_true"]
                for side, key in (("true", "y_true"), ("predicted", "y_pred"))
            ],
            "class",
            "rows",
        )
    out["distributions"] = {
        f: _bars([{"label": b, "value": n} for b, n in zip(d["bins"], d["counts"])], f, "rows")
        for f, d in view["distributions"].items()
    }
    importance = by_name.get(("explanation", view["name"]))
    if importance:
        out["importance"] = _bars(
            [{"label": f, "value": v} for f, v in importance["importance"].items()], "feature", "mean |contribution|"
        )
    effects = by_name.get(("causal", view["name"]))
    if effects and effects.get("effects"):
        out["causal"] = charts.spec(charts.treatment_effects(effects["effects"], doc["causal"]["outcome"]))
    return out


def _named_results(doc: dict[str, Any]) -> dict[tuple[str, str], dict]:
    """Per-cohort results of the insights, keyed by (kind, the cohort view's name)."""
    out: dict[tuple[str, str], dict] = {}
    for kind in ("explanation", "causal"):
        result = doc.get(kind)
        if not result:
            continue
        if kind == "explanation":
            out[(kind, "All data")] = {"importance": {f["feature"]: f["importance"] for f in result["global"]}}
        else:
            out[(kind, "All data")] = {"effects": result["test_effects"]}
        for c in result.get("cohorts", []):
            out[(kind, c["name"])] = c
        for g in result.get("sensitive_groups", []):
            out[(kind, f"{g['feature']} = {g['group']}")] = g
    return out


def _page_charts(doc: dict[str, Any]) -> dict[str, Any]:
    by_name = _named_results(doc)
    page: dict[str, Any] = {"views": {str(v["id"]): _view_charts(doc, v, by_name) for v in doc["cohort_views"]}}
    page["fairness"] = [
        {
            m: _bars(
                [{"label": g["label"], "value": g[m]} for g in entry["by_group"]], " × ".join(entry["features"]), m
            )
            for m in doc["model_overview"]["metric_names"]
        }
        for entry in doc["fairness"]
    ]
    if doc.get("causal", {}).get("global_effects"):
        causal = doc["causal"]
        page["causal_global"] = charts.spec(charts.treatment_effects(causal["global_effects"], causal["outcome"]))
    return page


def render_dashboard(
    insights: dict[str, Any], rows: list[dict[str, Any]] | None = None, table: dict[str, Any] | None = None
) -> str:
    """The page for a gathered ``insights.json`` document, the per-row sample and the carried rows
    (gather's columnar ``table``)."""
    script = resources.files("rai_audit.report").joinpath("templates/dashboard.js").read_text(encoding="utf-8")
    data = {"doc": insights, "rows": rows or [], "table": table, "charts": _page_charts(insights)}
    return ENV.get_template("dashboard.html.j2").render(
        d=insights, data=_script_json(data), vega=Markup(_vega_runtime()), app=Markup(script)
    )
