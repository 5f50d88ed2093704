"""gather's DATA.table: the seeded sample of test rows dashboard.html computes its own views on.

Every column is checked against the user's test file and the model, read here independently.
"""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest

from rai_audit.core import artifacts as A
from rai_audit.core.constructor_artifact import load_constructor_artifact
from rai_audit.specs import DEFAULT_DASHBOARD_ROWS
from rai_audit.steps.gather import _local_importance, _page_feature, _page_row_ids, _page_table, run_gather
from support import page_data


def _table(case, folder, **options):
    case.construct(folder / "constructor", **options)
    run_gather(folder / "constructor", [], folder / "dashboard")
    return page_data(folder / "dashboard" / A.DASHBOARD_HTML_FILE)["table"]


def _feature_values(column: dict) -> list:
    if column["kind"] == "categorical":
        return [None if c is None else column["categories"][c] for c in column["codes"]]
    return column["values"]


def test_adult_page_carries_a_seeded_sample_with_the_constructor_sample_first(adult_case, tmp_path):
    table = _table(adult_case, tmp_path, sample_size=200, random_state=3)
    test = pd.read_parquet(adult_case.test)
    rows = np.array(table["row_id"])
    assert table["n"] == len(rows) == DEFAULT_DASHBOARD_ROWS < len(test) == table["of"]
    assert table["sampled"] and table["seed"] == 3 and (np.diff(rows) > 0).all()
    constructor = load_constructor_artifact(tmp_path / "constructor")
    assert set(np.flatnonzero(constructor.predictions[A.IN_SAMPLE])) <= set(rows)
    # The same seed, the same rows; another seed, other rows.
    assert _page_row_ids(constructor).tolist() == table["row_id"]
    constructor.meta["sample"]["seed"] = 4
    assert _page_row_ids(constructor).tolist() != table["row_id"]

    model = joblib.load(adult_case.model)
    chosen = test.iloc[rows]
    X = chosen.drop(columns="income")
    assert table["y_true"] == chosen["income"].tolist()
    assert table["y_pred"] == model.predict(X).tolist()
    assert table["error"] == (chosen["income"] != model.predict(X)).astype(float).tolist()
    positive = list(model.classes_).index(">50K")
    np.testing.assert_allclose(table["probability"], model.predict_proba(X)[:, positive], rtol=1e-12)
    by_name = {c["name"]: c for c in table["features"]}
    assert list(by_name) == list(X.columns)
    assert by_name["age"]["kind"] == "numeric" and by_name["workclass"]["kind"] == "categorical"
    for name, column in by_name.items():
        expected = [None if pd.isna(v) else v for v in X[name]]
        assert _feature_values(column) == expected, name
    assert table["local_importance"] is None and table["causal_effects"] is None


@pytest.mark.parametrize(("requested", "expected"), [(0, 0), (10**6, None)])
def test_dashboard_rows_none_or_more_than_the_test_rows(insurance_case, tmp_path, requested, expected):
    table = _table(insurance_case, tmp_path, dashboard_rows=requested)
    n_test = len(pd.read_parquet(insurance_case.test))
    assert table["n"] == (n_test if expected is None else expected) == len(table["row_id"])
    assert table["sampled"] is (requested < n_test) and table["requested"] == requested
    if table["n"]:  # regression: the error is the absolute error, no probability
        test = pd.read_parquet(insurance_case.test)
        predicted = joblib.load(insurance_case.model).predict(test.drop(columns="charges"))
        np.testing.assert_allclose(table["error"], np.abs(predicted - test["charges"]), rtol=1e-12)
        assert table["probability"] is None


def test_dashboard_rows_must_be_a_count(insurance_case, tmp_path):
    with pytest.raises(ValueError, match="dashboard_rows"):
        insurance_case.options(dashboard_rows=-1)


def test_ordinary_dtypes_become_page_columns():
    """Nullable integers and booleans, categories, datetimes and text: missing values as null."""
    numbers = _page_feature("n", pd.Series([1, None, 3], dtype="Int64"), categorical=False)
    assert numbers == {"name": "n", "kind": "numeric", "values": [1.0, None, 3.0]}
    flags = _page_feature("b", pd.Series([True, None, False], dtype="boolean"), categorical=False)
    assert flags["kind"] == "categorical" and _feature_values(flags) == [True, None, False]
    sizes = pd.Series(pd.Categorical(["L", None, "S"], categories=["S", "M", "L"], ordered=True))
    coded = _page_feature("size", sizes, categorical=True)
    assert coded["categories"] == ["S", "L"] and coded["codes"] == [1, None, 0]  # present ones, in their order
    when = _page_feature("t", pd.Series(pd.to_datetime(["2026-01-02 03:04:05", None])), categorical=False)
    assert when == {"name": "t", "kind": "datetime", "values": ["2026-01-02T03:04:05", None]}
    numbers_as_categories = _page_feature("code", pd.Series([10, 2, np.nan]), categorical=True)
    assert numbers_as_categories["categories"] == [2.0, 10.0] and numbers_as_categories["codes"] == [1, 0, None]


def test_local_importances_and_causal_effects_of_the_carried_rows(insurance_case, tmp_path):
    """Explained rows carry their contributions (others null); per-row effects by treatment and level."""
    constructor = insurance_case.construct(tmp_path / "constructor", dashboard_rows=50, random_state=1)
    audit = load_constructor_artifact(constructor)
    rows = _page_table(audit, {}, None)["row_id"]
    explained = rows[::2]
    features = audit.meta["model_features"]
    local = pd.DataFrame({A.ROW_ID: explained, "class": "output"})
    for i, f in enumerate(features):
        local[f] = np.arange(len(explained)) + i / 10
    (tmp_path / "explanation").mkdir()
    local.to_parquet(tmp_path / "explanation" / "local_importance.parquet")
    effects = pd.DataFrame(
        {
            A.ROW_ID: [rows[1], rows[1], rows[2]],
            "treatment": ["bmi", "smoker", "bmi"],
            "level": [None, "yes", None],
            "point": [0.5, -2.0, 0.25],
        }
    )
    (tmp_path / "causal").mkdir()
    effects.to_parquet(tmp_path / "causal" / "local_effects.parquet")

    insights = {"explanation": (tmp_path / "explanation", {}), "causal": (tmp_path / "causal", {})}
    table = _page_table(audit, insights, _local_importance(audit, insights))
    contributions = table["local_importance"]["features"]
    assert table["local_importance"]["label"] == "output" and list(contributions) == features
    for f in features:
        expected = dict(zip(explained, local[f]))
        assert contributions[f] == [expected.get(r) for r in rows], f
    assert table["causal_effects"] == {
        "bmi": [0.5 if r == rows[1] else 0.25 if r == rows[2] else None for r in rows],
        "smoker (yes)": [-2.0 if r == rows[1] else None for r in rows],
    }
