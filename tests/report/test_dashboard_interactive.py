"""dashboard.html driven in a real headless Chromium (Playwright): every interaction shows the bundle's figures.

The subject is a full Adult bundle (constructor with cohorts, error analysis, explanation,
counterfactuals, causal, gather), built once for the module; the page carries a seeded sample
of the test rows (DATA.table). Each test opens the page from its file:// URL in a fresh
browser context that records console errors, page errors, dialogs and every request; after
loading and after every interaction the page must have logged no error and asked for nothing
but file:, data:, blob: or about: URLs.

What the page shows is compared with what the bundle's files say, read here with pandas and
scikit-learn: insights.json (``cohort_views``, the error tree and heatmap), tables/
predictions.parquet (features, y_true, y_pred, error, probabilities per test row), the
explanation's local_importance.parquet and counterfactuals.parquet. DATA.table's row_id only
says WHICH rows the page carries; figures the page computes on them are recomputed here from
the parquet files for those rows, cohorts' rows with ``core.cohorts.filter_mask``. Numbers
read as Python's ``f"{v:.4g}"`` (filter values ``.6g``). A synthetic data set whose column
names, values, cohort name, target and class are HTML/script strings checks that user text is
shown, never run.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime that threadpool_limits below limits)
import sklearn.metrics as skm
from playwright.sync_api import Browser, Locator, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sklearn.linear_model import LogisticRegression
from statsmodels.stats.proportion import proportion_confint
from threadpoolctl import threadpool_limits

from rai_audit.core import artifacts as A
from rai_audit.core.cohorts import ERROR, all_of, cohort_masks, filter_mask, load_cohorts
from rai_audit.report.dashboard import _filter_text, _fmt
from rai_audit.steps.causal import CausalOptions, run_causal
from rai_audit.steps.counterfactual import CounterfactualOptions, run_counterfactual
from rai_audit.steps.error_analysis import ErrorAnalysisOptions, run_error_analysis
from rai_audit.steps.explainer import ExplainerOptions, run_explainer
from rai_audit.steps.gather import run_gather
from support import ADULT_COHORTS, REPO, Case, encoded_model, page_data, write_case

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
AXE = REPO / "dashboard" / "node_modules" / "axe-core" / "axe.min.js"
TEMPLATE = REPO / "components" / "rai_audit" / "report" / "templates" / "dashboard.html.j2"
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
POSITIVE = ">50K"
ADULT_SAMPLE = 60
DASHBOARD_ROWS = 3000  # fewer than the 16,281 test rows: the page carries a sample
MIN_GROUP_SIZE = 50  # flags a fairness group of Adult's (46 women of race Other)
TABS = [
    "overview",
    "error-analysis",
    "cohorts",
    "explorer",
    "importance",
    "counterfactuals",
    "causal",
    "fairness",
    "data",
    "what-if",  # on a static page: how to go live
]

# axe-core's serious and critical violations on the page as it is shown.
AXE_SERIOUS = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))"""
READY = "() => document.body.dataset.ready === '1'"
# Every shown chart box holds an SVG drawn by Vega, or says it has no data.
CHARTS_DRAWN = """() => [...document.querySelectorAll('.chart')].filter(c => !c.closest('[hidden]'))
    .every(c => c.querySelector('svg') || c.querySelector('p.muted'))"""
# The cells' text of a table (the element itself or the first table inside it).
TABLE_CELLS = """e => { const t = e.tagName === 'TABLE' ? e : e.querySelector('table');
    return t ? [...t.rows].map(r => [...r.cells].map(c => c.textContent.trim())) : null; }"""
TABLE_CHANGED = """e => { const t = e.tagName === 'TABLE' ? e : e.querySelector('table');
    return [...t.rows].map(r => [...r.cells].map(c => c.classList.contains('changed'))); }"""


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
    """A value as the page must show it: Python's ``f"{v:.4g}"`` for fractional numbers, whole
    numbers (39, 123456.0: a feature's value, a count) and text as they are, n/a for missing."""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):  # fractional: as the PDF, 4 significant digits (12,280 rather than 1.228e+04)
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else _fmt(value)
    return str(value)


def count_texts(n: int) -> set[str]:
    """The ways a row count may be written: 16281, 16,281 (format.js's count) or fmt's .4g."""
    return {str(n), f"{n:,}", f"{float(n):.4g}"}


def number(text: str) -> float:
    return float(text.replace(",", ""))


def missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


# Metric names in insights.json -> the labels a metrics table may give them.
METRIC_LABELS = {
    "accuracy_score": ("accuracy",),
    "error_rate": ("error rate",),
    "balanced_accuracy_score": ("balanced accuracy",),
    "precision_score": ("precision",),
    "recall_score": ("recall",),
    "f1_score": ("f1",),
    "selection_rate": ("selection rate",),
    "false_positive_rate": ("false positive rate", "fpr"),
    "false_negative_rate": ("false negative rate", "fnr"),
    "roc_auc_score": ("roc auc", "auc"),
    "log_loss": ("log loss",),
    "rows": ("count",),
}
PROBA_METRICS = ("roc_auc_score", "log_loss")
LABEL_METRIC = {label: m for m, labels in METRIC_LABELS.items() for label in (m, m.replace("_", " "), *labels)}


def metric_key(label: str) -> str:
    """The insights.json name of a metrics table's row label (other labels as they are)."""
    key = label.strip().lower()
    return LABEL_METRIC.get(key, LABEL_METRIC.get(key.replace("_", " "), key))


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray, positive: Any, proba: np.ndarray | None = None):
    """scikit-learn's figures for a binary classifier's rows, undefined ones as NaN."""
    actual, predicted = np.asarray(y_true) == positive, np.asarray(y_pred) == positive
    out = {
        "accuracy_score": skm.accuracy_score(actual, predicted),
        "error_rate": 1 - skm.accuracy_score(actual, predicted),
        "precision_score": skm.precision_score(actual, predicted, zero_division=np.nan),
        "recall_score": skm.recall_score(actual, predicted, zero_division=np.nan),
        "f1_score": skm.f1_score(actual, predicted, zero_division=np.nan),
        "selection_rate": predicted.mean() if len(predicted) else np.nan,
        "false_positive_rate": (predicted & ~actual).sum() / (~actual).sum() if (~actual).any() else np.nan,
        "false_negative_rate": (~predicted & actual).sum() / actual.sum() if actual.any() else np.nan,
    }
    if len(set(actual)) == 2:
        out["balanced_accuracy_score"] = skm.balanced_accuracy_score(actual, predicted)
        if proba is not None:
            out["roc_auc_score"] = skm.roc_auc_score(actual, proba)
            out["log_loss"] = skm.log_loss(actual, proba, labels=[False, True])
    return {k: float(v) for k, v in out.items()}


class Dashboard:
    """One page of dashboard.html in a fresh browser context, with everything it reports."""

    def __init__(self, browser: Browser, html: Path, width: int = 1280):
        self.context = browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
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
        try:
            self.page.wait_for_function(READY, timeout=20_000)
        except PlaywrightTimeout:
            pytest.fail(f"the page never said it is ready (body data-ready=1); errors: {self.errors}")
        self.settle("loading the page")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def settle(self, after: str) -> None:
        """Wait for every shown chart to be drawn; then no error, no dialog, no network request."""
        try:
            self.page.wait_for_function(CHARTS_DRAWN, timeout=20_000)
        except PlaywrightTimeout:
            pytest.fail(f"charts not drawn after {after}; errors: {self.errors}")
        assert not self.errors, f"errors after {after}: {self.errors}"
        assert not self.dialogs, f"dialogs after {after}: {self.dialogs}"
        remote = [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]
        assert not remote, f"network requests after {after}: {remote}"

    # interactions
    def tab(self, tab_id: str) -> Locator:
        """Show a tab (by its id, e.g. "overview"); returns its panel."""
        self.page.click(f"#tab-{tab_id}")
        panel = self.page.locator(f"#panel-{tab_id}")
        panel.wait_for(state="visible", timeout=10_000)
        self.settle(f"showing the tab {tab_id}")
        return panel

    def cohort_options(self) -> list[tuple[str, str]]:
        """The cohort selector's options: (value, text)."""
        return [
            (v, t.strip())
            for v, t in self.page.eval_on_selector_all("#cohort option", "os => os.map(o => [o.value, o.textContent])")
        ]

    def option_of(self, name: str, selector: str = "#cohort") -> str:
        """The value of the selector's option for the cohort named ``name`` (its text is the
        name, maybe followed by a count)."""
        options = self.page.eval_on_selector_all(
            f"{selector} option", "os => os.map(o => [o.value, o.textContent.trim()])"
        )
        # "Under 30", "cohort: Under 30 (4,321 rows)", "group: sex = Female (...)"
        found = [v for v, t in options if re.fullmatch(r"(?:[a-z ]+: )?" + re.escape(name) + r"(?: \(.*\))?", t)]
        assert len(found) == 1, (name, options)
        return found[0]

    def select_cohort(self, name: str) -> None:
        self.page.select_option("#cohort", value=self.option_of(name))
        self.settle(f"selecting the cohort {name!r}")
        assert self.active_name() == name

    def compare(self, names: list[str]) -> None:
        self.page.select_option("#compare", value=[self.option_of(n, "#compare") for n in names])
        self.settle(f"comparing with {names}")

    def pick_row(self, panel: Locator, row_id: int) -> None:
        panel.locator("select[name=row]").select_option(value=str(row_id))
        self.settle(f"choosing row {row_id}")

    def choose(self, panel: Locator, name: str, value: str) -> None:
        panel.locator(f"select[name={name}]").select_option(value)
        self.settle(f"choosing {name} = {value}")

    # reading
    def active_name(self) -> str:
        return self.page.inner_text("[data-testid=active-cohort]").strip()

    def table(self, where: Locator | str) -> list[list[str]]:
        locator = self.page.locator(where) if isinstance(where, str) else where
        cells = locator.first.evaluate(TABLE_CELLS)
        assert cells is not None, f"no table in {where}"
        return cells

    def metrics(self) -> tuple[list[str], dict[str, list[str]]]:
        """The overview's metrics table: its column headers (after "Metric") and metric -> cells."""
        cells = self.table("[data-testid=metrics-table]")
        header, rows = cells[0], cells[1:]
        return header[1:], {metric_key(r[0]): r[1:] for r in rows}

    def confusion_matrices(self) -> list[list[list[int]]]:
        """The overview's confusion matrices (one per compared cohort): each cell's count,
        rows the true class ("1,234 (56%)" -> 1234)."""
        out = []
        for box in self.page.locator("[data-testid=confusion]").all():
            cells = self.table(box)
            out.append([[int(c.split(" (")[0].replace(",", "")) for c in row[1:-1]] for row in cells[1:]])
        return out

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

    def opener(html: Path, width: int = 1280) -> Dashboard:
        pages.append(Dashboard(browser, html, width))
        return pages[-1]

    yield opener
    for page in pages:
        page.close()


# --- the Adult bundle ---------------------------------------------------------------------------


@dataclass
class Bundle:
    html: Path
    doc: dict[str, Any]
    data: dict[str, Any]  # the page's embedded DATA
    test: pd.DataFrame  # the user's test file
    pred: pd.DataFrame  # tables/predictions.parquet: features, y_true, y_pred, error, proba_*, row_id
    local: pd.DataFrame  # local_importance.parquet, the positive class's rows, by row_id
    cfs: pd.DataFrame  # counterfactuals.parquet (the valid counterfactuals)

    def view(self, name: str) -> dict[str, Any]:
        (view,) = [v for v in self.doc["cohort_views"] if v["name"] == name]
        return view

    @property
    def features(self) -> list[str]:
        return self.doc["data"]["features"]

    @cached_property
    def rows(self) -> np.ndarray:
        """The test rows the page carries (DATA.table.row_id)."""
        return np.asarray(self.data["table"]["row_id"])

    @cached_property
    def carried(self) -> pd.DataFrame:
        """predictions.parquet's carried rows, in the page's order."""
        return self.pred.iloc[self.rows]

    @cached_property
    def proba(self) -> str:
        return A.proba_column(self.doc["classes"].index(POSITIVE))

    def view_filter(self, view: dict[str, Any]) -> dict[str, Any] | None:
        """A cohort view's filter; a sensitive group's ("sex = Female", kept without one in
        insights.json): its feature equal to its value."""
        if view["kind"] != "group":
            return view["filter"]
        feature = next(f for f in self.doc["data"]["sensitive_features"] if view["name"].startswith(f + " = "))
        return {"column": feature, "op": "==", "value": view["name"][len(feature) + 3 :]}

    @cached_property
    def counterfactual_changes(self) -> dict[int, list[dict[str, Any]]]:
        """Per row of counterfactuals.parquet, each counterfactual's changed features -> values."""
        return {
            int(r): [_changed(self, int(r), cf) for _, cf in mine.iterrows()]
            for r, mine in self.cfs.groupby(A.ROW_ID, sort=True)
        }

    @cached_property
    def rows_with_counterfactuals(self) -> set[int]:
        """Rows with a counterfactual that changes something (one that changes nothing is none)."""
        return {r for r, changes in self.counterfactual_changes.items() if any(changes)}

    def mask(self, filter_: dict[str, Any] | None) -> np.ndarray:
        """A filter's rows among the carried ones (core.cohorts on the whole test set)."""
        return filter_mask(filter_, self.pred)[self.rows]

    def full_mask(self, filter_: dict[str, Any] | None) -> np.ndarray:
        return filter_mask(filter_, self.pred)


@pytest.fixture(scope="module")
def adult(adult_case: Case, tmp_path_factory) -> Bundle:
    root = tmp_path_factory.mktemp("dashboard_interactive")
    constructor = adult_case.construct(
        root / "constructor",
        sample_size=ADULT_SAMPLE,
        cohorts=ADULT_COHORTS,
        dashboard_rows=DASHBOARD_ROWS,
        min_group_size=MIN_GROUP_SIZE,
    )
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
    local = pd.read_parquet(bundle / A.INSIGHT_COPIES_DIR / "explanation" / "local_importance.parquet")
    pred = pd.read_parquet(bundle / A.TABLES_DIR / "predictions.parquet")
    assert (pred[A.ROW_ID].to_numpy() == np.arange(len(pred))).all()
    return Bundle(
        html=bundle / A.DASHBOARD_HTML_FILE,
        doc=json.loads((bundle / A.INSIGHTS_JSON_FILE).read_text()),
        data=page_data(bundle / A.DASHBOARD_HTML_FILE),
        test=pd.read_parquet(adult_case.test),
        pred=pred,
        local=local[local["class"].astype(str) == POSITIVE].set_index(A.ROW_ID).sort_index(),
        cfs=pd.read_parquet(bundle / A.INSIGHT_COPIES_DIR / "counterfactual" / "counterfactuals.parquet"),
    )


def test_bundle_holds_every_insight_and_a_sample_of_rows(adult):
    """The subject is what the tests below need: all insights, a carried sample holding the
    explained rows, valid counterfactuals."""
    assert sorted(adult.doc["insights"]) == ["causal", "counterfactual", "error_analysis", "explanation"]
    assert adult.doc["data"]["sample"]["size"] == ADULT_SAMPLE
    assert adult.cfs[A.ROW_ID].nunique() > 10
    kinds = {v["kind"] for v in adult.doc["cohort_views"]}
    assert kinds == {"all", "cohort", "group", "error_leaf"}
    table = adult.data["table"]
    assert table["n"] == len(adult.rows) == DASHBOARD_ROWS < table["of"] == len(adult.pred) and table["sampled"]
    assert (np.diff(adult.rows) > 0).all()
    assert set(adult.local.index) <= set(adult.rows)  # every explained row is carried
    assert table["y_pred"] == adult.carried[A.Y_PRED].tolist()
    np.testing.assert_allclose(table["probability"], adult.carried[adult.proba], rtol=1e-12)


# --- loading, tabs, charts --------------------------------------------------------------------------


def test_loads_offline_without_errors_and_every_tab_draws(adult, open_page):
    dash = open_page(adult.html)
    page = dash.page
    assert dash.requests[0] == adult.html.as_uri()
    tabs = page.eval_on_selector_all(
        "[role=tablist] [role=tab]", "ts => ts.map(t => [t.id, t.getAttribute('aria-controls')])"
    )
    assert tabs == [[f"tab-{t}", f"panel-{t}"] for t in TABS]
    assert page.get_attribute("#tab-overview", "aria-selected") == "true"
    drawn = 0
    for tab in TABS:
        panel = dash.tab(tab)
        assert page.get_attribute(f"#tab-{tab}", "aria-selected") == "true"
        assert page.eval_on_selector_all("[role=tab][aria-selected=true]", "ts => ts.map(t => t.id)") == [f"tab-{tab}"]
        assert page.locator("[role=tabpanel]:visible").count() == 1
        assert panel.get_attribute("role") == "tabpanel"
        drawn += panel.locator(".chart svg").count()
    assert drawn > 10
    # The overview's confusion matrix of all rows.
    dash.tab("overview")
    assert dash.confusion_matrices() == [adult.view("All data")["metrics"]["confusion_matrix"]["matrix"]]


def test_importance_says_how_the_model_was_explained(adult, open_page):
    """The demo's model gets the mimic: the page names it in words, gives its fidelity and the
    train rows its surrogate learned from, and no background (the mimic uses none)."""
    ex = adult.doc["explanation"]
    assert ex["method"] == "mimic" and ex["background"] is None
    dash = open_page(adult.html)
    rows = dash.table(dash.tab("importance").locator("[data-testid=explanation-method]"))
    assert rows[1:] == [
        ["Method", "mimic (LightGBM surrogate on the raw features)"],
        ["Model explained", "HistGradientBoostingClassifier"],
        ["Fidelity", f"the mimic's accuracy against the model's predictions: {pyfmt(ex['fidelity']['value'])}"],
        ["Surrogate trained on", f"{ex['surrogate_rows']['size']:,} train rows (seed 0)"],
        ["Rows explained", f"{ex['n_rows']:,} (sample of the test rows)"],
    ]
    assert ex["surrogate_rows"]["size"] == min(5000, adult.doc["data"]["n_train"])


# --- cohort switching: full-data figures of the bundle's cohorts -------------------------------------


def _check_full_data_metrics(adult: Bundle, dash: Dashboard, names: list[str]) -> None:
    """The metrics table shows these bundle cohorts' full-data figures (insights.json), which
    are pandas' / scikit-learn's on their rows of the whole test set."""
    header, rows = dash.metrics()
    assert len(header) == len(names), header
    for column, name in enumerate(names):
        view = adult.view(name)
        assert header[column].startswith(name), (header, name)
        assert not re.search(r"sampled|carried", header[column]), header[column]
        for m in adult.doc["model_overview"]["metric_names"]:
            assert rows[m][column] == pyfmt(view["metrics"][m]), (name, m)
        mask = adult.full_mask(adult.view_filter(view))
        assert view["count"] == int(mask.sum())
        if view["count"]:
            rows_of = adult.pred[mask]
            expected = binary_metrics(rows_of[A.Y_TRUE], rows_of[A.Y_PRED], POSITIVE, rows_of[adult.proba])
            for m in ("accuracy_score", "precision_score", "recall_score", "selection_rate"):
                assert view["metrics"][m] == pytest.approx(expected[m], nan_ok=True), (name, m)


def test_cohort_switch_shows_that_cohorts_full_data_metrics(adult, open_page):
    dash = open_page(adult.html)
    assert dash.active_name() == "All data"
    _check_full_data_metrics(adult, dash, ["All data"])
    worst = adult.doc["error_analysis"]["cohort_errors"]["worst_leaves"][0]
    overall = adult.view("All data")["metrics"]["accuracy_score"]
    for name in ("Under 30", "sex = Female", worst["name"]):
        view = adult.view(name)
        dash.select_cohort(name)
        assert dash.page.inner_text("[data-testid=active-filter]").strip() == _filter_text(adult.view_filter(view))
        assert dash.page.inner_text("[data-testid=active-count]").strip().split()[0] in count_texts(view["count"])
        _check_full_data_metrics(adult, dash, [name])
        assert view["metrics"]["accuracy_score"] != overall
    node = adult.doc["error_analysis"]["tree"]["nodes"][worst["node"]]
    assert node["leaf"] and adult.view(worst["name"])["count"] == node["count"] == worst["count"]


def test_every_cohort_can_be_shown(adult, open_page):
    """Each option of the selector draws without error; bundle cohorts show their own figures."""
    dash = open_page(adult.html)
    options = dash.cohort_options()
    names = [v["name"] for v in adult.doc["cohort_views"]]
    assert len(options) >= len(names)
    for value, text in reversed(options):
        dash.page.select_option("#cohort", value=value)
        dash.settle(f"selecting the cohort {text!r}")
        name = dash.active_name()
        assert name in text
        header, _ = dash.metrics()
        assert header[0].startswith(name)
    for name in names:
        assert dash.option_of(name)


def test_empty_cohort_reads_n_a(adult, open_page):
    dash = open_page(adult.html)
    nobody = adult.view("Nobody")
    assert nobody["count"] == 0 and nobody["metrics"]["accuracy_score"] is None
    dash.select_cohort("Nobody")
    _, rows = dash.metrics()
    assert rows["accuracy_score"] == ["n/a"]
    for tab in TABS:  # every view copes with no rows
        dash.tab(tab)


def test_compare_shows_a_column_and_a_confusion_matrix_per_cohort(adult, open_page):
    dash = open_page(adult.html)
    dash.compare(["Under 30", "sex = Female"])
    _check_full_data_metrics(adult, dash, ["All data", "Under 30", "sex = Female"])
    assert dash.confusion_matrices() == [
        adult.view(name)["metrics"]["confusion_matrix"]["matrix"] for name in ("All data", "Under 30", "sex = Female")
    ]
    # A compared cohort chosen as the active one comes first, once.
    dash.select_cohort("sex = Female")
    _check_full_data_metrics(adult, dash, ["sex = Female", "Under 30"])
    dash.compare([])
    _check_full_data_metrics(adult, dash, ["sex = Female"])


# --- the error tree: a node becomes the page's cohort -------------------------------------------------


def _pick_node(adult: Bundle) -> dict[str, Any]:
    """A non-root node at depth 2 or more (so its filter is a conjunction) with many carried
    rows, several explained ones and not all the rows: the most explained rows first."""
    nodes = adult.doc["error_analysis"]["tree"]["nodes"]
    explained = np.isin(adult.rows, adult.local.index)

    def score(node):
        mask = adult.mask(node["filter"])
        return (int((mask & explained).sum()), int(mask.sum()))

    deep = [n for n in nodes if n["depth"] >= 2 and score(n)[0] >= 5 and score(n)[1] >= 50]
    assert deep, "no error tree node with explained carried rows"
    return max(deep, key=score)


def _tree_item(dash: Dashboard, node_id: int) -> Locator:
    return dash.page.locator(f"[data-testid=error-tree] [role=treeitem][data-node-id='{node_id}']")


def _show_node(dash: Dashboard, nodes: list[dict[str, Any]], node_id: int) -> Locator:
    """The tree item of a node, its collapsed ancestors opened with the keyboard (ArrowRight)."""
    path = []
    parent = nodes[node_id]["parent"]
    while parent is not None:
        path.insert(0, parent)
        parent = nodes[parent]["parent"]
    for ancestor in path:
        item = _tree_item(dash, ancestor)
        if item.get_attribute("aria-expanded") == "false":
            item.focus()
            item.press("ArrowRight")
            assert item.get_attribute("aria-expanded") == "true"
    return _tree_item(dash, node_id)


def _rows_offered(panel: Locator) -> list[int]:
    """The row_ids a panel's row picker offers."""
    values = panel.locator("select[name=row] option").evaluate_all("os => os.map(o => o.value)")
    return [int(v) for v in values if v != ""]


def _check_cohort_views(adult: Bundle, dash: Dashboard, filter_: dict[str, Any], full_count: int | None) -> None:
    """The active cohort (rows ``filter_``) in three other views, against pandas on its carried rows:
    the overview's metrics, the importance table, the data explorer's aggregates; and the row
    pickers offer its rows."""
    mask = adult.mask(filter_)
    rows_of = adult.carried[mask]
    n = int(mask.sum())
    assert n > 0
    # Overview: full-data figures where the page knows them (header without "sampled"), else the carried rows'.
    panel = dash.tab("overview")
    header, metrics = dash.metrics()
    if re.search(r"sampled|carried", header[0]):
        expected = binary_metrics(rows_of[A.Y_TRUE], rows_of[A.Y_PRED], POSITIVE, rows_of[adult.proba])
        assert panel.locator(".scope").count() > 0
    else:
        full = adult.pred[adult.full_mask(filter_)]
        assert full_count is None or len(full) == full_count
        expected = binary_metrics(full[A.Y_TRUE], full[A.Y_PRED], POSITIVE, full[adult.proba])
    # (Full-data figures from a node's confusion matrix have no probability metrics.)
    shown = {m: c[0] for m, c in metrics.items() if m in expected and not (m in PROBA_METRICS and c[0] == "n/a")}
    assert {"accuracy_score", "precision_score", "recall_score"} <= set(shown), metrics
    for m, text in shown.items():
        assert text == pyfmt(expected[m]), (m, header[0])

    # Importance: mean |contribution| over the cohort's explained carried rows.
    panel = dash.tab("importance")
    explained = adult.local.loc[adult.local.index.intersection(rows_of.index)]
    assert len(explained) > 0
    model_features = adult.data["table"]["local_importance"]["features"].keys()
    mean_abs = explained[list(model_features)].abs().mean()
    cells = dash.table(panel.locator("[data-testid=importance-table]"))
    importance = {r[0]: r[1] for r in cells[1:]}
    assert importance == {f: pyfmt(v) for f, v in mean_abs.items()}
    assert any(
        str(len(explained)) in s or f"{len(explained):,}" in s for s in panel.locator(".scope").all_inner_texts()
    )
    offered = set(_rows_offered(panel))
    assert set(explained.index) <= offered <= set(rows_of.index), "the row picker offers the cohort's rows"

    # Data explorer: bars of the error rate per sex, on the cohort's carried rows.
    panel = dash.tab("explorer")
    _check_bars(adult, dash, panel, "sex", rows_of)

    # Counterfactuals: the rows offered are the cohort's rows with counterfactuals.
    panel = dash.tab("counterfactuals")
    assert set(_rows_offered(panel)) == adult.rows_with_counterfactuals & set(rows_of.index)


def _check_bars(adult: Bundle, dash: Dashboard, panel: Locator, x: str, rows_of: pd.DataFrame) -> list[list[str]]:
    """Choose x, y=error, bars: the aggregates table is pandas' groupby of the rows (missing
    values as "(missing)"): rows and mean error per group."""
    dash.choose(panel, "plot", "bars")
    dash.choose(panel, "x", x)
    dash.choose(panel, "y", "error")
    cells = dash.table(panel.locator("[data-testid=explorer-aggregates]"))
    header, body = cells[0], cells[1:]
    rows_col = next(i for i, h in enumerate(header) if h.lower().startswith("rows"))
    mean_col = next(i for i, h in enumerate(header) if "mean" in h.lower())
    shown = {r[0]: (number(r[rows_col]), r[mean_col]) for r in body}
    groups = rows_of[x].astype(object).where(rows_of[x].notna(), "(missing)")
    error = rows_of[ERROR].astype(float)
    expected = {
        str(g): (float(len(e)), pyfmt(float(e.mean()))) for g, e in error.groupby(groups.to_numpy(), sort=False)
    }
    assert shown == expected
    return cells


def test_error_tree_node_becomes_the_active_cohort_of_every_view(adult, open_page):
    dash = open_page(adult.html)
    node = _pick_node(adult)
    assert node["count"] == int(adult.full_mask(node["filter"]).sum())  # the tree's count is the test rows'
    panel = dash.tab("error-analysis")
    tree = panel.locator("svg[data-testid=error-tree]")
    assert tree.get_attribute("role") == "tree"
    nodes = adult.doc["error_analysis"]["tree"]["nodes"]
    shown = [int(i) for i in tree.locator("[role=treeitem]").evaluate_all("es => es.map(e => e.dataset.nodeId)")]
    assert 0 in shown and set(shown) <= {n["id"] for n in nodes} and len(shown) == len(set(shown))
    item = _show_node(dash, nodes, node["id"])
    label = item.get_attribute("aria-label")  # the full path of conditions, the count
    assert _filter_text(node["filter"]) in label, label
    assert any(t in label for t in count_texts(node["count"])), label
    item.click()
    dash.settle(f"clicking error tree node {node['id']}")
    assert item.get_attribute("aria-selected") == "true"
    assert dash.page.inner_text("[data-testid=active-filter]").strip() == _filter_text(node["filter"])
    assert dash.page.inner_text("[data-testid=active-count]").strip().split()[0] in count_texts(node["count"])
    _check_cohort_views(adult, dash, node["filter"], node["count"])


def test_heatmap_cell_becomes_the_active_cohort(adult, open_page):
    dash = open_page(adult.html)
    heatmap = adult.doc["error_analysis"]["heatmap"]
    cell = max(heatmap["cells"], key=lambda c: c["count"] if c["count"] < adult.view("All data")["count"] / 2 else 0)
    bins = [next(b for b in axis["bins"] if b["label"] == label) for axis, label in zip(heatmap["axes"], cell["bins"])]
    filter_ = all_of([b["filter"] for b in bins])
    assert int(adult.full_mask(filter_).sum()) == cell["count"] > 0
    panel = dash.tab("error-analysis")
    grid = panel.locator("[data-testid=heatmap]")
    assert grid.get_attribute("role") == "grid"
    assert grid.locator("[role=gridcell]").count() == int(np.prod([len(a["bins"]) for a in heatmap["axes"]]))
    target = grid.locator(f"[role=gridcell][data-cell={json.dumps('|'.join(map(str, cell['bins'])))}]")
    assert pyfmt(cell["error_rate"]) in target.inner_text() or f"{cell['error_rate']:.1%}" in target.inner_text()
    assert any(t in target.inner_text() for t in count_texts(cell["count"]))
    target.click()
    dash.settle("clicking a heatmap cell")
    assert dash.page.inner_text("[data-testid=active-count]").strip().split()[0] in count_texts(cell["count"])
    # Its carried rows: the explorer's bars count them.
    rows_of = adult.carried[adult.mask(filter_)]
    panel = dash.tab("explorer")
    cells = _check_bars(adult, dash, panel, "sex", rows_of)
    assert sum(number(r[1]) for r in cells[1:]) == len(rows_of)


# --- the cohort editor ------------------------------------------------------------------------------

EDITED = "Older men or confident misses"
# (age >= 40 AND sex == "Male") OR (y_pred == ">50K" AND error == true)
EDITED_GROUPS = [[("age", ">=", "40"), ("sex", "==", "Male")], [("y_pred", "==", POSITIVE), ("error", "==", "true")]]


def _build_cohort(dash: Dashboard, editor: Locator, groups: list[list[tuple[str, str, str]]]) -> None:
    """Fill the editor's disjunctive form: one OR group per list, one AND condition per triple."""
    columns = editor.locator("select[name=column]")
    filled = 0
    for g, conditions in enumerate(groups):
        for c, (column, op, value) in enumerate(conditions):
            before = columns.count()
            if filled < before:  # an empty condition is there already (the form starts with one)
                pass
            elif c == 0 and g > 0:
                editor.locator("[data-testid=add-group]").click()
                if columns.count() == before:  # a new group starts empty
                    editor.locator("[data-testid=add-condition]").last.click()
            else:
                editor.locator("[data-testid=add-condition]").last.click()
            assert columns.count() == filled + 1, "a condition more"
            columns.nth(filled).select_option(column)
            editor.locator("select[name=op]").nth(filled).select_option(op)
            editor.locator("input[name=value]").nth(filled).fill(value)
            filled += 1
    dash.settle("filling the cohort editor")


def test_cohort_editor_builds_and_exports_an_and_or_cohort(adult, open_page, tmp_path):
    dash = open_page(adult.html)
    editor = dash.tab("cohorts").locator("[data-testid=cohort-editor]")
    _build_cohort(dash, editor, EDITED_GROUPS)
    carried = adult.carried
    mask = ((carried["age"] >= 40) & (carried["sex"] == "Male")) | (
        (carried[A.Y_PRED] == POSITIVE) & carried[ERROR].astype(bool)
    )
    mask = mask.to_numpy()
    count = editor.locator("[data-testid=editor-count]").inner_text()
    numbers = [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", count)]
    assert numbers[:2] == [int(mask.sum()), len(carried)], count
    assert 0 < mask.sum() < len(carried)
    editor.locator("input[name=cohort-name]").fill(EDITED)
    editor.locator("[data-testid=save-cohort]").click()
    dash.settle("saving the cohort")
    assert dash.active_name() == EDITED

    # Exported as core.cohorts reads it: the same rows, on the carried rows and on all test rows.
    text = editor.locator("[data-testid=cohort-json]").evaluate("e => e.value ?? e.textContent")
    with dash.page.expect_download() as download:
        editor.locator("[data-testid=download-cohort]").click()
    assert download.value.suggested_filename == "cohorts.json"
    saved = tmp_path / "cohorts.json"
    download.value.save_as(saved)
    dash.settle("downloading the cohort")
    for source in (json.loads(text), saved):
        cohorts = load_cohorts(source)
        (edited,) = [c for c in cohorts if c["name"] == EDITED]
        full = cohort_masks([edited], adult.pred)[EDITED]  # checks the values' types against the columns too
        assert (full[adult.rows] == mask).all()
        everywhere = ((adult.pred["age"] >= 40) & (adult.pred["sex"] == "Male")) | (
            (adult.pred[A.Y_PRED] == POSITIVE) & adult.pred[ERROR].astype(bool)
        )
        assert (full == everywhere.to_numpy()).all()
    assert json.loads(saved.read_text()) == json.loads(text)

    # The overview shows its metrics on its carried rows, saying so.
    panel = dash.tab("overview")
    header, metrics = dash.metrics()
    assert header[0].startswith(EDITED) and re.search(r"sampled|carried", header[0]), header
    rows_of = carried[mask]
    expected = binary_metrics(rows_of[A.Y_TRUE], rows_of[A.Y_PRED], POSITIVE, rows_of[adult.proba])
    shown = {m: cells[0] for m, cells in metrics.items() if m in expected and cells[0] != ""}
    assert {"accuracy_score", "precision_score", "recall_score"} <= set(shown), metrics
    for m, value in shown.items():
        assert value == pyfmt(expected[m]), m
    scopes = " ".join(panel.locator(".scope").all_inner_texts())
    assert f"{len(carried):,}" in scopes and f"{len(adult.pred):,}" in scopes, scopes


# --- the threshold slider ---------------------------------------------------------------------------


def test_threshold_slider_recomputes_metrics_on_the_carried_rows(adult, open_page):
    dash = open_page(adult.html)
    dash.select_cohort("Under 30")
    panel = dash.tab("overview")
    slider = panel.locator("input[type=range][data-testid=threshold]")
    assert slider.get_attribute("aria-label")
    assert slider.input_value() == "0.5"
    rows_of = adult.carried[adult.mask(adult.view("Under 30")["filter"])]
    actual = (rows_of[A.Y_TRUE] == POSITIVE).to_numpy()
    proba = rows_of[adult.proba].to_numpy()
    slider.focus()
    # Page keys move a range input by a tenth of its range, arrow keys by a step.
    for threshold, keys in ((0.3, ["PageDown", "PageDown"]), (0.7, ["PageUp"] * 3 + ["ArrowRight"] * 10)):
        for key in keys:
            slider.press(key)
        dash.settle(f"moving the threshold to {threshold}")
        assert float(slider.input_value()) == pytest.approx(threshold)
        assert number(panel.locator("[data-testid=threshold-value]").inner_text()) == pytest.approx(threshold)
        predicted = proba >= threshold
        expected = {
            "accuracy_score": skm.accuracy_score(actual, predicted),
            "precision_score": skm.precision_score(actual, predicted, zero_division=np.nan),
            "recall_score": skm.recall_score(actual, predicted, zero_division=np.nan),
            "f1_score": skm.f1_score(actual, predicted, zero_division=np.nan),
            "selection_rate": predicted.mean(),
            "false_positive_rate": (predicted & ~actual).sum() / (~actual).sum(),
            "false_negative_rate": (~predicted & actual).sum() / actual.sum(),
        }
        cells = dash.table(panel.locator("[data-testid=threshold-metrics]"))
        shown = {metric_key(r[0]): r[1] for r in cells[1:]}
        assert {m: shown.get(m) for m in expected} == {m: pyfmt(float(v)) for m, v in expected.items()}, threshold
        scopes = " ".join(panel.locator(".scope").all_inner_texts())
        assert f"{len(rows_of):,} sampled rows" in scopes, scopes


# --- the data explorer ------------------------------------------------------------------------------


def test_row_counts_in_tables_have_thousands_separators(adult, open_page):
    """Counts in the tables read as in the text beside them ("16,281"), where other whole
    numbers (a feature value such as a year) are shown as they are."""
    dash = open_page(adult.html)
    n_test, n_carried = len(adult.test), len(adult.carried)
    assert n_test > n_carried >= 1000  # both counts need a separator
    cells = dash.table(dash.tab("cohorts").locator("[data-testid=cohort-list]"))
    rows = {r[0]: r for r in cells[1:]}
    assert rows["All data"][2:4] == [f"{n_test:,}", f"{n_carried:,}"]
    for view in adult.doc["cohort_views"]:
        assert rows[view["name"]][2] == f"{view['count']:,}", view["name"]
    cells = dash.table(dash.tab("error-analysis").locator("[data-testid=cohort-errors]"))
    assert cells[1][:2] == ["All data", f"{n_test:,}"]
    dash.tab("overview")
    _, metrics = dash.metrics()
    assert metrics["rows"] == [f"{n_test:,}"]
    # The data analysis' balance per sex: rows, then true and predicted rows per class, by pandas.
    cells = dash.table(dash.tab("data").locator("[data-testid=sensitive-balance]"))
    classes = cells[0][2::2]
    assert classes == [f"true {c}" for c in ["<=50K", ">50K"]]
    expected = {
        str(group): [f"{len(rows):,}"]
        + [f"{(rows[column] == c).sum():,}" for c in ("<=50K", ">50K") for column in (A.Y_TRUE, A.Y_PRED)]
        for group, rows in adult.pred.groupby("sex")
    }
    assert {r[0]: r[1:] for r in cells[1:]} == expected


def test_data_explorer_aggregates(adult, open_page):
    dash = open_page(adult.html)
    panel = dash.tab("explorer")
    assert adult.carried["workclass"].isna().any()  # "(missing)" is one of its groups
    cells = _check_bars(adult, dash, panel, "workclass", adult.carried)
    assert "(missing)" in [r[0] for r in cells[1:]]
    assert panel.locator(".chart svg").count() >= 1
    # A numeric x in bars: bins whose counts add up to the carried rows.
    dash.choose(panel, "x", "age")
    cells = dash.table(panel.locator("[data-testid=explorer-aggregates]"))
    rows_col = next(i for i, h in enumerate(cells[0]) if h.lower().startswith("rows"))
    assert len(cells) - 1 > 3
    assert sum(number(r[rows_col]) for r in cells[1:]) == len(adult.carried)
    # A scatter draws; a box plot has aggregates again.
    dash.choose(panel, "plot", "scatter")
    assert panel.locator(".chart svg").count() >= 1
    dash.choose(panel, "color", "sex")


# --- keyboard ---------------------------------------------------------------------------------------


def test_keyboard_moves_between_tabs_and_selects_tree_nodes(adult, open_page):
    dash = open_page(adult.html)
    page = dash.page
    page.focus("#tab-overview")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-error-analysis"
    page.keyboard.press("Enter")
    dash.settle("activating the error analysis tab with the keyboard")
    assert page.get_attribute("#tab-error-analysis", "aria-selected") == "true"
    assert page.locator("#panel-error-analysis").is_visible()
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("document.activeElement.id") == "tab-overview"
    page.keyboard.press("ArrowRight")
    dash.settle("back to the error analysis tab")
    # The tree: one Tab stop (roving tabindex), arrow keys move between nodes, Enter selects.
    nodes = adult.doc["error_analysis"]["tree"]["nodes"]
    tree = page.locator("[data-testid=error-tree]")
    stops = tree.locator("[role=treeitem]").evaluate_all("es => es.map(e => e.getAttribute('tabindex'))")
    assert stops.count("0") == 1 and set(stops) == {"0", "-1"}, f"tabindex of the tree items: {stops}"
    root = _tree_item(dash, 0)
    root.focus()
    page.keyboard.press("ArrowDown")
    child = nodes[nodes[0]["children"][0]]
    assert page.evaluate("document.activeElement.dataset.nodeId") == str(child["id"])
    page.keyboard.press("Enter")
    dash.settle("selecting a tree node with Enter")
    item = _tree_item(dash, child["id"])
    assert item.get_attribute("aria-selected") == "true"
    assert page.inner_text("[data-testid=active-filter]").strip() == _filter_text(child["filter"])
    assert page.inner_text("[data-testid=active-count]").strip().split()[0] in count_texts(child["count"])
    # Tab leaves the tree.
    item.focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('role')") != "treeitem"


# --- accessibility and narrow screens ---------------------------------------------------------------


def test_no_serious_accessibility_violations_on_any_tab(adult, open_page):
    assert AXE.is_file(), f"{AXE} is missing: run `make dashboard` (npm ci in dashboard/)"
    dash = open_page(adult.html)
    dash.page.add_script_tag(path=str(AXE))
    found = {}
    for tab in TABS:
        dash.tab(tab)
        violations = dash.page.evaluate(AXE_SERIOUS)
        if violations:
            found[tab] = violations
    dash.settle("running axe")
    assert not found, json.dumps(found, indent=1)


def test_readable_at_800_px_without_horizontal_scrolling(adult, open_page):
    dash = open_page(adult.html, width=800)
    wide = {}
    for tab in TABS:
        dash.tab(tab)
        width = dash.page.evaluate("document.documentElement.scrollWidth")
        if width > 800:
            wide[tab] = width
    assert not wide, f"the body scrolls sideways at 800 px on {wide}"


# --- counterfactuals and local importance of a chosen row ---------------------------------------------


def _changed(adult: Bundle, row_id: int, cf: pd.Series) -> dict[str, Any]:
    """The features a counterfactual changes, with its values (missing equals missing, numbers within 1e-9)."""
    test = adult.test
    out = {}
    numeric = set(adult.features) - set(adult.doc["data"]["categorical_features"])
    for f in adult.features:
        before, after = test.at[row_id, f], cf[f]
        if missing(before) and missing(after):
            continue
        if missing(before) or missing(after):
            out[f] = after
        elif f in numeric and np.isclose(float(before), float(after), rtol=1e-12, atol=1e-9):
            continue
        elif f not in numeric and before == after:
            continue
        else:
            out[f] = after
    return out


def test_counterfactuals_of_a_chosen_row(adult, open_page):
    dash = open_page(adult.html)
    panel = dash.tab("counterfactuals")
    offered = _rows_offered(panel)
    assert set(offered) == adult.rows_with_counterfactuals & set(adult.rows)
    categorical = set(adult.doc["data"]["categorical_features"])
    changes = adult.counterfactual_changes
    chosen = [
        next(r for r in offered[1:] if any(set(c) & categorical for c in changes[r])),
        next(r for r in offered[1:] if any(set(c) - categorical for c in changes[r])),
        offered[-1],
    ]
    for n, row_id in enumerate(chosen):
        dash.pick_row(panel, row_id)
        if n == 0:  # every feature, not only those some counterfactual changes
            panel.locator("input[name=show-unchanged]").check()
            dash.settle("showing the unchanged features")
        table = panel.locator("[data-testid=counterfactuals]")
        cells, marked = dash.table(table), table.evaluate(TABLE_CHANGED)
        header = cells[0]
        predicted_col = next(i for i, h in enumerate(header) if "predict" in h.lower() or "outcome" in h.lower())
        columns = {f: i for i, h in enumerate(header) for f in adult.features if h in (f, f + " (held fixed)")}
        mine = [
            (cf, c) for (_, cf), c in zip(adult.cfs[adult.cfs[A.ROW_ID] == row_id].iterrows(), changes[row_id]) if c
        ]
        assert set().union(*(c for _, c in mine)) <= set(columns), header
        if n == 0:
            assert set(columns) == set(adult.features), header
        # The original row first, unmarked, with the model's prediction and the row's values.
        original, body = cells[1], cells[2:]
        assert len(body) == len(mine) > 0
        assert not any(marked[1])
        assert original[predicted_col] == pyfmt(adult.pred.at[row_id, A.Y_PRED])
        for f, i in columns.items():
            assert original[i] == pyfmt(adult.test.at[row_id, f]), (f, original[i])
        for k, ((cf, changed), row) in enumerate(zip(mine, body)):
            # A valid counterfactual's predicted outcome: the other class.
            assert row[predicted_col].endswith(pyfmt(cf["prediction"])), row[predicted_col]
            assert cf["prediction"] != adult.pred.at[row_id, A.Y_PRED]
            flagged = {f for f, i in columns.items() if marked[2 + k][i]}
            assert flagged == set(changed), (row_id, k)
            for f, i in columns.items():
                if f in changed:  # "from → to", the values of the test row and of counterfactuals.parquet
                    assert row[i] == f"{pyfmt(adult.test.at[row_id, f])} → {pyfmt(changed[f])}", (f, row[i])
                else:
                    assert row[i] == original[i], (f, row[i])


def test_chosen_row_survives_a_cohort_switch(adult, open_page):
    dash = open_page(adult.html)
    panel = dash.tab("counterfactuals")
    offered = _rows_offered(panel)
    row_id = next(r for r in offered[1:] if adult.test.at[r, "age"] < 30)
    dash.pick_row(panel, row_id)
    dash.select_cohort("Under 30")
    assert panel.locator("select[name=row]").input_value() == str(row_id)


def test_local_importance_of_a_chosen_row(adult, open_page):
    dash = open_page(adult.html)
    panel = dash.tab("importance")
    offered = _rows_offered(panel)
    assert set(adult.local.index) <= set(offered) <= set(adult.rows)
    explained = [r for r in offered if r in adult.local.index]
    model_features = list(adult.data["table"]["local_importance"]["features"])
    for row_id in (explained[0], explained[len(explained) // 2], explained[-1]):
        dash.pick_row(panel, row_id)
        cells = dash.table(panel.locator("[data-testid=local-importance]"))
        header = [h.lower() for h in cells[0]]
        contribution = next(i for i, h in enumerate(header) if "contribution" in h)
        value = next((i for i, h in enumerate(header) if h == "value"), None)
        shown = {r[0]: r[contribution] for r in cells[1:]}
        values = adult.local.loc[row_id, model_features].astype(float)
        assert shown == {f: pyfmt(v) for f, v in values.items()}
        if value is not None:
            for r in cells[1:]:
                v = adult.test.at[row_id, r[0]]
                assert r[value] == pyfmt(v) or (missing(v) and r[value] in ("", "n/a", "(missing)")), r


# --- fairness ----------------------------------------------------------------------------------------


def _wilson_text(k: int, n: int) -> str:
    """A 95% Wilson interval as the page writes it, from statsmodels (exactly 0 and 1 at the ends)."""
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return f"[{pyfmt(0.0 if k == 0 else float(low))}, {pyfmt(1.0 if k == n else float(high))}]"


def test_fairness_metrics_per_group_with_intervals_and_small_groups_flagged(adult, open_page):
    """Each sensitive feature and intersection: per group its rows, flag, metrics with intervals
    (scikit-learn and statsmodels on the group's test rows), the difference of the compared groups."""
    dash = open_page(adult.html)
    panel = dash.tab("fairness")
    entries = adult.doc["fairness"]
    assert [e["features"] for e in entries] == [["sex"], ["race"], ["sex", "race"]]
    tables = panel.locator("[data-testid=fairness-table]")
    assert tables.count() == len(entries)
    flagged = 0
    for entry, table in zip(entries, tables.all()):
        cells = dash.table(table)
        header, rows = cells[0], {r[0].removeprefix("⚠ "): r for r in cells[1:]}
        col = {metric_key(h): i for i, h in enumerate(header)}
        compared = []
        for group in entry["by_group"]:
            mask = np.logical_and.reduce([adult.pred[f] == v for f, v in group["group"].items()])
            of = adult.pred[mask]
            n = len(of)
            row = rows[group["label"]]
            assert row[col["rows"]] == f"{n:,}", group["label"]
            small = n < MIN_GROUP_SIZE
            assert bool(row[col["flag"]]) is small, (group["label"], row[col["flag"]])
            flagged += small
            actual, predicted = (of[A.Y_TRUE] == POSITIVE).to_numpy(), (of[A.Y_PRED] == POSITIVE).to_numpy()
            expected = binary_metrics(of[A.Y_TRUE], of[A.Y_PRED], POSITIVE)
            right, tp = int((actual == predicted).sum()), int((actual & predicted).sum())
            for m, k, d in (
                ("accuracy_score", right, n),
                ("selection_rate", int(predicted.sum()), n),
                ("recall_score", tp, int(actual.sum())),
                ("precision_score", tp, int(predicted.sum())),
            ):
                value, _, interval = row[col[m]].partition("[")
                assert value == pyfmt(expected[m]), (group["label"], m)
                assert ("[" + interval if interval else None) == (_wilson_text(k, d) if d else None), (group, m)
            if not small:
                compared.append(expected["accuracy_score"])
        difference = rows["difference (largest − smallest)"][col["accuracy_score"]]
        assert difference == pyfmt(max(compared) - min(compared)), entry["features"]
    assert flagged == 1
    # One chart compares the chosen metric across the groups.
    dash.choose(panel, "fairness-metric", "recall_score")
    assert panel.locator(".chart svg").count() >= 1


# --- the formatter, against Python's .4g and .6g -------------------------------------------------------

NOT_TIES = [1e-05, 0.000123456, 12345.678, -0.5, 2 / 3, 0.1 + 0.2, 0.99995, -1234.5678e-9, 0.03125]
TIES = [29 / 32, 1 / 64, 13 / 32]  # e.g. 29 of a cohort's 32 rows right: 0.90625 -> "0.9062"
# Filter values (tree thresholds), against dashboard._filter_text's 6 digits.
FILTER_NOISE = [1162.0000000000002, 12.500000000000002, 0.30000000000000004, -33.50000000000001, 99999.50000000001]
FILTER_LARGE_SMALL = [1234567.5, 0.0000123456]


def _numbers_filter(values: list[float]) -> dict[str, Any]:
    return {"and": [{"column": "age", "op": "<=", "value": v} for v in values]}


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element, as dashboard.py writes it."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


@pytest.fixture(scope="module")
def formatter_page(adult, tmp_path_factory) -> tuple[Path, list[str]]:
    """The Adult page with two cohorts whose metrics and filter numbers are set to awkward numbers."""
    data = json.loads(json.dumps(adult.data))
    views = [v for v in data["doc"]["cohort_views"] if v["kind"] != "all" and v["count"]][:2]
    names = data["doc"]["model_overview"]["metric_names"]
    for view, values, numbers in zip(views, (NOT_TIES, TIES), (FILTER_NOISE, FILTER_LARGE_SMALL)):
        view["metrics"].update(dict(zip(names, values)))
        view["filter"] = _numbers_filter(numbers)
    html = adult.html.read_text(encoding="utf-8")
    start = html.index('<script type="application/json" id="rai-data">')
    start = html.index(">", start) + 1
    end = html.index("</script>", start)
    path = tmp_path_factory.mktemp("formatter") / A.DASHBOARD_HTML_FILE
    path.write_text(html[:start] + _script_json(data) + html[end:], encoding="utf-8")
    return path, [v["name"] for v in views]


def _shown_values(dash: Dashboard, name: str, n: int) -> list[str]:
    dash.select_cohort(name)
    _, metrics = dash.metrics()
    names = list(METRIC_LABELS)[:n]
    return [metrics[m][0] for m in names]


def test_numbers_are_shown_like_the_pdf(formatter_page, open_page):
    html, names = formatter_page
    dash = open_page(html)
    assert _shown_values(dash, names[0], len(NOT_TIES)) == [pyfmt(v) for v in NOT_TIES]  # 12345.678: 12,350
    assert _shown_values(dash, names[1], len(TIES)) == [f"{v:.4g}" for v in TIES]


def test_filter_numbers_are_shown_like_python_6g(formatter_page, open_page):
    html, names = formatter_page
    dash = open_page(html)
    dash.select_cohort(names[0])
    assert (
        dash.page.inner_text("[data-testid=active-filter]").strip()
        == _filter_text(_numbers_filter(FILTER_NOISE))
        == "age <= 1162 and age <= 12.5 and age <= 0.3 and age <= -33.5 and age <= 99999.5"
    )
    dash.select_cohort(names[1])
    assert dash.page.inner_text("[data-testid=active-filter]").strip() == _filter_text(
        _numbers_filter(FILTER_LARGE_SMALL)
    )


# --- hostile strings --------------------------------------------------------------------------------

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
    number_ = rng.normal(size=n)
    logit = 1.5 * number_ + np.where(first == IMG, 1.0, -0.5)
    data = pd.DataFrame(
        {
            SCRIPT: first,
            SVG: rng.choice([SCRIPT, "&lt;b&gt;", "ok"], n),
            IMG: number_,
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
    scripts = page.eval_on_selector_all("script", "ss => ss.map(s => [s.id, s.type, s.src])")
    assert scripts[0] == ["rai-data", "application/json", ""], after
    assert len(scripts) == TEMPLATE.read_text().count("<script") and all(not s[2] for s in scripts), after
    for tag in ("img", "b", "i", "u", "iframe", "object", "embed", "foreignObject"):
        assert page.locator(tag).count() == 0, (tag, after)
    handlers = page.evaluate("""() => [...document.querySelectorAll('*')].flatMap(e =>
        [...e.attributes].filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name))""")
    assert handlers == [], after


def test_hostile_strings_are_shown_not_run(hostile, open_page):
    _, html, doc = hostile
    dash = open_page(html)
    page = dash.page
    _no_markup_from_data(dash, "loading")
    assert TARGET in page.title()
    views = doc["cohort_views"]
    assert [v["name"] for v in views[:2]] == ["All data", BOLD]
    assert f"{SCRIPT} = {IMG}" in [v["name"] for v in views]
    text = ""
    for view in views:
        dash.select_cohort(view["name"])
        _no_markup_from_data(dash, f"selecting {view['name']!r}")
        text += page.inner_text("body")
    dash.select_cohort(BOLD)
    dash.compare([v["name"] for v in views[2:6]])
    tabs = [t.removeprefix("tab-") for t in page.eval_on_selector_all("[role=tab]", "ts => ts.map(t => t.id)")]
    assert {"overview", "error-analysis", "cohorts", "explorer", "data"} <= set(tabs)
    for tab in tabs:
        dash.tab(tab)
        _no_markup_from_data(dash, f"showing {tab}")
        text += page.inner_text("body")
    # Tree nodes and heatmap cells selected (their conditions name the columns), then a cohort
    # edited with the hostile values.
    panel = dash.tab("error-analysis")
    for i in range(min(6, panel.locator("[role=treeitem]").count())):
        panel.locator("[role=treeitem]").nth(i).click()
        dash.settle(f"selecting tree node {i}")
        text += page.inner_text("body")
    for i in range(min(4, panel.locator("[role=gridcell]").count())):
        cell = panel.locator("[role=gridcell]").nth(i)
        if cell.get_attribute("data-cell") is not None:
            cell.click()
            dash.settle(f"selecting heatmap cell {i}")
    _no_markup_from_data(dash, "selecting the tree's nodes and the heatmap's cells")
    editor = dash.tab("cohorts").locator("[data-testid=cohort-editor]")
    _build_cohort(dash, editor, [[(SCRIPT, "==", IMG)], [(SVG, "in", f"{SCRIPT},ok")]])
    count = editor.locator("[data-testid=editor-count]").inner_text()
    editor.locator("input[name=cohort-name]").fill(SVG + BOLD)
    editor.locator("[data-testid=save-cohort]").click()
    dash.settle("saving a cohort with markup in its name")
    assert dash.active_name() == SVG + BOLD
    exported = json.loads(editor.locator("[data-testid=cohort-json]").evaluate("e => e.value ?? e.textContent"))
    (edited,) = [c for c in load_cohorts(exported) if c["name"] == SVG + BOLD]
    # Every test row is carried (150 < dashboard_rows): the editor counts the exported filter's rows.
    pred = pd.read_parquet(html.parent / A.TABLES_DIR / "predictions.parquet")
    selected = int(cohort_masks([edited], pred)[SVG + BOLD].sum())
    assert 0 < selected < len(pred)
    assert [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", count)][:2] == [selected, len(pred)], count
    text += page.inner_text("body")
    _no_markup_from_data(dash, "editing a cohort")
    for s in HOSTILE:
        assert s in text, s
    assert f'{SCRIPT} == "{IMG}"' in text  # a filter as text
    assert "&lt;b&gt;" in text and "<b>" not in page.inner_html("#app").replace("&lt;b&gt;", "")


def test_error_analysis_takes_any_column_name(hostile, tmp_path):
    constructor, _, _ = hostile
    run_error_analysis(constructor, tmp_path / "error_analysis")  # every feature, SVG's column too
    result = json.loads((tmp_path / "error_analysis" / A.INSIGHT_RESULT_FILE).read_text())
    assert SVG in result["tree"]["features"]
