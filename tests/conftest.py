"""Shared fixtures: real datasets from ../shared/datasets with a model trained on each.

Cases (session-scoped, each model seeded):
- ``adult_case``: UCI Adult, binary, the demo's Pipeline (one-hot + gradient boosting).
- ``compas_case``: COMPAS ``score_text`` (Low/Medium/High), multiclass, logistic regression.
- ``insurance_case``: medical charges, regression, linear regression.
Each is a ``Case`` with the paths of model, train and test files written in a temp folder.
The helpers these are built from (and tests import) are in support.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from rai_audit.demo import train_demo_model
from support import ADULT_COHORTS, REPO, Case, build_bundle, encoded_model, shared_dataset, write_case

# scripts/ holds the modules the image scripts and the tests share (compare_artifacts,
# image_tools); a script run as `python scripts/x.py` finds them in its own folder.
sys.path.insert(0, str(REPO / "scripts"))


@dataclass(frozen=True)
class DemoRun:
    folder: Path  # the working folder the demo ran in (its output is folder / "demo-out")
    out: str
    err: str
    code: int


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """One `rai-audit demo --output demo-out` (a relative folder, as in the README's `make
    demo`), run once for the tests that read its output: it takes a minute or more."""
    from rai_audit.cli import main

    folder = tmp_path_factory.mktemp("demo")
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["demo", "--output", "demo-out"])
    finally:
        os.chdir(cwd)
    return DemoRun(folder, out.getvalue(), err.getvalue(), code)


@pytest.fixture(scope="session")
def adult_case(tmp_path_factory) -> Case:
    train = shared_dataset("adult_train.parquet")
    test = shared_dataset("adult_test.parquet")
    model = train_demo_model(train)
    return write_case(
        tmp_path_factory.mktemp("adult"),
        model,
        train,
        test,
        target="income",
        task_type="binary_classification",
        sensitive=["sex", "race"],
        positive_label=">50K",
    )


@pytest.fixture(scope="session")
def compas_case(tmp_path_factory) -> Case:
    columns = ["age", "priors_count", "juv_fel_count", "c_charge_degree", "race", "sex", "score_text"]
    data = shared_dataset("compas_two_years.parquet")[columns]
    train, test = data.iloc[:5000].reset_index(drop=True), data.iloc[5000:].reset_index(drop=True)
    model = encoded_model(
        ["c_charge_degree", "race", "sex"], ["age", "priors_count", "juv_fel_count"], LogisticRegression(max_iter=1000)
    )
    model.fit(train.drop(columns="score_text"), train["score_text"])
    return write_case(
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
    model = encoded_model(["sex", "smoker", "region"], ["age", "bmi", "children"], LinearRegression())
    model.fit(train.drop(columns="charges"), train["charges"])
    return write_case(
        tmp_path_factory.mktemp("insurance"),
        model,
        train,
        test,
        target="charges",
        task_type="regression",
        sensitive=["sex", "age"],
    )


@pytest.fixture(scope="session")
def adult_bundle(adult_case, tmp_path_factory):
    return build_bundle(adult_case, tmp_path_factory.mktemp("adult_bundle"), cohorts=ADULT_COHORTS)
