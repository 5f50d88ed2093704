"""dashboard.html's script: the committed bundle is what its sources build to, and the page's
own computations (filters, metrics, number formats in dashboard/src) agree with Python's.

The bundle (components/rai_audit/report/templates/dashboard.js) is built from dashboard/ by
esbuild (``make dashboard``) and committed; a fresh build into a temporary file must give the
same bytes. The JavaScript unit tests (dashboard/test, ``node --test``) read cases whose expected
values are computed here: rai_audit.core.cohorts.filter_mask on frames with missing values of
every dtype, scikit-learn's metrics, Python's "%g".
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from rai_audit.core.cohorts import cohort_frame, filter_mask
from rai_audit.report.dashboard import ENV, _filter_text, _fmt, effect_unit
from rai_audit.steps.gather import _page_feature

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboard"
BUNDLE = ROOT / "components" / "rai_audit" / "report" / "templates" / "dashboard.js"


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed (Node 20+ builds and tests the dashboard's script)")
    if not (DASHBOARD / "node_modules" / "esbuild").is_dir():
        pytest.fail("dashboard/node_modules is missing: run `make dashboard` (npm ci in dashboard/)")
    return path


def test_committed_bundle_is_built_from_the_sources(node: str, tmp_path: Path) -> None:
    out = tmp_path / "dashboard.js"
    subprocess.run([node, "build.mjs", str(out)], cwd=DASHBOARD, check=True, capture_output=True, text=True)
    built = out.read_bytes()
    assert built == BUNDLE.read_bytes(), (
        "templates/dashboard.js is not what dashboard/ builds to: run `make dashboard` and commit the bundle"
    )


def test_build_is_deterministic(node: str, tmp_path: Path) -> None:
    outs = [tmp_path / "a.js", tmp_path / "b.js"]
    for out in outs:
        subprocess.run([node, "build.mjs", str(out)], cwd=DASHBOARD, check=True, capture_output=True, text=True)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    text = outs[0].read_text(encoding="utf-8")
    # One IIFE: nothing leaks into the page's globals (the Vega bundle defines its own).
    code = "\n".join(line for line in text.splitlines() if not line.startswith("//"))  # the banner
    assert code.startswith("(()=>{") and "Copyright (c) 2015-present Jason Miller" in text
    # No code loaded at run time: everything is in the one bundle.
    assert "import(" not in text


# --- the frame the filters are checked on: every dtype, with missing values --------------------


def _frame() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    rng = np.random.default_rng(7)
    n = 60
    age = rng.integers(17, 80, n).astype(float)
    age[[3, 11, 29]] = np.nan
    score = pd.array(rng.integers(0, 5, n), dtype="Int64")
    score[[0, 7]] = pd.NA
    sex = pd.Series(rng.choice(["Female", "Male"], n), dtype=object)
    sex[[5, 6, 40]] = None
    grade = pd.Series(
        pd.Categorical(rng.choice(["low", "mid", "high"], n), categories=["low", "mid", "high"], ordered=True)
    )
    grade[[9]] = np.nan
    flag = pd.Series(rng.integers(0, 2, n).astype(bool))
    income = pd.Series(rng.normal(50_000, 20_000, n))
    features = pd.DataFrame({"age": age, "score": score, "sex": sex, "grade": grade, "flag": flag, "income": income})
    y_true = pd.Series(rng.choice(["<=50K", ">50K"], n))
    y_pred = y_true.where(rng.random(n) < 0.7, rng.choice(["<=50K", ">50K"], n))
    return features, y_true, y_pred


FILTERS = [
    {"column": "age", "op": "<", "value": 30},
    {"column": "age", "op": ">=", "value": 30.5},
    {"column": "age", "op": "==", "value": None},
    {"column": "age", "op": "!=", "value": None},
    {"column": "age", "op": "!=", "value": 40},
    {"column": "age", "op": "between", "value": [25, 45]},
    {"column": "age", "op": "in", "value": [20, 21, 22]},
    {"column": "age", "op": "not in", "value": [20, 21, 22]},
    {"column": "score", "op": "==", "value": 3},
    {"column": "score", "op": "!=", "value": 3},
    {"column": "score", "op": "<=", "value": 1},
    {"column": "score", "op": "not in", "value": [0, 4]},
    {"column": "score", "op": "==", "value": None},
    {"column": "sex", "op": "==", "value": "Female"},
    {"column": "sex", "op": "!=", "value": "Female"},
    {"column": "sex", "op": "in", "value": ["Male"]},
    {"column": "sex", "op": "not in", "value": ["Male"]},
    {"column": "sex", "op": "==", "value": None},
    {"column": "grade", "op": "==", "value": "mid"},
    {"column": "grade", "op": "not in", "value": ["low"]},
    {"column": "grade", "op": "!=", "value": None},
    {"column": "flag", "op": "==", "value": True},
    {"column": "flag", "op": "!=", "value": False},
    {"column": "income", "op": ">", "value": 55_000.5},
    {"column": "y_true", "op": "==", "value": ">50K"},
    {"column": "y_pred", "op": "!=", "value": ">50K"},
    {"column": "error", "op": "==", "value": True},
    {"column": "error", "op": "==", "value": False},
    {"column": "correct", "op": "==", "value": True},
    {"column": "classification_outcome", "op": "in", "value": ["False positive", "True negative"]},
    {"column": "row_id", "op": "between", "value": [10, 20]},
    {"and": [{"column": "sex", "op": "==", "value": "Female"}, {"column": "age", "op": "<", "value": 50}]},
    {
        "or": [
            {"and": [{"column": "sex", "op": "!=", "value": "Male"}, {"column": "score", "op": ">", "value": 2}]},
            {"column": "grade", "op": "in", "value": ["high"]},
            {
                "and": [
                    {"column": "error", "op": "==", "value": True},
                    {"or": [{"column": "age", "op": "==", "value": None}]},
                ]
            },
        ]
    },
]


def _table(features: pd.DataFrame, y_true: pd.Series, y_pred: pd.Series, rows: np.ndarray) -> dict:
    """DATA.table of these rows, as gather writes it (features encoded by gather's own code)."""
    frame = cohort_frame(features, y_true, y_pred, is_classifier=True)
    part = frame.iloc[rows]
    categorical = {"sex", "grade", "flag"}
    return {
        "n": len(rows),
        "of": len(frame),
        "seed": 0,
        "requested": len(rows),
        "sampled": len(rows) < len(frame),
        "row_id": rows.tolist(),
        "y_true": part["y_true"].tolist(),
        "y_pred": part["y_pred"].tolist(),
        "error": part["error"].astype(float).tolist(),
        "probability": None,
        "features": [_page_feature(f, part[f], f in categorical) for f in features.columns],
        "local_importance": None,
        "causal_effects": None,
    }


def _filter_cases() -> list[dict]:
    features, y_true, y_pred = _frame()
    frame = cohort_frame(features, y_true, y_pred, is_classifier=True)
    doc = {"task_type": "binary_classification", "classes": ["<=50K", ">50K"], "positive_label": ">50K"}
    everything = np.arange(len(frame))
    # A sample of the rows too: row_id stays the test row's position.
    sample = np.sort(np.random.default_rng(1).choice(len(frame), 25, replace=False))
    out = []
    for name, rows in (("all rows", everything), ("a sample", sample)):
        masks = [filter_mask(f, frame)[rows].astype(int).tolist() for f in FILTERS]
        assert all(0 < sum(m) < len(rows) for m in masks[:3]), "the cases must select some rows and not all"
        out.append(
            {
                "name": name,
                "doc": doc,
                "table": json.loads(json.dumps(_table(features, y_true, y_pred, rows), default=_plain)),
                "cases": [{"filter": f, "mask": m} for f, m in zip(FILTERS, masks)],
            }
        )
    return out


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value))


# --- metrics against scikit-learn ---------------------------------------------------------------


def _nan_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _binary_expected(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, positive: str, labels: list) -> dict:
    t, p = y_true == positive, y_pred == positive
    tn, fp, fn, tp = skm.confusion_matrix(t, p, labels=[False, True]).ravel()
    kw = {"pos_label": positive, "zero_division": np.nan}
    return {
        "count": len(y_true),
        "accuracy_score": skm.accuracy_score(y_true, y_pred),
        "error_rate": 1 - skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy_score": skm.balanced_accuracy_score(y_true, y_pred),
        "precision_score": _nan_none(skm.precision_score(y_true, y_pred, **kw)),
        "recall_score": _nan_none(skm.recall_score(y_true, y_pred, **kw)),
        "f1_score": _nan_none(skm.f1_score(y_true, y_pred, **kw)),
        "selection_rate": float(np.mean(p)),
        "false_positive_rate": _nan_none(fp / (fp + tn) if fp + tn else math.nan),
        "false_negative_rate": _nan_none(fn / (fn + tp) if fn + tp else math.nan),
        "roc_auc_score": skm.roc_auc_score(t, proba),
        "log_loss": skm.log_loss(t, proba, labels=[False, True]),
        "confusion_matrix": {"labels": labels, "matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()},
    }


def _metric_cases() -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(3)
    labels = ["no", "yes"]
    cases, thresholds = [], []
    for n in (200, 17):
        proba = np.round(rng.random(n), 2)  # ties among the scores, as ROC AUC must handle
        y_true = np.where(rng.random(n) < proba, "yes", "no")
        y_pred = np.where(proba >= 0.5, "yes", "no")
        cases.append(
            {
                "name": f"binary, {n} rows",
                "kind": "classification",
                "y_true": y_true.tolist(),
                "y_pred": y_pred.tolist(),
                "labels": labels,
                "positive": "yes",
                "probability": proba.tolist(),
                "expected": _binary_expected(y_true, y_pred, proba, "yes", labels),
            }
        )
        for threshold in (0.0, 0.3, 0.5, 0.77, 1.0):
            hit, truth = proba >= threshold, y_true == "yes"
            tn, fp, fn, tp = skm.confusion_matrix(truth, hit, labels=[False, True]).ravel()
            kw = {"zero_division": np.nan}
            thresholds.append(
                {
                    "y_true": y_true.tolist(),
                    "probability": proba.tolist(),
                    "positive": "yes",
                    "threshold": threshold,
                    "expected": {
                        "accuracy_score": skm.accuracy_score(truth, hit),
                        "precision_score": _nan_none(skm.precision_score(truth, hit, **kw)),
                        "recall_score": _nan_none(skm.recall_score(truth, hit, **kw)),
                        "f1_score": _nan_none(skm.f1_score(truth, hit, **kw)),
                        "selection_rate": float(hit.mean()),
                        "false_positive_rate": _nan_none(fp / (fp + tn) if fp + tn else math.nan),
                        "false_negative_rate": _nan_none(fn / (fn + tp) if fn + tp else math.nan),
                    },
                }
            )
    # No positive row: recall undefined (null), not 0.
    y_true, y_pred = np.array(["no"] * 5), np.array(["no", "yes", "no", "no", "no"])
    proba = np.array([0.1, 0.8, 0.2, 0.3, 0.4])
    expected = _binary_expected(y_true, y_pred, proba, "yes", labels)
    expected.pop("roc_auc_score")
    cases.append(
        {
            "name": "binary, no positive row",
            "kind": "classification",
            "y_true": y_true.tolist(),
            "y_pred": y_pred.tolist(),
            "labels": labels,
            "positive": "yes",
            "probability": None,
            "expected": {k: v for k, v in expected.items() if k != "log_loss"},
        }
    )
    # Multiclass: macro averages over the classes present.
    classes = ["a", "b", "c", "d"]
    y_true = rng.choice(classes[:3], 150)
    y_pred = np.where(rng.random(150) < 0.6, y_true, rng.choice(classes, 150))
    kw = {"average": "macro", "zero_division": np.nan}
    cases.append(
        {
            "name": "multiclass",
            "kind": "classification",
            "y_true": y_true.tolist(),
            "y_pred": y_pred.tolist(),
            "labels": classes,
            "positive": None,
            "probability": None,
            "expected": {
                "accuracy_score": skm.accuracy_score(y_true, y_pred),
                "balanced_accuracy_score": skm.balanced_accuracy_score(y_true, y_pred),
                "precision_score": skm.precision_score(y_true, y_pred, **kw),
                "recall_score": skm.recall_score(y_true, y_pred, **kw),
                "f1_score": skm.f1_score(y_true, y_pred, **kw),
                "confusion_matrix": {
                    "labels": classes,
                    "matrix": skm.confusion_matrix(y_true, y_pred, labels=classes).tolist(),
                },
            },
        }
    )
    for n in (120, 4):
        y_true = rng.normal(10, 3, n)
        y_pred = y_true + rng.normal(0.5, 2, n)
        cases.append(
            {
                "name": f"regression, {n} rows",
                "kind": "regression",
                "y_true": y_true.tolist(),
                "y_pred": y_pred.tolist(),
                "expected": {
                    "mean_absolute_error": skm.mean_absolute_error(y_true, y_pred),
                    "median_absolute_error": skm.median_absolute_error(y_true, y_pred),
                    "mean_squared_error": skm.mean_squared_error(y_true, y_pred),
                    "root_mean_squared_error": skm.root_mean_squared_error(y_true, y_pred),
                    "r2_score": skm.r2_score(y_true, y_pred),
                    "mean_prediction": float(np.mean(y_pred)),
                    "mean_error": float(np.mean(y_pred - y_true)),
                },
            }
        )
    return cases, thresholds


# (effect record, the causal result's treatments): the unit each is shown in.
EFFECT_UNIT_CASES = [
    ({"treatment": "sex", "level": "Male", "control": "Female"}, []),
    ({"treatment": "bmi", "level": None}, [{"feature": "bmi", "values": None}]),
    ({"treatment": "bmi", "level": None}, [{"feature": "bmi"}]),  # a bundle from before values
    ({"treatment": "bmi", "level": None}, []),
    ({"treatment": "SEX", "level": None}, [{"feature": "SEX", "values": [1.0, 2.0]}]),
    ({"treatment": "smoker", "level": None}, [{"feature": "smoker", "values": [0.0, 1.0]}]),
    ({"treatment": "grade", "level": None}, [{"feature": "grade", "values": [1.0, 3.0]}]),
    ({"treatment": "dose", "level": None}, [{"feature": "dose", "values": [0.0, 0.5]}]),
    ({"treatment": "income", "level": None}, [{"feature": "income", "values": [1000.0, 2500.0]}]),
]


def test_effect_units_say_what_an_effect_is_of():
    units = [effect_unit(e, t) for e, t in EFFECT_UNIT_CASES]
    assert units == [
        "Male vs Female",
        "per 1 unit of bmi",
        "per 1 unit of bmi",
        "per 1 unit of bmi",
        "2 vs 1",
        "1 vs 0",
        "per 1 unit of grade (grade takes only 1 and 3)",
        "per 1 unit of dose (dose takes only 0 and 0.5)",
        "per 1 unit of income (income takes only 1000 and 2500)",
    ]


def _format_cases() -> dict:
    floats = [
        0.1265892758430072,
        1 / 3,
        2 / 3,
        0.00012345,
        1.2345e-05,
        123456.789,
        12280.5,
        0.5,
        1e-10,
        -0.0421,
        2.5e20,
        0.125,
        0.0625,
        99.995,
    ]
    return {
        "fmt": [[v, _fmt(v)] for v in floats + [42370000.4, -13620.5, 99994.9, 9259.3, -1151.5, 1000.2, 9999.7, 999.95]]
        + [[16281, "16281"], [None, "n/a"], ["text", "text"]],
        # The PDF's signed figures (effects, changes from a baseline) as the page's.
        "fmt_signed": [[v, ENV.filters["fmt_signed"](v)] for v in [*floats, 0, 0.0, 3, -1234.5, 9259.3, None]],
        "g": [[v, p, f"{v:.{p}g}"] for v in floats + [1162.0000000000002, 1151.5] for p in (3, 4, 6)],
        "count": [[n, f"{n:,}"] for n in (0, 7, 999, 1000, 16281, 1_000_000, 123_456_789)],
        "effect_unit": [[e, t, effect_unit(e, t)] for e, t in EFFECT_UNIT_CASES],
        "filter_text": [
            [f, _filter_text(f)] for f in [None, *FILTERS, {"column": "x", "op": "<=", "value": 1162.0000000000002}]
        ],
    }


# The cases include rows without a positive class and predictions of a class absent from y_true.
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_page_computations_agree_with_python(node: str, tmp_path: Path) -> None:
    metrics, thresholds = _metric_cases()
    cases = {"filters": _filter_cases(), "metrics": metrics, "thresholds": thresholds, "format": _format_cases()}
    file = tmp_path / "cases.json"
    file.write_text(json.dumps(cases, default=_plain, allow_nan=False), encoding="utf-8")
    result = subprocess.run(
        [node, "--test", "test/"],
        cwd=DASHBOARD,
        env={"PATH": str(Path(node).parent), "RAI_DASHBOARD_CASES": str(file)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# skipped 0" in result.stdout, result.stdout[-3000:]
