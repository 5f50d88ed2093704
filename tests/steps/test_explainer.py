"""explainer: local and global importances in raw features equal independent recomputations.

Every figure is recomputed here from the user's files: linear SHAP by hand from the model's
coefficients and the background rows (drawn as the step documents), tree SHAP by additivity
(contributions plus expected value give the model's own output), engineered columns with
shap / interpret-community directly on the transformed data, the mimic's fidelity with a
LightGBM surrogate fitted here, and every aggregate with pandas from the local table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
from scipy.special import logit
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from rai_audit.core import ArtifactIntegrityError, RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.core.constructor_artifact import load_constructor_artifact
from rai_audit.steps.explainer import ExplainerOptions, _import_shap, main, merge_explanations, run_explainer
from rai_audit.steps.gather import run_gather
from support import ADULT_COHORTS, Case, encoded_model, shared_dataset, write_case

# shap without its plots, as the step imports it (matplotlib, which CatBoost brings, breaks them).
shap = _import_shap()

LOCAL = "local_importance.parquet"
MISSING = "(missing)"
ADULT_NUMERIC = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
COMPAS_COLUMNS = ["age", "priors_count", "juv_fel_count", "c_charge_degree", "race", "sex", "score_text"]
COMPAS_CATEGORICAL, COMPAS_NUMERIC = ["c_charge_degree", "race", "sex"], ["age", "priors_count", "juv_fel_count"]
COMPAS_COHORTS = [
    {"name": "Many priors", "filter": {"column": "priors_count", "op": ">", "value": 3}},
    {"name": "Misclassified", "filter": {"column": "error", "op": "==", "value": True}},
]
# The same cohorts in pandas: (test features, misclassified) -> rows.
COHORT_ROWS: dict[str, Callable[[pd.DataFrame, np.ndarray], Any]] = {
    "Under 30": lambda X, wrong: X["age"] < 30,
    "Nobody": lambda X, wrong: X["age"] > 500,
    "Many priors": lambda X, wrong: X["priors_count"] > 3,
    "Misclassified": lambda X, wrong: wrong,
}

# --- the cases: the conftest ones and models built here -----------------------------------------


def adult_linear_case(folder: Path) -> Case:
    """A bare LogisticRegression on Adult's numeric columns; ``sex`` is kept for cohorts only."""
    columns = [*ADULT_NUMERIC, "sex", "income"]
    train = shared_dataset("adult_train.parquet")[columns]
    test = shared_dataset("adult_test.parquet")[columns]
    model = LogisticRegression(max_iter=5000).fit(train[ADULT_NUMERIC], train["income"])
    return write_case(
        folder,
        model,
        train,
        test,
        target="income",
        task_type="binary_classification",
        sensitive=["sex"],
        positive_label=">50K",
    )


def compas_tree_case(folder: Path, estimator, merge_rare_races: bool = True) -> Case:
    """COMPAS behind one-hot + scaling; rare races (Asian: 32 rows, Native American: 18) are
    merged into Other unless ``merge_rare_races`` is False."""
    data = shared_dataset("compas_two_years.parquet")[COMPAS_COLUMNS]
    if merge_rare_races:
        data = data.assign(race=data["race"].replace({"Asian": "Other", "Native American": "Other"}))
    train, test = data.iloc[:5000].reset_index(drop=True), data.iloc[5000:].reset_index(drop=True)
    model = encoded_model(COMPAS_CATEGORICAL, COMPAS_NUMERIC, estimator)
    model.fit(train.drop(columns="score_text"), train["score_text"])
    return write_case(
        folder,
        model,
        train,
        test,
        target="score_text",
        task_type="multiclass_classification",
        sensitive=["race", "sex"],
    )


def adult_lightgbm_case(folder: Path, columns: list[str]) -> Case:
    """LightGBM behind imputation + one-hot (as the demo), on some Adult columns."""
    train = shared_dataset("adult_train.parquet")[[*columns, "income"]]
    test = shared_dataset("adult_test.parquet")[[*columns, "income"]]
    features = train.drop(columns="income")
    categorical = [c for c in features.columns if features[c].dtype == object]
    encode = ColumnTransformer(
        [
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            )
        ],
        remainder="passthrough",
    )
    model = Pipeline(
        [("encode", encode), ("model", lightgbm.LGBMClassifier(n_estimators=40, random_state=0, verbose=-1))]
    )
    model.fit(features, train["income"])
    return write_case(
        folder,
        model,
        train,
        test,
        target="income",
        task_type="binary_classification",
        sensitive=["sex"],
        positive_label=">50K",
    )


@dataclass
class Subject:
    """A constructor run, with what the tests recompute from: the user's files and model."""

    case: Case
    constructor: Path
    model: Any
    X: pd.DataFrame  # the user's test features (every column, not only the model's)
    train: pd.DataFrame  # the user's train features (the model's)
    features: list[str]
    rows: np.ndarray  # the constructor's sample (row ids), in order
    wrong: np.ndarray  # misclassified, recomputed here (classification)
    run_id: str
    sensitive: list[str]

    @property
    def explained(self) -> pd.DataFrame:
        return self.X[self.features].iloc[self.rows]

    def background(self, size: int = 100, seed: int = 0) -> pd.DataFrame:
        """The train rows the step documents as background: a seeded sample, in file order."""
        rows = np.random.default_rng(seed).choice(len(self.train), min(size, len(self.train)), replace=False)
        return self.train.iloc[np.sort(rows)]


def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=25, max_depth=6, random_state=0)


# name: (case, constructor options)
SUBJECTS: dict[str, tuple[Callable[..., Case], dict[str, Any]]] = {
    "adult_linear": (
        lambda f, cases: adult_linear_case(f),
        {"sample_size": 300, "dropped_features": ["sex"], "cohorts": ADULT_COHORTS},
    ),
    "insurance": (lambda f, cases: cases["insurance"], {"sample_size": 100}),
    "compas": (lambda f, cases: cases["compas"], {"sample_size": 150}),
    # Enough rows that the mimic's tree SHAP groups them (rai_audit.core.lightgbm_shap.GROUPED_FROM).
    "compas_1500": (lambda f, cases: cases["compas"], {"sample_size": 1500}),
    "compas_rf": (lambda f, cases: compas_tree_case(f, forest()), {"sample_size": 150, "cohorts": COMPAS_COHORTS}),
    "compas_rf_rare": (lambda f, cases: compas_tree_case(f, forest(), merge_rare_races=False), {"sample_size": 150}),
    "compas_lgbm": (
        lambda f, cases: compas_tree_case(f, lightgbm.LGBMClassifier(n_estimators=40, random_state=0, verbose=-1)),
        {"sample_size": 150},
    ),
    "adult_lgbm": (
        lambda f, cases: adult_lightgbm_case(
            f, ["age", "education-num", "hours-per-week", "capital-gain", "sex", "race", "relationship"]
        ),
        # Enough rows that LightGBM's tree SHAP groups them, as the mimic's (compas_1500).
        {"sample_size": 1500},
    ),
    "adult_mimic": (lambda f, cases: cases["adult"], {"sample_size": 200, "cohorts": ADULT_COHORTS}),
}


@pytest.fixture(scope="module")
def subjects(adult_case, compas_case, insurance_case, tmp_path_factory) -> Callable[[str], Subject]:
    """subjects(name): the constructor run of that case, built once, when first needed."""
    root = tmp_path_factory.mktemp("explainer_subjects")
    cases = {"adult": adult_case, "compas": compas_case, "insurance": insurance_case}
    built: dict[str, Subject] = {}

    def get(name: str) -> Subject:
        if name not in built:
            make, options = SUBJECTS[name]
            case = make(root / f"{name}_case", cases)
            constructor = case.construct(root / name, **options)
            audit = load_constructor_artifact(constructor)
            data = pd.read_parquet(case.test)
            X = data.drop(columns=case.target)
            features = [c for c in X.columns if c not in options.get("dropped_features", [])]
            model = joblib.load(case.model)
            wrong = (
                (model.predict(X[features]) != data[case.target].to_numpy())
                if case.task_type != "regression"
                else np.zeros(len(X), dtype=bool)
            )
            predictions = audit.predictions
            built[name] = Subject(
                case=case,
                constructor=constructor,
                model=model,
                X=X,
                train=pd.read_parquet(case.train)[features],
                features=features,
                rows=predictions.loc[predictions[A.IN_SAMPLE], A.ROW_ID].to_numpy(),
                wrong=np.asarray(wrong, dtype=bool),
                run_id=audit.run_id,
                sensitive=case.sensitive,
            )
            assert audit.meta["model_features"] == features
            assert len(built[name].rows) == options["sample_size"]
        return built[name]

    return get


@dataclass
class Explanation:
    folder: Path
    doc: dict[str, Any]
    local: pd.DataFrame


def read_explanation(folder: Path) -> Explanation:
    return Explanation(
        folder, json.loads((folder / A.INSIGHT_RESULT_FILE).read_text()), pd.read_parquet(folder / LOCAL)
    )


@pytest.fixture(scope="module")
def explain(subjects, tmp_path_factory) -> Callable[..., Explanation]:
    """explain(name, **options): the explanation of that subject, computed once per options."""
    root = tmp_path_factory.mktemp("explanations")
    done: dict[str, Explanation] = {}

    def run(name: str, **options: Any) -> Explanation:
        key = json.dumps([name, options], sort_keys=True)
        if key not in done:
            out = root / f"ex{len(done)}"
            run_explainer(subjects(name).constructor, out, options=ExplainerOptions(**options))
            done[key] = read_explanation(out)
        return done[key]

    return run


SHARDS = 3


@pytest.fixture(scope="module")
def shards(subjects, tmp_path_factory) -> Callable[[str], list[Path]]:
    """shards(name): the folders of shards 0..2 of 3 of that subject's explanation."""
    root = tmp_path_factory.mktemp("explanation_shards")
    done: dict[str, list[Path]] = {}

    def run(name: str) -> list[Path]:
        if name not in done:
            folders = [root / f"{name}_shard{i}" for i in range(SHARDS)]
            for i, folder in enumerate(folders):
                run_explainer(
                    subjects(name).constructor, folder, options=ExplainerOptions(shard_index=i, shard_count=SHARDS)
                )
            done[name] = folders
        return done[name]

    return run


# --- helpers -------------------------------------------------------------------------------------


def dense(values: Any) -> np.ndarray:
    return np.asarray(values.toarray() if hasattr(values, "toarray") else values, dtype=float)


def engineered_names(model) -> list[str]:
    return [str(n) for n in model[:-1].get_feature_names_out()]


def columns_of(model, feature: str) -> list[int]:
    """Indexes of the engineered columns made from a raw feature, from the encoder's names."""
    names = engineered_names(model)
    found = [
        i
        for i, n in enumerate(names)
        if n in (f"num__{feature}", f"remainder__{feature}") or n.startswith(f"cat__{feature}_")
    ]
    assert found, f"no engineered column for {feature} in {names}"
    return found


def of_class(local: pd.DataFrame, label: Any) -> pd.DataFrame:
    return local[local["class"] == str(label)]


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal JSON documents, floats within 1e-9 (relative)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (where, a, b)
    else:
        assert a == b, (where, a, b)


def mean_abs_over_classes(local: pd.DataFrame, features: list[str], row_ids: np.ndarray | None = None) -> dict:
    """Mean over classes of each class's mean |contribution|; None per feature with no rows."""
    if row_ids is not None:
        local = local[local[A.ROW_ID].isin(row_ids)]
    if local.empty:
        return {f: None for f in features}
    per_class = [group[features].abs().mean() for _, group in local.groupby("class")]
    return pd.concat(per_class, axis=1).mean(axis=1).to_dict()


def expected_groups(values: pd.Series) -> pd.Series:
    """Sensitive groups: quartiles for a numeric feature with many values, else the values."""
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > 10:
        # pandas' quartiles, labelled by the whole numbers they hold ("18-25", both ends included)
        binned = pd.qcut(values, 4)
        assert (values.dropna() % 1 == 0).all(), "labels of whole-number bins only"
        names = {
            iv: f"{int(values.min()) if i == 0 else math.floor(iv.left) + 1}-{math.floor(iv.right)}"
            for i, iv in enumerate(binned.cat.categories)
        }
        return binned.map(names).astype(object).where(values.notna(), MISSING)
    return values.astype(object).where(values.notna(), MISSING).astype(str)


def mimic_rows(s: Subject, *, background_size: int = 100, mimic_train_size: int = 5000, seed: int = 0) -> np.ndarray:
    """The train rows the mimic learns from: a seeded sample drawn after the background's."""
    rng = np.random.default_rng(seed)
    n = len(s.train)
    rng.choice(n, min(background_size, n), replace=False)  # the background is drawn first
    return np.sort(rng.choice(n, min(mimic_train_size, n), replace=False))


def soft_logit(proba: np.ndarray) -> np.ndarray:
    """interpret-community's binary surrogate target: the second class's logit, clipped to +-5."""
    return np.clip(logit(proba[:, 1]), -5, 5)


def one_hot_surrogate_fidelity(s: Subject) -> float:
    """The fidelity of the mimic the step used before (interpret-community's LGBMExplainableModel on
    the Pipeline's engineered columns): a LightGBM regressor on the soft logit of the second class
    (binary) or on the model's output (regression)."""
    pre, estimator = s.model[:-1], s.model[-1]
    X_mimic = dense(pre.transform(s.train.iloc[mimic_rows(s)]))
    X_test = dense(pre.transform(s.X[s.features]))
    y_model = s.model.predict(s.X[s.features])
    surrogate = lightgbm.LGBMRegressor(random_state=0, n_jobs=1, verbose=-1)
    if s.case.task_type == "regression":
        surrogate.fit(X_mimic, estimator.predict(X_mimic))
        return float(r2_score(y_model, surrogate.predict(X_test)))
    surrogate.fit(X_mimic, soft_logit(estimator.predict_proba(X_mimic)))
    return float(accuracy_score(y_model, estimator.classes_[(surrogate.predict(X_test) > 0).astype(int)]))


@dataclass
class RawSurrogate:
    """The mimic's surrogate as the step documents it, fitted here: LightGBM on the raw features,
    text columns as pandas categories (those of its training rows), each categorical split one
    category against the rest."""

    model: Any
    categories: dict[str, list[str]]

    def frame(self, raw: pd.DataFrame) -> pd.DataFrame:
        out = raw.reset_index(drop=True).copy()
        for c in out.columns:
            if c in self.categories:
                out[c] = pd.Categorical(out[c], categories=self.categories[c])
            else:
                out[c] = out[c].astype(float)
        return out

    def contributions(self, raw: pd.DataFrame) -> np.ndarray:
        """(outputs, rows, features + 1): LightGBM's tree SHAP, the expected value last."""
        values = np.asarray(self.model.booster_.predict(self.frame(raw), pred_contrib=True))
        return values.reshape(len(raw), -1, raw.shape[1] + 1).transpose(1, 0, 2)


def raw_surrogate(s: Subject) -> RawSurrogate:
    train = s.train.iloc[mimic_rows(s)].reset_index(drop=True)
    categories = {c: sorted(train[c].dropna().unique()) for c in train.columns if train[c].dtype == object}
    args = {"random_state": 0, "n_jobs": 1, "verbose": -1, "max_cat_to_onehot": 2**31 - 1}
    X = RawSurrogate(None, categories).frame(train)
    if s.case.task_type == "regression":
        return RawSurrogate(lightgbm.LGBMRegressor(**args).fit(X, s.model.predict(train)), categories)
    proba = s.model.predict_proba(train)
    if proba.shape[1] == 2:
        return RawSurrogate(lightgbm.LGBMRegressor(**args).fit(X, soft_logit(proba)), categories)
    assert set(proba.argmax(axis=1)) == set(range(proba.shape[1]))  # every class predicted here
    return RawSurrogate(lightgbm.LGBMClassifier(**args).fit(X, proba.argmax(axis=1)), categories)


def surrogate_fidelity(s: Subject) -> float:
    """The mimic's fidelity: its surrogate's labels against the model's on every test row (r2 for a
    regression)."""
    surrogate = raw_surrogate(s)
    X_test, y_model = s.X[s.features], s.model.predict(s.X[s.features])
    output = surrogate.model.predict(surrogate.frame(X_test))
    if s.case.task_type == "regression":
        return float(r2_score(y_model, output))
    classes = s.model.classes_
    labels = classes[(output > 0).astype(int)] if len(classes) == 2 else classes[output]
    return float(accuracy_score(y_model, labels))


# --- 1. linear SHAP, by hand ----------------------------------------------------------------------

LINEAR_BACKGROUNDS = [pytest.param(40, id="background-40"), pytest.param(100, id="background-100")]


@pytest.mark.parametrize("background_size", LINEAR_BACKGROUNDS)
def test_auto_explains_a_logistic_regression_with_linear_shap(subjects, explain, background_size):
    s, e = subjects("adult_linear"), explain("adult_linear", background_size=background_size)
    assert (e.doc["method"], e.doc["explainer"], e.doc["estimator"]) == (
        "linear",
        "LinearExplainer",
        "LogisticRegression",
    )
    assert e.doc["background"] == {"size": background_size, "seed": 0} and e.doc["fidelity"] is None
    assert e.doc["surrogate_rows"] is None
    assert list(e.local.columns) == [A.ROW_ID, "class", *ADULT_NUMERIC]  # sex is not a model feature
    model = s.model
    negative, positive = model.classes_
    mean = s.background(background_size).to_numpy(float).mean(axis=0)
    by_hand = model.coef_[0] * (s.explained.to_numpy(float) - mean)  # log-odds of the positive class
    assert list(e.local["class"].unique()) == [negative, positive]
    for label, sign in ((positive, 1), (negative, -1)):
        part = of_class(e.local, label)
        np.testing.assert_array_equal(part[A.ROW_ID], s.rows)
        np.testing.assert_allclose(part[ADULT_NUMERIC].to_numpy(), sign * by_hand, rtol=1e-9, atol=1e-9)
    base = model.intercept_[0] + model.coef_[0] @ mean
    assert e.doc["expected_values"] == pytest.approx({positive: base, negative: -base}, rel=1e-9)
    total = of_class(e.local, positive)[ADULT_NUMERIC].sum(axis=1).to_numpy() + base
    np.testing.assert_allclose(total, model.decision_function(s.explained), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("background_size", LINEAR_BACKGROUNDS)
def test_linear_shap_of_a_pipeline_sums_one_hot_columns_back(subjects, explain, background_size):
    s, e = subjects("insurance"), explain("insurance", background_size=background_size)
    assert (e.doc["method"], e.doc["estimator"]) == ("linear", "LinearRegression")
    assert list(e.local["class"].unique()) == ["output"] and list(e.doc["expected_values"]) == ["output"]
    np.testing.assert_array_equal(e.local[A.ROW_ID], s.rows)
    pre, regression = s.model[:-1], s.model[-1]
    background = dense(pre.transform(s.background(background_size)))
    x = dense(pre.transform(s.explained))
    contribution = regression.coef_ * (x - background.mean(axis=0))  # (rows, engineered columns)
    smoker = columns_of(s.model, "smoker")
    assert [engineered_names(s.model)[i] for i in smoker] == ["cat__smoker_no", "cat__smoker_yes"]
    np.testing.assert_allclose(e.local["smoker"], contribution[:, smoker].sum(axis=1), rtol=1e-9, atol=1e-6)
    # bmi by hand: the scaler's output for the row minus its mean over the background
    scaler = pre[0].named_transformers_["num"]
    j = list(scaler.feature_names_in_).index("bmi")

    def scaled(values: pd.Series) -> np.ndarray:
        return (values.to_numpy(float) - scaler.mean_[j]) / scaler.scale_[j]

    bmi_coef = regression.coef_[engineered_names(s.model).index("num__bmi")]
    by_hand = bmi_coef * (scaled(s.explained["bmi"]) - scaled(s.background(background_size)["bmi"]).mean())
    np.testing.assert_allclose(e.local["bmi"], by_hand, rtol=1e-9, atol=1e-6)
    for feature in s.features:
        np.testing.assert_allclose(
            e.local[feature],
            contribution[:, columns_of(s.model, feature)].sum(axis=1),
            rtol=1e-9,
            atol=1e-6,
            err_msg=feature,
        )
    base = regression.intercept_ + regression.coef_ @ background.mean(axis=0)
    assert e.doc["expected_values"]["output"] == pytest.approx(base, rel=1e-9)
    np.testing.assert_allclose(e.local[s.features].sum(axis=1) + base, s.model.predict(s.explained), rtol=1e-9)


# --- 2. tree SHAP adds up to the model's output -------------------------------------------------


def tree_output(model, X: pd.DataFrame) -> np.ndarray:
    """What tree SHAP explains, one column per class in model.classes_ order: a random forest's
    probabilities; LightGBM's raw margin (log-odds; binary: -margin, +margin)."""
    transformed = dense(model[:-1].transform(X))
    estimator = model[-1]
    if isinstance(estimator, lightgbm.LGBMClassifier):
        raw = estimator.predict_proba(transformed, raw_score=True)
        return np.column_stack([-raw, raw]) if raw.ndim == 1 else raw
    return estimator.predict_proba(transformed)


def constant_columns(s: Subject, background_size: int = 100) -> list[str]:
    """Engineered columns that do not vary over the background and the explained rows."""
    probe = dense(s.model[:-1].transform(pd.concat([s.background(background_size), s.explained])))
    return [n for n, column in zip(engineered_names(s.model), probe.T) if np.ptp(column) == 0]


TREE_CASES = [
    pytest.param("compas_rf", id="compas-random-forest"),
    pytest.param("compas_lgbm", id="compas-lightgbm"),
    pytest.param("adult_lgbm", id="adult-lightgbm"),
    pytest.param("compas_rf_rare", id="compas-random-forest-rare-races"),
]


@pytest.mark.parametrize("name", TREE_CASES)
def test_tree_shap_contributions_add_up_to_the_model_output(subjects, explain, name):
    s, e = subjects(name), explain(name)
    # LightGBM's own tree SHAP, on every core; other trees through interpret-community (shap).
    explainer = "LightGBM's own tree SHAP" if name.endswith("lgbm") else "TreeExplainer"
    assert (e.doc["method"], e.doc["explainer"]) == ("tree", explainer)
    classes = [str(c) for c in s.model.classes_]
    assert list(e.doc["expected_values"]) == classes and list(e.local["class"].unique()) == classes
    output = tree_output(s.model, s.explained)
    for k, label in enumerate(classes):
        part = of_class(e.local, label)
        np.testing.assert_array_equal(part[A.ROW_ID], s.rows)
        total = part[s.features].sum(axis=1).to_numpy() + e.doc["expected_values"][label]
        np.testing.assert_allclose(total, output[:, k], rtol=0, atol=1e-6, err_msg=label)


def test_the_rare_race_case_has_a_column_constant_on_the_probed_rows_that_the_forest_uses(subjects):
    """The case the xfail above covers: a one-hot race column absent from the background and the
    sample, whose SHAP value the forest makes non-zero. With the rare races merged, none is constant."""
    s = subjects("compas_rf_rare")
    assert constant_columns(s) == ["cat__race_Native American"]
    assert constant_columns(subjects("compas_rf")) == []
    column = engineered_names(s.model).index("cat__race_Native American")
    assert np.abs(engineered_shap(s, s.rows)[:, :, column]).max() > 1e-4


# --- 3. one-hot columns summed back to raw features ---------------------------------------------


def engineered_shap(s: Subject, rows: np.ndarray) -> np.ndarray:
    """SHAP values of the final estimator on the transformed rows: (classes, rows, columns)."""
    pre, estimator = s.model[:-1], s.model[-1]
    names = engineered_names(s.model)
    x = pd.DataFrame(dense(pre.transform(s.X[s.features].iloc[rows])), columns=names)
    if isinstance(estimator, (RandomForestClassifier, lightgbm.LGBMClassifier)):
        values = shap.TreeExplainer(estimator).shap_values(x.to_numpy())
        if isinstance(values, list):
            return np.stack(values)
        values = np.asarray(values, dtype=float)
        # A binary LightGBM's one output (the second class's log-odds) as the two classes' (-v, v).
        return np.stack([-values, values]) if values.ndim == 2 else np.moveaxis(values, -1, 0)
    from interpret_community.shap import LinearExplainer

    background = pd.DataFrame(dense(pre.transform(s.background())), columns=names)
    explainer = LinearExplainer(estimator, background, features=names, classes=list(estimator.classes_))
    return np.asarray(explainer.explain_local(x).local_importance_values, dtype=float)


@pytest.mark.parametrize(
    "name", ["compas_rf", "compas_lgbm", "compas"], ids=["random-forest", "lightgbm", "logistic-regression"]
)
def test_local_table_has_raw_features_with_one_hot_columns_summed(subjects, explain, name):
    s, e = subjects(name), explain(name)
    assert list(e.local.columns) == [A.ROW_ID, "class", *s.features] and e.doc["features"] == s.features
    assert not set(engineered_names(s.model)) & set(e.local.columns)
    classes = [str(c) for c in s.model.classes_]
    assert len(e.local) == len(classes) * len(s.rows) and e.doc["n_rows"] == len(s.rows)
    picked = s.rows[[0, len(s.rows) // 2]]
    direct = engineered_shap(s, picked)
    assert direct.shape == (len(classes), len(picked), len(engineered_names(s.model)))
    for k, label in enumerate(classes):
        part = of_class(e.local, label).set_index(A.ROW_ID)
        for i, row in enumerate(picked):
            for feature in s.features:
                columns = columns_of(s.model, feature)
                assert (len(columns) > 1) == (feature in COMPAS_CATEGORICAL)
                assert part.loc[row, feature] == pytest.approx(direct[k, i, columns].sum(), rel=1e-9, abs=1e-12), (
                    label,
                    row,
                    feature,
                )


# --- 4. shards merge into the unsharded result ---------------------------------------------------

SHARDED = ["adult_linear", "compas_rf", "adult_mimic"]


@pytest.mark.parametrize("name", SHARDED)
def test_merged_shards_equal_the_unsharded_run(subjects, explain, shards, tmp_path, name):
    s, whole = subjects(name), explain(name)
    parts = shards(name)
    classes = list(whole.doc["expected_values"])
    for i, (folder, rows) in enumerate(zip(parts, np.array_split(s.rows, SHARDS))):
        part = read_explanation(folder)
        assert part.doc["rows"] == {
            "selection": "sample",
            "total": len(s.rows),
            "shard_index": i,
            "shard_count": SHARDS,
        }
        assert part.doc["n_rows"] == len(rows)
        for label in classes:
            np.testing.assert_array_equal(of_class(part.local, label)[A.ROW_ID], rows)
    result = merge_explanations(s.constructor, list(reversed(parts)), tmp_path / "merged")
    merged = read_explanation(tmp_path / "merged")
    assert (result.run_id, result.method, result.n_rows) == (s.run_id, whole.doc["method"], len(s.rows))
    pd.testing.assert_frame_equal(merged.local, whole.local, check_exact=False, rtol=1e-9, atol=1e-12)
    assert merged.doc["rows"] == {**whole.doc["rows"], "merged_from": SHARDS}
    assert_same(
        {k: v for k, v in merged.doc.items() if k != "rows"}, {k: v for k, v in whole.doc.items() if k != "rows"}
    )
    merged_meta = A.read_artifact_meta(tmp_path / "merged", expected_kind="explanation")
    assert merged_meta["run_id"] == s.run_id and merged_meta["options"] == asdict(ExplainerOptions())


def test_merge_refuses_missing_duplicated_foreign_or_modified_shards(subjects, shards, tmp_path):
    s = subjects("compas_rf")
    p0, p1, p2 = shards("compas_rf")
    other = s.case.construct(tmp_path / "other_run", **SUBJECTS["compas_rf"][1])  # same data, another run
    foreign = tmp_path / "foreign"
    run_explainer(other, foreign, options=ExplainerOptions(shard_index=1, shard_count=SHARDS))
    modified = tmp_path / "modified"
    modified.mkdir()
    for f in p1.iterdir():
        (modified / f.name).write_bytes(f.read_bytes())
    frame = pd.read_parquet(modified / LOCAL)
    frame.loc[0, "age"] += 1.0
    frame.to_parquet(modified / LOCAL, index=False)
    attempts = [
        ([p0, p2], RAIInputError, r"explanation shards must be 0\.\.n-1 of one split, got indices \[0, 2\]"),
        ([p0, p1, p1, p2], RAIInputError, r"got indices \[0, 1, 1, 2\]"),
        ([], RAIInputError, r"`shard_dirs` must name at least one explanation shard"),
        ([p0, foreign, p2], ArtifactIntegrityError, r"comes from run .* not '" + s.run_id),
        ([p0, s.constructor, p2], ArtifactIntegrityError, r"must be of kind 'explanation', got 'constructor'"),
        ([p0, modified, p2], ArtifactIntegrityError, r"does not match its manifest.json \(changed: " + LOCAL),
    ]
    for i, (folders, error, match) in enumerate(attempts):
        with pytest.raises(error, match=match):
            merge_explanations(s.constructor, folders, tmp_path / f"merged{i}")
        assert not (tmp_path / f"merged{i}").exists()


MIXED = {"random_state": {"random_state": 1}, "rows": {"rows": "all"}}


@pytest.mark.parametrize("option", MIXED.values(), ids=MIXED)
def test_merge_refuses_shards_computed_with_other_options(subjects, tmp_path, option):
    s = subjects("adult_linear")
    folders = [tmp_path / f"shard{i}" for i in range(2)]
    for i, folder in enumerate(folders):
        extra = option if i == 1 else {}
        run_explainer(
            s.constructor, folder, options=ExplainerOptions(shard_index=i, shard_count=2, background_size=100, **extra)
        )
    with pytest.raises(RAIInputError, match=next(iter(option))):
        merge_explanations(s.constructor, folders, tmp_path / "merged")


def test_a_shard_with_no_rows_is_empty_or_refused_clearly(subjects, tmp_path):
    s = subjects("insurance")
    count = len(s.rows) + 1
    out = tmp_path / "empty"
    try:
        run_explainer(s.constructor, out, options=ExplainerOptions(shard_index=count - 1, shard_count=count))
    except RAIInputError as err:
        assert "shard" in str(err)
        return
    assert read_explanation(out).local.empty


# --- 5. the mimic fallback and forced methods ------------------------------------------------------


def test_auto_falls_back_to_a_mimic_and_records_its_fidelity(subjects, explain):
    s, e = subjects("adult_mimic"), explain("adult_mimic")
    assert type(s.model[-1]).__name__ == "HistGradientBoostingClassifier"
    assert (e.doc["method"], e.doc["explainer"], e.doc["estimator"]) == (
        "mimic",
        "LightGBM surrogate on the raw features",
        "HistGradientBoostingClassifier",
    )
    assert any("mimic" in note and "HistGradientBoostingClassifier" in note for note in e.doc["notes"])
    # The surrogate learned from the seeded mimic rows (at most 5,000 train rows); it uses no background.
    assert e.doc["background"] is None
    assert e.doc["surrogate_rows"] == {"size": min(5000, len(s.train)), "seed": 0}
    fidelity = e.doc["fidelity"]
    assert fidelity["metric"] == "accuracy" and isinstance(fidelity["value"], float)
    assert 0.8 <= fidelity["value"] <= 1.0
    assert fidelity["value"] == pytest.approx(surrogate_fidelity(s), abs=1e-12)
    assert list(e.local.columns) == [A.ROW_ID, "class", *s.features]
    np.testing.assert_array_equal(of_class(e.local, ">50K")[A.ROW_ID], s.rows)
    np.testing.assert_allclose(of_class(e.local, "<=50K")[s.features], -of_class(e.local, ">50K")[s.features])


def test_a_forced_mimic_on_a_regression_records_its_r2(subjects, explain):
    s, e = subjects("insurance"), explain("insurance", method="mimic")
    assert (e.doc["method"], e.doc["estimator"], e.doc["notes"]) == ("mimic", "LinearRegression", [])
    assert e.doc["fidelity"]["metric"] == "r2"
    assert e.doc["fidelity"]["value"] == pytest.approx(surrogate_fidelity(s), abs=1e-12)
    assert 0.9 < e.doc["fidelity"]["value"] <= 1.0


MIMICS = [
    ("adult_mimic", {}),
    ("insurance", {"method": "mimic"}),
    ("compas", {"method": "mimic"}),
    ("compas_1500", {"method": "mimic"}),
]


@pytest.mark.parametrize("name, options", MIMICS, ids=["binary", "regression", "multiclass", "multiclass-1500-rows"])
def test_the_mimic_is_a_raw_feature_surrogate_whose_tree_shap_adds_up_to_its_output(subjects, explain, name, options):
    """Local values equal tree SHAP of the surrogate fitted here, and with the expected value they
    add up to the surrogate's own raw output (log-odds, or value) on every explained row."""
    s, e = subjects(name), explain(name, **options)
    assert e.doc["method"] == "mimic"
    assert e.doc["fidelity"]["value"] == pytest.approx(surrogate_fidelity(s), abs=1e-12)
    surrogate = raw_surrogate(s)
    contributions = surrogate.contributions(s.explained)
    raw_output = np.asarray(surrogate.model.predict(surrogate.frame(s.explained), raw_score=True)).reshape(
        len(s.rows), -1
    )
    np.testing.assert_allclose(contributions.sum(axis=2), raw_output.T, atol=1e-9)
    labels = list(e.doc["expected_values"])
    if contributions.shape[0] == 1 and len(labels) == 2:  # a binary surrogate's one output: (-v, v)
        contributions = np.concatenate([-contributions, contributions])
    for k, label in enumerate(labels):
        part = of_class(e.local, label)
        np.testing.assert_array_equal(part[A.ROW_ID], s.rows)
        np.testing.assert_allclose(part[s.features].to_numpy(), contributions[k, :, :-1], atol=1e-9)
        assert e.doc["expected_values"][label] == pytest.approx(contributions[k, 0, -1], abs=1e-9)


@pytest.mark.parametrize("name, options", MIMICS[:2], ids=["binary", "regression"])
def test_the_raw_feature_mimic_keeps_the_one_hot_mimics_fidelity_and_top_features(subjects, explain, name, options):
    """Against the mimic the step used before (on the Pipeline's one-hot columns, importances summed
    back to raw features): fidelity as good (within 0.002) and the same top features."""
    from interpret_community.mimic import MimicExplainer
    from interpret_community.mimic.models import LGBMExplainableModel

    from rai_audit.steps.explainer import _feature_map, _probe_values

    s, e = subjects(name), explain(name, **options)
    assert e.doc["fidelity"]["value"] >= one_hot_surrogate_fidelity(s) - 0.002
    pre, estimator = s.model[:-1], s.model[-1]
    names = engineered_names(s.model)
    before = MimicExplainer(
        estimator,
        pd.DataFrame(dense(pre.transform(s.train.iloc[mimic_rows(s)])), columns=names),
        LGBMExplainableModel,
        augment_data=False,
        explainable_model_args={"random_state": 0, "n_jobs": 1, "verbose": -1},
        model_task="regression" if s.case.task_type == "regression" else "classification",
        features=names,
    )
    values = np.asarray(
        before.explain_local(pd.DataFrame(dense(pre.transform(s.explained)), columns=names)).local_importance_values
    )
    test = s.X[s.features]
    pools = {f: _probe_values(pd.concat([s.train[f], test[f]], ignore_index=True)) for f in s.features}
    weights, _ = _feature_map(pre, s.background(), pools, s.features)
    before_global = np.abs(np.atleast_3d(values.T).T @ weights.T).mean(axis=1).mean(axis=0)
    top_before = [s.features[i] for i in np.argsort(-before_global, kind="stable")[:3]]
    top_now = [r["feature"] for r in e.doc["global"][:3]]
    assert set(top_now) == set(top_before), (top_now, top_before)


FORCED = [("adult_mimic", "linear"), ("adult_mimic", "tree"), ("insurance", "tree")]


@pytest.mark.parametrize("name, method", FORCED, ids=[f"{m}-on-{n}" for n, m in FORCED])
def test_a_forced_method_the_model_does_not_support_is_a_clear_input_error(subjects, tmp_path, capsys, name, method):
    s = subjects(name)
    with pytest.raises(RAIInputError, match=method):
        run_explainer(s.constructor, tmp_path / "api", options=ExplainerOptions(method=method))
    assert main(["--constructor", str(s.constructor), "--output", str(tmp_path / "cli"), "--method", method]) == 2
    assert "rai-audit: error:" in capsys.readouterr().err
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()


# --- 6. aggregates --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adult_linear", "compas_rf", "insurance", "adult_mimic"])
def test_global_class_cohort_and_group_importances_equal_pandas(subjects, explain, name):
    s, e = subjects(name), explain(name)
    local, doc, features = e.local, e.doc, s.features
    classes = list(doc["expected_values"])
    per_class = {label: of_class(local, label)[features].abs().mean() for label in classes}
    assert list(doc["per_class"]) == classes
    for label, ranked in doc["per_class"].items():
        assert {r["feature"]: r["importance"] for r in ranked} == pytest.approx(per_class[label].to_dict())
    overall = pd.concat(per_class.values(), axis=1).mean(axis=1)
    assert {r["feature"]: r["importance"] for r in doc["global"]} == pytest.approx(overall.to_dict())
    assert len(doc["global"]) == len(features)
    importances = [r["importance"] for r in doc["global"]]
    assert importances == sorted(importances, reverse=True)  # most important first
    assert doc["global"][0]["feature"] == overall.idxmax()
    # cohorts: the explained rows among the cohort's rows
    cohorts = SUBJECTS[name][1].get("cohorts", [])
    assert [c["name"] for c in doc["cohorts"]] == [c["name"] for c in cohorts]
    for cohort in doc["cohorts"]:
        members = np.flatnonzero(np.asarray(COHORT_ROWS[cohort["name"]](s.X, s.wrong), dtype=bool))
        explained = np.intersect1d(members, s.rows)
        assert cohort["count"] == len(explained), cohort["name"]
        assert cohort["importance"] == pytest.approx(mean_abs_over_classes(local, features, explained)), cohort["name"]
    for nobody in (c for c in doc["cohorts"] if c["name"] == "Nobody"):  # an empty cohort has no figures
        assert nobody == {"name": "Nobody", "count": 0, "importance": {f: None for f in features}}
    # sensitive groups (sex is not a feature of the adult_linear model, but groups its rows)
    expected = [
        (f, g, np.flatnonzero((groups == g).to_numpy()))
        for f in s.sensitive
        for groups in [expected_groups(s.X[f])]
        for g in sorted(groups.unique())
    ]
    assert [(g["feature"], g["group"]) for g in doc["sensitive_groups"]] == [(f, g) for f, g, _ in expected]
    for group, (_, _, members) in zip(doc["sensitive_groups"], expected):
        explained = np.intersect1d(members, s.rows)
        assert group["count"] == len(explained), group["group"]
        assert group["importance"] == pytest.approx(mean_abs_over_classes(local, features, explained)), group["group"]


# --- 7. bad options -------------------------------------------------------------------------------

BAD_OPTIONS = {
    "method=shap": ({"method": "shap"}, r"`method` must be one of \['auto', 'tree', 'linear', 'mimic'\], got 'shap'"),
    "rows=some": ({"rows": "some"}, r"`rows` must be one of \['sample', 'all'\], got 'some'"),
    "shard_index=3 of 3": (
        {"shard_index": 3, "shard_count": 3},
        r"`shard_index` must be in \[0, shard_count=3\), got 3",
    ),
    "shard_index=-1": ({"shard_index": -1, "shard_count": 2}, r"`shard_index` must be in \[0, shard_count=2\)"),
    "shard_count=0": ({"shard_count": 0}, r"`shard_count` must be an integer >= 1, got 0"),
    "background_size=0": ({"background_size": 0}, r"`background_size` must be an integer >= 1, got 0"),
    "background_size=True": ({"background_size": True}, r"`background_size` must be an integer >= 1, got True"),
    "background_size=101": (
        {"background_size": 101},
        r"`background_size` must be at most 100 \(shap.s linear explainer uses no more\), got 101",
    ),
    "mimic_train_size=5": ({"mimic_train_size": 5}, r"`mimic_train_size` must be an integer >= 10, got 5"),
}


@pytest.mark.parametrize("options, match", BAD_OPTIONS.values(), ids=BAD_OPTIONS)
def test_bad_options_are_refused(subjects, tmp_path, options, match):
    out = tmp_path / "explanation"
    with pytest.raises(RAIInputError, match=match):
        run_explainer(subjects("insurance").constructor, out, options=ExplainerOptions(**options))
    assert list(tmp_path.iterdir()) == []


# --- 8. the artifact and the command line -----------------------------------------------------------


def test_artifact_is_an_explanation_of_the_run_that_gather_embeds(subjects, tmp_path):
    s, out = subjects("insurance"), tmp_path / "explanation"
    options = ExplainerOptions(background_size=50, random_state=3)
    result = run_explainer(s.constructor, out, options=options)
    meta = A.read_artifact_meta(out, expected_kind="explanation")  # verifies the manifest
    assert meta["kind"] == "explanation" and meta["run_id"] == s.run_id == result.run_id
    assert meta["options"] == asdict(options)
    assert set(A.verify_manifest(out)["files"]) == {LOCAL, A.INSIGHT_RESULT_FILE, A.META_FILE}
    doc = read_explanation(out).doc
    assert doc["background"] == {"size": 50, "seed": 3}
    assert (result.method, result.n_rows) == (doc["method"], doc["n_rows"]) == ("linear", len(s.rows))
    run_gather(s.constructor, [out], tmp_path / "bundle")
    gathered = json.loads((tmp_path / "bundle" / A.INSIGHTS_JSON_FILE).read_text())
    assert list(gathered["insights"]) == ["explanation"]
    assert gathered["explanation"] == doc
    A.verify_manifest(tmp_path / "bundle" / A.INSIGHT_COPIES_DIR / "explanation")


def test_cli_explains_merges_and_reports_bad_input(subjects, tmp_path, capsys):
    s = subjects("compas_rf")
    common = ["--constructor", str(s.constructor)]
    whole = tmp_path / "whole"
    assert main([*common, "--output", str(whole), "--background-size", "50"]) == 0
    assert f"explanation written to {whole} (tree, {len(s.rows)} rows" in capsys.readouterr().out
    parts = [tmp_path / f"shard{i}" for i in range(2)]
    for i, part in enumerate(parts):
        assert (
            main(
                [
                    *common,
                    "--output",
                    str(part),
                    "--background-size",
                    "50",
                    "--shard-index",
                    str(i),
                    "--shard-count",
                    "2",
                ]
            )
            == 0
        )
    merged = tmp_path / "merged"
    assert main([*common, "--output", str(merged), "--merge", *map(str, parts)]) == 0
    assert "explanation written" in capsys.readouterr().out
    pd.testing.assert_frame_equal(
        read_explanation(merged).local, read_explanation(whole).local, check_exact=False, rtol=1e-9, atol=1e-12
    )
    assert A.read_json(merged / A.META_FILE)["options"] == A.read_json(whole / A.META_FILE)["options"]
    bad = tmp_path / "bad"
    assert main([*common, "--output", str(bad), "--shard-index", "2", "--shard-count", "2"]) == 2
    err = capsys.readouterr().err
    assert "rai-audit: error:" in err and "shard_index" in err
    assert main([*common, "--output", str(bad), "--merge", str(parts[1])]) == 2
    err = capsys.readouterr().err
    assert "rai-audit: error:" in err and "got indices [1]" in err
    assert not bad.exists()


def test_probe_values_cover_every_value_or_the_spread():
    """Few values: all of them (rare categories included); many: quantiles or the most frequent, plus missing."""
    from rai_audit.steps.explainer import PROBE_VALUES, _probe_values

    few = pd.Series(["a"] * 500 + ["rare", None])
    assert set(_probe_values(few)) == {"a", "rare", None}
    numbers = pd.Series(np.r_[np.arange(5000.0), np.nan])
    probe = _probe_values(numbers)
    assert len(probe) == PROBE_VALUES + 1 and np.isnan(probe[-1])
    assert probe[0] == 0 and probe[-2] == 4999
    texts = pd.Series([f"id{i}" for i in range(3000)] + ["id7"] * 5)
    assert len(_probe_values(texts)) == PROBE_VALUES and _probe_values(texts)[0] == "id7"


# --- boosters' scikit-learn models: their library's own tree SHAP ---------------------------------


def test_a_lightgbm_regressor_in_a_pipeline_gets_lightgbms_own_tree_shap_equal_to_shaps():
    """The regression case of the path (the subjects above are classifiers), on 1,200 rows so
    they are grouped: the values equal shap's TreeExplainer on the engineered columns, summed per
    raw feature, and add up to the prediction."""
    from rai_audit.steps.explainer import build_explainer

    data = shared_dataset("insurance.parquet")
    X, y = data.drop(columns="charges"), data["charges"]
    categorical, numeric = ["sex", "smoker", "region"], ["age", "bmi", "children"]
    model = encoded_model(categorical, numeric, lightgbm.LGBMRegressor(n_estimators=60, random_state=0, verbose=-1))
    model.fit(X, y)
    rows = X.iloc[:1200]
    built = build_explainer(model, X, rows, None, False, ExplainerOptions())
    assert (built.method, built.explainer.DESCRIPTION) == ("tree", "LightGBM's own tree SHAP")
    values, expected = built.explain(rows, None)
    engineered = dense(model[:-1].transform(rows))
    direct = np.asarray(shap.TreeExplainer(model[-1]).shap_values(engineered), dtype=float)
    for j, feature in enumerate(X.columns):
        summed = direct[:, columns_of(model, feature)].sum(axis=1)
        np.testing.assert_allclose(values[0, :, j], summed, rtol=1e-9, atol=1e-6, err_msg=feature)
    np.testing.assert_allclose(values[0].sum(axis=1) + expected[0], model.predict(rows), rtol=1e-9)


def booster_case(library: str, task: str) -> tuple[Pipeline, pd.DataFrame, pd.DataFrame, list[Any] | None]:
    """An XGBoost or CatBoost scikit-learn model behind one-hot encoding and scaling, fitted;
    (model, train features, 300 explained rows, classes). XGBoost's labels are 0..k-1, so its
    classes are coded; CatBoost keeps COMPAS' names."""
    import catboost
    import xgboost

    if task == "regression":
        data = shared_dataset("insurance.parquet")
        target, categorical, numeric = "charges", ["sex", "smoker", "region"], ["age", "bmi", "children"]
    elif task == "binary":
        data = shared_dataset("adult_train.parquet").iloc[:4000]
        data = data.assign(income=(data["income"] == ">50K").astype(int))
        target, categorical = "income", ["workclass", "education", "marital-status", "relationship", "race", "sex"]
        numeric = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
        data = data[[*categorical, *numeric, target]]
    else:
        data = shared_dataset("compas_two_years.parquet")[COMPAS_COLUMNS].iloc[:4000]
        if library == "xgboost":
            data = data.assign(score_text=data["score_text"].map({"Low": 0, "Medium": 1, "High": 2}))
        target, categorical, numeric = "score_text", COMPAS_CATEGORICAL, COMPAS_NUMERIC
    kind = "Regressor" if task == "regression" else "Classifier"
    if library == "xgboost":
        estimator = getattr(xgboost, f"XGB{kind}")(n_estimators=40, max_depth=4, random_state=0)
    else:
        estimator = getattr(catboost, f"CatBoost{kind}")(
            iterations=40, depth=4, random_seed=0, verbose=0, allow_writing_files=False
        )
    model = encoded_model(categorical, numeric, estimator)
    X, y = data.drop(columns=target), data[target]
    model.fit(X, y)
    classes = None if task == "regression" else list(model.classes_)
    return model, X, X.iloc[-300:], classes


def booster_contributions(estimator: Any, transformed: Any) -> np.ndarray:
    """The library's own SHAP values on what the Pipeline gives the booster (a sparse matrix for
    Adult's one-hot columns): (rows, outputs, columns + 1)."""
    if type(estimator).__module__.startswith("xgboost"):
        import xgboost

        raw = estimator.get_booster().predict(xgboost.DMatrix(transformed), pred_contribs=True)
    else:
        import catboost

        raw = estimator.get_feature_importance(catboost.Pool(transformed), type="ShapValues")
    return np.asarray(raw, dtype=float).reshape(transformed.shape[0], -1, transformed.shape[1] + 1)


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
@pytest.mark.parametrize("library", ["xgboost", "catboost"])
def test_xgboost_and_catboost_models_in_a_pipeline_get_their_librarys_own_tree_shap(library, task):
    """They were explained by the mimic (shap 0.46 cannot read XGBoost 3's models, nor CatBoost's
    in a Pipeline). Their values add up to the Pipeline's own prediction (through the logistic
    or softmax function for classes), and each raw feature's is the sum of the library's values
    over its one-hot columns. Adult's one-hot output is sparse, where XGBoost reads a zero as missing."""
    from scipy.special import expit, softmax

    from rai_audit.steps.explainer import build_explainer

    model, X, rows, classes = booster_case(library, task)
    built = build_explainer(model, X, rows, classes, classes is not None, ExplainerOptions())
    name = {"xgboost": "XGBoost", "catboost": "CatBoost"}[library]
    assert (built.method, built.explainer.DESCRIPTION) == ("tree", f"{name}'s own tree SHAP")
    values, expected = built.explain(rows, None)  # (outputs, rows, raw features), (outputs,)
    totals = values.sum(axis=2) + expected[:, None]  # (outputs, rows)
    if task == "regression":
        np.testing.assert_allclose(totals[0], model.predict(rows), rtol=1e-5)
    elif task == "binary":
        np.testing.assert_allclose(expit(totals[1]), model.predict_proba(rows)[:, 1], rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(softmax(totals.T, axis=1), model.predict_proba(rows), rtol=1e-5, atol=1e-6)
    transformed = model[:-1].transform(rows)
    assert hasattr(transformed, "toarray") == (task == "binary")
    own = booster_contributions(model[-1], transformed)[:, -1, :-1]  # the last output (binary: class 1)
    for j, feature in enumerate(X.columns):
        summed = own[:, columns_of(model, feature)].sum(axis=1)
        np.testing.assert_allclose(values[-1, :, j], summed, rtol=1e-6, atol=1e-6, err_msg=feature)


@pytest.mark.parametrize("library", ["xgboost", "catboost"])
def test_an_xgboost_or_catboost_model_reading_category_codes_is_not_given_float_values(library):
    """As LightGBM's below: a model that reads a column as categories (XGBoost's
    enable_categorical, CatBoost's cat_features) does not take its library's path on the floats
    the explainer has (the categories' values 10-13); the mimic explains it."""
    import catboost
    import xgboost

    from rai_audit.steps.explainer import build_explainer

    data = shared_dataset("insurance.parquet")
    codes = data["region"].astype("category").cat.codes + 10
    if library == "xgboost":
        X = data[["age", "bmi"]].assign(region=codes.astype("category"))
        model = xgboost.XGBRegressor(n_estimators=20, enable_categorical=True, random_state=0)
        assert model.fit(X, data["charges"]).get_booster().feature_types[-1] == "c"
    else:
        X = data[["age", "bmi"]].assign(region=codes)
        model = catboost.CatBoostRegressor(iterations=20, verbose=0, allow_writing_files=False, cat_features=["region"])
        assert model.fit(X, data["charges"]).get_cat_feature_indices() == [2]
    built = build_explainer(model, X, X.iloc[:50], None, False, ExplainerOptions())
    assert built.method == "mimic"


def test_a_lightgbm_model_fitted_on_pandas_categories_is_not_given_float_values_as_category_codes():
    """LightGBM reads a category column as its codes; the floats the explainer gets are the
    categories' values (here 10-13, codes 0-3). LightGBM's own path is not taken, and the model
    goes where it went before: shap's TreeExplainer fails on those floats, so the mimic explains."""
    from rai_audit.steps.explainer import build_explainer

    data = shared_dataset("insurance.parquet")
    X = data[["age", "bmi"]].assign(region=(data["region"].astype("category").cat.codes + 10).astype("category"))
    model = lightgbm.LGBMRegressor(n_estimators=20, random_state=0, verbose=-1).fit(X, data["charges"])
    assert model.booster_.pandas_categorical == [[10, 11, 12, 13]]
    built = build_explainer(model, X, X.iloc[:50], None, False, ExplainerOptions())
    assert built.method == "mimic"
