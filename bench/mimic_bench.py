"""The explainer's mimic on engineered (one-hot) columns vs on the raw features (issue 25).

For each data set, a model no exact explainer supports (HistGradientBoosting after one-hot
encoding in a Pipeline) is explained on all its test rows two ways:

(a) the step's mimic until 2026-12-06: interpret-community's MimicExplainer
    (LGBMExplainableModel) on the Pipeline's engineered columns, importances mapped back to
    raw features with the step's probed feature map;
(b) the step's mimic since: ``RawFeatureMimic``, a LightGBM surrogate on the raw features with
    LightGBM's categorical handling (pandas ``category`` columns, each split one category
    against the rest), fitted as LGBMExplainableModel is (the same targets, seed, one thread),
    local importances from LightGBM's own tree SHAP (pred_contrib).

Printed per data set: fidelity (accuracy of the surrogate's labels against the model's
predictions on every test row; r2 for a regression), seconds (a: feature map + fit + explain
+ fidelity; b: fit + explain + fidelity), and how many of the top-5 global features agree.

    .venv/bin/python bench/mimic_bench.py [--only adult,german,...] [--variants]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rai_audit.demo import TARGET as ADULT_TARGET
from rai_audit.demo import train_demo_model
from rai_audit.specs import ExplainerOptions
from rai_audit.steps import explainer as E

DATA = Path("/work/shared/datasets")
SEED = 0
OPTIONS = ExplainerOptions(method="mimic")  # the step's defaults: 5,000 mimic rows, seed 0


class VariantMimic(E.RawFeatureMimic):
    """The step's raw-feature mimic with other LightGBM categorical parameters (``--variants``)."""


def variant(params: dict[str, Any]) -> type[E.RawFeatureMimic]:
    return type("VariantMimic", (VariantMimic,), {"LIGHTGBM_ARGS": params})


def one_hot_hgb(train: pd.DataFrame, y: pd.Series, regression: bool = False):
    """The benchmarked model: one-hot for non-numeric columns (missing as its own value), HGB."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    categorical = [c for c in train.columns if not pd.api.types.is_numeric_dtype(train[c])]
    encode = ColumnTransformer(
        [
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            )
        ],
        remainder="passthrough",
    )
    cls = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    return Pipeline([("encode", encode), ("model", cls(max_iter=200, random_state=SEED))]).fit(train, y)


def split(frame: pd.DataFrame, test_share: float = 0.3, groups: pd.Series | None = None):
    rng = np.random.default_rng(SEED)
    if groups is None:
        is_test = rng.random(len(frame)) < test_share
    else:  # by group (repeated patients stay on one side)
        ids = groups.unique()
        test_ids = set(rng.choice(ids, int(len(ids) * test_share), replace=False).tolist())
        is_test = groups.isin(test_ids).to_numpy()
    return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


def adult():
    train, test = pd.read_parquet(DATA / "adult_train.parquet"), pd.read_parquet(DATA / "adult_test.parquet")
    model = train_demo_model(train)  # the demo's model, as e2e_bench audits it
    return model, train.drop(columns=[ADULT_TARGET]), test.drop(columns=[ADULT_TARGET]), "binary"


def german():
    frame = pd.read_parquet(DATA / "german_credit.parquet")
    train, test = split(frame)
    X = train.drop(columns=["credit_risk"])
    return one_hot_hgb(X, train["credit_risk"]), X, test.drop(columns=["credit_risk"]), "binary"


COMPAS_FEATURES = [
    "sex",
    "age",
    "age_cat",
    "race",
    "juv_fel_count",
    "juv_misd_count",
    "juv_other_count",
    "priors_count",
    "c_charge_degree",
    "decile_score",
    "v_decile_score",
]


def compas():
    frame = pd.read_parquet(DATA / "compas_two_years.parquet")
    train, test = split(frame[[*COMPAS_FEATURES, "two_year_recid"]])
    X = train[COMPAS_FEATURES]
    return one_hot_hgb(X, train["two_year_recid"]), X, test[COMPAS_FEATURES], "binary"


def insurance():
    frame = pd.read_parquet(DATA / "insurance.parquet")
    train, test = split(frame)
    X = train.drop(columns=["charges"])
    return one_hot_hgb(X, train["charges"], regression=True), X, test.drop(columns=["charges"]), "regression"


def diabetes(target: str = "readmit_30_days", rows: int = 20_000):
    frame = pd.read_parquet(DATA / "diabetes_130_hospitals.parquet")
    frame = frame.iloc[np.sort(np.random.default_rng(SEED).choice(len(frame), rows, replace=False))]
    train, test = split(frame.reset_index(drop=True), groups=frame["patient_nbr"].reset_index(drop=True))
    drop = ["encounter_id", "patient_nbr", "readmit_30_days", "readmitted"]
    X = train.drop(columns=drop)
    return one_hot_hgb(X, train[target].astype(str)), X, test.drop(columns=drop), "classes"


def diabetes_3class():
    return diabetes(target="readmitted", rows=10_000)


SETS = {
    "adult": adult,
    "german": german,
    "compas": compas,
    "insurance": insurance,
    "diabetes": diabetes,
    "diabetes_3class": diabetes_3class,
}


def top5(values: np.ndarray, features: list[str]) -> list[str]:
    """The five raw features of largest mean |local importance| over rows, averaged over outputs."""
    overall = np.abs(values).mean(axis=1).mean(axis=0)
    return [features[i] for i in np.argsort(-overall, kind="stable")[:5]]


def fidelity(y_model: np.ndarray, y_surrogate: np.ndarray, regression: bool) -> float:
    from sklearn.metrics import accuracy_score, r2_score

    if regression:
        return float(r2_score(y_model, y_surrogate))
    return float(accuracy_score(y_model.astype(str), y_surrogate.astype(str)))


def engineered_mimic(model, train: pd.DataFrame, test: pd.DataFrame, regression: bool):
    """(a) the step's earlier mimic on the Pipeline's engineered columns."""
    from interpret_community.mimic import MimicExplainer
    from interpret_community.mimic.models import LGBMExplainableModel

    features = list(train.columns)
    started = time.perf_counter()
    preprocess, estimator = E._split_model(model)
    background_raw, mimic_raw = E.seeded_train_rows(train, OPTIONS)
    pools = {f: E._probe_values(pd.concat([train[f], test[f]], ignore_index=True)) for f in features}
    weights, _ = E._feature_map(preprocess, background_raw, pools, features)
    mapped = time.perf_counter() - started
    classes = None if regression else list(model.classes_)
    explained = E._engineered(preprocess, test)
    explainer = MimicExplainer(
        estimator,
        E._engineered(preprocess, mimic_raw),
        LGBMExplainableModel,
        augment_data=False,
        explainable_model_args={"random_state": OPTIONS.random_state, "n_jobs": 1, "verbose": -1},
        model_task="regression" if regression else "classification",
        features=list(explained.columns),
        classes=classes,
    )
    values, _ = E._local_values(explainer.explain_local(explained), len(classes) if classes else None)
    surrogate = np.asarray(explainer.surrogate_model.predict(explained))
    if not regression:  # a binary surrogate regresses the second class's logit; a multiclass one gives indexes
        labels = np.asarray(classes, dtype=object)
        surrogate = labels[(surrogate > 0).astype(int)] if len(labels) == 2 else labels[surrogate.astype(int)]
    value = fidelity(np.asarray(model.predict(test)), surrogate, regression)
    seconds = time.perf_counter() - started
    return value, seconds, mapped, values @ weights.T, explained.shape[1]


# LightGBM's categorical parameters for --variants: its defaults (which interpret-community keeps)
# and others, to see which lets the raw mimic keep the one-hot mimic's fidelity.
VARIANTS = {
    "LightGBM defaults": {},
    "min_data_per_group=20": {"min_data_per_group": 20},
    "min_data_per_group=20,cat_smooth=1,cat_l2=1": {"min_data_per_group": 20, "cat_smooth": 1, "cat_l2": 1},
    "max_cat_to_onehot=64": {"max_cat_to_onehot": 64},
    # Every categorical split one category vs the rest: the splits a tree makes on one-hot columns.
    "max_cat_to_onehot=all": {"max_cat_to_onehot": 2**31 - 1},
    # The same with shallower trees: tree SHAP's time grows with the square of a leaf's depth.
    "max_cat_to_onehot=all,max_depth=10": {"max_cat_to_onehot": 2**31 - 1, "max_depth": 10},
    "max_cat_to_onehot=all,max_depth=8": {"max_cat_to_onehot": 2**31 - 1, "max_depth": 8},
    "max_cat_to_onehot=all,max_depth=6": {"max_cat_to_onehot": 2**31 - 1, "max_depth": 6},
}


def raw_mimic(model, train: pd.DataFrame, test: pd.DataFrame, regression: bool, params: dict | None = None):
    """(b) the step's LightGBM surrogate on the raw features (or with other LightGBM parameters)."""
    started = time.perf_counter()
    _, mimic_raw = E.seeded_train_rows(train, OPTIONS)
    classes = None if regression else list(model.classes_)
    mimic_class = E.RawFeatureMimic if params is None else variant(params)
    mimic = mimic_class(model, mimic_raw, classes, OPTIONS.random_state)
    values, _ = E._local_values(mimic.explain_local(test), None if regression else len(model.classes_))
    value = fidelity(np.asarray(model.predict(test)), mimic.predict_labels(test), regression)
    return value, time.perf_counter() - started, values


def commit() -> str:
    here = Path(__file__).resolve().parent
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True).stdout
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "components/rai_audit/steps/explainer.py", "bench/mimic_bench.py"],
        cwd=here.parent,
        capture_output=True,
        text=True,
    ).stdout
    return sha.strip() + (" (explainer or bench modified)" if dirty.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SETS), help="comma-separated data sets: " + ", ".join(SETS))
    parser.add_argument("--variants", action="store_true", help="also the raw mimic's fidelity with VARIANTS")
    args = parser.parse_args()
    E._import_shap()
    import interpret_community.mimic  # noqa: F401  # imported before the clock starts
    import lightgbm  # noqa: F401

    print(f"commit {commit()}; load average at start {os.getloadavg()}; {os.cpu_count()} cores")
    header = (
        "| data set | test rows | raw features | engineered columns | metric "
        "| fidelity (a) one-hot | fidelity (b) raw | s (a) [map] | s (b) | top-5 agree | top-5 (a) | top-5 (b) |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    variants: list[str] = []
    for name in args.only.split(","):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, train, test, kind = SETS[name]()
            regression = kind == "regression"
            fa, sa, mapped, va, n_engineered = engineered_mimic(model, train, test, regression)
            fb, sb, vb = raw_mimic(model, train, test, regression)
            tried = (
                {v: raw_mimic(model, train, test, regression, p)[:2] for v, p in VARIANTS.items()}
                if args.variants
                else {}
            )
        features = list(train.columns)
        ta, tb = top5(va, features), top5(vb, features)
        print(
            f"| {name} | {len(test):,} | {len(features)} | {n_engineered} | {'r2' if regression else 'accuracy'} "
            f"| {fa:.4f} | {fb:.4f} | {sa:.1f} [{mapped:.1f}] | {sb:.1f} | {len(set(ta) & set(tb))}/5 "
            f"| {', '.join(ta)} | {', '.join(tb)} |",
            flush=True,
        )
        if args.variants:
            variants.append(
                f"| {name} | {fa:.4f} | {fb:.4f} | "
                + " | ".join(f"{v:.4f} ({t:.1f} s)" for v, t in tried.values())
                + " |"
            )
    if variants:
        print("\nraw mimic with other categorical parameters: fidelity (seconds, fit + explain + fidelity):")
        print("| data set | (a) one-hot | (b) raw, the step's | " + " | ".join(VARIANTS) + " |")
        print("|" + "---|" * (3 + len(VARIANTS)))
        print("\n".join(variants))
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
