"""The scorecard's views for the Kubeflow UI (ui_views): the confusion matrix and ROC curve
checked against scikit-learn on the model's own predictions, and the Markdown verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from rai_audit.steps.scorecard import ROC_POINTS, roc_points, run_scorecard, ui_views
from support import build_bundle, encoded_model, write_case

COHORT = "<b>*odd* [name](x)</b>"


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    rng = np.random.default_rng(5)
    n = 500
    frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "group": rng.choice(["a", "b"], size=n)})
    logit = 1.5 * frame["x1"] - frame["x2"] + (frame["group"] == "a") * 0.5
    frame["label"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    train, test = frame.iloc[:300], frame.iloc[300:].reset_index(drop=True)
    model = encoded_model(["group"], ["x1", "x2"], LogisticRegression()).fit(
        train.drop(columns="label"), train["label"]
    )
    folder = tmp_path_factory.mktemp("ui_views")
    case = write_case(
        folder / "case",
        model,
        train,
        test,
        target="label",
        task_type="binary_classification",
        sensitive=["group"],
        positive_label="yes",
    )
    bundle, _ = build_bundle(case, folder / "bundle")
    config = {
        "model": {"name": "credit | *model*", "version": "2"},
        "targets": [
            {"metric": "accuracy_score", "op": ">=", "value": 0.5},
            {"metric": "accuracy_score", "op": ">=", "value": 0.999},
            {"metric": "recall_score", "op": ">=", "value": 0.1, "cohort": COHORT},
        ],
    }
    cohorts = [{"name": COHORT, "filter": {"column": "group", "op": "==", "value": "a"}}]
    card_dir = folder / "scorecard"
    from rai_audit.specs import ScorecardOptions

    run_scorecard(bundle / "dashboard", config, card_dir, cohorts=cohorts, options=ScorecardOptions(bootstrap=0))
    return model, test, ui_views(bundle / "dashboard", card_dir)


def test_confusion_matrix_is_scikit_learns_on_the_models_predictions(scored):
    model, test, views = scored
    predicted = model.predict(test.drop(columns="label"))
    assert views.confusion["labels"] == ["no", "yes"]
    expected = skm.confusion_matrix(test["label"], predicted, labels=["no", "yes"])
    assert views.confusion["matrix"] == expected.tolist()


def test_roc_curve_lies_on_scikit_learns(scored):
    model, test, views = scored
    score = model.predict_proba(test.drop(columns="label"))[:, list(model.classes_).index("yes")]
    fpr, tpr, thresholds = skm.roc_curve(test["label"] == "yes", score, drop_intermediate=False)
    on_curve = {round(t, 12): (f, r) for f, r, t in zip(fpr, tpr, thresholds)}
    roc = views.roc
    assert 2 < len(roc["threshold"]) <= ROC_POINTS
    for f, r, t in zip(roc["fpr"], roc["tpr"], roc["threshold"]):
        assert on_curve[round(t, 12)] == pytest.approx((f, r), abs=1e-12)
    # From the highest score to the lowest, where every row is called positive.
    assert roc["threshold"][0] == pytest.approx(score.max()) and roc["threshold"][-1] == pytest.approx(score.min())
    assert (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)

    # Unthinned, the whole curve is scikit-learn's (but its (0, 0) start at an infinite threshold).
    full = roc_points(test["label"].to_numpy() == "yes", score, max_points=10_000)
    assert np.allclose(full["fpr"], fpr[1:]) and np.allclose(full["tpr"], tpr[1:])
    assert np.allclose(full["threshold"], thresholds[1:])
    assert np.trapezoid([0, *full["tpr"]], [0, *full["fpr"]]) == pytest.approx(
        skm.roc_auc_score(test["label"] == "yes", score)
    )


def test_roc_needs_both_classes():
    assert roc_points(np.array([True, True]), np.array([0.2, 0.9])) is None
    assert roc_points(np.array([False, False]), np.array([0.2, 0.9])) is None
    # Tied scores are one threshold.
    tied = roc_points(np.array([True, False, True, False]), np.array([0.5, 0.5, 0.9, 0.1]))
    assert tied == {"fpr": [0.0, 0.5, 1.0], "tpr": [0.5, 1.0, 1.0], "threshold": [0.9, 0.5, 0.1]}


def test_markdown_verdict(scored):
    _, _, views = scored
    text = views.markdown
    assert text.startswith("# Scorecard: FAIL\n")
    # The model's and cohort's names are text: escaped, never markup.
    assert "credit \\| \\*model\\* 2:" in text
    assert "<b>" not in text and "&lt;b&gt;\\*odd\\* \\[name\\]\\(x\\)&lt;/b&gt;" in text
    rows = [line for line in text.splitlines() if line.startswith("| accuracy") or line.startswith("| recall")]
    assert len(rows) == 3
    assert rows[0].endswith("| PASS |") and rows[1].endswith("| **FAIL** |")
    assert "1 missed" in text and "targets met" in text
