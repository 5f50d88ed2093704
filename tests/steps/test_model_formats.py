"""Models that are not scikit-learn files through the real steps: an ONNX pipeline (skl2onnx),
a LightGBM booster and an MLflow model folder, each audited by the constructor, explained and
given counterfactuals, on 300 Adult rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.core.constructor_artifact import load_constructor_artifact
from rai_audit.core.fingerprint import input_fingerprint
from rai_audit.core.loading import model_sha256
from rai_audit.specs import ConstructorOptions, CounterfactualOptions, ExplainerOptions
from rai_audit.steps.constructor import run_constructor
from rai_audit.steps.counterfactual import run_counterfactual
from rai_audit.steps.explainer import run_explainer
from support import shared_dataset

NUMERIC = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
TEXT = ["workclass", "sex", "race"]


@pytest.fixture(scope="module")
def adult(tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    train = shared_dataset("adult_train.parquet").iloc[:300][[*NUMERIC, *TEXT, "income"]]
    test = shared_dataset("adult_test.parquet").iloc[:300][[*NUMERIC, *TEXT, "income"]].reset_index(drop=True)
    train.to_parquet(folder / "train.parquet", index=False)
    test.to_parquet(folder / "test.parquet", index=False)
    return folder, train, test


def options(**overrides) -> ConstructorOptions:
    values = dict(
        target_column="income",
        task_type="binary_classification",
        sensitive_features=["sex"],
        positive_label=">50K",
        sample_size=40,
    )
    return ConstructorOptions(**{**values, **overrides})


def audit(folder, model, out, **overrides):
    run_constructor(model, folder / "train.parquet", folder / "test.parquet", out / "constructor", **overrides)
    explained = run_explainer(out / "constructor", out / "explanation", options=ExplainerOptions(background_size=50))
    cf = run_counterfactual(
        out / "constructor", out / "counterfactual", options=CounterfactualOptions(total_CFs=2, n_jobs=1)
    )
    return load_constructor_artifact(out / "constructor"), explained, cf


def test_onnx_pipeline_through_the_steps(adult, tmp_path):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    folder, train, test = adult
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), TEXT), ("num", StandardScaler(), NUMERIC)]
    )
    X = train[NUMERIC + TEXT].fillna("?")
    pipe = Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))]).fit(X, train["income"])
    schema = [(c, StringTensorType([None, 1])) for c in TEXT] + [(c, FloatTensorType([None, 1])) for c in NUMERIC]
    (tmp_path / "model").write_bytes(to_onnx(pipe, initial_types=schema).SerializeToString())  # no extension

    art, explained, cf = audit(folder, tmp_path / "model", tmp_path, options=options())
    assert art.meta["model"]["source"] == "onnx" and art.meta["model"]["format"] == "ONNX model"
    assert art.meta["model"]["class"] == "onnxruntime.capi.onnxruntime_inference_collection.InferenceSession"
    # The constructor's predictions are the pipeline's (missing text as ONNX gets it: "").
    expected = pipe.predict_proba(test[NUMERIC + TEXT].fillna(""))
    np.testing.assert_allclose(art.proba, expected, atol=1e-5)
    assert art.y_pred.tolist() == pipe.predict(test[NUMERIC + TEXT].fillna("")).tolist()
    # No exact explainer for an ONNX graph: the mimic, with its fidelity to the model.
    result = json.loads((tmp_path / "explanation" / A.INSIGHT_RESULT_FILE).read_text())
    assert explained.method == "mimic" and result["fidelity"]["value"] > 0.8
    assert result["estimator"] == "InferenceSession (onnx)"
    assert {g["feature"] for g in result["global"]} == set(NUMERIC + TEXT)
    assert cf.n_rows > 0


def test_lightgbm_booster_through_the_steps_with_tree_shap(adult, tmp_path):
    import lightgbm

    folder, train, test = adult
    codes = (train["income"] == ">50K").astype(int)  # sorted labels: class 1 is ">50K"
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 7, "seed": 0},
        lightgbm.Dataset(train[NUMERIC], codes),
        num_boost_round=20,
    )
    booster.save_model(tmp_path / "booster.txt")

    art, explained, cf = audit(
        folder, tmp_path / "booster.txt", tmp_path, options=options(dropped_features=["workclass", "race"] + ["sex"])
    )
    assert art.meta["model"]["source"] == "lightgbm booster" and art.meta["model"]["load_classes"] == ["<=50K", ">50K"]
    np.testing.assert_allclose(art.proba[:, 1], booster.predict(test[NUMERIC]), rtol=1e-9)
    # Tree SHAP on the booster itself: each row's values sum to its log-odds minus the expected value.
    assert explained.method == "tree"
    local = pd.read_parquet(tmp_path / "explanation" / "local_importance.parquet")
    result = json.loads((tmp_path / "explanation" / A.INSIGHT_RESULT_FILE).read_text())
    assert result["explainer"] == "LightGBM's own tree SHAP"
    positive = local[local["class"] == ">50K"].set_index(A.ROW_ID)[NUMERIC]
    margin = booster.predict(test[NUMERIC].iloc[positive.index], raw_score=True)
    np.testing.assert_allclose(positive.sum(axis=1) + result["expected_values"][">50K"], margin, atol=1e-6)
    assert cf.n_rows > 0


def test_booster_with_classes_it_was_not_trained_on_is_refused(adult, tmp_path):
    import lightgbm

    folder, train, _ = adult
    bands = pd.cut(train["age"], [0, 30, 45, 200], labels=False).astype(int)
    lightgbm.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1}, lightgbm.Dataset(train[NUMERIC], bands), 3
    ).save_model(tmp_path / "three.txt")
    with pytest.raises(RAIInputError, match=r"three.txt is a LightGBM model with 3 classes, but it was given 2"):
        run_constructor(
            tmp_path / "three.txt",
            folder / "train.parquet",
            folder / "test.parquet",
            tmp_path / "out",
            options=options(dropped_features=TEXT),
        )
    assert not (tmp_path / "out").exists()


def test_mlflow_folder_is_copied_whole_registered_and_fingerprinted(adult, tmp_path):
    import mlflow.xgboost
    import xgboost

    from rai_audit.steps.scorecard import register_model

    _, train, test = adult
    # XGBClassifier's labels are 0 and 1: so are the data's here.
    train, test = (d.assign(income=(d["income"] == ">50K").astype(int)) for d in (train, test))
    train.to_parquet(tmp_path / "train.parquet")
    test.to_parquet(tmp_path / "test.parquet")
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(train[NUMERIC], train["income"])
    mlflow.xgboost.save_model(model, tmp_path / "mlflow-model", pip_requirements=[])
    run_constructor(
        tmp_path / "mlflow-model",
        tmp_path / "train.parquet",
        tmp_path / "test.parquet",
        tmp_path / "constructor",
        options=options(dropped_features=TEXT, positive_label=1),
    )
    art = load_constructor_artifact(tmp_path / "constructor")  # the manifest checks every copied file
    copy = tmp_path / "constructor" / art.meta["model"]["file"]
    assert (copy / "MLmodel").is_file() and art.meta["model"]["sha256"] == model_sha256(tmp_path / "mlflow-model")
    assert art.meta["model"]["source"] == "mlflow xgboost flavour"
    assert art.meta["classes"] == [0, 1]
    np.testing.assert_allclose(art.proba[:, 1], model.predict_proba(test[NUMERIC])[:, 1], rtol=1e-6)
    assert art.load_model().predict(test).tolist() == model.predict(test[NUMERIC]).tolist()
    explained = run_explainer(tmp_path / "constructor", tmp_path / "explanation")
    assert explained.method == "tree"  # the flavour's XGBClassifier, as a scikit-learn model is explained
    # The fingerprint and the registration take the folder.
    fingerprint = input_fingerprint({"model": tmp_path / "mlflow-model"})
    (tmp_path / "mlflow-model" / "MLmodel").write_text((tmp_path / "mlflow-model" / "MLmodel").read_text() + "\n")
    assert input_fingerprint({"model": tmp_path / "mlflow-model"}) != fingerprint
    card = tmp_path / "card"
    with A.artifact_writer(card) as out:
        (out / "scorecard.json").write_text(json.dumps({"passed": True, "n_targets": 1, "generated_at": "now"}))
        (out / "scorecard.pdf").write_bytes(b"%PDF-1.7\n")
        A.write_json(out / A.META_FILE, A.new_meta("scorecard", art.run_id))
    record = register_model(tmp_path / "mlflow-model", card, tmp_path / "registered")
    assert record["model_sha256"] == model_sha256(tmp_path / "mlflow-model")
    assert (tmp_path / "registered" / "mlflow-model" / "MLmodel").is_file()
