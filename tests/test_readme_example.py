"""The README's KFP DSL example runs as written, and what it computes is right.

The block after the README's marker comment is run as a script in a fresh folder (a
subprocess: kfp.local's settings are process-wide), on the shipped demo data; its bundle's
figures are then checked against scikit-learn and pandas on the same model and test file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn import metrics as skm

from support import REPO

MARKER = "<!-- the python block below is run by tests/test_readme_example.py -->"


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    assert text.count(MARKER) == 1, f"README.md must hold the marker {MARKER!r} once"
    block = re.match(r"\s*```python\n(.*?)\n```", text[text.index(MARKER) + len(MARKER) :], re.S)
    assert block, "README.md: no ```python block right after the marker"
    return block.group(1)


def test_the_example_composes_constructor_error_analysis_and_gather():
    code = readme_example()
    assert "from rai_audit import kfp_components" in code and "dsl.importer(" in code
    assert all(f"rai.{step}(" in code for step in ("constructor", "error_analysis", "gather"))


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme_example")
    done = subprocess.run(
        [sys.executable, "-c", readme_example()], cwd=folder, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    printed = re.findall(r"^bundle: (.+)$", done.stdout, re.M)
    assert len(printed) == 1, done.stdout[-2000:]
    return folder, Path(printed[0])


def _rows(data: pd.DataFrame, condition: dict) -> pd.Series:
    """The rows an error-tree node's condition selects (the ops a tree split uses)."""
    column, op, value = data[condition["column"]], condition["op"], condition["value"]
    return {
        "in": lambda: column.isin(value),
        "not in": lambda: ~column.isin(value),
        "<=": lambda: column <= value,
        ">": lambda: column > value,
    }[op]()


def test_the_example_writes_a_bundle_whose_figures_are_right(example_run):
    folder, bundle = example_run
    assert bundle.is_relative_to(folder / "pipeline_root")
    assert (bundle / "dashboard.html").is_file()
    doc = json.loads((bundle / "insights.json").read_text())
    test = pd.read_parquet(folder / "demo" / "adult_test.parquet")
    model = joblib.load(folder / "demo" / "model.joblib")
    wrong = pd.Series(model.predict(test.drop(columns="income")) != test["income"].to_numpy(), index=test.index)

    overall = doc["model_overview"]["overall"]
    assert overall["count"] == len(test) == 16281
    assert overall["accuracy_score"] == pytest.approx(1 - wrong.mean())
    proba = model.predict_proba(test.drop(columns="income"))[:, list(model.classes_).index(">50K")]
    assert overall["roc_auc_score"] == pytest.approx(skm.roc_auc_score(test["income"] == ">50K", proba))

    errors = doc["error_analysis"]
    nodes = {n["id"]: n for n in errors["tree"]["nodes"]}
    assert max(n["depth"] for n in nodes.values()) <= 3  # max_depth=3
    leaves = [n for n in nodes.values() if n["leaf"]]
    # The leaves split the test rows and their errors among them.
    assert sum(n["count"] for n in leaves) == len(test)
    assert sum(n["error_sum"] for n in leaves) == wrong.sum()
    # Each node holds the rows its path of conditions selects, and their errors.
    for node in nodes.values():
        if node["parent"] is None:
            continue
        path, at = [], node
        while at["parent"] is not None:
            path.append(at["condition"])
            at = nodes[at["parent"]]
        selected = pd.Series(True, index=test.index)
        for condition in path:
            selected &= _rows(test, condition)
        assert (node["count"], node["error_sum"]) == (selected.sum(), wrong[selected].sum()), node["id"]
    assert [axis["feature"] for axis in errors["heatmap"]["axes"]] == ["age"]
