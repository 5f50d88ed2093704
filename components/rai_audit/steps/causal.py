"""The causal step: which features really move the outcome, by how much, and for whom.

econml's ``CausalAnalysis`` (the analysis Azure ML's causal component runs) is fitted once,
on the train data and its true outcome (not the model's predictions: the question is how
the world responds to a treatment), with double machine learning per treatment feature:
nuisance models predict the outcome and the treatment from all other features, and the
effect is estimated on what they leave unexplained. That one fit then gives every output:

- global effects (the fit data's average effect, per unit of a numeric treatment or per
  level against the control level of a categorical one) with standard error, p-value and
  confidence interval, and the same on the test set, per cohort and per sensitive group;
- local (per row) effects for the explained rows (the constructor's sample, or all);
- per treatment, the policy: a shallow tree saying whom to treat (each leaf also as a
  cohort filter), the gain of following it and of treating everyone, and each test row's
  recommendation with its expected gain, net of ``treatment_cost``.

The outcome of a binary classifier is the probability of the positive label; multiclass
is refused (CausalAnalysis supports one outcome). The fit needs complete rows: a missing
category becomes the level ``(missing)``, a missing number the fit sample's median (both
counted in the output), and train rows missing a numeric treatment or the outcome are left out.
The fit's cost grows with the train rows (about 17 s on all 32,561 Adult rows on 2 cores,
and 7 s on 5,000; bench/causal_bench.py), so ``train_sample_size`` bounds them (seeded, recorded, 0 = all). Test rows
with a category the fit never saw are counted per feature in the output; in a heterogeneity
feature such a row gets the effect at that feature's first level, since categorical
heterogeneity features are encoded with their first level as the reference (econml encodes
every level beside an intercept, which leaves its final stage rank-deficient by construction).

What the output may be trusted for is checked per treatment before and after the fit:

- identification: the first stage (the treatment predicted from every other feature, a ridge
  and a small LightGBM, 3-fold cross-validated on at most 3,000 fit rows): its R^2 (for a
  categorical treatment, 1 - Brier score / the Brier score of the level shares) and, for a
  categorical treatment, the overlap (the smallest propensity of any level, and the share of
  rows for which some level has a propensity under 5%). A treatment the other features
  determine (R^2 > 0.95) is *not estimable from these data*: it is not fitted and no number
  is reported for it.
- inference: a treatment whose final stage is rank-deficient (econml's "Co-variance matrix is
  underdetermined. Inference will be invalid!") keeps its point estimates but loses its
  standard errors, intervals and p-values everywhere. econml's warnings are kept per
  treatment where they name it, each with a sentence in plain words.
- role: a treatment on a protected feature (sensitive or immutable, from the constructor) is
  an attribute, not a lever: its effect is estimated (does it drive the outcome?) but it
  gets no policy and no recommendation.

Policies follow the constructor's ``desired_outcome``: with "decrease" (the positive label
or a high target is the bad outcome) a gain is a fall of the outcome. Each policy is one
tree (econml's PolicyTree on every evaluated row's net value of each option); the per-row
recommendations are that tree's, so its leaves' counts add up to the recommendation counts.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.core.cohorts import all_of
from rai_audit.core.constructor_artifact import ConstructorArtifact, load_constructor_artifact
from rai_audit.core.loading import import_without
from rai_audit.core.shards import read_shards
from rai_audit.specs import CausalOptions
from rai_audit.steps._cli import run_sharded_cli, sharded_parser

KIND = "causal"
LOCAL_EFFECTS_FILE = "local_effects.parquet"
RECOMMENDATIONS_FILE = "policy_recommendations.parquet"
MISSING = "(missing)"
OTHER = "(other)"  # the rare levels of a categorical feature with many (see _group_rare_levels)
EFFECT_COLUMNS = ("point", "stderr", "zstat", "p_value", "ci_lower", "ci_upper")  # econml's names
# Warnings about library API changes say nothing about this analysis, nor does a ResourceWarning
# (another object of the process, e.g. a finished subprocess, collected while the fit ran: it made
# a served-model audit's warnings differ from its file audit's); unseen categories are counted in
# the output (unseen_categories_in_test).
IGNORED_WARNINGS = (FutureWarning, DeprecationWarning, PendingDeprecationWarning, ResourceWarning)
IGNORED_WARNING_TEXT = ("A column-vector y was passed", "Found unknown categories in columns")
R2_LIMIT = 0.95  # first-stage R^2 above which a treatment's effect is not estimable from the data
EXTREME_PROPENSITY = 0.05  # a level this unlikely (for a row) leaves the row without overlap
OVERLAP_WARNING_SHARE = 0.1  # share of rows without overlap that earns a warning
DIAGNOSTIC_ROWS = 3000  # fit rows the first-stage diagnostics use (seeded sample)


@dataclass
class CausalResult:
    run_id: str
    treatments: list[str]
    fit_rows: int
    fit_seconds: float
    seconds: float


def _check(audit: ConstructorArtifact, options: CausalOptions) -> None:
    meta = audit.meta
    features, target = meta["model_features"], meta["target_column"]
    if target in options.treatment_features:
        raise RAIInputError(
            f"`treatment_features` names the target column {target!r}: the outcome cannot be its own treatment"
        )
    unknown = [f for f in options.treatment_features if f not in features]
    if unknown:
        raise RAIInputError(f"`treatment_features` names unknown features {unknown}; the features are {features}")
    if options.heterogeneity_features:
        unknown = [f for f in options.heterogeneity_features if f not in features]
        if unknown:
            raise RAIInputError(
                f"`heterogeneity_features` names unknown features {unknown}; the features are {features}"
            )
    if isinstance(options.categories, dict):
        wrong = [
            f
            for f in options.categories
            if f not in options.treatment_features or f not in meta["categorical_features"]
        ]
        if wrong:
            raise RAIInputError(f"`categories` names {wrong}, which are not categorical treatment features")
    if audit.task == "multiclass_classification":
        raise RAIInputError(
            "causal analysis supports regression and binary classification (econml's "
            "CausalAnalysis estimates one outcome); this audit is multiclass"
        )


def _fit_rows(n_rows: int, options: CausalOptions) -> np.ndarray:
    """Positions of the train rows to fit on: all, or a seeded sample."""
    if options.train_sample_size == 0 or options.train_sample_size >= n_rows:
        return np.arange(n_rows)
    rng = np.random.default_rng(options.random_state)
    return np.sort(rng.choice(n_rows, options.train_sample_size, replace=False))


def _prepared(frame: pd.DataFrame, categorical: list[str], medians: dict[str, float]) -> pd.DataFrame:
    """Complete rows as CausalAnalysis needs them: categories as text, missing ones as the
    level ``(missing)``; missing numbers as the fit sample's median. Object column index:
    CausalAnalysis fails on pandas 3's string index."""
    out = frame.copy()
    for c in out.columns:
        if c in categorical:
            out[c] = out[c].astype(object).where(out[c].notna(), MISSING).astype(str).astype(object)
        else:
            out[c] = out[c].astype(float).fillna(medians[c])
    out.columns = pd.Index([str(c) for c in out.columns], dtype=object)
    return out


def _outcome(audit: ConstructorArtifact, y: pd.Series) -> tuple[pd.Series, str]:
    if audit.is_classifier:
        positive = audit.meta["positive_label"]
        return (y == positive).astype(int), f"probability of {audit.meta['target_column']} = {positive}"
    return y.astype(float), str(audit.meta["target_column"])


def _levels(X: pd.DataFrame, treatment: str, options: CausalOptions) -> list[str]:
    """A categorical treatment's levels as text, the control first: as given in
    ``categories``, else sorted with ``(missing)`` last (never the control by accident)."""
    present = set(X[treatment].unique())
    if isinstance(options.categories, dict) and treatment in options.categories:
        given = [MISSING if v is None else str(v) for v in options.categories[treatment]]
        unlisted = sorted(present - set(given))
        if unlisted:
            raise RAIInputError(
                f"`categories` for {treatment!r} lists {given}, but the data also has the levels "
                f"{unlisted}; list every level (the control first)"
            )
        return given
    return sorted(present - {MISSING}) + ([MISSING] if MISSING in present else [])


def _effect_table(frame: pd.DataFrame, treatments: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """econml's effect table (index outcome, feature, feature_value) with one row per
    treatment and level, the level and control spelled out."""
    # Whole columns at a time: local effects hold one row per test row and treatment level.
    features = frame.index.get_level_values(1).astype(str)
    values = frame.index.get_level_values(2).astype(str)
    levels, controls = [], []
    for feature, value in zip(features, values):
        info = treatments[feature]
        level = None
        if info["kind"] != "numeric":
            level = next((lv for lv in info["levels"] if f"{lv}v{info['control']}" == value), None)
            if level is None:  # econml names a level "<level>v<control>"; anything else is a change upstream
                raise RuntimeError(f"econml reported an unexpected level {value!r} of {feature!r}")
        levels.append(level)
        controls.append(info["control"])
    table = pd.DataFrame({"treatment": features, "level": levels, "control": controls})
    for c in EFFECT_COLUMNS:
        table[c] = frame[c].to_numpy(dtype=float)
    return table


INFERENCE_COLUMNS = ("stderr", "zstat", "p_value", "ci_lower", "ci_upper")


def _without_invalid_inference(table: pd.DataFrame, invalid: set[str]) -> pd.DataFrame:
    """Effect rows of a treatment whose inference is invalid keep the point estimate only."""
    if invalid and len(table):
        table = table.astype({c: object for c in INFERENCE_COLUMNS})
        table.loc[table["treatment"].isin(invalid), list(INFERENCE_COLUMNS)] = None
    return table


def _direction(desired: str, outcome: str) -> dict[str, str]:
    """What counts as good, in words for the page and the PDF."""
    better = "higher" if desired == "increase" else "lower"
    return {
        "better": f"a {better} {outcome}",
        "gain": f"the expected {'rise' if desired == 'increase' else 'fall'} of the {outcome} "
        "(net of the treatment's cost); a positive gain is good",
    }


def _verdict(treatment: str, info: dict[str, Any], untrained: dict[str, str]) -> str:
    """One sentence on what the figures of a treatment may be used for."""
    ident = info["identification"]
    if not info["estimable"]:
        return (
            f"not estimable from these data: the other features predict {treatment} almost exactly "
            f"(first-stage R² {ident['first_stage_r2']:.3f} > {R2_LIMIT}, {ident['first_stage_model']}), "
            "so its effect cannot be told apart from theirs; no effect, interval, p-value or policy is reported"
        )
    if treatment in untrained:
        return f"not estimated: econml could not fit it ({untrained[treatment]})"
    parts = []
    if info["role"] == "attribute":
        parts.append(
            f"attribute, not a lever: {treatment} is a {info['protected_as']} feature, so its effect is estimated "
            "(does this attribute drive the outcome?) but no policy or recommendation is made"
        )
    else:
        parts.append("a lever: effect and policy estimated")
    if not info["inference_valid"]:
        fs = info.get("final_stage") or {}
        parts.append(
            f"intervals and p-values not shown: the final stage of the estimate is rank-deficient "
            f"(rank {fs.get('rank')} of {fs.get('coefficients')} coefficients), so its inference is invalid"
        )
    overlap = ident.get("overlap")
    if overlap and overlap["share_without_overlap"] > OVERLAP_WARNING_SHARE:
        parts.append(
            f"weak overlap: for {overlap['share_without_overlap']:.0%} of rows some level has a propensity "
            f"under {EXTREME_PROPENSITY:.0%}, so their effects rest on extrapolation"
        )
    return "; ".join(parts)


def _tree_nodes(
    tree: dict[str, Any], names: dict[str, tuple[str, Any]], medians: dict[str, float]
) -> list[dict[str, Any]]:
    """econml's policy tree (nested dict, splits on encoded columns) as a list of nodes, each
    with its filter in the cohort format (on the raw data) so any leaf can be saved as a cohort.

    ``names``: one-hot column -> (feature, raw category value; None for a missing one).
    The tree saw a missing number as the median, so missing values go to the median's side.
    """
    nodes: list[dict[str, Any]] = []

    def visit(node: dict[str, Any], parent: int | None, conditions: list[dict[str, Any]]) -> int:
        node_id = len(nodes)
        entry: dict[str, Any] = {
            "id": node_id,
            "parent": parent,
            "depth": len(conditions),
            "filter": all_of(conditions),
            "count": int(node.get("n_samples", 0)),
        }
        nodes.append(entry)
        if node["leaf"]:
            entry.update(leaf=True, treatment=node["treatment"], gain=node.get("gain"), children=[])
            return node_id
        encoded, threshold = str(node["feature"]), float(node["threshold"])
        if encoded in names:  # a one-hot column: <= 0.5 means "not this category"
            feature, category = names[encoded]
            left = {"column": feature, "op": "!=", "value": category}
            right = {"column": feature, "op": "==", "value": category}
            split = {"feature": feature, "op": "==", "value": category, "true_goes": "right"}
        else:
            left = {"column": encoded, "op": "<=", "value": threshold}
            right = {"column": encoded, "op": ">", "value": threshold}
            split = {
                "feature": encoded,
                "op": "<=",
                "value": threshold,
                "true_goes": "left",
                "missing_values_go": "left" if medians[encoded] <= threshold else "right",
            }
            missing = {"column": encoded, "op": "==", "value": None}
            if split["missing_values_go"] == "left":
                left = {"or": [left, missing]}
            else:
                right = {"or": [right, missing]}
        entry.update(leaf=False, split=split)
        entry["children"] = [
            visit(node["left"], node_id, [*conditions, left]),
            visit(node["right"], node_id, [*conditions, right]),
        ]
        entry["count"] = sum(nodes[c]["count"] for c in entry["children"])  # the tree keeps leaves' counts
        return node_id

    visit(tree, None, [])
    return nodes


def _identification(
    X_fit: pd.DataFrame, treatment: str, categorical: list[str], levels: list[str] | None, seed: int
) -> dict[str, Any]:
    """How well the other features predict the treatment (first stage, cross-validated) and,
    for a categorical treatment, the overlap of its levels. A treatment the others determine
    leaves no variation of its own to estimate an effect from."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rows = X_fit
    if len(rows) > DIAGNOSTIC_ROWS:
        rows = rows.iloc[np.sort(np.random.default_rng(seed).choice(len(rows), DIAGNOSTIC_ROWS, replace=False))]
    others = [c for c in rows.columns if c != treatment]
    encode = ColumnTransformer(
        [
            (
                "cat",
                OneHotEncoder(drop="first", handle_unknown="ignore", sparse_output=False),
                [c for c in others if c in categorical],
            ),
            ("num", StandardScaler(), [c for c in others if c not in categorical]),
        ]
    )
    Z = encode.fit_transform(rows[others]) if others else np.zeros((len(rows), 0))
    if Z.shape[1] == 0:  # nothing else (or only constant columns) to predict the treatment from
        Z = np.zeros((len(rows), 1))
    folds = KFold(3, shuffle=True, random_state=seed)
    small_trees: dict[str, Any] = dict(  # LightGBM's keyword arguments
        n_estimators=100,
        num_leaves=15,
        learning_rate=0.1,
        min_child_samples=10,
        random_state=seed,
        n_jobs=1,
        verbose=-1,
    )
    out: dict[str, Any] = {"rows": int(len(rows)), "r2_limit": R2_LIMIT}
    if levels is None:
        t = rows[treatment].to_numpy(dtype=float)
        if np.ptp(t) == 0:  # a constant treatment: econml refuses it (reported as untrained)
            return {**out, "first_stage_r2": None, "first_stage_model": None, "overlap": None}
        predicted = {
            "linear": cross_val_predict(RidgeCV(alphas=np.logspace(-4, 2, 7)), Z, t, cv=folds),
            "boosted trees": cross_val_predict(LGBMRegressor(**small_trees), Z, t, cv=folds),
        }
        r2 = {name: float(1 - np.mean((t - p) ** 2) / np.var(t)) for name, p in predicted.items()}
        best = max(r2, key=r2.__getitem__)
        return {**out, "first_stage_r2": r2[best], "first_stage_model": best, "overlap": None}
    labels = rows[treatment].to_numpy()
    present = [lv for lv in levels if (labels == lv).any()]
    if len(present) < 2:
        return {**out, "first_stage_r2": None, "first_stage_model": None, "overlap": None}
    onehot = (labels[:, None] == np.array(present, dtype=object)[None, :]).astype(float)
    codes = onehot.argmax(axis=1)
    probabilities = {}
    for name, model in (
        ("linear", LogisticRegression(max_iter=1000)),
        ("boosted trees", LGBMClassifier(**small_trees)),
    ):
        with warnings.catch_warnings():  # a level missing from a fold: its column is 0 there
            warnings.simplefilter("ignore")
            probabilities[name] = cross_val_predict(model, Z, codes, cv=folds, method="predict_proba")
    shares = onehot.mean(axis=0)
    brier_null = float(np.sum(shares * (1 - shares)))
    r2 = {name: float(1 - np.mean(np.sum((onehot - p) ** 2, axis=1)) / brier_null) for name, p in probabilities.items()}
    best = max(r2, key=r2.__getitem__)
    p = probabilities[best]
    return {
        **out,
        "first_stage_r2": r2[best],
        "first_stage_model": best,
        "overlap": {
            "min_propensity": float(p.min()),
            "extreme_propensity": EXTREME_PROPENSITY,
            "share_without_overlap": float((p < EXTREME_PROPENSITY).any(axis=1).mean()),
        },
    }


class _DropFirstLevel:
    """While econml fits: encode categorical heterogeneity features with their first level as
    the reference. econml encodes every level beside the final stage's intercept, which makes
    that stage rank-deficient whenever a categorical feature is a heterogeneity feature (and
    raises "Inference will be invalid!" for a design problem of its own making); with one
    reference level a remaining rank deficiency means a real one. The effects move only
    through the nuisance models' regularisation, which sees one column fewer (the demo's
    hours-per-week effect 0.0031305 -> 0.0031293, its standard error 0.00039100 -> 0.00039081)."""

    def __enter__(self) -> _DropFirstLevel:
        from econml.solutions.causal_analysis import _causal_analysis as module
        from econml.solutions.causal_analysis._causal_analysis import _ColumnTransformer as base
        from sklearn.preprocessing import OneHotEncoder
        from sklearn.utils import _safe_indexing

        class Encoder(base):
            def fit(self, X: Any) -> Encoder:
                super().fit(X)
                if self.has_cats:
                    self.one_hot_encoder = OneHotEncoder(
                        drop="first", handle_unknown="ignore", sparse_output=False
                    ).fit(_safe_indexing(X, self.categorical, axis=1))
                return self

        self.module, self.base = module, base
        module._ColumnTransformer = Encoder
        return self

    def __exit__(self, *exc: object) -> None:
        self.module._ColumnTransformer = self.base


def _csr(X: Any) -> Any:
    """``scipy.sparse.csr_matrix(X)``: the same matrix (sorted int32 indices), built from a dense
    design's non-zero positions in one pass instead of scipy's way through a COO matrix, which
    took ~2 s of the ~20 s of Adult's causal fit (each fold's design is converted on every fit
    and prediction)."""
    from scipy import sparse

    if sparse.issparse(X) or np.ndim(X) != 2 or np.size(X) >= 2**31:  # int32 indices: scipy's own way
        return sparse.csr_matrix(X)
    X = np.ascontiguousarray(X)
    positions = np.flatnonzero(X)
    indptr = np.zeros(X.shape[0] + 1, dtype=np.int32)
    np.cumsum(np.count_nonzero(X, axis=1), out=indptr[1:])
    columns = (positions % X.shape[1]).astype(np.int32)
    return sparse.csr_matrix((X.ravel()[positions], columns, indptr), shape=X.shape)


class _LeanLinearNuisance:
    """While econml fits "linear" nuisance models: the same models, fitted on cheaper designs.

    - Logistic models (the outcome of a classifier, a categorical treatment) get the design as a
      sparse matrix when at most half of it is non-zero (one-hot columns: Adult's is 13% full).
      L-BFGS reads the whole design twice per step; dense, a fold's (~26,000 x 100, 21 MB) does
      not stay in the 32 MiB cache two fits share, sparse (~4 MB) does. The same model (on
      Adult the same C chosen); the sums run in another order, so a fit may stop one L-BFGS
      step apart.
    - Lasso models (a numeric treatment, the outcome of a regressor) use the precomputed Gram
      matrix when there are more rows than columns, as econml's own LassoCV already does when
      choosing alpha: the same coordinate descent on the same data.

    On all 32,561 Adult train rows (2 cores, bench/README.md) the fit took 16-17 s instead of
    28-34 s; age's and hours-per-week's effects and intervals were the same to 7 digits, sex's
    moved by 3e-6 (a thousandth of its standard error). The "automl" nuisance models are left
    as econml has them."""

    def __enter__(self) -> _LeanLinearNuisance:
        from econml.solutions.causal_analysis import _causal_analysis as module
        from scipy import sparse
        from sklearn.linear_model import Lasso
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer

        classifier, regressor = module._first_stage_clf, module._first_stage_reg

        def first_stage_classifier(
            X: Any, y: Any, *, make_regressor: bool = False, automl: bool = True, **kw: Any
        ) -> Any:
            if automl or sparse.issparse(X) or np.count_nonzero(X) > X.size / 2:
                return classifier(X, y, make_regressor=make_regressor, automl=automl, **kw)
            model = make_pipeline(
                FunctionTransformer(_csr, accept_sparse=True),
                classifier(_csr(X), y, automl=False, **kw),  # C is chosen on the sparse design too
            )
            return module._RegressionWrapper(model) if make_regressor else model

        def first_stage_regressor(X: Any, y: Any, **kw: Any) -> Any:
            model = regressor(X, y, **kw)
            gram = isinstance(model, Lasso) and X.shape[0] > X.shape[1]  # LassoCV's own rule ("auto")
            return model.set_params(precompute=True) if gram else model

        self.module, self.originals = module, (classifier, regressor)
        module._first_stage_clf, module._first_stage_reg = first_stage_classifier, first_stage_regressor
        return self

    def __exit__(self, *exc: object) -> None:
        self.module._first_stage_clf, self.module._first_stage_reg = self.originals


def _longest_first(treatments: list[str], levels: dict[str, list[str]]) -> list[str]:
    """The treatments in the order econml's workers take them: a categorical treatment (a
    classifier chosen by cross-validation, per level) before a numeric one (a Lasso), more levels
    first. econml hands them out in the order given; with two workers and Adult's three (age
    6.5 s, hours-per-week 6.4 s, sex 9.5 s) that order left one worker idle while the other fitted
    sex last, 17.7 s in all; longest first, 13.3 s (bench/README.md)."""
    return sorted(treatments, key=lambda t: -len(levels.get(t, [None])))  # stable: ties keep their order


def _in_given_order(analysis: Any, treatments: list[str], columns: pd.Index) -> None:
    """Put econml's fitted treatments back in the order the user gave them: every table of
    effects (global, cohort, local) lists them in econml's order of results."""
    position = {t: i for i, t in enumerate(treatments)}
    analysis._results.sort(key=lambda result: position[result.feature_name])
    analysis.trained_feature_indices_.sort(key=lambda i: position[columns[i]])
    analysis.feature_inds = treatments


def _final_stage_rank(analysis: Any, treatment: str) -> tuple[int, int] | None:
    """(rank, coefficients) of the treatment's final-stage design: the condition econml's
    'Co-variance matrix is underdetermined' warning tests, per treatment. None for a forest."""
    result = next(r for r in analysis._results if r.feature_name == treatment)
    final = getattr(result.estimator, "model_final_", None)
    gram = getattr(final, "XX", None)
    if gram is None:
        return None
    return int(np.linalg.matrix_rank(gram)), int(gram.shape[0])


def _row_effects(estimator: Any, X: np.ndarray | None, n: int) -> np.ndarray:
    """Each row's effect per option against the control, shape (n, options): per unit of a
    numeric treatment, per level of a categorical one (econml adds an outcome axis)."""
    effect = np.asarray(estimator.const_marginal_effect(X), dtype=float)
    effect = effect.reshape(effect.shape[0], -1)
    return np.broadcast_to(effect, (n, effect.shape[1])) if effect.shape[0] != n else effect


def _policy(
    analysis: Any,
    X_eval: pd.DataFrame,
    treatment: str,
    info: dict[str, Any],
    cost: float,
    options: CausalOptions,
    names: dict[str, tuple[str, Any]],
    medians: dict[str, float],
    sign: float,
    inference: bool,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The policy tree, its gains, and every evaluated row's recommendation: the tree's.

    ``sign`` is +1 when a higher outcome is better, -1 when a lower one is: a gain is the
    outcome's change times ``sign``, net of the cost. The tree (econml's PolicyTree with the
    settings of its SingleTreePolicyInterpreter) is fitted on every row's net value of each
    option per unit (0 for the control / for "decrease", as econml does) and assigns each row
    its leaf's option, so the counts of its leaves are the recommendation counts."""
    from econml.policy import PolicyTree

    rows = X_eval
    excluded = 0
    if info["kind"] == "categorical":  # a switch from a level the fit never saw cannot be priced
        known = rows[treatment].isin([info["control"], *info["levels"]])
        excluded, rows = int((~known).sum()), rows[known]
    if rows.empty:
        return {
            "treatment": treatment,
            "excluded_rows": excluded,
            "rows": 0,
            "tree": [],
            "policy_gain": None,
            "always_treat_gains": {},
            "recommendation_counts": {},
            "top_recommendations": [],
        }, pd.DataFrame()
    result = analysis._safe_result_index(rows, treatment)
    X_het = result.X_transformer.transform(rows)
    X_het = X_het if X_het.shape[1] else None
    estimator, n = result.estimator, len(rows)
    effect = _row_effects(estimator, X_het, n)  # (n, options), outcome units
    value = sign * effect - cost  # net value per unit (numeric) or per switch from the control
    numeric = info["kind"] == "numeric"
    options_names = ["decrease", "increase"] if numeric else [info["control"], *info["levels"]]
    tree_X, tree_names = _tree_features(result.X_transformer, rows, list(analysis.feature_names_))
    tree = PolicyTree(
        criterion="neg_welfare",
        splitter="best",
        max_depth=options.max_tree_depth,
        min_samples_split=2,
        min_samples_leaf=options.min_tree_leaf_samples,
        min_impurity_decrease=1e-4,
        honest=False,
        random_state=options.random_state,
    ).fit(tree_X, np.hstack([np.zeros((n, 1)), value]))
    choice = np.asarray(tree.predict(tree_X), dtype=int)
    leaf_of = tree.apply(tree_X)
    recommended = np.array(options_names, dtype=object)[choice]

    if numeric:
        # econml's unit of a policy move: 10% of a typical value (cost is per unit of it)
        step = info["typical_value"] * 0.1
        direction = np.where(choice == 1, 1.0, -1.0)
        current = rows[treatment].to_numpy(dtype=float)
        change = direction * effect[:, 0] * step  # the outcome's change by the move
        gain = direction * value[:, 0] * step
        moved = estimator.effect_inference(X_het, T0=0, T1=step) if inference else None
        if moved is not None and X_het is None:
            moved = moved._expand_outputs(n)
        always = {"increase": float(value[:, 0].mean() * step)}
    else:
        step = None
        current = rows[treatment].astype(str).to_numpy(dtype=object)
        position = {level: i for i, level in enumerate(options_names)}
        now = np.array([position[c] for c in current])
        padded_effect, padded_value = (np.hstack([np.zeros((n, 1)), a]) for a in (effect, value))
        change = padded_effect[np.arange(n), choice] - padded_effect[np.arange(n), now]
        gain = padded_value[np.arange(n), choice] - padded_value[np.arange(n), now]
        moved = estimator.effect_inference(X_het, T0=current, T1=recommended) if inference else None
        direction = np.ones(n)
        always = {level: float(value[:, i].mean()) for i, level in enumerate(info["levels"])}
    if moved is not None:
        low, high = (np.asarray(b, dtype=float).reshape(n) for b in moved.conf_int(alpha=options.alpha))
        if numeric:  # the interval of one increase, turned into the chosen move's
            low, high = np.where(direction > 0, low, -high), np.where(direction > 0, high, -low)
        # the change's interval -> the gain's: times sign (a fall is good under "decrease"), net of cost
        low, high = (low, high) if sign > 0 else (-high, -low)
        shift = gain - sign * change
        gain_low, gain_high = low + shift, high + shift
    else:
        gain_low = gain_high = np.full(n, np.nan)
    table = (
        pd.DataFrame(
            {
                A.ROW_ID: rows.index.to_numpy(dtype=np.int64),
                "current": current,
                "recommended": recommended.astype(str),
                "outcome_change": change,
                "gain": gain,
                "gain_ci_lower": gain_low,
                "gain_ci_upper": gain_high,
            }
        )
        .sort_values("gain", ascending=False, kind="stable")
        .reset_index(drop=True)
    )

    nodes = _tree_nodes(_tree_dict(tree, tree_names, options_names, leaf_of, choice, gain), names, medians)
    summary = {
        "treatment": treatment,
        "control": options_names[0],
        "cost": cost,
        "rows": int(n),
        "excluded_rows": excluded,
        "policy_gain": float(gain.mean()),
        "always_treat_gains": always,
        "tree": nodes,
        "recommendation_counts": {str(k): int(v) for k, v in pd.Series(recommended).value_counts().items()},
        "top_recommendations": table.head(options.top_recommendations).to_dict("records"),
    }
    if numeric:
        summary["step"] = step
    return summary, table.assign(treatment_feature=treatment)


def _policy_evidence(treatment: str, global_effects: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """Whether the data show the treatment moves the outcome at all: some effect of it (a level,
    or the unit effect) whose interval excludes 0. Without that, a policy is still drawn (the
    point estimates give one) but said to be no basis for action."""
    rows = [e for e in global_effects if e["treatment"] == treatment]
    shown = [e for e in rows if e.get("ci_lower") is not None and e.get("ci_upper") is not None]
    supported = any(e["ci_lower"] > 0 or e["ci_upper"] < 0 for e in shown)
    level = f"{(1 - alpha) * 100:g}%"
    if supported:
        note = None
    elif not shown:
        note = f"no valid interval for the effect of {treatment}: this policy is no basis for action"
    else:
        note = (
            f"the {level} interval of every effect of {treatment} includes 0: the data do not show that "
            f"{treatment} moves the outcome, so this policy is no basis for action"
        )
    return {"supported": supported, "note": note}


def _tree_features(transformer: Any, rows: pd.DataFrame, feature_names: list[str]) -> tuple[np.ndarray, list[str]]:
    """What the policy tree may split on: the treatment's heterogeneity features, numbers as
    they are and every level of a category as its own column (the estimator's encoding drops
    one level, which would leave the tree unable to single it out). A column of zeros when
    there are none: one leaf."""
    columns = [rows.iloc[:, i].to_numpy(dtype=float) for i in transformer.passthrough]
    names = [feature_names[i] for i in transformer.passthrough]
    if transformer.has_cats:
        for j, i in enumerate(transformer.categorical):
            values = rows.iloc[:, i].to_numpy()
            for level in transformer.one_hot_encoder.categories_[j]:
                columns.append((values == level).astype(float))
                names.append(f"{feature_names[i]}_{level}")
    if not columns:
        return np.zeros((len(rows), 1)), ["(none)"]
    return np.column_stack(columns), names


def _tree_dict(
    tree: Any, features: list[str], options_names: list[str], leaf_of: np.ndarray, choice: np.ndarray, gain: np.ndarray
) -> dict[str, Any]:
    """The fitted PolicyTree as a nested dict, each leaf with the rows it holds, the option it
    gives them (the one ``predict`` gave every row) and their mean gain."""
    structure = tree.tree_

    def visit(node: int) -> dict[str, Any]:
        if structure.children_left[node] < 0:
            members = leaf_of == node
            options_here = np.unique(choice[members])
            assert len(options_here) <= 1  # a leaf gives one option
            return {
                "leaf": True,
                "n_samples": int(members.sum()),
                "treatment": options_names[int(options_here[0])] if len(options_here) else None,
                "gain": float(gain[members].mean()) if members.any() else None,
            }
        return {
            "leaf": False,
            "feature": features[structure.feature[node]],
            "threshold": float(structure.threshold[node]),
            "left": visit(structure.children_left[node]),
            "right": visit(structure.children_right[node]),
        }

    return visit(0)


# econml's warnings in plain words (matched on the start of their text).
PLAIN_WARNINGS = (
    (
        "Co-variance matrix is underdetermined",
        "the final stage of an estimate had fewer independent columns than "
        "coefficients, so standard errors, intervals and p-values of that estimate are not valid",
    ),
    (
        "Number of observations <= than number of parameters",
        "an estimate had no more rows than coefficients: its variance is biased",
    ),
    ("Exception caught when training model for feature", "no effect could be estimated for a treatment"),
    (
        "Using a linear model instead of a forest model",
        "a linear heterogeneity model was used instead of a forest (the treatment has no heterogeneity features)",
    ),
    (
        "Column ",
        "a categorical feature has a rare or very numerous level: no heterogeneity model for it, or one "
        "that may not be robust",
    ),
)


def _plain(category: str, text: str) -> str:
    for start, plain in PLAIN_WARNINGS:
        if text.startswith(start):
            return plain
    if category == "ConvergenceWarning":
        return "a model inside the estimate did not converge: its figures may be less precise"
    return "a warning from econml or scikit-learn while fitting; see the message"


def _collect_warnings(
    caught: list[warnings.WarningMessage], treatments: list[str], rank_deficient: list[str]
) -> list[dict[str, Any]]:
    """econml's warnings, counted, each with the treatment(s) it concerns and a plain sentence.
    The covariance warning names no treatment: it belongs to those whose final stage is
    rank-deficient (the condition it tests, checked per treatment)."""
    counts: Counter[tuple[str, str]] = Counter()
    for w in caught:
        text = str(w.message)
        if issubclass(w.category, IGNORED_WARNINGS) or text.startswith(IGNORED_WARNING_TEXT):
            continue
        counts[(w.category.__name__, text[:500])] += 1
    out = []
    for (category, text), n in counts.items():
        named = [t for t in treatments if f"({t})" in text or f"feature {t}:" in text or f"feature '{t}'" in text]
        if text.startswith("Co-variance matrix is underdetermined"):
            named = rank_deficient
        out.append({"message": f"{category}: {text}", "count": n, "treatments": named, "plain": _plain(category, text)})
    return out


def _group_rare_levels(
    X_fit: pd.DataFrame, X_test: pd.DataFrame, categorical: list[str], options: CausalOptions
) -> dict[str, dict[str, int]]:
    """Keep the ``upper_bound_on_cat_expansion`` most frequent levels of each categorical
    feature that is not a treatment, the others becoming the level ``(other)``, in place.

    Every level is a column of every nuisance model and of the final stage: three diagnosis
    codes of ~700 levels each (diabetes, 100,000 rows) made the fit take 6 minutes on 10,000
    rows that hold a handful of rows per rare level, too few to adjust for it anyway. The bound
    is the one econml puts on a categorical treatment's levels. Returns, per grouped feature,
    its number of levels and how many were kept."""
    grouped = {}
    for c in categorical:
        if c in options.treatment_features:
            continue
        counts = X_fit[c].value_counts(sort=True)
        if len(counts) <= options.upper_bound_on_cat_expansion:
            continue
        kept = set(counts.index[: options.upper_bound_on_cat_expansion])
        for X in (X_fit, X_test):
            X[c] = X[c].where(X[c].isin(kept), OTHER)
        grouped[c] = {"levels": int(len(counts)), "kept": len(kept)}
    return grouped


def shard_treatments(options: CausalOptions) -> list[str]:
    """The treatments this shard fits: every ``shard_count``-th, from ``shard_index``. Each
    treatment's fit is independent of the others' (econml fits them one by one with the same
    seed), so shards merge into exactly the unsharded result."""
    return options.treatment_features[options.shard_index :: options.shard_count]


def _import_causal_analysis() -> Any:
    """econml's CausalAnalysis, imported without matplotlib: econml imports it, where installed
    (CatBoost brings it), only to draw trees, which no step does (~0.3 s of the task's start)."""
    return import_without("econml.solutions.causal_analysis", "matplotlib").CausalAnalysis


def run_causal(constructor_dir: str | Path, output_dir: str | Path, *, options: CausalOptions) -> CausalResult:
    """Fit CausalAnalysis once and write effects (global, test, cohorts, groups, local) and policies."""
    CausalAnalysis = _import_causal_analysis()

    started = time.perf_counter()
    audit = load_constructor_artifact(constructor_dir)
    _check(audit, options)
    meta = audit.meta
    # The model's features: dropped columns (ids, timestamps kept for cohorts) never reach the fit.
    features, target = meta["model_features"], meta["target_column"]
    categorical = [f for f in features if f in meta["categorical_features"]]
    train = A.read_parquet(audit.folder / A.TRAIN_FILE)
    numeric_treatments = [t for t in options.treatment_features if t not in categorical]
    usable = train[target].notna() & train[numeric_treatments].notna().all(axis=1)
    if not usable.any():  # nothing left to fit on: name the column(s) that left every row out
        needed = [target, *numeric_treatments]
        empty = [c for c in needed if train[c].isna().all()]
        raise RAIInputError(
            "no train row can be fitted: a fitted row needs a value of the outcome and of every numeric "
            "treatment, and "
            + (f"{empty} have no value in any train row" if empty else f"no train row has a value in all of {needed}")
            + "; drop such treatments from `treatment_features` or fill in their values"
        )
    train = train[usable].reset_index(drop=True)
    fit_positions = _fit_rows(len(train), options)
    fit_raw = train.iloc[fit_positions]
    medians = {
        c: float(fit_raw[c].median()) if fit_raw[c].notna().any() else 0.0 for c in features if c not in categorical
    }
    X_fit = _prepared(fit_raw[features], categorical, medians)
    y_fit, outcome = _outcome(audit, fit_raw[target])
    X_test = _prepared(audit.features[features], categorical, medians)
    X_test.index = audit.predictions[A.ROW_ID].to_numpy()
    grouped = _group_rare_levels(X_fit, X_test, categorical, options)
    if audit.is_classifier and y_fit.nunique() < 2:
        raise RAIInputError(f"the train rows fitted hold one outcome only ({outcome} is always {y_fit.iloc[0]})")
    # Double machine learning adjusts for the other features: with none that varies, econml
    # fails deep inside ("Found array with 0 feature(s)"); say why instead.
    others = [f for f in features if f not in options.treatment_features]
    if not any(X_fit[f].nunique(dropna=False) > 1 for f in others):
        raise RAIInputError(
            f"causal analysis needs a model feature besides the treatments {list(options.treatment_features)} "
            f"that varies in the fitted train rows, to adjust for; "
            + (f"{others} are constant there" if others else "the model has no other feature")
        )

    # Every treatment's levels, also those of other shards: they are the categories of those
    # features as confounders here, so each shard fits exactly what the unsharded run fits.
    levels = {t: _levels(X_fit, t, options) for t in options.treatment_features if t in categorical}
    mine = shard_treatments(options)
    with threadpool_limits(limits=1):  # small fits: threads only contend (a loaded 2-core run took 10x longer)
        identification = {t: _identification(X_fit, t, categorical, levels.get(t), options.random_state) for t in mine}
    # A treatment the other features determine has no variation of its own: econml would
    # still print effects (and intervals) for it, all meaningless. It is not fitted.
    not_estimable = [t for t in mine if (identification[t]["first_stage_r2"] or 0.0) > R2_LIMIT]
    to_fit = [t for t in mine if t not in not_estimable]
    protected = audit.protected_features
    sign = 1.0 if audit.desired_outcome == "increase" else -1.0
    analysis = CausalAnalysis(
        _longest_first(to_fit, levels),
        categorical,
        heterogeneity_inds=options.heterogeneity_features,
        classification=audit.is_classifier,
        upper_bound_on_cat_expansion=options.upper_bound_on_cat_expansion,
        nuisance_models=options.nuisance_model,
        heterogeneity_model=options.heterogeneity_model,
        categories=[levels[c] if c in levels else "auto" for c in categorical],
        n_jobs=options.n_jobs,
        skip_cat_limit_checks=options.skip_cat_limit_checks,
        random_state=options.random_state,
    )
    fit_started = time.perf_counter()
    # Threads, not processes: the treatments share one copy of the data, and warnings raised
    # while fitting them reach this process, where they are kept for the output.
    with warnings.catch_warnings(record=True) as caught, joblib.parallel_config(backend="threading"):
        warnings.simplefilter("always")
        untrained, trained = [], []
        if to_fit:
            try:
                # One BLAS thread per fit, also with n_jobs 1: several fits each starting BLAS threads
                # on a small machine made the full Adult fit ~20x slower, and one fit's BLAS threads
                # beside another process holding a core made it ~10x slower (bench/README.md);
                # econml's coordinate descent and L-BFGS gain nothing from them at these sizes. The
                # effects afterwards keep BLAS's threads: their inference multiplies every cohort's
                # rows by the final stage's covariance (wide data: 855 x 855), which they speed up.
                with _DropFirstLevel(), _LeanLinearNuisance(), threadpool_limits(limits=1, user_api="blas"):
                    analysis.fit(X_fit, y_fit)
                _in_given_order(analysis, to_fit, X_fit.columns)
            except ValueError as err:
                reasons = {features[i]: str(r) for i, r in getattr(analysis, "untrained_feature_indices_", [])}
                raise RAIInputError(f"no treatment could be fitted ({err}); reasons: {reasons or 'see above'}") from err
            untrained = [
                {"treatment": X_fit.columns[i], "reason": str(reason)}
                for i, reason in analysis.untrained_feature_indices_
            ]
            trained = [X_fit.columns[i] for i in analysis.trained_feature_indices_]
            if not trained and not not_estimable:
                raise RAIInputError(f"no treatment could be fitted: {untrained}")
        fit_seconds = time.perf_counter() - fit_started

        treatments: dict[str, dict[str, Any]] = {}
        invalid_inference = set()
        for t in mine:
            info: dict[str, Any]
            if t in categorical:
                info = {"kind": "categorical", "control": levels[t][0], "levels": levels[t][1:]}
            else:
                distinct = np.unique(fit_raw[t].dropna().to_numpy(dtype=float))
                info = {
                    "kind": "numeric",
                    "control": None,
                    "levels": [],
                    "typical_value": float(analysis.typical_treatment_value(t)) if t in trained else None,
                    # An integer-coded attribute (SEX 1 and 2): its unit reads "2 vs 1" (report.effect_unit).
                    "values": [float(v) for v in distinct] if len(distinct) == 2 else None,
                }
            role = "attribute" if t in protected else "lever"
            info.update(role=role, estimable=t not in not_estimable, identification=identification[t])
            if role == "attribute":
                info["protected_as"] = "sensitive" if t in meta["sensitive_features"] else "immutable"
            if t in trained:
                rank = _final_stage_rank(analysis, t)
                info["final_stage"] = None if rank is None else {"rank": rank[0], "coefficients": rank[1]}
                if rank is not None and rank[0] < rank[1]:
                    invalid_inference.add(t)
            info["inference_valid"] = t in trained and t not in invalid_inference
            treatments[t] = info

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return _without_invalid_inference(_effect_table(frame, treatments), invalid_inference).to_dict("records")

        def effects(rows: pd.DataFrame) -> list[dict[str, Any]] | None:
            if rows.empty:
                return None
            if not trained:
                return []
            return records(analysis.cohort_causal_effect(rows, alpha=options.alpha, keep_all_levels=True))

        global_effects = (
            records(analysis.global_causal_effect(alpha=options.alpha, keep_all_levels=True)) if trained else []
        )
        row_ids = X_test.index.to_numpy()
        cohorts = [
            {"name": name, "count": int(mask.sum()), "effects": effects(X_test[mask])}
            for name, mask in audit.cohort_masks.items()
        ]
        groups = [
            {
                "feature": f,
                "group": g,
                "count": int((labels == g).sum()),
                "effects": effects(X_test[(labels == g).to_numpy()]),
            }
            for f, (labels, _) in audit.sensitive_groups.items()
            for g in sorted(labels.unique())
        ]
        explained = row_ids if options.rows == "all" else row_ids[audit.predictions[A.IN_SAMPLE].to_numpy()]
        local = _without_invalid_inference(
            _local_effects(analysis if trained else None, X_test.loc[explained], treatments, options.alpha),
            invalid_inference,
        )
        raw_values = {
            c: {str(v): v for v in pd.concat([fit_raw[c], audit.features[c]]).dropna().unique()} for c in categorical
        }
        names = {
            f"{c}_{v}": (c, None if v == MISSING else raw_values[c].get(v, v))
            for c in categorical
            for v in X_fit[c].unique()
        }
        costs = options.costs()
        policies, recommendations = [], []
        for t in trained:
            if treatments[t]["role"] == "attribute":  # estimated, never recommended
                continue
            summary, table = _policy(
                analysis, X_test, t, treatments[t], costs[t], options, names, medians, sign, t not in invalid_inference
            )
            summary["evidence"] = _policy_evidence(t, global_effects, options.alpha)
            policies.append(summary)
            recommendations.append(table)
        test_effects = effects(X_test)
    for t, info in treatments.items():
        info["verdict"] = _verdict(t, info, {u["treatment"]: u["reason"] for u in untrained})
    seconds = time.perf_counter() - started
    result = {
        "outcome": outcome,
        "desired_outcome": audit.desired_outcome,
        "direction": _direction(audit.desired_outcome, outcome),
        "treatments": [{"feature": t, **info} for t, info in treatments.items()],
        "untrained": untrained,
        "fit": {
            "train_rows": int(len(fit_positions)),
            "train_rows_available": int(len(train)),
            "train_rows_left_out_missing": int((~usable).sum()),
            "train_sample_size": options.train_sample_size,
            "seed": options.random_state,
            "features": features,  # the model's: confounders and heterogeneity come from these only
            "nuisance_model": options.nuisance_model,
            "heterogeneity_model": options.heterogeneity_model,
            "heterogeneity_features": options.heterogeneity_features,
            "levels_grouped": grouped,
            "alpha": options.alpha,
            "seconds": round(fit_seconds, 3),
        },
        "missing_values": {
            "categorical_as_level": {
                c: int(n) for c in categorical if (n := fit_raw[c].isna().sum() + audit.features[c].isna().sum())
            },
            "numeric_filled_with_median": {
                c: int(n) for c in medians if (n := fit_raw[c].isna().sum() + audit.features[c].isna().sum())
            },
        },
        "unseen_categories_in_test": {c: n for c in categorical if (n := int((~X_test[c].isin(set(X_fit[c]))).sum()))},
        "global_effects": global_effects,
        "test_effects": test_effects,
        "cohorts": cohorts,
        "sensitive_groups": groups,
        "local_effects": {"rows": options.rows, "count": int(len(explained))},
        "policies": policies,
        "warnings": _collect_warnings(caught, mine, sorted(invalid_inference)),
        "seconds": round(seconds, 3),
    }
    recommendations_table = (
        pd.concat(recommendations, ignore_index=True)
        if any(len(r) for r in recommendations)
        else pd.DataFrame(columns=[A.ROW_ID, "treatment_feature"])
    )
    with A.artifact_writer(Path(output_dir)) as out:
        A.write_parquet(local, out / LOCAL_EFFECTS_FILE)
        # Numeric and categorical treatments share the "current" column: store it as text.
        A.write_parquet(
            recommendations_table.astype({"current": str}) if len(recommendations_table) else recommendations_table,
            out / RECOMMENDATIONS_FILE,
        )
        A.write_json(out / A.INSIGHT_RESULT_FILE, result)
        A.write_json(out / A.META_FILE, A.new_meta(KIND, audit.run_id, options=asdict(options), seconds=seconds))
    return CausalResult(audit.run_id, trained, int(len(fit_positions)), fit_seconds, seconds)


def _local_effects(
    analysis: Any, rows: pd.DataFrame, treatments: dict[str, dict[str, Any]], alpha: float
) -> pd.DataFrame:
    """Per explained row, treatment and level: the row's own effect and its interval."""
    columns = [A.ROW_ID, "treatment", "level", *EFFECT_COLUMNS]
    if rows.empty or analysis is None:
        return pd.DataFrame(columns=columns)
    frame = analysis.local_causal_effect(rows, alpha=alpha, keep_all_levels=True)
    positions = frame.index.get_level_values("sample").to_numpy()
    table = _effect_table(frame.droplevel("sample"), treatments).drop(columns="control")
    table.insert(0, A.ROW_ID, rows.index.to_numpy()[positions])
    return table[columns]


def merge_causal(constructor_dir: str | Path, shard_dirs: list[str | Path], output_dir: str | Path) -> CausalResult:
    """Join the per-treatment shards of one causal analysis into the result of an unsharded run:
    every list in treatment order, the row tables in the unsharded run's order."""
    started = time.perf_counter()
    audit = load_constructor_artifact(constructor_dir)
    shards = [
        (
            meta,
            A.read_json(folder / A.INSIGHT_RESULT_FILE),
            A.read_parquet(folder / LOCAL_EFFECTS_FILE),
            A.read_parquet(folder / RECOMMENDATIONS_FILE),
        )
        for folder, meta in read_shards(audit.run_id, shard_dirs, KIND)
    ]
    options = CausalOptions(**{**shards[0][0]["options"], "shard_index": 0, "shard_count": 1})
    order = {t: i for i, t in enumerate(options.treatment_features)}

    def joined(lists: list[list[dict[str, Any]] | None], key: str = "treatment") -> list[dict[str, Any]] | None:
        if all(part is None for part in lists):
            return None  # no row to estimate on, in every shard alike
        return sorted((r for part in lists for r in part or []), key=lambda r: order[r[key]])

    docs = [doc for _, doc, _, _ in shards]
    first = docs[0]
    result = {
        **first,
        "treatments": joined([d["treatments"] for d in docs], "feature"),
        "untrained": joined([d["untrained"] for d in docs]),
        "fit": {**first["fit"], "seconds": round(sum(d["fit"]["seconds"] for d in docs), 3)},
        "global_effects": joined([d["global_effects"] for d in docs]),
        "test_effects": joined([d["test_effects"] for d in docs]),
        "cohorts": [
            {**c, "effects": joined([d["cohorts"][i]["effects"] for d in docs])} for i, c in enumerate(first["cohorts"])
        ],
        "sensitive_groups": [
            {**g, "effects": joined([d["sensitive_groups"][i]["effects"] for d in docs])}
            for i, g in enumerate(first["sensitive_groups"])
        ],
        "policies": joined([d["policies"] for d in docs]),
        "warnings": _merged_warnings([w for d in docs for w in d["warnings"]], order),
        "seconds": round(sum(d["seconds"] for d in docs), 3),
    }
    row_order = {r: i for i, r in enumerate(audit.predictions[A.ROW_ID])}

    def in_order(tables: list[pd.DataFrame], column: str) -> pd.DataFrame:
        table = pd.concat([t for t in tables if len(t)] or tables[:1], ignore_index=True)
        return table.sort_values(
            [A.ROW_ID, column], key=lambda c: c.map(row_order if c.name == A.ROW_ID else order), kind="stable"
        ).reset_index(drop=True)

    local = in_order([s[2] for s in shards], "treatment")
    recommendations = pd.concat([s[3] for s in shards if len(s[3])] or [shards[0][3]], ignore_index=True)
    if len(recommendations):  # per treatment in treatment order, each treatment's rows as its shard wrote them
        recommendations = recommendations.sort_values(
            "treatment_feature", key=lambda c: c.map(order), kind="stable"
        ).reset_index(drop=True)
    seconds = time.perf_counter() - started
    with A.artifact_writer(Path(output_dir)) as out:
        A.write_parquet(local, out / LOCAL_EFFECTS_FILE)
        A.write_parquet(recommendations, out / RECOMMENDATIONS_FILE)
        A.write_json(out / A.INSIGHT_RESULT_FILE, result)
        A.write_json(out / A.META_FILE, A.new_meta(KIND, audit.run_id, options=asdict(options), seconds=seconds))
    untrained = {u["treatment"] for u in result["untrained"]}
    trained = [t["feature"] for t in result["treatments"] if t["estimable"] and t["feature"] not in untrained]
    return CausalResult(audit.run_id, trained, first["fit"]["train_rows"], result["fit"]["seconds"], seconds)


def _merged_warnings(warnings_: list[dict[str, Any]], order: dict[str, int]) -> list[dict[str, Any]]:
    """The shards' warnings as one run counts them: each message once, counts added, treatments joined."""
    merged: dict[str, dict[str, Any]] = {}
    for w in warnings_:
        if w["message"] in merged:
            m = merged[w["message"]]
            m["count"] += w["count"]
            m["treatments"] = sorted({*m["treatments"], *w["treatments"]}, key=order.__getitem__)
        else:
            merged[w["message"]] = dict(w)
    return list(merged.values())


def _parser() -> argparse.ArgumentParser:
    return sharded_parser("causal", __doc__.splitlines()[0], "causal", "fitting")


def main(argv: list[str] | None = None) -> int:
    return run_sharded_cli(
        _parser(),
        argv,
        "causal",
        run_causal,
        merge_causal,
        lambda output, r: (
            f"causal effects written to {output} ({len(r.treatments)} treatments, fitted on "
            f"{r.fit_rows} train rows in {r.fit_seconds:.1f} s; {r.seconds:.1f} s in all)"
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
