"""scorecard: every figure and verdict in the PDF and scorecard.json equals an independent recomputation.

The PDF is read back with pypdf and its text compared with numbers computed here, formatted as
the PDF prints them (4 significant digits). What is checked against what:

- overall and per-target metrics against scikit-learn on the bundle's ``tables/predictions.parquet``
  (and the bundle's ``insights.json`` model overview against the same recomputation);
- cohort targets and the cohort table against cohorts selected here with pandas (the bundle's
  cohorts, extra cohorts in rai-audit's and in Azure ML's format);
- fairness figures (per group, between-groups difference and ratio) against fairlearn's
  ``MetricFrame``, with a numeric sensitive feature binned here by quartiles with pandas;
- verdicts against the target's operator applied here to the recomputed value; ``passed``
  against all judged verdicts; intervals must hold the measured value;
- the footer against the bundle's run id and the sha256 of its manifest, hashed here;
- the real Azure ML scorecard configs (../shared/azure-examples) against what their README says
  they hold, and against what Azure's component drops or overrides (negative and exponent
  thresholds, numeric sensitive features, ``top_n``);
- bad configs: a clear RAIInputError and nothing written; the CLI's exit codes; register_model's
  copies (byte for byte) and its refusal of a scorecard that did not pass.

Bundles: Adult (binary, the session's model), COMPAS (multiclass), insurance (regression, with an
explanation so the feature importance page exists). Each scorecard is written once per module.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import operator
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn import metrics as flm
from pypdf import PdfReader
from sklearn import metrics as skm

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.core.cohorts import load_cohorts
from rai_audit.core.metrics import REGRESSION_METRICS as ALL_REGRESSION_METRICS
from rai_audit.core.scorecard_config import check_against_bundle, parse_scorecard_config
from rai_audit.steps.explainer import run_explainer
from rai_audit.steps.gather import run_gather
from rai_audit.steps.scorecard import ScorecardOptions, TargetsMissed, main, register_model, run_scorecard
from support import AZURE_EXAMPLES, build_bundle

POSITIVE = ">50K"
COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
FREE_TEXT = '<script>alert(1)</script> & "x"'
MARKUP_COHORT = '<b>Rich 30s</b> & "co"'
BOSTON_FEATURES = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]
REGRESSION_METRICS = [
    "mean_absolute_error",
    "mean_squared_error",
    "root_mean_squared_error",
    "r2_score",
    "mean_prediction",
]


# --- helpers -------------------------------------------------------------------------------------


def shown(value: Any) -> str:
    """A number as the PDF prints it: 4 significant digits; none as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if 999 <= abs(value) < 1e15:  # 4 significant digits, from 1,000 on with thousands separators: 12,280
        rounded = round(float(value), 3 - math.floor(math.log10(abs(value))))
        if abs(rounded) >= 1e3:
            return f"{rounded:,.0f}"
    return f"{float(value):.4g}"


def shown_interval(low: float | None, high: float | None) -> str:
    return "n/a" if low is None else f"[{shown(low)}, {shown(high)}]"


def expected_verdict(value: float | None, op: str | None, target: float | None) -> str:
    if op is None:
        return "REPORTED"
    if value is None or not np.isfinite(value):
        return "UNDEFINED"
    return "PASS" if COMPARE[op](value, target) else "FAIL"


def pdf_pages(path: Path) -> list[str]:
    """Each page's text with runs of whitespace (line breaks of wrapped cells) made one space."""
    return [" ".join((page.extract_text() or "").split()) for page in PdfReader(path).pages]


def manifest_prefix(dashboard: Path) -> str:
    return hashlib.sha256((dashboard / A.MANIFEST_FILE).read_bytes()).hexdigest()[:16]


def nothing_written(parent: Path, out: Path) -> bool:
    """The output folder does not exist and no partial folder was left beside it."""
    return not out.exists() and not any(p.name.startswith(f".{out.name}") for p in parent.iterdir())


@dataclass
class Bundle:
    dashboard: Path
    doc: dict[str, Any]
    table: pd.DataFrame

    @classmethod
    def load(cls, dashboard: Path) -> Bundle:
        return cls(
            dashboard,
            json.loads((dashboard / A.INSIGHTS_JSON_FILE).read_text()),
            pd.read_parquet(dashboard / A.TABLES_DIR / "predictions.parquet"),
        )

    @property
    def y(self) -> pd.Series:
        return self.table[A.Y_TRUE]

    @property
    def pred(self) -> pd.Series:
        return self.table[A.Y_PRED]

    @property
    def proba(self) -> np.ndarray:
        return self.table[[A.proba_column(i) for i in range(len(self.doc["classes"]))]].to_numpy()


@dataclass
class Card:
    folder: Path
    json: dict[str, Any]
    pages: list[str]

    @classmethod
    def load(cls, folder: Path) -> Card:
        return cls(folder, json.loads((folder / "scorecard.json").read_text()), pdf_pages(folder / "scorecard.pdf"))

    @property
    def text(self) -> str:
        return " ".join(self.pages)

    def judged(self) -> list[dict[str, Any]]:
        return [t for t in self.json["targets"] if t["verdict"] != "REPORTED"] + [
            t for e in self.json["fairness"] for m in e["metrics"] for t in m["targets"]
        ]

    def fairness(self, feature: str, metric: str) -> dict[str, Any]:
        entry = next(e for e in self.json["fairness"] if e["feature"] == feature)
        return next(m for m in entry["metrics"] if m["metric"] == metric)

    def cohort(self, name: str) -> dict[str, Any]:
        return next(c for c in self.json["cohorts"] if c["name"] == name)

    def page_of(self, text: str) -> str:
        """The page holding ``text`` (charts' SVG text comes at the end of their page's text)."""
        return next(page for page in self.pages if text in page)

    def section(self, title: str) -> str:
        """The text of one section of the details (they flow across pages, several per page):
        from its heading to the next section's heading."""
        text = self.text
        start = text.index(SECTION_STARTS[title])
        ends = [
            i
            for other, marker in SECTION_STARTS.items()
            if other != title
            for i in [text.find(marker, start + 1)]
            if i > start
        ]
        return text[start : min(ends, default=len(text))]


# How each section of the details begins in the PDF's text (heading, then its first words).
SECTION_STARTS = {
    "Model performance": "Model performance Metric (all",
    "Fairness": "Fairness Per group",
    "Data explorer": "Data explorer ",
    "Cohorts": "Cohorts Cohort from",
    "Feature importance": "Feature importance The ",
    "Causal effects": "Causal effects ",
    "Counterfactuals": "Counterfactuals For ",
}


def loose(text: str) -> str:
    """A regex for text in a cell that may wrap anywhere, even inside a word (``</`` + ``b>``):
    each line break reads as one space in the normalised page text."""
    return " ?".join(" " if ch == " " else re.escape(ch) for ch in text)


def as_configured(value: float) -> str:
    """A threshold as the user wrote it (no rounding): 0.73229, 25000, -1000."""
    return f"{value:.15g}"


def target_row(
    metric: str,
    op: str | None,
    value: float | None,
    rows: int,
    measured: float | None,
    low: float | None,
    high: float | None,
    verdict: str,
    cohort: str | None = None,
    reason: str | None = None,
) -> str:
    """A regex for a row of the PDF's target table: the label cell (and why an UNDEFINED one
    is), then the figures as printed."""
    label = metric + (f' in cohort "{cohort}"' if cohort else "") + (f" {op} {as_configured(value)}" if op else "")
    label += f" {reason}" if reason else ""
    return loose(label) + re.escape(f" {rows:,} {shown(measured)} {shown_interval(low, high)} {verdict}")


def fairness_row(target: dict[str, Any], n_test: int, measured: float) -> str:
    label = (
        f"{target['metric']} {target['kind']} across {target['sensitive_feature']} groups "
        f"{target['op']} {as_configured(target['value'])}"
    )
    return loose(label) + re.escape(
        f" {n_test:,} {shown(measured)} {shown_interval(target['ci_lower'], target['ci_upper'])} {target['verdict']}"
    )


def metric_frame(bundle: Bundle, metrics: dict[str, Any], sensitive: pd.Series) -> flm.MetricFrame:
    return flm.MetricFrame(
        metrics=metrics, y_true=bundle.y.to_numpy(), y_pred=bundle.pred.to_numpy(), sensitive_features=sensitive
    )


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


# --- bundles -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adult(adult_bundle) -> Bundle:
    folder, _ = adult_bundle
    return Bundle.load(folder / "dashboard")


@pytest.fixture(scope="module")
def compas(compas_case, tmp_path_factory) -> Bundle:
    folder, _ = build_bundle(compas_case, tmp_path_factory.mktemp("compas_bundle"))
    return Bundle.load(folder / "dashboard")


@pytest.fixture(scope="module")
def insurance(insurance_case, tmp_path_factory) -> Bundle:
    """With an explanation, so the scorecard has feature importances to show."""
    folder = tmp_path_factory.mktemp("insurance_bundle")
    insurance_case.construct(folder / "constructor")
    run_explainer(folder / "constructor", folder / "explanation")
    run_gather(folder / "constructor", [folder / "explanation"], folder / "dashboard")
    return Bundle.load(folder / "dashboard")


# --- the scorecards ------------------------------------------------------------------------------

# Adult, rai-audit's format; targets that pass, fail, are undefined (empty cohort) or reported;
# extra cohorts in Azure's format, one with markup in its name.
ADULT_CONFIG = {
    "model": {"name": FREE_TEXT, "version": "3", "owner": "Credit <risk> team & co"},
    "targets": [
        "accuracy_score >= 0.99",
        "accuracy >= 0.5",
        "roc_auc_score > 0.5",
        {"metric": "recall_score", "op": ">=", "value": 0.05, "cohort": "Under 30"},
        {"metric": "accuracy_score", "op": ">=", "value": 0.5, "cohort": "Nobody"},
        {"metric": "log_loss"},
        {"metric": "accuracy_score", "op": ">=", "value": "5e-1", "cohort": "Over 50"},
        {"metric": "precision_score", "op": ">=", "value": 0, "cohort": MARKUP_COHORT},
    ],
    "fairness": {
        "sensitive_features": ["sex", "race"],
        "metrics": ["accuracy_score", "selection_rate"],
        "targets": [
            "accuracy_score difference <= 0.5",
            {"metric": "selection_rate", "kind": "ratio", "op": ">=", "value": 0.8, "sensitive_feature": "sex"},
        ],
    },
    "data_explorer": {"features": ["race", "age"]},
    "cohorts": ["Under 30"],
}
AZURE_EXTRA_COHORTS = [
    {"name": "Over 50", "cohort_filter_list": [{"method": "greater", "arg": [50], "column": "age"}]},
    {
        "name": MARKUP_COHORT,
        "cohort_filter_list": [
            {"method": "equal", "arg": [POSITIVE], "column": "Predicted Y"},
            {"method": "in the range of", "arg": [30, 39], "column": "age"},
        ],
    },
]


def adult_expected_targets(bundle: Bundle) -> list[tuple[str, str | None, str | None, float | None, int, float | None]]:
    """(metric, cohort, op, value, rows, measured) of each ADULT_CONFIG target, recomputed here."""
    t, y, p = bundle.table, bundle.y, bundle.pred
    classes = bundle.doc["classes"]
    under30, nobody, over50 = t["age"] < 30, t["age"] > 500, t["age"] > 50
    rich30s = (p == POSITIVE) & t["age"].between(30, 39)
    n = len(t)
    return [
        ("accuracy_score", None, ">=", 0.99, n, skm.accuracy_score(y, p)),
        ("accuracy_score", None, ">=", 0.5, n, skm.accuracy_score(y, p)),
        (
            "roc_auc_score",
            None,
            ">",
            0.5,
            n,
            skm.roc_auc_score(y == POSITIVE, bundle.proba[:, classes.index(POSITIVE)]),
        ),
        (
            "recall_score",
            "Under 30",
            ">=",
            0.05,
            int(under30.sum()),
            skm.recall_score(y[under30], p[under30], pos_label=POSITIVE),
        ),
        ("accuracy_score", "Nobody", ">=", 0.5, int(nobody.sum()), None),
        ("log_loss", None, None, None, n, skm.log_loss(y, bundle.proba, labels=classes)),
        ("accuracy_score", "Over 50", ">=", 0.5, int(over50.sum()), skm.accuracy_score(y[over50], p[over50])),
        (
            "precision_score",
            MARKUP_COHORT,
            ">=",
            0.0,
            int(rich30s.sum()),
            skm.precision_score(y[rich30s], p[rich30s], pos_label=POSITIVE, zero_division=0),
        ),
    ]


ADULT_FAIRNESS_METRICS = {
    "accuracy_score": skm.accuracy_score,
    "selection_rate": partial(flm.selection_rate, pos_label=POSITIVE),
}


@pytest.fixture(scope="module")
def adult_card(adult, tmp_path_factory) -> Card:
    out = tmp_path_factory.mktemp("adult_card") / "scorecard"
    result = run_scorecard(
        adult.dashboard, ADULT_CONFIG, out, cohorts=AZURE_EXTRA_COHORTS, options=ScorecardOptions(bootstrap=20)
    )
    card = Card.load(out)
    assert result.passed is card.json["passed"] is False
    return card


# Azure ML's format, the keys and structure of its real configs, names matching the Adult bundle;
# through the CLI with --fail-on-missed-target (all targets pass: exit 0) and a rai-audit cohort file.
ADULT_AZURE_CONFIG = {
    "Model": {"ModelName": "Adult income", "ModelType": "Classification", "ModelSummary": "Screens applications"},
    "Metrics": {
        "accuracy_score": {"threshold": ">=0.8"},
        "precision_score": {},
        "recall_score": {"threshold": ">=1e-3"},
    },
    "FeatureImportance": {"top_n": 3},
    "DataExplorer": {"features": ["age"]},
    "Fairness": {"metric": ["accuracy_score"], "sensitive_features": ["race"], "fairness_evaluation_kind": "ratio"},
    "Cohorts": ["Under 30", "Young women"],
}
YOUNG_WOMEN = {
    "cohorts": [
        {
            "name": "Young women",
            "filter": {
                "and": [{"column": "sex", "op": "==", "value": "Female"}, {"column": "age", "op": "<", "value": 30}]
            },
        }
    ]
}


@pytest.fixture(scope="module")
def adult_azure_run(adult, tmp_path_factory) -> tuple[int, str, Card]:
    folder = tmp_path_factory.mktemp("adult_azure")
    (folder / "pdf_gen.json").write_text(json.dumps(ADULT_AZURE_CONFIG, indent=2))
    (folder / "cohorts.json").write_text(json.dumps(YOUNG_WOMEN))
    code, stdout, _ = run_cli(
        [
            "--dashboard",
            str(adult.dashboard),
            "--config",
            str(folder / "pdf_gen.json"),
            "--cohorts",
            str(folder / "cohorts.json"),
            "--output",
            str(folder / "scorecard"),
            "--bootstrap",
            "0",
            "--fail-on-missed-target",
        ]
    )
    return code, stdout, Card.load(folder / "scorecard")


# Insurance (regression) in Azure's format: negative and exponent thresholds, top_n 3, a numeric
# sensitive feature (age) - the three things Azure's component drops or overrides.
INSURANCE_AZURE_CONFIG = {
    "Model": {
        "ModelName": "Insurance charges",
        "ModelType": "Regression",
        "ModelSummary": "Predicts yearly medical charges",
    },
    "Metrics": {
        "r2_score": {"threshold": ">=-5"},
        "mean_absolute_error": {"threshold": "<=2.5e4"},
        "mean_prediction": {"threshold": ">=1e-3"},
        "mean_squared_error": {},
    },
    "FeatureImportance": {"top_n": 3},
    "DataExplorer": {"features": ["age", "region"]},
    "Fairness": {
        "metric": ["mean_absolute_error"],
        "sensitive_features": ["sex", "age"],
        "fairness_evaluation_kind": "difference",
    },
}


@pytest.fixture(scope="module")
def insurance_card(insurance, tmp_path_factory) -> Card:
    out = tmp_path_factory.mktemp("insurance_card") / "scorecard"
    run_scorecard(insurance.dashboard, INSURANCE_AZURE_CONFIG, out, options=ScorecardOptions(bootstrap=20))
    return Card.load(out)


# Insurance in rai-audit's YAML, through the CLI; one target missed: exit 1.
INSURANCE_YAML = """\
model: {name: insurance charges, version: "2"}
targets:
  - r2_score >= -1e3
  - mean_absolute_error <= 2.5e4
  - mean_absolute_error <= 1e2
"""


@pytest.fixture(scope="module")
def insurance_cli_run(insurance, tmp_path_factory) -> tuple[int, str, Card]:
    folder = tmp_path_factory.mktemp("insurance_cli")
    (folder / "scorecard.yaml").write_text(INSURANCE_YAML)
    code, stdout, _ = run_cli(
        [
            "--dashboard",
            str(insurance.dashboard),
            "--config",
            str(folder / "scorecard.yaml"),
            "--output",
            str(folder / "scorecard"),
            "--bootstrap",
            "0",
            "--fail-on-missed-target",
        ]
    )
    return code, stdout, Card.load(folder / "scorecard")


# COMPAS (multiclass) with fail_on_missed_target: the step writes, then raises.
@pytest.fixture(scope="module")
def compas_run(compas, tmp_path_factory) -> tuple[TargetsMissed, Card]:
    out = tmp_path_factory.mktemp("compas_card") / "scorecard"
    config = {
        "targets": ["accuracy_score >= 0.99", "f1_score >= 0"],
        "fairness": {"sensitive_features": ["race"], "metrics": ["accuracy_score"]},
        "data_explorer": {"features": ["priors_count", "c_charge_degree"]},
    }
    with pytest.raises(TargetsMissed) as raised:
        run_scorecard(compas.dashboard, config, out, options=ScorecardOptions(bootstrap=0, fail_on_missed_target=True))
    return raised.value, Card.load(out)


# --- 1, 2: measured values and verdicts against recomputations ----------------------------------


def test_bundle_overall_metrics_equal_sklearn_and_the_pdf_shows_them(adult, adult_card):
    y, p = adult.y, adult.pred
    classes = adult.doc["classes"]
    expected = {
        "accuracy_score": skm.accuracy_score(y, p),
        "balanced_accuracy_score": skm.balanced_accuracy_score(y, p),
        "precision_score": skm.precision_score(y, p, pos_label=POSITIVE),
        "recall_score": skm.recall_score(y, p, pos_label=POSITIVE),
        "f1_score": skm.f1_score(y, p, pos_label=POSITIVE),
        "selection_rate": float(np.mean(p == POSITIVE)),
        "roc_auc_score": skm.roc_auc_score(y == POSITIVE, adult.proba[:, classes.index(POSITIVE)]),
        "log_loss": skm.log_loss(y, adult.proba, labels=classes),
    }
    overall = adult.doc["model_overview"]["overall"]
    performance = adult_card.section("Model performance")
    assert f"Metric (all {len(adult.table):,} test rows) value" in performance
    n_train = adult_card.json["data"]["n_train"]
    assert (
        n_train > 999
        and f"{len(adult.table):,} test rows (all used), model trained on {n_train:,} rows" in adult_card.pages[0]
    )
    for name, value in expected.items():
        assert overall[name] == pytest.approx(value, rel=1e-9), name
        assert adult_card.json["performance"]["metrics"][name] == pytest.approx(value, rel=1e-9), name
        assert re.search(rf"\b{name} \([^)]*\) {re.escape(shown(value))}(?= |$)", performance), name


def test_targets_measured_and_judged_as_recomputed(adult, adult_card):
    targets = adult_card.json["targets"]
    expected = adult_expected_targets(adult)
    assert len(targets) == len(expected)
    first_page = adult_card.pages[0]
    for got, (metric, cohort, op, value, rows, measured) in zip(targets, expected):
        what = f"{metric} in {cohort}"
        assert (got["metric"], got["cohort"], got["op"], got["value"]) == (metric, cohort, op, value), what
        assert got["rows"] == rows, what
        assert got["measured"] == (None if measured is None else pytest.approx(measured, rel=1e-9)), what
        verdict = expected_verdict(measured, op, value)
        assert got["verdict"] == verdict, what
        row = target_row(
            metric,
            op,
            value,
            rows,
            measured,
            got["ci_lower"],
            got["ci_upper"],
            verdict,
            cohort,
            got["reason"] if verdict == "UNDEFINED" else None,
        )
        assert re.search(row, first_page), what
    verdicts = [t["verdict"] for t in targets]
    assert verdicts[0] == "FAIL" and verdicts[1] == "PASS"  # accuracy >= 0.99 fails; >= 0.5 passes
    assert verdicts[4] == "UNDEFINED" and targets[4]["measured"] is None  # the empty cohort
    assert verdicts[5] == "REPORTED"


def test_fairness_equals_fairlearn_metric_frame(adult, adult_card):
    n_test = len(adult.table)
    rows = []
    for feature in ("sex", "race"):
        frame = metric_frame(adult, ADULT_FAIRNESS_METRICS, adult.table[feature])
        difference = frame.difference(method="between_groups")
        ratio = frame.ratio(method="between_groups")
        counts = adult.table[feature].value_counts()
        for metric in ADULT_FAIRNESS_METRICS:
            got = adult_card.fairness(feature, metric)
            assert got["difference"]["value"] == pytest.approx(difference[metric], rel=1e-9), (feature, metric)
            assert got["ratio"]["value"] == pytest.approx(ratio[metric], rel=1e-9), (feature, metric)
            by_group = {g["group"]: g for g in got["by_group"]}
            assert set(by_group) == set(counts.index)
            for group, value in frame.by_group[metric].items():
                assert by_group[group]["value"] == pytest.approx(value, rel=1e-9), (feature, group)
                assert by_group[group]["count"] == counts[group]
            for target in got["targets"]:
                measured = (difference if target["kind"] == "difference" else ratio)[metric]
                assert target["measured"] == pytest.approx(measured, rel=1e-9)
                assert target["verdict"] == expected_verdict(measured, target["op"], target["value"])
                assert re.search(fairness_row(target, n_test, measured), adult_card.pages[0])
                rows.append((feature, metric, target["kind"], target["verdict"]))
        figures = {
            (kind, m): adult_card.fairness(feature, m)[kind]
            for kind in ("difference", "ratio")
            for m in ADULT_FAIRNESS_METRICS
        }
        for label, kind in (("Largest difference", "difference"), ("Smallest ratio", "ratio")):
            cells = " ".join(
                f"{shown(figures[(kind, m)]['value'])} "
                f"{shown_interval(figures[(kind, m)]['ci_lower'], figures[(kind, m)]['ci_upper'])}"
                for m in ADULT_FAIRNESS_METRICS
            )
            assert f"{label} {cells}" in adult_card.text, (feature, label)
    # accuracy difference judged for both features (no sensitive_feature), the ratio for sex only
    assert [r[:3] for r in rows] == [
        ("sex", "accuracy_score", "difference"),
        ("sex", "selection_rate", "ratio"),
        ("race", "accuracy_score", "difference"),
    ]
    assert rows[1][3] == "FAIL"  # women are selected far less often than men


def test_passed_is_all_judged_verdicts_pass_and_the_first_page_says_so(adult_card):
    judged = adult_card.judged()
    missed = [t for t in judged if t["verdict"] == "FAIL"]
    assert len(judged) == 10 and adult_card.json["n_targets"] == 10
    assert adult_card.json["n_missed"] == len(missed) >= 2  # accuracy >= 0.99, the ratio
    assert adult_card.json["n_undefined"] == 1  # the empty cohort: not missed, and not passed either
    assert adult_card.json["passed"] is False
    assert (
        f"NOT PASSED: {len(missed)} of {len(judged)} targets missed; 1 could not be judged (UNDEFINED)."
        in adult_card.pages[0]
    )
    assert "PASSED: all" not in adult_card.pages[0]


@pytest.mark.parametrize("run", ["adult_card", "adult_azure_run", "insurance_card", "insurance_cli_run", "compas_run"])
def test_passed_equals_all_judged_verdicts_pass(run, request):
    card = request.getfixturevalue(run)
    card = card[-1] if isinstance(card, tuple) else card
    judged = card.judged()
    assert all(t["verdict"] in ("PASS", "FAIL", "UNDEFINED") for t in judged)
    assert card.json["passed"] is all(t["verdict"] != "FAIL" for t in judged)
    assert card.json["n_targets"] == len(judged)
    assert card.json["n_missed"] == sum(t["verdict"] == "FAIL" for t in judged)
    assert card.json["n_undefined"] == sum(t["verdict"] == "UNDEFINED" for t in judged)
    meta = json.loads((card.folder / A.META_FILE).read_text())
    assert meta["kind"] == "scorecard" and meta["passed"] is card.json["passed"]
    A.verify_manifest(card.folder)


def _intervals(card: Card) -> list[tuple[str, float, float, float]]:
    found = [
        (f"target {t['metric']} {t['cohort']}", t["ci_lower"], t["measured"], t["ci_upper"])
        for t in card.json["targets"]
    ]
    for entry in card.json["fairness"]:
        for m in entry["metrics"]:
            for kind in ("difference", "ratio"):
                found.append(
                    (
                        f"{entry['feature']} {m['metric']} {kind}",
                        m[kind]["ci_lower"],
                        m[kind]["value"],
                        m[kind]["ci_upper"],
                    )
                )
            found += [
                (
                    f"fairness target {entry['feature']} {t['metric']} {t['kind']}",
                    t["ci_lower"],
                    t["measured"],
                    t["ci_upper"],
                )
                for t in m["targets"]
            ]
            found += [
                (f"{entry['feature']} = {g['group']} {m['metric']}", g["ci_lower"], g["value"], g["ci_upper"])
                for g in m["by_group"]
            ]
    return found


@pytest.mark.parametrize("card_name", ["adult_card", "insurance_card"])
def test_intervals_hold_the_measured_value(card_name, request):
    card: Card = request.getfixturevalue(card_name)
    assert card.json["intervals"] == {"method": "bootstrap percentile", "resamples": 20, "level": 0.95, "seed": 0}
    for t in card.json["targets"] + [t for e in card.json["fairness"] for m in e["metrics"] for t in m["targets"]]:
        assert set(t) >= {"measured", "ci_lower", "ci_upper", "verdict"}
    intervals = _intervals(card)
    checked = 0
    for what, low, value, high in intervals:
        if low is None:
            assert high is None, what
            continue
        checked += 1
        assert low <= value <= high, (what, low, value, high)
    assert checked >= 6


def test_empty_cohort_is_undefined_neither_met_nor_missed(adult_card):
    nobody = adult_card.json["targets"][4]
    assert (nobody["cohort"], nobody["rows"], nobody["measured"], nobody["verdict"]) == ("Nobody", 0, None, "UNDEFINED")
    assert nobody["reason"] == "the cohort selects no test rows"
    assert "the cohort selects no test rows" in adult_card.pages[0]
    assert (nobody["ci_lower"], nobody["ci_upper"]) == (None, None)
    assert nobody in [t for t in adult_card.judged() if t["verdict"] != "PASS"]


def test_data_explorer_bins_equal_pandas(adult, adult_card):
    race = next(f for f in adult_card.json["data_explorer"] if f["feature"] == "race")
    counts = adult.table["race"].value_counts()
    assert [b["bin"] for b in race["bins"]] == list(counts.index)
    assert adult_card.section("Data explorer").startswith(
        "Data explorer race Bin rows share accuracy_score predictions"
    )
    for b in race["bins"]:
        rows = adult.table["race"] == b["bin"]
        accuracy = skm.accuracy_score(adult.y[rows], adult.pred[rows])
        assert b["count"] == counts[b["bin"]]
        assert b["metric_value"] == pytest.approx(accuracy)
        assert b["predicted_share"][POSITIVE] == pytest.approx(np.mean(adult.pred[rows] == POSITIVE))
        share = counts[b["bin"]] / len(adult.table)
        assert f"{b['bin']} {counts[b['bin']]:,} {shown(share)} {shown(accuracy)}" in adult_card.text
    age = next(f for f in adult_card.json["data_explorer"] if f["feature"] == "age")
    binned = pd.qcut(adult.table["age"], q=6, duplicates="drop")
    assert [b["count"] for b in age["bins"]] == binned.value_counts(sort=False).tolist()
    # Labelled by the whole ages each bin holds (both ends included), not "(16.999, 22.0]"
    for b, interval in zip(age["bins"], binned.cat.categories):
        first, last = (int(x) for x in b["bin"].split("-"))
        rows = adult.table["age"].between(first, last)
        assert (
            rows.sum()
            == b["count"]
            == ((adult.table["age"] > interval.left) & (adult.table["age"] <= interval.right)).sum()
        )
    assert "999" not in adult_card.section("Data explorer")


# --- 10: extra cohorts ---------------------------------------------------------------------------


def test_extra_azure_cohorts_counted_as_pandas(adult, adult_card):
    t = adult.table
    expected = {
        "Under 30": (t["age"] < 30, "user"),
        "Over 50": (t["age"] > 50, "scorecard"),
        MARKUP_COHORT: ((adult.pred == POSITIVE) & t["age"].between(30, 39), "scorecard"),
    }
    assert {c["name"] for c in adult_card.json["cohorts"]} == set(expected)  # "Nobody" not listed in `cohorts`
    page = adult_card.section("Cohorts")
    for name, (rows, source) in expected.items():
        got = adult_card.cohort(name)
        accuracy = skm.accuracy_score(adult.y[rows], adult.pred[rows])
        assert (got["count"], got["source"]) == (int(rows.sum()), source), name
        assert got["share"] == pytest.approx(rows.mean())
        assert got["metric_value"] == pytest.approx(accuracy)
        assert re.search(loose(name), page), name
        assert f"{source} {int(rows.sum()):,} {shown(float(rows.mean()))} {shown(accuracy)}" in page


def test_extra_rai_audit_cohort_file_counted_as_pandas_and_shown(adult, adult_azure_run):
    _, _, card = adult_azure_run
    rows = (adult.table["sex"] == "Female") & (adult.table["age"] < 30)
    young = card.cohort("Young women")
    assert (young["count"], young["source"]) == (int(rows.sum()), "scorecard")
    assert young["metric_value"] == pytest.approx(skm.accuracy_score(adult.y[rows], adult.pred[rows]))
    assert [c["name"] for c in card.json["cohorts"]] == ["Under 30", "Young women"]


def test_extra_cohort_cannot_redefine_a_bundle_cohort(adult, tmp_path):
    """Either refused, or the name keeps the dashboard's meaning (every figure equals the dashboard's)."""
    out = tmp_path / "out"
    in_bundle = next(c for c in adult.doc["model_overview"]["cohorts"] if c["name"] == "Under 30")
    redefined = [{"name": "Under 30", "filter": {"column": "age", "op": "<", "value": 20}}]
    config = {"targets": [{"metric": "accuracy_score", "op": ">=", "value": 0.5, "cohort": "Under 30"}]}
    try:
        run_scorecard(adult.dashboard, config, out, cohorts=redefined, options=ScorecardOptions(bootstrap=0))
    except RAIInputError as err:
        assert "Under 30" in str(err)
        assert nothing_written(tmp_path, out)
        return
    card = Card.load(out)
    assert card.json["targets"][0]["rows"] == in_bundle["count"] == int((adult.table["age"] < 30).sum())
    assert card.json["targets"][0]["measured"] == pytest.approx(in_bundle["accuracy_score"])


def test_extra_cohort_on_an_unknown_column_is_refused(adult, tmp_path):
    out = tmp_path / "out"
    extra = [{"name": "Tall", "filter": {"column": "height", "op": ">", "value": 180}}]
    with pytest.raises(RAIInputError, match="column 'height' is not a feature"):
        run_scorecard(
            adult.dashboard,
            {"targets": ["accuracy_score >= 0.5"]},
            out,
            cohorts=extra,
            options=ScorecardOptions(bootstrap=0),
        )
    assert nothing_written(tmp_path, out)


# --- 4: Azure ML's configs -----------------------------------------------------------------------

AZURE_CONFIG_FILES = sorted(p.name for p in AZURE_EXAMPLES.glob("*.json") if "cohorts" not in p.name)


def test_all_real_azure_configs_are_found():
    assert len(AZURE_CONFIG_FILES) == 8
    assert sorted(p.name for p in AZURE_EXAMPLES.glob("*.json")) == sorted(
        [*AZURE_CONFIG_FILES, "azureml-assets__boston__cohorts.json"]
    )


@pytest.mark.parametrize("name", AZURE_CONFIG_FILES)
def test_real_azure_configs_parse(name):
    raw = json.loads((AZURE_EXAMPLES / name).read_text())
    parsed = parse_scorecard_config(AZURE_EXAMPLES / name)
    assert parsed == parse_scorecard_config(raw)  # a path and a mapping read the same
    assert parsed["model"]["name"] == raw["Model"]["ModelName"]
    assert parsed["model"]["type"] == raw["Model"]["ModelType"]
    expected_targets = []
    for metric, spec in raw["Metrics"].items():
        threshold = (spec or {}).get("threshold")
        op, value = (None, None) if threshold is None else re.fullmatch(r"([<>=]+)(.+)", threshold).groups()
        expected_targets.append(
            {"metric": metric, "op": op, "value": None if value is None else float(value), "cohort": None}
        )
    assert parsed["targets"] == expected_targets
    assert parsed["data_explorer"]["features"] == raw.get("DataExplorer", {}).get("features", [])
    assert parsed["feature_importance"]["top_n"] == raw.get("FeatureImportance", {}).get("top_n", 10)
    assert parsed["cohorts"] == raw.get("Cohorts")
    if "Fairness" in raw:
        fairness = raw["Fairness"]
        assert parsed["fairness"] == {
            "sensitive_features": fairness["sensitive_features"],
            "metrics": fairness["metric"],
            "kind": fairness["fairness_evaluation_kind"],
            "targets": [],
        }
    else:
        assert parsed["fairness"] is None


def test_real_azure_boston_configs_check_against_boston_columns():
    cohorts = [c["name"] for c in load_cohorts(AZURE_EXAMPLES / "azureml-assets__boston__cohorts.json")]
    assert cohorts == ["High Tax", "Low Tax"]
    for name in ("azureml-assets__boston__pdf_gen.json", "rai-vnext-preview__boston__pdf_gen.json"):
        check_against_bundle(
            parse_scorecard_config(AZURE_EXAMPLES / name),
            metric_names=REGRESSION_METRICS,
            features=BOSTON_FEATURES,
            cohorts=cohorts,
        )
    wrong = parse_scorecard_config(AZURE_EXAMPLES / "rai-vnext-preview__boston__wrong_features_pdf_gen.json")
    with pytest.raises(RAIInputError, match=r"`data_explorer.features`: unknown feature 'AGE_WRONG'") as raised:
        check_against_bundle(wrong, metric_names=REGRESSION_METRICS, features=BOSTON_FEATURES, cohorts=[])
    assert "'AGE'" in str(raised.value)  # the message lists the real features


def test_real_azure_cohort_file_is_read_as_filters():
    cohorts = load_cohorts(AZURE_EXAMPLES / "azureml-assets__boston__cohorts.json")
    assert cohorts == [
        {"name": "High Tax", "filter": {"column": "TAX", "op": ">", "value": 300}},
        {"name": "Low Tax", "filter": {"column": "TAX", "op": "<", "value": 300}},
    ]


def test_azure_behaviours_we_do_differently_parse():
    parsed = parse_scorecard_config(
        {
            "Model": {"ModelName": "m", "ModelType": "Regression"},
            "Metrics": {
                "r2_score": {"threshold": "<=-5"},
                "mean_absolute_error": {"threshold": ">=1e-3"},
                "mean_squared_error": {"threshold": "< 2.5E+4"},
            },
            "FeatureImportance": {"top_n": 3},
            "Fairness": {
                "metric": ["mean_absolute_error"],
                "sensitive_features": ["CRIM"],
                "fairness_evaluation_kind": "ratio",
            },
        }
    )
    assert [(t["op"], t["value"]) for t in parsed["targets"]] == [("<=", -5.0), (">=", 0.001), ("<", 25000.0)]
    assert parsed["feature_importance"] == {"top_n": 3}  # Azure forces 10
    assert parsed["fairness"]["sensitive_features"] == ["CRIM"]  # Azure drops a numeric one


def test_azure_config_on_adult_via_cli_passes_and_exits_0(adult, adult_azure_run):
    code, stdout, card = adult_azure_run
    assert code == 0
    assert "PASSED (2 of 2 targets met)" in stdout and "NOT PASSED" not in stdout
    y, p = adult.y, adult.pred
    assert card.json["model"] == {
        "name": "Adult income",
        "version": None,
        "type": "Classification",
        "summary": "Screens applications",
        "owner": None,
    }
    expected = [
        ("accuracy_score", ">=", 0.8, skm.accuracy_score(y, p)),
        ("precision_score", None, None, skm.precision_score(y, p, pos_label=POSITIVE)),
        ("recall_score", ">=", 0.001, skm.recall_score(y, p, pos_label=POSITIVE)),
    ]
    for got, (metric, op, value, measured) in zip(card.json["targets"], expected, strict=True):
        assert (got["metric"], got["op"], got["value"]) == (metric, op, value)
        assert got["measured"] == pytest.approx(measured, rel=1e-9)
        assert got["verdict"] == expected_verdict(measured, op, value)
        row = target_row(metric, op, value, len(adult.table), measured, None, None, got["verdict"])
        assert re.search(row, card.pages[0]), metric
    assert card.json["passed"] is True
    assert "PASSED: all 2 targets met." in card.pages[0]
    frame = metric_frame(adult, {"accuracy_score": skm.accuracy_score}, adult.table["race"])
    race = card.fairness("race", "accuracy_score")
    assert race["ratio"]["value"] == pytest.approx(frame.ratio(method="between_groups")["accuracy_score"])
    assert race["targets"] == []  # Azure's Fairness without threshold: reported, not judged
    assert card.json["feature_importance"] is None  # the Adult bundle has no explanation
    assert [f["feature"] for f in card.json["data_explorer"]] == ["age"]


def test_azure_config_on_regression_keeps_thresholds_bins_numeric_feature_and_honours_top_n(insurance, insurance_card):
    y, p = insurance.y, insurance.pred
    expected = {
        "r2_score": (">=", -5.0, skm.r2_score(y, p)),
        "mean_absolute_error": ("<=", 25000.0, skm.mean_absolute_error(y, p)),
        "mean_prediction": (">=", 0.001, float(np.mean(p))),
        "mean_squared_error": (None, None, skm.mean_squared_error(y, p)),
    }
    targets = {t["metric"]: t for t in insurance_card.json["targets"]}
    assert list(targets) == list(expected)
    for metric, (op, value, measured) in expected.items():
        got = targets[metric]
        assert (got["op"], got["value"]) == (op, value)
        assert got["measured"] == pytest.approx(measured, rel=1e-9)
        assert got["verdict"] == expected_verdict(measured, op, value) == ("REPORTED" if op is None else "PASS")
        row = target_row(
            metric, op, value, len(insurance.table), measured, got["ci_lower"], got["ci_upper"], got["verdict"]
        )
        assert re.search(row, insurance_card.pages[0]), metric  # e.g. "r2_score >= -5 ... PASS"
    # age is numeric with many values: binned by quartiles (Azure drops it)
    age = next(e for e in insurance_card.json["fairness"] if e["feature"] == "age")
    quartiles = pd.qcut(insurance.table["age"], q=4)
    assert age["binning"]["edges"] == pytest.approx(np.quantile(insurance.table["age"], [0, 0.25, 0.5, 0.75, 1]))
    # The bins' labels are the scorecard's own ("18-25"); the rows in each are pandas' quartiles.
    labels = pd.Series(age["binning"]["labels"])[quartiles.cat.codes].to_numpy()
    frame = metric_frame(insurance, {"mean_absolute_error": skm.mean_absolute_error}, pd.Series(labels))
    mae = insurance_card.fairness("age", "mean_absolute_error")
    assert {g["group"]: g["count"] for g in mae["by_group"]} == pd.Series(labels).value_counts().to_dict()
    assert mae["difference"]["value"] == pytest.approx(frame.difference(method="between_groups")["mean_absolute_error"])
    assert mae["ratio"]["value"] == pytest.approx(frame.ratio(method="between_groups")["mean_absolute_error"])
    fairness_page = insurance_card.section("Fairness")
    assert "age (numeric: quartile bins, edges" in fairness_page
    # top_n 3 honoured (Azure forces 10): the three largest importances of the bundle's explanation
    everything = insurance.doc["explanation"]["global"]
    top3 = sorted(everything, key=lambda f: -f["importance"])[:3]
    assert len(everything) > 3
    assert [f["feature"] for f in insurance_card.json["feature_importance"]] == [f["feature"] for f in top3]
    importance_page = insurance_card.section("Feature importance")
    assert "The 3 most important features" in importance_page


# --- 2 (rai-audit's format), 8: negative and exponent targets, the CLI's exit codes --------------


def test_rai_audit_negative_and_exponent_targets_via_cli_missed_target_exits_1(insurance, insurance_cli_run):
    code, stdout, card = insurance_cli_run
    assert code == 1
    first, second = stdout.splitlines()[:2]
    assert first.startswith("scorecard written to ") and first.endswith("scorecard.pdf: NOT PASSED")
    assert second.startswith("rai-audit: targets missed: 1 of 3 targets missed: mean_absolute_error <= 100")
    y, p = insurance.y, insurance.pred
    n = len(insurance.table)
    r2, mae = skm.r2_score(y, p), skm.mean_absolute_error(y, p)
    expected = [
        ("r2_score", ">=", -1000.0, r2, "PASS"),
        ("mean_absolute_error", "<=", 25000.0, mae, "PASS"),
        ("mean_absolute_error", "<=", 100.0, mae, "FAIL"),
    ]
    for got, (metric, op, value, measured, verdict) in zip(card.json["targets"], expected, strict=True):
        assert (got["metric"], got["op"], got["value"], got["verdict"]) == (metric, op, value, verdict)
        assert got["measured"] == pytest.approx(measured, rel=1e-9)
        assert re.search(target_row(metric, op, value, n, measured, None, None, verdict), card.pages[0]), metric
    # the thresholds as configured: -1e3 and 2.5e4 kept as numbers, printed unrounded
    assert re.search(loose("r2_score >= -1000") + " 338 ", card.pages[0])
    assert re.search(loose("mean_absolute_error <= 25000") + " 338 ", card.pages[0])
    assert card.json["passed"] is False
    assert "NOT PASSED: 1 of 3 targets missed." in card.pages[0]


def test_cli_bad_config_exits_2_with_one_line_and_writes_nothing(adult, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("targets:\n  - accuracy_score => 0.8\n")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        ["--dashboard", str(adult.dashboard), "--config", str(config), "--output", str(out), "--fail-on-missed-target"]
    )
    assert code == 2
    assert stderr.startswith("rai-audit: error: `targets[0]`: cannot read target 'accuracy_score => 0.8'")
    assert stderr.count("\n") == 1 and stdout == ""
    assert not out.exists()


def test_cli_missed_target_without_the_flag_exits_0(insurance, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("targets: [mean_absolute_error <= 1e2]\n")
    code, stdout, _ = run_cli(
        [
            "--dashboard",
            str(insurance.dashboard),
            "--config",
            str(config),
            "--output",
            str(tmp_path / "out"),
            "--bootstrap",
            "0",
        ]
    )
    assert code == 0
    assert "NOT PASSED (0 of 1 targets met)" in stdout
    assert json.loads((tmp_path / "out" / "scorecard.json").read_text())["passed"] is False


def test_fail_on_missed_target_raises_after_writing(compas_run):
    error, card = compas_run
    assert str(error).startswith("1 of 2 targets missed: accuracy_score >= 0.99: measured ")
    assert (card.folder / "scorecard.pdf").is_file() and (card.folder / "scorecard.json").is_file()
    A.verify_manifest(card.folder)
    assert card.json["passed"] is False and card.json["n_missed"] == 1
    assert "NOT PASSED: 1 of 2 targets missed." in card.pages[0]


# --- 5: multiclass and regression PDFs -----------------------------------------------------------


def test_multiclass_scorecard_metrics_confusion_matrix_and_fairness(compas, compas_run):
    _, card = compas_run
    y, p = compas.y, compas.pred
    classes = compas.doc["classes"]
    n = len(compas.table)
    expected = [
        ("accuracy_score", ">=", 0.99, skm.accuracy_score(y, p)),
        ("f1_score", ">=", 0.0, skm.f1_score(y, p, average="macro")),
    ]
    for got, (metric, op, value, measured) in zip(card.json["targets"], expected, strict=True):
        assert got["measured"] == pytest.approx(measured, rel=1e-9)
        row = target_row(metric, op, value, n, measured, None, None, expected_verdict(measured, op, value))
        assert re.search(row, card.pages[0]), metric
    assert card.json["performance"]["confusion_matrix"] == {
        "labels": classes,
        "matrix": skm.confusion_matrix(y, p, labels=classes).tolist(),
    }
    performance = card.section("Model performance")
    assert "Confusion matrix (rows: true class" in performance
    assert all(str(c) in card.page_of("Confusion matrix (rows: true class") for c in classes)
    frame = metric_frame(compas, {"accuracy_score": skm.accuracy_score}, compas.table["race"])
    race = card.fairness("race", "accuracy_score")
    assert {g["group"]: g["value"] for g in race["by_group"]} == pytest.approx(
        frame.by_group["accuracy_score"].to_dict()
    )
    # The difference is fairlearn's over the groups of at least 30 rows (the default min_group_size).
    counts = compas.table["race"].value_counts()
    kept = compas.table["race"].map(counts).to_numpy() >= 30
    assert (counts < 30).any()  # COMPAS's smallest race groups: shown, flagged, not compared
    compared = flm.MetricFrame(
        metrics={"accuracy_score": skm.accuracy_score},
        y_true=compas.y.to_numpy()[kept],
        y_pred=compas.pred.to_numpy()[kept],
        sensitive_features=compas.table["race"][kept],
    )
    assert race["difference"]["value"] == pytest.approx(compared.difference(method="between_groups")["accuracy_score"])
    assert [g["group"] for g in race["by_group"] if g["flag"]] == sorted(counts.index[counts < 30])
    assert all(f"too few rows ({counts[g]}): not compared" in card.text for g in counts.index[counts < 30])


def test_regression_scorecard_has_predicted_against_true_and_residuals(insurance, insurance_card):
    performance = insurance_card.section("Model performance")
    assert "Predicted against true values" in performance and "Residuals" in performance
    assert "Confusion matrix" not in insurance_card.text
    figures = insurance_card.json["performance"]
    residuals = (insurance.pred - insurance.y).to_numpy()
    assert figures["confusion_matrix"] is None
    assert sum(figures["residuals"]["counts"]) == sum(cell["rows"] for cell in figures["grid"]) == len(residuals)
    assert figures["residuals"]["edges"][0] == pytest.approx(residuals.min())
    assert figures["residuals"]["edges"][-1] == pytest.approx(residuals.max())
    assert figures["residuals"]["counts"] == np.histogram(residuals, bins=30)[0].tolist()
    for name, value in {
        "mean_absolute_error": skm.mean_absolute_error(insurance.y, insurance.pred),
        "r2_score": skm.r2_score(insurance.y, insurance.pred),
    }.items():
        assert re.search(rf"\b{name} \([^)]*\) {re.escape(shown(value))}(?= |$)", performance), name


def test_pdf_prints_the_configured_threshold(insurance, tmp_path):
    r2 = skm.r2_score(insurance.y, insurance.pred)
    assert f"{r2:.4g}" == "0.7323" and r2 < 0.73229  # the case: just below a threshold that rounds alike
    run_scorecard(
        insurance.dashboard,
        {"targets": ["r2_score >= 0.73229"]},
        tmp_path / "out",
        options=ScorecardOptions(bootstrap=0),
    )
    card = Card.load(tmp_path / "out")
    assert card.json["targets"][0]["verdict"] == "FAIL"
    assert re.search(loose("r2_score >= 0.73229") + " 338 0.7323 n/a FAIL", card.pages[0]), card.pages[0][:600]


# --- 6: the footer -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card_name, bundle_name", [("adult_card", "adult"), ("insurance_card", "insurance"), ("compas_run", "compas")]
)
def test_every_page_footer_has_page_count_run_id_and_manifest_hash(card_name, bundle_name, request):
    card = request.getfixturevalue(card_name)
    card = card[-1] if isinstance(card, tuple) else card
    bundle: Bundle = request.getfixturevalue(bundle_name)
    prefix = manifest_prefix(bundle.dashboard)
    assert card.json["bundle_manifest_sha256"].startswith(prefix)
    assert card.json["run_id"] == bundle.doc["run_id"]
    n = len(card.pages)
    assert n >= 3
    for i, page in enumerate(card.pages, 1):
        assert page.endswith(f"page {i} of {n}"), page[-200:]
        squeezed = "".join(page.split())  # a long id may wrap in the footer
        assert f"run{bundle.doc['run_id']}" in squeezed, i
        assert f"bundlemanifestsha256{prefix}" in squeezed, i


# --- 7: free text is text ------------------------------------------------------------------------


def test_free_text_is_printed_literally(adult_card):
    first = adult_card.pages[0]
    assert first.startswith(f"Model scorecard: {FREE_TEXT} ")
    assert "Owner Credit <risk> team & co" in first
    assert re.search(loose(f'in cohort "{MARKUP_COHORT}"'), first)
    assert "&lt;" not in adult_card.text and "&amp;" not in adult_card.text
    assert adult_card.json["model"]["name"] == FREE_TEXT
    assert re.search(loose(MARKUP_COHORT), adult_card.section("Cohorts"))


# --- 3: invalid configs --------------------------------------------------------------------------

BAD_CONFIGS = {
    "unknown metric": (
        {"targets": ["accuracy_scor >= 0.8"]},
        r"`targets\[0\]`: unknown metric 'accuracy_scor' for this model; the metrics are \[",
    ),
    "metric of another task": ({"targets": ["r2_score >= 0.8"]}, "unknown metric 'r2_score'"),
    "unknown fairness metric": (
        {"fairness": {"sensitive_features": ["sex"], "metrics": ["mean_absolute_error"]}},
        "`fairness`: unknown metric 'mean_absolute_error'",
    ),
    "operator =>": (
        {"targets": ["accuracy_score => 0.8"]},
        r"cannot read target 'accuracy_score => 0\.8'; write it as '<metric> <op> <number>', "
        r"with op one of \['>=', '<=', '>', '<', '=='\]",
    ),
    "operator ~": (
        {"targets": [{"metric": "accuracy_score", "op": "~", "value": 0.8}]},
        r"`targets\[0\]`: `op` must be one of \['>=', '<=', '>', '<', '=='\], got '~'",
    ),
    "no value": ({"targets": [{"metric": "accuracy_score", "op": ">="}]}, "`value` must be a number, got None"),
    "text value": (
        {"targets": [{"metric": "accuracy_score", "op": ">=", "value": "high"}]},
        "`value` must be a number, got 'high'",
    ),
    "unknown sensitive feature": (
        {"fairness": {"sensitive_features": ["gender"], "metrics": ["accuracy_score"]}},
        r"`fairness.sensitive_features`: unknown feature 'gender'; the features are \[",
    ),
    "unknown cohort": (
        {"targets": [{"metric": "accuracy_score", "op": ">=", "value": 0.5, "cohort": "Over 90"}]},
        r"`targets\[0\]`: unknown cohort 'Over 90'; the cohorts are \['Under 30', 'Nobody'",
    ),
    "unknown shown cohort": ({"cohorts": ["Over 90"]}, "`cohorts`: unknown cohort 'Over 90'"),
    "unknown data_explorer feature": (
        {"data_explorer": {"features": ["age", "salary"]}},
        "`data_explorer.features`: unknown feature 'salary'",
    ),
    "unknown top-level key": (
        {"target": ["accuracy_score >= 0.8"]},
        r"unknown scorecard config keys \['target'\]; allowed are \['model', 'targets'",
    ),
    "unknown model key": ({"model": {"nmae": "x"}}, "`model` must be a mapping with keys among"),
    "bad fairness kind": (
        {"fairness": {"sensitive_features": ["sex"], "metrics": ["accuracy_score"], "kind": "quotient"}},
        r"`fairness.kind` must be one of \['difference', 'ratio'\], got 'quotient'",
    ),
    "bad fairness target kind": (
        {
            "fairness": {
                "sensitive_features": ["sex"],
                "targets": [{"metric": "accuracy_score", "kind": "quotient", "op": "<=", "value": 0.1}],
            }
        },
        r"`fairness.targets\[0\]`: `kind` must be one of \['difference', 'ratio'\]",
    ),
    "fairness target without op": (
        {"fairness": {"sensitive_features": ["sex"], "targets": ["accuracy_score difference"]}},
        "a fairness target needs an operator and a value",
    ),
    "fairness target for another feature": (
        {
            "fairness": {
                "sensitive_features": ["sex"],
                "targets": [{"metric": "accuracy_score", "op": "<=", "value": 0.1, "sensitive_feature": "race"}],
            }
        },
        r"`sensitive_feature` 'race' is not among `fairness.sensitive_features` \['sex'\]",
    ),
    "cohort key on a fairness target": ({"targets": ["accuracy_score difference <= 0.1"]}, r"unknown keys \['kind'\]"),
    "top_n zero": ({"feature_importance": {"top_n": 0}}, r"`feature_importance.top_n` must be an integer >= 1"),
    "Azure kind placeholder": (
        {
            "Metrics": {},
            "Fairness": {
                "metric": ["accuracy_score"],
                "sensitive_features": ["sex"],
                "fairness_evaluation_kind": "difference OR ratio",
            },
        },
        r"`Fairness.fairness_evaluation_kind` must be one of \['difference', 'ratio'\], got 'difference OR ratio'",
    ),
    "Azure bad threshold": (
        {"Metrics": {"accuracy_score": {"threshold": "about 0.8"}}},
        r"`Metrics.accuracy_score.threshold` must be an operator and a number",
    ),
    "Azure unknown metric": (
        {"Metrics": {"accuracy": {}, "mean_absolute_error": {"threshold": "<=20"}}},
        "unknown metric 'mean_absolute_error'",
    ),
    "Azure unknown feature": (
        {"Metrics": {}, "DataExplorer": {"features": ["Occupation"]}},
        "unknown feature 'Occupation'",
    ),
    "Azure unknown key": ({"Metrics": {}, "Fairnes": {}}, r"unknown keys \['Fairnes'\] in an Azure ML scorecard"),
    "not a mapping": (["accuracy_score >= 0.8"], "the scorecard config must be a mapping of keys, got list"),
}


@pytest.mark.parametrize("config, match", list(BAD_CONFIGS.values()), ids=list(BAD_CONFIGS))
def test_invalid_config_is_refused_clearly_and_nothing_is_written(adult, tmp_path, config, match):
    out = tmp_path / "out"
    with pytest.raises(RAIInputError, match=match):
        run_scorecard(adult.dashboard, config, out, options=ScorecardOptions(bootstrap=0))
    assert nothing_written(tmp_path, out)


def test_unknown_metric_message_lists_the_allowed_metrics(adult, tmp_path):
    with pytest.raises(RAIInputError) as raised:
        run_scorecard(
            adult.dashboard,
            {"targets": ["accuracy_scor >= 0.8"]},
            tmp_path / "out",
            options=ScorecardOptions(bootstrap=0),
        )
    for name in adult.doc["model_overview"]["metric_names"]:
        assert f"'{name}'" in str(raised.value), name


def test_unreadable_config_files_are_refused(adult, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("targets: [accuracy_score >= 0.8\n")
    with pytest.raises(RAIInputError, match="is not valid YAML/JSON"):
        run_scorecard(adult.dashboard, broken, tmp_path / "out")
    with pytest.raises(RAIInputError, match="does not exist"):
        run_scorecard(adult.dashboard, tmp_path / "missing.yaml", tmp_path / "out")
    assert nothing_written(tmp_path, tmp_path / "out")


# --- 9: register_model ---------------------------------------------------------------------------


def test_register_model_copies_model_scorecard_and_pdf(adult_case, adult_azure_run, tmp_path):
    _, _, card = adult_azure_run
    out = tmp_path / "registered"
    record = register_model(adult_case.model, card.folder, out)
    for source in (adult_case.model, card.folder / "scorecard.json", card.folder / "scorecard.pdf"):
        assert (out / source.name).read_bytes() == source.read_bytes(), source.name
    assert record["model_sha256"] == hashlib.sha256(adult_case.model.read_bytes()).hexdigest()
    assert record["run_id"] == card.json["run_id"] and record["targets_met"] == 2
    A.verify_manifest(out)


@pytest.mark.parametrize("form", ["file without extension", "folder"])
def test_register_model_takes_a_model_artifact_in_any_form(adult_case, adult_azure_run, tmp_path, form):
    """KFP's Output[Model] is a path without extension, or a folder the training step fills."""
    _, _, card = adult_azure_run
    model = tmp_path / "model"
    if form == "folder":
        model.mkdir()
        shutil.copy2(adult_case.model, model / "weights")
        (model / "notes.txt").write_text("trained on Adult")
    else:
        shutil.copy2(adult_case.model, model)
    record = register_model(model, card.folder, tmp_path / "registered")
    copied = tmp_path / "registered" / ("weights" if form == "folder" else "model")
    assert copied.read_bytes() == adult_case.model.read_bytes()
    assert record["model_sha256"] == hashlib.sha256(adult_case.model.read_bytes()).hexdigest()
    A.verify_manifest(tmp_path / "registered")


def test_register_model_refuses_a_scorecard_that_did_not_pass(adult_case, adult_card, tmp_path):
    out = tmp_path / "registered"
    with pytest.raises(
        RAIInputError,
        match=rf"did not pass \({adult_card.json['n_missed']} targets missed, "
        rf"{adult_card.json['n_undefined']} could not be judged\); the model is not registered",
    ):
        register_model(adult_case.model, adult_card.folder, out)
    assert nothing_written(tmp_path, out)


def test_bootstrap_from_counts_matches_resampling_the_rows():
    """The scorecard draws a counted metric's resamples as one multinomial over (group, true,
    predicted) cells and a binary AUC's as row weights; both must have the distribution of
    drawing the rows themselves (recomputed here with scikit-learn on resampled rows)."""
    from sklearn.metrics import recall_score, roc_auc_score

    from rai_audit.steps.scorecard import _Rows

    rng = np.random.default_rng(0)
    n = 3000
    y_true = rng.choice(["no", "yes"], n, p=[0.7, 0.3])
    score = np.clip(np.where(y_true == "yes", 0.6, 0.4) + rng.normal(0, 0.25, n), 0, 1)
    y_pred = np.where(score > 0.5, "yes", "no")
    groups = rng.integers(0, 3, n)
    table = pd.DataFrame({A.Y_TRUE: y_true, A.Y_PRED: y_pred, A.proba_column(0): 1 - score, A.proba_column(1): score})
    rows = _Rows({"classes": ["no", "yes"], "task_type": "binary_classification", "positive_label": "yes"}, table)
    everything = np.arange(n)
    draws = 2000
    ours_recall = np.array([rows.resample("recall_score", everything, rng, groups, 3)() for _ in range(draws)])
    ours_auc = np.array([rows.resample("roc_auc_score", everything, rng)()[0] for _ in range(draws)])
    by_hand_recall, by_hand_auc = [], []
    for _ in range(draws):
        picked = rng.integers(0, n, n)
        t, p, g = y_true[picked], y_pred[picked], groups[picked]
        by_hand_recall.append([recall_score(t[g == k], p[g == k], pos_label="yes") for k in range(3)])
        by_hand_auc.append(roc_auc_score(t == "yes", score[picked]))
    by_hand_recall, by_hand_auc = np.array(by_hand_recall), np.array(by_hand_auc)
    for ours, by_hand in ((ours_recall, by_hand_recall), (ours_auc[:, None], np.array(by_hand_auc)[:, None])):
        # 2,000 draws each: means within ~3 standard errors, spreads within 10%.
        assert (
            np.abs(ours.mean(axis=0) - by_hand.mean(axis=0)).max()
            < 3 * by_hand.std(axis=0).max() / np.sqrt(draws) * 1.5
        )
        assert np.allclose(ours.std(axis=0), by_hand.std(axis=0), rtol=0.1)


# --- layout and provenance: no page left mostly blank, every figure says where it comes from ----


def _content_bottoms(pdf: Path, tmp: Path) -> list[float]:
    """Per page, how far down the page its content reaches (0..1, the footer left out), from the
    pages rendered in grey by poppler's pdftoppm and read as PGM."""
    subprocess.run(["pdftoppm", "-r", "24", "-gray", str(pdf), str(tmp / "page")], check=True)
    bottoms = []
    for page in sorted(tmp.glob("page-*.pgm"), key=lambda p: int(p.stem.split("-")[1])):
        data = page.read_bytes()
        magic, width, height, _, pixels = data.split(maxsplit=4)
        assert magic == b"P5"
        image = np.frombuffer(pixels[: int(width) * int(height)], dtype=np.uint8).reshape(int(height), int(width))
        body = image[: int(int(height) * 0.9)]  # the footer sits in the bottom margin
        inked = np.flatnonzero((body < 200).any(axis=1))
        bottoms.append((inked[-1] + 1) / len(body) if len(inked) else 0.0)
    return bottoms


@pytest.mark.parametrize("run", ["adult_card", "insurance_card"])
def test_no_page_of_the_details_is_more_than_half_blank(run, request, tmp_path):
    card = request.getfixturevalue(run)
    bottoms = _content_bottoms(card.folder / "scorecard.pdf", tmp_path)
    assert len(bottoms) == len(card.pages) >= 3
    # Page 1 is the summary and the last page ends the document; every page between is more than half full.
    assert all(b > 0.5 for b in bottoms[1:-1]), [round(b, 2) for b in bottoms]


def test_every_figure_says_where_it_comes_from_and_its_unit(insurance_card, adult_card):
    importance = insurance_card.section("Feature importance")
    n_rows = insurance_card.json["explanation_source"]["n_rows"]
    n_test = insurance_card.json["data"]["n_test"]
    assert f"over {n_rows:,} explained test rows (" in importance
    assert "Computed with LinearExplainer (linear SHAP values of the model itself)" in importance
    # Units: a recall is a share of the actual positives, an AUC no share at all.
    performance = adult_card.section("Model performance")
    assert "recall_score (share of actual positives)" in performance
    # A regression's every metric is in the target's units (or none), never a share of rows.
    regression = insurance_card.section("Model performance")
    shown_metrics = [m for m in ALL_REGRESSION_METRICS if re.search(rf"\b{m} \(", regression)]
    assert "median_absolute_error" in shown_metrics and len(shown_metrics) >= 5
    assert "share of rows" not in regression and "median_absolute_error (target units)" in regression
    assert "roc_auc_score (0 to 1, 0.5 is chance)" in performance and "roc_auc_score (share" not in performance
    assert n_rows <= n_test


def test_importances_of_a_mimic_say_so_with_its_fidelity(insurance_card):
    from rai_audit.report.scorecard import render_scorecard_html

    card = json.loads(json.dumps(insurance_card.json))
    card["explanation_source"].update(
        method="mimic",
        explainer="LightGBM surrogate on the raw features",
        fidelity={"metric": "r2", "value": 0.9712},
        rows={"selection": "all", "total": card["data"]["n_test"]},
    )
    text = re.sub(r"<[^>]+>", "", render_scorecard_html(card))
    assert f"(all {card['data']['n_test']:,})" in text
    assert (
        "These are the importances of a mimic: a LightGBM surrogate trained to imitate the model, "
        "which agrees with the model on the test set with r2 0.9712; they are not the model's own exact "
        "SHAP values and describe the model only as far as the mimic imitates it."
    ) in " ".join(text.split())
