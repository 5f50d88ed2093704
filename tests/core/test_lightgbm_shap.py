"""Tree SHAP computed once per group of rows that split alike equals LightGBM's own on every row."""

from __future__ import annotations

import lightgbm
import numpy as np
import pandas as pd
import pytest

from rai_audit.core.lightgbm_shap import ZERO, lightgbm_matrix, tree_contributions


def frame(rows: int, seed: int, missing: bool) -> pd.DataFrame:
    """Numbers (with zeros and missing values), integer codes and a pandas category column."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "number": rng.normal(size=rows).round(2),
            "count": rng.integers(0, 6, size=rows).astype(float),
            "code": rng.integers(0, 12, size=rows),
            "colour": pd.Categorical(rng.choice(["red", "green", "blue", "grey", "pink"], size=rows)),
        }
    )
    X.loc[rng.random(rows) < 0.1, "count"] = 0.0
    if missing:
        X.loc[rng.random(rows) < 0.1, "number"] = np.nan
        X.loc[rng.random(rows) < 0.1, "colour"] = np.nan
    return X


def target(X: pd.DataFrame) -> np.ndarray:
    colour = X["colour"].cat.codes.to_numpy()
    return np.nan_to_num(X["number"].to_numpy()) + 0.3 * X["count"].to_numpy() + (colour == 1) - 0.1 * X["code"]


def at_the_thresholds(booster, X: pd.DataFrame) -> pd.DataFrame:
    """Test rows whose numbers sit exactly on, and one float either side of, the model's thresholds,
    plus values LightGBM reads as zero (|v| <= 1e-35 as a float) and just above them."""
    thresholds: dict[int, set[float]] = {}

    def walk(node):
        if "split_feature" in node:
            if node["decision_type"] == "<=":
                thresholds.setdefault(node["split_feature"], set()).add(float(node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    rows = []
    for feature, values in thresholds.items():
        name = X.columns[feature]
        for value in values:
            around = (np.nextafter(value, -np.inf), np.nextafter(value, np.inf))
            for v in (value, *around, ZERO, -ZERO, 1e-35, 2e-35, -2e-35):
                row = X.iloc[len(rows) % len(X)].copy()
                row[name] = v
                rows.append(row)
    return pd.DataFrame(rows).astype(X.dtypes.to_dict()).reset_index(drop=True)


def fitted(kind: str, X: pd.DataFrame, **args):
    args = {"n_estimators": 40, "verbose": -1, "random_state": 0, "min_child_samples": 5, **args}
    y = target(X)
    if kind == "regression":
        return lightgbm.LGBMRegressor(**args).fit(X, y)
    if kind == "binary":
        return lightgbm.LGBMClassifier(**args).fit(X, y > np.median(y))
    return lightgbm.LGBMClassifier(**args).fit(X, np.digitize(y, np.quantile(y, [0.33, 0.66])))


CASES = [
    pytest.param("regression", {}, True, id="regression-missing-as-nan"),
    pytest.param("regression", {"zero_as_missing": True}, True, id="regression-zero-as-missing"),
    pytest.param("regression", {}, False, id="regression-no-missing-in-training"),
    pytest.param("binary", {"max_cat_to_onehot": 2**31 - 1}, True, id="binary-one-category-vs-rest"),
    pytest.param("binary", {}, True, id="binary-many-categories-vs-many"),
    pytest.param("multiclass", {}, True, id="multiclass"),
]


@pytest.mark.parametrize("kind, args, missing", CASES)
def test_grouped_rows_give_lightgbms_own_values(kind, args, missing):
    model = fitted(kind, frame(600, seed=1, missing=missing), **args)
    booster = model.booster_
    test = frame(3000, seed=2, missing=True)  # missing values the training rows may not have had
    test = pd.concat([test, at_the_thresholds(booster, test)], ignore_index=True)
    test.loc[len(test) - 1, "colour"] = np.nan
    lightgbms = np.asarray(booster.predict(test, pred_contrib=True))
    grouped = tree_contributions(booster, test, num_threads=2, grouped_from=0)
    assert grouped.shape == lightgbms.shape
    np.testing.assert_allclose(grouped, lightgbms, rtol=0, atol=1e-10)


class CountingBooster:
    """The booster, counting the rows each pred_contrib call is given."""

    def __init__(self, booster):
        self.booster, self.rows = booster, []

    def __getattr__(self, name):
        return getattr(self.booster, name)

    def predict(self, data, **kwargs):
        self.rows.append(len(data))
        return self.booster.predict(data, **kwargs)


def test_each_iteration_computes_one_row_per_group_and_small_inputs_take_one_call():
    model = fitted("binary", frame(600, seed=1, missing=True), max_cat_to_onehot=2**31 - 1)
    test = frame(5000, seed=3, missing=True)
    booster = CountingBooster(model.booster_)
    grouped = tree_contributions(booster, test, num_threads=1)
    assert len(booster.rows) == model.booster_.current_iteration() == 40
    assert all(0 < n < len(test) for n in booster.rows)
    assert sum(booster.rows) < 0.5 * len(test) * 40  # the point: far fewer rows than rows x trees
    np.testing.assert_allclose(grouped, model.booster_.predict(test, pred_contrib=True), rtol=0, atol=1e-10)

    booster.rows.clear()
    small = tree_contributions(booster, test.iloc[:999], num_threads=1)
    assert booster.rows == [999]
    np.testing.assert_array_equal(small, model.booster_.predict(test.iloc[:999], pred_contrib=True))


def test_a_best_iteration_is_explained_as_predict_does():
    """After early stopping, predict (and pred_contrib) use the trees up to the best iteration."""
    booster = fitted("regression", frame(600, seed=1, missing=True)).booster_
    booster.best_iteration = 7
    test = frame(2000, seed=5, missing=True)
    lightgbms = booster.predict(test, pred_contrib=True)
    assert not np.allclose(lightgbms, booster.predict(test, pred_contrib=True, num_iteration=40))
    np.testing.assert_allclose(
        tree_contributions(booster, test, num_threads=1, grouped_from=0), lightgbms, rtol=0, atol=1e-10
    )


def test_the_matrix_is_what_lightgbm_reads_from_the_frame():
    X = frame(500, seed=6, missing=True)
    booster = fitted("regression", X).booster_
    test = frame(200, seed=7, missing=True)
    matrix = lightgbm_matrix(booster, test)
    assert np.isnan(matrix[test["colour"].isna().to_numpy(), 3]).all()
    np.testing.assert_array_equal(booster.predict(matrix), booster.predict(test))


def test_a_booster_read_back_from_its_model_file_is_grouped_alike(tmp_path):
    """As the explainer gets a user's LightGBM model: a Booster from a file, categories and all."""
    model = fitted("multiclass", frame(600, seed=1, missing=True), max_cat_to_onehot=2**31 - 1)
    model.booster_.save_model(tmp_path / "model.txt")
    booster = lightgbm.Booster(model_file=tmp_path / "model.txt")
    test = frame(1500, seed=8, missing=True)
    np.testing.assert_allclose(
        tree_contributions(booster, test, num_threads=2),
        model.booster_.predict(test, pred_contrib=True),
        rtol=0,
        atol=1e-10,
    )
