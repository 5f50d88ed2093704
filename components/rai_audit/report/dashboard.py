"""Render ``dashboard.html``: one self-contained interactive page (no network).

The page holds the bundle's figures as JSON (``DATA.doc``), the per-row views of a bounded sample of rows
(``DATA.rows``), a seeded columnar sample of the test rows for what the page computes itself
(``DATA.table``: cohorts built or picked in the page, data explorer, threshold), the Vega
runtime (vl-convert's bundle) and the app (``templates/dashboard.js``, built from the Preact
sources in ``dashboard/`` by ``make dashboard`` and committed). The app sets user strings as
text, never as markup.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

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
        text = f"{value:.4g}"  # 4 significant digits
        rounded = float(text)
        if 1e3 <= abs(rounded) < 1e15:  # 12,280 rather than 1.228e+04, and 9,259 as 11,940 beside it
            return f"{rounded:,.0f}"
        return text
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


def _thousands(value: Any) -> str:
    """A count as people read it: 16,281 (as the page writes them)."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else _fmt(value)


def effect_unit(effect: dict[str, Any], treatments: list[dict[str, Any]]) -> str:
    """What a causal effect record is an effect of: a level against the control ("Male vs Female");
    for a numeric treatment, per 1 unit of it, or, where the data hold only two values one unit
    apart (an integer-coded attribute), the change from one to the other ("2 vs 1": the effect
    is linear in the treatment, so per unit is that change's). ``treatments``: the causal
    result's, whose ``values`` a bundle from before them lacks. The page's Causal view says the same."""
    if effect.get("level") is not None:
        return f"{effect['level']} vs {effect['control']}"
    name = effect["treatment"]
    values = next((t.get("values") for t in treatments if t["feature"] == name), None)
    if not values:
        return f"per 1 unit of {name}"
    # Feature values: whole numbers as they are (a year 2019), as the page writes them (JSON
    # does not tell 2019.0 from 2019).
    low, high = (str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else _fmt(v) for v in values)
    if values[1] - values[0] == 1:
        return f"{high} vs {low}"
    return f"per 1 unit of {name} ({name} takes only {low} and {high})"


ENV.filters["fmt"] = _fmt
ENV.globals["effect_unit"] = effect_unit
ENV.filters["thousands"] = _thousands
# A signed figure ("+0.012", "+12,280"), as the page's fmtSigned.
ENV.filters["fmt_signed"] = lambda value: (
    f"+{_fmt(value)}" if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else _fmt(value)
)
ENV.filters["exact"] = lambda value: f"{value:.15g}" if isinstance(value, float) else str(value)  # as configured
ENV.filters["filter_text"] = _filter_text


def vega_bundle_files() -> list[Path]:
    """Where vl-convert's Vega bundle is kept, first found first: beside this module (an image
    writes it there when it is built: every task is a new container) and the user's cache.
    Named by vl-convert's version, whose bundle it is."""
    name = f"vega-bundle-{importlib.metadata.version('vl-convert-python')}.js"
    files = [Path(__file__).parent / "templates" / name]
    with contextlib.suppress(RuntimeError):  # no home folder (a container's arbitrary user): no cache
        files.append(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rai-audit" / name)
    return files


def _bundle_vega() -> str:
    """vl-convert's Vega bundle, made now: 2-6 s, the same text each time."""
    import vl_convert

    return vl_convert.javascript_bundle()


def write_vega_bundle(path: Path, bundle: str | None = None) -> None:
    """Keep vl-convert's Vega bundle (made now if not given) in ``path``, written whole: a
    concurrent reader never sees part of it."""
    bundle = _bundle_vega() if bundle is None else bundle
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}")
    part.write_text(bundle, encoding="utf-8")
    part.replace(path)


@functools.cache
def _vega_runtime() -> str:
    files = vega_bundle_files()
    for path in files:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    bundle = _bundle_vega()
    if len(files) > 1:
        with contextlib.suppress(OSError):  # no writable cache (a read-only home): bundled again next time
            write_vega_bundle(files[1], bundle)
    return bundle


def _script_json(value: Any) -> Markup:
    """JSON safe inside a <script> element: no "</script>", no HTML-significant characters."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))  # 7% of the page
    return Markup(
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render_dashboard(
    insights: dict[str, Any], rows: list[dict[str, Any]] | None = None, table: dict[str, Any] | None = None
) -> str:
    """The page for a gathered ``insights.json`` document, the per-row sample and the carried rows
    (gather's columnar ``table``)."""
    script = resources.files("rai_audit.report").joinpath("templates/dashboard.js").read_text(encoding="utf-8")
    data = {"doc": insights, "rows": rows or [], "table": table}
    return ENV.get_template("dashboard.html.j2").render(
        d=insights, data=_script_json(data), vega=Markup(_vega_runtime()), app=Markup(script)
    )
