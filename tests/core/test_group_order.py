"""Sensitive groups read in the order of their values wherever they are listed: numeric bins by
value ("5-9" before "10-14", which text order puts first), numbered labels by their numbers
("1st-4th" before "10th"), "(missing)" last; in gather's fairness and overview, the page and
the scorecard alike."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

from rai_audit.core.metrics import group_labels, group_sort_key
from rai_audit.steps.scorecard import ScorecardOptions, run_scorecard
from support import build_bundle, write_case


def test_group_sort_key_orders_bins_by_value_and_numbered_text_by_number():
    values = pd.Series(np.arange(5, 25).repeat(3))
    labels, binning = group_labels(values)
    assert binning["labels"] == ["5-9", "10-14", "15-19", "20-24"]
    assert sorted(labels.unique(), key=group_sort_key(binning)) == binning["labels"]
    assert sorted(labels.unique()) != binning["labels"]  # what plain sorting gave
    # Non-integral bins: "<= a", "(a, b]", "> b" in the order of their values, not of their first character
    real = pd.Series(np.linspace(0, 10, 80))
    labels, binning = group_labels(real)
    assert sorted(set(labels), key=group_sort_key(binning)) == binning["labels"]
    assert binning["labels"][0].startswith("<=") and binning["labels"][-1].startswith(">")
    text = ["10th", "(missing)", "1st-4th", "9th", "Bachelors", "5th-6th"]
    assert sorted(text, key=group_sort_key(None)) == ["1st-4th", "5th-6th", "9th", "10th", "Bachelors", "(missing)"]


def test_groups_are_listed_in_value_order_in_the_bundle_and_the_scorecard(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    data = pd.DataFrame(
        {
            "years": rng.integers(5, 25, n),
            "grade": rng.choice(["1st-4th", "9th", "10th", "12th"], n),
            "x": rng.normal(size=n),
        }
    )
    data["label"] = np.where(data["x"] + rng.normal(scale=0.5, size=n) > 0, "yes", "no")
    features = data[["years", "x"]]
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(features, data["label"])
    case = write_case(
        tmp_path / "case",
        model,
        data.iloc[:200].drop(columns="grade"),
        data.iloc[200:].drop(columns="grade").reset_index(drop=True),
        target="label",
        task_type="binary_classification",
        sensitive=["years"],
        positive_label="yes",
    )
    folder, doc = build_bundle(case, tmp_path / "bundle")
    expected = group_labels(pd.read_parquet(case.test)["years"])[1]["labels"]
    assert [int(label.split("-")[0]) for label in expected] == sorted(int(label.split("-")[0]) for label in expected)
    [entry] = doc["fairness"]
    assert [g["group"]["years"] for g in entry["by_group"]] == expected
    assert [g["group"] for g in doc["model_overview"]["sensitive_groups"]] == expected
    assert list(doc["data_analysis"]["balance"]["sensitive_groups"]["years"]) == expected
    run_scorecard(
        folder / "dashboard",
        {"fairness": {"sensitive_features": ["years"], "metrics": ["accuracy_score"]}},
        tmp_path / "scorecard",
        options=ScorecardOptions(bootstrap=20),
    )
    card = json.loads((tmp_path / "scorecard" / "scorecard.json").read_text())
    assert card["fairness"][0]["groups"] == expected
