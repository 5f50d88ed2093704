"""The counted metrics (confusion counts, ranks) of the scorecard and of ``metric_functions`` on
class positions equal scikit-learn's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as sk

from rai_audit.core.metrics import (
    COUNTED_METRICS,
    binary_roc_auc,
    confusion,
    counted_metric,
    metric_functions,
    weighted_roc_auc,
)


def _cases(n_classes: int):
    rng = np.random.default_rng(n_classes)
    for n in (1, 2, 3, 7, 50, 400):
        for _ in range(15):
            # Few distinct values on purpose: classes missing from y_true, y_pred or both.
            true = rng.integers(0, rng.integers(1, n_classes + 1), n)
            pred = rng.integers(0, rng.integers(1, n_classes + 1), n)
            yield true, pred
    yield np.zeros(5, np.int64), np.zeros(5, np.int64)
    yield np.full(5, n_classes - 1), np.zeros(5, np.int64)
    yield np.zeros(0, np.int64), np.zeros(0, np.int64)


def scikit_learn(name: str, true: np.ndarray, pred: np.ndarray, positive) -> float:
    """``name`` as scikit-learn computes it (undefined: NaN, as metric_functions says it)."""
    try:
        return _scikit_learn(name, true, pred, positive) if len(true) else float("nan")
    except ValueError:  # e.g. a positive label two other labels leave out
        return float("nan")


def _scikit_learn(name: str, true: np.ndarray, pred: np.ndarray, positive) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name in ("accuracy_score", "error_rate"):
            accuracy = sk.accuracy_score(true, pred)
            return accuracy if name == "accuracy_score" else 1 - accuracy
        if name == "balanced_accuracy_score":
            return sk.balanced_accuracy_score(true, pred)
        if name in ("precision_score", "recall_score", "f1_score"):
            average = {"pos_label": positive, "average": "binary"} if positive is not None else {"average": "macro"}
            return getattr(sk, name)(true, pred, zero_division=np.nan, **average)
        if name == "selection_rate":
            return float(np.mean(pred == positive))
        tn, fp, fn, tp = sk.confusion_matrix(true == positive, pred == positive, labels=[False, True]).ravel()
        rates = {"false_positive_rate": (fp, fp + tn), "false_negative_rate": (fn, fn + tp)}
        part, whole = rates[name]
        return part / whole if whole else float("nan")


@pytest.mark.parametrize("n_classes, positive", [(2, 1), (2, 0), (3, None), (5, None)])
def test_counted_metrics_equal_scikit_learn(n_classes, positive):
    """counted_metric, and metric_functions' metrics on class positions (gather's, counted too)."""
    task = "binary_classification" if positive is not None else "multiclass_classification"
    functions = metric_functions(task, classes=list(range(n_classes)), positive=positive)
    names = [m for m in COUNTED_METRICS if m in functions]
    assert len(names) == (9 if positive is not None else 6)  # error_rate: Azure ML's scorecard's
    for true, pred in _cases(n_classes):
        for name in names:
            expected = scikit_learn(name, true, pred, positive)
            got = counted_metric(name, true, pred, n_classes, positive)
            assert got == pytest.approx(expected, abs=1e-12, nan_ok=True), (name, true.tolist(), pred.tolist())
            assert functions[name](true, pred) == pytest.approx(expected, abs=1e-12, nan_ok=True), name


@pytest.mark.parametrize(
    "classes, positive, labels",
    [(["<=50K", ">50K"], ">50K", None), ([0, 1], 1, [0, 1, 2]), ([1, 0], 1, None)],
    ids=["text", "a label outside the classes", "classes not in position order"],
)
def test_metrics_on_labels_that_are_not_class_positions_are_scikit_learn_s(classes, positive, labels):
    functions = metric_functions("binary_classification", classes=classes, positive=positive)
    values = np.array(labels or classes, dtype=object if isinstance(classes[0], str) else np.int64)
    rng = np.random.default_rng(3)
    for n in (1, 5, 60):
        true, pred = values[rng.integers(0, len(values), n)], values[rng.integers(0, len(values), n)]
        for name in functions:
            expected = scikit_learn(name, true, pred, positive)
            assert functions[name](true, pred) == pytest.approx(expected, abs=1e-12, nan_ok=True), name


@pytest.mark.parametrize("n_classes", [2, 3])
def test_log_loss_on_class_positions_equals_scikit_learn(n_classes):
    classes = list(range(n_classes))
    positive = 1 if n_classes == 2 else None
    task = "binary_classification" if n_classes == 2 else "multiclass_classification"
    log_loss = metric_functions(task, classes=classes, positive=positive, with_proba=True)["log_loss"]
    rng = np.random.default_rng(n_classes)
    for n in (1, 4, 300):
        for certain in (False, True):  # probabilities 0 and 1: clipped, as scikit-learn does
            proba = rng.dirichlet(np.ones(n_classes), n)
            if certain:
                proba = np.eye(n_classes)[rng.integers(0, n_classes, n)]
            true = rng.integers(0, n_classes, n)
            expected = sk.log_loss(true, proba, labels=classes)
            assert log_loss(true, proba.argmax(axis=1), proba=proba) == pytest.approx(expected, rel=1e-12)
    assert np.isnan(log_loss(np.array([0, 1]), np.array([0, 1]), proba=np.full((2, n_classes), 1.5)))


@pytest.mark.parametrize(
    "classes, outside",
    [([0, 1], 2), ([">50K", "<=50K"], "?"), (["b", "a", "c"], "d"), ([False, True], None)],
    ids=["ints", "text", "three", "bools"],
)
def test_confusion_matrix_counts_each_true_and_predicted_class(classes, outside):
    rng = np.random.default_rng(len(classes))
    values = np.array(classes + ([] if outside is None else [outside]))  # an outside label is not counted
    for n in (0, 1, 6, 300):
        true, pred = values[rng.integers(0, len(values), n)], values[rng.integers(0, len(values), n)]
        expected = [[sum(t == a and p == b for t, p in zip(true, pred)) for b in classes] for a in classes]
        assert confusion(true, pred, classes) == {"labels": classes, "matrix": expected}
        if n == 300 and outside is not None:
            from sklearn.metrics import confusion_matrix

            assert expected == confusion_matrix(true, pred, labels=classes).tolist()


def test_binary_roc_auc_equals_scikit_learn():
    function = metric_functions("binary_classification", classes=[0, 1], positive=1, with_proba=True)["roc_auc_score"]
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 40, 1000):
        for _ in range(20):
            true = rng.integers(0, 2, n)
            score = rng.choice([0.1, 0.5, 0.9], n) if n % 2 else rng.random(n)  # with and without ties
            proba = np.column_stack([1 - score, score])
            expected = sk.roc_auc_score(true, score) if len(np.unique(true)) == 2 else float("nan")
            assert binary_roc_auc(true == 1, score) == pytest.approx(expected, abs=1e-12, nan_ok=True)
            assert function(true, (score > 0.5).astype(int), proba=proba) == pytest.approx(
                expected, abs=1e-12, nan_ok=True
            )


def test_weighted_roc_auc_equals_the_auc_of_the_repeated_rows():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 2, 300) == 1
    score = np.round(rng.random(300), 1)  # ties
    weights = rng.integers(0, 4, 300)
    expected = binary_roc_auc(np.repeat(true, weights), np.repeat(score, weights))
    assert weighted_roc_auc(true, score)(weights) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("task, positive", [("binary_classification", 1), ("multiclass_classification", None)])
def test_no_positive_row_gives_no_recall_not_0(task, positive):
    """Recall of rows without a positive (precision of rows without a predicted positive) is
    undefined: NaN (null in JSON), as scikit-learn's zero_division=np.nan, never 0."""
    fns = metric_functions(task, classes=[0, 1, 2], positive=positive)
    no_positive = (np.array([0, 0, 0, 0]), np.array([0, 1, 0, 1]))
    no_predicted_positive = (np.array([0, 1, 1, 0]), np.array([0, 0, 0, 0]))
    if positive is not None:
        assert np.isnan(fns["recall_score"](*no_positive))
        assert np.isnan(counted_metric("recall_score", *no_positive, 3, positive))
        assert np.isnan(fns["precision_score"](*no_predicted_positive))
        assert np.isnan(counted_metric("precision_score", *no_predicted_positive, 3, positive))
        assert fns["f1_score"](*no_positive) == 0.0  # false positives: F1 is 0, as scikit-learn
        assert np.isnan(fns["f1_score"](np.array([0, 0]), np.array([0, 0])))
    else:  # macro averages leave the classes without a value out, as scikit-learn
        true, pred = np.array([0, 0, 1, 1]), np.array([0, 0, 2, 1])
        assert fns["recall_score"](true, pred) == pytest.approx(0.75)  # class 2 has no true row
        assert counted_metric("recall_score", true, pred, 3, None) == pytest.approx(0.75)
