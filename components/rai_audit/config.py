"""The audit config that ``rai-audit run`` takes (YAML or JSON), turned into pipeline arguments.

Paths are relative to the config file. Example::

    model: model.joblib            # or served: {endpoint: URL, protocol: v2, name: adult, headers_from_env: {...}}
    train_data: train.parquet
    test_data: test.parquet
    target_column: income
    task_type: binary_classification
    positive_label: ">50K"
    sensitive_features: [sex, race]
    cohorts: cohorts.json          # a file, or the list inline
    sample_size: 2000
    error_analysis:                # include the step (options optional; {} for defaults)
      max_depth: 3
      heatmap_features: [age, sex] # Azure's name `filter_features` is accepted too
    explainer:
      method: auto                 # tree/linear SHAP where possible, else a mimic
      shards: 2                    # fan out over 2 tasks (ParallelFor) and merge
    counterfactual:
      total_CFs: 10
      desired_class: opposite
      increase_only: [age]
      shards: 2
    causal:
      treatment_features: [hours-per-week, sex]
      heterogeneity_features: [sex, age]   # absent or null: all features; []: one constant effect
      train_sample_size: 5000              # train rows the fit uses (seeded); 0: all
    scorecard:                     # PDF scorecard after gather; the model is registered only if it passes
      config: scorecard.yaml       # a file (rai-audit's or Azure ML's form), or the config inline
      fail_on_missed_target: false # true: a missed target fails the run
    publish:                       # archive bundle + scorecard in object storage (S3 settings from the environment)
      model_name: adult-income
      model_version: "3"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rai_audit import azure
from rai_audit.core import RAIInputError
from rai_audit.core.artifacts import read_yaml
from rai_audit.core.cohorts import load_cohorts
from rai_audit.core.models import is_mlflow_uri
from rai_audit.core.scorecard_config import parse_scorecard_config
from rai_audit.preflight import check_audit
from rai_audit.specs import ANALYSIS_STEPS, OPTIONS, ConstructorOptions, OptionSpec, ScorecardOptions, step_options

PATH_KEYS = ("model", "train_data", "test_data")
# The constructor's options are top-level keys; cohorts are a file or the list inline.
CONSTRUCTOR_KEYS = tuple(o.name for o in step_options("constructor", "config"))
REQUIRED_KEYS = (*PATH_KEYS, *(o.name for o in step_options("constructor", "config") if o.required))
PUBLISH_OPTIONS = {"model_name": str, "model_version": str, "bucket": str, "retention_mode": str, "retention_days": int}
# Options set when the pipeline is built, not passed to it.
BUILD_OPTIONS = {
    "explainer": {"shards": "explainer_shards"},
    "counterfactual": {"shards": "counterfactual_shards"},
    "causal": {"shards": "causal_shards"},
}
# `model: {endpoint: URL, ...}`: a served model, its keys the constructor's model_* options.
SERVED_MODEL_KEYS = {
    k.removeprefix("model_"): k
    for k in (
        "model_endpoint",
        "model_protocol",
        "model_name",
        "model_headers_from_env",
        "model_batch_size",
        "model_concurrency",
        "model_timeout_s",
        "model_retries",
    )
}
ALLOWED_KEYS = (*PATH_KEYS, "name", *CONSTRUCTOR_KEYS, "cohorts", *ANALYSIS_STEPS, "scorecard", "publish")


def _config_options(step: str) -> list[OptionSpec]:
    """The options a step's section of the config may set (the seed is set once, at the top)."""
    return [o for o in step_options(step, "config") if not o.shared]


def load_config(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and check an audit config, against the data's columns too (``rai_audit.preflight``):
    a mistake is found in seconds, before any step runs."""
    path = Path(path)
    config = read_yaml(path, what="config file")
    if not isinstance(config, dict):
        raise RAIInputError(f"config file {path} must hold a mapping of keys, got {type(config).__name__}")
    return resolve_config(config, base_dir=path.parent, read_data=True)


def _step_arguments(step: str, options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A step's options from the config, checked now: (pipeline arguments, build options)."""
    if options is True or options is None:
        options = {}
    if not isinstance(options, dict):
        raise RAIInputError(f"config `{step}` must be a mapping of options (or true), got {options!r}")
    specs = {o.name: o for o in _config_options(step)}
    options = dict(options)  # Azure's names and value forms are read already (rai_audit.azure)
    build = {BUILD_OPTIONS[step][k]: options.pop(k) for k in list(options) if k in BUILD_OPTIONS.get(step, {})}
    for value in build.values():  # the shard count shapes the pipeline: checked here
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RAIInputError(f"config `{step}.shards` must be an integer >= 1, got {value!r}")
    unknown = sorted(set(options) - set(specs), key=str)
    if unknown:
        allowed = [*specs, *BUILD_OPTIONS.get(step, {})]
        raise RAIInputError(f"config `{step}` has unknown options {unknown}; allowed are {allowed}")
    OPTIONS[step](**options)  # refuses bad values before any pipeline starts
    return {specs[k].parameter_name(): specs[k].to_parameter(v) for k, v in options.items()}, build


def _constructor_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """The constructor's options (top-level keys; absent or null: the default), checked now,
    as pipeline arguments. Cohorts are read apart (a file or the list)."""
    given: dict[str, Any] = {}
    for o in step_options("constructor", "config"):
        value = config.get(o.name)
        if value is None:
            continue
        if (o.parameter_type in (list, bool) and not isinstance(value, o.parameter_type)) or (
            o.parameter_type is int and (not isinstance(value, int) or isinstance(value, bool))
        ):
            kind = {list: "a list", bool: "true or false", int: "an integer"}[o.parameter_type]
            raise RAIInputError(f"config `{o.name}` must be {kind}, got {value!r}")
        given[o.name] = str(value) if o.parameter_type is str else value
    try:
        options = ConstructorOptions(**given)
    except RAIInputError as err:
        raise RAIInputError(f"config {err}") from None
    return {o.parameter_name(): o.to_parameter(getattr(options, o.name)) for o in step_options("constructor", "config")}


def resolve_config(
    config: dict[str, Any], *, base_dir: Path, read_data: bool = False, check_paths: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the keys and make paths absolute.

    Returns the arguments of the audit pipeline and the keyword arguments that build it
    (``steps`` to include, ``explainer_shards``). What the options name is checked against
    each other and the task (``rai_audit.preflight``); with ``read_data``, against the
    columns of the data too (local files; those in object storage are checked after the
    download, by the constructor). Azure ML's parameter names and value forms are read as
    rai-audit's (``rai_audit.azure.read_config``). Without ``check_paths`` (a config being
    written, as ``rai-audit from-azure`` does) the model and data paths are taken as they are.
    """
    config, azure_notes = azure.read_config(
        _served_model(config), base_dir=base_dir, read_data=read_data, check_paths=check_paths
    )
    unknown = sorted(set(config) - set(ALLOWED_KEYS), key=str)  # YAML keys may be numbers too
    if unknown:
        raise RAIInputError(f"unknown config keys {unknown}; allowed keys are {list(ALLOWED_KEYS)}")
    # `model: models:/name/1` (or runs:/...): an MLflow model the constructor resolves in its
    # task (at `mlflow_tracking_uri`, else MLFLOW_TRACKING_URI), locally and on a cluster alike.
    if is_mlflow_uri(config.get("model")):
        config = {**{k: v for k, v in config.items() if k != "model"}, "mlflow_model_uri": str(config["model"])}
    served = bool(config.get("model_endpoint") or config.get("mlflow_model_uri"))
    missing = [k for k in REQUIRED_KEYS if config.get(k) in (None, "") and not (k == "model" and served)]
    if missing:
        raise RAIInputError(f"config is missing the required keys {missing}")
    args: dict[str, Any] = {}
    for key in PATH_KEYS:
        if key == "model" and served and config.get(key) in (None, ""):
            continue
        value = str(config[key])
        if "://" not in value and check_paths:
            try:
                resolved = (base_dir / value).resolve()
                exists = resolved.exists()
            except (OSError, ValueError) as err:  # a name too long, a NUL character
                reason = getattr(err, "strerror", None) or err  # strerror: without the path again
                raise RAIInputError(f"config `{key}`: {value!r} is not a usable path ({reason})") from err
            if not exists:
                raise RAIInputError(f"config `{key}`: {resolved} does not exist")
            value = str(resolved)
        args[f"{key}_uri"] = value
    if "model_uri" not in args:
        # The pipeline imports a model artifact; with an endpoint or an MLflow URI the
        # constructor does not read it (nor does anything else): the train data stands in.
        args["model_uri"] = args["train_data_uri"]
    args.update(_constructor_arguments(config))
    cohorts = config.get("cohorts")
    if isinstance(cohorts, str):
        cohorts = base_dir / cohorts
    args["cohorts"] = load_cohorts(cohorts)
    build: dict[str, Any] = {"steps": [s for s in ANALYSIS_STEPS if config.get(s) not in (None, False)]}
    for step in build["steps"]:
        step_args, step_build = _step_arguments(step, config[step])
        args.update(step_args)
        build.update(step_build)
    if config.get("scorecard") not in (None, False):
        args.update(_scorecard_arguments(config["scorecard"], base_dir))
        build.update(with_scorecard=True, gate_registration=True)
    if config.get("publish") not in (None, False):
        if "scorecard_config" not in args:
            raise RAIInputError("config `publish` archives the bundle with its scorecard: add `scorecard`")
        args.update(_publish_arguments(config["publish"]))
        build["with_publish"] = True
    for note in [*azure_notes, *check_audit(args, build, read_data=read_data)]:
        print(f"rai-audit: note: {note}", file=sys.stderr)
    args["cohorts"] = [_cohort_argument(c) for c in args["cohorts"]]
    return args, build


def _served_model(config: dict[str, Any]) -> dict[str, Any]:
    """``model: {endpoint: URL, protocol, name, headers_from_env, ...}`` as the constructor's
    ``model_*`` options (a model given as a path is left as it is)."""
    model = config.get("model")
    if not isinstance(model, dict):
        return config
    unknown = sorted(set(model) - set(SERVED_MODEL_KEYS), key=str)
    if unknown or not model.get("endpoint"):
        raise RAIInputError(
            "config `model` must be a model file's path or a served model "
            f"{{endpoint: URL, ...}} with the keys {list(SERVED_MODEL_KEYS)}"
            + (f"; unknown: {unknown}" if unknown else "; `endpoint` is missing")
        )
    out = {k: v for k, v in config.items() if k != "model"}
    for key, value in model.items():
        out[SERVED_MODEL_KEYS[key]] = value
    return out


def _cohort_argument(cohort: dict[str, Any]) -> dict[str, Any] | str:
    """A cohort as the pipeline parameter holds it: a cohort with a null (``value: null``
    selects missing values) as its JSON text, since KFP parameters cannot hold null; the
    constructor's component reads the text back."""
    return json.dumps(cohort) if _holds_null(cohort) else cohort


def _holds_null(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_null(v) for v in value)
    return value is None


def _publish_arguments(value: Any) -> dict[str, Any]:
    """``publish: {model_name, model_version, bucket, retention_mode, retention_days}``."""
    if not isinstance(value, dict) or not {"model_name", "model_version"} <= set(value):
        raise RAIInputError(
            f"config `publish` must be a mapping with `model_name` and `model_version` (and "
            f"optionally {list(PUBLISH_OPTIONS)[2:]}), got {value!r}"
        )
    unknown = sorted(set(value) - set(PUBLISH_OPTIONS), key=str)
    if unknown:
        raise RAIInputError(f"config `publish` has unknown options {unknown}; allowed are {list(PUBLISH_OPTIONS)}")
    for key, kind in PUBLISH_OPTIONS.items():
        if key in value and (not isinstance(value[key], kind) or isinstance(value[key], bool)):
            raise RAIInputError(
                f"config `publish.{key}` must be {'an integer' if kind is int else 'text'}, got {value[key]!r}"
            )
    return {f"publish_{k}": v for k, v in value.items()}


def _scorecard_arguments(value: Any, base_dir: Path) -> dict[str, Any]:
    """``scorecard: file`` or ``scorecard: {config: file or mapping, <scorecard options>}``."""
    specs = {o.name: o for o in _config_options("scorecard")}
    allowed = ["config", *specs]
    if isinstance(value, str):
        value = {"config": value}
    if not isinstance(value, dict) or "config" not in value:
        raise RAIInputError(
            "config `scorecard` must be a scorecard config file, or a mapping with `config` "
            f"(a file or the config itself) and options {allowed[1:]}; got {value!r}"
        )
    unknown = sorted(set(value) - set(allowed), key=str)
    if unknown:
        raise RAIInputError(f"config `scorecard` has unknown options {unknown}; allowed are {allowed}")
    source = value["config"]
    parsed = parse_scorecard_config(base_dir / source if isinstance(source, str) else source)
    options = ScorecardOptions(**{k: v for k, v in value.items() if k != "config"})  # refuses bad values now
    return {"scorecard_config": _without_nulls(parsed)} | {
        o.parameter_name(): o.to_parameter(getattr(options, name)) for name, o in specs.items()
    }


def _without_nulls(value: Any) -> Any:
    """The value without null entries (KFP parameters cannot hold null; absent means the same)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
