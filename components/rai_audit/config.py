"""The audit config that ``rai-audit run`` takes (YAML or JSON), turned into pipeline arguments.

Paths are relative to the config file. Example::

    model: model.joblib
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

from rai_audit.core import RAIInputError
from rai_audit.core.artifacts import read_yaml
from rai_audit.core.cohorts import load_cohorts
from rai_audit.core.fairness import DEFAULT_MIN_GROUP_SIZE
from rai_audit.core.scorecard_config import parse_scorecard_config
from rai_audit.pipelines import ANALYSIS_STEPS
from rai_audit.preflight import check_audit
from rai_audit.steps.causal import CausalOptions
from rai_audit.steps.constructor import check_desired_outcome
from rai_audit.steps.counterfactual import CounterfactualOptions
from rai_audit.steps.error_analysis import ErrorAnalysisOptions
from rai_audit.steps.explainer import ExplainerOptions
from rai_audit.steps.scorecard import ScorecardOptions

PATH_KEYS = ("model", "train_data", "test_data")
REQUIRED_KEYS = (*PATH_KEYS, "target_column", "task_type")
LIST_KEYS = (
    "categorical_features",
    "sensitive_features",
    "dropped_features",
    "classes",
    "skops_trusted_types",
    "immutable_features",
)
INT_KEYS = ("sample_size", "random_state", "min_group_size")
INT_DEFAULTS = {"min_group_size": DEFAULT_MIN_GROUP_SIZE}
OPTIONAL_KEYS = (
    "name",
    "positive_label",
    "cohorts",
    "allow_pickle",
    "desired_outcome",
    *LIST_KEYS,
    *INT_KEYS,
    *ANALYSIS_STEPS,
    "scorecard",
    "publish",
)
PUBLISH_OPTIONS = {"model_name": str, "model_version": str, "bucket": str, "retention_mode": str, "retention_days": int}
SCORECARD_OPTIONS = ("config", "bootstrap", "fail_on_missed_target")
# Per analysis step: its options class and the Azure ML names it also accepts.
STEP_OPTIONS = {
    "error_analysis": (ErrorAnalysisOptions, {"filter_features": "heatmap_features"}),
    "explainer": (ExplainerOptions, {}),
    "counterfactual": (CounterfactualOptions, {}),
    "causal": (CausalOptions, {}),
}
# Options whose pipeline parameter is typed differently from the option (KFP parameters
# cannot be null or of two types): option value -> parameter value.
PIPELINE_FORMS = {
    ("causal", "heterogeneity_features"): json.dumps,  # Azure's encoding: "null" = all features
    ("causal", "treatment_cost"): lambda v: v if isinstance(v, list) else [v],
    ("causal", "categories"): lambda v: {} if v == "auto" else v,
}
# Options set when the pipeline is built, not passed to it.
BUILD_OPTIONS = {"explainer": {"shards": "explainer_shards"}, "counterfactual": {"shards": "counterfactual_shards"}}
# Options the pipeline sets itself.
PIPELINE_SET = ("random_state", "shard_index", "shard_count")
ALLOWED_KEYS = (*REQUIRED_KEYS, *OPTIONAL_KEYS)


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
    options_class, aliases = STEP_OPTIONS[step]
    options = {aliases.get(k, k): v for k, v in options.items()}
    build = {BUILD_OPTIONS[step][k]: options.pop(k) for k in list(options) if k in BUILD_OPTIONS.get(step, {})}
    for value in build.values():  # the shard count shapes the pipeline: checked here
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RAIInputError(f"config `{step}.shards` must be an integer >= 1, got {value!r}")
    allowed = [f for f in options_class.__dataclass_fields__ if f not in PIPELINE_SET]
    unknown = sorted(set(options) - set(allowed), key=str)
    if unknown:
        allowed += list(BUILD_OPTIONS.get(step, {}))
        raise RAIInputError(f"config `{step}` has unknown options {unknown}; allowed are {allowed}")
    options_class(**options)  # refuses bad values before any pipeline starts
    return {f"{step}_{k}": PIPELINE_FORMS.get((step, k), lambda v: v)(v) for k, v in options.items()}, build


def resolve_config(
    config: dict[str, Any], *, base_dir: Path, read_data: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the keys and make paths absolute.

    Returns the arguments of the audit pipeline and the keyword arguments that build it
    (``steps`` to include, ``explainer_shards``). What the options name is checked against
    each other and the task (``rai_audit.preflight``); with ``read_data``, against the
    columns of the data too (local files; those in object storage are checked after the
    download, by the constructor).
    """
    unknown = sorted(set(config) - set(ALLOWED_KEYS), key=str)  # YAML keys may be numbers too
    if unknown:
        raise RAIInputError(f"unknown config keys {unknown}; allowed keys are {list(ALLOWED_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if config.get(k) in (None, "")]
    if missing:
        raise RAIInputError(f"config is missing the required keys {missing}")
    args: dict[str, Any] = {}
    for key in PATH_KEYS:
        value = str(config[key])
        if "://" not in value:
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
    args["target_column"] = str(config["target_column"])
    args["task_type"] = str(config["task_type"])
    for key in LIST_KEYS:
        value = config.get(key) or []
        if not isinstance(value, list):
            raise RAIInputError(f"config `{key}` must be a list, got {value!r}")
        args[key] = value
    for key in INT_KEYS:
        value = config.get(key, INT_DEFAULTS.get(key, 0))
        if not isinstance(value, int) or isinstance(value, bool):
            raise RAIInputError(f"config `{key}` must be an integer, got {value!r}")
        if key == "sample_size" and value < 0:  # refused now, not by the constructor's task
            raise RAIInputError(f"config `sample_size` must be an integer >= 0 (0 means every row), got {value!r}")
        if key == "min_group_size" and value < 1:
            raise RAIInputError(
                f"config `min_group_size` must be an integer >= 1 (test rows a group needs to "
                f"count in fairness differences), got {value!r}"
            )
        args[key] = value
    desired = config.get("desired_outcome", "increase")
    try:
        check_desired_outcome(desired)
    except RAIInputError as err:
        raise RAIInputError(f"config {err}") from None
    args["desired_outcome"] = desired
    allow_pickle = config.get("allow_pickle", False)
    if not isinstance(allow_pickle, bool):
        raise RAIInputError(f"config `allow_pickle` must be true or false, got {allow_pickle!r}")
    args["allow_pickle"] = allow_pickle
    positive = config.get("positive_label")
    args["positive_label"] = "" if positive is None else str(positive)
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
    for note in check_audit(args, build, read_data=read_data):
        print(f"rai-audit: note: {note}", file=sys.stderr)
    args["cohorts"] = [_cohort_argument(c) for c in args["cohorts"]]
    return args, build


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
    """``scorecard: file`` or ``scorecard: {config: file or mapping, bootstrap, fail_on_missed_target}``."""
    if isinstance(value, str):
        value = {"config": value}
    if not isinstance(value, dict) or "config" not in value:
        raise RAIInputError(
            "config `scorecard` must be a scorecard config file, or a mapping with `config` "
            f"(a file or the config itself) and options {list(SCORECARD_OPTIONS[1:])}; got {value!r}"
        )
    unknown = sorted(set(value) - set(SCORECARD_OPTIONS), key=str)
    if unknown:
        raise RAIInputError(f"config `scorecard` has unknown options {unknown}; allowed are {list(SCORECARD_OPTIONS)}")
    source = value["config"]
    parsed = parse_scorecard_config(base_dir / source if isinstance(source, str) else source)
    options = ScorecardOptions(**{k: v for k, v in value.items() if k != "config"})  # refuses bad values now
    return {
        "scorecard_config": _without_nulls(parsed),
        "scorecard_bootstrap": options.bootstrap,
        "scorecard_fail_on_missed_target": options.fail_on_missed_target,
    }


def _without_nulls(value: Any) -> Any:
    """The value without null entries (KFP parameters cannot hold null; absent means the same)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
