"""Tests of the constructor step: the insights artifact, input validation, sampling and the CLI."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.core.constructor_artifact import load_constructor_artifact
from rai_audit.steps import constructor
from rai_audit.steps.constructor import main

CASES = ["adult_case", "compas_case", "insurance_case"]
EXPECTED = {  # fixture: (task_type, positive_label)
    "adult_case": ("binary_classification", ">50K"),
    "compas_case": ("multiclass_classification", None),
    "insurance_case": ("regression", None),
}
ADULT_NUMERIC = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
COMPAS_CATEGORICAL = ["c_charge_degree", "race", "sex"]
COMPAS_NUMERIC = ["age", "priors_count", "juv_fel_count"]


# --- helpers ---------------------------------------------------------------------------------


def read_meta(out: Path) -> dict[str, Any]:
    return A.read_artifact_meta(out, expected_kind=A.KIND_CONSTRUCTOR)


def predictions(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / A.PREDICTIONS_FILE)


def features(case, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    frame = pd.read_parquet(case.test) if frame is None else frame
    return frame.drop(columns=case.target)


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def write_model(model: Any, path: Path) -> Path:
    if path.suffix == ".skops":
        skops.io.dump(model, path)
    else:
        joblib.dump(model, path)
    return path


def compas_pipeline(categorical: list[str], numeric: list[str]) -> Pipeline:
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), categorical), ("num", StandardScaler(), numeric)]
    )
    return Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=1000))])


def fit_on_train(case, model, columns: list[str]):
    train = pd.read_parquet(case.train)
    return model.fit(train[columns], train[case.target])


def assert_no_output(out: Path) -> None:
    """Neither the output folder nor a temporary sibling of it is left behind."""
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def sample_mask(case, tmp_path: Path, name: str, **overrides) -> np.ndarray:
    out = case.construct(tmp_path / name, **overrides)
    return predictions(out)[A.IN_SAMPLE].to_numpy()


# --- the artifact of each case -----------------------------------------------------------------


@pytest.fixture(scope="module", params=CASES)
def built(request, tmp_path_factory):
    """(fixture name, case, artifact folder) for each case, constructed once."""
    case = request.getfixturevalue(request.param)
    out = case.construct(tmp_path_factory.mktemp(request.param) / "insights")
    return request.param, case, out


def test_meta_describes_the_run(built):
    name, case, out = built
    task_type, positive = EXPECTED[name]
    meta = read_meta(out)
    model = joblib.load(case.model)
    assert (out / A.META_FILE).is_file()
    assert meta["kind"] == "constructor"
    assert meta["schema_version"] == A.SCHEMA_VERSION
    assert str(uuid.UUID(meta["run_id"])) == meta["run_id"]
    assert meta["task_type"] == task_type
    assert meta["target_column"] == case.target
    assert meta["features"] == [c for c in pd.read_parquet(case.train).columns if c != case.target]
    assert meta["positive_label"] == positive
    if task_type == "regression":
        assert meta["classes"] is None
        assert meta["has_probabilities"] is False
    else:
        assert meta["classes"] == model.classes_.tolist()
        assert meta["has_probabilities"] is True


def test_manifest_lists_every_file(built):
    _, _, out = built
    manifest = A.verify_manifest(out)
    assert set(manifest["files"]) == {
        A.META_FILE,
        A.PREDICTIONS_FILE,
        A.TEST_FEATURES_FILE,
        A.TRAIN_FILE,
        A.COHORTS_FILE,
        "model/model.joblib",
    }
    assert read_meta(out)["kind"] == "constructor"  # read_artifact_meta verifies the manifest too


def test_predictions_cover_the_whole_test_set_and_match_the_model(built):
    _, case, out = built
    test = pd.read_parquet(case.test)
    expected = joblib.load(case.model).predict(features(case, test))
    got = predictions(out)
    assert len(got) == len(test) == read_meta(out)["n_test"]
    if case.target == "income":
        assert len(got) == 16_281
    assert got[A.ROW_ID].tolist() == list(range(len(test)))
    assert got[A.Y_TRUE].tolist() == test[case.target].tolist()
    np.testing.assert_array_equal(got[A.Y_PRED].to_numpy(), expected)
    assert got[A.IN_SAMPLE].all()


def test_probabilities_follow_meta_classes(built):
    _, case, out = built
    meta, got = read_meta(out), predictions(out)
    proba_columns = [c for c in got.columns if c.startswith(A.PROBA_PREFIX)]
    if meta["classes"] is None:
        assert proba_columns == []
        return
    model = joblib.load(case.model)
    proba = model.predict_proba(features(case))
    model_classes = model.classes_.tolist()
    assert proba_columns == [A.proba_column(i) for i in range(len(meta["classes"]))]
    for i, label in enumerate(meta["classes"]):
        np.testing.assert_allclose(got[A.proba_column(i)], proba[:, model_classes.index(label)])
    np.testing.assert_allclose(got[proba_columns].sum(axis=1), 1.0)


class RowCounter:
    """A loaded model that counts the rows of each call, and can drop a row from each answer."""

    def __init__(self, model: Any, calls: list[int], short: bool = False) -> None:
        self.model, self.calls, self.short = model, calls, short
        if hasattr(model, "classes_"):
            self.classes_ = model.classes_

    def _answer(self, method: str, X: pd.DataFrame) -> np.ndarray:
        self.calls.append(len(X))
        answer = getattr(self.model, method)(X)
        return answer[:-1] if self.short else answer

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self._answer("predict", X)

    def __getattr__(self, name: str) -> Any:
        if name == "predict_proba" and hasattr(self.model, "predict_proba"):
            return lambda X: self._answer("predict_proba", X)
        raise AttributeError(name)


@pytest.mark.parametrize("name", CASES)
def test_a_large_test_set_is_predicted_in_chunks_with_the_same_values(request, tmp_path, monkeypatch, name):
    """The constructor gives an in-process model PREDICT_CHUNK_ROWS rows at a time (a pipeline's
    transform of a million rows held 1.7 GB at once); the values are those of one call on all rows."""
    case = request.getfixturevalue(name)
    calls: list[int] = []
    real_load = constructor.load_any_model
    monkeypatch.setattr(constructor, "load_any_model", lambda *a, **k: RowCounter(real_load(*a, **k), calls))
    monkeypatch.setattr(constructor, "PREDICT_CHUNK_ROWS", 150)
    out = case.construct(tmp_path / "out")
    X = features(case)
    model = joblib.load(case.model)
    n_calls = 2 if hasattr(model, "predict_proba") else 1
    assert len(X) > 300 and max(calls) == 150 and sum(calls) == n_calls * len(X)
    got = predictions(out)
    np.testing.assert_array_equal(got[A.Y_PRED].to_numpy(), model.predict(X))
    if n_calls == 2:
        proba = model.predict_proba(X)
        for i, label in enumerate(read_meta(out)["classes"]):
            column = list(model.classes_).index(label)
            np.testing.assert_array_equal(got[A.proba_column(i)].to_numpy(), proba[:, column])


def test_a_chunk_answered_with_a_row_missing_is_refused(adult_case, tmp_path, monkeypatch):
    real_load = constructor.load_any_model
    monkeypatch.setattr(constructor, "load_any_model", lambda *a, **k: RowCounter(real_load(*a, **k), [], short=True))
    monkeypatch.setattr(constructor, "PREDICT_CHUNK_ROWS", 10_000)
    out = tmp_path / "out"
    with pytest.raises(
        RAIInputError, match=r"predict\(\) must return one row per row given, got shape \(9999,\) for rows 0 to 9999 of"
    ):
        adult_case.construct(out)
    assert_no_output(out)


def test_train_and_test_tables_are_copied(built):
    _, case, out = built
    train, test = pd.read_parquet(case.train), pd.read_parquet(case.test)
    meta = read_meta(out)
    assert meta["n_train"] == len(train) == len(pd.read_parquet(out / A.TRAIN_FILE))
    pd.testing.assert_frame_equal(pd.read_parquet(out / A.TRAIN_FILE), train)
    pd.testing.assert_frame_equal(pd.read_parquet(out / A.TEST_FEATURES_FILE), features(case, test)[meta["features"]])


def test_model_copy_is_identical(built):
    _, case, out = built
    meta = read_meta(out)
    original = A.sha256_file(case.model)
    assert A.sha256_file(out / meta["model"]["file"]) == original == meta["model"]["sha256"]


# --- task types and classes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected", [("adult_case", "binary_classification"), ("compas_case", "multiclass_classification")]
)
def test_azure_classification_task_type(request, tmp_path, name, expected):
    case = request.getfixturevalue(name)
    out = case.construct(tmp_path / "out", task_type="classification")
    assert read_meta(out)["task_type"] == expected


def test_given_classes_set_the_probability_order(compas_case, tmp_path):
    order = ["Low", "Medium", "High"]  # the model's order is High, Low, Medium
    out = compas_case.construct(tmp_path / "out", classes=order)
    model = joblib.load(compas_case.model)
    proba = model.predict_proba(features(compas_case))
    assert read_meta(out)["classes"] == order
    for i, label in enumerate(order):
        np.testing.assert_allclose(predictions(out)[A.proba_column(i)], proba[:, model.classes_.tolist().index(label)])


@pytest.fixture(scope="module")
def int_label_case(adult_case, tmp_path_factory):
    """Adult with an integer 0/1 target and a logistic regression on the numeric columns."""
    folder = tmp_path_factory.mktemp("adult_int")
    frames = {}
    for split in ("train", "test"):
        frame = pd.read_parquet(getattr(adult_case, split))
        frames[split] = frame[ADULT_NUMERIC].assign(income=(frame["income"] == ">50K").astype(int))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(frames["train"][ADULT_NUMERIC], frames["train"]["income"])
    return dataclasses.replace(
        adult_case,
        sensitive=[],
        positive_label=None,
        model=write_model(model, folder / "model.joblib"),
        train=write_table(frames["train"], folder / "train.parquet"),
        test=write_table(frames["test"], folder / "test.parquet"),
    )


@pytest.mark.parametrize("positive, expected", [(1.0, 1), (0.0, 0), (None, 1)])
def test_float_classes_map_to_int_labels(int_label_case, tmp_path, positive, expected):
    """KFP turns [0, 1] into [0.0, 1.0]; with no positive_label, the second class is positive."""
    out = int_label_case.construct(tmp_path / "out", classes=[0.0, 1.0], positive_label=positive)
    meta = read_meta(out)
    assert meta["classes"] == [0, 1]
    assert all(type(c) is int for c in meta["classes"])
    assert meta["positive_label"] == expected and type(meta["positive_label"]) is int
    assert set(predictions(out)[A.Y_PRED].unique()) <= {0, 1}
    assert predictions(out)[A.Y_PRED].dtype.kind == "i"


# --- sampling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name, size", [("adult_case", 1000), ("compas_case", 301)])
def test_sample_is_stratified_exact_and_seeded(request, tmp_path, name, size):
    case = request.getfixturevalue(name)
    first = sample_mask(case, tmp_path, "a", sample_size=size, random_state=7)
    again = sample_mask(case, tmp_path, "b", sample_size=size, random_state=7)
    other = sample_mask(case, tmp_path, "c", sample_size=size, random_state=8)
    assert first.sum() == other.sum() == size
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()
    y = pd.read_parquet(case.test)[case.target]
    population = y.value_counts(normalize=True)
    sampled = y[first].value_counts()
    assert set(sampled.index) == set(population.index)
    for label, share in population.items():
        assert abs(sampled[label] - share * size) <= 1, label
    assert read_meta(tmp_path / "a")["sample"] == {"size": size, "requested": size, "seed": 7, "stratified": True}


@pytest.mark.parametrize("size", [0, 10**6])
def test_sample_of_zero_or_more_than_all_rows_keeps_every_row(compas_case, tmp_path, size):
    mask = sample_mask(compas_case, tmp_path, "out", sample_size=size)
    n = len(pd.read_parquet(compas_case.test))
    assert mask.all() and len(mask) == n
    assert read_meta(tmp_path / "out")["sample"] == {"size": n, "requested": size, "seed": 0, "stratified": True}


def test_regression_sample_is_exact_and_not_stratified(insurance_case, tmp_path):
    mask = sample_mask(insurance_case, tmp_path, "out", sample_size=50, random_state=3)
    assert mask.sum() == 50
    assert read_meta(tmp_path / "out")["sample"]["stratified"] is False


# --- dropped features, CSV and skops inputs ----------------------------------------------------


def test_dropped_feature_stays_in_data_but_not_in_model(compas_case, tmp_path):
    kept = [c for c in COMPAS_CATEGORICAL if c != "race"]
    model = fit_on_train(compas_case, compas_pipeline(kept, COMPAS_NUMERIC), kept + COMPAS_NUMERIC)
    case = dataclasses.replace(compas_case, model=write_model(model, tmp_path / "no_race.joblib"))
    out = case.construct(tmp_path / "out", dropped_features=["race"], sensitive_features=["race"])
    meta = read_meta(out)
    assert "race" in pd.read_parquet(out / A.TEST_FEATURES_FILE).columns
    assert "race" in meta["features"] and "race" not in meta["model_features"]
    assert meta["dropped_features"] == meta["sensitive_features"] == ["race"]
    expected = model.predict(features(case)[kept + COMPAS_NUMERIC])
    np.testing.assert_array_equal(predictions(out)[A.Y_PRED], expected)


def test_csv_train_and_test_work(compas_case, tmp_path):
    case = dataclasses.replace(
        compas_case,
        train=write_table(pd.read_parquet(compas_case.train), tmp_path / "train.csv"),
        test=write_table(pd.read_parquet(compas_case.test), tmp_path / "test.csv"),
    )
    out = case.construct(tmp_path / "out")
    expected = joblib.load(case.model).predict(features(compas_case))
    np.testing.assert_array_equal(predictions(out)[A.Y_PRED], expected)
    assert read_meta(out)["n_train"] == len(pd.read_parquet(compas_case.train))


def skops_copy(case, tmp: Path) -> Path:
    """The case's model saved with skops (Adult's Pipeline holds types skops does not trust)."""
    return write_model(joblib.load(case.model), tmp / "model.skops")


def test_skops_model_loads_with_its_types_trusted(adult_case, tmp_path):
    model = skops_copy(adult_case, tmp_path)
    trusted = skops.io.get_untrusted_types(file=model)
    assert trusted  # otherwise the untrusted-types error case below tests nothing
    case = dataclasses.replace(adult_case, model=model)
    out = case.construct(tmp_path / "out", skops_trusted_types=trusted)
    expected = joblib.load(adult_case.model).predict(features(adult_case))
    np.testing.assert_array_equal(predictions(out)[A.Y_PRED], expected)
    assert (out / "model" / "model.skops").is_file()


def _skops_model(case, path: Path) -> Path:
    skops.io.dump(joblib.load(case.model), path)
    return path


@pytest.mark.parametrize("name", ["model", "model.bin", "model.joblib"])
def test_a_skops_model_is_known_by_its_content_not_its_name(adult_case, tmp_path, name):
    """A model written to KFP's Output[Model].path (no extension) with skops loads as skops."""
    model = _skops_model(adult_case, tmp_path / name)
    trusted = skops.io.get_untrusted_types(file=model)
    out = dataclasses.replace(adult_case, model=model).construct(
        tmp_path / "out", allow_pickle=False, skops_trusted_types=trusted
    )
    expected = joblib.load(adult_case.model).predict(features(adult_case))
    np.testing.assert_array_equal(predictions(out)[A.Y_PRED], expected)
    meta = json.loads((out / A.META_FILE).read_text())
    assert meta["model"]["sha256"] == A.sha256_file(model)
    assert (
        load_constructor_artifact(out).load_model().predict(features(adult_case)[:5]).tolist() == expected[:5].tolist()
    )


def test_a_model_folder_holds_one_model_whatever_its_name(adult_case, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    joblib.dump(joblib.load(adult_case.model), folder / "data")
    (folder / "README.txt").write_text("trained on Adult")
    out = dataclasses.replace(adult_case, model=folder).construct(tmp_path / "out")
    assert (out / "model" / "data").is_file()
    joblib.dump(0, folder / "other")
    with pytest.raises(RAIInputError, match=r"must hold exactly one model file .* found \['data', 'other'\]"):
        dataclasses.replace(adult_case, model=folder).construct(tmp_path / "out2")


@pytest.mark.parametrize(
    ("name", "compress", "detected"),
    [
        ("model.skops", 0, "a pickle"),
        ("model", 3, "a compressed joblib"),
        ("model.pkl", ("gzip", 3), "a compressed joblib"),
    ],
)
def test_a_pickle_under_any_name_needs_the_opt_in(adult_case, tmp_path, name, compress, detected):
    joblib.dump(joblib.load(adult_case.model), tmp_path / name, compress=compress)
    case = dataclasses.replace(adult_case, model=tmp_path / name)
    with pytest.raises(RAIInputError, match=rf"is {detected} \(detected from its content\): loading it runs any code"):
        case.construct(tmp_path / "out", allow_pickle=False)
    assert not (tmp_path / "out").exists()
    case.construct(tmp_path / "out", allow_pickle=True)


def test_pickled_model_needs_the_opt_in_and_nothing_is_written(adult_case, tmp_path, capsys):
    with pytest.raises(
        RAIInputError,
        match=r"is a pickle \(detected from its content\): loading it runs any code stored in it.*"
        r"`allow_pickle`",
    ):
        adult_case.construct(tmp_path / "out", allow_pickle=False)
    assert list(tmp_path.iterdir()) == []
    args = [
        "--model",
        str(adult_case.model),
        "--train",
        str(adult_case.train),
        "--test",
        str(adult_case.test),
        "--output",
        str(tmp_path / "cli"),
        "--target-column",
        "income",
        "--task-type",
        "binary_classification",
    ]
    assert main(args) == 2 and "--allow-pickle" in capsys.readouterr().err
    assert main([*args, "--allow-pickle", "false"]) == 2 and not (tmp_path / "cli").exists()
    capsys.readouterr()
    assert main([*args, "--allow-pickle", "true"]) == 0
    assert read_meta(tmp_path / "cli")["model"]["allow_pickle"] is True


def test_later_steps_load_the_copy_as_the_constructor_was_allowed(adult_case, tmp_path):
    """A skops model with trusted types: the explainer loads the artifact's copy without being told again."""
    from rai_audit.core.constructor_artifact import load_constructor_artifact

    model = skops_copy(adult_case, tmp_path)
    trusted = skops.io.get_untrusted_types(file=model)
    out = dataclasses.replace(adult_case, model=model).construct(
        tmp_path / "out", skops_trusted_types=trusted, allow_pickle=False
    )
    meta = read_meta(out)["model"]
    assert meta["skops_trusted_types"] == trusted and meta["allow_pickle"] is False
    loaded = load_constructor_artifact(out).load_model()
    np.testing.assert_array_equal(loaded.predict(features(adult_case)), predictions(out)[A.Y_PRED])


# --- bad inputs --------------------------------------------------------------------------------

Make = Callable[[Any, Path], tuple[Any, dict[str, Any]]]


def options(**overrides) -> Make:
    return lambda case, tmp: (case, overrides)


def edit_test(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Make:
    def make(case, tmp):
        path = write_table(edit(pd.read_parquet(case.test)), tmp / "test.parquet")
        return dataclasses.replace(case, test=path), {}

    return make


def edit_data(edit: Callable[[pd.DataFrame], pd.DataFrame], *, test: bool = True) -> Make:
    """Apply ``edit`` to the train data (and the test data too, unless test=False)."""

    def make(case, tmp):
        splits = ("train", "test") if test else ("train",)
        paths = {
            split: write_table(edit(pd.read_parquet(getattr(case, split))), tmp / f"{split}.parquet")
            for split in splits
        }
        return dataclasses.replace(case, **paths), {}

    return make


def model_file(make_file: Callable[[Any, Path], Path]) -> Make:
    return lambda case, tmp: (dataclasses.replace(case, model=make_file(case, tmp)), {})


NOISE = np.random.default_rng(0).bytes(512)  # starts with b"_", not a pickle opcode


def bytes_file(name: str, content: bytes) -> Callable[[Any, Path], Path]:
    def make_file(case, tmp):
        path = tmp / name
        path.write_bytes(content)
        return path

    return make_file


def numeric_only_model(case, tmp):
    """A compas model fitted on other columns (the numeric ones only)."""
    return write_model(
        fit_on_train(case, LogisticRegression(max_iter=1000), COMPAS_NUMERIC), tmp / "other_columns.joblib"
    )


def garbage_test_file(case, tmp):
    path = tmp / "test.parquet"
    path.write_bytes(b"this is not parquet\n" * 10)
    return dataclasses.replace(case, test=path), {}


BAD_INPUTS = [
    pytest.param(
        "adult_case",
        edit_test(lambda d: d.drop(columns="income")),
        r"`target_column` 'income' is not a column of the test data",
        id="target-not-in-test",
    ),
    pytest.param(
        "adult_case",
        edit_data(lambda d: d.drop(columns="income"), test=False),
        r"`target_column` 'income' is not a column of the train data",
        id="target-not-in-train",
    ),
    pytest.param(
        "compas_case",
        edit_test(lambda d: d.drop(columns="sex")),
        r"same columns; missing in test: \['sex'\]$",
        id="test-column-missing",
    ),
    pytest.param(
        "compas_case",
        edit_test(lambda d: d.assign(extra=1)),
        r"same columns; only in test: \['extra'\]$",
        id="test-column-extra",
    ),
    pytest.param(
        "compas_case",
        options(sensitive_features=["gender"]),
        r"`sensitive_features` names columns that are not in the data: \['gender'\]",
        id="unknown-sensitive",
    ),
    pytest.param(
        "compas_case",
        options(categorical_features=["sex", "colour"]),
        r"`categorical_features` names columns that are not in the data: \['colour'\]",
        id="unknown-categorical",
    ),
    pytest.param(
        "compas_case",
        options(dropped_features=["zip"]),
        r"`dropped_features` names columns that are not in the data: \['zip'\]",
        id="unknown-dropped",
    ),
    pytest.param(
        "compas_case",
        edit_data(lambda d: d.assign(y_pred=0)),
        r"feature names \['y_pred'\] are reserved",
        id="reserved-feature-name",
    ),
    pytest.param(
        "compas_case",
        options(classes=["Low", "High"]),
        r"`classes` \['Low', 'High'\] do not match the model's classes",
        id="classes-subset",
    ),
    pytest.param(
        "compas_case",
        options(classes=["Low", "Medium", "Severe"]),
        r"class 'Severe' is not one of the classes",
        id="classes-unknown",
    ),
    pytest.param(
        "adult_case",
        options(positive_label="rich"),
        r"`positive_label` 'rich' is not one of the classes",
        id="positive-label-unknown",
    ),
    pytest.param(
        "compas_case",
        options(positive_label="High"),
        r"`positive_label` applies to binary classification only",
        id="positive-label-multiclass",
    ),
    pytest.param(
        "compas_case",
        options(task_type="binary_classification"),
        r"binary_classification needs exactly 2 classes, got 3",
        id="binary-with-3-classes",
    ),
    pytest.param(
        "compas_case",
        edit_test(lambda d: d.assign(age="unknown")),
        r"the model could not predict on the test data \(ValueError",
        id="predict-wrong-type",
    ),
    pytest.param(
        "compas_case",
        model_file(numeric_only_model),
        r"the model could not predict on the test data \(ValueError: The feature names",
        id="predict-other-columns",
    ),
    pytest.param(
        "compas_case",
        options(task_type="ranking"),
        r"`task_type` must be one of .* got 'ranking'",
        id="unknown-task-type",
    ),
    pytest.param(
        "compas_case",
        options(sample_size=-5),
        r"`sample_size` must be an integer >= 0 .* got -5",
        id="negative-sample-size",
    ),
    pytest.param(
        "adult_case",
        edit_test(lambda d: d.assign(income=d["income"].mask(d.index < 3))),
        r"the test data has 3 rows with no `income` value",
        id="missing-target-values",
    ),
    pytest.param(
        "compas_case",
        model_file(lambda case, tmp: tmp / "missing.joblib"),
        r"model file \S*missing.joblib does not exist",
        id="model-missing",
    ),
    pytest.param(
        "compas_case",
        model_file(bytes_file("corrupt.joblib", NOISE)),
        r"model file \S*corrupt.joblib could not be loaded: its content is neither a skops file .* nor a pickle",
        id="model-random-bytes",
    ),
    # Corrupt or foreign model files fail in many ways inside unpickling; each is a clear error.
    pytest.param(
        "compas_case",
        model_file(bytes_file("corrupt.joblib", b"s" + NOISE)),
        r"model file \S*corrupt.joblib could not be loaded",
        id="model-bytes-pickle-opcode",
    ),
    pytest.param(
        "compas_case",
        model_file(bytes_file("corrupt.joblib", b"x" + NOISE)),
        r"model file \S*corrupt.joblib could not be loaded",
        id="model-bytes-zlib-magic",
    ),
    pytest.param(
        "compas_case",
        model_file(bytes_file("old.pkl", b"csklearn.linear_model\nNoSuchModel\n.")),
        r"model file \S*old.pkl",
        id="model-class-not-in-installed-package",
    ),
    pytest.param(
        "compas_case",
        model_file(bytes_file("corrupt.skops", NOISE)),
        r"model file \S*corrupt.skops",
        id="model-corrupt-skops",
    ),
    pytest.param(
        "adult_case",
        garbage_test_file,
        r"test data file \S*test.parquet could not be read as Parquet",
        id="unreadable-parquet",
    ),
    pytest.param(
        "adult_case",
        model_file(skops_copy),
        r"contains types skops does not trust by default: \[.*'numpy.dtype'.*TreePredictor'\]; "
        r"if you trust them, pass them as `skops_trusted_types`",
        id="skops-untrusted",
    ),
]


@pytest.mark.parametrize("name, make, match", BAD_INPUTS)
def test_bad_input_is_refused_with_its_cause(request, tmp_path, name, make, match):
    case = request.getfixturevalue(name)
    case, overrides = make(case, tmp_path)
    out = tmp_path / "out"
    with pytest.raises(RAIInputError, match=match):
        case.construct(out, **overrides)
    assert_no_output(out)


# --- the output folder -------------------------------------------------------------------------


def fail_copy(*args, **kwargs):
    raise OSError("No space left on device")


@pytest.mark.parametrize("where", ["before-writing", "while-writing"])
def test_failed_run_leaves_no_output(compas_case, tmp_path, monkeypatch, where):
    out = tmp_path / "out"
    if where == "before-writing":
        cohorts = [{"name": "bad", "filter": {"column": "colour", "op": "==", "value": "red"}}]
        with pytest.raises(RAIInputError, match=r"column 'colour' is not a feature"):
            compas_case.construct(out, cohorts=cohorts)
    else:  # the step fails after predictions.parquet was written in the temporary folder
        monkeypatch.setattr("rai_audit.core.loading.shutil.copy2", fail_copy)  # copy_model
        with pytest.raises(OSError, match="No space left"):
            compas_case.construct(out)
    assert_no_output(out)


def test_existing_output_is_refused_and_kept(compas_case, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "previous.txt").write_text("earlier results")
    with pytest.raises(RAIInputError, match=r"output folder \S*out already exists and is not empty"):
        compas_case.construct(out)
    assert [p.name for p in out.iterdir()] == ["previous.txt"]
    assert (out / "previous.txt").read_text() == "earlier results"


def test_existing_empty_output_folder_is_used(compas_case, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert read_meta(compas_case.construct(out))["kind"] == "constructor"


# --- the command line --------------------------------------------------------------------------


def cli_args(case, out: Path, *extra: str) -> list[str]:
    return [
        "--model",
        str(case.model),
        "--allow-pickle",
        "--train",
        str(case.train),
        "--test",
        str(case.test),
        "--output",
        str(out),
        "--target-column",
        case.target,
        "--task-type",
        case.task_type,
        *extra,
    ]


def test_cli_writes_the_artifact(adult_case, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        cli_args(
            adult_case,
            out,
            "--positive-label",
            ">50K",
            "--sample-size",
            "500",
            "--sensitive-features",
            '["sex", "race"]',
            "--classes",
            '["<=50K", ">50K"]',
        )
    )
    meta = read_meta(out)
    assert code == 0
    assert meta["positive_label"] == ">50K"
    assert meta["sensitive_features"] == ["sex", "race"]
    assert meta["sample"]["size"] == 500
    captured = capsys.readouterr()
    assert f"run id {meta['run_id']}" in captured.out and captured.err == ""


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--target-column", "salary"], r"`target_column` 'salary' is not a column of the train data"),
        (["--sample-size", "-1"], r"`sample_size` must be an integer >= 0"),
        (["--positive-label", "rich"], r"`positive_label` 'rich' is not one of the classes"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(adult_case, tmp_path, capsys, extra, match):
    out = tmp_path / "out"
    assert main(cli_args(adult_case, out, *extra)) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rai-audit: error: ")
    assert re.search(match, lines[0])
    assert captured.out == ""
    assert_no_output(out)


@pytest.mark.parametrize("extra", [["--bogus", "1"], ["--task-type", "ranking"], ["--sensitive-features", "[not json"]])
def test_cli_bad_option_exits_2_via_argparse(adult_case, tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as exc:
        main(cli_args(adult_case, tmp_path / "out", *extra))
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_messages_print_labels_as_the_user_wrote_them(tmp_path):
    """Integer class labels (numpy's in the model) read 0 and 1 in a message, not np.int64(0)."""
    from sklearn.linear_model import LogisticRegression

    from support import write_case

    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x": rng.normal(size=120)})
    data["y"] = (data["x"] > 0).astype(int)
    model = LogisticRegression().fit(data[["x"]], data["y"])
    case = write_case(
        tmp_path / "case",
        model,
        data.iloc[:60],
        data.iloc[60:].reset_index(drop=True),
        target="y",
        task_type="binary_classification",
        sensitive=[],
        positive_label=3,
    )
    with pytest.raises(RAIInputError) as raised:
        case.construct(tmp_path / "out")
    assert str(raised.value) == "`positive_label` 3 is not one of the classes [0, 1]"
    with pytest.raises(RAIInputError) as raised:
        case.construct(tmp_path / "out", positive_label=None, classes=[0, 2])
    assert "np." not in str(raised.value) and "[0, 1]" in str(raised.value)


def test_the_sample_keeps_a_row_of_every_class_the_test_set_has():
    """A stratified sample of 100 of 1,000 rows with one positive row kept it only by chance
    (its quota 0.1 rounds to 0); now every class with rows keeps one, and the size is exact."""
    from rai_audit.steps.constructor import _stratified_sample

    y = pd.Series(["no"] * 990 + ["rare"] * 9 + ["yes"])
    for seed in range(5):
        mask = _stratified_sample(y, 100, seed, stratify=True)
        assert mask.sum() == 100
        assert set(y[mask]) == {"no", "rare", "yes"}
        assert (y[mask] == "yes").sum() == 1 and (y[mask] == "rare").sum() == 1
    # no room for one of each: the size still wins
    assert _stratified_sample(y, 2, 0, stratify=True).sum() == 2
