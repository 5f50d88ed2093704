#!/usr/bin/env python3
"""Full audits of three data sets of other shapes than the demo, for a review of what a user reads:

    .venv/bin/python scripts/review-datasets.py [--only NAME ...] [--output review-audits]

- ``credit``: credit-card default (integer-coded PAY_* features; the positive label 1 is a
  default, so ``desired_outcome: decrease``), sensitive SEX and MARRIAGE;
- ``insurance``: medical charges, a regression (counterfactuals into a desired range);
- ``diabetes``: hospital readmission, wide categoricals with missing values and a rare gender
  value (3 rows of "Unknown/Invalid"), readmission being the bad outcome.

``--lightgbm`` trains LightGBM in place of each case's estimator (the views of LightGBM's own
tree SHAP).

Each runs `rai-audit run` (kfp.local: every step, gather and the scorecard) on a model trained
here (seeded, saved with joblib), then renders the PDF's pages (pdftoppm) and the page's
screenshots (scripts/dashboard-screenshots.py) into <output>/<name>/review/. Needs
../shared/datasets beside the repository (or RAI_AUDIT_SHARED). Prints where everything is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("RAI_AUDIT_SHARED", REPO.parent / "shared")) / "datasets"


def _model(categorical: list[str], estimator) -> Pipeline:
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
    return Pipeline([("encode", encode), ("model", estimator)])


def _split(data: pd.DataFrame, n_train: int, n_test: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    shuffled = data.sample(frac=1.0, random_state=0).reset_index(drop=True)
    return shuffled.iloc[:n_train].reset_index(drop=True), shuffled.iloc[n_train : n_train + n_test].reset_index(
        drop=True
    )


def _classifier(lightgbm: bool):
    if lightgbm:
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_estimators=100, random_state=0, verbose=-1)
    return HistGradientBoostingClassifier(max_iter=100, random_state=0)


def credit(lightgbm: bool) -> tuple[pd.DataFrame, pd.DataFrame, object, dict]:
    data = pd.read_parquet(DATASETS / "credit_card_default.parquet").drop(columns=["ID"], errors="ignore")
    train, test = _split(data, 8000, 4000)
    target = "default_payment_next_month"
    model = _classifier(lightgbm).fit(train.drop(columns=target), train[target])
    config = {
        "target_column": target,
        "task_type": "binary_classification",
        "positive_label": 1,
        "desired_outcome": "decrease",
        "sensitive_features": ["SEX", "MARRIAGE"],
        "immutable_features": ["AGE"],
        "cohorts": [{"name": "Recent delay", "filter": {"column": "PAY_0", "op": ">=", "value": 1}}],
        "sample_size": 300,
        "error_analysis": {"max_depth": 3, "heatmap_features": ["PAY_0", "EDUCATION"]},
        "explainer": {"method": "auto"},
        "counterfactual": {"total_CFs": 4, "n_jobs": 2},
        "causal": {
            "treatment_features": ["LIMIT_BAL", "SEX"],
            "heterogeneity_features": ["AGE"],
            "train_sample_size": 4000,
            "n_jobs": 2,
        },
        "scorecard": {
            "config": {
                "model": {"name": "Credit default", "version": "1", "summary": "Predicts a default next month"},
                "targets": ["accuracy_score >= 0.8", "recall_score >= 0.3"],
                "fairness": {
                    "sensitive_features": ["SEX", "MARRIAGE"],
                    "targets": ["selection_rate ratio >= 0.8", "recall_score difference <= 0.1"],
                },
                "data_explorer": {"features": ["AGE", "PAY_0"]},
            }
        },
    }
    return train, test, model, config


def insurance(lightgbm: bool) -> tuple[pd.DataFrame, pd.DataFrame, object, dict]:
    data = pd.read_parquet(DATASETS / "insurance.parquet")
    train, test = _split(data, 1000, 338)
    categorical = ["sex", "smoker", "region"]
    if lightgbm:
        from lightgbm import LGBMRegressor

        estimator = LGBMRegressor(n_estimators=100, random_state=0, verbose=-1)
    else:
        estimator = LinearRegression()
    model = _model(categorical, estimator).fit(train.drop(columns="charges"), train["charges"])
    config = {
        "target_column": "charges",
        "task_type": "regression",
        "desired_outcome": "decrease",
        "sensitive_features": ["sex", "age"],
        "sample_size": 100,
        "error_analysis": {"max_depth": 3, "heatmap_features": ["bmi", "smoker"]},
        "explainer": {"method": "auto"},
        "counterfactual": {"total_CFs": 3, "desired_range": [0, 10000], "n_jobs": 2},
        "causal": {"treatment_features": ["bmi", "smoker"], "train_sample_size": 0, "n_jobs": 2},
        "scorecard": {
            "config": {
                "model": {"name": "Insurance charges", "version": "1"},
                "targets": ["r2_score >= 0.7", "mean_absolute_error <= 5000"],
                "fairness": {"sensitive_features": ["sex"], "targets": ["mean_absolute_error difference <= 1000"]},
                "data_explorer": {"features": ["age", "bmi"]},
            }
        },
    }
    return train, test, model, config


def diabetes(lightgbm: bool) -> tuple[pd.DataFrame, pd.DataFrame, object, dict]:
    data = pd.read_parquet(DATASETS / "diabetes_130_hospitals.parquet")
    data = data.drop(columns=["encounter_id", "patient_nbr", "readmitted", "weight"])
    target = "readmit_30_days"
    rare = data[data["gender"] == "Unknown/Invalid"]  # keep the rare group in the test set
    train, test = _split(data.drop(rare.index), 15000, 6000)
    test = pd.concat([test, rare], ignore_index=True)
    categorical = [c for c in data.columns if data[c].dtype == object]
    model = _model(categorical, _classifier(lightgbm))
    model.fit(train.drop(columns=target), train[target])
    config = {
        "target_column": target,
        "task_type": "binary_classification",
        "positive_label": 1,
        "desired_outcome": "decrease",
        "sensitive_features": ["gender", "race"],
        "sample_size": 200,
        "error_analysis": {"max_depth": 3, "heatmap_features": ["age", "number_inpatient"]},
        "explainer": {"method": "auto"},
        "counterfactual": {"total_CFs": 3, "n_jobs": 2},
        "causal": {
            "treatment_features": ["num_medications", "gender"],
            "heterogeneity_features": [],
            "train_sample_size": 4000,
            "n_jobs": 2,
        },
        "scorecard": {
            "config": {
                "model": {"name": "Readmission within 30 days", "version": "1"},
                "targets": ["accuracy_score >= 0.85", "roc_auc_score >= 0.6"],
                "fairness": {
                    "sensitive_features": ["gender", "race"],
                    "targets": ["selection_rate ratio >= 0.8", "accuracy_score difference <= 0.05"],
                },
                "data_explorer": {"features": ["age", "time_in_hospital"]},
            }
        },
    }
    return train, test, model, config


CASES = {"credit": credit, "insurance": insurance, "diabetes": diabetes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(CASES), default=list(CASES))
    parser.add_argument("--output", default="review-audits")
    parser.add_argument("--lightgbm", action="store_true", help="LightGBM in place of each case's estimator")
    args = parser.parse_args()
    rai_audit = Path(sys.executable).with_name("rai-audit")
    for name in args.only:
        folder = (Path(args.output) / name).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        train, test, model, config = CASES[name](args.lightgbm)
        train.to_parquet(folder / "train.parquet", index=False)
        test.to_parquet(folder / "test.parquet", index=False)
        joblib.dump(model, folder / "model.joblib")
        # This script trained the joblib file itself; loading one from elsewhere runs its code.
        config.update(
            model="model.joblib",
            allow_pickle=True,
            train_data="train.parquet",
            test_data="test.parquet",
            random_state=0,
        )
        (folder / "audit.json").write_text(json.dumps(config, indent=2))
        run = folder / "run"
        print(f"== {name}: rai-audit run {folder / 'audit.json'}", flush=True)
        done = subprocess.run([str(rai_audit), "run", str(folder / "audit.json"), "--output", str(run)])
        if done.returncode:
            print(f"== {name}: rai-audit run failed ({done.returncode})")
            continue
        review = folder / "review"
        for pdf in run.glob("pipeline_root/*/scorecard/scorecard/scorecard.pdf"):
            subprocess.run([str(REPO / "scripts/render-scorecard-pages.sh"), str(pdf), str(review / "pdf")], check=True)
        for page in run.glob("pipeline_root/*/gather/dashboard/dashboard.html"):
            subprocess.run(
                [sys.executable, str(REPO / "scripts/dashboard-screenshots.py"), str(page), str(review / "page")],
                check=True,
            )
        print(f"== {name}: review in {review}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
