"""One model interface for every step, whatever the model was saved as.

Every step calls the model as scikit-learn does: ``predict(X)`` on a DataFrame of the model
features, ``predict_proba(X)`` (only where the model has probabilities: ``hasattr`` is False
otherwise) with its columns in ``classes_`` order. A scikit-learn model (skops, joblib,
pickle) is that already and is used as loaded. Every other source is wrapped in a
``ModelAdapter`` saying where it comes from (``source``) and holding the library's own
model (``native``), which the explainer gives to an exact method (tree SHAP) where one fits.

Sources, recognised by content (``loading.model_format``), never by name alone:

- skops / joblib / pickle: ``loading.load_model`` (today's rules: pickles need ``allow_pickle``).
- MLflow: a model folder holding ``MLmodel``, or a ``models:/`` / ``runs:/`` URI (with a
  tracking URI); the sklearn, xgboost and lightgbm flavours load their native model, the
  onnx flavour its ONNX file, any other model is used through pyfunc as a predictor.
- ONNX (onnxruntime): one tensor per column (skl2onnx pipelines) or one float tensor of all
  features; label and probability outputs (ZipMap or tensor) mapped to the classes.
- Native boosters: XGBoost (UBJSON, JSON), LightGBM (text), CatBoost (CBM), with their own
  libraries. A booster holds no label names (CatBoost aside): its class k is ``classes[k]``,
  the classes the loader is given (the constructor gives ``classes`` if set, else the sorted
  train labels, as XGBoost's and LightGBM's scikit-learn classes number them).
- A served model: a JSON file ``{"endpoint": ...}`` is handed to
  ``rai_audit.core.served_model.load_endpoint``.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rai_audit.core._errors import RAIInputError
from rai_audit.core.loading import (
    CATBOOST,
    ENDPOINT,
    JOBLIB,
    LIGHTGBM,
    MLFLOW,
    ONNX,
    PICKLE,
    SKOPS,
    XGBOOST_JSON,
    XGBOOST_UBJ,
    model_file,
    model_format,
)
from rai_audit.core.loading import load_model as load_sklearn_model

MLFLOW_URI_SCHEMES = ("models:/", "runs:/")
BOOSTERS = (XGBOOST_UBJ, XGBOOST_JSON, LIGHTGBM, CATBOOST)
CATBOOST_CLASSIFIER_LOSSES = ("Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll")


def is_mlflow_uri(source: object) -> bool:
    return isinstance(source, str) and source.startswith(MLFLOW_URI_SCHEMES)


class ModelAdapter:
    """A model that is not a scikit-learn estimator, called as one.

    ``predict`` takes a DataFrame (or an array in ``feature_names_in_`` order) and returns
    one value per row: class labels (from ``classes_``) or numbers. ``source`` says what the
    model is; ``native`` is the library's own model; ``feature_types`` maps each input
    feature to ``numeric`` or ``text`` where the file says.
    """

    def __init__(
        self,
        *,
        source: str,
        native: Any,
        predict: Callable[[pd.DataFrame], Any],
        classes: Sequence[Any] | None = None,
        feature_names: Sequence[str] | None = None,
        feature_types: dict[str, str] | None = None,
        reload: Callable[[], ModelAdapter] | None = None,
        sklearn_api: bool = False,
    ) -> None:
        self.source = source
        # Whether ``native`` is a scikit-learn-API model the explainer may take as it is.
        self.sklearn_api = sklearn_api
        self.native = native
        self._predict = predict
        if classes is not None:
            self.classes_ = np.asarray(list(classes), dtype=object if _mixed(classes) else None)
        if feature_names is not None:
            self.feature_names_in_ = np.asarray(list(feature_names), dtype=object)
        self.feature_types = dict(feature_types or {})
        self._reload = reload

    @property
    def is_classifier(self) -> bool:
        return hasattr(self, "classes_")

    def __repr__(self) -> str:
        return f"ModelAdapter({self.source}: {type(self.native).__module__}.{type(self.native).__qualname__})"

    def __reduce__(self) -> Any:
        # A library session (onnxruntime, a booster handle) does not pickle: a process that
        # gets the model (joblib's workers) loads it again from its file.
        if self._reload is None:
            raise TypeError(f"{self!r} cannot be pickled")
        return (_call, (self._reload,))

    def frame(self, X: Any) -> pd.DataFrame:
        """X as a DataFrame of the model's features in the model's order."""
        names = getattr(self, "feature_names_in_", None)
        if not isinstance(X, pd.DataFrame):
            X = np.asarray(X)
            if X.ndim == 1:
                X = X.reshape(1, -1)
            if names is not None and X.shape[1] == len(names):
                return pd.DataFrame(X, columns=list(names))
            return pd.DataFrame(X)
        if names is None:
            return X
        missing = [n for n in names if n not in X.columns]
        if missing:
            raise RAIInputError(
                f"the {self.source} model needs the features {missing}, which are not columns of the data "
                f"(its features are {list(names)}; the data's columns are {list(map(str, X.columns))})"
            )
        return X[list(names)]

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self._predict(self.frame(X)))


class ProbabilisticModelAdapter(ModelAdapter):
    """A ModelAdapter whose model gives class probabilities (columns in ``classes_`` order)."""

    def __init__(self, *, predict_proba: Callable[[pd.DataFrame], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._predict_proba = predict_proba

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self._predict_proba(self.frame(X)), dtype=float)


def _call(function: Callable[[], Any]) -> Any:
    return function()


def _mixed(values: Sequence[Any]) -> bool:
    return len({type(v) for v in values}) > 1


def native_model(model: Any) -> Any:
    """The library's own model behind an adapter (the model itself if not wrapped)."""
    return model.native if isinstance(model, ModelAdapter) else model


def in_class_order(proba: np.ndarray, model: Any, classes: Sequence[Any]) -> np.ndarray:
    """``predict_proba``'s columns (in the model's ``classes_`` order, if it has one) reordered
    into the run's class order; classes are matched by their text, as labels are everywhere."""
    model_classes = [str(c) for c in getattr(model, "classes_", classes)]
    return proba[:, [model_classes.index(str(c)) for c in classes]]


def model_source(model: Any) -> str:
    """What a loaded model is, for meta.json and the explainer's notes."""
    if isinstance(model, ModelAdapter):
        return model.source
    return "scikit-learn"


# --- dispatch ---------------------------------------------------------------------------------


def load_any_model(
    source: str | Path,
    *,
    skops_trusted_types: list[str] | None = None,
    allow_pickle: bool = False,
    classes: Sequence[Any] | None = None,
    mlflow_tracking_uri: str | None = None,
) -> Any:
    """Load a model from a file, a folder or an MLflow URI, detected from its content.

    ``classes`` numbers a booster's (or an ONNX tensor's) outputs: class k is ``classes[k]``.
    A file whose content is a JSON endpoint descriptor goes to the served-model adapter.
    """
    if is_mlflow_uri(source):
        return load_mlflow(
            str(source),
            tracking_uri=mlflow_tracking_uri,
            skops_trusted_types=skops_trusted_types,
            allow_pickle=allow_pickle,
            classes=classes,
        )
    path = model_file(source)
    found = model_format(path)
    if found in (SKOPS, PICKLE, JOBLIB, None):
        return load_sklearn_model(path, skops_trusted_types=skops_trusted_types, allow_pickle=allow_pickle)
    if found == ENDPOINT:
        # Imported only for an endpoint-backed audit (and by name: it is another module's).
        served_model = importlib.import_module("rai_audit.core.served_model")
        return served_model.load_endpoint(path)
    if found == MLFLOW:
        return load_mlflow_folder(
            path, skops_trusted_types=skops_trusted_types, allow_pickle=allow_pickle, classes=classes
        )
    if found == ONNX:
        return load_onnx(path, classes=classes)
    return load_booster(path, found, classes=classes)


def _reloader(path: Path, **kwargs: Any) -> Callable[[], ModelAdapter]:
    return functools.partial(load_any_model, str(path), **kwargs)


def _missing_library(path: Path | str, what: str, package: str, extra: str, err: ImportError) -> RAIInputError:
    return RAIInputError(
        f"model {path} is {what} (detected from its content), which needs the Python package {package!r} "
        f"({type(err).__name__}: {err}); install rai-audit[{extra}] in this step's environment or image"
    )


# --- boosters ---------------------------------------------------------------------------------


def _booster_classes(path: Path, what: str, n_classes: int, classes: Sequence[Any] | None) -> list[Any]:
    if classes is None:
        return list(range(n_classes))
    classes = list(classes)
    if len(classes) != n_classes:
        raise RAIInputError(
            f"model file {path} is {what} with {n_classes} classes, but it was given {len(classes)} classes "
            f"{classes[:20]} (the `classes` option, else the sorted train labels); a booster's class k is "
            "the k-th of them: give `classes` in the order the booster was trained with"
        )
    return classes


def _categories(X: pd.DataFrame) -> pd.DataFrame:
    """Text columns as pandas categories, which XGBoost and LightGBM read as categorical."""
    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])]
    if not text:
        return X
    return X.assign(**{str(c): X[c].astype("category") for c in text})


def _binary_or_multi(
    source: str, native: Any, raw: Callable[[pd.DataFrame], np.ndarray], classes: list[Any], **kwargs: Any
) -> ProbabilisticModelAdapter:
    """A classifier whose library gives P(class 1) for two classes, (rows, classes) for more."""

    def proba(X: pd.DataFrame) -> np.ndarray:
        p = np.asarray(raw(X), dtype=float)
        if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
            p = p.reshape(-1)
            return np.column_stack([1 - p, p])
        return p

    labels = np.asarray(classes, dtype=object)

    def predict(X: pd.DataFrame) -> np.ndarray:
        picked = labels[np.argmax(proba(X), axis=1)]
        return np.asarray(picked.tolist())

    return ProbabilisticModelAdapter(
        source=source, native=native, predict=predict, predict_proba=proba, classes=classes, **kwargs
    )


def load_booster(path: Path, found: str, *, classes: Sequence[Any] | None = None) -> ModelAdapter:
    """An XGBoost, LightGBM or CatBoost booster file, loaded by its own library (no pickle)."""
    reload = _reloader(path, classes=None if classes is None else list(classes))
    if found in (XGBOOST_UBJ, XGBOOST_JSON):
        return _load_xgboost(path, found, classes, reload)
    if found == LIGHTGBM:
        return _load_lightgbm(path, classes, reload)
    return _load_catboost(path, classes, reload)


def _load_xgboost(
    path: Path, found: str, classes: Sequence[Any] | None, reload: Callable[[], ModelAdapter]
) -> ModelAdapter:
    try:
        import xgboost
    except ImportError as err:
        raise _missing_library(path, f"an {found}", "xgboost", "models-boosters", err) from err
    booster = xgboost.Booster()
    try:
        booster.load_model(str(path))
    except xgboost.core.XGBoostError as err:
        raise RAIInputError(f"model file {path} looks like an {found} but XGBoost could not load it: {err}") from err
    config = json.loads(booster.save_config())["learner"]
    objective = config["objective"]["name"]
    n_classes = int(config["learner_model_param"].get("num_class", "0")) or 2
    names = booster.feature_names
    kwargs: dict[str, Any] = {"feature_names": names, "reload": reload}
    source = "xgboost booster"

    def raw(X: pd.DataFrame) -> np.ndarray:
        return np.asarray(booster.inplace_predict(_categories(X)))

    if objective in ("binary:logistic", "multi:softprob"):
        return _binary_or_multi(source, booster, raw, _booster_classes(path, found, n_classes, classes), **kwargs)
    if objective == "multi:softmax":  # class indices, no probabilities
        labels = np.asarray(_booster_classes(path, found, n_classes, classes), dtype=object)
        return ModelAdapter(
            source=source,
            native=booster,
            predict=lambda X: np.asarray(labels[raw(X).astype(int)].tolist()),
            classes=list(labels),
            **kwargs,
        )
    if objective.startswith(("reg:", "count:", "survival:")) or objective in ("binary:logitraw",):
        if objective == "binary:logitraw":
            raise RAIInputError(
                f"model file {path} is an XGBoost booster with objective binary:logitraw (scores, no classes "
                "nor probabilities); retrain with binary:logistic"
            )
        return ModelAdapter(source=source, native=booster, predict=raw, **kwargs)
    raise RAIInputError(
        f"model file {path} is an XGBoost booster with objective {objective!r}, which the audit cannot take "
        "(it takes binary:logistic, multi:softprob, multi:softmax and regression objectives)"
    )


def _lightgbm_header(path: Path) -> dict[str, str]:
    """The ``key=value`` lines before the first tree of a LightGBM text model."""
    header: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("Tree="):
                break
            key, sep, value = line.rstrip("\n").partition("=")
            if sep:
                header[key] = value
    return header


def _load_lightgbm(path: Path, classes: Sequence[Any] | None, reload: Callable[[], ModelAdapter]) -> ModelAdapter:
    try:
        import lightgbm
    except ImportError as err:
        raise _missing_library(path, "a LightGBM text model", "lightgbm", "models-boosters", err) from err
    try:
        booster = lightgbm.Booster(model_file=str(path))
    except lightgbm.basic.LightGBMError as err:
        raise RAIInputError(
            f"model file {path} looks like a LightGBM text model but LightGBM could not load it: {err}"
        ) from err
    header = _lightgbm_header(path)
    objective = header.get("objective", "").split(" ")[0]
    n_classes = int(header.get("num_class", "1"))
    names = booster.feature_name()
    kwargs: dict[str, Any] = {"feature_names": names, "reload": reload}
    source = "lightgbm booster"

    def raw(X: pd.DataFrame) -> np.ndarray:
        return np.asarray(booster.predict(_categories(X)))

    if objective == "binary":
        return _binary_or_multi(source, booster, raw, _booster_classes(path, "a LightGBM model", 2, classes), **kwargs)
    if objective in ("multiclass", "multiclassova"):
        found = _booster_classes(path, "a LightGBM model", n_classes, classes)
        return _binary_or_multi(source, booster, raw, found, **kwargs)
    if objective in ("lambdarank", "rank_xendcg"):
        raise RAIInputError(f"model file {path} is a LightGBM ranking model ({objective}), which the audit cannot take")
    return ModelAdapter(source=source, native=booster, predict=raw, **kwargs)


def _load_catboost(path: Path, classes: Sequence[Any] | None, reload: Callable[[], ModelAdapter]) -> ModelAdapter:
    try:
        import catboost
    except ImportError as err:
        raise _missing_library(path, "a CatBoost model", "catboost", "models-boosters", err) from err
    model = catboost.CatBoost()
    try:
        model.load_model(str(path), format="cbm")
    except catboost.CatBoostError as err:
        raise RAIInputError(
            f"model file {path} looks like a CatBoost model but CatBoost could not load it: {err}"
        ) from err
    names = list(model.feature_names_)
    kwargs: dict[str, Any] = {"feature_names": names, "reload": reload}
    source = "catboost model"
    loss = str(model.get_all_params().get("loss_function", "")).split(":")[0]
    if loss not in CATBOOST_CLASSIFIER_LOSSES:
        return ModelAdapter(source=source, native=model, predict=lambda X: model.predict(X), **kwargs)
    stored = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    order = stored
    if classes is not None:
        # CatBoost keeps its label names: the given classes must be the same labels.
        given = {str(c): c for c in classes}
        if len(given) != len(stored) or set(given) != {str(c) for c in stored}:
            raise RAIInputError(
                f"model file {path} is a CatBoost classifier of the classes {stored}, but it was given the classes "
                f"{list(classes)[:20]} (the `classes` option, else the train labels)"
            )
        order = [given[str(c)] for c in stored]

    def proba(X: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict(X, prediction_type="Probability"), dtype=float)

    return _binary_or_multi(source, model, proba, order, **kwargs)


# --- ONNX -------------------------------------------------------------------------------------

ONNX_NUMERIC = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def load_onnx(path: Path, *, classes: Sequence[Any] | None = None) -> ModelAdapter:
    """An ONNX model run by onnxruntime on the CPU."""
    try:
        import onnxruntime
    except ImportError as err:
        raise _missing_library(path, "an ONNX model", "onnxruntime", "models-onnx", err) from err
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
        raise RAIInputError(f"model file {path} is an ONNX model that onnxruntime could not load: {err}") from err
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    reload = _reloader(path, classes=None if classes is None else list(classes))
    single = len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].shape[1] not in (1,)
    # Input names are the columns' (converters may write "capital_gain" for "capital-gain", see
    # _onnx_column): checked against the data when called, not as feature_names_in_.
    feature_types = {} if single else {i.name: ("text" if i.type == "tensor(string)" else "numeric") for i in inputs}

    def feed(X: pd.DataFrame) -> dict[str, np.ndarray]:
        if single:
            return {inputs[0].name: _onnx_tensor(X, inputs[0], path)}
        return {i.name: _onnx_column(X, i, path) for i in inputs}

    labels_out = next((o for o in outputs if o.type.startswith("tensor") and len(o.shape) <= 1), None)
    zipmap = next((o for o in outputs if o.type.startswith("seq(map(")), None)
    proba_out = zipmap or next(
        (
            o
            for o in outputs
            if o.type in ("tensor(float)", "tensor(double)") and len(o.shape) == 2 and o is not labels_out
        ),
        None,
    )
    source = "onnx"
    kwargs: dict[str, Any] = {"feature_types": feature_types, "reload": reload}
    is_classifier = labels_out is not None and (
        proba_out is not None or labels_out.type in ("tensor(string)", "tensor(int64)")
    )
    if not is_classifier:
        value_out = outputs[0]

        def regress(X: pd.DataFrame) -> np.ndarray:
            result = np.asarray(session.run([value_out.name], feed(X))[0], dtype=float)
            return result.reshape(len(X), -1)[:, 0] if result.ndim > 1 else result

        return ModelAdapter(source=source, native=session, predict=regress, **kwargs)
    assert labels_out is not None
    label_name = labels_out.name
    if proba_out is None:
        return ModelAdapter(
            source=source,
            native=session,
            predict=lambda X: np.asarray(session.run([label_name], feed(X))[0]),
            classes=list(classes) if classes is not None else None,
            **kwargs,
        )
    proba_name = proba_out.name
    if zipmap is not None:
        # ZipMap's rows are {label: probability}: the columns come out in the given classes'
        # order (matched as text, as the constructor matches labels), else in the keys' order.
        order: list[Any] = [] if classes is None else list(classes)

        def zipped(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            labels, maps = session.run([label_name, proba_name], feed(X))
            keys = {str(k): k for k in (maps[0] if maps else {})}
            if not order:
                order.extend(keys.values())
            missing = [c for c in order if str(c) not in keys]
            if maps and missing:
                raise RAIInputError(
                    f"the ONNX model {path} gives probabilities for the classes {list(keys.values())}, "
                    f"not for {missing} (the classes it was given: {order})"
                )
            wanted = [keys[str(c)] for c in order]
            return np.asarray(labels), np.array([[row[k] for k in wanted] for row in maps], dtype=float)

        adapter = ProbabilisticModelAdapter(
            source=source,
            native=session,
            predict=lambda X: zipped(X)[0],
            predict_proba=lambda X: zipped(X)[1],
            classes=order if order else None,
            **kwargs,
        )
        return adapter

    def tensor_proba(X: pd.DataFrame) -> np.ndarray:
        return np.asarray(session.run([proba_name], feed(X))[0], dtype=float)

    n_classes = proba_out.shape[1] if isinstance(proba_out.shape[1], int) else None
    order = list(classes) if classes is not None else list(range(n_classes or 0))
    if n_classes is not None and classes is not None and len(order) != n_classes:
        raise RAIInputError(
            f"model file {path} is an ONNX classifier with {n_classes} probability columns ({proba_name!r}), "
            f"but it was given {len(order)} classes {order[:20]}"
        )
    return ProbabilisticModelAdapter(
        source=source,
        native=session,
        predict=lambda X: np.asarray(session.run([label_name], feed(X))[0]),
        predict_proba=tensor_proba,
        classes=order,
        **kwargs,
    )


def _onnx_column(X: pd.DataFrame, spec: Any, path: Path) -> np.ndarray:
    """One column as the (rows, 1) tensor an ONNX input of that name takes. The column of the
    input's name, else the one whose name with other characters than letters, digits and _ as
    _ is the input's (skl2onnx names the input of "capital-gain" capital_gain)."""
    column = spec.name if spec.name in X.columns else None
    if column is None:
        alike = [c for c in X.columns if re.sub(r"[^0-9A-Za-z_]", "_", str(c)) == spec.name]
        column = alike[0] if len(alike) == 1 else None
    if column is None:
        raise RAIInputError(
            f"the ONNX model {path} has the input {spec.name!r} ({spec.type}), which is not a column of the data; "
            f"the data's columns are {list(map(str, X.columns))}"
        )
    values = X[column]
    if spec.type == "tensor(string)":
        array = values.astype(object).where(values.notna(), "").astype(str).to_numpy(dtype=object)
    elif spec.type in ONNX_NUMERIC:
        if not pd.api.types.is_numeric_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype):
            raise RAIInputError(
                f"the ONNX model {path} takes numbers ({spec.type}) as input {spec.name!r}, but the data's column "
                f"{column!r} holds {values.dtype} values (e.g. {values.dropna().iloc[:3].tolist()})"
            )
        array = values.to_numpy(dtype=ONNX_NUMERIC[spec.type], na_value=np.nan)
    else:
        raise RAIInputError(
            f"the ONNX model {path} has the input {spec.name!r} of type {spec.type}, which is unsupported"
        )
    return array.reshape(-1, 1) if len(spec.shape) == 2 else array


def _onnx_tensor(X: pd.DataFrame, spec: Any, path: Path) -> np.ndarray:
    """All features as the one (rows, features) tensor of a single-input ONNX model."""
    width = spec.shape[1]
    if isinstance(width, int) and width != X.shape[1]:
        raise RAIInputError(
            f"the ONNX model {path} takes one tensor {spec.name!r} of {width} features, but the data has "
            f"{X.shape[1]} feature columns {list(map(str, X.columns))}"
        )
    text = [str(c) for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if spec.type in ONNX_NUMERIC and text:
        raise RAIInputError(
            f"the ONNX model {path} takes one numeric tensor {spec.name!r} ({spec.type}), but the data's columns "
            f"{text} are not numbers; encode them as the model was trained, or export the pipeline with one input "
            "per column"
        )
    if spec.type not in ONNX_NUMERIC:
        raise RAIInputError(
            f"the ONNX model {path} has the input {spec.name!r} of type {spec.type}, which is unsupported"
        )
    return X.to_numpy(dtype=ONNX_NUMERIC[spec.type], na_value=np.nan)


# --- MLflow -----------------------------------------------------------------------------------


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as err:
        raise RAIInputError(
            f"an MLflow model needs the Python package 'mlflow-skinny' ({err}); install rai-audit[models-mlflow] "
            "in this step's environment or image"
        ) from err
    return mlflow


def download_mlflow_model(uri: str, dest: str | Path, *, tracking_uri: str | None = None) -> Path:
    """Download the model folder a ``models:/`` or ``runs:/`` URI names into ``dest``."""
    mlflow = _mlflow()
    Path(dest).mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest), tracking_uri=tracking_uri)
    except Exception as err:  # MlflowException, OSError, a registry's HTTP errors
        where = (
            f" at tracking URI {tracking_uri!r}" if tracking_uri else " (no tracking URI given; MLFLOW_TRACKING_URI)"
        )
        raise RAIInputError(f"the MLflow model URI {uri!r} could not be resolved{where}: {err}") from err
    folder = Path(local)
    if not (folder / "MLmodel").is_file():
        raise RAIInputError(f"the MLflow URI {uri!r} names {folder.name!r}, which holds no MLmodel file: not a model")
    return folder


def load_mlflow(
    uri: str,
    *,
    tracking_uri: str | None = None,
    skops_trusted_types: list[str] | None = None,
    allow_pickle: bool = False,
    classes: Sequence[Any] | None = None,
) -> Any:
    """An MLflow model named by URI: downloaded to a temporary folder and loaded from there.
    The folder is removed when the process ends (a pyfunc model may read its files as it
    predicts), or at once if the model cannot be loaded."""
    scratch = tempfile.mkdtemp(prefix="rai-audit-mlflow-")
    try:
        folder = download_mlflow_model(uri, scratch, tracking_uri=tracking_uri)
        model = load_mlflow_folder(
            folder, skops_trusted_types=skops_trusted_types, allow_pickle=allow_pickle, classes=classes
        )
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return model


def mlflow_flavours(folder: Path) -> dict[str, Any]:
    from rai_audit.core.artifacts import read_yaml

    spec = read_yaml(folder / "MLmodel", what="MLflow MLmodel file")
    if not isinstance(spec, dict) or not isinstance(spec.get("flavors"), dict):
        raise RAIInputError(f"MLflow model folder {folder}: its MLmodel file lists no `flavors`")
    return spec["flavors"]


def _needs_pickle(folder: Path, what: str, allow_pickle: bool, instead: str) -> None:
    if not allow_pickle:
        raise RAIInputError(
            f"MLflow model folder {folder} is {what} (detected from its MLmodel file): loading it runs any code "
            f"stored in it. {instead}, or, if you trust this model, allow pickles with `allow_pickle` (config "
            "`allow_pickle: true`, CLI --allow-pickle)"
        )


def load_mlflow_folder(
    folder: Path,
    *,
    skops_trusted_types: list[str] | None = None,
    allow_pickle: bool = False,
    classes: Sequence[Any] | None = None,
) -> ModelAdapter:
    """An MLflow model folder: its sklearn, xgboost or lightgbm flavour, else pyfunc."""
    flavours = mlflow_flavours(folder)
    reload = _reloader(
        folder,
        skops_trusted_types=skops_trusted_types,
        allow_pickle=allow_pickle,
        classes=None if classes is None else list(classes),
    )
    kwargs: dict[str, Any] = {"reload": reload}
    try:
        if "sklearn" in flavours:
            spec = flavours["sklearn"]
            fmt = spec.get("serialization_format", "cloudpickle")
            if fmt == "skops":
                native = load_sklearn_model(
                    folder / spec["pickled_model"], skops_trusted_types=skops_trusted_types, allow_pickle=False
                )
            else:
                _needs_pickle(
                    folder,
                    f"a scikit-learn model saved as a {fmt} file",
                    allow_pickle,
                    "Log the model with serialization_format='skops'",
                )
                native = _mlflow().sklearn.load_model(str(folder))
            return _sklearn_like("mlflow sklearn flavour", native, **kwargs)
        if "xgboost" in flavours:
            native = _mlflow().xgboost.load_model(str(folder))  # the booster file, no pickle
            if hasattr(native, "predict_proba") or hasattr(native, "classes_"):
                return _sklearn_like("mlflow xgboost flavour", native, **kwargs)
            booster_file = _flavour_file(folder, flavours["xgboost"])
            booster = load_booster(booster_file, model_format(booster_file) or XGBOOST_UBJ, classes=classes)
            return _retag(booster, "mlflow xgboost flavour", reload)
        if "lightgbm" in flavours:
            spec = flavours["lightgbm"]
            if str(spec.get("model_class", "")).endswith("Booster"):
                booster_file = _flavour_file(folder, spec)
                booster = load_booster(booster_file, LIGHTGBM, classes=classes)
                return _retag(booster, "mlflow lightgbm flavour", reload)
            _needs_pickle(
                folder,
                "a LightGBM scikit-learn model saved as a pickle",
                allow_pickle,
                "Log its booster (model.booster_) instead, which MLflow saves as a LightGBM text model",
            )
            return _sklearn_like("mlflow lightgbm flavour", _mlflow().lightgbm.load_model(str(folder)), **kwargs)
        if "onnx" in flavours:  # the .onnx file itself, run by onnxruntime (no pickle)
            onnx_file = folder / str(flavours["onnx"].get("data", "model.onnx"))
            return _retag(load_onnx(onnx_file, classes=classes), "mlflow onnx flavour", reload)
        if "python_function" not in flavours:
            raise RAIInputError(
                f"MLflow model folder {folder} has the flavours {sorted(flavours)}, none of which the audit reads "
                "(sklearn, xgboost, lightgbm, onnx, python_function)"
            )
        _needs_pickle(
            folder,
            "a python_function model (its code and objects are cloudpickled)",
            allow_pickle,
            "Log it with the sklearn, xgboost or lightgbm flavour if it is one of those",
        )
        return _pyfunc(folder, classes, **kwargs)
    except ModuleNotFoundError as err:
        raise RAIInputError(
            f"MLflow model folder {folder} needs the Python package {err.name!r}, which is not installed in this "
            "step's environment; add it to the step image (rai-audit[models-boosters] for XGBoost and LightGBM)"
        ) from err


def _flavour_file(folder: Path, spec: dict[str, Any]) -> Path:
    data = folder / str(spec.get("data", "model.xgb"))
    return model_file(data) if data.is_dir() else data


def _retag(adapter: ModelAdapter, source: str, reload: Callable[[], ModelAdapter]) -> ModelAdapter:
    adapter.source, adapter._reload = source, reload
    return adapter


def _sklearn_like(source: str, native: Any, **kwargs: Any) -> ModelAdapter:
    """A scikit-learn-API model (an estimator, XGBClassifier, LGBMClassifier) from an MLflow folder."""
    names = getattr(native, "feature_names_in_", None)
    classes = getattr(native, "classes_", None)
    if hasattr(native, "predict_proba") and classes is not None:
        return ProbabilisticModelAdapter(
            source=source,
            native=native,
            predict=native.predict,
            predict_proba=native.predict_proba,
            classes=list(classes),
            feature_names=None if names is None else list(names),
            sklearn_api=True,
            **kwargs,
        )
    return ModelAdapter(
        source=source,
        native=native,
        predict=native.predict,
        classes=None if classes is None else list(classes),
        feature_names=None if names is None else list(names),
        sklearn_api=True,
        **kwargs,
    )


def _pyfunc(folder: Path, classes: Sequence[Any] | None, **kwargs: Any) -> ModelAdapter:
    """Any MLflow model through pyfunc: a predictor; with probabilities when its signature's
    output has one column per class, named as the classes (matched as text)."""
    model = _mlflow().pyfunc.load_model(str(folder))
    inputs = model.metadata.get_input_schema()
    names = inputs.input_names() if inputs is not None and inputs.has_input_names() else None
    outputs = model.metadata.get_output_schema()
    columns = [str(n) for n in outputs.input_names()] if outputs is not None and outputs.has_input_names() else []
    labels = [str(c) for c in classes] if classes is not None else []
    common: dict[str, Any] = {"source": "mlflow pyfunc", "native": model, "feature_names": names, **kwargs}
    if labels and len(columns) == len(labels) and set(columns) == set(labels):

        def proba(X: pd.DataFrame) -> np.ndarray:
            result = pd.DataFrame(model.predict(X))
            result.columns = [str(c) for c in result.columns]
            return result[labels].to_numpy(dtype=float)

        values = np.asarray(list(classes or []), dtype=object)
        return ProbabilisticModelAdapter(
            predict=lambda X: np.asarray(values[np.argmax(proba(X), axis=1)].tolist()),
            predict_proba=proba,
            classes=list(classes or []),
            **common,
        )

    def predict(X: pd.DataFrame) -> np.ndarray:
        result = model.predict(X)
        if isinstance(result, pd.DataFrame):
            return result.iloc[:, 0].to_numpy()
        array = np.asarray(result)
        return array.reshape(len(X), -1)[:, 0] if array.ndim > 1 else array

    return ModelAdapter(predict=predict, classes=None if classes is None else list(classes), **common)
