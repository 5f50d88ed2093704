"""Typed artifacts: a miswired pipeline is refused when it is compiled, from the Python
components and from the component YAMLs alike; the right wiring compiles."""

# No `from __future__ import annotations`: KFP reads the pipelines' annotations.
import pytest
import yaml
from kfp import compiler, components, dsl
from kfp.dsl.types.type_utils import InconsistentTypeException

from rai_audit import kfp_components as kc
from rai_audit.kfp_types import ARTIFACT_TYPES
from support import REPO


def _compile(pipeline_func, tmp_path):
    compiler.Compiler().compile(pipeline_func, str(tmp_path / "p.yaml"))
    return yaml.safe_load((tmp_path / "p.yaml").read_text())


def _yaml_component(name):
    return components.load_component_from_file(str(REPO / "components" / name / "component.yaml"))


@pytest.mark.parametrize("source", ["python", "yaml"])
def test_a_dataset_into_an_insight_input_is_refused(source):
    error_analysis = kc.error_analysis if source == "python" else _yaml_component("error_analysis")
    with pytest.raises(InconsistentTypeException, match="system.Dataset.*system.RaiAuditInsights"):

        @dsl.pipeline(name="miswired")
        def miswired(data_uri: str):
            data = dsl.importer(artifact_uri=data_uri, artifact_class=dsl.Dataset)
            error_analysis(constructor=data.output)


@pytest.mark.parametrize("source", ["python", "yaml"])
def test_the_constructors_insights_into_an_analysis_slot_are_refused(source):
    c = (
        {n: getattr(kc, n) for n in ("constructor", "gather", "scorecard")}
        if source == "python"
        else {n: _yaml_component(n) for n in ("constructor", "gather", "scorecard")}
    )

    def built(model, train, test):
        return c["constructor"](
            model=model.output,
            train_data=train.output,
            test_data=test.output,
            target_column="y",
            task_type="regression",
        )

    with pytest.raises(InconsistentTypeException, match="RaiAuditInsights.*RaiAuditAnalysis"):

        @dsl.pipeline(name="miswired-gather")
        def miswired(uri: str):
            model = dsl.importer(artifact_uri=uri, artifact_class=dsl.Model)
            data = dsl.importer(artifact_uri=uri, artifact_class=dsl.Dataset)
            insights = built(model, data, data).outputs["insights"]
            c["gather"](constructor=insights, insight_1=insights)

    with pytest.raises(InconsistentTypeException, match="RaiAuditInsights.*RaiAuditDashboard"):

        @dsl.pipeline(name="miswired-scorecard")
        def miswired_card(uri: str):
            model = dsl.importer(artifact_uri=uri, artifact_class=dsl.Model)
            data = dsl.importer(artifact_uri=uri, artifact_class=dsl.Dataset)
            c["scorecard"](dashboard=built(model, data, data).outputs["insights"], config={})


def test_the_right_wiring_compiles_with_the_types_in_the_spec(tmp_path):
    @dsl.pipeline(name="wired")
    def wired(uri: str):
        model = dsl.importer(artifact_uri=uri, artifact_class=dsl.Model)
        data = dsl.importer(artifact_uri=uri, artifact_class=dsl.Dataset)
        built = kc.constructor(
            model=model.output, train_data=data.output, test_data=data.output, target_column="y", task_type="regression"
        )
        errors = kc.error_analysis(constructor=built.outputs["insights"])
        gathered = kc.gather(constructor=built.outputs["insights"], insight_1=errors.outputs["error_analysis"])
        card = kc.scorecard(dashboard=gathered.outputs["dashboard"], config={})
        kc.register_model(model=model.output, scorecard=card.outputs["scorecard"])
        # A plain Artifact (an importer's default) is KFP's "any type": an earlier scorecard by URI.
        earlier = dsl.importer(artifact_uri=uri, artifact_class=dsl.Artifact)
        kc.notify(scorecard=card.outputs["scorecard"], baseline=earlier.output)

    spec = _compile(wired, tmp_path)
    titles = {
        (component, name): definition["artifactType"]["schemaTitle"]
        for component, body in spec["components"].items()
        for side in ("inputDefinitions", "outputDefinitions")
        for name, definition in body.get(side, {}).get("artifacts", {}).items()
    }
    assert titles[("comp-constructor", "insights")] == "system.RaiAuditInsights"
    assert titles[("comp-error-analysis", "constructor")] == "system.RaiAuditInsights"
    assert titles[("comp-error-analysis", "error_analysis")] == "system.RaiAuditAnalysis"
    assert titles[("comp-gather", "insight_1")] == "system.RaiAuditAnalysis"
    assert titles[("comp-gather", "dashboard")] == "system.RaiAuditDashboard"
    assert titles[("comp-scorecard", "scorecard")] == "system.RaiAuditScorecard"
    assert titles[("comp-scorecard", "verdict")] == "system.RaiAuditVerdict"
    assert titles[("comp-register-model", "scorecard")] == "system.RaiAuditScorecard"
    # The component's command imports the types (inside its image, where rai_audit is).
    command = spec["deploymentSpec"]["executors"]["exec-gather"]["container"]["command"][-1]
    assert "from rai_audit.kfp_types import Dashboard" in command


def test_every_type_is_distinct_and_loadable_without_the_package():
    titles = [t.schema_title for t in ARTIFACT_TYPES]
    assert len(set(titles)) == len(titles)
    assert all(t.startswith("system.RaiAudit") for t in titles)  # KFP's SDK allows system./google. only
    # The YAML holds the title as text: a component loads with kfp's classes alone.
    card = _yaml_component("scorecard")
    assert card.component_spec.outputs["verdict"].type == "system.RaiAuditVerdict@0.0.1"
