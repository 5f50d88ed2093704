"""The rai-audit command: run from a config, the demo, compile, and clear errors (exit 2)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rai_audit import archive
from rai_audit.cli import main
from rai_audit.storage import storage_down, storage_up
from rai_audit.core import artifacts as A

from conftest import AZURE_EXAMPLES, REPO


def _bundle_from_output(out: str) -> Path:
    line = next(l for l in out.splitlines() if l.startswith("dashboard bundle: "))
    return Path(line.removeprefix("dashboard bundle: "))


@pytest.fixture
def config_dir(insurance_case, tmp_path):
    """An audit config with relative paths and Azure-format cohorts, as a user writes it."""
    for name in ("model", "train", "test"):
        src = getattr(insurance_case, name)
        shutil.copy2(src, tmp_path / src.name)
    shutil.copy2(AZURE_EXAMPLES / "azureml-assets__boston__cohorts.json", tmp_path / "azure_cohorts.json")
    config = {"model": "model.joblib", "allow_pickle": True, "train_data": "train.parquet", "test_data": "test.parquet",
              "target_column": "charges", "task_type": "regression",
              "sensitive_features": ["sex", "smoker"],
              "error_analysis": {"filter_features": ["smoker"], "max_depth": 2},  # Azure's name
              "explainer": {"rows": "all"},
              "counterfactual": {"desired_range": [0, 15000], "total_CFs": 2, "rows": "Older smokers"},
              "causal": {"treatment_features": ["smoker", "bmi"], "heterogeneity_features": None,
                         "treatment_cost": 100, "n_jobs": 1},
              "cohorts": [{"name": "Older smokers", "filter": {"and": [
                  {"column": "age", "op": ">=", "value": 50},
                  {"column": "smoker", "op": "==", "value": "yes"}]}}]}
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(config))
    return tmp_path, config


def test_run_from_config(config_dir, capsys):
    folder, _ = config_dir
    assert main(["run", str(folder / "audit.yaml"), "--output", str(folder / "out")]) == 0
    bundle = _bundle_from_output(capsys.readouterr().out)
    doc = json.loads((bundle / A.INSIGHTS_JSON_FILE).read_text())
    assert doc["task_type"] == "regression"
    test = pd.read_parquet(folder / "test.parquet")
    expected = ((test.age >= 50) & (test.smoker == "yes")).sum()
    assert (doc["cohorts"][0]["name"], doc["cohorts"][0]["count"]) == ("Older smokers", expected)
    ea = doc["error_analysis"]
    assert ea["error_metric"] == "mean_absolute_error" and ea["heatmap"]["axes"][0]["feature"] == "smoker"
    assert max(n["depth"] for n in ea["tree"]["nodes"]) <= 2
    assert doc["explanation"]["method"] == "linear" and doc["explanation"]["n_rows"] == len(test)
    counterfactual = doc["counterfactual"]
    assert counterfactual["totals"]["rows"] == expected and counterfactual["desired_range"] == [0, 15000]
    causal = doc["causal"]  # all 1,000 train rows (fewer than the default sample), every feature for heterogeneity
    assert causal["fit"]["train_rows"] == 1000 and causal["fit"]["heterogeneity_features"] is None
    smoking = next(e for e in causal["global_effects"] if e["treatment"] == "smoker")
    assert (smoking["control"], smoking["level"]) == ("no", "yes")
    assert 15000 < smoking["point"] < 35000  # smokers' charges are ~$24k higher in this data
    assert [p["cost"] for p in causal["policies"]] == [100.0, 100.0]


@pytest.mark.parametrize("change, match", [
    ({"colour": "blue"}, r"unknown config keys \['colour'\]"),
    ({"target_column": None}, r"missing the required keys \['target_column'\]"),
    ({"model": "nowhere.joblib"}, r"config `model`: .*nowhere.joblib does not exist"),
    ({"sensitive_features": "sex"}, r"`sensitive_features` must be a list"),
    ({"sample_size": "many"}, r"`sample_size` must be an integer"),
    ({"cohorts": "azure_cohorts.json"}, r"column 'TAX' is not a feature"),
    ({"cohorts": "missing.json"}, r"cohort file .*missing.json does not exist"),
    ({"error_analysis": {"max_depth": 0}}, r"`max_depth` must be an integer >= 1, got 0"),
    ({"error_analysis": {"depth": 3}}, r"config `error_analysis` has unknown options \['depth'\]"),
    ({"error_analysis": [3]}, r"config `error_analysis` must be a mapping"),
    ({"explainer": {"method": "shap"}}, r"`method` must be one of \['auto', 'tree', 'linear', 'mimic'\]"),
    ({"explainer": {"shard_index": 1}}, r"config `explainer` has unknown options \['shard_index'\]"),
    ({"counterfactual": {"desired_range": [5, 1]}}, r"`desired_range` must be \[low, high\] with low <= high"),
    ({"causal": {"heterogeneity_features": ["age"]}}, r"`treatment_features` must be a non-empty list"),
    ({"causal": {"treatment_features": ["bmi"], "treatment_cost": [1, 2]}},
     r"`treatment_cost` must have one value per treatment feature \(1\), got 2"),
    # found by the step itself, reported through the local pipeline run
    ({"causal": {"treatment_features": ["charges"]}}, r"run failed: .*names the target column 'charges'"),
])
def test_bad_config_exits_2_with_a_clear_message(config_dir, capsys, change, match):
    folder, config = config_dir
    (folder / "bad.yaml").write_text(yaml.safe_dump({**config, **change}))
    assert main(["run", str(folder / "bad.yaml"), "--output", str(folder / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rai-audit: error: ")
    assert re.search(match, err), err


def test_unreadable_config(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("model: [unclosed")
    assert main(["run", str(tmp_path / "c.yaml")]) == 2
    assert "is not valid YAML/JSON" in capsys.readouterr().err


def test_demo_runs_the_full_audit(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a relative --output, as in the README's `make demo`
    assert main(["demo", "--output", "demo-out"]) == 0
    out = capsys.readouterr().out
    bundle = _bundle_from_output(out)
    assert "NOT PASSED (2 of 8 targets missed)" in out and "model not registered" in out
    A.verify_manifest(bundle)
    doc = json.loads((bundle / A.INSIGHTS_JSON_FILE).read_text())
    assert doc["data"]["n_test"] == 16281 and doc["model_overview"]["overall"]["count"] == 16281
    assert 0.8 < doc["model_overview"]["overall"]["accuracy_score"] < 0.95
    assert [e["features"] for e in doc["fairness"]] == [["sex"], ["race"], ["sex", "race"]]
    assert {c["name"] for c in doc["cohorts"]} >= {"Under 30", "Misclassified"}
    assert (bundle / A.DASHBOARD_HTML_FILE).is_file()
    assert sum(n["count"] for n in doc["error_analysis"]["tree"]["nodes"] if n["leaf"]) == 16281
    assert doc["explanation"]["n_rows"] == 16281 and doc["explanation"]["method"] == "mimic"
    counterfactual = doc["counterfactual"]  # the demo's 200-row sample, in 2 shards
    assert counterfactual["totals"]["rows"] == 200 and counterfactual["rows_selection"]["merged_from"] == 2
    assert counterfactual["totals"]["valid"] > 0
    causal = doc["causal"]
    assert causal["fit"]["train_rows"] == 5000 and [t["feature"] for t in causal["treatments"]] == [
        "hours-per-week", "sex"]
    # the demo's scorecard misses its demographic parity target, so the model is not registered
    run_dir = bundle.parents[1]
    card = json.loads((run_dir / "scorecard" / "scorecard" / "scorecard.json").read_text())
    assert not card["passed"] and card["n_missed"] == 2
    assert (run_dir / "scorecard" / "scorecard" / "scorecard.pdf").read_bytes().startswith(b"%PDF")
    assert not (run_dir / "register-model").exists()
    # ... and the audit is archived in the demo's SeaweedFS (stopped after the run, data kept)
    settings = storage_up(tmp_path / "demo-out" / "storage")
    try:
        [archived] = archive.list_audits(settings, "rai-audit", model="adult-income-demo")
        assert archived["run_id"] == doc["run_id"] and archived["passed"] is False
        assert f"archived: s3://rai-audit/{archived['audit']}" in out
    finally:
        storage_down(tmp_path / "demo-out" / "storage")


@pytest.mark.parametrize("pipeline", ["audit", "overview"])
def test_compile_writes_the_checked_in_yaml(tmp_path, monkeypatch, pipeline):
    monkeypatch.delenv("RAI_AUDIT_IMAGE_REGISTRY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["compile", "--pipeline", pipeline]) == 0
    name = f"{pipeline}_pipeline.yaml"
    assert (tmp_path / "pipelines" / name).read_text() == (REPO / "pipelines" / name).read_text()


def test_step_commands_are_dispatched(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["gather", "--help"])
    assert exit_info.value.code == 0
    assert "--constructor" in capsys.readouterr().out
