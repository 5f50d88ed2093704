"""Model performance metrics, computed the same way overall, per cohort and per group.

Metric names are scikit-learn's function names (also what Azure ML's scorecard configs
use), so a target such as ``accuracy_score >= 0.85`` reads the same everywhere. A metric
that is undefined on some rows (ROC AUC with one class present, R2 on one row, recall with no
positive row, precision with no predicted positive, any metric on an empty cohort) is NaN,
written to JSON as null, never an exception and never 0: an undefined value must not decide a
target.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from types import ModuleType


def _sklearn_metrics() -> ModuleType:
    """scikit-learn's metrics, imported when first used: importing scikit-learn takes about 1 s,
    which the steps that compute no metric (and every step's start) need not pay."""
    from sklearn import metrics

    return metrics


REGRESSION_METRICS = (
    "mean_absolute_error",
    "median_absolute_error",  # Azure ML's scorecard documents it
    "mean_squared_error",
    "root_mean_squared_error",
    "r2_score",
    "mean_prediction",
)
# error_rate (1 - accuracy) is Azure ML's scorecard's and error analysis's name for the misclassified share.
LABEL_METRICS = (
    "accuracy_score",
    "error_rate",
    "balanced_accuracy_score",
    "precision_score",
    "recall_score",
    "f1_score",
)
BINARY_ONLY_METRICS = ("selection_rate", "false_positive_rate", "false_negative_rate")
PROBA_METRICS = ("roc_auc_score", "log_loss")

# Whether a metric can be negative. A ratio of two groups' values means something only when
# both are >= 0 (a "smallest ratio" of -3.84 does not), so ratios are given, and ratio targets
# accepted, only for metrics that cannot be negative. mean_prediction is in the target's units:
# signed when the regression target can be negative. A name missing here counts as signed.
NON_NEGATIVE, SIGNED, AS_TARGET = "non-negative", "signed", "as the target"
METRIC_SIGNS = {
    **{name: NON_NEGATIVE for name in (*LABEL_METRICS, *BINARY_ONLY_METRICS, *PROBA_METRICS)},
    "mean_absolute_error": NON_NEGATIVE,
    "median_absolute_error": NON_NEGATIVE,
    "mean_squared_error": NON_NEGATIVE,
    "root_mean_squared_error": NON_NEGATIVE,
    "r2_score": SIGNED,
    "mean_prediction": AS_TARGET,
}
ALWAYS_SIGNED_METRICS = tuple(sorted(name for name, sign in METRIC_SIGNS.items() if sign == SIGNED))


def target_can_be_negative(task: str, y_true: Any) -> bool:
    """A regression target with a negative value among the test rows (its mean prediction is then signed)."""
    if task != "regression":
        return False
    values = pd.to_numeric(pd.Series(np.asarray(y_true)), errors="coerce")
    return bool((values < 0).any())


def signed_metrics(names: Any, *, target_signed: bool) -> list[str]:
    """The metrics among ``names`` that can be negative (no ratio of them), in their order."""

    def signed(name: str) -> bool:
        sign = METRIC_SIGNS.get(name, SIGNED)
        return sign == SIGNED or (sign == AS_TARGET and target_signed)

    return [name for name in names if signed(name)]


MetricFn = Callable[..., float]
# One label (or a probability row) per row, as the steps hold them.
Labels: TypeAlias = "np.ndarray | pd.Series"


def _undefined_as_nan(fn: MetricFn) -> MetricFn:
    """NaN for rows on which a metric is undefined, instead of an error or a warning."""

    def wrapped(y_true: Labels, y_pred: Labels, **kwargs: Any) -> float:
        if len(y_true) == 0:
            return float("nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return float(fn(np.asarray(y_true), np.asarray(y_pred), **kwargs))
            except ValueError:
                return float("nan")

    wrapped.__name__ = getattr(fn, "__name__", "metric")
    return wrapped


def _r2(y_true: Labels, y_pred: Labels) -> float:
    return _sklearn_metrics().r2_score(y_true, y_pred) if len(y_true) >= 2 else float("nan")


def _binary_rates(y_true: Labels, y_pred: Labels, *, positive: Any) -> tuple[float, float]:
    is_true, is_pred = np.asarray(y_true) == positive, np.asarray(y_pred) == positive
    tp, fp, fn = (is_true & is_pred).sum(), (~is_true & is_pred).sum(), (is_true & ~is_pred).sum()
    tn = len(is_true) - tp - fp - fn
    fpr = fp / (fp + tn) if fp + tn else float("nan")
    fnr = fn / (fn + tp) if fn + tp else float("nan")
    return fpr, fnr


def _roc_auc(y_true: Labels, y_pred: Labels, *, proba: Labels, classes: list[Any], positive: Any) -> float:
    proba = np.asarray(proba)
    if positive is not None:  # binary: the score is the positive class's probability
        if len(np.unique(y_true)) < 2:
            return float("nan")
        return binary_roc_auc(np.asarray(y_true) == positive, proba[:, list(classes).index(positive)])
    present = [c for c in classes if (y_true == c).any()]
    if len(present) != len(classes):  # one-vs-rest AUC needs every class present
        return float("nan")
    return _sklearn_metrics().roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes)


def _log_loss(y_true: Labels, y_pred: Labels, *, proba: Labels, classes: list[Any]) -> float:
    proba, true = np.asarray(proba, dtype=float), np.asarray(y_true)
    if not _are_positions(true, len(classes)) or list(classes) != list(range(len(classes))):
        return _sklearn_metrics().log_loss(true, proba, labels=list(classes))
    # As scikit-learn computes it on class positions (tests/core/test_metrics.py): each row's
    # probability of its true class, clipped to [eps, 1 - eps]; probabilities outside [0, 1] undefined.
    if len(classes) < 2 or proba.max() > 1 or proba.min() < 0:
        return float("nan")
    eps = np.finfo(proba.dtype).eps
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(true)), true], eps, 1 - eps))))


def _are_positions(labels: np.ndarray, n_classes: int) -> bool:
    """Labels that are class positions 0..n_classes-1, as ``class_positions`` gives them."""
    return labels.dtype.kind in "iu" and (not len(labels) or (labels.min() >= 0 and labels.max() < n_classes))


def _counted(name: str, n_classes: int, positive: int | None, otherwise: MetricFn) -> MetricFn:
    """``name`` counted (``counted_metric``) on labels that are class positions, else ``otherwise``."""

    def metric(y_true: Labels, y_pred: Labels) -> float:
        true, pred = np.asarray(y_true), np.asarray(y_pred)
        if _are_positions(true, n_classes) and _are_positions(pred, n_classes):
            return counted_metric(name, true.astype(np.int64), pred.astype(np.int64), n_classes, positive)
        return otherwise(y_true, y_pred)

    metric.__name__ = name
    return metric


def class_positions(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any] | None, positive: Any
) -> tuple[np.ndarray, np.ndarray, list[Any] | None, Any]:
    """A classifier's labels as their positions in ``classes``, with classes and positive label to match.

    scikit-learn's metrics run ~30x faster on integers than on text labels (8.7 s against
    0.27 s on 1,000,000 rows). Regression (no classes), or a label outside the classes:
    returned as they are.
    """
    if not classes:
        return y_true, y_pred, classes, positive
    codes = [pd.Categorical(y, categories=classes).codes.astype(np.int64) for y in (y_true, y_pred)]
    if any((c < 0).any() for c in codes):
        return y_true, y_pred, classes, positive
    return codes[0], codes[1], list(range(len(classes))), None if positive is None else classes.index(positive)


# The label metrics and binary ROC AUC on class positions, computed from counts (np.bincount)
# instead of by scikit-learn: the scorecard's bootstrap calls them thousands of times, and
# scikit-learn's input checks took most of that time (14 of the 22 s of a scorecard on Adult).
# tests/core/test_metrics.py checks each equals scikit-learn's.
COUNTED_METRICS = (*LABEL_METRICS, *BINARY_ONLY_METRICS)


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows per (true, predicted) class position, as an n_classes x n_classes array."""
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def counted_metric(name: str, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, positive: int | None) -> float:
    """``name`` (one of COUNTED_METRICS) on class positions 0..n_classes-1, as
    ``metric_functions`` gives it: binary metrics of the ``positive`` position, else macro
    averages over the classes present in y_true or y_pred; NaN where undefined."""
    return metric_from_counts(name, confusion_counts(y_true, y_pred, n_classes), positive)


def metric_from_counts(name: str, counts: np.ndarray, positive: int | None) -> float:
    """``counted_metric`` from the confusion counts of the rows (NaN for no rows)."""
    n = counts.sum()
    if n == 0:
        return float("nan")
    hits = np.diag(counts).astype(float)
    true_n, pred_n = counts.sum(axis=1), counts.sum(axis=0)
    if name == "accuracy_score":
        return float(hits.sum() / n)
    if name == "error_rate":
        return float(1 - hits.sum() / n)
    if name == "balanced_accuracy_score":
        present = true_n > 0
        return float(np.mean(hits[present] / true_n[present]))
    if positive is not None:  # binary: the positive class's counts
        tp, fp, fn = hits[positive], pred_n[positive] - hits[positive], true_n[positive] - hits[positive]
        tn = n - tp - fp - fn
        if name == "selection_rate":
            return float(pred_n[positive] / n)
        if name == "false_positive_rate":
            return float(fp / (fp + tn)) if fp + tn else float("nan")
        if name == "false_negative_rate":
            return float(fn / (fn + tp)) if fn + tp else float("nan")
        tps, predicted, actual = np.array([tp]), np.array([tp + fp]), np.array([tp + fn])
    elif name in BINARY_ONLY_METRICS:
        raise ValueError(f"{name} is defined for binary classification only")
    else:
        present = (true_n > 0) | (pred_n > 0)
        tps, predicted, actual = hits[present], pred_n[present], true_n[present]
    # zero_division=NaN, as metric_functions: a class without predicted (precision) or true
    # (recall) rows has no value and is left out of a macro average; none left: NaN.
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "precision_score":
            values = np.where(predicted > 0, tps / predicted, np.nan)
        elif name == "recall_score":
            values = np.where(actual > 0, tps / actual, np.nan)
        elif name == "f1_score":
            values = np.where(predicted + actual > 0, 2 * tps / (predicted + actual), np.nan)
        else:
            raise ValueError(f"unknown counted metric {name!r}")
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


# What a metric that is one share of rows counts (its numerator), for saying so.
COUNTED_ROWS = {
    "accuracy_score": "correctly predicted rows",
    "error_rate": "misclassified rows",
    "selection_rate": "predicted positives",
    "recall_score": "true positives",
    "precision_score": "true positives",
    "false_positive_rate": "false positives",
    "false_negative_rate": "false negatives",
}


def counted_rows(name: str, counts: np.ndarray, positive: int | None) -> int | None:
    """How many rows a metric that is one share of rows counts, from the confusion counts of
    the rows (its numerator: a selection rate's predicted positives); None for a metric that is
    not one share (macro averages, balanced accuracy, F1, probabilities, regression)."""
    hits = np.diag(counts)
    if name == "accuracy_score":
        return int(hits.sum())
    if name == "error_rate":
        return int(counts.sum() - hits.sum())
    if positive is None or name not in COUNTED_ROWS:
        return None
    tp, predicted, actual = hits[positive], counts[:, positive].sum(), counts[positive].sum()
    return int(
        {"selection_rate": predicted, "false_positive_rate": predicted - tp, "false_negative_rate": actual - tp}.get(
            name, tp
        )
    )


def weighted_roc_auc(is_positive: np.ndarray, score: np.ndarray) -> Callable[[np.ndarray], float]:
    """f(weights): binary ROC AUC of the rows each taken ``weights`` times (a bootstrap
    resample's counts; ones for the rows as they are), as the Mann-Whitney statistic with ties
    counting half, which equals scikit-learn's. The scores are sorted once for every call."""
    levels, level = np.unique(score, return_inverse=True)
    positive = np.asarray(is_positive, dtype=bool)

    def auc(weights: np.ndarray) -> float:
        pos = np.bincount(level, weights=weights * positive, minlength=len(levels))
        neg = np.bincount(level, weights=weights * ~positive, minlength=len(levels))
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        below = np.cumsum(neg) - neg  # negatives scored lower than each level
        return float((pos * (below + 0.5 * neg)).sum() / (n_pos * n_neg))

    return auc


def binary_roc_auc(is_positive: np.ndarray, score: np.ndarray) -> float:
    return weighted_roc_auc(is_positive, score)(np.ones(len(score)))


def _sklearn_metric(name: str, **fixed: Any) -> MetricFn:
    """scikit-learn's metric ``name`` (with ``fixed`` arguments), imported at its first call: a
    scorecard whose metrics are all counted (COUNTED_METRICS, binary ROC AUC) never imports it."""

    def metric(y_true: Labels, y_pred: Labels) -> float:
        return float(getattr(_sklearn_metrics(), name)(y_true, y_pred, **fixed))

    metric.__name__ = name
    return metric


def metric_functions(
    task: str, *, classes: list[Any] | None = None, positive: Any = None, with_proba: bool = False
) -> dict[str, MetricFn]:
    """Metric name -> f(y_true, y_pred[, proba=...]) for the task (proba ones need ``proba``)."""
    if task == "regression":
        fns = {
            name: _sklearn_metric(name)
            for name in (
                "mean_absolute_error",
                "median_absolute_error",
                "mean_squared_error",
                "root_mean_squared_error",
            )
        }
        fns["r2_score"] = _r2
        fns["mean_prediction"] = lambda y_true, y_pred: float(np.mean(y_pred))
    else:
        binary = task == "binary_classification"
        average = {"pos_label": positive, "average": "binary"} if binary else {"average": "macro"}
        accuracy = _sklearn_metric("accuracy_score")
        # zero_division=NaN: recall with no positive row, precision with no predicted positive
        # are undefined (null), not 0 (a group without positives would fail a recall target).
        fns = {
            "accuracy_score": accuracy,
            "error_rate": lambda y_true, y_pred: 1.0 - accuracy(y_true, y_pred),
            "balanced_accuracy_score": _sklearn_metric("balanced_accuracy_score"),
            **{
                name: _sklearn_metric(name, zero_division=np.nan, **average)
                for name in ("precision_score", "recall_score", "f1_score")
            },
        }
        if binary:
            fns["selection_rate"] = lambda y_true, y_pred: np.mean(y_pred == positive)
            fns["false_positive_rate"] = lambda y_true, y_pred: _binary_rates(y_true, y_pred, positive=positive)[0]
            fns["false_negative_rate"] = lambda y_true, y_pred: _binary_rates(y_true, y_pred, positive=positive)[1]
        if classes is not None and list(classes) == list(range(len(classes))):
            # On class positions (class_positions) the label metrics are counted: the same values
            # (tests/core/test_metrics.py), and a classifier's gather imports no scikit-learn (1.7 s).
            fns.update({name: _counted(name, len(classes), positive, fn) for name, fn in fns.items()})
        if with_proba:
            # classes is None only where the functions are listed and not called (preflight's names).
            proba_classes = cast(list[Any], classes)
            fns["roc_auc_score"] = partial(_roc_auc, classes=proba_classes, positive=positive if binary else None)
            fns["log_loss"] = partial(_log_loss, classes=proba_classes)
    return {name: _undefined_as_nan(fn) for name, fn in fns.items()}


def compute_metrics(
    fns: dict[str, MetricFn], y_true: Labels, y_pred: Labels, proba: Labels | None = None
) -> dict[str, float]:
    """Every metric of ``fns`` on these rows, plus their ``count``."""
    result: dict[str, float] = {"count": int(len(y_true))}
    for name, fn in fns.items():
        result[name] = fn(y_true, y_pred, proba=proba) if name in PROBA_METRICS else fn(y_true, y_pred)
    return result


def confusion(y_true: Labels, y_pred: Labels, classes: list[Any]) -> dict[str, Any]:
    """Confusion matrix with rows = true class, columns = predicted class, in ``classes`` order
    (as scikit-learn's ``confusion_matrix(labels=classes)``: a row with a label outside the
    classes is not counted), by counting: no scikit-learn import for it."""
    true, pred = (
        pd.Categorical(np.asarray(y), categories=list(classes)).codes.astype(np.int64) for y in (y_true, y_pred)
    )
    counted = (true >= 0) & (pred >= 0)
    matrix = confusion_counts(true[counted], pred[counted], len(classes))
    return {"labels": list(classes), "matrix": matrix.tolist()}


def group_labels(
    values: pd.Series, *, max_groups: int = 10, n_bins: int = 4
) -> tuple[pd.Series, dict[str, Any] | None]:
    """Group labels for a sensitive feature: its values, or quantile bins if numeric with many values.

    Bins are ``cohorts.numeric_bins``: quartiles (as ``pd.qcut``) with readable exact edges,
    labelled by what they hold ("17-24" for whole numbers, not pandas' "(16.999, 24.0]").
    Returns the labels (missing values as "(missing)") and the binning used (``edges``, and
    the bin ``labels`` in order), if any.
    """
    from rai_audit.core.cohorts import numeric_bins  # (cohorts does not import metrics)

    binning = None
    if (
        pd.api.types.is_numeric_dtype(values)
        and not pd.api.types.is_bool_dtype(values)
        and values.nunique() > max_groups
    ):
        codes, bins, edges = numeric_bins(values, n_bins)
        names = np.array([b["label"] for b in bins] + ["(missing)"], dtype=object)
        labels = pd.Series(names[codes], index=values.index, dtype=object)  # code -1: "(missing)"
        binning = {"method": "quantile", "bins": n_bins, "edges": edges, "labels": names[:-1].tolist()}
        return labels, binning
    labels = values.astype(object).where(values.notna(), "(missing)").astype(str)
    return labels, binning


def group_sort_key(binning: dict[str, Any] | None) -> Callable[[Any], tuple[Any, ...]]:
    """Sort key of a sensitive feature's group labels in reading order: numeric bins in the
    order of their values ("9-16" before "17-24", "<= 7.3" before "(7.3, 9.1]"), other labels
    as ``cohorts.natural_key`` orders them, "(missing)" last."""
    from rai_audit.core.cohorts import natural_key

    order = {label: i for i, label in enumerate((binning or {}).get("labels", []))}

    def key(label: Any) -> tuple[Any, ...]:
        if label == "(missing)":
            return (2,)
        return (0, order[label]) if label in order else (1, natural_key(label))

    return key
