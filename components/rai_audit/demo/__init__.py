"""The demo: a real dataset (UCI Adult, shipped in this folder) and a model trained on it.

``prepare_demo(folder)`` trains a scikit-learn Pipeline (one-hot encoding + gradient
boosting, seeded) on the Adult train split, saves it with joblib, writes a cohort file and
returns the audit config that ``rai-audit run`` takes.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from rai_audit.core.artifacts import write_json

TARGET = "income"
SENSITIVE = ["sex", "race"]

DEMO_COHORTS = [
    {"name": "Under 30", "filter": {"column": "age", "op": "<", "value": 30}},
    {
        "name": "Women working 40+ hours",
        "filter": {
            "and": [
                {"column": "sex", "op": "==", "value": "Female"},
                {"column": "hours-per-week", "op": ">=", "value": 40},
            ]
        },
    },
    {
        "name": "Married or high capital gain",
        "filter": {
            "or": [
                {"column": "marital-status", "op": "in", "value": ["Married-civ-spouse", "Married-AF-spouse"]},
                {"column": "capital-gain", "op": "between", "value": [5000, 100000]},
            ]
        },
    },
    {"name": "Misclassified", "filter": {"column": "error", "op": "==", "value": True}},
]


# The targets a model owner might set: performance targets it meets, and a demographic
# parity target (selection rate of women at least 80% of men's) that it misses, so the
# scorecard does not pass and the gated registration does not run.
DEMO_SCORECARD = {
    "model": {
        "name": "Adult income demo",
        "version": "1",
        "type": "HistGradientBoostingClassifier",
        "summary": "Predicts whether a person earns more than $50K a year (UCI Adult census data).",
        "owner": "rai-audit demo",
    },
    "targets": [
        "accuracy_score >= 0.85",
        "roc_auc_score >= 0.9",
        "recall_score >= 0.6",
        {"metric": "accuracy_score", "op": ">=", "value": 0.85, "cohort": "Under 30"},
    ],
    "fairness": {
        "sensitive_features": ["sex", "race"],
        "metrics": ["recall_score"],
        "targets": ["accuracy_score difference <= 0.1", "selection_rate ratio >= 0.8"],
    },
    "feature_importance": {"top_n": 10},
    "data_explorer": {"features": ["age", "education", "hours-per-week"]},
}


def demo_data_path(name: str) -> Path:
    return Path(str(resources.files("rai_audit.demo").joinpath(name)))


def train_demo_model(train: pd.DataFrame) -> Pipeline:
    features = train.drop(columns=[TARGET])
    categorical = [c for c in features.columns if features[c].dtype == object]
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
    model = Pipeline([("encode", encode), ("classify", HistGradientBoostingClassifier(max_iter=200, random_state=0))])
    return model.fit(features, train[TARGET])


def prepare_demo(folder: str | Path) -> dict[str, Any]:
    """Write the demo model, data and cohorts into ``folder``; return the audit config."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    train_path, test_path = folder / "adult_train.parquet", folder / "adult_test.parquet"
    shutil.copy2(demo_data_path("adult_train.parquet"), train_path)
    shutil.copy2(demo_data_path("adult_test.parquet"), test_path)
    model_path = folder / "model.joblib"
    joblib.dump(train_demo_model(pd.read_parquet(train_path)), model_path)
    cohorts_path = folder / "cohorts.json"
    write_json(cohorts_path, {"cohorts": DEMO_COHORTS})
    return {
        "name": "adult-income-demo",
        "model": str(model_path),
        # The demo trains this joblib file itself; loading a pickle from elsewhere runs its code.
        "allow_pickle": True,
        "train_data": str(train_path),
        "test_data": str(test_path),
        "target_column": TARGET,
        "task_type": "binary_classification",
        "positive_label": ">50K",
        "sensitive_features": SENSITIVE,
        "cohorts": str(cohorts_path),
        "sample_size": 200,  # rows for the per-row counterfactual search (seeded, stratified)
        "random_state": 0,
        "error_analysis": {"max_depth": 3, "heatmap_features": ["age", "education"]},
        "explainer": {"method": "auto", "rows": "all", "shards": 2},
        "counterfactual": {"total_CFs": 5, "rows": "sample", "increase_only": ["age"], "n_jobs": 2, "shards": 2},
        # Which levers move the chance of earning >50K, for whom (the effect may vary with
        # sex, age and education); sex, a sensitive feature, is estimated as an attribute (does
        # it drive the outcome?) and never given a policy. The fit uses 5,000 train rows (seeded).
        "causal": {
            "treatment_features": ["hours-per-week", "sex"],
            "heterogeneity_features": ["sex", "age", "education-num"],
            "train_sample_size": 5000,
            "n_jobs": 2,
        },
        "scorecard": {"config": DEMO_SCORECARD},
        "publish": {"model_name": "adult-income-demo", "model_version": "1", "bucket": "rai-audit"},
    }
