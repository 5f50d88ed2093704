"""Helpers and constants the tests share; the fixtures built from them are in conftest.py.

Tests import these by name (``from support import write_case``); pytest puts tests/ on
sys.path (tests/ has no __init__.py), as it does for conftest.py. The real datasets come
from ../shared/datasets beside the repository, or ``RAI_AUDIT_SHARED`` pointing at shared/.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from rai_audit.core import artifacts as A
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from rai_audit.steps.gather import run_gather

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAI_AUDIT_SHARED", REPO.parent / "shared"))
DATASETS = SHARED / "datasets"
AZURE_EXAMPLES = SHARED / "azure-examples"

ADULT_COHORTS = [
    {"name": "Under 30", "filter": {"column": "age", "op": "<", "value": 30}},
    {"name": "Nobody", "filter": {"column": "age", "op": ">", "value": 500}},
]


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
    """A model with its train and test files, and the constructor options that fit them."""

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


def write_case(folder: Path, model, train: pd.DataFrame, test: pd.DataFrame, **kwargs) -> Case:
    """``model`` (joblib), ``train`` and ``test`` (Parquet) written in ``folder``, as a Case."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"model": folder / "model.joblib", "train": folder / "train.parquet", "test": folder / "test.parquet"}
    joblib.dump(model, paths["model"])
    train.to_parquet(paths["train"], index=False)
    test.to_parquet(paths["test"], index=False)
    return Case(folder=folder, **paths, **kwargs)


def encoded_model(categorical: list[str], numeric: list[str], estimator) -> Pipeline:
    """``estimator`` behind one-hot encoding of ``categorical`` and scaling of ``numeric``."""
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), categorical), ("num", StandardScaler(), numeric)]
    )
    return Pipeline([("encode", encode), ("model", estimator)])


def build_bundle(case: Case, folder: Path, **options: Any) -> tuple[Path, dict[str, Any]]:
    """Constructor + gather into ``folder``; returns it and the bundle's insights.json."""
    case.construct(folder / "constructor", **options)
    run_gather(folder / "constructor", [], folder / "dashboard")
    return folder, json.loads((folder / "dashboard" / A.INSIGHTS_JSON_FILE).read_text())


def page_data(page: Path) -> dict[str, Any]:
    """The figures a dashboard.html embeds (its #rai-data JSON): what its script draws."""
    html = page.read_text(encoding="utf-8")
    start = html.index('<script type="application/json" id="rai-data">') + len(
        '<script type="application/json" id="rai-data">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def shown_text(page: Path, tab: str) -> str:
    """The text a tab of a dashboard.html shows, as headless Chromium draws it."""
    import shutil

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            view = browser.new_page()
            view.goto(page.resolve().as_uri())
            view.wait_for_function("document.body.dataset.ready === '1'")
            view.click(f"#tab-{tab}")
            return view.inner_text(f"#panel-{tab}")
        finally:
            browser.close()
