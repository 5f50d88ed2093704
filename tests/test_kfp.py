"""The KFP layer: component interfaces, compiled YAML up to date, and a real kfp.local run."""

from __future__ import annotations

import json
from types import SimpleNamespace

import joblib
import pandas as pd
import pytest
import yaml
from kfp import compiler
from sklearn import metrics as skm

from rai_audit import __version__
from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.local_run import run_audit_locally
from rai_audit.pipelines import PIPELINE_OPTIONS, pipeline
from support import ADULT_COHORTS, REPO

CHECKED_IN_YAML = REPO / "pipelines" / "audit_pipeline.yaml"


@pytest.mark.parametrize("name", sorted(PIPELINE_OPTIONS))
def test_compiled_pipelines_are_up_to_date(tmp_path, monkeypatch, name):
    monkeypatch.delenv("RAI_AUDIT_IMAGE_REGISTRY", raising=False)
    fresh = tmp_path / f"{name}_pipeline.yaml"
    compiler.Compiler().compile(pipeline(name), str(fresh))
    assert fresh.read_text() == (REPO / "pipelines" / fresh.name).read_text(), (
        f"pipelines/{fresh.name} is stale: run `make compile` and commit it"
    )


def test_component_interfaces():
    spec, platform = yaml.safe_load_all(CHECKED_IN_YAML.read_text())  # the pipeline, then its Kubernetes config
    components = spec["components"]
    c = components["comp-constructor"]
    assert set(c["inputDefinitions"]["artifacts"]) == {"model", "train_data", "test_data"}
    assert c["inputDefinitions"]["artifacts"]["model"]["artifactType"]["schemaTitle"] == "system.Model"
    assert c["inputDefinitions"]["parameters"]["cohorts"]["parameterType"] == "LIST"
    assert c["inputDefinitions"]["parameters"]["sample_size"]["defaultValue"] == 0
    assert set(c["outputDefinitions"]["artifacts"]) == {"insights"}
    g = components["comp-gather"]
    outputs = g["outputDefinitions"]["artifacts"]
    assert outputs["dashboard_html"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert outputs["overall_metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    inputs = g["inputDefinitions"]["artifacts"]
    assert [inputs[f"insight_{i}"].get("isOptional") for i in range(1, 5)] == [True] * 4
    executors = spec["deploymentSpec"]["executors"].values()
    images = {e["container"]["image"] for e in executors if "container" in e}
    # importers have no image; each step has its own, tagged with the package version
    assert images == {
        f"rai-audit/{step}:{__version__}"
        for step in (
            "constructor",
            "error_analysis",
            "explainer",
            "counterfactual",
            "causal",
            "gather",
            "scorecard",
            "publish",
        )
    }
    # the explainer and the counterfactual search fan out over shards and merges collect them
    dag = spec["root"]["dag"]["tasks"]
    for loop, merge in (("for-loop-2", "merge-explanations"), ("for-loop-4", "merge-counterfactuals")):
        assert dag[loop]["parameterIterator"]["items"]["raw"] == "[0, 1]"
        assert dag[merge]["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]["producerTask"] == loop
    gathered = dag["gather"]["inputs"]["artifacts"]
    assert {gathered[f"insight_{i}"]["taskOutputArtifact"]["producerTask"] for i in (1, 2, 3, 4)} == {
        "error-analysis",
        "merge-explanations",
        "merge-counterfactuals",
        "causal",
    }
    causal = components["comp-causal"]["inputDefinitions"]["parameters"]
    assert (
        causal["treatment_features"]["parameterType"] == "LIST" and "defaultValue" not in causal["treatment_features"]
    )
    # Azure's encoding: a JSON list, "null" for all features
    assert causal["heterogeneity_features"]["defaultValue"] == "null"
    assert causal["train_sample_size"]["defaultValue"] == 10000
    # the scorecard's `passed` gates the model's registration (dsl.If)
    card = components["comp-scorecard"]["outputDefinitions"]
    assert card["parameters"]["passed"]["parameterType"] == "BOOLEAN"  # the named output the docs use
    assert card["parameters"]["Output"]["parameterType"] == "BOOLEAN"  # the same, as the return value
    assert card["artifacts"]["headline_metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert dag["scorecard"]["inputs"]["artifacts"]["dashboard"]["taskOutputArtifact"]["producerTask"] == "gather"
    gate = next(task for name, task in dag.items() if name.startswith("condition-"))
    assert gate["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--scorecard-passed'] == true"
    assert list(components[gate["componentRef"]["name"]]["dag"]["tasks"]) == ["register-model"]
    # the audit is archived last; on a cluster its S3 settings come from a Kubernetes secret
    assert dag["publish"]["dependentTasks"] == ["gather", "scorecard"]
    secrets = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-publish"]["secretAsEnv"]
    assert {(m["secretKey"], m["envVar"]) for s in secrets for m in s["keyToEnv"]} == {
        ("endpoint", "RAI_AUDIT_S3_ENDPOINT"),
        ("access_key", "RAI_AUDIT_S3_ACCESS_KEY"),
        ("secret_key", "RAI_AUDIT_S3_SECRET_KEY"),
        ("region", "RAI_AUDIT_S3_REGION"),
    }
    assert {s["secretName"] for s in secrets} == {"rai-audit-s3"}
    ea = components["comp-error-analysis"]
    assert ea["inputDefinitions"]["parameters"]["max_depth"]["defaultValue"] == 3
    assert spec["root"]["inputDefinitions"]["parameters"]["error_analysis_num_leaves"]["defaultValue"] == 31
    for executor in spec["deploymentSpec"]["executors"].values():
        if "container" in executor:
            assert "pip install" not in " ".join(executor["container"]["command"])


def test_causal_fans_out_over_treatment_shards_when_asked(tmp_path):
    """Issue 25: with causal_shards the treatments are fitted in parallel tasks and merged (the
    merge itself equals the unsharded run: tests/steps/test_causal.py)."""
    from rai_audit.pipelines import build_audit_pipeline

    compiler.Compiler().compile(
        build_audit_pipeline(steps=("causal",), causal_shards=3, with_publish=False), str(tmp_path / "p.yaml")
    )
    dag = yaml.safe_load((tmp_path / "p.yaml").read_text())["root"]["dag"]["tasks"]
    loop = next(name for name in dag if name.startswith("for-loop"))
    assert dag[loop]["parameterIterator"]["items"]["raw"] == "[0, 1, 2]"
    assert dag["merge-causal"]["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]["producerTask"] == loop
    gathered = dag["gather"]["inputs"]["artifacts"]["insight_1"]["taskOutputArtifact"]["producerTask"]
    assert gathered == "merge-causal"


def test_a_model_image_of_ones_own_runs_the_steps_that_call_the_model(tmp_path):
    """Issue 22: a model whose library the step images lack runs in the user's image (KFP and Argo)."""
    from rai_audit.argo import argo_yaml
    from rai_audit.pipelines import build_audit_pipeline

    own = "registry.example.com/acme/audit-xgboost:1"
    steps = ("explainer", "counterfactual", "causal")
    built = build_audit_pipeline(steps=steps, explainer_shards=2, with_publish=False, model_image=own)
    compiler.Compiler().compile(built, str(tmp_path / "p.yaml"))
    executors = yaml.safe_load((tmp_path / "p.yaml").read_text())["deploymentSpec"]["executors"]
    images = {name.removeprefix("exec-"): e["container"]["image"] for name, e in executors.items() if "container" in e}
    calling = {"fingerprint-inputs", "constructor", "explainer", "merge-explanations", "counterfactual"}
    assert {name for name, image in images.items() if image == own} == calling
    assert images["causal"] == f"rai-audit/causal:{__version__}"
    templates = yaml.safe_load(argo_yaml(steps, model_image=own)["workflow-template.yaml"])["spec"]["templates"]
    argo_images = {t["name"]: t["container"]["image"] for t in templates if "container" in t}
    assert argo_images["constructor"] == own and argo_images["gather"] == f"rai-audit/gather:{__version__}"
    with pytest.raises(ValueError, match="model_image"):
        build_audit_pipeline(steps=steps, model_image="not an image")


@pytest.fixture(scope="module")
def small_adult(adult_case, tmp_path_factory):
    """Adult's model with the first 3,000 test rows, to keep the pipeline run short."""
    folder = tmp_path_factory.mktemp("small_adult")
    test = pd.read_parquet(adult_case.test).head(3000)
    test.to_parquet(folder / "test.parquet", index=False)
    return folder / "test.parquet", test


def _arguments(adult_case, test_path, **overrides):
    args = dict(
        model_uri=str(adult_case.model),
        allow_pickle=True,
        train_data_uri=str(adult_case.train),
        test_data_uri=str(test_path),
        target_column="income",
        task_type="binary_classification",
        sensitive_features=["sex", "race"],
        positive_label=">50K",
        cohorts=ADULT_COHORTS,
        sample_size=500,
    )
    args.update(overrides)
    return args


def test_local_pipeline_run_produces_the_bundle(adult_case, small_adult, tmp_path):
    test_path, test = small_adult
    arguments = _arguments(
        adult_case,
        test_path,
        error_analysis_heatmap_features=["age"],
        causal_treatment_features=["hours-per-week"],
        causal_heterogeneity_features='["sex"]',
        causal_train_sample_size=2000,
        causal_n_jobs=1,
        scorecard_config={"targets": ["accuracy_score >= 0.5"]},
        scorecard_bootstrap=10,
    )
    tasks = []
    heard = SimpleNamespace(task_started=lambda task: None, task_ended=tasks.append)
    # Two tasks at a time (the other tests run one): a ParallelFor, a dsl.If and the other
    # steps side by side compute what one task at a time does.
    bundle = run_audit_locally(
        arguments,
        tmp_path,
        steps=["error_analysis", "explainer", "causal"],
        explainer_shards=2,
        with_scorecard=True,
        gate_registration=True,
        parallel_tasks=2,
        progress=heard,
    )
    ran = {task.label: (task.started, task.started + task.seconds) for task in tasks}
    steps = {
        "error-analysis": ["error-analysis"],
        "explainer": ["explainer shard 1", "explainer shard 2"],
        "causal": ["causal"],
    }
    spans = [(step, ran[label]) for step, labels in steps.items() for label in labels]
    # two different steps ran side by side (a ParallelFor's shards do so anyway)
    assert any(s != t and a[0] < b[1] and b[0] < a[1] for s, a in spans for t, b in spans)
    assert ran["gather"][0] >= max(end for _, (_, end) in spans)
    run_dir = bundle.parents[1]
    assert bundle.is_relative_to(tmp_path / "pipeline_root")
    A.verify_manifest(bundle)
    doc = json.loads((bundle / A.INSIGHTS_JSON_FILE).read_text())
    model = joblib.load(adult_case.model)
    pred = model.predict(test.drop(columns="income"))
    assert doc["model_overview"]["overall"]["count"] == 3000
    assert doc["model_overview"]["overall"]["accuracy_score"] == pytest.approx(skm.accuracy_score(test["income"], pred))
    assert doc["data"]["sample"]["size"] == 500
    leaves = [n for n in doc["error_analysis"]["tree"]["nodes"] if n["leaf"]]
    assert sum(n["count"] for n in leaves) == 3000
    assert doc["error_analysis"]["heatmap"]["axes"][0]["feature"] == "age"
    assert (bundle / "insights" / "error_analysis" / A.INSIGHT_RESULT_FILE).is_file()
    explanation = doc["explanation"]  # two shards (ParallelFor) merged
    assert explanation["n_rows"] == 500 and explanation["rows"]["merged_from"] == 2
    local = pd.read_parquet(bundle / "insights" / "explanation" / "local_importance.parquet")
    sample = pd.read_parquet(run_dir / "constructor" / "insights" / A.PREDICTIONS_FILE).query("in_sample")
    assert sorted(local.row_id.unique()) == sorted(sample.row_id)
    # KFP turned the cohort's integer 30 into 30.0; the cohort still selects age < 30
    causal = doc["causal"]
    assert causal["fit"]["train_rows"] == 2000 and causal["fit"]["heterogeneity_features"] == ["sex"]
    assert [e["treatment"] for e in causal["global_effects"]] == ["hours-per-week"]
    assert [g["count"] for g in causal["sensitive_groups"] if g["feature"] == "sex"] == [
        (test["sex"] == "Female").sum(),
        (test["sex"] == "Male").sum(),
    ]
    young = next(c for c in doc["cohorts"] if c["name"] == "Under 30")
    assert young["count"] == (test["age"] < 30).sum()
    constructor_meta = json.loads((run_dir / "constructor" / "insights" / A.META_FILE).read_text())
    assert constructor_meta["run_id"] == doc["run_id"]
    html = (run_dir / "gather" / "dashboard_html").read_text()
    assert html == (bundle / A.DASHBOARD_HTML_FILE).read_text()
    # the scorecard passed, so the gated registration ran: the model beside its scorecard
    card = json.loads((run_dir / "scorecard" / "scorecard" / "scorecard.json").read_text())
    assert card["passed"] and card["targets"][0]["measured"] == pytest.approx(
        doc["model_overview"]["overall"]["accuracy_score"]
    )
    registered = run_dir / "register-model" / "registered_model"
    assert (registered / adult_case.model.name).read_bytes() == adult_case.model.read_bytes()
    assert json.loads((registered / "scorecard.json").read_text()) == card
    outputs = json.loads((run_dir / "gather" / "executor_output.json").read_text())["artifacts"]
    metrics = outputs["overall_metrics"]["artifacts"][0]["metadata"]  # KFP keeps Metrics there
    assert metrics["accuracy_score"] == pytest.approx(doc["model_overview"]["overall"]["accuracy_score"])


def test_local_pipeline_run_failure_is_reported(adult_case, small_adult, tmp_path):
    test_path, _ = small_adult
    with pytest.raises(RAIInputError, match="local pipeline run failed"):
        run_audit_locally(_arguments(adult_case, test_path, target_column="salary"), tmp_path, steps=[])
