"""Every step's options agree in every target: the options class, the KFP component, the
compiled pipeline YAML, the Argo template and the step's command line (issue: one
definition per parameter). Each target is read as it is written (the checked-in YAML, the
component object, the real parser), so a default or an allowed value edited in one place
alone fails here."""

from __future__ import annotations

import functools
import importlib
import subprocess
import sys

import pytest
import yaml

from rai_audit import kfp_components
from rai_audit.specs import OPTIONS, OptionSpec, step_options
from rai_audit.steps._cli import _PARSERS
from support import REPO

# Values for the options every target requires, so the class can be built.
REQUIRED = {"target_column": "y", "task_type": "regression", "treatment_features": ["age"]}
PIPELINE_FILES = sorted((REPO / "pipelines").glob("*_pipeline.yaml"))
ARGO_TEMPLATE = REPO / "pipelines" / "argo" / "workflow-template.yaml"
CASES = [(step, o) for step in OPTIONS for o in step_options(step)]
IDS = [f"{step}.{o.name}" for step, o in CASES]


def _class_default(step: str, o: OptionSpec):
    given = {o2.name: REQUIRED[o2.name] for o2 in step_options(step) if o2.required}
    return getattr(OPTIONS[step](**given), o.name)


@functools.cache
def _parser(step: str):
    return importlib.import_module(f"rai_audit.steps.{step}")._parser()


def _cli_action(step: str, o: OptionSpec):
    [action] = [a for a in _parser(step)._actions if a.dest == o.name]
    return action


@functools.cache
def _argo_parameters() -> dict[str, dict]:
    template = yaml.safe_load(ARGO_TEMPLATE.read_text())
    return {p["name"]: p for p in template["spec"]["arguments"]["parameters"]}


@functools.cache
def _compiled(path) -> dict:
    return next(yaml.safe_load_all(path.read_text()))  # the pipeline, then its Kubernetes config


KFP_TYPES = {
    bool: "BOOLEAN",
    int: "NUMBER_INTEGER",
    float: "NUMBER_DOUBLE",
    str: "STRING",
    list: "LIST",
    dict: "STRUCT",
}


def _yaml_default(o: OptionSpec, parameter: dict):
    """A compiled parameter's default as the component receives it (YAML writes 3 as 3.0)."""
    assert parameter["parameterType"] == KFP_TYPES[o.parameter_type], (o.name, parameter)
    value = parameter["defaultValue"]
    return int(value) if parameter["parameterType"] == "NUMBER_INTEGER" else value


def _compiled_components(step: str):
    """(file, the step's component's parameters) in each compiled pipeline that has the step."""
    for path in PIPELINE_FILES:
        component = _compiled(path)["components"].get(f"comp-{step.replace('_', '-')}")
        if component is not None:
            yield path, component["inputDefinitions"]["parameters"]


@pytest.mark.parametrize(("step", "o"), CASES, ids=IDS)
def test_every_target_has_the_same_default(step, o):
    if o.required:
        pytest.skip("required: no default anywhere")
    expected = _class_default(step, o)
    found = {}
    if "kfp" in o.targets:
        component = getattr(kfp_components, step)
        found["KFP component"] = o.from_parameter(component.component_spec.inputs[o.name].default)
        for path, params in _compiled_components(step):
            found[f"{path.name} component"] = o.from_parameter(_yaml_default(o, params[o.name]))
    if "pipeline" in o.targets:
        for path in PIPELINE_FILES:
            if f"comp-{step.replace('_', '-')}" not in _compiled(path)["components"]:
                continue  # a variant takes the parameters of the steps it runs only
            root = _compiled(path)["root"]["inputDefinitions"]["parameters"]
            found[f"{path.name} parameter {o.parameter_name()}"] = o.from_parameter(
                _yaml_default(o, root[o.parameter_name()])
            )
    if "argo" in o.targets:
        text = _argo_parameters()[o.parameter_name()]["value"]
        found["Argo template"] = o.from_parameter(_PARSERS[o.parameter_type](text))
    if "cli" in o.targets:
        found["command line"] = o.from_parameter(_cli_action(step, o).default)
    assert found, "an option no target takes"
    differ = {where: value for where, value in found.items() if value != expected or type(value) is not type(expected)}
    assert not differ, f"{step}.{o.name}: the options class says {expected!r}; these differ: {differ}"


@pytest.mark.parametrize(("step", "o"), [c for c in CASES if c[1].choices], ids=lambda v: getattr(v, "name", v))
def test_every_target_allows_the_same_values(step, o):
    given = {o2.name: REQUIRED[o2.name] for o2 in step_options(step) if o2.required and o2.name != o.name}
    for choice in o.choices:
        assert getattr(OPTIONS[step](**given, **{o.name: choice}), o.name) == choice
    with pytest.raises(ValueError, match=f"`{o.name}` must be one of"):
        OPTIONS[step](**given, **{o.name: "not-a-choice"})
    assert tuple(_cli_action(step, o).choices) == o.choices
    assert tuple(_argo_parameters()[o.parameter_name()]["enum"]) == o.choices
    # KFP parameters have no enum: the component's description names them.
    for path, params in _compiled_components(step):
        assert all(choice in params[o.name]["description"] for choice in o.choices), path.name


def test_switches_are_true_or_false_everywhere():
    switches = [(step, o) for step, o in CASES if o.parameter_type is bool]
    assert {f"{s}.{o.name}" for s, o in switches} >= {"constructor.allow_pickle", "scorecard.fail_on_missed_target"}
    params = _argo_parameters()
    for step, o in switches:
        assert params[o.parameter_name()]["enum"] == ["true", "false"]
        assert _cli_action(step, o).const is True  # the bare flag still switches it on
        assert _PARSERS[bool]("false") is False and _PARSERS[bool]("true") is True


def test_every_option_the_steps_cli_takes_is_a_parameter_of_each_target():
    """No option is missing from a target it should be in: the CLI, KFP and Argo take the
    same options (but the shard, which the pipeline sets, and the constructor's cohort
    file, an Argo input artifact)."""
    argo = _argo_parameters()
    for step in OPTIONS:
        component = getattr(kfp_components, step).component_spec.inputs
        cli = {a.dest for a in _parser(step)._actions}
        for o in step_options(step):
            assert (o.name in component) == ("kfp" in o.targets), (step, o.name)
            assert (o.name in cli) == ("cli" in o.targets or o.name == "cohorts"), (step, o.name)
            assert (o.parameter_name() in argo) == ("argo" in o.targets), (step, o.name)


def test_a_config_value_reaches_the_step_as_given():
    """The config reader's form (to_parameter), then the component's (from_parameter), give
    back the option's value: not-given values, labels as text, JSON text, one cost for all."""
    cases = {
        ("constructor", "categorical_features"): [None, [], ["sex"]],
        ("constructor", "positive_label"): [None, ">50K"],
        ("causal", "heterogeneity_features"): [None, [], ["age"]],
        ("causal", "treatment_cost"): [0.0, [1.5]],
        ("causal", "categories"): ["auto", {"sex": ["Male", "Female"]}],
        ("counterfactual", "desired_class"): ["opposite", "1"],
    }
    specs = {(step, o.name): o for step, o in CASES}
    for key, values in cases.items():
        o = specs[key]
        for value in values:
            expected = value if value != [] or key[1] != "categorical_features" else None
            assert o.from_parameter(o.to_parameter(value)) == expected, (key, value)
    assert specs[("causal", "treatment_cost")].to_parameter(2.0) == [2.0]


def test_generated_components_and_tables_are_current():
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "generate-from-specs.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_argo_and_the_config_reader_need_no_kubeflow():
    """`import rai_audit.argo` (and writing the Argo YAML, and the config reader) with kfp
    unimportable, as on a machine without it."""
    code = (
        "import sys\n"
        "class NoKfp:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'kfp' or name.startswith('kfp.'):\n"
        "            raise ImportError(f'kfp is not installed here ({name})')\n"
        "sys.meta_path.insert(0, NoKfp())\n"
        "import rai_audit.argo, rai_audit.config, rai_audit.specs\n"
        "texts = rai_audit.argo.argo_yaml()\n"
        "assert 'WorkflowTemplate' in texts['workflow-template.yaml']\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'kfp']\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
