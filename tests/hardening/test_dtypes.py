"""Hardening: every pandas dtype a user's Parquet or CSV file can hold, through every step (issue 29).

A hypothesis property generates small tables (train and test of 30-80 rows each, a binary
target and 2-5 columns, at least two of them model features: causal analysis needs a
feature besides its treatment) whose columns are drawn from every dtype a user's file can hold:
``bool``, ``int``, ints and floats with NaN, nullable ``Int64``/``Float64``/``boolean``/
``string`` with ``<NA>``, ``category`` (ordered and not), plain text ``object``, ``object``
columns of mixed types (only CSV can hold them; they come back as text, or as booleans
mixed with NaN), Parquet decimals and binary (``Decimal`` and ``bytes`` objects),
datetimes, timedeltas and dates (Parquet ``date32`` reads back as ``datetime.date``
objects), each with a random pattern of missing values (none, some, all,
only in test), as model features or as ``dropped_features``. Each example is written to
Parquet or CSV, read back as a user would (``pd.read_parquet``/``pd.read_csv``), and a small
scikit-learn Pipeline (float conversion + SimpleImputer for numbers, text + OneHotEncoder
with ``handle_unknown="ignore"`` for the rest, a logistic regression or a decision tree) is
trained on it and saved with joblib. Then the constructor, every analysis step (error
analysis, explainer, counterfactual, causal) and gather run on it, and exactly one of:

- the constructor refuses it with ``RAIInputError`` naming the column, and writes nothing,
  when a datetime-like or bytes column is a model feature (no step ran);
- every step succeeds, and the figures equal an independent computation on the same rows
  (pandas, scikit-learn, the model itself): accuracy and per-group selection rate and
  counts, cohort sizes, per-feature counts of present and missing values, the error tree's
  root and overall error, the explained rows and features (never a dropped one), every kept
  counterfactual's prediction, and the causal fit's rows.

Any other outcome fails. A bug it finds is kept as an explicit reproducer (``FOUND``); while
its fix is pending, the property may skip inputs failing with its signature (``KNOWN_BUGS``)
to keep looking for new ones. Examples are derandomized so CI runs the same ones every time.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.steps.causal import CausalOptions, run_causal
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from rai_audit.steps.counterfactual import CounterfactualOptions, run_counterfactual
from rai_audit.steps.error_analysis import ErrorAnalysisOptions, run_error_analysis
from rai_audit.steps.explainer import ExplainerOptions, run_explainer
from rai_audit.steps.gather import run_gather

# --- the tables ---------------------------------------------------------------------------------

KINDS = (
    "bool",
    "int",
    "int_nan",
    "float",
    "Int64",
    "Float64",
    "boolean",
    "string",
    "category",
    "ordered",
    "object",
    "mixed",
    "decimal",
    "bytes",
    "datetime",
    "timedelta",
    "date",
)
NUMBERS = ("int", "int_nan", "float", "Int64", "Float64")
# Values few enough to be a sensitive feature or a cohort's value.
FEW_VALUES = ("bool", "Int64", "boolean", "string", "category", "ordered", "object", "mixed")
NA_PATTERNS = ("none", "some", "test_only", "all")
TEXT = ("red", "green", "blue", "grey")
LEVELS = ("low", "mid", "high")


@dataclass(frozen=True)
class Column:
    kind: str
    na: str  # one of NA_PATTERNS
    dropped: bool


@dataclass(frozen=True)
class Spec:
    """One generated audit, small enough to read in a failure report and rebuild exactly."""

    columns: tuple[Column, ...]
    n_train: int
    n_test: int
    seed: int
    file_format: str  # parquet or csv
    label: str  # int, str or bool
    estimator: str  # logistic or tree
    sensitive: int | None  # index into columns
    cohort_columns: tuple[int, ...]
    treatment: int  # which model feature with two values or more in train is causal's treatment
    sample_size: int


def _values(kind: str, n: int, rng: np.random.Generator) -> pd.Series:
    if kind == "bool":
        return pd.Series(rng.random(n) < 0.5)
    if kind in ("int", "int_nan"):
        return pd.Series(rng.integers(-3, 40, n), dtype="int64")
    if kind == "float":
        return pd.Series(rng.normal(10, 5, n).round(3))
    if kind == "Int64":
        return pd.Series(rng.integers(0, 4, n), dtype="Int64")
    if kind == "Float64":
        return pd.Series(rng.normal(0, 2, n).round(3), dtype="Float64")
    if kind == "boolean":
        return pd.Series(rng.random(n) < 0.5, dtype="boolean")
    if kind == "string":
        return pd.Series(rng.choice(TEXT, n), dtype="string")
    if kind == "category":  # with a category no row holds
        return pd.Series(pd.Categorical(rng.choice(TEXT[:3], n), categories=list(TEXT)))
    if kind == "ordered":
        return pd.Series(pd.Categorical(rng.choice(LEVELS, n), categories=list(LEVELS), ordered=True))
    if kind == "object":
        return pd.Series(rng.choice(TEXT, n).tolist(), dtype=object)
    if kind == "decimal":  # Parquet decimal128, as data warehouses export money
        return pd.Series([decimal.Decimal(f"{v:.2f}") for v in rng.normal(100, 30, n)], dtype=object)
    if kind == "bytes":  # Parquet binary, as some writers store text
        return pd.Series([t.encode() for t in rng.choice(TEXT, n)], dtype=object)
    if kind == "mixed":  # numbers, text and booleans in one column: only CSV holds it
        pool = np.array([1, 2, 3.5, "a", "b", True], dtype=object)
        return pd.Series(pool[rng.integers(0, len(pool), n)].tolist(), dtype=object)
    if kind == "datetime":
        return pd.Series(pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"))
    if kind == "timedelta":
        return pd.Series(pd.to_timedelta(rng.integers(0, 500, n), unit="h"))
    if kind == "date":
        return pd.Series(
            [dt.date(2021, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 400, n)], dtype=object
        )
    raise AssertionError(kind)


def _with_missing(values: pd.Series, pattern: str, n_train: int, rng: np.random.Generator) -> pd.Series:
    n = len(values)
    if pattern == "none":
        return values
    if pattern == "all":
        missing = np.ones(n, dtype=bool)
    elif pattern == "test_only":
        missing = np.zeros(n, dtype=bool)
        missing[n_train:] = rng.random(n - n_train) < 0.3
    else:
        missing = rng.random(n) < rng.uniform(0.05, 0.5)
    if values.dtype == bool:  # numpy bool holds no missing value: such a column is object
        values = values.astype(object)
    elif values.dtype == "int64":  # "int with NaN": pandas makes it float
        values = values.astype(float)
    return values.mask(missing)


def build(spec: Spec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and test tables of ``spec`` (columns c0, c1, ... and the target ``y``)."""
    rng = np.random.default_rng(spec.seed)
    n = spec.n_train + spec.n_test
    data = {}
    for i, column in enumerate(spec.columns):
        values = _values(column.kind, n, rng)
        pattern = "none" if column.kind == "int" else column.na  # "int" stays int64
        data[f"c{i}"] = _with_missing(values, pattern, spec.n_train, rng)
    frame = pd.DataFrame(data)
    # The label follows the first model feature (its factorized value's parity), with noise.
    driver = frame[f"c{model_columns(spec)[0]}"]
    codes = pd.factorize(driver.astype(str))[0]
    y = (codes % 2 == 0) ^ (rng.random(n) < 0.2)
    y[:2] = [True, False]  # both classes in train: the model needs them
    labels = {"int": (0, 1), "str": ("no", "yes"), "bool": (False, True)}[spec.label]
    frame["y"] = pd.Series(np.where(y, labels[1], labels[0]).tolist(), dtype=object).infer_objects()
    return frame.iloc[: spec.n_train].reset_index(drop=True), frame.iloc[spec.n_train :].reset_index(drop=True)


def model_columns(spec: Spec) -> list[int]:
    return [i for i, c in enumerate(spec.columns) if not c.dropped]


def file_format(spec: Spec) -> str:
    # Parquet cannot hold an object column of mixed types (pyarrow refuses to write it).
    return "csv" if any(c.kind == "mixed" for c in spec.columns) else spec.file_format


@st.composite
def specs(draw) -> Spec:
    n_columns = draw(st.integers(2, 5))
    # c0 and c1 are model features; c0 drives the label and is a treatment causal analysis
    # can always fit (numbers with values), whatever the other columns are; c1 has values in
    # train, so the fit has something to adjust for (the causal step refuses, in one line,
    # a fit whose other features are all constant: tested in test_causal).
    columns = tuple(
        Column(
            draw(st.sampled_from(NUMBERS if i == 0 else KINDS)),
            draw(st.sampled_from(NA_PATTERNS[:3] if i <= 1 else NA_PATTERNS)),
            dropped=i >= 2 and draw(st.booleans()),
        )
        for i in range(n_columns)
    )
    few = [i for i, c in enumerate(columns) if c.kind in FEW_VALUES]
    n_model = sum(not c.dropped for c in columns)
    return Spec(
        columns=columns,
        n_train=draw(st.integers(30, 80)),
        n_test=draw(st.integers(30, 80)),
        seed=draw(st.integers(0, 2**32 - 1)),
        file_format=draw(st.sampled_from(("parquet", "csv"))),
        label=draw(st.sampled_from(("int", "str", "bool"))),
        estimator=draw(st.sampled_from(("logistic", "tree"))),
        sensitive=draw(st.sampled_from([None, *few])),
        cohort_columns=tuple(draw(st.lists(st.integers(0, n_columns - 1), max_size=2, unique=True))),
        treatment=draw(st.integers(0, n_model - 1)),
        sample_size=draw(st.sampled_from((0, 12))),
    )


# --- the user's model ---------------------------------------------------------------------------


def as_float(X: pd.DataFrame) -> np.ndarray:
    """Numbers as floats, missing as NaN (nullable dtypes too); datetimes as seconds."""
    out = np.empty(X.shape, dtype=float)
    for j, c in enumerate(X.columns):
        values = X[c]
        if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
            seconds = values.astype("int64").astype(float) / 1e9
            out[:, j] = np.where(values.isna(), np.nan, seconds)
        else:
            out[:, j] = pd.to_numeric(values.astype(object).where(values.notna(), np.nan), errors="coerce")
    return out


def as_text(X: pd.DataFrame) -> np.ndarray:
    """Every value as text, missing as its own value."""
    return X.astype(object).where(X.notna(), "(NA)").astype(str).to_numpy()


def is_decimal(values: pd.Series) -> bool:
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "decimal"


def is_number_column(values: pd.Series) -> bool:
    return (
        pd.api.types.is_numeric_dtype(values)
        or pd.api.types.is_datetime64_any_dtype(values)
        or pd.api.types.is_timedelta64_dtype(values)
        or is_decimal(values)
    )


def train_model(spec: Spec, train: pd.DataFrame) -> Pipeline:
    features = [f"c{i}" for i in model_columns(spec)]
    numbers = [f for f in features if is_number_column(train[f])]
    text = [f for f in features if f not in numbers]
    parts = []
    if numbers:
        parts.append(
            (
                "num",
                Pipeline(
                    [
                        ("float", FunctionTransformer(as_float)),
                        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                    ]
                ),
                numbers,
            )
        )
    if text:
        parts.append(
            (
                "text",
                Pipeline([("text", FunctionTransformer(as_text)), ("onehot", OneHotEncoder(handle_unknown="ignore"))]),
                text,
            )
        )
    estimator = (
        LogisticRegression(max_iter=500)
        if spec.estimator == "logistic"
        else DecisionTreeClassifier(max_depth=3, random_state=0)
    )
    model = Pipeline([("prepare", ColumnTransformer(parts)), ("model", estimator)])
    return model.fit(train[features], train["y"])


# --- independent figures ------------------------------------------------------------------------


def datetime_like(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
        return True
    present = values.dropna()
    return (
        values.dtype == object
        and len(present) > 0
        and all(isinstance(v, (dt.date, dt.datetime, dt.timedelta, pd.Timestamp, pd.Timedelta)) for v in present)
    )


def group_label(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), "(missing)").astype(str)


def cohort_for(column: str, values: pd.Series, negate: bool) -> tuple[dict[str, Any], int]:
    """A cohort on ``column`` and the number of test rows it selects, counted with pandas;
    ``negate``: text columns by ``not in``, which selects missing values too (docs/artifacts.md)."""
    present = values.dropna()
    if len(present) == 0 or datetime_like(values):
        return {"column": column, "op": "==", "value": None}, int(values.isna().sum())
    if pd.api.types.is_bool_dtype(values) or (values.dtype == object and all(isinstance(v, bool) for v in present)):
        return {"column": column, "op": "==", "value": True}, int((values == True).sum())  # noqa: E712
    if pd.api.types.is_numeric_dtype(values) or is_decimal(values):  # decimals are read as numbers
        threshold = float(present.astype(float).median())
        return {"column": column, "op": ">", "value": threshold}, int((values.astype(float) > threshold).sum())
    text = values.astype(object)
    chosen = sorted({str(v) for v in present})[:2]
    if values.dtype == object and not all(isinstance(v, str) for v in present):
        # Mixed types: select their missing values, which every dtype shares.
        return {"column": column, "op": "==", "value": None}, int(values.isna().sum())
    if negate:
        return {"column": column, "op": "not in", "value": chosen}, int((~text.isin(chosen)).sum())
    return {"column": column, "op": "in", "value": chosen}, int(text.isin(chosen).sum())


# --- known bugs in files other work owns (reproducers below) ------------------------------------

# name -> (exception type, file, function) of the deepest rai_audit frame where it raises.
# Bugs the property found while their fix was pending: (exception, file, function) by name.
# Empty: every one found is fixed and kept in FOUND below.
KNOWN_BUGS: dict[str, tuple[type[BaseException], str, str]] = {}


def known_bug(err: BaseException) -> str | None:
    own = [f for f in traceback.extract_tb(err.__traceback__) if "rai_audit" in Path(f.filename).parts]
    if not own:
        return None
    frame = own[-1]
    for name, (kind, file, function) in KNOWN_BUGS.items():
        if isinstance(err, kind) and Path(frame.filename).name == file and frame.name == function:
            return name
    return None


# --- the audit of one table ---------------------------------------------------------------------


def audit(spec: Spec, folder: Path, *, skip_known: bool = True) -> str:
    """Run the whole audit on ``spec`` in ``folder`` and check it; returns the outcome:
    "refused", "audited" or the name of a known bug that stopped it (``skip_known``)."""
    train, test = build(spec)
    fmt = file_format(spec)
    paths = {name: folder / f"{name}.{fmt}" for name in ("train", "test")}
    for name, frame in (("train", train), ("test", test)):
        if fmt == "csv":
            frame.to_csv(paths[name], index=False)
        else:
            frame.to_parquet(paths[name], index=False)
    # What the user's own code reads back, and trains on.
    read = (lambda p: pd.read_csv(p, low_memory=False)) if fmt == "csv" else pd.read_parquet
    train, test = read(paths["train"]), read(paths["test"])
    model = train_model(spec, train)
    joblib.dump(model, folder / "model.joblib")

    names = [f"c{i}" for i in range(len(spec.columns))]
    features = [f"c{i}" for i in model_columns(spec)]
    dropped = [f for f in names if f not in features]
    refused_columns = [
        f
        for f in features
        if any(datetime_like(v) or pd.api.types.infer_dtype(v, skipna=True) == "bytes" for v in (train[f], test[f]))
    ]
    # Causal's treatment: a feature that varies in train (one that does not cannot be fitted),
    # numeric or with few levels (econml leaves out one of more than upper_bound_on_cat_expansion).
    # A categorical treatment needs 2 fit rows or more of each level (missing values are one).
    varying = [
        f
        for f in features
        if not datetime_like(train[f])
        and 2 <= train[f].nunique()
        and (
            is_number_column(train[f])
            and not pd.api.types.is_bool_dtype(train[f])
            or (train[f].nunique() <= 10 and group_label(train[f]).value_counts().min() >= 2)
        )
    ]
    treatment = varying[spec.treatment % len(varying)] if varying else None
    positive = {"int": 1, "str": "yes", "bool": True}[spec.label]
    sensitive = [] if spec.sensitive is None else [names[spec.sensitive]]
    cohorts, expected_sizes = [], {}
    for k, i in enumerate(spec.cohort_columns):
        flt, size = cohort_for(names[i], test[names[i]], negate=k == 1)
        cohorts.append({"name": f"Cohort {k}", "filter": flt})
        expected_sizes[f"Cohort {k}"] = size

    constructor = folder / "constructor"
    options = ConstructorOptions(
        target_column="y",
        task_type="binary_classification",
        positive_label=positive,
        sensitive_features=sensitive,
        dropped_features=dropped,
        cohorts=cohorts,
        sample_size=spec.sample_size,
        allow_pickle=True,
    )
    try:
        run_constructor(folder / "model.joblib", paths["train"], paths["test"], constructor, options=options)
    except RAIInputError as err:
        message = str(err)
        assert refused_columns, f"refused a table every step should take: {message}"
        assert "\n" not in message and any(repr(c) in message or f"`{c}`" in message for c in refused_columns), (
            f"the refusal must name the column ({refused_columns}) in one line: {message}"
        )
        assert not constructor.exists() and not list(folder.glob(".constructor*")), "a refusal wrote files"
        return "refused"
    assert not refused_columns, f"datetime-like features {refused_columns} were accepted"
    assert treatment is not None, "c0 is a treatment econml can fit"

    # Independent figures: the model, sklearn and pandas on the rows as read.
    y_test = test["y"]
    y_pred = pd.Series(model.predict(test[features]))
    meta = json.loads((constructor / A.META_FILE).read_text())
    assert meta["model_features"] == features and meta["dropped_features"] == dropped
    assert meta["cohort_sizes"] == expected_sizes

    insight_dirs = []
    try:
        steps = (
            (
                "error_analysis",
                lambda out: run_error_analysis(
                    constructor, out, options=ErrorAnalysisOptions(min_child_samples=5, heatmap_features=features[:2])
                ),
            ),
            ("explainer", lambda out: run_explainer(constructor, out, options=ExplainerOptions(mimic_train_size=50))),
            (
                "counterfactual",
                lambda out: run_counterfactual(constructor, out, options=CounterfactualOptions(total_CFs=2)),
            ),
            (
                "causal",
                lambda out: run_causal(
                    constructor,
                    out,
                    options=CausalOptions(
                        treatment_features=[treatment],
                        heterogeneity_features=[],
                        train_sample_size=0,
                        skip_cat_limit_checks=True,
                        n_jobs=1,
                    ),
                ),
            ),
        )
        for name, step in steps:
            step(folder / name)
            insight_dirs.append(folder / name)
        run_gather(constructor, insight_dirs, folder / "dashboard")
    except Exception as err:
        bug = known_bug(err)
        if skip_known and bug:
            return bug
        raise

    doc = json.loads((folder / "dashboard" / A.INSIGHTS_JSON_FILE).read_text())
    overall = doc["model_overview"]["overall"]
    assert overall["count"] == len(test)
    assert overall["accuracy_score"] == pytest.approx(accuracy_score(y_test.astype(str), y_pred.astype(str)))
    assert overall["selection_rate"] == pytest.approx((y_pred.astype(str) == str(positive)).mean())
    assert {c["name"]: c["count"] for c in doc["cohorts"]} == expected_sizes
    summaries = {f["feature"]: f for f in doc["data_analysis"]["features"]}
    for name in names:
        assert (summaries[name]["count"], summaries[name]["missing"]) == (
            int(test[name].notna().sum()),
            int(test[name].isna().sum()),
        ), name
    if sensitive:
        labels = group_label(test[sensitive[0]])
        expected = {
            g: ((y_pred[labels == g].astype(str) == str(positive)).mean(), int((labels == g).sum()))
            for g in labels.unique()
        }
        entry = doc["fairness"][0]
        got = {g["group"][sensitive[0]]: (g["selection_rate"], g["count"]) for g in entry["by_group"]}
        assert got.keys() == expected.keys()
        for g, (rate, count) in expected.items():
            assert got[g] == (pytest.approx(rate), count), g

    errors = doc["error_analysis"]
    assert errors["tree"]["features"] == features  # never a dropped one
    assert sorted(f["feature"] for f in errors["feature_importance"]) == sorted(features)
    root = errors["tree"]["nodes"][0]
    assert root["count"] == len(test)
    assert root["error_sum"] == pytest.approx(float((y_pred.astype(str) != y_test.astype(str)).sum()))

    explanation = doc["explanation"]
    local = pd.read_parquet(folder / "explainer" / "local_importance.parquet")
    assert [c for c in local.columns if c not in (A.ROW_ID, "class")] == features  # never a dropped one
    n_explained = len(test) if spec.sample_size == 0 else min(spec.sample_size, len(test))
    assert local[A.ROW_ID].nunique() == n_explained == explanation["n_rows"]

    cfs = pd.read_parquet(folder / "counterfactual" / "counterfactuals.parquet")
    assert not set(dropped) & set(cfs.columns)
    if len(cfs):
        again = model.predict(cfs[features].astype({f: test[f].dtype for f in features}, errors="ignore"))
        assert list(map(str, again)) == list(map(str, cfs["prediction"])), "a counterfactual's prediction is wrong"
        original = y_pred.iloc[cfs[A.ROW_ID].to_numpy()].astype(str).to_numpy()
        assert (original != cfs["prediction"].astype(str).to_numpy()).all(), "a counterfactual keeps the class"

    causal = doc["causal"]
    usable = train["y"].notna()
    if is_number_column(train[treatment]) and not pd.api.types.is_bool_dtype(train[treatment]):
        usable &= train[treatment].notna()
    assert causal["fit"]["train_rows_available"] == int(usable.sum())
    assert causal["fit"]["train_rows"] == int(usable.sum())
    return "audited"


# No shrinking: each example runs a whole audit (5-15 s), and a failing Spec is already small
# enough to read and re-run (FOUND below shows how).
DTYPES = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@DTYPES
@given(spec=specs())
def test_every_dtype_audits_or_is_refused_up_front(spec):
    with tempfile.TemporaryDirectory() as folder:
        event(audit(spec, Path(folder)))  # --hypothesis-show-statistics counts the outcomes


# --- reproducers of bugs the property found, kept as regular cases ------------------------------

FOUND = [
    # A categorical model feature with no value in train (all missing) left the batched
    # counterfactual search no value to draw (IndexError); it now stays as it is.
    pytest.param(
        Spec(
            columns=(
                Column("float", "some", False),
                Column("object", "none", False),
                Column("object", "all", False),
                Column("bool", "some", False),
            ),
            n_train=32,
            n_test=61,
            seed=134217729,
            file_format="parquet",
            label="str",
            estimator="logistic",
            sensitive=None,
            cohort_columns=(1, 0),
            treatment=0,
            sample_size=0,
        ),
        id="counterfactual-all-missing-category",
    )
]


@pytest.mark.parametrize("spec", FOUND)
def test_found_bug_reproducers(spec, tmp_path):
    assert audit(spec, tmp_path, skip_known=False) == "audited"


# --- the constructor's refusals and the CSV reader, one case each -------------------------------


def _text_and_numbers(numbers: list[str], text: list[str], estimator=None) -> Pipeline:
    parts = [
        ("num", SimpleImputer(), numbers),
        (
            "text",
            Pipeline([("text", FunctionTransformer(as_text)), ("onehot", OneHotEncoder(handle_unknown="ignore"))]),
            text,
        ),
    ]
    return Pipeline([("prepare", ColumnTransformer(parts)), ("model", estimator or LogisticRegression())])


def _small_audit(folder: Path, extra: pd.Series, *, dropped: bool) -> Pipeline:
    """Parquet files of a 40-row table (``x`` numeric, ``t`` text, ``extra``, target ``y``)
    in ``folder``, and a model trained on x and t (and ``extra`` as text when it is a feature)."""
    rng = np.random.default_rng(7)
    n = len(extra)
    frame = pd.DataFrame({"x": rng.normal(size=n), "t": rng.choice(TEXT, n), "extra": extra})
    frame["y"] = np.where(frame["x"] + rng.normal(scale=0.5, size=n) > 0, "yes", "no")
    frame.iloc[: n // 2].to_parquet(folder / "train.parquet", index=False)
    frame.iloc[n // 2 :].to_parquet(folder / "test.parquet", index=False)
    train = pd.read_parquet(folder / "train.parquet")
    model = _text_and_numbers(["x"], ["t"] if dropped else ["t", "extra"])
    model.fit(train.drop(columns="y"), train["y"])
    joblib.dump(model, folder / "model.joblib")
    return model


NOT_FEATURES = {
    "datetime64": lambda n: pd.Series(pd.date_range("2021-01-01", periods=n, freq="D")),
    "datetime64 with time zone": lambda n: pd.Series(pd.date_range("2021-01-01", periods=n, freq="h", tz="UTC")),
    "timedelta64": lambda n: pd.Series(pd.to_timedelta(np.arange(n), unit="h")),
    "dates (Parquet date32)": lambda n: pd.Series([dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(n)]),
    "category of datetimes": lambda n: pd.Series(pd.Categorical(pd.date_range("2021-01-01", periods=n, freq="D"))),
    "times of day (Parquet time64)": lambda n: pd.Series([dt.time(i % 24, i % 60) for i in range(n)], dtype=object),
    "bytes (Parquet binary)": lambda n: pd.Series([t.encode() for t in np.resize(TEXT, n)], dtype=object),
}


@pytest.mark.parametrize("kind", list(NOT_FEATURES))
def test_a_datetime_like_or_bytes_feature_is_refused_in_one_line_before_any_step(kind, tmp_path):
    """Accepted before: the steps then crashed (the error tree on LightGBM's pandas categorical
    dump: 'Circular reference detected') or took dates as text."""
    values = NOT_FEATURES[kind](40)
    values.iloc[3] = None
    folder = tmp_path
    _small_audit(folder, values, dropped=False)
    options = ConstructorOptions(
        target_column="y", task_type="binary_classification", positive_label="yes", allow_pickle=True
    )
    with pytest.raises(RAIInputError) as err:
        run_constructor(
            folder / "model.joblib",
            folder / "train.parquet",
            folder / "test.parquet",
            tmp_path / "out",
            options=options,
        )
    message = str(err.value)
    assert "\n" not in message and "feature 'extra' holds" in message and "`dropped_features`" in message
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("kind", list(NOT_FEATURES))
def test_a_dropped_datetime_like_or_bytes_column_stays_for_cohorts_only(kind, tmp_path):
    values = NOT_FEATURES[kind](40)
    values.iloc[[3, 30]] = None
    folder = tmp_path
    model = _small_audit(folder, values, dropped=True)
    options = ConstructorOptions(
        target_column="y",
        task_type="binary_classification",
        positive_label="yes",
        dropped_features=["extra"],
        allow_pickle=True,
        cohorts=[{"name": "No date", "filter": {"column": "extra", "op": "==", "value": None}}],
    )
    run_constructor(
        folder / "model.joblib", folder / "train.parquet", folder / "test.parquet", tmp_path / "out", options=options
    )
    meta = json.loads((tmp_path / "out" / A.META_FILE).read_text())
    test = pd.read_parquet(folder / "test.parquet")
    assert meta["model_features"] == ["x", "t"] and meta["dropped_features"] == ["extra"]
    assert meta["cohort_sizes"] == {"No date": int(test["extra"].isna().sum())} == {"No date": 1}
    predictions = pd.read_parquet(tmp_path / "out" / A.PREDICTIONS_FILE)
    assert list(predictions[A.Y_PRED]) == list(model.predict(test[["x", "t"]]))


def test_a_csv_read_in_chunks_gives_each_column_one_type(tmp_path):
    """pandas reads a wide CSV in chunks of rows by default (low_memory) and types each
    chunk alone: a column of codes whose only text value comes late came back as ints and
    strings mixed, and the constructor failed writing its Parquet artifact (pyarrow's
    ArrowInvalid). Read in one piece, it is text throughout, as the user's model saw it."""
    n = 9000  # with 65 columns pandas' chunks are 8,192 rows
    frame = pd.DataFrame({f"z{k}": np.zeros(n, dtype=int) for k in range(62)})
    rng = np.random.default_rng(0)
    frame["x"] = rng.normal(size=n)
    frame["code"] = [str(i % 7) for i in range(n - 1)] + ["A7"]
    frame["y"] = np.where(frame["x"] + rng.normal(scale=0.5, size=n) > 0, "yes", "no")
    with pytest.warns(pd.errors.DtypeWarning):  # the mix this test is about
        assert pd.api.types.infer_dtype(pd.read_csv(_csv(frame, tmp_path / "test.csv"))["code"]) == "mixed-integer"
    _csv(frame.iloc[:3000], tmp_path / "train.csv")
    read = {name: pd.read_csv(tmp_path / f"{name}.csv", low_memory=False) for name in ("train", "test")}
    model = _text_and_numbers(["x"], ["code"])
    model.fit(read["train"].drop(columns="y"), read["train"]["y"])
    joblib.dump(model, tmp_path / "model.joblib")
    options = ConstructorOptions(
        target_column="y", task_type="binary_classification", positive_label="yes", allow_pickle=True
    )
    run_constructor(
        tmp_path / "model.joblib", tmp_path / "train.csv", tmp_path / "test.csv", tmp_path / "out", options=options
    )
    stored = pd.read_parquet(tmp_path / "out" / A.TEST_FEATURES_FILE)
    assert stored["code"].map(type).eq(str).all() and stored["code"].iloc[-1] == "A7"
    y_pred = pd.read_parquet(tmp_path / "out" / A.PREDICTIONS_FILE)[A.Y_PRED]
    assert list(y_pred) == list(model.predict(read["test"].drop(columns="y")))


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_a_column_of_lists_is_refused_in_one_line(tmp_path):
    """A Parquet list column reads back as arrays in each cell; the steps failed on them
    (unhashable values)."""
    folder = tmp_path
    _small_audit(folder, pd.Series([[i, i + 1] for i in range(40)], dtype=object), dropped=True)
    options = ConstructorOptions(
        target_column="y",
        task_type="binary_classification",
        positive_label="yes",
        dropped_features=["extra"],
        allow_pickle=True,
    )
    with pytest.raises(RAIInputError, match=r"^column 'extra' of the train data holds lists or mappings \(ndarray\)"):
        run_constructor(
            folder / "model.joblib",
            folder / "train.parquet",
            folder / "test.parquet",
            tmp_path / "out",
            options=options,
        )
    assert not (tmp_path / "out").exists()


def test_a_column_mixing_numbers_and_text_is_refused_in_one_line():
    """No file load_table reads gives one (Parquet columns have one type; CSV is read in one
    piece), but a frame that does is refused before Parquet fails on it."""
    from rai_audit.steps.constructor import _check_dtypes

    train = pd.DataFrame({"code": pd.Series([1, "a", None, 2.5], dtype=object), "y": [0, 1, 0, 1]})
    with pytest.raises(
        RAIInputError,
        match=r"^column 'code' of the train data mixes value types "
        r"\(float, int, str\); give it one type",
    ):
        _check_dtypes(train, train, ["code"])
    booleans = pd.DataFrame({"flag": pd.Series([True, None, False, True], dtype=object), "y": [0, 1, 0, 1]})
    _check_dtypes(booleans, booleans, ["flag"])  # booleans with missing values, as CSV gives them: fine


def test_a_dropped_duration_column_reaches_the_page_as_text(tmp_path):
    """gather's per-row views carry every column of a row, dropped ones too; a duration
    (pandas Timedelta) was not JSON and the page failed to render (TypeError)."""
    from support import page_data

    values = NOT_FEATURES["timedelta64"](40)
    values.iloc[25] = None
    _small_audit(tmp_path, values, dropped=True)
    options = ConstructorOptions(
        target_column="y",
        task_type="binary_classification",
        positive_label="yes",
        dropped_features=["extra"],
        allow_pickle=True,
    )
    run_constructor(
        tmp_path / "model.joblib",
        tmp_path / "train.parquet",
        tmp_path / "test.parquet",
        tmp_path / "out",
        options=options,
    )
    run_explainer(tmp_path / "out", tmp_path / "explanation")
    run_gather(tmp_path / "out", [tmp_path / "explanation"], tmp_path / "dashboard")
    rows = page_data(tmp_path / "dashboard" / A.DASHBOARD_HTML_FILE)["rows"]
    test = pd.read_parquet(tmp_path / "test.parquet")
    shown = {row["row_id"]: row["features"]["extra"] for row in rows}
    assert shown == {i: None if pd.isna(test["extra"][i]) else str(test["extra"][i]) for i in range(len(test))}
    assert shown[5] is None and shown[6] == "1 days 02:00:00"  # test row 6: 26 hours


def test_parquet_decimals_are_read_as_the_numbers_they_are(tmp_path):
    """A Parquet decimal column reads back as Decimal objects, which the constructor took for
    categories: the error tree failed on them ('Circular reference detected') and so did the
    page (Decimal is not JSON)."""
    values = pd.Series([decimal.Decimal(f"{v:.2f}") for v in np.linspace(-5, 5, 40)], dtype=object)
    values.iloc[4] = None
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"t": rng.choice(TEXT, 40), "amount": values})
    frame["y"] = np.where(values.astype(float).fillna(0) + rng.normal(size=40) > 0, "yes", "no")
    frame.iloc[:20].to_parquet(tmp_path / "train.parquet", index=False)
    frame.iloc[20:].to_parquet(tmp_path / "test.parquet", index=False)
    train, test = (pd.read_parquet(tmp_path / f"{n}.parquet") for n in ("train", "test"))
    assert isinstance(test["amount"].dropna().iloc[0], decimal.Decimal)  # what the user's model sees
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        (
                            "num",
                            Pipeline([("float", FunctionTransformer(as_float)), ("impute", SimpleImputer())]),
                            ["amount"],
                        ),
                        (
                            "text",
                            Pipeline([("text", FunctionTransformer(as_text)), ("onehot", OneHotEncoder())]),
                            ["t"],
                        ),
                    ]
                ),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(train.drop(columns="y"), train["y"])
    joblib.dump(model, tmp_path / "model.joblib")
    options = ConstructorOptions(
        target_column="y",
        task_type="binary_classification",
        positive_label="yes",
        allow_pickle=True,
        cohorts=[{"name": "Positive", "filter": {"column": "amount", "op": ">", "value": 0}}],
    )
    run_constructor(
        tmp_path / "model.joblib",
        tmp_path / "train.parquet",
        tmp_path / "test.parquet",
        tmp_path / "out",
        options=options,
    )
    run_error_analysis(tmp_path / "out", tmp_path / "errors")
    run_gather(tmp_path / "out", [tmp_path / "errors"], tmp_path / "dashboard")
    meta = json.loads((tmp_path / "out" / A.META_FILE).read_text())
    assert "amount" in meta["numeric_features"]
    assert meta["cohort_sizes"] == {"Positive": int((test["amount"].astype(float) > 0).sum())}
    stored = pd.read_parquet(tmp_path / "out" / A.TEST_FEATURES_FILE)["amount"]
    assert stored.dtype == "float64" and stored.equals(test["amount"].astype(float))
    y_pred = pd.read_parquet(tmp_path / "out" / A.PREDICTIONS_FILE)[A.Y_PRED]
    assert list(y_pred) == list(model.predict(test.drop(columns="y")))
    doc = json.loads((tmp_path / "dashboard" / A.INSIGHTS_JSON_FILE).read_text())
    summary = next(f for f in doc["data_analysis"]["features"] if f["feature"] == "amount")
    assert summary["kind"] == "numeric" and summary["mean"] == pytest.approx(test["amount"].astype(float).mean())


def test_the_cli_refuses_a_date_feature_in_one_line(tmp_path, capsys):
    from rai_audit import cli

    values = NOT_FEATURES["datetime64"](40)
    _small_audit(tmp_path, values, dropped=False)
    code = cli.main(
        [
            "constructor",
            "--model",
            str(tmp_path / "model.joblib"),
            "--train",
            str(tmp_path / "train.parquet"),
            "--test",
            str(tmp_path / "test.parquet"),
            "--output",
            str(tmp_path / "out"),
            "--target-column",
            "y",
            "--task-type",
            "binary_classification",
            "--positive-label",
            "yes",
            "--allow-pickle",
        ]
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("rai-audit: error: feature 'extra' holds datetimes (in the train data)")
    assert not (tmp_path / "out").exists()
