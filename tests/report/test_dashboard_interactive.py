"""dashboard.html driven in a real headless Chromium (Playwright): every interaction shows the bundle's figures.

The subject is a full Adult bundle (constructor with cohorts, error analysis, explanation,
counterfactuals, causal, gather), built once for the module. Each test opens the page from
its file:// URL in a fresh browser page that records console errors, page errors, dialogs
and every request; after loading and after every interaction the page must have logged no
error and asked for nothing but file:, data:, blob: or about: URLs.

What the page shows is compared with what the bundle and the steps wrote, read here with
json/pandas: insights.json (``cohort_views``, the error tree), the explanation's
local_importance.parquet, the counterfactuals' counterfactuals.parquet and the user's test
file, with numbers formatted as Python's ``f"{v:.4g}"`` (what insights.json readers and the
PDF scorecard see). Row counts are recomputed from the test file, accuracies from the
constructor's predictions. A synthetic data set whose column names, values, cohort name,
target and class are HTML/script strings checks that user text is shown, never run.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime that threadpool_limits below limits)
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from rai_audit.core import artifacts as A
from rai_audit.report.dashboard import _filter_text, render_dashboard
from rai_audit.steps.causal import CausalOptions, run_causal
from rai_audit.steps.counterfactual import CounterfactualOptions, run_counterfactual
from rai_audit.steps.error_analysis import ErrorAnalysisOptions, run_error_analysis
from rai_audit.steps.explainer import ExplainerOptions, run_explainer
from rai_audit.steps.gather import run_gather
from support import ADULT_COHORTS, Case, encoded_model, write_case

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
POSITIVE = ">50K"
ADULT_SAMPLE = 60

# Every chart box holds an SVG drawn by Vega, or says it has no data.
CHARTS_DRAWN = """() => [...document.querySelectorAll('.chart')]
    .every(c => c.querySelector('svg') || c.querySelector('p.muted'))"""
TABLE_CELLS = "t => [...t.rows].map(r => [...r.cells].map(c => c.textContent))"


# --- threads: one per library, as in tests/steps/test_counterfactual.py and test_causal.py ------


@pytest.fixture(scope="session", autouse=True)
def _one_thread_per_library():
    """Session-scoped so that it comes before the conftest's Adult model fit when this module
    runs first; restored when the module ends (below)."""
    limits = threadpool_limits(limits=1)
    yield limits
    limits.restore_original_limits()


@pytest.fixture(scope="module", autouse=True)
def one_thread_per_library(_one_thread_per_library):
    """One BLAS and one OpenMP thread while this module runs: on a busy small machine, spinning
    worker threads make the demo model's fit, econml's small first-stage fits and the
    counterfactual search many times slower. Results are the same."""
    yield
    _one_thread_per_library.restore_original_limits()


# --- helpers --------------------------------------------------------------------------------------


def pyfmt(value: Any) -> str:
    """A value as the page must show it: Python's ``f"{v:.4g}"`` for floats (as
    rai_audit.report.dashboard._fmt and the PDF), integers and text as they are."""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def svg_texts(page: Page, selector: str) -> list[str]:
    """The text marks of the first SVG chart that matches."""
    return page.eval_on_selector(selector, "s => [...s.querySelectorAll('text')].map(t => t.textContent)")


class Dashboard:
    """One page of dashboard.html in a fresh browser context, with everything it reports."""

    def __init__(self, browser: Browser, html: Path):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on(
            "console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)
        self.page.goto(html.as_uri())
        self.settle("loading the page")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def settle(self, after: str) -> None:
        """Wait for every chart to be drawn; then no error, no dialog, no network request."""
        try:
            self.page.wait_for_function(CHARTS_DRAWN, timeout=20_000)
        except PlaywrightTimeout:
            pytest.fail(f"charts not drawn after {after}; errors: {self.errors}")
        assert not self.errors, f"errors after {after}: {self.errors}"
        assert not self.dialogs, f"dialogs after {after}: {self.dialogs}"
        remote = [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]
        assert not remote, f"network requests after {after}: {remote}"

    # interactions
    def select_view(self, view: dict[str, Any]) -> None:
        self.page.select_option("#cohort", value=str(view["id"]))
        self.settle(f"selecting the cohort {view['name']!r}")

    def compare(self, views: list[dict[str, Any]]) -> None:
        self.page.select_option("#compare", value=[str(v["id"]) for v in views])
        self.settle(f"comparing with {[v['name'] for v in views]}")

    def pick_row(self, section: str, row_id: int) -> None:
        self.page.select_option(f"#{section} select[aria-label=row]", value=str(row_id))
        self.settle(f"choosing row {row_id} in {section}")

    def toggle_node(self, node_id: int) -> None:
        self.page.click(f'#error-tree details[data-node="{node_id}"] > summary')
        self.settle(f"clicking error tree node {node_id}")

    def open_whole_tree(self) -> None:
        """Open every node of the error tree, level by level (children appear when opened)."""
        for _ in range(50):
            closed = self.page.evaluate("""() => {
                const closed = [...document.querySelectorAll('#error-tree details:not([open])')];
                closed.forEach(d => { d.open = true; });
                return closed.length; }""")
            if not closed:
                break
            self.page.wait_for_function(
                "() => [...document.querySelectorAll('#error-tree details[open]')].every(d => d.dataset.filled)"
            )
        self.settle("opening the whole error tree")

    # reading
    def table(self, selector: str) -> list[list[str]]:
        return self.page.eval_on_selector(selector, TABLE_CELLS)

    def metrics(self) -> dict[str, list[str]]:
        """The model overview's metrics table: first column -> the other cells."""
        tables = self.page.eval_on_selector_all("#model-overview table", f"ts => ts.map({TABLE_CELLS})")
        (cells,) = [t for t in tables if t[0][0] == "Metric"]
        return {r[0]: r[1:] for r in cells}

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: run scripts/install-system-deps.sh (make test does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def open_page(browser):
    pages: list[Dashboard] = []

    def opener(html: Path) -> Dashboard:
        pages.append(Dashboard(browser, html))
        return pages[-1]

    yield opener
    for page in pages:
        page.close()


# --- the Adult bundle ---------------------------------------------------------------------------


@dataclass
class Bundle:
    html: Path
    doc: dict[str, Any]
    test: pd.DataFrame  # the user's test file
    predictions: pd.DataFrame  # the constructor's predictions (y_true, y_pred per row)
    local: pd.DataFrame  # the explanation's local_importance.parquet
    cfs: pd.DataFrame  # counterfactuals.parquet (the valid counterfactuals)

    def view(self, name: str) -> dict[str, Any]:
        (view,) = [v for v in self.doc["cohort_views"] if v["name"] == name]
        return view

    @property
    def features(self) -> list[str]:
        return self.doc["data"]["features"]


@pytest.fixture(scope="module")
def adult(adult_case: Case, tmp_path_factory) -> Bundle:
    root = tmp_path_factory.mktemp("dashboard_interactive")
    constructor = adult_case.construct(root / "constructor", sample_size=ADULT_SAMPLE, cohorts=ADULT_COHORTS)
    run_error_analysis(constructor, root / "error_analysis", options=ErrorAnalysisOptions(heatmap_features=["age"]))
    run_explainer(constructor, root / "explanation", options=ExplainerOptions(rows="sample"))
    run_counterfactual(constructor, root / "counterfactual", options=CounterfactualOptions(total_CFs=2, n_jobs=1))
    run_causal(
        constructor,
        root / "causal",
        options=CausalOptions(
            treatment_features=["hours-per-week"], heterogeneity_features=["sex"], train_sample_size=2000, n_jobs=1
        ),
    )
    insights = [root / k for k in ("error_analysis", "explanation", "counterfactual", "causal")]
    run_gather(constructor, insights, root / "dashboard")
    bundle = root / "dashboard"
    return Bundle(
        html=bundle / A.DASHBOARD_HTML_FILE,
        doc=json.loads((bundle / A.INSIGHTS_JSON_FILE).read_text()),
        test=pd.read_parquet(adult_case.test),
        predictions=pd.read_parquet(constructor / "predictions.parquet").set_index(A.ROW_ID).sort_index(),
        local=pd.read_parquet(bundle / A.INSIGHT_COPIES_DIR / "explanation" / "local_importance.parquet"),
        cfs=pd.read_parquet(bundle / A.INSIGHT_COPIES_DIR / "counterfactual" / "counterfactuals.parquet"),
    )


def test_bundle_holds_every_insight(adult):
    """The subject is what the tests below need: all insights, a sample, valid counterfactuals."""
    assert sorted(adult.doc["insights"]) == ["causal", "counterfactual", "error_analysis", "explanation"]
    assert adult.doc["data"]["sample"]["size"] == ADULT_SAMPLE
    assert adult.cfs[A.ROW_ID].nunique() > 10
    kinds = {v["kind"] for v in adult.doc["cohort_views"]}
    assert kinds == {"all", "cohort", "group", "error_leaf"}


# --- 2, 8: loading, charts ----------------------------------------------------------------------


def test_loads_offline_without_errors_and_draws_charts(adult, open_page):
    dash = open_page(adult.html)
    page = dash.page
    assert dash.requests[0] == adult.html.as_uri()
    sections = page.eval_on_selector_all("main > section", "ss => ss.map(s => s.id)")
    assert sections == [
        "model-overview",
        "fairness",
        "data-analysis",
        "error-analysis",
        "feature-importance",
        "counterfactuals",
        "causal",
        "cohorts",
    ]
    assert page.eval_on_selector_all("#nav a", "as => as.map(a => a.getAttribute('href'))") == [
        "#" + s for s in sections
    ]
    # Vega drew SVG charts: the confusion matrix, fairness, balance, distributions, importance, effects.
    for section in ("model-overview", "fairness", "data-analysis", "feature-importance", "causal"):
        assert page.locator(f"#{section} .chart svg").count() > 0, section
    drawn = page.locator(".chart svg").count()
    assert drawn == page.locator(".chart").count() - page.locator(".chart p.muted").count() > 15
    # A drawn confusion matrix holds its counts as text.
    matrix = adult.view("All data")["metrics"]["confusion_matrix"]["matrix"]
    texts = svg_texts(page, "#model-overview .chart svg")
    assert sorted(int(t.split(" (")[0]) for t in texts if t.endswith("%)")) == sorted(np.ravel(matrix))


def test_switching_cohort_redraws_charts(adult, open_page):
    dash = open_page(adult.html)
    page = dash.page
    confusion = "#model-overview .chart svg"
    before = svg_texts(page, confusion)
    page.eval_on_selector_all(".chart svg", "ss => ss.forEach(s => { s.dataset.old = '1'; })")
    under_30 = adult.view("Under 30")
    dash.select_view(under_30)
    assert page.locator(".chart svg[data-old]").count() == 0, "every chart is drawn anew"
    assert page.locator(".chart svg").count() > 15
    after = svg_texts(page, confusion)
    assert after != before
    assert sorted(int(t.split(" (")[0]) for t in after if t.endswith("%)")) == sorted(
        np.ravel(under_30["metrics"]["confusion_matrix"]["matrix"])
    )
    assert "Confusion matrix (rows: true class): Under 30" in page.inner_text("#model-overview")
    # A cohort with no rows: no confusion matrix, no error either.
    dash.select_view(adult.view("Nobody"))
    assert page.locator(confusion).count() == 0
    assert dash.metrics()["rows"] == ["0"]


# --- 3: cohort switching --------------------------------------------------------------------------


def _check_view_shown(dash: Dashboard, view: dict[str, Any], names: list[str]) -> None:
    metrics = dash.metrics()
    assert metrics["Metric"] == [view["name"]]
    assert metrics["rows"] == [str(view["count"])]
    for m in names:
        assert metrics[m] == [pyfmt(view["metrics"][m])], m
    option = dash.page.eval_on_selector("#cohort", "s => s.selectedOptions[0].textContent")
    assert view["name"] in option and option.endswith(f"({view['count']} rows)")
    assert dash.page.inner_text("#data-analysis h2") == f"Data analysis: {view['name']}"


def test_cohort_switch_shows_that_cohorts_metrics(adult, open_page):
    dash = open_page(adult.html)
    names = adult.doc["model_overview"]["metric_names"]
    overall = adult.view("All data")
    _check_view_shown(dash, overall, names)
    y_true, y_pred = adult.predictions[A.Y_TRUE].astype(str), adult.predictions[A.Y_PRED].astype(str)
    nodes = adult.doc["error_analysis"]["tree"]["nodes"]
    worst = adult.doc["error_analysis"]["cohort_errors"]["worst_leaves"][0]
    expected_rows = {  # recomputed from the test file / the error tree
        "Under 30": (adult.test["age"] < 30).to_numpy(),
        "sex = Female": (adult.test["sex"] == "Female").to_numpy(),
        worst["name"]: None,
    }
    for name, mask in expected_rows.items():
        view = adult.view(name)
        dash.select_view(view)
        _check_view_shown(dash, view, names)
        accuracy = dash.metrics()["accuracy_score"][0]
        assert accuracy == f"{view['metrics']['accuracy_score']:.4g}"
        assert accuracy != f"{overall['metrics']['accuracy_score']:.4g}"
        if mask is None:  # the error-tree leaf: its node's count and error rate
            node = nodes[worst["node"]]
            assert node["leaf"] and view["count"] == node["count"] == worst["count"]
            assert view["metrics"]["accuracy_score"] == pytest.approx(1 - node["error_rate"])
        else:
            assert view["count"] == int(mask.sum())
            assert view["metrics"]["accuracy_score"] == pytest.approx(float((y_true[mask] == y_pred[mask]).mean()))


def test_every_view_can_be_shown(adult, open_page):
    """Each option of the selector draws without error and shows its own figures."""
    dash = open_page(adult.html)
    names = adult.doc["model_overview"]["metric_names"]
    options = dash.page.eval_on_selector_all("#cohort option", "os => os.map(o => o.value)")
    assert options == [str(v["id"]) for v in adult.doc["cohort_views"]]
    for view in reversed(adult.doc["cohort_views"]):
        dash.select_view(view)
        if view["count"]:  # (the empty cohort: below)
            _check_view_shown(dash, view, names)


def test_undefined_metrics_read_n_a(adult, open_page):
    dash = open_page(adult.html)
    nobody = adult.view("Nobody")
    assert nobody["count"] == 0 and nobody["metrics"]["accuracy_score"] is None
    dash.select_view(nobody)
    _check_view_shown(dash, nobody, adult.doc["model_overview"]["metric_names"])


# --- 4: comparison --------------------------------------------------------------------------------


def test_compare_shows_a_column_per_cohort(adult, open_page):
    dash = open_page(adult.html)
    overall, under_30, female = adult.view("All data"), adult.view("Under 30"), adult.view("sex = Female")
    dash.compare([under_30, female])
    metrics = dash.metrics()
    assert dash.page.inner_text("#model-overview h3") == "Metrics, side by side"
    assert metrics["Metric"] == ["All data", "Under 30", "sex = Female"]
    assert metrics["rows"] == [str(v["count"]) for v in (overall, under_30, female)]
    for m in adult.doc["model_overview"]["metric_names"]:
        assert metrics[m] == [pyfmt(v["metrics"][m]) for v in (overall, under_30, female)], m
    # The compared cohort chosen as the view is shown once, first.
    dash.select_view(female)
    assert dash.metrics()["Metric"] == ["sex = Female", "Under 30"]
    assert dash.metrics()["accuracy_score"] == [
        pyfmt(female["metrics"]["accuracy_score"]),
        pyfmt(under_30["metrics"]["accuracy_score"]),
    ]
    dash.compare([])
    assert dash.metrics()["Metric"] == ["sex = Female"]


# --- 5: the error tree ----------------------------------------------------------------------------

NODE_LABEL = "e => (e.tagName === 'DETAILS' ? e.querySelector('summary') : e).textContent"


def _node_labels(dash: Dashboard, selector: str) -> list[tuple[int, str]]:
    return [
        (int(i), text)
        for i, text in dash.page.eval_on_selector_all(
            selector, f"es => es.map(e => [e.dataset.node, ({NODE_LABEL})(e)])"
        )
    ]


def test_error_tree_expands(adult, open_page):
    dash = open_page(adult.html)
    nodes = adult.doc["error_analysis"]["tree"]["nodes"]
    root = nodes[0]
    assert not root["leaf"] and len(root["children"]) == 2
    assert _node_labels(dash, "#error-tree [data-node]") == [
        (0, f"all rows · {root['count']} rows · error rate {pyfmt(root['error_rate'])}")
    ]
    dash.toggle_node(0)
    assert dash.page.eval_on_selector('#error-tree details[data-node="0"]', "d => d.open")
    children = _node_labels(dash, '#error-tree details[data-node="0"] > [data-node]')
    assert [i for i, _ in children] == root["children"]
    assert sum(nodes[i]["count"] for i in root["children"]) == root["count"]
    for i, label in children:
        assert f" · {nodes[i]['count']} rows · error rate {pyfmt(nodes[i]['error_rate'])}" in label
        assert dash.page.locator(f'#error-tree [data-node="{i}"]').is_visible()
    # Closed and opened again: the same two children, not four.
    dash.toggle_node(0)
    assert not dash.page.locator(f'#error-tree [data-node="{root["children"][0]}"]').is_visible()
    dash.toggle_node(0)
    assert [i for i, _ in _node_labels(dash, '#error-tree details[data-node="0"] > [data-node]')] == root["children"]
    # All the way down: every node of the tree, under its parent, with its count.
    dash.open_whole_tree()
    shown = dash.page.eval_on_selector_all(
        "#error-tree [data-node]",
        f"es => es.map(e => [+e.dataset.node, e.parentElement.dataset.node ?? null, e.tagName, ({NODE_LABEL})(e)])",
    )
    assert sorted(s[0] for s in shown) == [n["id"] for n in nodes]
    for node_id, parent, tag, label in shown:
        node = nodes[node_id]
        assert (int(parent) if parent is not None else None) == node["parent"]
        assert tag == ("DIV" if node["leaf"] else "DETAILS")
        assert f" · {node['count']} rows · " in label


def test_error_tree_labels_read_like_the_python_filter_text(adult, open_page):
    """Thresholds carry float noise (1162.0000000000002): shown to 6 digits, as dashboard._filter_text."""
    dash = open_page(adult.html)
    dash.open_whole_tree()
    nodes = adult.doc["error_analysis"]["tree"]["nodes"]
    for node_id, label in _node_labels(dash, "#error-tree [data-node]"):
        f = nodes[node_id]["filter"]
        if f is not None:
            last = f["and"][-1] if "and" in f else f
            assert label.lstrip("• ").startswith(_filter_text(last) + " · "), label


def test_saved_leaf_switches_the_page_to_its_cohort(adult, open_page):
    """A leaf saved as a cohort view offers a button that selects that view."""
    dash = open_page(adult.html)
    saved = {
        leaf["node"]: adult.view(leaf["name"])
        for kind in ("worst_leaves", "best_leaves")
        for leaf in adult.doc["error_analysis"]["cohort_errors"][kind]
    }
    dash.open_whole_tree()
    with_button = [
        int(i)
        for i in dash.page.eval_on_selector_all(
            "#error-tree [data-node]",
            "es => es.filter(e => [...e.children].some(c => c.tagName === 'BUTTON') || "
            "(e.querySelector(':scope > summary > button'))).map(e => e.dataset.node)",
        )
    ]
    assert sorted(with_button) == sorted(saved)
    node_id = adult.doc["error_analysis"]["cohort_errors"]["best_leaves"][0]["node"]
    dash.page.click(f'#error-tree [data-node="{node_id}"] > button')
    dash.settle(f"showing error tree node {node_id} as a cohort")
    view = saved[node_id]
    assert dash.page.eval_on_selector("#cohort", "s => s.value") == str(view["id"])
    _check_view_shown(dash, view, adult.doc["model_overview"]["metric_names"])


# --- 6: counterfactuals ---------------------------------------------------------------------------


def _rows_offered(dash: Dashboard, section: str) -> list[int]:
    return [
        int(v)
        for v in dash.page.eval_on_selector_all(
            f"#{section} select[aria-label=row] option", "os => os.map(o => o.value)"
        )
    ]


def test_counterfactuals_of_a_chosen_row(adult, open_page):
    dash = open_page(adult.html)
    with_cf = sorted(adult.cfs[A.ROW_ID].unique())
    offered = _rows_offered(dash, "counterfactuals")
    assert sorted(offered) == with_cf
    test = adult.test.set_index(pd.RangeIndex(len(adult.test)))
    # Rows whose counterfactuals change a categorical feature and a numeric one, and the last row.
    changed = {
        r: {
            f
            for _, cf in adult.cfs[adult.cfs[A.ROW_ID] == r].iterrows()
            for f in adult.features
            if not (missing(cf[f]) and missing(test.at[r, f])) and cf[f] != test.at[r, f]
        }
        for r in with_cf
    }
    categorical = set(adult.doc["data"]["categorical_features"])
    chosen = [
        next(r for r in offered[1:] if changed[r] & categorical),
        next(r for r in offered[1:] if changed[r] - categorical),
        offered[-1],
    ]
    for row_id in chosen:
        dash.pick_row("counterfactuals", row_id)
        cells = dash.table("#counterfactuals .row-view table")
        assert cells[0] == ["#", "prediction would become", "if"]
        mine = adult.cfs[adult.cfs[A.ROW_ID] == row_id]
        assert len(cells) - 1 == len(mine) > 0
        for (number, prediction, changes), (k, (_, cf)) in zip(cells[1:], enumerate(mine.iterrows())):
            assert number == str(k + 1)
            assert prediction == pyfmt(cf["prediction"])
            named = {}
            for part in changes.split("; "):
                feature, _, move = part.partition(": ")
                named[feature] = move
            differ = {
                f
                for f in adult.features
                if not (missing(cf[f]) and missing(test.at[row_id, f])) and cf[f] != test.at[row_id, f]
            }
            assert set(named) == differ and differ, (row_id, changes)
            for f, move in named.items():
                assert move == f"{pyfmt(test.at[row_id, f])} → {pyfmt(cf[f])}", (f, move)
        # The counterfactual's prediction is the other class: the row's prediction is in the label.
        predicted = adult.predictions.at[row_id, A.Y_PRED]
        label = dash.page.eval_on_selector(
            "#counterfactuals select[aria-label=row]", "s => s.selectedOptions[0].textContent"
        )
        assert label == f"row {row_id} (prediction {predicted}, true {adult.predictions.at[row_id, A.Y_TRUE]})"
        assert all(p != predicted for p in mine["prediction"])


def test_chosen_row_survives_a_cohort_switch(adult, open_page):
    dash = open_page(adult.html)
    row_id = _rows_offered(dash, "counterfactuals")[3]
    dash.pick_row("counterfactuals", row_id)
    dash.select_view(adult.view("Under 30"))
    assert dash.page.eval_on_selector("#counterfactuals select[aria-label=row]", "s => s.value") == str(row_id)


# --- 7: local importance --------------------------------------------------------------------------


def test_local_importance_of_a_chosen_row(adult, open_page):
    dash = open_page(adult.html)
    local = adult.local[adult.local["class"].astype(str) == POSITIVE].set_index(A.ROW_ID)
    offered = _rows_offered(dash, "feature-importance")
    assert sorted(offered) == sorted(local.index)
    test = adult.test
    for row_id in (offered[0], offered[len(offered) // 2], offered[-1]):
        if row_id != offered[0]:
            dash.pick_row("feature-importance", row_id)
        cells = dash.table("#feature-importance .row-view table")
        assert cells[0] == ["Feature", "value", "contribution"]
        values = local.loc[row_id, adult.features].astype(float)
        ranked = sorted(adult.features, key=lambda f: -abs(values[f]))
        assert [c[0] for c in cells[1:]] == ranked
        assert {c[0]: c[2] for c in cells[1:]} == {f: pyfmt(values[f]) for f in adult.features}
        assert {c[0]: c[1] for c in cells[1:]} == {f: pyfmt(test.at[row_id, f]) for f in adult.features}


# --- the formatter, against Python's .4g ------------------------------------------------------------

NOT_TIES = [1e-05, 0.000123456, 12345.678, -0.5, 2 / 3, 0.1 + 0.2, 0.99995, -1234.5678e-9, 0.03125]
TIES = [29 / 32, 1 / 64, 13 / 32]  # e.g. 29 of a cohort's 32 rows right: 0.90625 -> "0.9062"
# Filter values (tree thresholds) in the cohorts table, against dashboard._filter_text's 6 digits.
FILTER_NOISE = [1162.0000000000002, 12.500000000000002, 0.30000000000000004, -33.50000000000001, 99999.50000000001]
FILTER_LARGE_SMALL = [1234567.5, 0.0000123456]


def _numbers_filter(values: list[float]) -> dict[str, Any]:
    return {"and": [{"column": "x", "op": "<=", "value": v} for v in values]}


@pytest.fixture(scope="module")
def formatter_page(adult, tmp_path_factory) -> Path:
    """The Adult page with two views whose metrics are set to awkward numbers."""
    doc = json.loads(json.dumps(adult.doc))
    views = doc["cohort_views"][:2]
    names = doc["model_overview"]["metric_names"]
    for view, values, numbers in zip(views, (NOT_TIES, TIES), (FILTER_NOISE, FILTER_LARGE_SMALL)):
        view["metrics"].update(dict(zip(names, values)))
        view["filter"] = _numbers_filter(numbers)
    doc["cohort_views"] = views
    path = tmp_path_factory.mktemp("formatter") / A.DASHBOARD_HTML_FILE
    path.write_text(render_dashboard(doc, []), encoding="utf-8")
    return path


def _shown_values(dash: Dashboard, view_index: int, n: int) -> list[str]:
    dash.page.select_option("#cohort", value=str(view_index))
    dash.settle(f"selecting view {view_index}")
    metrics = dash.metrics()
    return [metrics[m][0] for m in list(metrics)[2 : 2 + n]]


def test_numbers_are_shown_like_python_4g(formatter_page, open_page):
    dash = open_page(formatter_page)
    assert _shown_values(dash, 0, len(NOT_TIES)) == [f"{v:.4g}" for v in NOT_TIES]


def test_halfway_numbers_are_shown_like_python_4g(formatter_page, open_page):
    dash = open_page(formatter_page)
    assert _shown_values(dash, 1, len(TIES)) == [f"{v:.4g}" for v in TIES]


def _filter_shown(dash: Dashboard, view_index: int) -> str:
    cells = dash.table("#cohorts table")
    return cells[1 + view_index][3]


def test_filter_numbers_are_shown_like_python_6g(formatter_page, open_page):
    dash = open_page(formatter_page)
    assert (
        _filter_shown(dash, 0)
        == _filter_text(_numbers_filter(FILTER_NOISE))
        == ("x <= 1162 and x <= 12.5 and x <= 0.3 and x <= -33.5 and x <= 99999.5")
    )


def test_large_and_small_filter_numbers_are_shown_like_python_6g(formatter_page, open_page):
    dash = open_page(formatter_page)
    assert _filter_shown(dash, 1) == _filter_text(_numbers_filter(FILTER_LARGE_SMALL))


# --- 9: hostile strings -----------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
SVG = '"><svg onload=alert(1)>'
AMP = "&amp;"
BOLD = "<b>bold</b>"
TARGET, YES = "<i>label</i>", "<u>yes</u>"
HOSTILE = [SCRIPT, IMG, SVG, AMP, BOLD, TARGET, YES]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, Path, dict[str, Any]]:
    """Column names, category values, a cohort name, the target and a class made of markup.

    Columns: SCRIPT (categorical, values IMG, SVG, AMP, "plain"), IMG (numeric), SVG
    (categorical, values SCRIPT, "&lt;b&gt;", "ok"), AMP (numeric). Cohort BOLD: SCRIPT == IMG;
    sensitive feature SCRIPT.
    """
    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    n = 400
    first = rng.choice([IMG, SVG, AMP, "plain"], n)
    number = rng.normal(size=n)
    logit = 1.5 * number + np.where(first == IMG, 1.0, -0.5)
    data = pd.DataFrame(
        {
            SCRIPT: first,
            SVG: rng.choice([SCRIPT, "&lt;b&gt;", "ok"], n),
            IMG: number,
            AMP: rng.integers(0, 5, n).astype(float),
            TARGET: np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), YES, "no"),
        }
    )
    train, test = data.iloc[:250].reset_index(drop=True), data.iloc[250:].reset_index(drop=True)
    model = encoded_model([SCRIPT, SVG], [IMG, AMP], LogisticRegression())
    model.fit(train.drop(columns=TARGET), train[TARGET])
    case = write_case(
        root / "case",
        model,
        train,
        test,
        target=TARGET,
        task_type="binary_classification",
        sensitive=[SCRIPT],
        positive_label=YES,
    )
    constructor = case.construct(
        root / "constructor", cohorts=[{"name": BOLD, "filter": {"column": SCRIPT, "op": "==", "value": IMG}}]
    )
    run_error_analysis(
        constructor,
        root / "error_analysis",
        options=ErrorAnalysisOptions(heatmap_features=[SVG, IMG], min_child_samples=5),
    )  # the tree may split on every column
    run_gather(constructor, [root / "error_analysis"], root / "dashboard")
    doc = json.loads((root / "dashboard" / A.INSIGHTS_JSON_FILE).read_text())
    return constructor, root / "dashboard" / A.DASHBOARD_HTML_FILE, doc


def _no_markup_from_data(dash: Dashboard, after: str) -> None:
    page = dash.page
    assert not dash.dialogs, after
    scripts = page.eval_on_selector_all("script", "ss => ss.map(s => [s.id, s.type, s.src, s.parentElement.tagName])")
    assert scripts == [["rai-data", "application/json", "", "BODY"], ["", "", "", "BODY"], ["", "", "", "BODY"]], after
    for tag in ("img", "b", "i", "u", "iframe", "object", "embed"):
        assert page.locator(tag).count() == 0, (tag, after)
    handlers = page.evaluate("""() => [...document.querySelectorAll('*')].flatMap(e =>
        [...e.attributes].filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name))""")
    assert handlers == [], after


def test_hostile_strings_are_shown_not_run(hostile, open_page):
    _, html, doc = hostile
    dash = open_page(html)
    page = dash.page
    _no_markup_from_data(dash, "loading")
    assert TARGET in page.title() and TARGET in page.inner_text("h1")
    views = doc["cohort_views"]
    assert [v["name"] for v in views[:2]] == ["All data", BOLD]
    assert f"{SCRIPT} = {IMG}" in [v["name"] for v in views]
    assert views[1]["count"] == next(v for v in views if v["name"] == f"{SCRIPT} = {IMG}")["count"] > 0
    # Every view, the comparison of all, the whole tree.
    for view in views:
        dash.select_view(view)
        assert dash.metrics()["Metric"] == [view["name"]]
        _no_markup_from_data(dash, f"selecting {view['name']!r}")
    dash.select_view(views[1])
    dash.compare(views[2:6])
    assert dash.metrics()["Metric"] == [v["name"] for v in [views[1], *views[2:6]]]
    dash.open_whole_tree()
    _no_markup_from_data(dash, "comparing and opening the tree")
    text = page.inner_text("body")
    for s in HOSTILE:
        assert s in text, s
    assert f'{SCRIPT} == "{IMG}"' in text  # the cohort's filter, in the cohorts table
    assert page.locator("#fairness h3").first.inner_text() == SCRIPT
    assert "&lt;b&gt;" in text and "<b>" not in page.inner_html("#app").replace("&lt;b&gt;", "")


def test_error_analysis_takes_any_column_name(hostile, tmp_path):
    constructor, _, _ = hostile
    run_error_analysis(constructor, tmp_path / "error_analysis")  # every feature, SVG's column too
    result = json.loads((tmp_path / "error_analysis" / A.INSIGHT_RESULT_FILE).read_text())
    assert SVG in result["tree"]["features"]
