"""Every model source the audit reads (rai_audit.core.models), from real files written here:
each adapter's predictions and probabilities equal the library's own, and bad inputs are
refused naming what is wrong."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rai_audit.core import RAIInputError
from rai_audit.core.loading import (
    CATBOOST,
    ENDPOINT,
    LIGHTGBM,
    MLFLOW,
    ONNX,
    SKOPS,
    XGBOOST_JSON,
    XGBOOST_UBJ,
    copy_model,
    model_file,
    model_format,
    model_sha256,
)
from rai_audit.core.models import ModelAdapter, load_any_model, native_model
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from support import shared_dataset

NUMERIC = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
TEXT = ["workclass", "sex", "race"]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    train = shared_dataset("adult_train.parquet").iloc[:300]
    test = shared_dataset("adult_test.parquet").iloc[:200].reset_index(drop=True)
    # CatBoost takes no missing text: "?" as the UCI files write it.
    return train[NUMERIC + TEXT].fillna("?"), train["income"], test[NUMERIC + TEXT].fillna("?")


@pytest.fixture(scope="module")
def files(tmp_path_factory, data) -> dict[str, object]:
    """Native boosters and ONNX models, each beside the library model it was written from."""
    import catboost
    import lightgbm
    import xgboost
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType as MLFloat
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    folder = tmp_path_factory.mktemp("models")
    X, y, _ = data
    codes = (y == ">50K").astype(int)
    out: dict[str, object] = {}
    # XGBoost: binary, written as UBJSON and JSON.
    xgb = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 3}, xgboost.DMatrix(X[NUMERIC], codes), num_boost_round=8
    )
    xgb.save_model(folder / "xgb.ubj")
    xgb.save_model(folder / "xgb.json")
    out["xgb"] = xgb
    # LightGBM: three classes (age bands), a text model file.
    bands = pd.cut(X["age"], [0, 30, 45, 200], labels=False).astype(int)
    lgb = lightgbm.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_leaves": 7},
        lightgbm.Dataset(X[NUMERIC], bands),
        num_boost_round=5,
    )
    lgb.save_model(folder / "lgb.txt")
    out["lgb"] = lgb
    # CatBoost keeps its label names and takes text columns itself.
    cat = catboost.CatBoostClassifier(
        iterations=20, depth=3, verbose=0, random_seed=0, thread_count=1, allow_writing_files=False
    )
    cat.fit(X, y, cat_features=TEXT)
    cat.save_model(folder / "cat.cbm")
    out["cat"] = cat
    # ONNX: a scikit-learn pipeline with one input per column (skl2onnx) ...
    pipe = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [("cat", OneHotEncoder(handle_unknown="ignore"), TEXT), ("num", StandardScaler(), NUMERIC)]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(X, y)
    schema = [(c, StringTensorType([None, 1])) for c in TEXT] + [(c, FloatTensorType([None, 1])) for c in NUMERIC]
    (folder / "pipe.onnx").write_bytes(to_onnx(pipe, initial_types=schema).SerializeToString())
    out["pipe"] = pipe
    # ... and a LightGBM classifier with one float tensor of all features (onnxmltools).
    lgbc = lightgbm.LGBMClassifier(n_estimators=10, num_leaves=7, verbose=-1).fit(X[NUMERIC].astype("float32"), y)
    onnx_lgb = convert_lightgbm(lgbc, initial_types=[("input", MLFloat([None, len(NUMERIC)]))], zipmap=True)
    (folder / "lgbm.onnx").write_bytes(onnx_lgb.SerializeToString())
    out["lgbc"] = lgbc
    out["folder"] = folder
    return out


def test_each_format_is_detected_from_content_not_name(files, tmp_path):
    folder = files["folder"]
    expected = {
        "xgb.ubj": XGBOOST_UBJ,
        "xgb.json": XGBOOST_JSON,
        "lgb.txt": LIGHTGBM,
        "cat.cbm": CATBOOST,
        "pipe.onnx": ONNX,
        "lgbm.onnx": ONNX,
    }
    for name, kind in expected.items():
        renamed = tmp_path / f"{name}.model.joblib"  # a name that lies
        renamed.write_bytes((folder / name).read_bytes())
        assert model_format(renamed) == kind, name
    (tmp_path / "endpoint.json").write_text(json.dumps({"endpoint": "http://127.0.0.1:1/v2/models/m"}))
    assert model_format(tmp_path / "endpoint.json") == ENDPOINT
    (tmp_path / "other.json").write_text(json.dumps({"something": 1}))
    assert model_format(tmp_path / "other.json") is None
    # A KFP artifact folder holding one booster file: that file.
    (tmp_path / "artifact").mkdir()
    (tmp_path / "artifact" / "model").write_bytes((folder / "lgb.txt").read_bytes())
    assert model_file(tmp_path / "artifact") == tmp_path / "artifact" / "model"


def test_xgboost_booster_equals_native(files, data):
    import xgboost

    _, y, test = data
    classes = sorted(y.unique())
    native = files["xgb"].predict(xgboost.DMatrix(test[NUMERIC]))
    for name in ("xgb.ubj", "xgb.json"):
        model = load_any_model(files["folder"] / name, classes=classes)
        assert isinstance(model, ModelAdapter) and model.source == "xgboost booster"
        assert list(model.classes_) == classes and list(model.feature_names_in_) == NUMERIC
        proba = model.predict_proba(test)  # the text columns are not the booster's: left out
        np.testing.assert_allclose(proba[:, 1], native, rtol=1e-6)
        assert model.predict(test).tolist() == np.where(native > 0.5, classes[1], classes[0]).tolist()
    again = pickle.loads(pickle.dumps(model))  # joblib's workers get it loaded again from its file
    np.testing.assert_allclose(again.predict_proba(test)[:, 1], native, rtol=1e-6)


def test_lightgbm_booster_equals_native(files, data):
    _, _, test = data
    model = load_any_model(files["folder"] / "lgb.txt", classes=["young", "middle", "older"])
    native = files["lgb"].predict(test[NUMERIC])
    np.testing.assert_allclose(model.predict_proba(test), native, rtol=1e-9)
    assert model.predict(test).tolist() == np.array(["young", "middle", "older"])[native.argmax(axis=1)].tolist()
    assert native_model(model) is model.native


def test_catboost_model_equals_native_and_keeps_its_labels(files, data):
    _, y, test = data
    model = load_any_model(files["folder"] / "cat.cbm", classes=sorted(y.unique()))
    assert list(model.classes_) == list(files["cat"].classes_)
    np.testing.assert_allclose(model.predict_proba(test), files["cat"].predict_proba(test), rtol=1e-9)
    assert model.predict(test).tolist() == files["cat"].predict(test).tolist()


def test_booster_given_wrong_classes_is_refused(files):
    with pytest.raises(RAIInputError, match=r"lgb.txt is a LightGBM model with 3 classes, but it was given 2"):
        load_any_model(files["folder"] / "lgb.txt", classes=["<=50K", ">50K"])
    with pytest.raises(RAIInputError, match=r"CatBoost classifier of the classes \['<=50K', '>50K'\].*\['no', 'yes'\]"):
        load_any_model(files["folder"] / "cat.cbm", classes=["no", "yes"])


def test_onnx_pipeline_equals_scikit_learn(files, data):
    _, _, test = data
    model = load_any_model(files["folder"] / "pipe.onnx", classes=[">50K", "<=50K"])
    assert model.source == "onnx" and not hasattr(model, "feature_names_in_")
    # skl2onnx names an input as an identifier: "capital-gain" is capital_gain, matched to its column.
    assert model.feature_types["sex"] == "text" and model.feature_types["capital_gain"] == "numeric"
    pipe = files["pipe"]
    # ZipMap's columns come out in the given classes' order.
    np.testing.assert_allclose(model.predict_proba(test), pipe.predict_proba(test)[:, ::-1], atol=1e-5)
    assert model.predict(test).tolist() == pipe.predict(test).tolist()


def test_onnx_lightgbm_tensor_model_equals_lightgbm(files, data):
    _, y, test = data
    model = load_any_model(files["folder"] / "lgbm.onnx", classes=sorted(y.unique()))
    expected = files["lgbc"].predict_proba(test[NUMERIC].astype("float32"))
    np.testing.assert_allclose(model.predict_proba(test[NUMERIC]), expected, atol=1e-5)
    assert model.predict(test[NUMERIC]).tolist() == files["lgbc"].predict(test[NUMERIC].astype("float32")).tolist()


def test_onnx_inputs_not_matching_the_data_are_refused(files, data):
    _, _, test = data
    pipe = load_any_model(files["folder"] / "pipe.onnx", classes=["<=50K", ">50K"])
    with pytest.raises(
        RAIInputError, match=r"pipe.onnx has the input 'sex' \(tensor\(string\)\), which is not a column of the data"
    ):
        pipe.predict(test.drop(columns="sex"))
    with pytest.raises(RAIInputError, match=r"takes numbers \(tensor\(float\)\) as input 'age'.*holds object"):
        pipe.predict(test.assign(age=test["age"].astype(str)))
    tensor = load_any_model(files["folder"] / "lgbm.onnx", classes=["<=50K", ">50K"])
    with pytest.raises(RAIInputError, match=r"one tensor 'input' of 5 features, but the data has 8 feature columns"):
        tensor.predict(test)
    with pytest.raises(RAIInputError, match=r"columns \['sex'\] are not numbers"):
        tensor.predict(test[NUMERIC[:4] + ["sex"]])


# --- MLflow --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory, data):
    """An MLflow sklearn model (skops) registered as `adult-lr`, and an xgboost model, logged to a
    local file store."""
    import mlflow
    import mlflow.sklearn
    import mlflow.xgboost
    import xgboost
    from sklearn.linear_model import LogisticRegression

    X, y, _ = data
    store = tmp_path_factory.mktemp("mlflow") / "mlruns"  # new: MLflow makes its default experiment
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store for local use
    mlflow.set_tracking_uri(f"file:{store}")
    lr = LogisticRegression(max_iter=1000).fit(X[NUMERIC], y)
    xgbc = xgboost.XGBClassifier(n_estimators=5, max_depth=3).fit(X[NUMERIC], (y == ">50K").astype(int))
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(
            lr, name="lr", serialization_format="skops", registered_model_name="adult-lr", pip_requirements=[]
        )
        xgb_info = mlflow.xgboost.log_model(xgbc, name="xgb", pip_requirements=[])
    yield {"uri": f"file:{store}", "run": run.info.run_id, "lr": lr, "xgb": xgbc, "xgb_uri": xgb_info.model_uri}
    mlflow.set_tracking_uri(None)
    mp.undo()


def test_mlflow_sklearn_model_by_uri_and_folder(mlflow_store, data, tmp_path):
    from rai_audit.core.models import download_mlflow_model

    _, _, test = data
    lr = mlflow_store["lr"]
    for uri in (f"runs:/{mlflow_store['run']}/lr", "models:/adult-lr/1"):
        model = load_any_model(uri, mlflow_tracking_uri=mlflow_store["uri"])
        assert model.source == "mlflow sklearn flavour" and model.sklearn_api
        assert model.predict(test).tolist() == lr.predict(test[NUMERIC]).tolist()
        np.testing.assert_allclose(model.predict_proba(test), lr.predict_proba(test[NUMERIC]))
    folder = download_mlflow_model("models:/adult-lr/1", tmp_path / "dl", tracking_uri=mlflow_store["uri"])
    assert model_format(folder) == MLFLOW and model_file(tmp_path / "dl") == folder
    assert load_any_model(folder).predict(test).tolist() == lr.predict(test[NUMERIC]).tolist()
    # Copied whole, with one digest over its files.
    (tmp_path / "copy").mkdir()
    copy = copy_model(folder, tmp_path / "copy")
    assert (copy / "MLmodel").is_file() and model_sha256(copy) == model_sha256(folder)
    (copy / "MLmodel").write_text((copy / "MLmodel").read_text() + "\n")
    assert model_sha256(copy) != model_sha256(folder)


def test_mlflow_xgboost_model_equals_native(mlflow_store, data):
    _, _, test = data
    xgbc = mlflow_store["xgb"]
    for uri in (mlflow_store["xgb_uri"], f"runs:/{mlflow_store['run']}/xgb"):
        model = load_any_model(uri, mlflow_tracking_uri=mlflow_store["uri"])
        assert model.source == "mlflow xgboost flavour" and type(model.native).__name__ == "XGBClassifier"
        np.testing.assert_allclose(model.predict_proba(test), xgbc.predict_proba(test[NUMERIC]), rtol=1e-6)
        assert model.predict(test).tolist() == xgbc.predict(test[NUMERIC]).tolist()


def test_mlflow_uri_that_does_not_resolve_is_named(mlflow_store):
    with pytest.raises(RAIInputError, match=r"MLflow model URI 'models:/no-such-model/3' could not be resolved at"):
        load_any_model("models:/no-such-model/3", mlflow_tracking_uri=mlflow_store["uri"])


def test_a_model_loaded_by_uri_leaves_no_download_behind(mlflow_store, data, tmp_path, monkeypatch):
    """The downloaded copy lives as long as the process (a pyfunc may read its files as it
    predicts); a URI that fails leaves nothing even while it runs."""
    import subprocess
    import sys
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(RAIInputError):
        load_any_model("models:/no-such-model/3", mlflow_tracking_uri=mlflow_store["uri"])
    assert list(scratch.iterdir()) == []
    _, _, test = data
    test.head(5).to_parquet(tmp_path / "rows.parquet")
    script = """
import sys, tempfile
from pathlib import Path
import pandas as pd
from rai_audit.core.models import load_any_model

model = load_any_model(sys.argv[1], mlflow_tracking_uri=sys.argv[2])
copies = [p for p in Path(tempfile.gettempdir()).glob("rai-audit-mlflow-*") if any(p.rglob("MLmodel"))]
print(len(copies), model.predict(pd.read_parquet(sys.argv[3])).tolist())
"""
    done = subprocess.run(
        [sys.executable, "-c", script, "models:/adult-lr/1", mlflow_store["uri"], str(tmp_path / "rows.parquet")],
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    expected = mlflow_store["lr"].predict(test.head(5)[NUMERIC]).tolist()
    assert done.stdout.strip() == f"1 {expected}"  # the copy was there while the model was in use
    assert list(scratch.iterdir()) == []


def test_mlflow_pickled_model_needs_allow_pickle(mlflow_store, tmp_path, data):
    import mlflow.sklearn

    _, _, test = data
    mlflow.sklearn.save_model(
        mlflow_store["lr"], tmp_path / "pickled", serialization_format="cloudpickle", pip_requirements=[]
    )
    with pytest.raises(
        RAIInputError, match=r"pickled is a scikit-learn model saved as a cloudpickle file.*allow_pickle"
    ):
        load_any_model(tmp_path / "pickled")
    model = load_any_model(tmp_path / "pickled", allow_pickle=True)
    assert model.predict(test).tolist() == mlflow_store["lr"].predict(test[NUMERIC]).tolist()


def test_scikit_learn_files_load_as_before(tmp_path, data):
    import skops.io
    from sklearn.linear_model import LogisticRegression

    X, y, test = data
    linear = LogisticRegression(max_iter=1000).fit(X[NUMERIC], y)
    skops.io.dump(linear, tmp_path / "linear")
    assert model_format(tmp_path / "linear") == SKOPS
    loaded = load_any_model(tmp_path / "linear")
    assert type(loaded) is LogisticRegression  # not wrapped
    assert loaded.predict(test[NUMERIC]).tolist() == linear.predict(test[NUMERIC]).tolist()


def test_endpoint_descriptor_goes_to_the_served_model(tmp_path, monkeypatch):
    import sys
    import types

    calls: list[Path] = []
    fake = types.ModuleType("rai_audit.core.served_model")
    fake.load_endpoint = lambda path: calls.append(path) or "served"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rai_audit.core.served_model", fake)
    (tmp_path / "model").write_text(json.dumps({"endpoint": "http://127.0.0.1:1/invocations"}))
    assert load_any_model(tmp_path / "model") == "served" and calls == [tmp_path / "model"]


def test_config_takes_an_mlflow_uri_the_constructor_task_resolves(mlflow_store, data, tmp_path, capsys):
    """`model: models:/name/1` becomes the constructor's mlflow_model_uri (a pipeline parameter, so
    a cluster's constructor task resolves it too); `rai-audit run` audits it under kfp.local."""
    import yaml

    from rai_audit.cli import main
    from rai_audit.config import resolve_config

    X, y, _ = data
    X[NUMERIC].assign(income=y).to_parquet(tmp_path / "train.parquet")
    config = {
        "model": "models:/adult-lr/1",
        "mlflow_tracking_uri": mlflow_store["uri"],
        "train_data": "train.parquet",
        "test_data": "train.parquet",
        "target_column": "income",
        "task_type": "binary_classification",
        "positive_label": ">50K",
    }
    args, _ = resolve_config(config, base_dir=tmp_path)
    assert (args["mlflow_model_uri"], args["mlflow_tracking_uri"]) == ("models:/adult-lr/1", mlflow_store["uri"])
    assert args["model_uri"] == args["train_data_uri"]  # a stand-in the constructor does not read
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "audit.yaml"), "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    bundle = Path(
        next(t for t in out.splitlines() if t.startswith("dashboard bundle: ")).removeprefix("dashboard bundle: ")
    )
    meta = json.loads((bundle / "constructor" / "meta.json").read_text())
    assert meta["model"]["format"] == MLFLOW and meta["options"]["mlflow_model_uri"] == "models:/adult-lr/1"
    predictions = pd.read_parquet(bundle / "tables" / "predictions.parquet")
    assert predictions["y_pred"].tolist() == mlflow_store["lr"].predict(X[NUMERIC]).tolist()
    with pytest.raises(RAIInputError, match=r"`mlflow_tracking_uri` applies to a model given as `mlflow_model_uri`"):
        ConstructorOptions(target_column="income", task_type="binary_classification", mlflow_tracking_uri="file:x")
    with pytest.raises(RAIInputError, match=r"MLflow model URI 'models:/adult-lr/9' could not be resolved"):
        run_constructor(
            None,
            tmp_path / "train.parquet",
            tmp_path / "train.parquet",
            tmp_path / "nine",
            options=ConstructorOptions(
                target_column="income",
                task_type="binary_classification",
                mlflow_model_uri="models:/adult-lr/9",
                mlflow_tracking_uri=mlflow_store["uri"],
            ),
        )


def test_mlflow_pyfunc_model_is_a_predictor_with_the_probabilities_it_outputs(mlflow_store, data, tmp_path):
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    class Scorer(mlflow.pyfunc.PythonModel):  # defined here: cloudpickled with the model, by value
        def __init__(self, classifier):
            self.classifier = classifier

        def predict(self, context, model_input, params=None):
            proba = self.classifier.predict_proba(model_input[NUMERIC])
            return pd.DataFrame(proba, columns=[str(c) for c in self.classifier.classes_])

    X, y, test = data
    lr = mlflow_store["lr"]
    wrapped = Scorer(lr)
    signature = infer_signature(X[NUMERIC], pd.DataFrame(lr.predict_proba(X[NUMERIC]), columns=list(lr.classes_)))
    mlflow.pyfunc.save_model(tmp_path / "pyfunc", python_model=wrapped, signature=signature, pip_requirements=[])
    with pytest.raises(RAIInputError, match=r"python_function model .*allow_pickle"):
        load_any_model(tmp_path / "pyfunc", classes=list(lr.classes_))
    model = load_any_model(tmp_path / "pyfunc", allow_pickle=True, classes=[">50K", "<=50K"])
    assert model.source == "mlflow pyfunc"
    np.testing.assert_allclose(model.predict_proba(test), lr.predict_proba(test[NUMERIC])[:, ::-1])
    assert model.predict(test).tolist() == lr.predict(test[NUMERIC]).tolist()
    # Given classes its output does not name: a predictor only, with no probabilities.
    assert not hasattr(load_any_model(tmp_path / "pyfunc", allow_pickle=True, classes=["a", "b"]), "predict_proba")


def test_regressors_and_label_only_classifiers(data, tmp_path):
    """Regression boosters and ONNX regressors predict numbers with no classes; a booster that
    gives labels only (multi:softmax) has no predict_proba."""
    import lightgbm
    import xgboost
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    X, _, test = data
    target = X["hours-per-week"] * 1.5 + X["age"]
    features = [c for c in NUMERIC if c != "hours-per-week"]
    xgb = xgboost.train({"objective": "reg:squarederror"}, xgboost.DMatrix(X[features], target), 5)
    xgb.save_model(tmp_path / "reg.json")
    model = load_any_model(tmp_path / "reg.json")
    assert not hasattr(model, "classes_") and not hasattr(model, "predict_proba")
    np.testing.assert_allclose(model.predict(test), xgb.predict(xgboost.DMatrix(test[features])), rtol=1e-6)
    lgb = lightgbm.train({"objective": "regression", "verbose": -1}, lightgbm.Dataset(X[features], target), 5)
    lgb.save_model(tmp_path / "reg.txt")
    np.testing.assert_allclose(load_any_model(tmp_path / "reg.txt").predict(test), lgb.predict(test[features]))
    linear = LinearRegression().fit(X[features].astype("float32"), target)
    (tmp_path / "reg.onnx").write_bytes(to_onnx(linear, X[features].to_numpy("float32")[:1]).SerializeToString())
    onnx = load_any_model(tmp_path / "reg.onnx")
    assert not hasattr(onnx, "classes_") and not hasattr(onnx, "predict_proba")
    np.testing.assert_allclose(
        onnx.predict(test[features]), linear.predict(test[features].astype("float32")), rtol=1e-4
    )
    bands = pd.cut(X["age"], [0, 30, 45, 200], labels=False).astype(int)
    softmax = xgboost.train({"objective": "multi:softmax", "num_class": 3}, xgboost.DMatrix(X[features], bands), 5)
    softmax.save_model(tmp_path / "softmax.ubj")
    labelled = load_any_model(tmp_path / "softmax.ubj", classes=["young", "middle", "older"])
    assert not hasattr(labelled, "predict_proba") and list(labelled.classes_) == ["young", "middle", "older"]
    codes = softmax.predict(xgboost.DMatrix(test[features])).astype(int)
    assert labelled.predict(test).tolist() == np.array(["young", "middle", "older"])[codes].tolist()


def test_mlflow_onnx_flavour_runs_its_onnx_file(files, data, tmp_path):
    import mlflow.onnx
    import onnx

    _, y, test = data
    mlflow.onnx.save_model(onnx.load(files["folder"] / "lgbm.onnx"), tmp_path / "onnx-model", pip_requirements=[])
    model = load_any_model(tmp_path / "onnx-model", classes=sorted(y.unique()))  # no pickle needed
    assert model.source == "mlflow onnx flavour"
    expected = files["lgbc"].predict_proba(test[NUMERIC].astype("float32"))
    np.testing.assert_allclose(model.predict_proba(test[NUMERIC]), expected, atol=1e-5)
