"""The explainer step: global and local feature importance in raw features, per cohort.

interpret-community (on shap) explains the model's final estimator on the features it
really sees (after the Pipeline's preprocessing), with the exact explainer it allows
(tree SHAP, linear SHAP; a LightGBM model's tree SHAP comes from LightGBM itself, the same
values on every core), and importances of engineered columns (e.g. one-hot columns) are
summed back to the raw feature they come from. For any other model a mimic is used
(``RawFeatureMimic``: a LightGBM surrogate trained to imitate the whole model on the raw
features, so its tree SHAP needs no mapping), and its fidelity is recorded.

interpret-community's own raw-feature mapping (``transformations=``) fails with
scikit-learn >= 1.6 (its mappers lack ``__sklearn_tags__``), so the mapping is found here
by probing: each raw feature is changed alone through its values and the engineered
columns that change are its columns. This works for any preprocessing in which each engineered column comes
from one raw column; a column fed by several raw features is split among them equally,
and the output says so.

Rows: the constructor's recorded sample (or all test rows), optionally one shard of them;
``merge_explanations`` joins shards into exactly the result of one unsharded run.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from rai_audit.core import RAIInputError, served_model
from rai_audit.core import artifacts as A
from rai_audit.core.constructor_artifact import ConstructorArtifact, load_constructor_artifact
from rai_audit.core.lightgbm_shap import tree_contributions
from rai_audit.core.loading import import_without
from rai_audit.core.metrics import group_sort_key
from rai_audit.core.models import ModelAdapter, in_class_order, model_source
from rai_audit.core.shards import read_shards
from rai_audit.specs import ExplainerOptions
from rai_audit.steps._cli import run_sharded_cli, sharded_parser

KIND = "explanation"
LOCAL_FILE = "local_importance.parquet"
CLASS_COLUMN = "class"
# Model sources whose native model shap's TreeExplainer takes (rai_audit.core.models).
TREE_SOURCES = (
    "xgboost booster",
    "lightgbm booster",
    "catboost model",
    "mlflow xgboost flavour",
    "mlflow lightgbm flavour",
)
# Raw features with at most this many values are probed with every value, others with as
# many quantiles (see _feature_map).
PROBE_VALUES = 1000


@dataclass
class ExplainerResult:
    run_id: str
    method: str
    n_rows: int
    seconds: float


def _split_model(model: Any) -> tuple[Any, Any]:
    """(preprocessing or None, final estimator) of a scikit-learn Pipeline or bare estimator.

    A model from another source (``rai_audit.core.models``): its scikit-learn model if it has
    one (MLflow's sklearn flavour), else the adapter itself, with no preprocessing.
    """
    from sklearn.pipeline import Pipeline

    if isinstance(model, ModelAdapter):
        if model.sklearn_api and model.source not in TREE_SOURCES:
            return _split_model(model.native)
        return None, model
    if isinstance(model, Pipeline) and len(model.steps) > 1:
        return model[:-1], model[-1]
    return None, model


def _import_shap() -> Any:
    """shap, imported without its plots: shap 0.46's plot colours fail to import with numpy 2.4,
    and shap imports them whenever matplotlib is installed (CatBoost brings it). No step plots."""
    return import_without("shap", "matplotlib")


def _import_interpret_community() -> None:
    """interpret-community (and shap, above), imported without MLflow: its ml-wrappers import
    MLflow, where installed, only for a wrapper of models behind endpoints, which no step uses
    (1.6 s of a ~10 s explainer task on the Adult test rows)."""
    _import_shap()
    import_without("interpret_community.shap", "mlflow")


def _prediction_threads() -> int:
    """Predictions and tree SHAP use every core the pod may use: unlike a fit, they do not depend on it."""
    import joblib

    return int(joblib.cpu_count())


class _TreeShap:
    """Exact tree SHAP from the booster's own library (XGBoost's pred_contribs, LightGBM's
    pred_contrib, CatBoost's ShapValues) in the columns it is given; a binary booster's one
    output as the two classes' (-v, v), as interpret-community gives XGBClassifier and
    LGBMClassifier. (shap 0.46 cannot read XGBoost 3's models; the libraries' own values are the
    same TreeSHAP. On LightGBM, rai_audit.core.lightgbm_shap computes it on every core, where
    shap's TreeExplainer takes one.)

    ``frame`` gives the columns in the booster's order (another source's model: its features).
    ``sparse``: the model is given a sparse matrix (a Pipeline's one-hot output), where XGBoost
    reads an absent entry, a zero, as missing; its values are computed on the same.
    """

    LIBRARIES = {"xgboost": "XGBoost", "lightgbm": "LightGBM", "catboost": "CatBoost"}

    def __init__(
        self,
        native: Any,
        n_classes: int | None,
        frame: Callable[[pd.DataFrame], pd.DataFrame] = lambda X: X,
        sparse: bool = False,
    ) -> None:
        self.n_classes, self.frame, self.sparse = n_classes, frame, sparse
        self.native = getattr(native, "booster_", None) or (
            native.get_booster() if hasattr(native, "get_booster") else native
        )
        self.library = type(self.native).__module__.split(".")[0]
        if self.library not in self.LIBRARIES:
            raise TypeError(f"no tree SHAP for {type(self.native).__name__}")
        self.DESCRIPTION = f"{self.LIBRARIES[self.library]}'s own tree SHAP"  # shown as the explanation's explainer

    def reads_floats(self, n_columns: int) -> bool:
        """Whether the booster reads ``n_columns`` columns, all as numbers (none as categories)."""
        native = self.native
        if self.library == "lightgbm":
            return not native.pandas_categorical and native.num_feature() == n_columns
        if self.library == "xgboost":
            return native.num_features() == n_columns and "c" not in (native.feature_types or [])
        categories = native.get_cat_feature_indices() + native.get_text_feature_indices()
        return not categories and len(native.feature_names_) == n_columns

    def _contributions(self, X: pd.DataFrame) -> np.ndarray:
        """(rows, outputs, features + 1): each output's values, the last column its expected value."""
        if self.library == "xgboost":
            import scipy.sparse
            import xgboost

            data = scipy.sparse.csr_matrix(X.to_numpy()) if self.sparse else X
            raw = self.native.predict(xgboost.DMatrix(data), pred_contribs=True)
        elif self.library == "lightgbm":
            raw = tree_contributions(self.native, X, num_threads=_prediction_threads())
        else:
            import catboost

            pool = catboost.Pool(X, cat_features=self.native.get_cat_feature_indices())
            raw = self.native.get_feature_importance(pool, type="ShapValues")
        raw = np.asarray(raw, dtype=float)
        return raw.reshape(len(X), -1, X.shape[1] + 1)

    def explain_local(self, X: pd.DataFrame) -> SimpleNamespace:
        native_X = self.frame(X)
        contributions = self._contributions(native_X)
        values = contributions[..., :-1].transpose(1, 0, 2)  # (outputs, rows, features)
        expected = contributions[0, :, -1] if len(contributions) else np.zeros(contributions.shape[1])
        if values.shape[0] == 1 and self.n_classes == 2:
            values, expected = np.concatenate([-values, values]), np.array([-expected[0], expected[0]])
        order = [list(native_X.columns).index(c) for c in X.columns]
        return SimpleNamespace(local_importance_values=values[..., order], expected_values=expected)


def _engineered(preprocess: Any, raw: pd.DataFrame) -> pd.DataFrame:
    """The columns the final estimator sees, dense."""
    if preprocess is None:
        return raw.astype(float)
    transformed = preprocess.transform(raw)
    if hasattr(transformed, "toarray"):  # sparse one-hot output
        transformed = transformed.toarray()
    try:
        names = [str(n) for n in preprocess.get_feature_names_out()]
    except Exception:  # some transformers cannot name their outputs
        names = [f"x{i}" for i in range(transformed.shape[1])]
    return pd.DataFrame(np.asarray(transformed, dtype=float), columns=names)


def _sparse_output(preprocess: Any, raw: pd.DataFrame) -> bool:
    """Whether the preprocessing gives the final estimator a sparse matrix."""
    return preprocess is not None and hasattr(preprocess.transform(raw.iloc[:2]), "toarray")


def _probe_values(values: pd.Series) -> np.ndarray:
    """Values to try for a raw feature: all of them, or if more than 1,000, as many quantiles
    (numbers) or the most frequent ones (other values), plus the missing value if any."""
    distinct = pd.unique(values)
    if len(distinct) <= PROBE_VALUES:
        return distinct
    present = values.dropna()
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
        points = np.quantile(present.astype(float), np.linspace(0, 1, PROBE_VALUES))
    else:
        points = present.value_counts().index[:PROBE_VALUES].to_numpy(dtype=object)
    missing = np.array([None if points.dtype == object else np.nan])  # object or float, as points
    return np.append(points, missing) if values.isna().any() else points


def _feature_map(
    preprocess: Any, background: pd.DataFrame, pools: dict[str, np.ndarray], features: list[str]
) -> tuple[np.ndarray, list[str]]:
    """(raw features x engineered columns) weights: which raw feature each column comes from.

    Each raw feature alone takes its probe values in rows of the background, and the
    engineered columns that change are its own; trying every value finds the one-hot
    column of a rare category too. The map depends only on the background and the data's
    values, so every shard gets the same map.
    """
    if preprocess is None:
        return np.eye(len(features)), []
    n_columns = _engineered(preprocess, background.iloc[:1]).shape[1]
    depends = np.zeros((len(features), n_columns), dtype=bool)
    for j, feature in enumerate(features):
        pool = pools[feature]
        rows = background.iloc[np.arange(max(len(background), len(pool))) % len(background)]
        moved = rows.reset_index(drop=True).copy()
        moved[feature] = pool[np.arange(len(moved)) % len(pool)]
        base = _engineered(preprocess, rows.reset_index(drop=True)).to_numpy()
        changed = _engineered(preprocess, moved).to_numpy()
        depends[j] = ~np.isclose(base, changed, equal_nan=True).all(axis=0)
    shared = depends.sum(axis=0)
    notes = []
    if (shared > 1).any():
        notes.append(
            f"{int((shared > 1).sum())} engineered columns depend on several raw features; "
            "their importance is split equally among them"
        )
    return depends / np.maximum(shared, 1), notes


def _explained_rows(audit: ConstructorArtifact, options: ExplainerOptions) -> np.ndarray:
    """Row ids to explain, in order: the constructor's sample, or all rows."""
    rows = audit.predictions[A.ROW_ID].to_numpy()
    if options.rows == "sample":
        rows = rows[audit.predictions[A.IN_SAMPLE].to_numpy()]
    return rows


def _exact_explainer(
    method: str,
    estimator: Any,
    background: pd.DataFrame,
    classes: list[Any] | None,
    is_classifier: bool,
    sparse: bool = False,
) -> tuple[Any, str] | None:
    """The exact interpret-community explainer (tree or linear SHAP) this method and model allow,
    and its name; None where the mimic explains (method mimic, or auto and no exact one applies).
    ``sparse``: the model is given a sparse matrix (see _TreeShap)."""
    if method == "mimic":
        return None
    _import_interpret_community()
    from interpret_community import TabularExplainer
    from interpret_community.shap import LinearExplainer, TreeExplainer

    kwargs = {"features": list(background.columns), "classes": classes}
    if isinstance(estimator, ModelAdapter):  # another source's model: its booster's own tree SHAP
        tree = _booster_tree_shap(estimator, classes, is_classifier)
        if tree is not None and method in ("auto", "tree"):
            return tree, "tree"
        if method == "auto":
            return None
        raise RAIInputError(
            f"`method` {method!r} cannot explain the {estimator.source} model (tree SHAP takes a booster "
            "on numeric features only); use method 'auto'"
        )
    if method in ("auto", "tree"):
        library_tree = _library_tree_shap(estimator, background, classes, is_classifier, sparse)
        if library_tree is not None:
            return library_tree, "tree"
    forced = {
        "tree": lambda: TreeExplainer(estimator, **kwargs),
        "linear": lambda: LinearExplainer(estimator, background, **kwargs),
    }
    if method in forced:
        try:
            return forced[method](), method
        except Exception as err:  # shap refuses models it cannot explain exactly
            raise RAIInputError(
                f"`method` {method!r} cannot explain {_estimator_name(estimator)} "
                f"({type(err).__name__}: {err}); use method 'auto'"
            ) from err
    try:
        chosen = TabularExplainer(estimator, background, **kwargs).explainer
        name = type(chosen).__name__
        if name in ("TreeExplainer", "LinearExplainer"):
            chosen.explain_local(background.iloc[:2])  # some estimators fail only here
            return chosen, name.removesuffix("Explainer").lower()
    except Exception:  # no exact explainer works for this estimator: use the mimic
        pass
    return None


def _estimator_name(estimator: Any) -> str:
    """The explained model's class name; for another source's model, its library's class and source."""
    if isinstance(estimator, ModelAdapter):
        return f"{type(estimator.native).__name__} ({estimator.source})"
    return type(estimator).__name__


def _booster_tree_shap(model: ModelAdapter, classes: list[Any] | None, is_classifier: bool) -> _TreeShap | None:
    """Tree SHAP on a booster's own model (its features are numbers: the background is), else
    None (the mimic explains it)."""
    if model.source not in TREE_SOURCES:
        return None
    try:
        return _TreeShap(model.native, len(classes) if is_classifier and classes else None, model.frame)
    except Exception:  # no tree SHAP for this booster: the mimic explains it
        return None


def _library_tree_shap(
    estimator: Any, background: pd.DataFrame, classes: list[Any] | None, is_classifier: bool, sparse: bool
) -> _TreeShap | None:
    """The booster library's own tree SHAP for its scikit-learn model (LightGBM, XGBoost, CatBoost;
    bare or a Pipeline's last step) on the columns it was fitted on, else None.

    LightGBM's: the values interpret-community's TreeExplainer gives, on every core (shap's takes
    one: the explainer took 1.3x the peer's mimic; bench/README.md). XGBoost's and CatBoost's:
    shap 0.46 cannot read XGBoost 3's models and failed on CatBoost's in a Pipeline, so they were
    explained by the mimic, an approximation, where their libraries give the exact values.
    """
    if type(estimator).__module__.split(".")[0] not in _TreeShap.LIBRARIES:
        return None
    try:
        tree = _TreeShap(estimator, len(classes) if is_classifier and classes else None, sparse=sparse)
        # A model that reads some columns as categories takes their codes, which the engineered
        # floats are not: it goes the way it went before (interpret-community, else the mimic).
        return tree if tree.reads_floats(background.shape[1]) else None
    except Exception:  # not a fitted booster model
        return None


class RawFeatureMimic:
    """The mimic: a LightGBM surrogate trained to imitate the whole model on the raw features,
    explained by LightGBM's exact tree SHAP (``pred_contrib``), so its importances are already
    per raw feature.

    Fitted as interpret-community's ``LGBMExplainableModel`` is (LightGBM's defaults, the run's
    seed, one thread so every shard's pod fits the same surrogate; a leaf may hold one row below
    50 training rows): a binary model's probability of its second class as a logit clipped to
    +-5 (regression), a multiclass model's most likely class (classification, every class
    present), a regression's prediction. Numbers (integer codes, booleans too) stay numbers;
    other values are LightGBM categories (those of the training rows, sorted; an unseen or
    missing value is LightGBM's missing), and each categorical split is one category against
    the rest, as a tree on one-hot columns splits: with LightGBM's default many-against-many
    splits the surrogate lost fidelity on small data (German credit 0.86 against the one-hot
    mimic's 0.92; bench/README.md, "Explainer mimic").
    """

    DESCRIPTION = "LightGBM surrogate on the raw features"  # shown as the explanation's explainer
    SMALL_DATA = 50  # interpret-community's threshold
    LOGIT_CLIP = 5.0
    ONE_VS_REST = 2**31 - 1  # LightGBM's max_cat_to_onehot: always one category against the rest
    LIGHTGBM_ARGS: dict[str, Any] = {"max_cat_to_onehot": ONE_VS_REST}  # bench/mimic_bench.py tries others

    def __init__(self, model: Any, train_raw: pd.DataFrame, classes: list[Any] | None, random_state: int) -> None:
        import lightgbm

        self.columns = [str(c) for c in train_raw.columns]
        self.categories = {
            str(c): sorted({str(v) for v in train_raw[c].dropna().to_numpy(dtype=object)})
            for c in train_raw.columns
            if not pd.api.types.is_numeric_dtype(train_raw[c])
        }
        X = self.frame(train_raw)
        self._first = X.iloc[:1]  # a row to read the expected value from when no row is explained
        args: dict[str, Any] = {"random_state": random_state, "n_jobs": 1, "verbose": -1, **self.LIGHTGBM_ARGS}
        if len(X) < self.SMALL_DATA:
            args["min_child_samples"] = 1
        self.classes = classes
        if classes is None:
            self.kind = "regression"
            self.surrogate = lightgbm.LGBMRegressor(**args).fit(X, np.asarray(model.predict(train_raw), dtype=float))
            return
        proba = _probabilities(model, train_raw, classes)
        if proba is not None and len(classes) == 2:
            self.kind = "logit"
            with np.errstate(divide="ignore"):  # probabilities 0 and 1: infinite logits, clipped
                logit = np.log(proba[:, 1]) - np.log1p(-proba[:, 1])
            target = np.clip(logit, -self.LOGIT_CLIP, self.LOGIT_CLIP)
            self.surrogate = lightgbm.LGBMRegressor(**args).fit(X, target)
            return
        self.kind = "labels"
        if proba is not None:
            labels = proba.argmax(axis=1)
        else:
            index = {str(c): k for k, c in enumerate(classes)}
            labels = np.array([index[str(v)] for v in np.asarray(model.predict(train_raw))])
        # A class the model never predicts here still gets a row (where it is most likely, or the
        # first), as interpret-community adds them, so the surrogate has an output for every class.
        absent = [k for k in range(len(classes)) if k not in set(labels.tolist())]
        if absent:
            rows = [int(np.argmax(proba[:, k])) if proba is not None else 0 for k in absent]
            X = pd.concat([X, X.iloc[rows]], ignore_index=True)
            labels = np.concatenate([labels, absent])
        self.surrogate = lightgbm.LGBMClassifier(**args).fit(X, labels)

    def frame(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The surrogate's input: numbers as floats, other values as categories of the training rows."""
        out: dict[str, Any] = {}
        for column, name in zip(raw.columns, self.columns):
            values = raw[column]
            if name in self.categories:  # each distinct value's text looked up once (1,000,000 rows)
                codes, distinct = pd.factorize(values)  # missing: -1
                position = {c: i for i, c in enumerate(self.categories[name])}
                lookup = np.array([position.get(str(v), -1) for v in distinct] + [-1], dtype=np.int64)
                out[name] = pd.Categorical.from_codes(lookup[codes], categories=self.categories[name])
            else:
                out[name] = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
        return pd.DataFrame(out, columns=self.columns, index=range(len(raw)))

    def predict_labels(self, raw: pd.DataFrame) -> np.ndarray:
        """The surrogate's answer in the model's terms: a class label, or the regression's value."""
        output = np.asarray(self.surrogate.booster_.predict(self.frame(raw), num_threads=_prediction_threads()))
        if self.classes is None:
            return output.astype(float)
        classes = np.asarray(self.classes, dtype=object)
        if self.kind == "logit":
            return classes[(output > 0).astype(int)]
        scores = output.reshape(len(raw), -1)
        if scores.shape[1] == 1:  # a binary classifier's one output: the second class's log-odds
            return classes[(scores[:, 0] > 0).astype(int)]
        return classes[scores.argmax(axis=1)]

    def explain_local(self, raw: pd.DataFrame) -> SimpleNamespace:
        """Tree SHAP of the surrogate's raw output (log-odds, or value) as (outputs, rows, features);
        one output of a binary model as the two classes' (-v, v), as interpret-community's mimic."""
        features = len(self.columns)
        # The expected value is the same on every row: with no row, read it from a training row.
        rows = self.frame(raw) if len(raw) else self._first
        contributions = tree_contributions(self.surrogate.booster_, rows, num_threads=_prediction_threads())
        contributions = contributions.reshape(len(contributions), -1, features + 1).transpose(1, 0, 2)
        values = contributions[:, : len(raw), :-1]
        expected = contributions[:, 0, -1]
        if self.classes is not None and len(self.classes) == 2 and values.shape[0] == 1:
            values, expected = np.concatenate([-values, values]), np.array([-expected[0], expected[0]])
        return SimpleNamespace(local_importance_values=values, expected_values=expected)


def _probabilities(model: Any, X: pd.DataFrame, classes: list[Any]) -> np.ndarray | None:
    """The model's class probabilities in the run's class order (as the constructor orders them),
    or None for a classifier without ``predict_proba``."""
    if not hasattr(model, "predict_proba"):
        return None
    return in_class_order(np.asarray(model.predict_proba(X), dtype=float), model, classes)


@dataclass
class BuiltExplainer:
    """An explainer for one run: ``explain`` gives local values per raw feature."""

    explainer: Any
    method: str
    estimator: str  # the explained model's name (``_estimator_name``)
    columns: Callable[[pd.DataFrame], pd.DataFrame]  # raw rows -> the columns the explainer takes
    weights: np.ndarray  # (raw features, those columns): which raw feature each column comes from
    notes: list[str]

    def explain(self, raw: pd.DataFrame, n_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(classes or 1, rows, raw features) local values, and the expected value per class."""
        values, expected = _local_values(self.explainer.explain_local(self.columns(raw)), n_classes)
        return values @ self.weights.T, expected


def build_explainer(
    model: Any,
    train: pd.DataFrame,
    test: pd.DataFrame,
    classes: list[Any] | None,
    is_classifier: bool,
    options: ExplainerOptions,
) -> BuiltExplainer:
    """The run's explainer: the exact one the method and model allow, else the mimic, from the
    seeded train rows (the live dashboard builds the same one to explain an edited row)."""
    preprocess, estimator = _split_model(model)
    features = list(train.columns)
    background_raw, mimic_raw = seeded_train_rows(train, options)

    def columns(raw: pd.DataFrame) -> pd.DataFrame:
        return _engineered(preprocess, raw)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap and interpret-community warn about versions
        try:
            background = columns(background_raw)
        except (TypeError, ValueError) as err:  # no preprocessing and features that are not numbers
            if options.method in ("tree", "linear"):
                raise RAIInputError(
                    f"`method` {options.method!r} cannot explain {_estimator_name(estimator)} on features that "
                    f"are not all numbers ({err}); use method 'auto'"
                ) from err
            background = None
        sparse = background is not None and _sparse_output(preprocess, background_raw)
        exact = (
            None
            if background is None
            else _exact_explainer(options.method, estimator, background, classes, is_classifier, sparse)
        )
        if exact is None:
            mimic = RawFeatureMimic(model, mimic_raw, classes if is_classifier else None, options.random_state)
            notes = []
            if options.method == "auto":
                name = (
                    f"the {model_source(model)} model"
                    if isinstance(estimator, ModelAdapter)
                    else _estimator_name(estimator)
                )
                notes.append(
                    f"no exact explainer (tree or linear SHAP) worked for {name}; explained with a mimic "
                    "(LightGBM surrogate)"
                )
            return BuiltExplainer(
                mimic, "mimic", _estimator_name(estimator), lambda raw: raw, np.eye(len(features)), notes
            )
    explainer, method = exact
    pools = {f: _probe_values(pd.concat([train[f], test[f]], ignore_index=True)) for f in features}
    weights, notes = _feature_map(preprocess, background_raw, pools, features)
    return BuiltExplainer(explainer, method, _estimator_name(estimator), columns, weights, notes)


def _local_values(explanation: Any, n_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Local values as (classes or 1, rows, columns) and expected values per class."""
    values = np.asarray(explanation.local_importance_values, dtype=float)
    if values.ndim == 2:
        values = values[None]
    expected = np.atleast_1d(np.asarray(explanation.expected_values, dtype=float))
    if n_classes == 2 and values.shape[0] == 2 and expected.size == 1:
        expected = np.array([-expected[0], expected[0]])  # linear SHAP gives the positive class's only
    return values, expected


def _fidelity(
    built: BuiltExplainer, test: pd.DataFrame, y_model: np.ndarray, is_classifier: bool
) -> dict[str, Any] | None:
    """How well the mimic imitates the model on the whole test set: accuracy of its labels
    against the model's predictions, or r2 for a regression."""
    if built.method != "mimic":
        return None
    surrogate = built.explainer.predict_labels(test)
    if not is_classifier:
        from sklearn.metrics import r2_score

        return {"metric": "r2", "value": float(r2_score(y_model, surrogate))}
    return {"metric": "accuracy", "value": float(np.mean(y_model.astype(str) == surrogate.astype(str)))}


def _aggregate(local: pd.DataFrame, features: list[str], audit: ConstructorArtifact) -> dict[str, Any]:
    """Mean absolute importance overall, per class, per cohort and per sensitive group."""

    def mean_abs(frame: pd.DataFrame) -> dict[str, float | None]:
        return frame[features].abs().mean().to_dict() if len(frame) else {f: None for f in features}

    def ranked(values: dict[str, float | None]) -> list[dict[str, Any]]:
        return sorted(
            ({"feature": f, "importance": v} for f, v in values.items()), key=lambda item: -(item["importance"] or 0)
        )

    per_class = {str(c): mean_abs(group) for c, group in local.groupby(CLASS_COLUMN, sort=False)}
    overall = pd.DataFrame(list(per_class.values())).mean().to_dict()

    def by_rows(row_ids: np.ndarray) -> dict[str, float | None]:
        subset = local[local[A.ROW_ID].isin(row_ids)]
        values = [mean_abs(g) for _, g in subset.groupby(CLASS_COLUMN, sort=False)]
        return pd.DataFrame(values).mean().to_dict() if values else {f: None for f in features}

    explained = local[A.ROW_ID].unique()
    row_ids = audit.predictions[A.ROW_ID].to_numpy()
    return {
        "global": ranked(overall),
        "per_class": {c: ranked(v) for c, v in per_class.items()},
        "cohorts": [
            {"name": name, "count": int(np.isin(row_ids[mask], explained).sum()), "importance": by_rows(row_ids[mask])}
            for name, mask in audit.cohort_masks.items()
        ],
        "sensitive_groups": [
            {
                "feature": f,
                "group": g,
                "count": int(np.isin(row_ids[(labels == g).to_numpy()], explained).sum()),
                "importance": by_rows(row_ids[(labels == g).to_numpy()]),
            }
            for f, (labels, binning) in audit.sensitive_groups.items()
            for g in sorted(labels.unique(), key=group_sort_key(binning))
        ],
    }


def _write(
    output_dir: Path,
    audit: ConstructorArtifact,
    local: pd.DataFrame,
    info: dict[str, Any],
    options: ExplainerOptions,
    seconds: float,
    model_calls: dict[str, Any] | None = None,
) -> None:
    features = audit.meta["model_features"]
    result = {
        **info,
        "features": features,
        "n_rows": int(local[A.ROW_ID].nunique()),
        **_aggregate(local, features, audit),
    }
    with A.artifact_writer(output_dir) as out:
        A.write_parquet(local, out / LOCAL_FILE)
        A.write_json(out / A.INSIGHT_RESULT_FILE, result)
        calls = {"model_calls": model_calls} if model_calls else {}  # a served model's requests
        A.write_json(
            out / A.META_FILE, A.new_meta(KIND, audit.run_id, options=asdict(options), seconds=seconds, **calls)
        )


def seeded_train_rows(train: pd.DataFrame, options: ExplainerOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The explainer's background rows and the mimic's training rows, drawn from the train data
    with the run's seed (the live dashboard draws the same ones to explain an edited row)."""
    rng = np.random.default_rng(options.random_state)
    drawn = [
        train.iloc[np.sort(rng.choice(len(train), min(size, len(train)), replace=False))].reset_index(drop=True)
        for size in (options.background_size, options.mimic_train_size)
    ]
    return drawn[0], drawn[1]


def run_explainer(
    constructor_dir: str | Path, output_dir: str | Path, *, options: ExplainerOptions = ExplainerOptions()
) -> ExplainerResult:
    """Explain the model on the chosen rows (this shard of them) and write the explanation."""
    started = time.perf_counter()
    before = served_model.counts()  # a served model's calls, for meta.json
    audit = load_constructor_artifact(constructor_dir)
    meta = audit.meta
    model = audit.load_model()
    features = meta["model_features"]
    train = A.read_parquet(audit.folder / A.TRAIN_FILE)[features]
    all_rows = _explained_rows(audit, options)
    if options.shard_count > len(all_rows):
        raise RAIInputError(
            f"`shard_count` ({options.shard_count}) must not exceed the number of rows to explain ({len(all_rows)})"
        )
    shard_rows = np.array_split(all_rows, options.shard_count)[options.shard_index]
    test = audit.features[features]
    classes = meta["classes"]
    built = build_explainer(model, train, test, classes, audit.is_classifier, options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap and interpret-community warn about versions
        try:
            raw_values, expected = built.explain(
                test.iloc[shard_rows].reset_index(drop=True), len(classes) if classes else None
            )
        except Exception as err:  # shap/interpret-community refuse models in many ways
            raise RAIInputError(
                f"`method` {built.method!r} cannot explain {built.estimator} "
                f"({type(err).__name__}: {err}); use method 'auto'"
            ) from err
    fidelity = _fidelity(built, test, audit.y_pred.to_numpy(), audit.is_classifier)
    method, explainer = built.method, built.explainer
    labels = [str(c) for c in classes] if classes and raw_values.shape[0] == len(classes) else ["output"]
    local = pd.concat(
        [
            pd.DataFrame(raw_values[k], columns=features).assign(**{A.ROW_ID: shard_rows, CLASS_COLUMN: label})
            for k, label in enumerate(labels)
        ],
        ignore_index=True,
    )[[A.ROW_ID, CLASS_COLUMN, *features]]
    info = {
        "method": method,
        "explainer": getattr(explainer, "DESCRIPTION", type(explainer).__name__),
        "estimator": built.estimator,
        "fidelity": fidelity,
        "expected_values": dict(zip(labels, expected.tolist())),
        # The train rows the method drew: linear SHAP's background and the feature map's probe
        # rows, or the rows the mimic's surrogate learned from (it uses no background).
        "background": None
        if method == "mimic"
        else {"size": min(options.background_size, len(train)), "seed": options.random_state},
        "surrogate_rows": {"size": min(options.mimic_train_size, len(train)), "seed": options.random_state}
        if method == "mimic"
        else None,
        "rows": {
            "selection": options.rows,
            "total": int(len(all_rows)),
            "shard_index": options.shard_index,
            "shard_count": options.shard_count,
        },
        "notes": built.notes,
    }
    seconds = time.perf_counter() - started
    _write(Path(output_dir), audit, local, info, options, seconds, served_model.calls_since(model, before))
    return ExplainerResult(audit.run_id, method, len(shard_rows), seconds)


def merge_explanations(
    constructor_dir: str | Path, shard_dirs: list[str | Path], output_dir: str | Path
) -> ExplainerResult:
    """Join the shards of one explanation into the result of an unsharded run."""
    started = time.perf_counter()
    audit = load_constructor_artifact(constructor_dir)
    shards = [
        (meta, A.read_json(folder / A.INSIGHT_RESULT_FILE), A.read_parquet(folder / LOCAL_FILE))
        for folder, meta in read_shards(audit.run_id, shard_dirs, KIND)
    ]
    first_meta, first, _ = shards[0]
    local = pd.concat([s[2] for s in shards], ignore_index=True)
    order = {label: i for i, label in enumerate(first["expected_values"])}
    local = local.sort_values(
        [CLASS_COLUMN, A.ROW_ID], key=lambda col: col.map(order) if col.name == CLASS_COLUMN else col, kind="stable"
    ).reset_index(drop=True)
    info = {
        k: first.get(k)  # surrogate_rows: missing in shards written before it was recorded
        for k in (
            "method",
            "explainer",
            "estimator",
            "fidelity",
            "expected_values",
            "background",
            "surrogate_rows",
            "notes",
        )
    }
    info["rows"] = {**first["rows"], "shard_index": 0, "shard_count": 1, "merged_from": len(shards)}
    options = ExplainerOptions(**{**first_meta["options"], "shard_index": 0, "shard_count": 1})
    seconds = time.perf_counter() - started
    _write(Path(output_dir), audit, local, info, options, seconds, served_model.summed_calls(s[0] for s in shards))
    return ExplainerResult(audit.run_id, info["method"], len(local[A.ROW_ID].unique()), seconds)


def _parser() -> argparse.ArgumentParser:
    return sharded_parser("explainer", __doc__.splitlines()[0], "explanation", "explaining")


def main(argv: list[str] | None = None) -> int:
    return run_sharded_cli(
        _parser(),
        argv,
        "explainer",
        run_explainer,
        merge_explanations,
        lambda output, r: f"explanation written to {output} ({r.method}, {r.n_rows} rows, {r.seconds:.1f} s)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
