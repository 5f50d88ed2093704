"""Render ``dashboard.html``: one self-contained page (inline CSS, no scripts, no network)."""

from __future__ import annotations

import json
from typing import Any

import jinja2

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
ENV.filters["exact"] = lambda value: f"{value:.15g}" if isinstance(value, float) else str(value)  # as configured
ENV.filters["filter_text"] = _filter_text


def render_dashboard(insights: dict[str, Any]) -> str:
    """The page for a gathered ``insights.json`` document."""
    return ENV.get_template("dashboard.html.j2").render(d=insights)
