"""The scorecard's counted metrics (confusion counts, ranks) equal scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest

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


@pytest.mark.parametrize("n_classes, positive", [(2, 1), (2, 0), (3, None), (5, None)])
def test_counted_metrics_equal_scikit_learn(n_classes, positive):
    task = "binary_classification" if positive is not None else "multiclass_classification"
    reference = metric_functions(task, classes=list(range(n_classes)), positive=positive)
    names = [m for m in COUNTED_METRICS if m in reference]
    assert len(names) == (9 if positive is not None else 6)  # error_rate: Azure ML's scorecard's
    for true, pred in _cases(n_classes):
        for name in names:
            expected = reference[name](true, pred)
            got = counted_metric(name, true, pred, n_classes, positive)
            assert got == pytest.approx(expected, abs=1e-12, nan_ok=True), (name, true.tolist(), pred.tolist())


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
    reference = metric_functions("binary_classification", classes=[0, 1], positive=1, with_proba=True)["roc_auc_score"]
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 40, 1000):
        for _ in range(20):
            true = rng.integers(0, 2, n)
            score = rng.choice([0.1, 0.5, 0.9], n) if n % 2 else rng.random(n)  # with and without ties
            proba = np.column_stack([1 - score, score])
            assert binary_roc_auc(true == 1, score) == pytest.approx(
                reference(true, (score > 0.5).astype(int), proba=proba), abs=1e-12, nan_ok=True
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
