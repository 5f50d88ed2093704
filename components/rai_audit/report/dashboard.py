"""Render ``dashboard.html``: one self-contained page (inline CSS, no scripts, no network)."""

from __future__ import annotations

from typing import Any

import jinja2

_ENV = jinja2.Environment(
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


_ENV.filters["fmt"] = _fmt


def render_dashboard(insights: dict[str, Any]) -> str:
    """The page for a gathered ``insights.json`` document."""
    return _ENV.get_template("dashboard.html.j2").render(d=insights)
