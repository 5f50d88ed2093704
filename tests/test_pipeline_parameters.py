"""Each pipeline variant, compiled: only its own steps' parameters, each with a description."""

# No `from __future__ import annotations`: KFP reads the pipelines' annotations.
import pytest
import yaml
from kfp import compiler

from rai_audit.pipelines import build_audit_pipeline, pipeline
from rai_audit.specs import ANALYSIS_STEPS, PIPELINE_OPTIONS, step_options

PREFIXED_STEPS = (*ANALYSIS_STEPS, "scorecard", "publish")


def _parameters(built, tmp_path):
    compiler.Compiler().compile(built, str(tmp_path / "p.yaml"))
    spec, *_ = yaml.safe_load_all((tmp_path / "p.yaml").read_text())
    return spec["root"]["inputDefinitions"]["parameters"]


@pytest.mark.parametrize("name", sorted(PIPELINE_OPTIONS))
def test_each_variant_exposes_its_own_parameters_described(name, tmp_path):
    build = PIPELINE_OPTIONS[name]
    params = _parameters(pipeline(name), tmp_path)
    runs = set(build["steps"]) | {s for s in ("scorecard", "publish") if build.get(f"with_{s}")}
    for step in PREFIXED_STEPS:
        mine = {n for n in params if n.startswith(f"{step}_")}
        if step in runs:
            options = {o.parameter_name() for o in step_options(step, "pipeline") if not o.shared}
            assert options <= mine, f"{name}: {step}'s options missing: {options - mine}"
        else:
            assert not mine, f"{name} does not run {step} but takes {sorted(mine)}"
    # The constructor's options, the seed and the URIs in every variant.
    assert {o.parameter_name() for o in step_options("constructor", "pipeline")} <= set(params)
    assert {"model_uri", "train_data_uri", "test_data_uri", "random_state"} <= set(params)
    assert ("scorecard_config" in params) == ("scorecard" in runs)
    for parameter, definition in params.items():
        assert len(definition.get("description", "")) > 10, f"{name}.{parameter} has no description"
    # Descriptions are the options' help (with the allowed values).
    assert params["task_type"]["description"].startswith("The model's task. One of: binary_classification")
    assert "isOptional" not in params["target_column"] and "defaultValue" not in params["target_column"]


def test_a_required_option_of_a_step_is_required_only_where_the_step_runs(tmp_path):
    with_causal = _parameters(pipeline("data_analysis_causal"), tmp_path)
    assert "defaultValue" not in with_causal["causal_treatment_features"]
    assert not with_causal["causal_treatment_features"].get("isOptional")
    assert with_causal["causal_treatment_features"]["description"].startswith("Features whose effect")
    # A variant built in code: its steps' parameters alone.
    built = build_audit_pipeline(["explainer"], name="explain-only")
    params = _parameters(built, tmp_path)
    assert {n for n in params if n.startswith("explainer_")} and not {
        n for n in params if n.startswith(("causal_", "error_analysis_", "counterfactual_", "scorecard", "publish_"))
    }


def test_notify_is_an_optional_step_with_its_own_parameters(tmp_path):
    built = build_audit_pipeline(
        ["error_analysis"], name="with-notify", with_scorecard=True, with_publish=True, with_notify=True
    )
    compiler.Compiler().compile(built, str(tmp_path / "p.yaml"))
    spec, platform = yaml.safe_load_all((tmp_path / "p.yaml").read_text())
    params = spec["root"]["inputDefinitions"]["parameters"]
    notify_params = {n for n in params if n.startswith("notify_")}
    assert {"notify_on", "notify_format", "notify_retries", "notify_fail_on_error"} <= notify_params
    assert "notify_webhook_env" not in notify_params  # the URL's variable is the pipeline's, from a secret
    assert all(params[n]["description"] for n in notify_params)
    task = spec["root"]["dag"]["tasks"]["notify"]
    artifacts = task["inputs"]["artifacts"]
    assert artifacts["scorecard"]["taskOutputArtifact"]["producerTask"] == "scorecard"
    assert artifacts["baseline"]["taskOutputArtifact"]["producerTask"] == "find-baseline"
    assert task["inputs"]["parameters"]["on"]["componentInputParameter"] == "notify_on"
    assert task["cachingOptions"] == {}  # not cached: posted once per run
    secrets = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-notify"]["secretAsEnv"]
    assert [(s["secretName"], s["keyToEnv"][0]["envVar"], s.get("optional")) for s in secrets] == [
        ("rai-audit-webhook", "RAI_AUDIT_WEBHOOK_URL", True)
    ]
    # Not in the checked-in variants, which do not notify.
    assert not {n for n in _parameters(pipeline("audit"), tmp_path) if n.startswith("notify_")}
    with pytest.raises(ValueError, match="with_notify"):
        build_audit_pipeline(["error_analysis"], with_notify=True)
