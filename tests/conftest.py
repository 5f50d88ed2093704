"""Shared fixtures: real datasets from ../shared/datasets with a model trained on each.

Cases (session-scoped, each model seeded):
- ``adult_case``: UCI Adult, binary, the demo's Pipeline (one-hot + gradient boosting).
- ``compas_case``: COMPAS ``score_text`` (Low/Medium/High), multiclass, logistic regression.
- ``insurance_case``: medical charges, regression, linear regression.
Each is a ``Case`` with the paths of model, train and test files written in a temp folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from rai_audit.core import artifacts as A
from rai_audit.demo import train_demo_model
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from rai_audit.steps.gather import run_gather

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAI_AUDIT_SHARED", REPO.parent / "shared"))
DATASETS = SHARED / "datasets"
AZURE_EXAMPLES = SHARED / "azure-examples"


def shared_dataset(name: str) -> pd.DataFrame:
    path = DATASETS / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the tests need ../shared/datasets beside the repo "
            "(or RAI_AUDIT_SHARED pointing at shared/)"
        )
    return pd.read_parquet(path)


@dataclass
class Case:
    folder: Path
    model: Path
    train: Path
    test: Path
    target: str
    task_type: str
    sensitive: list[str]
    positive_label: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def options(self, **overrides: Any) -> ConstructorOptions:
        # The cases' models are joblib files the tests wrote themselves.
        values = dict(
            target_column=self.target,
            task_type=self.task_type,
            sensitive_features=self.sensitive,
            positive_label=self.positive_label,
            allow_pickle=True,
        )
        values.update(overrides)
        return ConstructorOptions(**values)

    def construct(self, output: Path, **overrides: Any) -> Path:
        run_constructor(self.model, self.train, self.test, output, options=self.options(**overrides))
        return output


def _write_case(folder: Path, model, train: pd.DataFrame, test: pd.DataFrame, **kwargs) -> Case:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"model": folder / "model.joblib", "train": folder / "train.parquet", "test": folder / "test.parquet"}
    joblib.dump(model, paths["model"])
    train.to_parquet(paths["train"], index=False)
    test.to_parquet(paths["test"], index=False)
    return Case(folder=folder, **paths, **kwargs)


@pytest.fixture(scope="session")
def adult_case(tmp_path_factory) -> Case:
    train = shared_dataset("adult_train.parquet")
    test = shared_dataset("adult_test.parquet")
    model = train_demo_model(train)
    return _write_case(
        tmp_path_factory.mktemp("adult"),
        model,
        train,
        test,
        target="income",
        task_type="binary_classification",
        sensitive=["sex", "race"],
        positive_label=">50K",
    )


def _encoded(categorical: list[str], numeric: list[str], estimator) -> Pipeline:
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), categorical), ("num", StandardScaler(), numeric)]
    )
    return Pipeline([("encode", encode), ("model", estimator)])


@pytest.fixture(scope="session")
def compas_case(tmp_path_factory) -> Case:
    columns = ["age", "priors_count", "juv_fel_count", "c_charge_degree", "race", "sex", "score_text"]
    data = shared_dataset("compas_two_years.parquet")[columns]
    train, test = data.iloc[:5000].reset_index(drop=True), data.iloc[5000:].reset_index(drop=True)
    model = _encoded(
        ["c_charge_degree", "race", "sex"], ["age", "priors_count", "juv_fel_count"], LogisticRegression(max_iter=1000)
    )
    model.fit(train.drop(columns="score_text"), train["score_text"])
    return _write_case(
        tmp_path_factory.mktemp("compas"),
        model,
        train,
        test,
        target="score_text",
        task_type="multiclass_classification",
        sensitive=["race", "sex"],
    )


@pytest.fixture(scope="session")
def insurance_case(tmp_path_factory) -> Case:
    data = shared_dataset("insurance.parquet")
    train, test = data.iloc[:1000].reset_index(drop=True), data.iloc[1000:].reset_index(drop=True)
    model = _encoded(["sex", "smoker", "region"], ["age", "bmi", "children"], LinearRegression())
    model.fit(train.drop(columns="charges"), train["charges"])
    return _write_case(
        tmp_path_factory.mktemp("insurance"),
        model,
        train,
        test,
        target="charges",
        task_type="regression",
        sensitive=["sex", "age"],
    )


ADULT_COHORTS = [
    {"name": "Under 30", "filter": {"column": "age", "op": "<", "value": 30}},
    {"name": "Nobody", "filter": {"column": "age", "op": ">", "value": 500}},
]


def build_bundle(case: Case, folder: Path, **options: Any) -> tuple[Path, dict[str, Any]]:
    """Constructor + gather into ``folder``; returns it and the bundle's insights.json."""
    case.construct(folder / "constructor", **options)
    run_gather(folder / "constructor", [], folder / "dashboard")
    return folder, json.loads((folder / "dashboard" / A.INSIGHTS_JSON_FILE).read_text())


@pytest.fixture(scope="session")
def adult_bundle(adult_case, tmp_path_factory):
    return build_bundle(adult_case, tmp_path_factory.mktemp("adult_bundle"), cohorts=ADULT_COHORTS)


def page_data(page: Path) -> dict[str, Any]:
    """The figures a dashboard.html embeds (its #rai-data JSON): what its script draws."""
    html = page.read_text(encoding="utf-8")
    start = html.index('<script type="application/json" id="rai-data">') + len(
        '<script type="application/json" id="rai-data">'
    )
    return json.loads(html[start : html.index("</script>", start)])
