"""The constructor step: validate model and data, predict once, write the insights artifact.

Every later step reads this artifact: the test features, the predictions and
probabilities (computed here, once, on the whole test set), the train data, a copy of
the model, the validated cohorts, and ``meta.json`` with the run id that ties all the
insights of one audit together.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from rai_audit.core import RAIInputError, served_model
from rai_audit.core import artifacts as A
from rai_audit.core._errors import as_written
from rai_audit.core.cohorts import SPECIAL_COLUMNS, cohort_frame, cohort_masks, load_cohorts
from rai_audit.core.loading import copy_model, load_table, model_file, model_format, model_sha256
from rai_audit.core.metrics import group_labels
from rai_audit.core.models import (
    download_mlflow_model,
    in_class_order,
    is_mlflow_uri,
    load_any_model,
    model_source,
    native_model,
)
from rai_audit.specs import ConstructorOptions
from rai_audit.steps._cli import add_options, options_from_args, run_cli

# Columns the artifact and the steps' tables hold beside the features: a feature of the same
# name would collide with them (gather's predictions table fails to write as Parquet, or a
# step's table silently replaces the feature's values). proba_<n> (A.proba_column) too, any n.
# Literals for the steps' own names: the constructor's image does not hold their libraries.
RESERVED_COLUMNS = (
    *SPECIAL_COLUMNS,
    A.ROW_ID,
    A.IN_SAMPLE,
    "class",  # explainer: local_importance.parquet
    "cf_index",
    "prediction",
    "valid",  # counterfactual: counterfactuals.parquet
    "_error",
)  # error analysis: its heatmap table
RESERVED_PATTERN = re.compile(rf"{re.escape(A.PROBA_PREFIX)}\d+")
# Names the dashboard gives its built-in cohort views: a user cohort of the same name would
# take the place of the built-in view (its figures shown as those of all data or of a group).
ALL_DATA_VIEW = "All data"
GROUP_VIEW = "{feature} = {group}"  # one per sensitive group (gather)
ERROR_LEAF_PREFIX = "Error tree: "  # the error tree's worst and best leaves (error analysis)
# Most groups a sensitive feature may have (after binning a numeric one); see docs/artifacts.md.
MAX_SENSITIVE_GROUPS = 100


@dataclass
class ConstructorResult:
    run_id: str
    task_type: str
    n_train: int
    n_test: int
    n_sample: int
    classes: list[Any] | None


def _check_columns(train: pd.DataFrame, test: pd.DataFrame, options: ConstructorOptions) -> list[str]:
    target = options.target_column
    for name, frame in (("train", train), ("test", test)):
        if target not in frame.columns:
            raise RAIInputError(
                f"`target_column` {target!r} is not a column of the {name} data; "
                f"its columns are {list(map(str, frame.columns))}"
            )
        if frame.columns.duplicated().any():
            raise RAIInputError(
                f"the {name} data has duplicate column names {sorted(set(frame.columns[frame.columns.duplicated()]))}"
            )
    columns = [c for c in train.columns if c != target]
    missing = [c for c in columns if c not in test.columns]
    extra = [c for c in test.columns if c not in columns and c != target]
    if missing or extra:
        raise RAIInputError(
            "train and test data must have the same columns; "
            + "; ".join(
                p
                for p in (f"missing in test: {missing}" if missing else "", f"only in test: {extra}" if extra else "")
                if p
            )
        )
    reserved = [c for c in columns if is_reserved_column(c)]
    if reserved:
        raise RAIInputError(
            f"feature names {reserved} are reserved for the audit's own columns "
            f"({[*RESERVED_COLUMNS, A.PROBA_PREFIX + '<n>']}); rename these columns"
        )
    for option in ("sensitive_features", "dropped_features", "categorical_features", "immutable_features"):
        unknown = [c for c in (getattr(options, option) or []) if c not in columns]
        if unknown:
            raise RAIInputError(
                f"`{option}` names columns that are not in the data: {unknown}; the feature columns are {columns}"
            )
    n_missing_target = int(test[target].isna().sum())
    if n_missing_target:
        raise RAIInputError(
            f"the test data has {n_missing_target} rows with no `{target}` value; drop them or fill them in"
        )
    check_cohort_names(load_cohorts(options.cohorts), options.sensitive_features)
    return columns


def is_reserved_column(name: Any) -> bool:
    return name in RESERVED_COLUMNS or (isinstance(name, str) and RESERVED_PATTERN.fullmatch(name) is not None)


def reserved_cohort_name(name: Any, sensitive_features: list[Any]) -> bool:
    """Whether a user cohort's name is (or looks like) one of the dashboard's built-in views."""
    if not isinstance(name, str):
        return False
    groups = [GROUP_VIEW.format(feature=f, group="") for f in sensitive_features if isinstance(f, str)]
    return name == ALL_DATA_VIEW or name.startswith((ERROR_LEAF_PREFIX, *groups))


def check_cohort_names(cohorts: list[dict[str, Any]], sensitive_features: list[Any]) -> None:
    """Refuse user cohorts named like a built-in view: the page and the scorecard look views
    up by name, so the cohort's figures would silently replace the built-in ones."""
    for cohort in cohorts:
        if reserved_cohort_name(cohort.get("name"), sensitive_features):
            raise RAIInputError(
                f"cohort name {cohort['name']!r} is reserved: the dashboard names its own views "
                f"{ALL_DATA_VIEW!r}, '<feature> = <group>' for each sensitive feature's groups and "
                f"'{ERROR_LEAF_PREFIX}...' for the error tree's leaves; give the cohort another name"
            )


def _check_sensitive_groups(test: pd.DataFrame, sensitive: list[str]) -> None:
    """Refuse a sensitive feature with more groups than MAX_SENSITIVE_GROUPS (numeric ones
    are binned first): fairness per group of an id-like column means nothing, and gather
    builds one view per group (minutes for thousands)."""
    for name in sensitive:
        if test[name].nunique(dropna=False) <= MAX_SENSITIVE_GROUPS:
            continue  # cheap test first; binning can only lower the count
        n = group_labels(test[name])[0].nunique()
        if n > MAX_SENSITIVE_GROUPS:
            raise RAIInputError(
                f"`sensitive_features`: {name!r} has {n} distinct values in the test data, more than "
                f"{MAX_SENSITIVE_GROUPS} groups; group its values into fewer (e.g. bins or broader "
                "categories) or drop it from `sensitive_features`"
            )


# pandas.api.types.infer_dtype's names (plus the dtypes') of what the analyses cannot take.
DATETIME_KINDS = {
    "datetime64": "datetimes",
    "datetime": "datetimes",
    "date": "dates",
    "time": "times of day",
    "timedelta64": "durations",
    "timedelta": "durations",
    "period": "periods",
}
MIXED_KINDS = ("mixed", "mixed-integer")
NOT_SCALAR = (list, tuple, dict, set, np.ndarray)


def _value_kind(values: pd.Series) -> str:
    """What a column holds: its dtype's kind, or for object columns the type of their values
    as ``pandas.api.types.infer_dtype`` names it (missing values skipped); a category column
    by its categories."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.cat.categories.to_series()
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime64"
    if pd.api.types.is_timedelta64_dtype(values):
        return "timedelta64"
    if isinstance(values.dtype, pd.PeriodDtype):
        return "period"
    if values.dtype != object:
        return str(values.dtype)
    return pd.api.types.infer_dtype(values, skipna=True)


def _check_dtypes(train: pd.DataFrame, test: pd.DataFrame, model_features: list[str]) -> None:
    """Refuse, before anything runs, the columns no step can take: a model feature of dates,
    times, durations or bytes (the error tree, explainer, counterfactuals and causal analysis
    need numbers or categories; dropped, such a column stays for cohorts), and any column mixing
    value types (e.g. numbers and text) or holding lists or mappings, which the artifact's
    Parquet files cannot store."""
    for name, frame in (("train", train), ("test", test)):
        for column in frame.columns:
            values = frame[column]
            kind = _value_kind(values)
            if kind in MIXED_KINDS:
                types = sorted({type(v).__name__ for v in values.dropna()})
                if any(isinstance(v, NOT_SCALAR) for v in values.dropna()):
                    raise RAIInputError(
                        f"column {column!r} of the {name} data holds lists or mappings ({', '.join(types)}), "
                        "as a Parquet list or struct column does; the audit takes one number or text per "
                        "cell: flatten it into columns of their own or drop it from the data"
                    )
                raise RAIInputError(
                    f"column {column!r} of the {name} data mixes value types ({', '.join(types)}); give it "
                    "one type: numbers, or text (e.g. read it with dtype=str), as the model was trained on"
                )
            if kind == "bytes" and column in model_features:
                raise RAIInputError(
                    f"feature {column!r} holds bytes (in the {name} data), as a Parquet binary column does, "
                    "which the analyses cannot take as a model feature; write it as text (UTF-8 strings), or "
                    "list it in `dropped_features` to keep it for cohorts only"
                )
            if kind in DATETIME_KINDS and column in model_features:
                raise RAIInputError(
                    f"feature {column!r} holds {DATETIME_KINDS[kind]} (in the {name} data), which the analyses "
                    "cannot take as a model feature; give the model numbers derived from it (e.g. days since a "
                    "date), or list it in `dropped_features` to keep it for cohorts only"
                )


def _same_label(value: Any, label: Any) -> bool:
    """Whether a user-given label is this one; KFP turns ints in lists into floats."""
    if value == label or str(value) == str(label):
        return True
    return isinstance(value, float) and value.is_integer() and str(int(value)) == str(label)


def _match_label(value: Any, labels: list[Any], what: str) -> Any:
    """Map a user-given label to the observed one; KFP turns ints in lists into floats."""
    for label in labels:
        if _same_label(value, label):
            return label
    raise RAIInputError(f"{what} {as_written(value)!r} is not one of the classes {_few(labels, 20)}")


def _booster_classes(y_train: pd.Series, y_test: pd.Series, options: ConstructorOptions) -> list[Any] | None:
    """The labels a model that holds none (a booster, an ONNX probability tensor) is given:
    class k is the k-th. ``classes`` if set (as the observed labels), else the sorted train
    labels, as XGBoost's and LightGBM's scikit-learn classes number them when they train."""
    if options.task_type == "regression":
        return None
    observed = pd.unique(pd.concat([y_train.dropna(), y_test], ignore_index=True)).tolist()
    if options.classes:
        # As the data writes them; one the data lacks is left to _resolve_classes to refuse.
        return [next((o for o in observed if _same_label(c, o)), c) for c in options.classes]
    return sorted(pd.unique(y_train.dropna()).tolist(), key=lambda v: (str(type(v)), v))


def _resolve_classes(
    model: Any, y_train: pd.Series, y_test: pd.Series, options: ConstructorOptions
) -> tuple[str, list[Any], Any]:
    observed = pd.unique(pd.concat([y_train.dropna(), y_test], ignore_index=True))
    model_classes = list(getattr(model, "classes_", []))
    classes = model_classes or sorted(observed.tolist(), key=lambda v: (str(type(v)), v))
    if options.classes:
        given = [_match_label(c, classes, "class") for c in options.classes]
        if sorted(map(str, given)) != sorted(map(str, classes)) or len(given) != len(classes):
            raise RAIInputError(
                f"`classes` {as_written(list(options.classes))} do not match the model's classes {_few(classes, 20)}"
            )
        classes = given
    unknown = sorted({str(v) for v in y_test.unique()} - {str(c) for c in classes})
    if unknown:
        raise RAIInputError(f"the test labels {_few(unknown)} are not among the model's classes {_few(classes)}")
    if len(classes) < 2:
        raise RAIInputError(f"classification needs at least 2 classes, got {_few(classes)}")
    # Numbers with fractions and no classes from the model: a regression target, not labels.
    continuous = (
        not model_classes
        and pd.api.types.is_float_dtype(observed.dtype)
        and not np.all(np.mod(observed.astype(float), 1) == 0)
    )
    regression_hint = (
        f"`{options.target_column}` holds continuous numbers ({len(classes)} distinct values, "
        f"such as {', '.join(map(repr, classes[:3]))}): use task_type regression"
    )
    task = options.task_type
    if task == "classification":
        task = "binary_classification" if len(classes) == 2 else "multiclass_classification"
    if task == "binary_classification" and len(classes) != 2:
        raise RAIInputError(
            f"`task_type` binary_classification needs exactly 2 classes, got {len(classes)}"
            + (f"; {regression_hint}" if continuous else f": {_few(classes)}; use multiclass_classification")
        )
    if continuous:
        raise RAIInputError(f"`task_type` {options.task_type} needs class labels, but {regression_hint}")
    positive = None
    if task == "binary_classification":
        positive = (
            classes[1]
            if options.positive_label in (None, "")
            else _match_label(options.positive_label, classes, "`positive_label`")
        )
    elif options.positive_label not in (None, ""):
        raise RAIInputError("`positive_label` applies to binary classification only")
    return task, classes, positive


def _unseen_values(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, str]:
    """Per text/categorical column, the test values that train never holds (a few of each, as text)."""
    unseen = {}
    for c in test.columns:
        if pd.api.types.is_numeric_dtype(test[c]) and not pd.api.types.is_bool_dtype(test[c]):
            continue
        seen = set(map(str, train[c].dropna().unique()))  # as text: safe for mixed types
        new = sorted({str(v) for v in test[c].dropna().unique()} - seen)
        if new:
            unseen[c] = _few(new)
    return unseen


def _few(values: list[Any], n: int = 5) -> str:
    """A list for a message: in full if short, else its first ``n`` and the count."""
    values = as_written(list(values))
    if len(values) <= n:
        return repr(values)
    return f"[{', '.join(map(repr, values[:n]))}, ...] ({len(values)} in all)"


# Rows an in-process model is given at a time: a pipeline's transform holds all its rows at
# once (for a million Adult rows, its dense one-hot matrix took the step from 0.7 to 2.4 GB).
# Rows are predicted one by one, so chunks give the same values; a served model sends its
# own batches.
PREDICT_CHUNK_ROWS = 100_000


def _in_chunks(method: Any, X: pd.DataFrame, *, served: bool) -> np.ndarray:
    """``method(X)`` as an array, called on PREDICT_CHUNK_ROWS rows at a time."""
    if served or len(X) <= PREDICT_CHUNK_ROWS:
        return np.asarray(method(X))
    parts = []
    for start in range(0, len(X), PREDICT_CHUNK_ROWS):
        chunk = X.iloc[start : start + PREDICT_CHUNK_ROWS]
        part = np.asarray(method(chunk))
        if part.ndim == 0 or len(part) != len(chunk):
            raise RAIInputError(
                f"the model's {getattr(method, '__name__', 'predict')}() must return one row per row given, "
                f"got shape {part.shape} for rows {start} to {start + len(chunk) - 1} of the test data"
            )
        parts.append(part)
    return np.concatenate(parts)


def _predict(
    model: Any, X: pd.DataFrame, task: str, classes: list[Any] | None, *, train: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray | None]:
    served = served_model.is_served(model)
    try:
        y_pred = _in_chunks(model.predict, X, served=served)
    except RAIInputError:  # a served model's endpoint or an adapter, in its own words
        raise
    except Exception as err:  # any failure inside the user's model
        # An encoder's message names its own column index ("column 0"); name the columns.
        unseen = _unseen_values(train[X.columns], X)
        hint = (
            (
                "; the test data has values that the train data never holds: "
                + "; ".join(f"`{c}`: {v}" for c, v in unseen.items())
            )
            if unseen
            else ""
        )
        raise RAIInputError(
            f"the model could not predict on the test data ({type(err).__name__}: {err}){hint}; "
            "check that the features, their names and types are those the model was trained on"
        ) from err
    if y_pred.ndim != 1 or len(y_pred) != len(X):
        raise RAIInputError(f"the model's predict() must return one value per row ({len(X)}), got shape {y_pred.shape}")
    if task == "regression":
        if not np.issubdtype(y_pred.dtype, np.number):
            raise RAIInputError(f"a regression model must predict numbers, got dtype {y_pred.dtype}")
        y_pred = y_pred.astype(float)
        bad = int((~np.isfinite(y_pred)).sum())
        if bad:  # every later figure (errors, metrics, histograms) would be NaN or fail
            raise RAIInputError(
                f"the model ({type(model).__name__}) predicted NaN or infinity for {bad} of "
                f"{len(y_pred)} test rows; a regression model must predict finite numbers"
            )
        return y_pred, None
    classes = cast(list[Any], classes)  # a classifier: _resolve_classes gave its classes
    unknown = sorted({str(v) for v in pd.unique(y_pred)} - {str(c) for c in classes})
    if unknown:
        raise RAIInputError(f"the model predicts labels {_few(unknown)} that are not among the classes {_few(classes)}")
    if not hasattr(model, "predict_proba"):
        return y_pred, None
    try:
        proba = np.asarray(_in_chunks(model.predict_proba, X, served=served), dtype=float)
    except RAIInputError:
        raise
    except Exception as err:
        raise RAIInputError(f"the model's predict_proba failed on the test data: {err}") from err
    model_classes = list(getattr(model, "classes_", classes))
    if proba.shape != (len(X), len(model_classes)):
        raise RAIInputError(f"predict_proba must return shape ({len(X)}, {len(model_classes)}), got {proba.shape}")
    return y_pred, in_class_order(proba, model, classes)


def _stratified_sample(y: pd.Series, size: int, seed: int, stratify: bool) -> np.ndarray:
    """Boolean mask of a seeded sample of ``size`` rows, stratified on y for classification."""
    n = len(y)
    mask = np.zeros(n, dtype=bool)
    if size == 0 or size >= n:
        mask[:] = True
        return mask
    rng = np.random.default_rng(seed)
    if not stratify:
        mask[rng.choice(n, size=size, replace=False)] = True
        return mask
    codes, _ = pd.factorize(y)
    counts = np.bincount(codes)
    # Largest-remainder allocation keeps the total exactly `size`.
    quota = counts * size / n
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take))[: size - take.sum()]] += 1
    # A class with rows keeps one in the sample when there is room for one of each: rounding
    # would drop a rare class (the only positive row) from every per-row step.
    if size >= len(counts):
        for empty in np.flatnonzero(take == 0):
            take[np.argmax(take)] -= 1  # some class has two or more: size >= classes
            take[empty] = 1
    for code, k in enumerate(take):
        rows = np.flatnonzero(codes == code)
        mask[rng.choice(rows, size=min(k, len(rows)), replace=False)] = True
    return mask


def run_constructor(
    model_path: str | Path | None,
    train_path: str | Path,
    test_path: str | Path,
    output_dir: str | Path,
    *,
    options: ConstructorOptions,
    input_fingerprint: str = "",
    mlflow_tracking_uri: str | None = None,
) -> ConstructorResult:
    """Validate inputs, predict on the whole test set, and write the insights artifact.

    ``model_path`` is a model file or folder (``rai_audit.core.models`` lists what is read), or
    an MLflow ``models:/`` / ``runs:/`` URI, resolved at ``mlflow_tracking_uri`` (else
    MLFLOW_TRACKING_URI) and copied whole into the artifact as the model folder it names.
    ``input_fingerprint`` (the pipeline's content fingerprint of model and data, see
    ``rai_audit.core.fingerprint``) is only recorded in meta.json; it changes no result.
    """
    if options.mlflow_model_uri:  # the model artifact (a stand-in) is not read
        model_path = options.mlflow_model_uri
        mlflow_tracking_uri = options.mlflow_tracking_uri or mlflow_tracking_uri
    if is_mlflow_uri(model_path):
        with tempfile.TemporaryDirectory(prefix="rai-audit-mlflow-") as scratch:
            folder = download_mlflow_model(str(model_path), scratch, tracking_uri=mlflow_tracking_uri)
            # The options keep the URI for meta.json; the folder is the model from here on.
            return _construct(folder, train_path, test_path, output_dir, options, input_fingerprint)
    endpoint = options.endpoint()
    given = served_model.descriptor_file(model_path)  # the user's own endpoint descriptor, if that
    if not served_model.is_scratch(model_path) and (endpoint is not None or given is not None):
        # A served model: a descriptor in a scratch folder stands for the model file (the one
        # in model_path is not read, nor a descriptor given rewritten); the artifact gets a
        # copy with what the endpoint turns out to answer.
        with tempfile.TemporaryDirectory(prefix=served_model.SCRATCH_PREFIX) as scratch:
            descriptor = Path(scratch) / served_model.DESCRIPTOR_FILE
            if endpoint is not None:
                served_model.write_endpoint(endpoint, descriptor, classifier=options.task_type != "regression")
            else:
                descriptor.write_bytes(cast(Path, given).read_bytes())
            return run_constructor(
                descriptor, train_path, test_path, output_dir, options=options, input_fingerprint=input_fingerprint
            )
    return _construct(model_path, train_path, test_path, output_dir, options, input_fingerprint)


def _construct(
    model_path: str | Path | None,
    train_path: str | Path,
    test_path: str | Path,
    output_dir: str | Path,
    options: ConstructorOptions,
    input_fingerprint: str,
) -> ConstructorResult:
    """``run_constructor``'s work on a model file or folder (or a served model's descriptor)."""
    if model_path in (None, ""):
        raise RAIInputError("give the model: a model file, or the URL of a served model as `model_endpoint`")
    train = load_table(train_path, what="train data")
    test = load_table(test_path, what="test data")
    columns = _check_columns(train, test, options)
    _check_dtypes(train, test, [c for c in columns if c not in options.dropped_features])
    _check_sensitive_groups(test, options.sensitive_features)
    target = options.target_column
    load_classes = _booster_classes(train[target], test[target], options)
    model = load_any_model(
        model_path,
        skops_trusted_types=options.skops_trusted_types,
        allow_pickle=options.allow_pickle,
        classes=load_classes,
    )
    model_features = [c for c in columns if c not in options.dropped_features]
    X_test = test[model_features]
    y_test = test[target].reset_index(drop=True)

    if options.task_type == "regression":
        if not pd.api.types.is_numeric_dtype(y_test):
            raise RAIInputError(f"regression needs a numeric `{target}`, got dtype {y_test.dtype}")
        task, classes, positive = "regression", None, None
    else:
        task, classes, positive = _resolve_classes(model, train[target], y_test, options)
    served = served_model.is_served(model)
    if served and classes is not None:  # an endpoint names no classes: its probabilities follow these
        model.classes_ = np.asarray(classes, dtype=object)
    y_pred, proba = _predict(model, X_test, task, classes, train=train)
    if served:  # the descriptor copied into the artifact: with the classes and outputs found
        served_model.settle(model, y_pred, proba, cast(Path, model_path))

    categorical = (
        list(options.categorical_features)
        if options.categorical_features is not None
        else [c for c in columns if not pd.api.types.is_numeric_dtype(train[c]) or pd.api.types.is_bool_dtype(train[c])]
    )
    cohorts = load_cohorts(options.cohorts)
    frame = cohort_frame(test[columns], y_test, y_pred, is_classifier=task != "regression")
    masks = cohort_masks(cohorts, frame)  # validates every filter against the data
    sample = _stratified_sample(y_test, options.sample_size, options.random_state, stratify=task != "regression")

    run_id = str(uuid.uuid4())
    model_src = model_file(model_path)
    with A.artifact_writer(Path(output_dir)) as out:
        predictions = pd.DataFrame({A.ROW_ID: np.arange(len(test)), A.Y_TRUE: y_test, A.Y_PRED: y_pred})
        if proba is not None:
            for i in range(proba.shape[1]):
                predictions[A.proba_column(i)] = proba[:, i]
        predictions[A.IN_SAMPLE] = sample
        A.write_parquet(predictions, out / A.PREDICTIONS_FILE)
        A.write_parquet(test[columns].reset_index(drop=True), out / A.TEST_FEATURES_FILE)
        A.write_parquet(train.reset_index(drop=True), out / A.TRAIN_FILE)
        (out / A.MODEL_DIR).mkdir()
        copy_model(model_src, out / A.MODEL_DIR)  # an MLflow model folder whole
        A.write_json(out / A.COHORTS_FILE, {"cohorts": cohorts})
        meta = A.new_meta(
            A.KIND_CONSTRUCTOR,
            run_id,
            task_type=task,
            target_column=target,
            features=columns,
            model_features=model_features,
            categorical_features=categorical,
            numeric_features=[c for c in columns if c not in categorical],
            sensitive_features=list(options.sensitive_features),
            immutable_features=list(options.immutable_features),
            desired_outcome=options.desired_outcome,
            min_group_size=options.min_group_size,
            dropped_features=list(options.dropped_features),
            classes=classes,
            positive_label=positive,
            has_probabilities=proba is not None,
            n_train=len(train),
            n_test=len(test),
            sample={
                "size": int(sample.sum()),
                "requested": options.sample_size,
                "seed": options.random_state,
                "stratified": task != "regression",
            },
            dashboard_rows=options.dashboard_rows,
            cohort_sizes={name: int(mask.sum()) for name, mask in masks.items()},
            model={
                "file": f"{A.MODEL_DIR}/{model_src.name}",
                "sha256": model_sha256(model_src),
                "class": f"{type(native_model(model)).__module__}.{type(native_model(model)).__qualname__}",
                "format": model_format(model_src),
                "source": model_source(model),
                # What a booster's outputs are numbered by: the later steps load it the same way.
                "load_classes": load_classes,
                "skops_trusted_types": list(options.skops_trusted_types),
                "allow_pickle": options.allow_pickle,
            },
            options={k: v for k, v in asdict(options).items() if k != "cohorts"},
            input_fingerprint=input_fingerprint,
            **({"model_calls": served_model.model_calls(model)} if served else {}),
        )
        A.write_json(out / A.META_FILE, meta)
    return ConstructorResult(run_id, task, len(train), len(test), int(sample.sum()), classes)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rai-audit constructor", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model file (.joblib, .pkl, .skops); none with --model-endpoint")
    p.add_argument("--train", required=True, help="train data (.parquet or .csv)")
    p.add_argument("--test", required=True, help="test data (.parquet or .csv)")
    p.add_argument("--output", required=True, help="artifact folder to create")
    p.add_argument("--cohorts", default=None, help="cohort JSON file")
    add_options(p, "constructor")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def action() -> None:
        options = options_from_args("constructor", vars(args), cohorts=args.cohorts)
        result = run_constructor(args.model, args.train, args.test, args.output, options=options)
        print(f"insights artifact written to {args.output} (run id {result.run_id})")

    return run_cli(action)


if __name__ == "__main__":
    raise SystemExit(main())
