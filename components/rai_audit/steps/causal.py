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
The fit's cost grows with the train rows (about 25 s on all 32,561 Adult rows on 2 cores,
and 7 s on 5,000; bench/causal_bench.py), so ``train_sample_size`` bounds them (seeded, recorded, 0 = all). A test row with
a category the fit never saw gets the effect of none of the known ones (econml ignores it);
such rows are counted per feature in the output.
econml's warnings during the fit (e.g. an underdetermined covariance) are kept in the output.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
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
from rai_audit.core.options import check_min_ints, check_name_lists
from rai_audit.steps._cli import json_arg, run_cli

KIND = "causal"
LOCAL_EFFECTS_FILE = "local_effects.parquet"
RECOMMENDATIONS_FILE = "policy_recommendations.parquet"
MISSING = "(missing)"
NUISANCE_MODELS = ("linear", "automl")
HETEROGENEITY_MODELS = ("linear", "forest")
ROWS = ("sample", "all")
EFFECT_COLUMNS = ("point", "stderr", "zstat", "p_value", "ci_lower", "ci_upper")  # econml's names
# Warnings about library API changes say nothing about this analysis.
IGNORED_WARNINGS = (FutureWarning, DeprecationWarning, PendingDeprecationWarning)
IGNORED_WARNING_TEXT = ("A column-vector y was passed",)


@dataclass(frozen=True)
class CausalOptions:
    """Azure ML's parameters, plus the train sample, the rows for local effects and the
    number of top recommendations kept in result.json.

    ``heterogeneity_features``: None = all features (Azure's default), [] = none (one
    constant effect). ``treatment_cost``: one value for every treatment or one per
    treatment (marginal cost per unit of a numeric treatment; cost of any non-control
    level of a categorical one). ``categories``: "auto", or categorical treatment ->
    its levels, the first being the control.
    """

    treatment_features: list[str] = field(default_factory=list)
    heterogeneity_features: list[str] | None = None
    nuisance_model: str = "linear"
    heterogeneity_model: str = "linear"
    alpha: float = 0.05
    upper_bound_on_cat_expansion: int = 50
    treatment_cost: float | list[float] = 0.0
    min_tree_leaf_samples: int = 2
    max_tree_depth: int = 2
    skip_cat_limit_checks: bool = False
    categories: str | dict[str, list] = "auto"
    train_sample_size: int = 10000
    rows: str = "sample"
    top_recommendations: int = 10
    n_jobs: int = -1
    random_state: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.treatment_features, list) or not self.treatment_features:
            raise RAIInputError("`treatment_features` must be a non-empty list of feature names, "
                                f"got {self.treatment_features!r}")
        check_name_lists(self, ("treatment_features",))  # names before counting them (hashable)
        repeated = sorted(f for f, n in Counter(self.treatment_features).items() if n > 1)
        if repeated:
            raise RAIInputError(f"`treatment_features` names {repeated} more than once")
        if self.heterogeneity_features is not None and not (
                isinstance(self.heterogeneity_features, list)
                and all(isinstance(f, str) for f in self.heterogeneity_features)):
            raise RAIInputError("`heterogeneity_features` must be a list of feature names or null (all), "
                                f"got {self.heterogeneity_features!r}")
        if self.nuisance_model not in NUISANCE_MODELS:
            raise RAIInputError(f"`nuisance_model` must be one of {list(NUISANCE_MODELS)}, "
                                f"got {self.nuisance_model!r}")
        if self.heterogeneity_model not in HETEROGENEITY_MODELS:
            raise RAIInputError(f"`heterogeneity_model` must be one of {list(HETEROGENEITY_MODELS)}, "
                                f"got {self.heterogeneity_model!r}")
        if self.rows not in ROWS:
            raise RAIInputError(f"`rows` must be one of {list(ROWS)}, got {self.rows!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < 1:
            raise RAIInputError(f"`alpha` must be a number between 0 and 1, got {self.alpha!r}")
        check_min_ints(self, {"upper_bound_on_cat_expansion": 1, "min_tree_leaf_samples": 1,
                              "max_tree_depth": 1, "train_sample_size": 0, "top_recommendations": 1})
        if not isinstance(self.n_jobs, int) or isinstance(self.n_jobs, bool) or self.n_jobs == 0 \
                or self.n_jobs < -1:
            raise RAIInputError(f"`n_jobs` must be -1 (all cores) or an integer >= 1, got {self.n_jobs!r}")
        if not isinstance(self.skip_cat_limit_checks, bool):
            raise RAIInputError(f"`skip_cat_limit_checks` must be true or false, got {self.skip_cat_limit_checks!r}")
        self.costs()  # checks the shape
        if self.categories != "auto" and not (
                isinstance(self.categories, dict)
                and all(isinstance(v, list) and len(v) >= 2 for v in self.categories.values())):
            raise RAIInputError("`categories` must be \"auto\" or a mapping of categorical treatment -> its "
                                f"levels (at least two, the control first), got {self.categories!r}")

    def costs(self) -> dict[str, float]:
        """The cost of each treatment."""
        cost = self.treatment_cost
        values = cost if isinstance(cost, list) else [cost]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values):
            raise RAIInputError(f"`treatment_cost` must be a number or a list of numbers, got {cost!r}")
        if isinstance(cost, list) and len(cost) not in (1, len(self.treatment_features)):
            raise RAIInputError(f"`treatment_cost` must have one value per treatment feature "
                                f"({len(self.treatment_features)}), got {len(cost)}")
        if len(values) == 1:
            values = values * len(self.treatment_features)
        return {f: float(v) for f, v in zip(self.treatment_features, values)}


@dataclass
class CausalResult:
    run_id: str
    treatments: list[str]
    fit_rows: int
    fit_seconds: float
    seconds: float


def _check(audit: ConstructorArtifact, options: CausalOptions) -> None:
    meta = audit.meta
    features, target = meta["features"], meta["target_column"]
    if target in options.treatment_features:
        raise RAIInputError(f"`treatment_features` names the target column {target!r}: the outcome "
                            "cannot be its own treatment")
    unknown = [f for f in options.treatment_features if f not in features]
    if unknown:
        raise RAIInputError(f"`treatment_features` names unknown features {unknown}; the features are {features}")
    if options.heterogeneity_features:
        unknown = [f for f in options.heterogeneity_features if f not in features]
        if unknown:
            raise RAIInputError(f"`heterogeneity_features` names unknown features {unknown}; "
                                f"the features are {features}")
    if isinstance(options.categories, dict):
        wrong = [f for f in options.categories if f not in options.treatment_features
                 or f not in meta["categorical_features"]]
        if wrong:
            raise RAIInputError(f"`categories` names {wrong}, which are not categorical treatment features")
    if audit.task == "multiclass_classification":
        raise RAIInputError("causal analysis supports regression and binary classification (econml's "
                            "CausalAnalysis estimates one outcome); this audit is multiclass")


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
            raise RAIInputError(f"`categories` for {treatment!r} lists {given}, but the data also has the levels "
                                f"{unlisted}; list every level (the control first)")
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


def _records(frame: pd.DataFrame, treatments: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return _effect_table(frame, treatments).to_dict("records")


def _tree_nodes(tree: dict[str, Any], names: dict[str, tuple[str, Any]],
                medians: dict[str, float]) -> list[dict[str, Any]]:
    """econml's policy tree (nested dict, splits on encoded columns) as a list of nodes, each
    with its filter in the cohort format (on the raw data) so any leaf can be saved as a cohort.

    ``names``: one-hot column -> (feature, raw category value; None for a missing one).
    The tree saw a missing number as the median, so missing values go to the median's side.
    """
    nodes: list[dict[str, Any]] = []

    def visit(node: dict[str, Any], parent: int | None, conditions: list[dict[str, Any]]) -> int:
        node_id = len(nodes)
        entry: dict[str, Any] = {"id": node_id, "parent": parent, "depth": len(conditions),
                                 "filter": all_of(conditions), "count": int(node.get("n_samples", 0))}
        nodes.append(entry)
        if node["leaf"]:
            entry.update(leaf=True, treatment=node["treatment"], children=[])
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
            split = {"feature": encoded, "op": "<=", "value": threshold, "true_goes": "left",
                     "missing_values_go": "left" if medians[encoded] <= threshold else "right"}
            missing = {"column": encoded, "op": "==", "value": None}
            if split["missing_values_go"] == "left":
                left = {"or": [left, missing]}
            else:
                right = {"or": [right, missing]}
        entry.update(leaf=False, split=split)
        entry["children"] = [visit(node["left"], node_id, [*conditions, left]),
                             visit(node["right"], node_id, [*conditions, right])]
        entry["count"] = sum(nodes[c]["count"] for c in entry["children"])  # the tree keeps leaves' counts
        return node_id

    visit(tree, None, [])
    return nodes


def _policy(analysis, X_eval: pd.DataFrame, treatment: str, info: dict[str, Any], cost: float,
            options: CausalOptions, names: dict[str, tuple[str, Any]],
            medians: dict[str, float]) -> tuple[dict[str, Any], pd.DataFrame]:
    """The policy tree, its gains, and every evaluated row's recommendation."""
    rows = X_eval
    excluded = 0
    if info["kind"] == "categorical":  # econml cannot price a switch from a level it never saw
        known = rows[treatment].isin([info["control"], *info["levels"]])
        excluded, rows = int((~known).sum()), rows[known]
    if rows.empty:
        return {"treatment": treatment, "excluded_rows": excluded, "rows": 0, "tree": [],
                "policy_gain": None, "always_treat_gains": {}, "top_recommendations": []}, pd.DataFrame()
    tree = analysis._policy_tree_output(rows, treatment, treatment_costs=cost, max_depth=options.max_tree_depth,
                                        min_samples_leaf=options.min_tree_leaf_samples, alpha=options.alpha)
    # The tree takes a numeric treatment's cost per unit; econml's per-row recommendations
    # price one move (10% of a typical value), so they get the cost of that move.
    step = info["typical_value"] * 0.1 if info["kind"] == "numeric" else 1.0
    recommended = analysis.individualized_policy(rows, treatment, treatment_costs=cost * step,
                                                 alpha=options.alpha)
    table = pd.DataFrame({
        A.ROW_ID: recommended.index.to_numpy(dtype=np.int64),
        "treatment_feature": treatment,
        "current": recommended["Current treatment"].astype(str).to_numpy()
        if info["kind"] == "categorical" else recommended["Current treatment"].astype(float).to_numpy(),
        "recommended": recommended["Treatment"].astype(str).to_numpy(),
        "gain": recommended["Effect of treatment"].astype(float).to_numpy(),
        "gain_ci_lower": recommended["Effect of treatment lower bound"].astype(float).to_numpy(),
        "gain_ci_upper": recommended["Effect of treatment upper bound"].astype(float).to_numpy(),
    })
    top = table.head(options.top_recommendations)
    summary = {
        "treatment": treatment,
        "control": tree.control_name,
        "cost": cost,
        "rows": int(len(rows)),
        "excluded_rows": excluded,
        "policy_gain": float(tree.policy_value),
        "always_treat_gains": {str(k): float(v) for k, v in tree.always_treat.items()},
        "tree": _tree_nodes(tree.tree_dictionary, names, medians),
        "recommendation_counts": {str(k): int(v) for k, v in table["recommended"].value_counts().items()},
        "top_recommendations": top.drop(columns="treatment_feature").to_dict("records"),
    }
    if info["kind"] == "numeric":
        summary["step"] = step  # econml's unit of a policy move: 10% of a typical value
    return summary, table.drop(columns="treatment_feature").assign(treatment_feature=treatment)


def _collect_warnings(caught: list[warnings.WarningMessage]) -> list[dict[str, Any]]:
    counts: Counter[str] = Counter()
    for w in caught:
        text = str(w.message)
        if issubclass(w.category, IGNORED_WARNINGS) or text.startswith(IGNORED_WARNING_TEXT):
            continue
        counts[f"{w.category.__name__}: {text}"[:500]] += 1
    return [{"message": m, "count": n, **({"explanation": e} if (e := _explanation(m)) else {})}
            for m, n in counts.items()]


def _explanation(message: str) -> str | None:
    if "Co-variance matrix is underdetermined" in message:
        # econml's final stage one-hot encodes a categorical heterogeneity feature with all
        # its levels next to an intercept, so its design is rank-deficient by construction.
        return ("expected when a categorical feature is among the heterogeneity features: econml encodes "
                "all its levels beside an intercept, and the effects of real rows stay estimable; "
                "otherwise two heterogeneity features are collinear and the intervals are not reliable")
    return None


def run_causal(constructor_dir: str | Path, output_dir: str | Path, *,
               options: CausalOptions) -> CausalResult:
    """Fit CausalAnalysis once and write effects (global, test, cohorts, groups, local) and policies."""
    from econml.solutions.causal_analysis import CausalAnalysis

    started = time.perf_counter()
    audit = load_constructor_artifact(constructor_dir)
    _check(audit, options)
    meta = audit.meta
    features, target = meta["features"], meta["target_column"]
    categorical = [f for f in features if f in meta["categorical_features"]]
    train = A.read_parquet(audit.folder / A.TRAIN_FILE)
    numeric_treatments = [t for t in options.treatment_features if t not in categorical]
    usable = train[target].notna() & train[numeric_treatments].notna().all(axis=1)
    if not usable.any():  # nothing left to fit on: name the column(s) that left every row out
        needed = [target, *numeric_treatments]
        empty = [c for c in needed if train[c].isna().all()]
        raise RAIInputError(
            f"no train row can be fitted: a fitted row needs a value of the outcome and of every numeric "
            f"treatment, and " + (f"{empty} have no value in any train row" if empty else
                                  f"no train row has a value in all of {needed}")
            + "; drop such treatments from `treatment_features` or fill in their values")
    train = train[usable].reset_index(drop=True)
    fit_positions = _fit_rows(len(train), options)
    fit_raw = train.iloc[fit_positions]
    medians = {c: float(fit_raw[c].median()) if fit_raw[c].notna().any() else 0.0
               for c in features if c not in categorical}
    X_fit = _prepared(fit_raw[features], categorical, medians)
    y_fit, outcome = _outcome(audit, fit_raw[target])
    X_test = _prepared(audit.features[features], categorical, medians)
    X_test.index = audit.predictions[A.ROW_ID].to_numpy()
    if audit.is_classifier and y_fit.nunique() < 2:
        raise RAIInputError(f"the train rows fitted hold one outcome only ({outcome} is always {y_fit.iloc[0]})")

    levels = {t: _levels(X_fit, t, options) for t in options.treatment_features if t in categorical}
    analysis = CausalAnalysis(
        options.treatment_features, categorical, heterogeneity_inds=options.heterogeneity_features,
        classification=audit.is_classifier, upper_bound_on_cat_expansion=options.upper_bound_on_cat_expansion,
        nuisance_models=options.nuisance_model, heterogeneity_model=options.heterogeneity_model,
        categories=[levels[c] if c in levels else "auto" for c in categorical],
        n_jobs=options.n_jobs, skip_cat_limit_checks=options.skip_cat_limit_checks,
        random_state=options.random_state)
    fit_started = time.perf_counter()
    # Threads, not processes: the treatments share one copy of the data, and warnings raised
    # while fitting them reach this process, where they are kept for the output.
    # One BLAS thread per worker thread: several fits each starting BLAS threads on a small
    # machine made the full Adult fit ~20x slower (bench/README.md).
    blas_threads = 1 if options.n_jobs != 1 else None
    with warnings.catch_warnings(record=True) as caught, joblib.parallel_config(backend="threading"), \
            threadpool_limits(limits=blas_threads, user_api="blas"):
        warnings.simplefilter("always")
        try:
            analysis.fit(X_fit, y_fit)
        except ValueError as err:
            reasons = {features[i]: str(r) for i, r in getattr(analysis, "untrained_feature_indices_", [])}
            raise RAIInputError(f"no treatment could be fitted ({err}); reasons: {reasons or 'see above'}") from err
        fit_seconds = time.perf_counter() - fit_started

        untrained = [{"treatment": X_fit.columns[i], "reason": str(reason)}
                     for i, reason in analysis.untrained_feature_indices_]
        trained = [X_fit.columns[i] for i in analysis.trained_feature_indices_]
        if not trained:
            raise RAIInputError(f"no treatment could be fitted: {untrained}")
        treatments: dict[str, dict[str, Any]] = {}
        for t in trained:
            if t in categorical:
                treatments[t] = {"kind": "categorical", "control": levels[t][0], "levels": levels[t][1:]}
            else:
                treatments[t] = {"kind": "numeric", "control": None, "levels": [],
                                 "typical_value": float(analysis.typical_treatment_value(t))}

        def effects(rows: pd.DataFrame) -> list[dict[str, Any]] | None:
            if rows.empty:
                return None
            return _records(analysis.cohort_causal_effect(rows, alpha=options.alpha, keep_all_levels=True),
                            treatments)

        global_effects = _records(analysis.global_causal_effect(alpha=options.alpha, keep_all_levels=True),
                                  treatments)
        row_ids = X_test.index.to_numpy()
        cohorts = [{"name": name, "count": int(mask.sum()), "effects": effects(X_test[mask])}
                   for name, mask in audit.cohort_masks.items()]
        groups = [{"feature": f, "group": g, "count": int((labels == g).sum()),
                   "effects": effects(X_test[(labels == g).to_numpy()])}
                  for f, (labels, _) in audit.sensitive_groups.items() for g in sorted(labels.unique())]
        explained = row_ids if options.rows == "all" else row_ids[audit.predictions[A.IN_SAMPLE].to_numpy()]
        local = _local_effects(analysis, X_test.loc[explained], treatments, options.alpha)
        raw_values = {c: {str(v): v for v in pd.concat([fit_raw[c], audit.features[c]]).dropna().unique()}
                      for c in categorical}
        names = {f"{c}_{v}": (c, None if v == MISSING else raw_values[c].get(v, v))
                 for c in categorical for v in X_fit[c].unique()}
        costs = options.costs()
        policies, recommendations = [], []
        for t in trained:
            summary, table = _policy(analysis, X_test, t, treatments[t], costs[t], options, names, medians)
            policies.append(summary)
            recommendations.append(table)
        test_effects = effects(X_test)
    seconds = time.perf_counter() - started
    result = {
        "outcome": outcome,
        "treatments": [{"feature": t, **info} for t, info in treatments.items()],
        "untrained": untrained,
        "fit": {
            "train_rows": int(len(fit_positions)), "train_rows_available": int(len(train)),
            "train_rows_left_out_missing": int((~usable).sum()),
            "train_sample_size": options.train_sample_size, "seed": options.random_state,
            "nuisance_model": options.nuisance_model, "heterogeneity_model": options.heterogeneity_model,
            "heterogeneity_features": options.heterogeneity_features, "alpha": options.alpha,
            "seconds": round(fit_seconds, 3),
        },
        "missing_values": {
            "categorical_as_level": {c: int(n) for c in categorical
                                     if (n := fit_raw[c].isna().sum() + audit.features[c].isna().sum())},
            "numeric_filled_with_median": {c: int(n) for c in medians
                                           if (n := fit_raw[c].isna().sum() + audit.features[c].isna().sum())},
        },
        "unseen_categories_in_test": {c: n for c in categorical
                                      if (n := int((~X_test[c].isin(set(X_fit[c]))).sum()))},
        "global_effects": global_effects,
        "test_effects": test_effects,
        "cohorts": cohorts,
        "sensitive_groups": groups,
        "local_effects": {"rows": options.rows, "count": int(len(explained))},
        "policies": policies,
        "warnings": _collect_warnings(caught),
        "seconds": round(seconds, 3),
    }
    recommendations_table = (pd.concat(recommendations, ignore_index=True) if any(len(r) for r in recommendations)
                             else pd.DataFrame(columns=[A.ROW_ID, "treatment_feature"]))
    with A.artifact_writer(Path(output_dir)) as out:
        A.write_parquet(local, out / LOCAL_EFFECTS_FILE)
        # Numeric and categorical treatments share the "current" column: store it as text.
        A.write_parquet(recommendations_table.astype({"current": str}) if len(recommendations_table)
                        else recommendations_table, out / RECOMMENDATIONS_FILE)
        A.write_json(out / A.INSIGHT_RESULT_FILE, result)
        A.write_json(out / A.META_FILE, A.new_meta(KIND, audit.run_id, options=asdict(options),
                                                   seconds=seconds))
    return CausalResult(audit.run_id, trained, int(len(fit_positions)), fit_seconds, seconds)


def _local_effects(analysis, rows: pd.DataFrame, treatments: dict[str, dict[str, Any]],
                   alpha: float) -> pd.DataFrame:
    """Per explained row, treatment and level: the row's own effect and its interval."""
    columns = [A.ROW_ID, "treatment", "level", *EFFECT_COLUMNS]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    frame = analysis.local_causal_effect(rows, alpha=alpha, keep_all_levels=True)
    positions = frame.index.get_level_values("sample").to_numpy()
    table = _effect_table(frame.droplevel("sample"), treatments).drop(columns="control")
    table.insert(0, A.ROW_ID, rows.index.to_numpy()[positions])
    return table[columns]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rai-audit causal", description=__doc__.splitlines()[0])
    p.add_argument("--constructor", required=True, help="the constructor's insights artifact folder")
    p.add_argument("--output", required=True, help="causal artifact folder to create")
    p.add_argument("--treatment-features", type=json_arg, required=True, help='JSON list, e.g. ["age"]')
    p.add_argument("--heterogeneity-features", type=json_arg, default=None,
                   help="JSON list; null (default) for all features, [] for none")
    p.add_argument("--nuisance-model", choices=NUISANCE_MODELS, default="linear")
    p.add_argument("--heterogeneity-model", choices=HETEROGENEITY_MODELS, default="linear")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--treatment-cost", type=json_arg, default=0.0, help="JSON number or list (one per treatment)")
    p.add_argument("--categories", type=json_arg, default='"auto"', help='JSON: "auto" or {treatment: [levels]}')
    p.add_argument("--skip-cat-limit-checks", action="store_true")
    p.add_argument("--rows", choices=ROWS, default="sample", help="rows given local effects")
    defaults = CausalOptions(treatment_features=["_"])
    for name in ("upper_bound_on_cat_expansion", "min_tree_leaf_samples", "max_tree_depth",
                 "train_sample_size", "top_recommendations", "n_jobs", "random_state"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=getattr(defaults, name))
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))

    def action() -> None:
        constructor, output = args.pop("constructor"), args.pop("output")
        result = run_causal(constructor, output, options=CausalOptions(**args))
        print(f"causal effects written to {output} ({len(result.treatments)} treatments, fitted on "
              f"{result.fit_rows} train rows in {result.fit_seconds:.1f} s; {result.seconds:.1f} s in all)")

    return run_cli(action)


def heterogeneity_from_json(text: str) -> list[str] | None:
    """The KFP parameter's JSON text (Azure's encoding: "null" = all features) as the option."""
    try:
        value = json.loads(text) if text else None
    except json.JSONDecodeError as err:
        raise RAIInputError(f"`heterogeneity_features` must be a JSON list or null, got {text!r}") from err
    return value


if __name__ == "__main__":
    raise SystemExit(main())
