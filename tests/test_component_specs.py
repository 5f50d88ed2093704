"""The component specs under components/<name>/: current, one per component, and usable by a
pipeline author who has kfp but not rai-audit (a fresh process where it cannot be imported)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kfp
import yaml

from rai_audit import __version__, images, kfp_components
from support import REPO

SCRIPT = REPO / "scripts" / "compile-components.py"
COMPONENTS = REPO / "components"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAI_AUDIT_IMAGE_")}


def _compile(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=_clean_env(), timeout=300
    )


def _spec_folders(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.glob("*/component.yaml"))


def test_component_specs_are_up_to_date(tmp_path):
    done = _compile("--output", str(tmp_path))
    assert done.returncode == 0, done.stderr
    fresh = {p.name for p in _spec_folders(tmp_path)}
    checked_in = {p.name for p in _spec_folders(COMPONENTS)}
    assert fresh == checked_in, "components/ differs from the components: run `make compile` and commit it"
    for name in sorted(fresh):
        for file in ("component.yaml", "README.md"):
            assert (tmp_path / name / file).read_text() == (COMPONENTS / name / file).read_text(), (
                f"components/{name}/{file} is stale: run `make compile` and commit it"
            )
    # The script's own check agrees (it is what `make compile` users run in CI).
    assert _compile("--check").returncode == 0


def test_every_component_of_the_module_has_a_spec():
    defined = {
        value.python_func.__name__
        for value in vars(kfp_components).values()
        if isinstance(value, kfp.dsl.base_component.BaseComponent)
    }
    listed = {c.python_func.__name__ for c in kfp_components.with_images().values()}
    assert defined == listed, f"kfp_components defines components missing from COMPONENT_STEPS: {defined - listed}"
    assert {p.name for p in _spec_folders(COMPONENTS)} == listed
    for name in listed:
        readme = (COMPONENTS / name / "README.md").read_text()
        assert "## Parameters" in readme and f"components/{name}/component.yaml" in readme


def test_specs_name_the_default_images():
    # What with_images gives with the registry and tag unset in the environment.
    chosen = kfp_components.with_images(images.DEFAULT_REGISTRY, __version__)
    for component in chosen.values():
        name, image = component.python_func.__name__, component.component_spec.implementation.container.image
        spec = yaml.safe_load((COMPONENTS / name / "component.yaml").read_text())
        (executor,) = spec["deploymentSpec"]["executors"].values()
        assert executor["container"]["image"] == image
        assert image.startswith(f"{images.DEFAULT_REGISTRY}/") and __version__ in image


def test_another_registry_and_tag_go_to_their_own_folder(tmp_path):
    done = _compile("--registry", "registry.example.com/ml", "--tag", "9.9.9", "--output", str(tmp_path))
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load((tmp_path / "scorecard" / "component.yaml").read_text())
    (executor,) = spec["deploymentSpec"]["executors"].values()
    assert executor["container"]["image"] == "registry.example.com/ml/scorecard:9.9.9"
    assert "registry.example.com/ml/explainer:9.9.9" in (tmp_path / "merge_explanations" / "README.md").read_text()
    # The checked-in specs keep the default images.
    refused = _compile("--registry", "registry.example.com/ml")
    assert refused.returncode != 0 and "--output" in refused.stderr


# Run with `python -I -S`: no site-packages, so no editable rai_audit (.pth); only kfp's
# site-packages folder is added. The pipeline is composed from the YAMLs alone.
FRESH_PROCESS = r'''
import importlib.util
import sys
from pathlib import Path

components_dir, output, site_packages = sys.argv[1:4]
sys.path.append(site_packages)
assert importlib.util.find_spec("rai_audit") is None, "rai_audit is importable"

import yaml
from kfp import compiler, components, dsl

c = {
    p.parent.name: components.load_component_from_file(str(p))
    for p in sorted(Path(components_dir).glob("*/component.yaml"))
}
print("loaded", *sorted(c))

UI_KINDS = ("system.Metrics", "system.HTML", "system.Markdown", "system.ClassificationMetrics")


def main_output(task):
    """The task's one artifact output that is not a view for the Kubeflow UI."""
    (name,) = [
        n for n, o in task.component_spec.outputs.items()
        if "@" in o.type and not o.type.startswith(UI_KINDS)
    ]
    return task.outputs[name]


def passed_output(task):
    names = [n for n, o in task.component_spec.outputs.items() if o.type == "Boolean"]
    return task.outputs["passed" if "passed" in names else names[0]]


@dsl.pipeline(name="audit-from-component-yamls")
def audit(
    model_uri: str,
    train_data_uri: str,
    test_data_uri: str,
    target_column: str,
    task_type: str,
    treatment_features: list,
    scorecard_config: dict,
    model_name: str = "model",
):
    model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model, reimport=False)
    train = dsl.importer(artifact_uri=train_data_uri, artifact_class=dsl.Dataset, reimport=False)
    test = dsl.importer(artifact_uri=test_data_uri, artifact_class=dsl.Dataset, reimport=False)
    fingerprint = c["fingerprint_inputs"](model=model.output, train_data=train.output, test_data=test.output)
    built = c["constructor"](
        model=model.output,
        train_data=train.output,
        test_data=test.output,
        target_column=target_column,
        task_type=task_type,
        input_fingerprint=fingerprint.output,
    )
    insights = main_output(built)
    errors = c["error_analysis"](constructor=insights, max_depth=4)
    with dsl.ParallelFor(items=[0, 1]) as shard:
        part = c["explainer"](constructor=insights, shard_index=shard, shard_count=2)
    explained = c["merge_explanations"](constructor=insights, shards=dsl.Collected(main_output(part)))
    counterfactuals = c["counterfactual"](constructor=insights, total_CFs=5)
    effects = c["causal"](constructor=insights, treatment_features=treatment_features)
    gathered = c["gather"](
        constructor=insights,
        insight_1=main_output(errors),
        insight_2=main_output(explained),
        insight_3=main_output(counterfactuals),
        insight_4=main_output(effects),
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    )
    baseline = c["find_baseline"](model_name=model_name)
    card = c["scorecard"](
        dashboard=gathered.outputs["dashboard"], config=scorecard_config, baseline=main_output(baseline)
    )
    c["publish"](
        dashboard=gathered.outputs["dashboard"],
        scorecard=card.outputs["scorecard"],
        model_name=model_name,
        model_version="1",
    )
    # A verdict changed against the baseline posts to the webhook (URL from the environment).
    c["notify"](scorecard=card.outputs["scorecard"], baseline=main_output(baseline), format="teams")
    with dsl.If(passed_output(card) == True, name="scorecard-passed"):  # noqa: E712
        c["register_model"](model=model.output, scorecard=card.outputs["scorecard"])


compiler.Compiler().compile(audit, output)
assert not [m for m in sys.modules if m.split(".")[0] == "rai_audit"]
print("compiled", output)
'''


def test_components_load_and_compose_without_rai_audit(tmp_path):
    site_packages = str(Path(kfp.__file__).resolve().parents[1])
    output = tmp_path / "audit_from_yamls.yaml"
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", FRESH_PROCESS, str(COMPONENTS), str(output), site_packages],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_clean_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.splitlines()[0].split()[1:]
    assert loaded == sorted(p.name for p in _spec_folders(COMPONENTS))

    spec, *_ = yaml.safe_load_all(output.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert {"fingerprint-inputs", "constructor", "error-analysis", "gather", "scorecard", "publish", "notify"} <= set(
        tasks
    )
    # register_model sits in the condition on the scorecard's verdict.
    (condition,) = [t for n, t in tasks.items() if n.startswith("condition")]
    assert "scorecard" in condition["triggerPolicy"]["condition"]
    branch = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert list(branch) == ["register-model"]
    # The tasks run the images the YAMLs name.
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e}
    named = set()
    for folder in _spec_folders(COMPONENTS):
        (executor,) = yaml.safe_load((folder / "component.yaml").read_text())["deploymentSpec"]["executors"].values()
        named.add(executor["container"]["image"])
    assert images <= named and len(images) >= 7
