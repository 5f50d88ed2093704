"""The scorecard step: judge the model against its targets and write the PDF and the verdict.

Reads a gathered dashboard bundle and a scorecard config (see
``rai_audit.core.scorecard_config``). Every figure is computed from the bundle's
``tables/predictions.parquet`` with the same metric functions gather uses, so it equals the
dashboard's number; each target also gets a bootstrap confidence interval (``bootstrap``
resamples of the rows, seeded; percentile interval). A target is met or missed by its
measured value. A value that cannot be computed on these rows (a metric on an empty cohort,
recall of rows without positives, a fairness figure with fewer than two groups of
``min_group_size`` rows) is UNDEFINED: not a miss, but no pass either (a gate never lets
through what could not be judged).

Writes ``scorecard.pdf`` (HTML rendered by weasyprint: PDF/A-3b, tagged, with
``scorecard.json`` and the bundle's ``manifest.json`` attached), ``scorecard.json`` (every
target, value, interval and verdict, and ``passed``) and a manifest. With ``sign`` the PDF
gets a PAdES signature, with the key and certificate of the files ``RAI_AUDIT_SIGNING_KEY``
and ``RAI_AUDIT_SIGNING_CERT`` name (default: a Kubernetes TLS secret mounted at
``/var/run/secrets/rai-audit-signing``). With ``fail_on_missed_target`` the step reports and
then fails (exit 1) when a target is missed, to stop a pipeline.

``rai-audit scorecard sign PDF --key KEY --cert CERT`` signs a scorecard PDF afterwards;
``rai-audit scorecard verify PDF [--bundle DIR]`` checks one (``rai_audit.report.evidence``).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import operator
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.core.cohorts import filter_mask, load_cohorts, numeric_bins, validate_cohorts
from rai_audit.core.fairness import KINDS, describe, group_flag, percentile_interval, spread
from rai_audit.core.loading import copy_model, model_file, model_sha256
from rai_audit.core.metrics import (
    COUNTED_METRICS,
    COUNTED_ROWS,
    PROBA_METRICS,
    binary_roc_auc,
    class_positions,
    confusion,
    confusion_counts,
    counted_metric,
    counted_rows,
    group_labels,
    group_sort_key,
    metric_from_counts,
    metric_functions,
    signed_metrics,
    target_can_be_negative,
    weighted_roc_auc,
)
from rai_audit.core.options import DEFAULT_MIN_GROUP_SIZE
from rai_audit.core.scorecard_config import check_against_bundle, parse_scorecard_config
from rai_audit.specs import ScorecardOptions
from rai_audit.steps._cli import add_options, options_from_args, run_cli

KIND = "scorecard"
PDF_FILE = "scorecard.pdf"
RESULT_FILE = "scorecard.json"
NO_BASELINE = "NO BASELINE"
PASS, FAIL, UNDEFINED, REPORTED = "PASS", "FAIL", "UNDEFINED", "REPORTED"
COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
EXPLORER_BINS = 6
EXPLORER_TOP = 8
GRID = 30  # bins per axis of the predicted-vs-true grid


@dataclass
class ScorecardResult:
    run_id: str
    passed: bool
    n_targets: int
    n_missed: int
    headline: dict[str, float]
    pdf: Path
    n_undefined: int = 0


class TargetsMissed(Exception):
    """Raised after the scorecard is written when ``fail_on_missed_target`` is set."""


def verdict(value: float | None, op: str | None, target: float | None) -> str:
    """PASS or FAIL by the measured value; UNDEFINED (not a miss, no pass) without one."""
    if op is None or target is None:  # no target: a config gives op and value together or neither
        return REPORTED
    if value is None or not math.isfinite(value):
        return UNDEFINED
    return PASS if COMPARE[op](value, target) else FAIL


class _Rows:
    """The bundle's test rows and how to compute a metric on any subset of them."""

    def __init__(self, doc: dict[str, Any], table: pd.DataFrame) -> None:
        self.table = table
        self.y_true = table[A.Y_TRUE].to_numpy()
        self.y_pred = table[A.Y_PRED].to_numpy()
        classes = doc["classes"] if doc["task_type"] != "regression" else None
        proba_columns = [A.proba_column(i) for i in range(len(classes or []))]
        self.proba: np.ndarray | None = (
            table[proba_columns].to_numpy() if proba_columns and proba_columns[0] in table else None
        )
        # Metrics (hundreds of calls with the bootstrap) run on the classes' positions.
        self._true, self._pred, metric_classes, positive = class_positions(
            self.y_true, self.y_pred, classes, doc["positive_label"]
        )
        self.fns = metric_functions(
            doc["task_type"], classes=metric_classes, positive=positive, with_proba=self.proba is not None
        )
        # Counted on positions when every label is one of the classes (class_positions gave ints).
        self._counted = metric_classes is not None and self._true.dtype.kind == "i" and self._pred.dtype.kind == "i"
        self._n_classes, self._positive = len(metric_classes or []), positive

    @property
    def _scores(self) -> np.ndarray:
        """``proba``, where a metric that needs it is computed (such a metric exists only with it)."""
        return cast(np.ndarray, self.proba)

    def _binary_auc(self, name: str) -> bool:
        return self._counted and name == "roc_auc_score" and self._positive is not None and self.proba is not None

    def counted(self, name: str, rows: np.ndarray) -> int | None:
        """The rows a metric that is a share of rows counts on ``rows`` (metrics.counted_rows)."""
        if not self._counted or name not in COUNTED_ROWS:
            return None
        counts = confusion_counts(self._true[rows], self._pred[rows], self._n_classes)
        return counted_rows(name, counts, self._positive)

    def metric(self, name: str, rows: np.ndarray) -> float:
        if self._counted and name in COUNTED_METRICS:
            return counted_metric(name, self._true[rows], self._pred[rows], self._n_classes, self._positive)
        if self._binary_auc(name):
            return binary_roc_auc(self._true[rows] == self._positive, self._scores[rows, self._positive])
        fn = self.fns[name]
        if name in PROBA_METRICS:
            return fn(self._true[rows], self._pred[rows], proba=self._scores[rows])
        return fn(self._true[rows], self._pred[rows])

    def resample(
        self, name: str, rows: np.ndarray, rng: np.random.Generator, codes: np.ndarray | None = None, n_groups: int = 1
    ) -> Callable[[], np.ndarray]:
        """f(): ``name`` per group (``codes``; one group if None) on a new bootstrap resample
        of ``rows`` (drawn with replacement, as many as there are).

        A counted metric depends on the rows only through their counts per (group, true
        class, predicted class), and the counts of a resample are one multinomial draw over
        those few cells: the same distribution as drawing the rows, without touching a
        million of them 200 times (most of the 1,000,000-row scorecard's 147 s). A binary ROC
        AUC takes each row's count in the resample as a weight over scores sorted once."""
        n = len(rows)
        groups = np.zeros(n, np.int64) if codes is None else codes[rows].astype(np.int64)
        if self._counted and name in COUNTED_METRICS:
            k = self._n_classes
            cells = np.bincount((groups * k + self._true[rows]) * k + self._pred[rows], minlength=n_groups * k * k)
            shares = cells / max(n, 1)  # no rows: no interval is drawn (_interval)
            return lambda: np.array(
                [
                    metric_from_counts(name, c, self._positive)
                    for c in rng.multinomial(n, shares).reshape(n_groups, k, k)
                ]
            )
        if self._binary_auc(name) and codes is None:
            auc = weighted_roc_auc(self._true[rows] == self._positive, self._scores[rows, self._positive])
            return lambda: np.array([auc(np.bincount(rng.integers(0, n, n), minlength=n))])

        def values() -> np.ndarray:
            picked = rows[rng.integers(0, n, n)]
            if codes is None:
                return np.array([self.metric(name, picked)])
            return _group_values(self, name, codes, n_groups, picked)

        return values


def _replicates(replicate: Callable[[], Any], n_rows: int, options: ScorecardOptions) -> np.ndarray | None:
    """``replicate()`` on ``options.bootstrap`` resamples of the ``n_rows`` rows (None: no bootstrap)."""
    if options.bootstrap == 0 or n_rows < 2:
        return None
    return np.array([replicate() for _ in range(options.bootstrap)], dtype=float)


def _interval(
    replicate: Callable[[], float], n_rows: int, options: ScorecardOptions
) -> tuple[float | None, float | None]:
    """Bootstrap percentile interval of a statistic, ``replicate()`` giving it on one resample
    of the ``n_rows`` rows; none where it is mostly undefined."""
    return percentile_interval(_replicates(replicate, n_rows, options), options.alpha)


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _cohort_masks(doc: dict[str, Any], table: pd.DataFrame, extra: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> {mask, filter, source}: the bundle's cohorts, error-analysis leaves, extra cohorts."""
    cohorts = {c["name"]: {"filter": c["filter"], "source": "user"} for c in doc["cohorts"]}
    leaves = (doc.get("error_analysis") or {}).get("cohort_errors", {})
    for source in ("worst_leaves", "best_leaves"):
        for leaf in leaves.get(source, []):
            cohorts.setdefault(leaf["name"], {"filter": leaf["filter"], "source": source.replace("_", " ")})
    validate_cohorts(extra, table)
    for c in extra:
        if c["name"] in cohorts:  # a second meaning of one name would contradict the dashboard
            raise RAIInputError(
                f"extra cohort {c['name']!r} has the name of a cohort of the bundle "
                f"({cohorts[c['name']]['source']}); give it another name"
            )
        cohorts[c["name"]] = {"filter": c["filter"], "source": "scorecard"}
    for c in cohorts.values():
        c["mask"] = filter_mask(c["filter"], table) if c["filter"] is not None else np.ones(len(table), bool)
    return cohorts


def _targets(
    config: dict[str, Any],
    rows: _Rows,
    cohorts: dict[str, dict[str, Any]],
    options: ScorecardOptions,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    everything = np.arange(len(rows.table))
    results = []
    for t in config["targets"]:
        selected = everything if t["cohort"] is None else np.flatnonzero(cohorts[t["cohort"]]["mask"])
        value = _finite(rows.metric(t["metric"], selected))
        replicate = rows.resample(t["metric"], selected, rng)
        low, high = _interval(lambda: replicate()[0], len(selected), options)
        results.append(
            {
                **t,
                "rows": int(len(selected)),
                "measured": value,
                "ci_lower": low,
                "ci_upper": high,
                "verdict": verdict(value, t["op"], t["value"]),
                "reason": None
                if value is not None
                else "the cohort selects no test rows"
                if len(selected) == 0
                else f"{t['metric']} is undefined on these rows",
            }
        )
    return results


def _group_values(rows: _Rows, metric: str, codes: np.ndarray, n_groups: int, selected: np.ndarray) -> np.ndarray:
    """``metric`` per group on the ``selected`` rows; groups as integer codes (comparing a
    million text labels per group and resample took most of a 1,000,000-row scorecard)."""
    mine = codes[selected]
    values = np.full(n_groups, np.nan)
    for g in range(n_groups):
        members = mine == g
        if members.any():
            values[g] = rows.metric(metric, selected[members])
    return values


def _fairness(
    config: dict[str, Any], doc: dict[str, Any], rows: _Rows, options: ScorecardOptions, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Per sensitive feature and metric: each group's value and interval, and the difference
    and ratio between the groups of at least ``min_group_size`` rows (core.fairness, as gather),
    with intervals from the same bootstrap resamples."""
    fairness = config["fairness"]
    if not fairness:
        return []
    everything = np.arange(len(rows.table))
    size = _min_group_size(doc)
    signed = signed_metrics(fairness["metrics"], target_signed=target_can_be_negative(doc["task_type"], rows.y_true))
    entries = []
    for feature in fairness["sensitive_features"]:
        labels, binning = group_labels(rows.table[feature])
        groups = sorted(pd.unique(labels), key=group_sort_key(binning))
        codes = pd.Categorical(labels, categories=groups).codes
        counts = np.bincount(codes, minlength=len(groups))
        compared = counts >= size
        per_metric = []
        for metric in fairness["metrics"]:
            values = _group_values(rows, metric, codes, len(groups), everything)
            counted = [rows.counted(metric, everything[codes == g]) for g in range(len(groups))]
            judged = [
                t for t in fairness["targets"] if t["metric"] == metric and t["sensitive_feature"] in (None, feature)
            ]
            # One set of resamples for the groups' intervals and both figures' (groups x resamples).
            sample = rows.resample(metric, everything, rng, codes, len(groups))
            replicates = _replicates(sample, len(everything), options)
            group_low, group_high = percentile_interval(replicates, options.alpha)
            figures = {}
            for kind in KINDS:
                figure = describe(
                    values,
                    counts,
                    size,
                    kind,
                    signed=metric in signed,
                    counted=counted,
                    counted_what=COUNTED_ROWS.get(metric, "rows"),
                )
                low, high = (
                    (None, None)
                    if replicates is None or figure["value"] is None
                    else percentile_interval(
                        # replicates is a matrix (resamples x groups): spread gives an array
                        cast(np.ndarray, spread(replicates, compared, kind, signed=metric in signed)),
                        options.alpha,
                    )
                )
                figures[kind] = {
                    "value": figure["value"],
                    "ci_lower": low,
                    "ci_upper": high,
                    "reason": figure["reason"],
                    "groups_compared": figure["groups_compared"],
                }
            per_metric.append(
                {
                    "metric": metric,
                    "signed": metric in signed,
                    "by_group": [
                        {
                            "group": g,
                            "count": int(n),
                            "value": _finite(v),
                            "too_few_rows": bool(n < size),
                            "flag": group_flag(n, size),
                            "ci_lower": None if group_low is None else group_low[i],
                            "ci_upper": None if group_high is None else group_high[i],
                        }
                        for i, (g, n, v) in enumerate(zip(groups, counts, values))
                    ],
                    **figures,
                    "targets": [
                        {
                            **t,
                            "sensitive_feature": feature,
                            "measured": figures[t["kind"]]["value"],
                            "ci_lower": figures[t["kind"]]["ci_lower"],
                            "ci_upper": figures[t["kind"]]["ci_upper"],
                            "verdict": verdict(figures[t["kind"]]["value"], t["op"], t["value"]),
                            "reason": figures[t["kind"]]["reason"],
                        }
                        for t in judged
                    ],
                }
            )
        entries.append(
            {"feature": feature, "binning": binning, "groups": groups, "min_group_size": size, "metrics": per_metric}
        )
    return entries


def _min_group_size(doc: dict[str, Any]) -> int:
    """The bundle's min_group_size (bundles gathered before it existed: the default)."""
    return int(doc.get("min_group_size", DEFAULT_MIN_GROUP_SIZE))


def _read_baseline(path: str | Path | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The baseline audit's scorecard.json (or None) and what is known of where it came from.

    ``path``: a scorecard folder, its scorecard.json, or a baseline folder whose
    baseline.json says which archived audit it is or that the model had none.
    """
    if path is None:
        return None, {"reason": "no baseline was given"}
    path = Path(path)
    source: dict[str, Any] = {}
    if path.is_dir():
        if (path / A.BASELINE_FILE).is_file():
            source = A.read_json(path / A.BASELINE_FILE, what="the baseline's baseline.json")
            if source.get("audit") is None:
                return None, source
        path = path / RESULT_FILE
    card = A.read_json(path, what="the baseline scorecard")
    if not isinstance(card, dict) or not isinstance(card.get("figures"), list):
        raise RAIInputError(f"{path} is not a rai-audit scorecard.json with figures to compare with")
    return card, source


def _figures(
    targets: list[dict[str, Any]],
    fairness: list[dict[str, Any]],
    performance: dict[str, Any],
    extra: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Every figure this scorecard measured, keyed for the next audit's comparison."""
    # (metric, kind, cohort, sensitive feature) -> value
    figures: dict[tuple[str, str | None, str | None, str | None], float | None] = {}
    for name, value in performance.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            figures[(name, None, None, None)] = value
    for f in [*({"metric": t["metric"], "cohort": t["cohort"], "value": t["measured"]} for t in targets), *extra]:
        figures[(f["metric"], None, f["cohort"], None)] = f["value"]
    for entry in fairness:
        for m in entry["metrics"]:
            for kind in ("difference", "ratio"):
                figures[(m["metric"], kind, None, entry["feature"])] = m[kind]["value"]
    return [{"metric": m, "kind": k, "cohort": c, "feature": f, "value": v} for (m, k, c, f), v in figures.items()]


def _key(figure: dict[str, Any]) -> tuple[Any, ...]:
    return figure["metric"], figure["kind"], figure["cohort"], figure["feature"]


def _changes(
    figures: list[dict[str, Any]], baseline: dict[str, Any] | None, change_targets: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each figure's change since the baseline, and the change targets judged on them."""
    if baseline is None:
        return [], [
            {
                **t,
                "feature": t["sensitive_feature"],
                "baseline": None,
                "current": None,
                "measured": None,
                "verdict": NO_BASELINE,
            }
            for t in change_targets
        ]
    before = {_key(f): f["value"] for f in baseline["figures"]}
    changes = []
    for f in figures:
        old = before.get(_key(f))
        change = None if old is None or f["value"] is None else f["value"] - old
        changes.append(
            {
                **{k: f[k] for k in ("metric", "kind", "cohort", "feature")},
                "baseline": old,
                "current": f["value"],
                "change": change,
            }
        )
    judged = []
    for t in change_targets:
        for c in changes:
            if (c["metric"], c["kind"], c["cohort"]) == (t["metric"], t["kind"], t["cohort"]) and (
                t["sensitive_feature"] in (None, c["feature"])
            ):
                judged.append(
                    {
                        **t,
                        "feature": c["feature"],
                        "baseline": c["baseline"],
                        "current": c["current"],
                        "measured": c["change"],
                        "verdict": verdict(c["change"], t["op"], t["value"]),
                    }
                )
    return changes, judged


def _primary_metric(doc: dict[str, Any]) -> str:
    return "mean_absolute_error" if doc["task_type"] == "regression" else "accuracy_score"


def _prediction_summary(doc: dict[str, Any], rows: _Rows, selected: np.ndarray) -> dict[str, Any]:
    predicted = rows.y_pred[selected]
    if doc["task_type"] == "regression":
        return {"mean_prediction": _finite(float(np.mean(predicted))) if len(predicted) else None}
    return {
        "predicted_share": {str(c): float(np.mean(predicted == c)) if len(predicted) else None for c in doc["classes"]}
    }


def _explorer(config: dict[str, Any], doc: dict[str, Any], rows: _Rows) -> list[dict[str, Any]]:
    """Per chosen feature: bins with population share, the primary metric, and predictions."""
    metric = _primary_metric(doc)
    categorical = set(doc["data"]["categorical_features"])
    out = []
    for feature in config["data_explorer"]["features"]:
        values = rows.table[feature]
        bins: list[tuple[str, np.ndarray]] = []
        if feature in categorical or not pd.api.types.is_numeric_dtype(values):
            text = values.astype(object).where(values.notna(), "(missing)").astype(str)
            counts = text.value_counts()
            top = list(counts.index[:EXPLORER_TOP])
            bins = [(v, (text == v).to_numpy()) for v in top]
            if len(counts) > EXPLORER_TOP:
                bins.append(("(other)", (~text.isin(top)).to_numpy()))
        else:
            # Quantile bins labelled by what they hold ("21-27"), not pandas' "(20.999, 27.0]".
            codes, numeric, _ = numeric_bins(values, EXPLORER_BINS) if values.notna().any() else (np.array([]), [], [])
            bins = [(b["label"], codes == i) for i, b in enumerate(numeric)]
            if values.isna().any():
                bins.append(("(missing)", values.isna().to_numpy()))
        total = len(values)
        out.append(
            {
                "feature": feature,
                "metric": metric,
                "bins": [
                    {
                        "bin": label,
                        "count": int(mask.sum()),
                        "share": float(mask.sum() / total) if total else None,
                        "metric_value": _finite(rows.metric(metric, np.flatnonzero(mask))),
                        **_prediction_summary(doc, rows, np.flatnonzero(mask)),
                    }
                    for label, mask in bins
                ],
            }
        )
    return out


def _cohort_table(
    config: dict[str, Any], doc: dict[str, Any], rows: _Rows, cohorts: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    shown = config["cohorts"]
    metric = _primary_metric(doc)
    out = []
    for name, c in cohorts.items():
        if shown is not None and name not in shown and c["source"] == "user":
            continue
        selected = np.flatnonzero(c["mask"])
        out.append(
            {
                "name": name,
                "source": c["source"],
                "filter": c["filter"],
                "count": int(len(selected)),
                "share": float(len(selected) / len(rows.table)) if len(rows.table) else None,
                "metric": metric,
                "metric_value": _finite(rows.metric(metric, selected)),
            }
        )
    return out


def _regression_figures(rows: _Rows) -> dict[str, Any]:
    """Aggregates for the predicted-vs-true grid and the residual histogram."""
    y, p = rows.y_true.astype(float), rows.y_pred.astype(float)
    low, high = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    edges = np.linspace(low, high, GRID + 1) if high > low else np.array([low - 0.5, low + 0.5])
    grid, _, _ = np.histogram2d(y, p, bins=[edges, edges])
    cells = [
        {
            "x0": float(edges[i]),
            "x1": float(edges[i + 1]),
            "y0": float(edges[j]),
            "y1": float(edges[j + 1]),
            "rows": int(grid[i, j]),
        }
        for i in range(len(edges) - 1)
        for j in range(len(edges) - 1)
        if grid[i, j]
    ]
    counts, residual_edges = np.histogram(p - y, bins=30)
    return {"grid": cells, "residuals": {"edges": residual_edges.tolist(), "counts": counts.tolist()}}


def _start_chart_renderer() -> None:
    """Start vl-convert's JavaScript runtime in a thread: it takes ~0.5 s, in native code that
    lets this step import WeasyPrint and compute its figures meanwhile; the PDF's charts are
    drawn once those are done. A failure here shows when the charts are drawn."""

    def start() -> None:
        try:
            import vl_convert

            vl_convert.vegalite_to_svg({"mark": "point"})
        except Exception:  # noqa: BLE001  (drawing the charts raises it again, with its context)
            pass

    threading.Thread(target=start, name="vl-convert start", daemon=True).start()


def run_scorecard(
    dashboard_dir: str | Path,
    config: str | Path | dict[str, Any],
    output_dir: str | Path,
    *,
    cohorts: str | Path | list[dict[str, Any]] | None = None,
    baseline: str | Path | None = None,
    options: ScorecardOptions = ScorecardOptions(),
) -> ScorecardResult:
    """Evaluate the config's targets on the bundle and write the PDF, scorecard.json and a manifest.

    With a ``baseline`` (an earlier audit's scorecard), every figure's change since then is
    reported and the config's ``changes`` targets are judged on those changes.
    """
    _start_chart_renderer()
    from rai_audit.report import evidence
    from rai_audit.report.scorecard import MANIFEST_ATTACHMENT, SCORECARD_ATTACHMENT, render_scorecard_pdf

    started = time.perf_counter()
    # The key and certificate are checked before any work: a pipeline that is to sign fails at once.
    signing = evidence.signing_material_from_env() if options.sign else None
    dashboard_dir = Path(dashboard_dir)
    bundle_meta = A.read_artifact_meta(dashboard_dir, expected_kind=A.KIND_DASHBOARD)
    # The bytes the PDF carries are the ones whose digest the scorecard records (read_artifact_meta checked them).
    bundle_manifest = (dashboard_dir / A.MANIFEST_FILE).read_bytes()
    parsed = parse_scorecard_config(config)
    doc = A.read_json(dashboard_dir / A.INSIGHTS_JSON_FILE, what="the bundle's insights.json")
    table = A.read_parquet(dashboard_dir / A.TABLES_DIR / "predictions.parquet")
    rows = _Rows(doc, table)
    cohort_info = _cohort_masks(doc, table, load_cohorts(cohorts))
    check_against_bundle(
        parsed,
        metric_names=list(rows.fns),
        features=doc["data"]["features"],
        cohorts=list(cohort_info),
        signed_metrics=signed_metrics(rows.fns, target_signed=target_can_be_negative(doc["task_type"], rows.y_true)),
    )
    rng = np.random.default_rng(options.random_state)
    targets = _targets(parsed, rows, cohort_info, options, rng)
    fairness = _fairness(parsed, doc, rows, options, rng)
    baseline_card, baseline_source = _read_baseline(baseline)
    overall = doc["model_overview"]["overall"]
    # Cohort figures that only a change target names are measured too, for this audit and the next.
    cohort_figures = [
        {
            "metric": t["metric"],
            "cohort": t["cohort"],
            "value": _finite(rows.metric(t["metric"], np.flatnonzero(cohort_info[t["cohort"]]["mask"]))),
        }
        for t in parsed["changes"]
        if t["cohort"] is not None
    ]
    figures = _figures(targets, fairness, {k: v for k, v in overall.items() if k != "confusion_matrix"}, cohort_figures)
    changes, change_targets = _changes(figures, baseline_card, parsed["changes"])
    judged = (
        [t for t in targets if t["verdict"] != REPORTED]
        + [t for e in fairness for m in e["metrics"] for t in m["targets"]]
        + [t for t in change_targets if t["verdict"] != NO_BASELINE]
    )
    # UNDEFINED is not a miss (too few rows, or no value, to judge: counted apart on page 1),
    # but no pass either: a gate never lets through what could not be judged.
    missed = [t for t in judged if t["verdict"] == FAIL]
    undefined = [t for t in judged if t["verdict"] == UNDEFINED]
    result = {
        "passed": not missed and not undefined,
        "n_targets": len(judged),
        "n_missed": len(missed),
        "n_undefined": len(undefined),
        "model": parsed["model"],
        "run_id": doc["run_id"],
        "pipeline_run": doc.get("pipeline_run"),
        "bundle_manifest_sha256": hashlib.sha256(bundle_manifest).hexdigest(),
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "task_type": doc["task_type"],
        "target_column": doc.get("target_column"),
        "positive_label": doc.get("positive_label"),
        # Bundles gathered before these options existed: their defaults.
        "desired_outcome": doc.get("desired_outcome", "increase"),
        "min_group_size": _min_group_size(doc),
        "data": {"n_test": doc["data"]["n_test"], "n_train": doc["data"]["n_train"]},
        "intervals": {
            "method": "bootstrap percentile",
            "resamples": options.bootstrap,
            "level": 1 - options.alpha,
            "seed": options.random_state,
        },
        "targets": targets,
        "fairness": fairness,
        "performance": {
            "metrics": {k: v for k, v in overall.items() if k != "confusion_matrix"},
            "confusion_matrix": confusion(rows.y_true, rows.y_pred, doc["classes"])
            if doc["task_type"] != "regression"
            else None,
            **(_regression_figures(rows) if doc["task_type"] == "regression" else {}),
        },
        "data_explorer": _explorer(parsed, doc, rows),
        "cohorts": _cohort_table(parsed, doc, rows, cohort_info),
        "feature_importance": (
            doc["explanation"]["global"][: parsed["feature_importance"]["top_n"]] if "explanation" in doc else None
        ),
        # Where the importances come from: the PDF says so beside the chart.
        "explanation_source": (
            {k: doc["explanation"].get(k) for k in ("method", "explainer", "fidelity", "n_rows", "rows", "notes")}
            if "explanation" in doc
            else None
        ),
        "causal": doc.get("causal"),
        "counterfactual": doc.get("counterfactual"),
        "figures": figures,
        "baseline": None
        if baseline_card is None
        else {
            **{k: baseline_card.get(k) for k in ("run_id", "generated_at", "model", "passed", "pipeline_run")},
            "audit": baseline_source.get("audit"),
            "published_at": baseline_source.get("published_at"),
        },
        "no_baseline_reason": baseline_source.get("reason") if baseline_card is None else None,
        "changes": changes,
        "change_targets": change_targets,
    }
    headline = {
        f"target_{i}_{t['metric']}": t["measured"] for i, t in enumerate(targets, 1) if t["measured"] is not None
    }
    headline.update(
        targets_met=float(len(judged) - len(missed) - len(undefined)),
        targets_missed=float(len(missed)),
        targets_undefined=float(len(undefined)),
    )
    with A.artifact_writer(Path(output_dir)) as out:
        # scorecard.json first: the PDF carries it as written.
        A.write_json(out / RESULT_FILE, result)
        render_scorecard_pdf(
            A.to_jsonable(result),
            out / PDF_FILE,
            attachments={SCORECARD_ATTACHMENT: (out / RESULT_FILE).read_bytes(), MANIFEST_ATTACHMENT: bundle_manifest},
        )
        if signing is not None:
            (out / PDF_FILE).write_bytes(evidence.sign_pdf_bytes((out / PDF_FILE).read_bytes(), signing))
        A.write_json(
            out / A.META_FILE,
            A.new_meta(
                KIND,
                doc["run_id"],
                options=asdict(options),
                passed=result["passed"],
                bundle_run_id=bundle_meta["run_id"],
                # Whether the PDF is signed and by whom (the archive records it): None if not.
                signature=evidence.signature_record(signing),
                seconds=time.perf_counter() - started,
            ),
        )
    scorecard = ScorecardResult(
        doc["run_id"], result["passed"], len(judged), len(missed), headline, Path(output_dir) / PDF_FILE, len(undefined)
    )
    if missed and options.fail_on_missed_target:
        raise TargetsMissed(
            f"{len(missed)} of {len(judged)} targets missed: "
            + "; ".join(
                f"{t['metric']}{' ' + t['kind'] if 'kind' in t else ''} {t['op']} {t['value']:g}: "
                f"measured {t['measured']}"
                for t in missed
            )
        )
    return scorecard


def register_model(model_path: str | Path, scorecard_dir: str | Path, output_dir: str | Path) -> dict[str, Any]:
    """Copy a model whose scorecard passed beside that scorecard (the pipeline's gate runs
    this only when ``passed``; it refuses a scorecard that did not pass all the same)."""
    # The model itself: a KFP Model artifact may be a file without extension or a folder
    # holding it; an MLflow model is a folder, copied whole.
    scorecard_dir, model_path = Path(scorecard_dir), model_file(model_path)
    meta = A.read_artifact_meta(scorecard_dir, expected_kind=KIND)
    card = A.read_json(scorecard_dir / RESULT_FILE, what="scorecard.json")
    if not card["passed"]:
        raise RAIInputError(
            f"the scorecard of run {meta['run_id']} did not pass ({card['n_missed']} targets missed, "
            f"{card.get('n_undefined', 0)} could not be judged); the model is not registered"
        )
    record = {
        "model_sha256": model_sha256(model_path),
        "targets_met": card["n_targets"],
        "scorecard_generated_at": card["generated_at"],
    }
    with A.artifact_writer(Path(output_dir)) as out:
        copy_model(model_path, out)
        for name in (RESULT_FILE, PDF_FILE):
            shutil.copy2(scorecard_dir / name, out / name)
        A.write_json(out / A.META_FILE, A.new_meta("registered_model", meta["run_id"], **record))
    return {"run_id": meta["run_id"], **record}


# The Kubeflow UI's views of a scorecard: a Markdown verdict and ClassificationMetrics.

# The UI draws the ROC curve from the artifact's metadata: a few hundred points are enough.
ROC_POINTS = 200
_MARKDOWN_SPECIAL = set("\\`*_{}[]()#+-.!|~")
_HTML_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


@dataclass
class UiViews:
    """What the scorecard shows in the Kubeflow UI besides its PDF."""

    markdown: str
    # {"labels": [...], "matrix": [[...]]} (rows: true class) for a classifier, else None.
    confusion: dict[str, Any] | None
    # {"fpr": [...], "tpr": [...], "threshold": [...]} for a binary classifier with probabilities.
    roc: dict[str, list[float]] | None


def _md(value: Any) -> str:
    """User text (model, cohort, feature names) as literal Markdown text: never markup."""
    text = " ".join(str(value).split())
    return "".join(_HTML_ENTITIES.get(c) or (f"\\{c}" if c in _MARKDOWN_SPECIAL else c) for c in text)


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _interval_text(t: dict[str, Any]) -> str:
    low, high = t.get("ci_lower"), t.get("ci_upper")
    return "" if low is None or high is None else f"{_number(low)} to {_number(high)}"


def verdict_markdown(card: dict[str, Any]) -> str:
    """scorecard.json's verdict and every judged target as Markdown."""
    model = card.get("model") or {}
    name = " ".join(_md(model[k]) for k in ("name", "version") if model.get(k)) or "the model"
    met = card["n_targets"] - card["n_missed"] - card.get("n_undefined", 0)
    lines = [
        f"# Scorecard: {'PASS' if card['passed'] else 'FAIL'}",
        "",
        f"{name}: {met} of {card['n_targets']} targets met, {card['n_missed']} missed, "
        f"{card.get('n_undefined', 0)} could not be judged (run {_md(card['run_id'])}).",
        "",
    ]
    rows = []
    for t in card["targets"]:
        if t["verdict"] != REPORTED:
            where = "all test rows" if t.get("cohort") is None else f"cohort {_md(t['cohort'])}"
            rows.append((f"{_md(t['metric'])} {_md(t['op'])} {_number(t['value'])}", where, t))
    for entry in card["fairness"]:
        for m in entry["metrics"]:
            for t in m["targets"]:
                what = f"{_md(t['metric'])} {t['kind']} {_md(t['op'])} {_number(t['value'])}"
                rows.append((what, f"groups of {_md(t['sensitive_feature'])}", t))
    for t in card["change_targets"]:
        what = f"change of {_md(t['metric'])} {_md(t['op'])} {_number(t['value'])}"
        rows.append((what, "since the baseline audit", t))
    if rows:
        lines += ["| target | on | measured | interval | verdict |", "|---|---|---|---|---|"]
        for what, where, t in rows:
            verdict_text = f"**{t['verdict']}**" if t["verdict"] in (FAIL, UNDEFINED) else t["verdict"]
            lines.append(f"| {what} | {where} | {_number(t['measured'])} | {_interval_text(t)} | {verdict_text} |")
    else:
        lines.append("No targets: nothing was judged.")
    return "\n".join(lines) + "\n"


def roc_points(
    is_positive: np.ndarray, score: np.ndarray, max_points: int = ROC_POINTS
) -> dict[str, list[float]] | None:
    """The ROC curve at each distinct score taken as threshold (a row is positive when its
    score is at least it), thinned evenly to ``max_points``; None without both classes."""
    positive = np.asarray(is_positive, dtype=bool)
    if positive.all() or not positive.any():
        return None
    order = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
    ranked, hits = np.asarray(score, dtype=float)[order], positive[order]
    last_of_level = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    true_positives, false_positives = np.cumsum(hits)[last_of_level], np.cumsum(~hits)[last_of_level]
    picked = np.unique(np.linspace(0, len(last_of_level) - 1, min(max_points, len(last_of_level))).round().astype(int))
    return {
        "fpr": (false_positives[picked] / false_positives[-1]).tolist(),
        "tpr": (true_positives[picked] / true_positives[-1]).tolist(),
        "threshold": ranked[last_of_level][picked].tolist(),
    }


def ui_views(dashboard_dir: str | Path, scorecard_dir: str | Path) -> UiViews:
    """The Markdown verdict, and for a classifier the confusion matrix and (binary, with
    probabilities) the ROC curve of the constructor's predictions on the whole test set."""
    card = A.read_json(Path(scorecard_dir) / RESULT_FILE, what="scorecard.json")
    confusion_matrix, roc = None, None
    if card["task_type"] != "regression":
        confusion_matrix = card["performance"]["confusion_matrix"]
        doc = A.read_json(Path(dashboard_dir) / A.INSIGHTS_JSON_FILE, what="the bundle's insights.json")
        rows = _Rows(doc, A.read_parquet(Path(dashboard_dir) / A.TABLES_DIR / "predictions.parquet"))
        if rows.proba is not None and rows._positive is not None and len(doc["classes"]) == 2:
            roc = roc_points(rows._true == rows._positive, rows.proba[:, rows._positive])
    return UiViews(verdict_markdown(card), confusion_matrix, roc)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rai-audit scorecard",
        description=__doc__.splitlines()[0],
        epilog="The PDF afterwards: rai-audit scorecard sign --help, rai-audit scorecard verify --help.",
    )
    p.add_argument("--dashboard", required=True, help="the gathered dashboard bundle folder")
    p.add_argument("--config", required=True, help="scorecard config (YAML or JSON; Azure ML's format too)")
    p.add_argument("--cohorts", default=None, help="extra cohorts to report (cohort file; Azure's format too)")
    p.add_argument("--output", required=True, help="scorecard folder to create")
    p.add_argument(
        "--baseline",
        default=None,
        help="an earlier audit's scorecard (folder or scorecard.json) to report changes against",
    )
    add_options(p, "scorecard")
    return p


def _evidence_parser(command: str) -> argparse.ArgumentParser:
    """``sign`` and ``verify``: the scorecard PDF as evidence (rai_audit.report.evidence)."""
    from rai_audit.report import evidence

    if command == "sign":
        p = argparse.ArgumentParser(
            prog="rai-audit scorecard sign",
            description="Sign a scorecard PDF (PAdES, SHA-256) with a key and its X.509 certificate. A key "
            f"with a passphrase takes it from ${evidence.ENV_SIGNING_PASSPHRASE}.",
        )
        p.add_argument("pdf", help="the scorecard PDF to sign")
        p.add_argument("--key", required=True, help="the signer's private key (PEM or DER)")
        p.add_argument("--cert", required=True, help="the signer's certificate (PEM or DER; a PEM chain: signer first)")
        p.add_argument("--output", default=None, help="the signed PDF to write (default: <name>.signed.pdf beside it)")
        return p
    p = argparse.ArgumentParser(
        prog="rai-audit scorecard verify",
        description="Check a scorecard PDF: the attached scorecard.json and manifest.json against its footer "
        "and metadata, a bundle folder against them, and every signature.",
    )
    p.add_argument("pdf", help="the scorecard PDF to check")
    p.add_argument("--bundle", default=None, help="the dashboard bundle folder it should have judged")
    p.add_argument("--trust", default=None, help="certificates (PEM) the signer must chain to")
    p.add_argument("--extract", default=None, help="folder to write the attached scorecard.json and manifest.json to")
    return p


def _evidence_main(command: str, argv: list[str]) -> int:
    from rai_audit.report import evidence

    args = _evidence_parser(command).parse_args(argv)

    def action() -> None:
        if command == "sign":
            signed, material = evidence.sign_scorecard(
                args.pdf,
                args.key,
                args.cert,
                args.output,
                passphrase=os.environ.get(evidence.ENV_SIGNING_PASSPHRASE) or None,
            )
            print(f"signed {signed}: PAdES signature by {material.subject}")
            if not material.rsa:
                # pyHanko marks an ECDSA/EdDSA signature as ISO 32002's, which PDF 2.0 defines.
                print("note: a non-RSA signature makes the PDF declare PDF 2.0; sign with RSA to stay PDF/A-3")
        else:
            print(
                "\n".join(
                    evidence.verify_scorecard(args.pdf, bundle=args.bundle, trust=args.trust, extract=args.extract)
                )
            )
            print("verified")

    return run_cli(action)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("sign", "verify"):
        return _evidence_main(argv[0], argv[1:])
    args = _parser().parse_args(argv)

    def action() -> None:
        options = options_from_args("scorecard", vars(args))
        result = run_scorecard(
            args.dashboard, args.config, args.output, cohorts=args.cohorts, baseline=args.baseline, options=options
        )
        undefined = int(result.headline["targets_undefined"])
        print(
            f"scorecard written to {result.pdf}: {'PASSED' if result.passed else 'NOT PASSED'} "
            f"({int(result.headline['targets_met'])} of {result.n_targets} targets met"
            f"{f', {undefined} undefined (too few rows to judge)' if undefined else ''})"
        )

    try:
        return run_cli(action)
    except TargetsMissed as err:
        print(f"scorecard written to {Path(args.output) / PDF_FILE}: NOT PASSED\nrai-audit: targets missed: {err}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
