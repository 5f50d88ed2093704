"""The audit as plain Argo Workflows, for clusters without Kubeflow: a WorkflowTemplate and
a CronWorkflow that runs it on a schedule, built with hera (Argo's own models).

The WorkflowTemplate is one DAG: ``constructor`` -> the chosen analysis steps (each reads
the constructor's artifact) -> ``gather`` (the constructor and every insight) ->
``scorecard`` (gather's bundle and a scorecard config). Each task is a container running
its step's own image (``rai_audit.images.step_image``) and the step's command line,
``rai-audit <step> --flag value ...``; there is no Python in the YAML and no sharding.

Artifacts live in one S3 bucket, given explicitly on every artifact (endpoint, bucket,
key, and the Kubernetes secret holding the credentials), so the YAML needs no artifact
repository ConfigMap and holds no credential:
- inputs are read at the keys given as workflow parameters (``model_key``, ...);
- each task's output folder is written to ``<prefix>/{{workflow.name}}/<task>/<output>``
  and the next task reads it from that same key;
- nothing is archived (``archive: none``): a folder is stored file by file under its key
  prefix, so the bundle in the bucket is the bundle on disk, ready to open or fetch, and
  an input key may be a file or such a folder (a key prefix).

``argo_yaml(...)`` returns both documents as YAML, ``write_argo(folder, ...)`` writes
them, and ``validate_argo(text)`` checks a document strictly against Argo's models
(hera's models ignore unknown fields; here a misspelt field is an error).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from rai_audit import __version__
from rai_audit.images import step_image, task_image
from rai_audit.specs import ANALYSIS_STEPS, DEFAULT_WEBHOOK_ENV, step_options


def _import_hera_leaving_pyyaml_alone() -> None:
    """Import hera without its side effect on PyYAML.

    On import hera registers a str representer on PyYAML's Dumper and SafeRepresenter, so
    every later YAML dump in the process writes multi-line strings differently: the KFP
    compiler's output changed with it. Our own dumps choose that style themselves (_Dumper).
    """
    from yaml import representer

    classes = (yaml.Dumper, yaml.SafeDumper, representer.SafeRepresenter, representer.Representer)
    saved = {
        cls: dict(cls.__dict__["yaml_representers"]) if "yaml_representers" in cls.__dict__ else None for cls in classes
    }
    import hera.workflows  # noqa: F401

    for cls, representers in saved.items():
        if representers is not None:
            cls.yaml_representers = representers
        elif "yaml_representers" in cls.__dict__:
            delattr(cls, "yaml_representers")


_import_hera_leaving_pyyaml_alone()


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as | blocks, as Argo's own manifests write them; y/n quoted, as
    YAML 1.1 readers (kubectl, Argo) take them for booleans."""


def _represent_str(dumper: yaml.SafeDumper, data: str):
    style = "|" if "\n" in data else "'" if data in ("y", "Y", "n", "N") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)
API_VERSION = "argoproj.io/v1alpha1"
WORKFLOW_TEMPLATE_FILE, CRON_WORKFLOW_FILE = "workflow-template.yaml", "cron-workflow.yaml"
# Container paths: inputs are downloaded under IN; outputs are written under OUT, an
# emptyDir, because the images run as a non-root user who cannot create folders in /.
IN, OUT = "/rai/in", "/rai/out"
OUT_VOLUME = "outputs"


@dataclass(frozen=True)
class Param:
    """A workflow parameter: ``default`` None means it must be given at submission."""

    name: str
    default: str | None
    description: str
    enum: tuple[str, ...] | None = None


def _p(name: str, default: str | None, description: str, enum: Sequence[str] | None = None) -> Param:
    return Param(name, default, description, tuple(enum) if enum else None)


# The S3 keys of the audit's inputs (in `bucket`). Cohorts and the scorecard config are
# required files, so every run states them: `{"cohorts": []}` is a valid cohort file.
INPUT_KEYS = {
    "model": _p(
        "model_key",
        None,
        "S3 key of the model file (joblib/pickle), or of a folder (key prefix) "
        "holding exactly one model file (.joblib, .pkl, .skops)",
    ),
    "train": _p(
        "train_data_key",
        None,
        "S3 key of the train data (Parquet), or of a folder holding exactly one .parquet or .csv file",
    ),
    "test": _p(
        "test_data_key",
        None,
        "S3 key of the test data (Parquet), or of a folder holding exactly one .parquet or .csv file",
    ),
    "cohorts": _p("cohorts_key", None, 'S3 key of the cohort file (JSON; {"cohorts": []} for none)'),
    "scorecard_config": _p("scorecard_config_key", None, "S3 key of the scorecard config (YAML or JSON)"),
}


def _step_flags(step: str) -> list[tuple[str, Param]]:
    """A step's flags and the workflow parameter each reads, from its spec: the parameter
    holds the text the step's command line takes (JSON for lists and mappings)."""
    return [
        (
            o.flag,
            _p(
                o.parameter_name(),
                None if o.required else o.as_text(o.parameter_default),
                o.help,
                ("true", "false") if o.parameter_type is bool else o.choices,
            ),
        )
        for o in step_options(step, "argo")
    ]


STEP_OPTIONS: dict[str, list[tuple[str, Param]]] = {
    step: _step_flags(step) for step in ("constructor", *ANALYSIS_STEPS, "gather", "scorecard")
}

# The notify exit handler's flags and parameters (``notify_<option>``): all of the step's
# options but the webhook's variable, which is the one the Kubernetes secret sets.
NOTIFY_FLAGS: list[tuple[str, Param]] = [
    (
        o.flag,
        _p(
            o.parameter_name(),
            o.as_text(o.parameter_default),
            o.help,
            ("true", "false") if o.parameter_type is bool else o.choices,
        ),
    )
    for o in step_options("notify", "cli")
    if o.name != "webhook_env"
]
# The Kubernetes secret (key url) the exit handler takes the webhook URL from; optional.
WEBHOOK_SECRET = "rai-audit-webhook"

# What each step writes (the KFP components' output names), and its input file paths.
OUTPUTS = {
    "constructor": "insights",
    "error_analysis": "error_analysis",
    "explainer": "explanation",
    "counterfactual": "counterfactuals",
    "causal": "causal",
    "gather": "dashboard",
    "scorecard": "scorecard",
}
INPUT_PATHS = {
    "model": f"{IN}/model",
    "train": f"{IN}/train",
    "test": f"{IN}/test",
    "cohorts": f"{IN}/cohorts.json",
    "scorecard_config": f"{IN}/scorecard-config.yaml",
}


_INPUT_PARAMETER = re.compile(r"\{\{inputs\.parameters\.(\w+)\}\}")


def _input(name: str) -> str:
    return f"{{{{inputs.parameters.{name}}}}}"


def task_name(step: str) -> str:
    return step.replace("_", "-")  # Argo's task and template names take no underscores


def output_key(step: str, prefix: str) -> str:
    """Where ``step``'s output folder is stored (a key prefix, one object per file)."""
    return f"{prefix}/{{{{workflow.name}}}}/{task_name(step)}/{OUTPUTS[step]}"


def _check_steps(steps: Sequence[str]) -> tuple[str, ...]:
    if isinstance(steps, str):
        raise ValueError(f"`steps` must be a list of step names, got the string {steps!r}")
    unknown = sorted(set(steps) - set(ANALYSIS_STEPS))
    if unknown:
        raise ValueError(f"`steps` must be among {list(ANALYSIS_STEPS)}, got {unknown}")
    return tuple(s for s in ANALYSIS_STEPS if s in steps)  # one task each, in a fixed order


def workflow_parameters(steps: Sequence[str] = ANALYSIS_STEPS) -> list[Param]:
    """The WorkflowTemplate's parameters: input keys, then each included step's options."""
    params = {p.name: p for p in INPUT_KEYS.values()}
    for step in ("constructor", *_check_steps(steps), "gather", "scorecard"):
        params.update({p.name: p for _, p in STEP_OPTIONS[step]})
    return list(params.values())


def _parameter(param: Param):
    from hera.workflows import Parameter

    # No value at all for a required one (hera would write None as "null").
    optional = {"value": param.default} if param.default is not None else {}
    return Parameter(
        name=param.name, description=param.description, enum=list(param.enum) if param.enum else None, **optional
    )


def _s3_location(endpoint: str) -> tuple[str, bool]:
    """Argo wants ``host:port`` and ``insecure`` (plain http) apart."""
    url = urlparse(endpoint)
    if url.scheme not in ("http", "https") or not url.netloc or url.path.strip("/"):
        raise ValueError(f"`endpoint` must be http(s)://host[:port], got {endpoint!r}")
    return url.netloc, url.scheme == "http"


def build_argo(
    steps: Sequence[str] = ANALYSIS_STEPS,
    *,
    name: str = "rai-audit",
    registry: str | None = None,
    tag: str | None = None,
    schedule: str = "0 3 * * *",
    timezone: str = "UTC",
    bucket: str = "rai-audit",
    s3_secret: str = "rai-audit-s3",
    endpoint: str = "http://minio.argo.svc.cluster.local:9000",
    region: str | None = None,
    prefix: str = "runs",
    fail_on_missed_target: bool = False,
    arguments: Mapping[str, Any] | None = None,
    notify: bool = False,
    model_image: str | None = None,
):
    """The audit's WorkflowTemplate and the CronWorkflow that runs it on ``schedule``.

    ``steps``: the analysis steps to include (a subset of ``ANALYSIS_STEPS``).
    ``registry``/``tag``: the step images, ``<registry>/<step>:<tag>``; ``model_image``: the
    image of the steps that call the model, if the step images lack its library.
    ``bucket``, ``endpoint`` (http(s)://host[:port]; http means no TLS), ``region``: the
    S3 store of every artifact; ``s3_secret``: the Kubernetes secret with its credentials
    under the keys ``access_key`` and ``secret_key`` (the secret the KFP publish step reads).
    ``prefix``: outputs go under ``<prefix>/<workflow name>/<task>/<output>``.
    ``fail_on_missed_target``: the default of the ``scorecard_fail_on_missed_target``
    parameter (a missed scorecard target fails the run). ``arguments``: parameter values the CronWorkflow
    passes on every run (strings as they are, anything else as JSON); the rest can be
    given with ``argo cron create -p`` / ``--parameter-file``.
    ``notify``: an exit handler runs the notify step when the run ends, on the scorecard it
    wrote (``notify_*`` parameters; ``on`` is ``every_failure`` by default here, as the
    template keeps no baseline), the webhook URL from the ``rai-audit-webhook`` Kubernetes
    secret (key ``url``; without it nothing is posted).
    Returns hera ``(WorkflowTemplate, CronWorkflow)``.
    """
    from hera.workflows import (
        DAG,
        Container,
        CronWorkflow,
        NoneArchiveStrategy,
        Parameter,
        S3Artifact,
        WorkflowTemplate,
    )
    from hera.workflows import models as m

    steps = _check_steps(steps)
    host, insecure = _s3_location(endpoint)
    # A missed target fails the run when asked for here; a run may say otherwise.
    params = [
        dataclasses.replace(p, default="true" if fail_on_missed_target else "false")
        if p.name == "scorecard_fail_on_missed_target"
        else p
        for p in workflow_parameters(steps)
    ]
    if notify:
        # No baseline here: a change cannot be told, so every failing audit is posted.
        params += [
            dataclasses.replace(p, default="every_failure") if p.name == "notify_on" else p for _, p in NOTIFY_FLAGS
        ]
    known = {p.name for p in params}
    unknown = sorted(set(arguments or {}) - known)
    if unknown:
        raise ValueError(f"`arguments` names unknown parameters {unknown}; known are {sorted(known)}")
    prefix = prefix.strip("/")
    if not prefix:
        raise ValueError("`prefix` must not be empty")

    def s3(name: str, path: str, key: str) -> S3Artifact:
        # Credentials by reference only: the secret's name and keys, never a value.
        # `archive: none` both ways: outputs are stored file by file, and an input is never
        # unpacked because it looks like a tarball.
        return S3Artifact(
            name=name,
            path=path,
            key=key,
            bucket=bucket,
            endpoint=host,
            insecure=insecure,
            region=region,
            access_key_secret=m.SecretKeySelector(name=s3_secret, key="access_key"),
            secret_key_secret=m.SecretKeySelector(name=s3_secret, key="secret_key"),
            archive=NoneArchiveStrategy(),
        )

    def container(step: str, inputs: list[tuple[str, str, str]], args: list[str]) -> Container:
        """``step``'s template: ``inputs`` are (artifact name, container path, S3 key); its
        command line is ``args``, then the step's options, then its output folder."""
        args = [step, *args]
        for flag, p in STEP_OPTIONS[step]:
            args += [flag, _input(p.name)]
        out_path = f"{OUT}/{OUTPUTS[step]}"
        args += ["--output", out_path]
        # Its input parameters are exactly those its command line and keys use.
        used = dict.fromkeys(_INPUT_PARAMETER.findall(" ".join(args + [key for _, _, key in inputs])))
        return Container(
            name=task_name(step),
            image=task_image(step, registry=registry, tag=tag, model_image=model_image),
            command=["rai-audit"],
            args=args,
            inputs=[*(Parameter(name=n) for n in used), *(s3(n, path, key) for n, path, key in inputs)],
            outputs=[s3(OUTPUTS[step], out_path, output_key(step, prefix))],
            volume_mounts=[m.VolumeMount(name=OUT_VOLUME, mount_path=OUT)],
        )

    def user_input(what: str) -> tuple[str, str, str]:  # read at the key its parameter gives
        return what, INPUT_PATHS[what], _input(INPUT_KEYS[what].name)

    def run_output(step: str, name: str) -> tuple[str, str, str]:  # read where `step` wrote it
        return name, f"{IN}/{name}", output_key(step, prefix)

    def exit_handler() -> Container:
        """notify on the scorecard the run wrote (if it got that far): an exit handler takes
        no arguments, so it reads the workflow's parameters and the scorecard's key itself."""
        card = s3("scorecard", f"{IN}/scorecard", output_key("scorecard", prefix))
        card.optional = True  # a run that failed earlier has none; the step then says so and fails
        out_path = f"{OUT}/notification"
        args = ["notify", "--scorecard", f"{IN}/scorecard", "--output", out_path]
        for flag, p in NOTIFY_FLAGS:
            args += [flag, f"{{{{workflow.parameters.{p.name}}}}}"]
        webhook = m.SecretKeySelector(name=WEBHOOK_SECRET, key="url", optional=True)
        return Container(
            name="notify",
            image=step_image("scorecard", registry=registry, tag=tag),
            command=["rai-audit"],
            args=args,
            inputs=[card],
            outputs=[s3("notification", out_path, f"{prefix}/{{{{workflow.name}}}}/notify/notification")],
            env=[m.EnvVar(name=DEFAULT_WEBHOOK_ENV, value_from=m.EnvVarSource(secret_key_ref=webhook))],
            volume_mounts=[m.VolumeMount(name=OUT_VOLUME, mount_path=OUT)],
        )

    with WorkflowTemplate(
        name=name,
        entrypoint="audit",
        on_exit="notify" if notify else None,
        labels={"app.kubernetes.io/name": "rai-audit", "app.kubernetes.io/version": __version__},
        arguments=[_parameter(p) for p in params],
        volumes=[m.Volume(name=OUT_VOLUME, empty_dir=m.EmptyDirVolumeSource())],
    ) as template:
        model, train, test, cohorts = (user_input(w) for w in ("model", "train", "test", "cohorts"))
        templates = {
            "constructor": container(
                "constructor",
                [model, train, test, cohorts],
                ["--model", model[1], "--train", train[1], "--test", test[1], "--cohorts", cohorts[1]],
            )
        }
        constructor = run_output("constructor", "constructor")
        for step in steps:
            templates[step] = container(step, [constructor], ["--constructor", constructor[1]])
        insights = [run_output(s, OUTPUTS[s]) for s in steps]
        templates["gather"] = container(
            "gather",
            [constructor, *insights],
            ["--constructor", constructor[1], *(a for _, path, _ in insights for a in ("--insight", path))],
        )
        dashboard, config = run_output("gather", "dashboard"), user_input("scorecard_config")
        templates["scorecard"] = container(
            "scorecard", [dashboard, config], ["--dashboard", dashboard[1], "--config", config[1]]
        )

        with DAG(name="audit"):
            # Every task takes its template's parameters from the workflow's, by name.
            tasks = {
                step: tmpl(
                    name=task_name(step),
                    arguments={
                        p.name: f"{{{{workflow.parameters.{p.name}}}}}" for p in tmpl.inputs if isinstance(p, Parameter)
                    },
                )
                for step, tmpl in templates.items()
            }
            analyses = [tasks[s] for s in steps]
            if analyses:
                tasks["constructor"] >> analyses >> tasks["gather"]
            else:
                tasks["constructor"] >> tasks["gather"]
            tasks["gather"] >> tasks["scorecard"]
        if notify:
            exit_handler()

    cron = CronWorkflow(
        name=name,
        schedules=[schedule],
        timezone=timezone,
        labels={"app.kubernetes.io/name": "rai-audit", "app.kubernetes.io/version": __version__},
        concurrency_policy="Forbid",  # a run still going when the next is due: skip the next
        starting_deadline_seconds=0,  # runs missed while the controller was down are not caught up
        successful_jobs_history_limit=3,
        failed_jobs_history_limit=3,
        workflow_template_ref=m.WorkflowTemplateRef(name=name),
        arguments=[
            Parameter(name=k, value=v if isinstance(v, str) else json.dumps(v)) for k, v in (arguments or {}).items()
        ]
        or None,
    )
    return template, cron


def _name_first(value: Any) -> Any:
    """The same data with identifying keys first (hera writes keys alphabetically)."""
    first = ("apiVersion", "kind", "metadata", "name")
    if isinstance(value, dict):
        keys = [k for k in first if k in value] + [k for k in value if k not in first]
        return {k: _name_first(value[k]) for k in keys}
    if isinstance(value, list):
        return [_name_first(v) for v in value]
    return value


def _yaml(document: dict, what: str) -> str:
    header = (
        f"# rai-audit {__version__}: {what}.\n"
        "# Written by `rai-audit compile --target argo` (rai_audit.argo); regenerate it rather than edit it.\n"
    )
    return header + yaml.dump(_name_first(document), Dumper=_Dumper, sort_keys=False, width=120)


def argo_yaml(steps: Sequence[str] = ANALYSIS_STEPS, **options: Any) -> dict[str, str]:
    """``{"workflow-template.yaml": ..., "cron-workflow.yaml": ...}``; options as ``build_argo``'s.

    Each document is checked with ``validate_argo`` before it is returned.
    """
    template, cron = build_argo(steps, **options)
    texts = {
        WORKFLOW_TEMPLATE_FILE: _yaml(template.to_dict(), "the audit as an Argo WorkflowTemplate"),
        CRON_WORKFLOW_FILE: _yaml(cron.to_dict(), "the audit's schedule (runs the WorkflowTemplate)"),
    }
    for text in texts.values():
        validate_argo(text)
    return texts


def write_argo(folder: str | Path, steps: Sequence[str] = ANALYSIS_STEPS, **options: Any) -> list[Path]:
    """Write ``workflow-template.yaml`` and ``cron-workflow.yaml`` into ``folder``; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in argo_yaml(steps, **options).items():
        (folder / file_name).write_text(text)
        written.append(folder / file_name)
    return written


# --- strict validation -------------------------------------------------------------------


def _fields(model: type) -> dict[str, Any]:
    """A model's fields by the name Argo's JSON uses (its alias)."""
    return {field.alias or name: field.annotation for name, field in model.model_fields.items()}


def _fits(annotation: Any, value: Any) -> bool:
    """Whether ``value`` has the shape (object, list, scalar) of ``annotation``."""
    from pydantic import BaseModel, RootModel

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(a, value) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, RootModel):
        return _fits(annotation.model_fields["root"].annotation, value)
    if isinstance(value, dict):
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        return origin is dict or is_model or annotation is Any
    if isinstance(value, list):
        return origin is list or annotation is Any
    return True


def _unknown_fields(annotation: Any, value: Any, path: str) -> list[tuple[str, list[str]]]:
    """Every key of ``value`` that ``annotation`` (an Argo model type) does not have, with
    the known names at that place; pydantic would silently drop them."""
    from pydantic import BaseModel, RootModel

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unknown_fields(typing.get_args(annotation)[0], value, path)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None) and _fits(a, value)]
        found = [_unknown_fields(a, value, path) for a in options]
        return min(found, key=len) if found else []  # the option the value fits best
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(annotation)
        return [f for i, v in enumerate(value) for f in _unknown_fields(item, v, f"{path}[{i}]")]
    if origin is dict and isinstance(value, dict):
        item = typing.get_args(annotation)[1]
        return [f for k, v in value.items() for f in _unknown_fields(item, v, f"{path}.{k}")]
    if isinstance(annotation, type) and issubclass(annotation, RootModel):
        return _unknown_fields(annotation.model_fields["root"].annotation, value, path)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, dict):
        fields, found = _fields(annotation), []
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key in fields:
                found += _unknown_fields(fields[key], item, where)
            else:
                found.append((where, list(fields)))
        return found
    return []


def _first_difference(given: Any, checked: Any, path: str) -> str | None:
    if isinstance(given, dict) and isinstance(checked, dict):
        for key in list(given) + [k for k in checked if k not in given]:
            where = f"{path}.{key}" if path else str(key)
            if key not in checked:
                return f"`{where}` ({given[key]!r} is dropped by Argo's model)"
            if key not in given:
                return f"`{where}` (added by Argo's model)"
            found = _first_difference(given[key], checked[key], where)
            if found:
                return found
        return None
    if isinstance(given, list) and isinstance(checked, list) and len(given) == len(checked):
        for i, (a, b) in enumerate(zip(given, checked)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    if type(given) is not type(checked) or given != checked:
        return f"`{path}` ({given!r} would be read as {checked!r})"
    return None


def _where(loc: Sequence[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def validate_argo(text: str) -> dict[str, Any]:
    """Check one WorkflowTemplate or CronWorkflow YAML document against Argo's models
    (hera.workflows.models), strictly; return the document. Raises ``ValueError``.

    Strict: an unknown (e.g. misspelt) field anywhere is an error naming it, and the
    document must read back unchanged from the models (no value coerced or dropped), so
    what Argo's Go types accept is what was written.
    """
    import pydantic
    from hera.workflows import models as m

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"not a YAML document: {err}") from err
    if not isinstance(document, dict):
        raise ValueError(f"expected one Argo object (a mapping), got {type(document).__name__}")
    kind = document.get("kind")
    models = {"WorkflowTemplate": m.WorkflowTemplate, "CronWorkflow": m.CronWorkflow}
    if not isinstance(kind, str) or kind not in models:  # a list or mapping is unhashable
        raise ValueError(f"`kind` must be one of {list(models)}, got {kind!r}")
    if document.get("apiVersion") != API_VERSION:
        raise ValueError(f"{kind}: `apiVersion` must be {API_VERSION!r}, got {document.get('apiVersion')!r}")
    unknown = _unknown_fields(models[kind], document, "")
    if unknown:
        where, known = unknown[0]
        close = difflib.get_close_matches(where.rsplit(".", 1)[-1], known, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        more = f" (and {len(unknown) - 1} more: {', '.join(w for w, _ in unknown[1:])})" if len(unknown) > 1 else ""
        raise ValueError(f"{kind}: unknown field `{where}`{hint}{more}")
    try:
        checked = models[kind].model_validate(document)
    except pydantic.ValidationError as err:
        problems = "; ".join(f"`{_where(e['loc'])}`: {e['msg']}" for e in err.errors())
        raise ValueError(f"{kind} is not valid: {problems}") from None
    difference = _first_difference(document, checked.model_dump(mode="json", by_alias=True, exclude_none=True), "")
    if difference:
        raise ValueError(f"{kind}: field {difference}")
    return document
