"""pipelines/examples/train_audit_deploy.py under kfp.local: its own training component writes
the model with skops.io.dump into an Output[Model]; the audit (components from their YAMLs) and
the registration both read it; a model that passes is registered, one that fails is not."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn import metrics as skm

from support import REPO

EXAMPLE = REPO / "pipelines" / "examples" / "train_audit_deploy.py"
PASSING = {"model": {"name": "example"}, "targets": ["accuracy_score >= 0.6"]}
FAILING = {"model": {"name": "example"}, "targets": ["accuracy_score >= 0.6", "accuracy_score >= 0.999"]}


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_audit_deploy", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n), "group": rng.choice(["a", "b"], size=n)})
    noisy = frame["x"] + 0.5 * frame["z"] + rng.normal(scale=0.5, size=n)
    frame["label"] = np.where(noisy > 0, "good", "bad")
    folder = tmp_path_factory.mktemp("tables")
    frame.iloc[:250].to_parquet(folder / "train.parquet", index=False)
    frame.iloc[250:].reset_index(drop=True).to_parquet(folder / "test.parquet", index=False)
    return folder, frame.iloc[250:].reset_index(drop=True)


def _run(example, tables, tmp_path, config):
    folder, _ = tables
    arguments = dict(
        train_uri=str(folder / "train.parquet"),
        test_uri=str(folder / "test.parquet"),
        target_column="label",
        positive_label="good",
        categorical_features=["group"],
        sensitive_features=["group"],
        max_depth=3,
        scorecard_config=config,
        bootstrap=0,
    )
    example.run_locally(arguments, str(tmp_path / "root"))
    (run,) = (tmp_path / "root").iterdir()
    return run


def test_a_passing_model_is_registered(example, tables, tmp_path):
    run = _run(example, tables, tmp_path, PASSING)
    model_file = run / "train" / "model"
    assert model_file.is_file() and model_file.suffix == ""  # as skops.io.dump wrote it: no extension
    card = json.loads((run / "scorecard" / "scorecard" / "scorecard.json").read_text())
    assert card["passed"] is True
    registered = run / "register-model" / "registered_model"
    meta = json.loads((registered / "meta.json").read_text())
    assert meta["model_sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert (registered / "scorecard.pdf").read_bytes().startswith(b"%PDF")

    # The scorecard's views for the Kubeflow UI, against scikit-learn on the trained model.
    _, test = tables
    model = skops.io.load(model_file, trusted=skops.io.get_untrusted_types(file=model_file))
    predicted = model.predict(test.drop(columns="label"))
    assert card["performance"]["metrics"]["accuracy_score"] == pytest.approx(skm.accuracy_score(test.label, predicted))
    verdict = (run / "scorecard" / "verdict_markdown").read_text()
    assert verdict.startswith("# Scorecard: PASS")
    assert json.loads((run / "scorecard" / "verdict").read_text())["passed"] is True


def test_a_failing_model_is_not_registered(example, tables, tmp_path):
    run = _run(example, tables, tmp_path, FAILING)
    card = json.loads((run / "scorecard" / "scorecard" / "scorecard.json").read_text())
    assert card["passed"] is False and card["n_missed"] == 1
    assert (run / "gather" / "dashboard" / "dashboard.html").is_file()
    assert not (run / "register-model").exists()
    assert (run / "scorecard" / "verdict_markdown").read_text().startswith("# Scorecard: FAIL")
