"""Azure ML's Responsible AI components, read as rai-audit's options.

Teams coming from Azure ML have pipeline jobs that chain its Responsible AI components
(constructor, error analysis, explanation, counterfactual, causal, gather, scorecard), with
parameters in Azure's names and value forms: lists and mappings as JSON text
(``'["YOE"]'``, ``"null"``), ``features_to_vary: "all"``, ``desired_class`` as an index into
the sorted classes, ``maximum_rows_for_test_dataset``, ``feature_metadata``. This module holds
all of it, once:

- ``AZURE_PARAMETERS``: every parameter of each component, its Azure type and default, and
  how its value reads; which rai-audit option it sets comes from the options' specs
  (``OptionSpec.azure``), what has no equivalent is listed with the reason.
- ``read_options``: a step's options given in Azure's names or value forms, as rai-audit's
  (the audit config reader calls it through ``read_config``; the converter strictly, with
  Azure's types).
- ``convert``: an Azure ML pipeline job YAML as an audit config (``rai-audit from-azure``):
  every component parameter mapped or listed with the reason it is not; data and model inputs
  become clearly marked placeholders (``FILL IN: ...``) unless given with ``--set``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rai_audit.core._errors import RAIInputError
from rai_audit.specs import ANALYSIS_STEPS, OptionSpec, step_options

# What a placeholder of the converted config starts with; the config reader refuses it.
PLACEHOLDER = "FILL IN"
PATH_KEYS = ("model", "train_data", "test_data")

# Azure component names (registry, the RAI-vNext preview's and the docs' prefixed ones) -> step.
COMPONENT_STEPS = {
    "rai_tabular_insight_constructor": "constructor",
    "rai_insights_constructor": "constructor",
    "rai_tabular_erroranalysis": "error_analysis",
    "rai_insights_erroranalysis": "error_analysis",
    "rai_tabular_explanation": "explainer",
    "rai_insights_explanation": "explainer",
    "rai_tabular_counterfactual": "counterfactual",
    "rai_insights_counterfactual": "counterfactual",
    "rai_tabular_causal": "causal",
    "rai_insights_causal": "causal",
    "rai_tabular_insight_gather": "gather",
    "rai_insights_gather": "gather",
    "rai_tabular_score_card": "scorecard",
    "rai_score_card": "scorecard",
}
# `file:` components: the folder of the component's spec.yaml in azureml-assets -> step.
COMPONENT_FOLDERS = {
    "insight_create": "constructor",
    "error_analysis": "error_analysis",
    "explanation": "explainer",
    "counterfactual": "counterfactual",
    "causal": "causal",
    "insight_gather": "gather",
    "score_card": "scorecard",
}
# A component named so is one of Azure's Responsible AI components (a name not in
# COMPONENT_STEPS is refused, not skipped as a training job would be).
_RAI_NAME = re.compile(r"^(microsoft_azureml_)?rai_")
# Pipeline-level keys of a job YAML, none of which an audit config has: listed, with why.
PIPELINE_KEYS = {
    "experiment_name": "Azure ML's experiment; `rai-audit run --output` names where a run goes",
    "compute": "Azure compute; rai-audit runs on this machine (`rai-audit run`) or a KFP/Argo cluster",
    "settings": "Azure pipeline settings (datastore, compute, continue_on_step_failure)",
    "outputs": "the training job's model output; rai-audit audits a saved model (`model`)",
    "display_name": "Azure ML's display name",
    "description": "Azure ML's description",
    "tags": "Azure ML's tags",
}
JOB_KEYS = ("type", "component", "inputs", "outputs", "limits", "compute", "display_name", "description", "tags")


@dataclass(frozen=True)
class AzureParameter:
    """One parameter (input) of an Azure Responsible AI component."""

    name: str
    type: str  # Azure's input type: integer, number, boolean, string, path, mlflow_model
    default: Any  # the component spec's default (None: required or optional without one)
    form: str  # how the value reads: a key of FORMS, "input" (data/model/wiring) or "ignored"
    meaning: str  # what it is, and how rai-audit's semantics differ
    role: str = ""  # an input's role: model, train_data, test_data, dashboard, insight, scorecard, cohorts


def _p(name: str, type_: str, default: Any, form: str, meaning: str, role: str = "") -> AzureParameter:
    return AzureParameter(name, type_, default, form, meaning, role)


DASHBOARD = _p("rai_insights_dashboard", "path", None, "input", "the constructor's output", "dashboard")
# Each component's parameters, in its spec's order (azureml-assets' 0.22 specs, the Learn page).
AZURE_PARAMETERS: dict[str, tuple[AzureParameter, ...]] = {
    "constructor": (
        _p(
            "title",
            "string",
            None,
            "ignored",
            "The dashboard's title. rai-audit's page and scorecard name the model (the scorecard config's "
            "`model.name`); the converter keeps it as the config's `name`.",
        ),
        _p(
            "task_type",
            "string",
            None,
            "task",
            "`classification` becomes binary or multiclass from the number of classes; `forecasting` has no "
            "equivalent (refused).",
        ),
        _p("model_info_path", "path", None, "input", "A model_info.json naming a registered MLflow model.", "model"),
        _p("model_input", "mlflow_model", None, "input", "An MLflow model.", "model"),
        _p("model_info", "string", None, "input", "The registered model's name:version.", "model"),
        _p("train_dataset", "path", None, "input", "Parquet or MLTable; rai-audit reads Parquet or CSV.", "train_data"),
        _p("test_dataset", "path", None, "input", "Parquet or MLTable; rai-audit reads Parquet or CSV.", "test_data"),
        _p("target_column_name", "string", None, "text", "The same."),
        _p(
            "maximum_rows_for_test_dataset",
            "integer",
            5000,
            "rows_cap",
            "Azure refuses a test set of more rows. rai-audit computes metrics on every test row and gives the "
            "per-row steps a stratified, seeded sample of at most this many rows, recorded in the bundle; a note "
            "says when the test data is larger. Not given: Azure caps at 5000, rai-audit samples no rows.",
        ),
        _p(
            "categorical_column_names",
            "string",
            "[]",
            "names",
            "JSON text of a list. Empty: rai-audit infers the categorical features from the dtypes.",
        ),
        _p(
            "classes",
            "string",
            "[]",
            "names",
            "JSON text of the class labels; rai-audit checks them against the model's classes (they cannot be "
            "display names).",
        ),
        _p(
            "feature_metadata",
            "string",
            "{}",
            "feature_metadata",
            "JSON text of a mapping: `dropped_features` -> `dropped_features` (kept for cohorts and fairness, not "
            "given to the model); `identity_feature_name`, `datetime_features`, `time_series_id_features` and "
            "`categorical_features` have no equivalent (listed).",
        ),
        _p(
            "use_model_dependency",
            "boolean",
            False,
            "ignored",
            "Azure serves the model from its own conda environment (forecasting). rai-audit loads the model in "
            "the step's environment or image; build an image with the model's packages (scripts/build-images.sh).",
        ),
    ),
    "error_analysis": (
        DASHBOARD,
        _p("max_depth", "integer", 3, "int", "The same."),
        _p("num_leaves", "integer", 31, "int", "The same."),
        _p("min_child_samples", "integer", 20, "int", "The same."),
        _p(
            "filter_features",
            "string",
            "null",
            "heatmap",
            "JSON text of one or two features for the heatmap; `null`: none. rai-audit's error analysis uses the "
            "model's features: a pipeline job's dropped features are left out, and of a longer list (the RAI-vNext "
            "preview's tests pass six) the first two kept, the others listed as not mapped.",
        ),
    ),
    "explainer": (
        _p(
            "comment",
            "string",
            None,
            "ignored",
            "A note Azure stores with the explanation; rai-audit stores none (how it explains: `explainer.method`).",
        ),
        DASHBOARD,
    ),
    "counterfactual": (
        DASHBOARD,
        _p("total_CFs", "integer", 10, "int", "The same."),
        _p(
            "method",
            "string",
            "random",
            "method",
            "dice-ml's method. `genetic` and `kdtree` run dice-ml (`engine: dice`); `random` keeps rai-audit's "
            "batched random search (`engine: batched`), checked against the model like dice-ml's.",
        ),
        _p(
            "desired_class",
            "string",
            None,
            "class",
            "`opposite`, or an integer: an index into the sorted classes (the model's `classes_`), read as that "
            "class. A label given as text stays a label.",
        ),
        _p("desired_range", "string", None, "range", "JSON text of [low, high] (regression)."),
        _p("permitted_range", "string", None, "ranges", "JSON text of feature -> [low, high] or the allowed values."),
        _p(
            "features_to_vary",
            "string",
            "all",
            "names_or_all",
            "`all` or JSON text of a list. rai-audit's `all` (an empty list) holds the sensitive and immutable "
            "features fixed; list them to vary them as Azure does.",
        ),
        _p(
            "feature_importance",
            "boolean",
            True,
            "ignored",
            "rai-audit always computes it: how often each feature changes among the counterfactuals.",
        ),
    ),
    "causal": (
        DASHBOARD,
        _p("treatment_features", "string", None, "names", "JSON text of a list."),
        _p(
            "heterogeneity_features",
            "string",
            "null",
            "names_or_null",
            "JSON text of a list; `null`: every feature, `[]`: one constant effect.",
        ),
        _p("nuisance_model", "string", "linear", "choice", "`linear` or `automl` (any case)."),
        _p("heterogeneity_model", "string", "linear", "choice", "`linear` or `forest`."),
        _p("alpha", "number", 0.05, "number", "The same."),
        _p("upper_bound_on_cat_expansion", "integer", 50, "int", "The same."),
        _p(
            "treatment_cost",
            "string",
            "0",
            "cost",
            "A number, or JSON text of one per treatment; per-row cost arrays have no equivalent (refused).",
        ),
        _p("min_tree_leaf_samples", "integer", 2, "int", "The same."),
        _p("max_tree_depth", "integer", 2, "int", "The same."),
        _p("skip_cat_limit_checks", "boolean", False, "bool", "The same."),
        _p(
            "categories",
            "string",
            "auto",
            "categories",
            "`auto`, or JSON text of one entry per categorical column (`auto` or its levels, the control first); "
            "rai-audit keeps the entries of categorical treatments (`{treatment: levels}`) and infers the others'.",
        ),
        _p("n_jobs", "integer", 1, "int", "The same (rai-audit's default -1 uses every core)."),
        _p(
            "verbose",
            "integer",
            1,
            "ignored",
            "econml's log level; rai-audit's causal step logs its own progress and records the fit in result.json.",
        ),
        _p(
            "random_state",
            "string",
            "None",
            "seed",
            "The causal fit's seed. rai-audit seeds every step with the audit's one `random_state` (top level); "
            "`None` (unseeded) keeps rai-audit's seed.",
        ),
    ),
    "gather": (
        _p("constructor", "path", None, "input", "The constructor's output.", "dashboard"),
        *(
            _p(f"insight_{i}", "path", None, "input", "An analysis to include: the audit's step sections.", "insight")
            for i in range(1, 5)
        ),
    ),
    "scorecard": (
        _p("dashboard", "path", None, "input", "The gathered dashboard.", "dashboard"),
        _p(
            "pdf_generation_config",
            "path",
            None,
            "input",
            "Azure's scorecard config, read as it is (`scorecard.config`).",
            "scorecard",
        ),
        _p(
            "predefined_cohorts_json",
            "path",
            None,
            "input",
            "Azure's cohort list, read as it is (the audit's `cohorts`: every step reports them).",
            "cohorts",
        ),
    ),
}

# Value forms of FORMS' keys, as the docs name them.
FORMS = {
    "text": "text",
    "task": "text",
    "int": "an integer",
    "number": "a number",
    "bool": "true or false (also `True`/`False` text)",
    "choice": "text (one of the allowed values, any case)",
    "method": "text (one of the allowed values, any case)",
    "rows_cap": "an integer",
    "names": "JSON text of a list (`null` or empty: not given)",
    "heatmap": "JSON text of a list of one or two features (`null`: none)",
    "names_or_null": "JSON text of a list, or `null`",
    "names_or_all": "`all`, or JSON text of a list",
    "range": "JSON text of [low, high]",
    "ranges": "JSON text of a mapping",
    "cost": "a number, or JSON text of a list",
    "categories": "`auto`, or JSON text of a list",
    "class": "`opposite`, a class index (integer), or a label",
    "seed": "an integer, or `None`",
    "feature_metadata": "JSON text of a mapping",
}
# feature_metadata's keys (responsibleai FeatureMetadata) that have no rai-audit equivalent.
FEATURE_METADATA_UNMAPPED = {
    "identity_feature_name": "rai-audit identifies test rows by position (`row_id`); list the column in "
    "`dropped_features` if the model does not take it",
    "datetime_features": "forecasting only; rai-audit has no forecasting",
    "time_series_id_features": "forecasting only; rai-audit has no forecasting",
    "categorical_features": "Azure's constructor does not read it from feature_metadata (it reads "
    "categorical_column_names); not read here either",
}


def azure_parameter(step: str, name: str) -> AzureParameter | None:
    return next((p for p in AZURE_PARAMETERS.get(step, ()) if p.name == name), None)


def option_for(step: str, azure_name: str) -> OptionSpec | None:
    """The rai-audit option an Azure parameter sets (its spec names it in ``azure``)."""
    return next((o for o in step_options(step) if azure_name in o.azure), None)


def config_key(step: str, option: str) -> str:
    """Where an option sits in the audit config: top level (constructor, the seed) or its step's section."""
    return option if step == "constructor" or option == "random_state" else f"{step}.{option}"


def parameter_table() -> str:
    """docs/from-azure.md's table (Markdown): every component parameter, what it becomes, its
    value form and how the meaning differs (scripts/generate-from-specs.py writes it)."""
    rows = [
        "| Azure component | parameter (Azure type, default) | rai-audit | value form | meaning, differences |",
        "|---|---|---|---|---|",
    ]
    for step, parameters in AZURE_PARAMETERS.items():
        component = next(name for name, s in COMPONENT_STEPS.items() if s == step)
        for p in parameters:
            default = (
                ""
                if p.default is None
                else f", `{json.dumps(p.default) if not isinstance(p.default, str) else p.default}`"
            )
            if p.form == "input":
                target = (
                    f"input: `{p.role}`"
                    if p.role in PATH_KEYS
                    else {
                        "dashboard": "the pipeline's wiring",
                        "insight": "the step sections present",
                        "scorecard": "`scorecard.config`",
                        "cohorts": "`cohorts`",
                    }[p.role]
                )
                form = "a file" if p.role in (*PATH_KEYS, "scorecard", "cohorts") else "a job's output"
            elif p.form == "ignored":
                target, form = "not mapped", "any"
            elif p.form == "feature_metadata":
                target, form = "`dropped_features`", FORMS[p.form]
            else:
                option = option_for(step, p.name)
                assert option is not None, (step, p.name)
                target, form = f"`{config_key(step, option.name)}`", FORMS[p.form]
            meaning = p.meaning.replace("|", "\\|")
            rows.append(f"| `{component}` | `{p.name}` ({p.type}{default}) | {target} | {form} | {meaning} |")
    return "\n".join(rows) + "\n"


# --- reading values -----------------------------------------------------------------------------


@dataclass
class Context:
    """What reading a value needs beyond the value: the constructor's categorical features (in
    order, for causal `categories`), the features counterfactuals hold fixed, and the sorted
    classes (for a `desired_class` index); ``classes`` returns None when they are unknown,
    ``defer_class_index`` keeps an index as it is then (the converter, before the data exist)."""

    categorical: list[str] | None = None
    dropped: list[str] = field(default_factory=list)  # not given to the model
    held_fixed: list[str] = field(default_factory=list)
    classes: Callable[[], list[Any] | None] = lambda: None
    defer_class_index: bool = False


@dataclass
class Read:
    """A step's options as rai-audit's, and what was said about them."""

    options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # parameters with no equivalent, and differences
    mapped: list[tuple[str, str, Any]] = field(default_factory=list)  # (Azure name, config key, value)
    seed: Any = None  # Azure's causal random_state, when given as a number
    remarks: dict[str, str] = field(default_factory=dict)  # Azure name -> what its mapped value means


_EMPTY_TEXTS = ("", "null", "none")
# Forms whose value Azure passes as JSON text.
JSON_FORMS = ("names", "heatmap", "names_or_null", "names_or_all", "range", "ranges", "cost", "categories")


_JSON_EXAMPLES = {"a mapping": '{"age": [20, 60]}', "[low, high]": "[10, 300]"}


def _json(value: str, where: str, expected: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        example = _JSON_EXAMPLES.get(expected, '["age", "sex"]')
        raise RAIInputError(
            f"{where}: {value!r} is not JSON text ({err.msg} at character {err.pos}); Azure passes {expected} "
            f"as JSON text, e.g. '{example}'"
        ) from None


def _names(value: Any, where: str, *, what: str = "a list of feature names") -> list[Any]:
    if isinstance(value, str):
        value = _json(value, where, what)
    if not isinstance(value, list) or not all(
        isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value
    ):
        raise RAIInputError(f"{where}: must be JSON text of {what}, got {value!r}")
    return value


def _resolve_class_index(index: int, where: str, context: Context) -> Any:
    """Azure's `desired_class` index as the class it names (an index into the sorted classes,
    as dice-ml reads it: the model's ``classes_``). An integer that is a label of another class
    too is refused: which one is meant cannot be told."""
    classes = context.classes()
    if classes is None:
        if context.defer_class_index:
            return index  # the config reader reads it against the data's classes
        raise RAIInputError(
            f"{where}: {index} is Azure's class index, which needs the classes: give `classes`, a local "
            "train_data, or the class label as text"
        )
    labels = [str(c) for c in classes]
    is_index = 0 <= index < len(classes)
    if is_index and (str(index) not in labels or labels[index] == str(index)):
        return classes[index]
    if not is_index and str(index) in labels:
        return index  # a label (rai-audit's meaning); no class has this index
    if is_index:
        raise RAIInputError(
            f"{where}: {index} is Azure's index of class {classes[index]!r} but also the label of another class "
            f'among {classes}; write the label as text ("{index}") or the index of the class meant'
        )
    raise RAIInputError(f"{where}: class index {index} is out of range for the classes {classes}")


def _read_value(
    parameter: AzureParameter, option: OptionSpec, value: Any, where: str, context: Context, read: Read, strict: bool
) -> Any:
    """``value`` (Azure's form, or already rai-audit's) as the option's value; None: not given
    (the option's default)."""
    form = parameter.form
    if value is None and form != "seed":
        return None
    if isinstance(value, str) and form in JSON_FORMS:
        text = value.strip()
        if form == "names_or_all" and text.lower() == "all":
            if context.held_fixed:
                read.notes.append(
                    f"{where} 'all': rai-audit holds the sensitive and immutable features {context.held_fixed} "
                    "fixed; list them in `features_to_vary` to vary them as Azure does"
                )
            return None
        if form == "categories" and text.lower() == "auto":
            return None
        if text.lower() in _EMPTY_TEXTS:  # Azure's "null" (and an empty text): not given
            return None
        value = _json(text, where, {"ranges": "a mapping", "range": "[low, high]"}.get(form, "a list"))
        if value is None:
            return None
    if form == "heatmap" and strict and isinstance(value, list):
        # Azure's dataset keeps dropped features beside the model's; rai-audit's error analysis
        # uses the model's features only.
        dropped = [f for f in value if f in context.dropped]
        if dropped:
            read.notes.append(f"{where} {dropped}: not mapped: dropped features; the error analysis uses the model's")
            value = [f for f in value if f not in dropped]
        if len(value) > 2:
            read.notes.append(
                f"{where}: the heatmap takes one or two features; kept {value[:2]}, not mapped: {value[2:]}"
            )
            value = value[:2]
    if form in ("names", "names_or_null", "names_or_all", "heatmap"):
        names = _names(value, where)
        # An empty list is the default of these options (but heterogeneity's: one constant
        # effect; and the treatments', which must be refused as empty, not as missing).
        return names if names or form == "names_or_null" or option.required else None
    if form == "range":
        if not (isinstance(value, list) and len(value) == 2):
            raise RAIInputError(f"{where}: must be JSON text of [low, high], got {value!r}")
        return value
    if form == "ranges":
        if not isinstance(value, dict):
            raise RAIInputError(
                f"{where}: must be JSON text of a mapping feature -> [low, high] or values, got {value!r}"
            )
        return value or None
    if form == "cost":
        if isinstance(value, list) and any(isinstance(v, list) for v in value):
            raise RAIInputError(
                f"{where}: per-row treatment costs (arrays) have no rai-audit equivalent; give one cost per treatment"
            )
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)  # Azure's '0' is the default cost 0.0
        return (
            [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
            if isinstance(value, list)
            else value
        )
    if form == "categories":
        return _categories(value, where, context)
    if form == "class":
        if strict and isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
            value = int(value)  # Azure's str_or_int_parser: a number given as text is an index too
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise RAIInputError(f"{where}: must be 'opposite', a class index or a label, got {value!r}")
        if isinstance(value, int) and context.defer_class_index:
            read.remarks[parameter.name] = "Azure's index into the sorted classes, read so by `rai-audit run`"
        return _resolve_class_index(value, where, context) if isinstance(value, int) else value
    if form == "seed":
        if value is None or (isinstance(value, str) and value.strip().lower() in _EMPTY_TEXTS):
            read.notes.append(f"{where} None (unseeded): rai-audit seeds every step with the audit's `random_state`")
            return None
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise RAIInputError(f"{where}: must be an integer or None, got {value!r}")
        read.seed = value
        return None
    if form == "bool" and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if form in ("choice", "method") and isinstance(value, str):
        return value.strip().lower()
    if form == "task" and value == "forecasting":
        raise RAIInputError(
            f"{where}: forecasting has no rai-audit equivalent (it audits classification and regression models)"
        )
    if form == "rows_cap" and parameter.name != option.name:
        read.notes.append(
            f"{where} {value!r} read as `sample_size`: metrics use every test row; the per-row steps use a "
            f"stratified, seeded sample of at most {value!r} rows, recorded in the bundle (Azure refuses a larger "
            "test set)"
        )
    return value


def _categories(value: Any, where: str, context: Context) -> Any:
    """Azure's categories (a list, one entry per categorical column) as rai-audit's mapping
    categorical treatment -> its levels; a mapping is taken as it is."""
    if isinstance(value, dict):
        return value or None
    if not isinstance(value, list):
        raise RAIInputError(
            f"{where}: must be 'auto' or JSON text of a list (one entry per categorical column), got {value!r}"
        )
    columns = context.categorical
    if columns is None or len(columns) != len(value):
        raise RAIInputError(
            f"{where}: Azure's list has one entry per categorical column (categorical_column_names, "
            f"{'not given' if columns is None else len(columns)}); got {len(value)} entries"
        )
    levels = {c: v for c, v in zip(columns, value) if v != "auto"}
    for column, entry in levels.items():
        if not isinstance(entry, list):
            raise RAIInputError(
                f"{where}: the entry of {column!r} must be 'auto' or a list of its levels, got {entry!r}"
            )
    return levels or None


def read_options(
    step: str, given: Mapping[Any, Any], *, where: str, context: Context | None = None, strict: bool = False
) -> Read:
    """A step's options given in Azure's names and value forms (or rai-audit's), as rai-audit's.

    ``strict`` (a pipeline job's parameters): only the component's parameters are allowed,
    with Azure's types (text, numbers and booleans there); otherwise rai-audit's own options
    pass through, for the config reader to check. Inputs (data, model, wiring) are the
    caller's. Two names of one option are refused.
    """
    context = context or Context()
    read = Read()
    parameters = {p.name: p for p in AZURE_PARAMETERS.get(step, ()) if p.form != "input"}
    source: dict[str, str] = {}  # option -> the key that set it
    for key, value in given.items():
        parameter = parameters.get(key) if isinstance(key, str) else None
        if parameter is None:
            if strict:
                raise RAIInputError(
                    f"{where} has no parameter `{key}`; its parameters are "
                    f"{[p.name for p in AZURE_PARAMETERS.get(step, ())]}"
                )
            if value is not None or key not in read.options:  # (null: not given, as the reader takes it)
                read.options[key] = value  # rai-audit's own option (or an unknown key the reader refuses)
            continue
        at = f"{where} `{key}`"
        if strict:
            _check_azure_type(parameter, value, at)
        if parameter.form == "ignored":
            read.notes.append(f"{at} {_short(value)}: not mapped: {parameter.meaning}")
            continue
        if parameter.form == "feature_metadata":
            _feature_metadata(value, at, read, source, given)
            continue
        option = option_for(step, key)
        if option is None:  # (a test checks that every mapped parameter has its option)
            raise RAIInputError(f"{at}: no rai-audit option reads it")
        given_too = option.name != key and given.get(option.name) is not None
        other = source.get(option.name) or (option.name if given_too else None)
        if other is not None:
            raise RAIInputError(f"{where} gives both `{other}` and `{key}`, two names of one option")
        parsed = _read_value(parameter, option, value, at, context, read, strict)
        if parameter.form == "seed":
            if read.seed is not None:
                read.mapped.append((key, "random_state", read.seed))
            continue
        source[option.name] = key
        if parameter.form == "method" and parsed in ("genetic", "kdtree") and "engine" not in given:
            read.options["engine"] = "dice"
            read.notes.append(f"{at} {parsed!r}: runs dice-ml (`engine: dice`), as Azure does")
        if parsed is not None:
            read.options[option.name] = parsed
        read.mapped.append((key, config_key(step, option.name), "(default)" if parsed is None else parsed))
    return read


def _feature_metadata(value: Any, where: str, read: Read, source: dict[str, str], given: Mapping[Any, Any]) -> None:
    if isinstance(value, str):
        value = None if value.strip().lower() in _EMPTY_TEXTS else _json(value.strip(), where, "a mapping")
    if value is None:
        return
    if not isinstance(value, dict):
        raise RAIInputError(f"{where}: must be JSON text of a mapping, got {value!r}")
    allowed = ["dropped_features", *FEATURE_METADATA_UNMAPPED]
    unknown = sorted(set(value) - set(allowed), key=str)
    if unknown:
        raise RAIInputError(f"{where} has unknown keys {unknown}; Azure's are {allowed}")
    for key, reason in FEATURE_METADATA_UNMAPPED.items():
        if value.get(key) not in (None, [], ""):
            read.notes.append(f"{where} `{key}` {_short(value[key])}: not mapped: {reason}")
    if value.get("dropped_features") not in (None, []):
        if "dropped_features" in given:
            raise RAIInputError(f"{where} names `dropped_features`, and so does the key `dropped_features`")
        dropped = _names(value["dropped_features"], f"{where} `dropped_features`")
        source["dropped_features"] = "feature_metadata"
        read.options["dropped_features"] = dropped
        read.mapped.append(("feature_metadata.dropped_features", "dropped_features", dropped))


_AZURE_TYPES = {
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool, str),
    "string": (str, int, float),  # Azure passes a YAML number to a string input as its text
}


def _check_azure_type(parameter: AzureParameter, value: Any, where: str) -> None:
    """A pipeline job's parameter of the component's type (Azure passes text, numbers and
    booleans; a list must be written as JSON text)."""
    kinds = _AZURE_TYPES.get(parameter.type)
    if kinds is None:
        return
    wrong = not isinstance(value, kinds) or (isinstance(value, bool) and parameter.type != "boolean")
    if parameter.type == "boolean" and isinstance(value, str) and value.strip().lower() not in ("true", "false"):
        wrong = True
    if wrong:
        hint = (
            '; Azure takes a list or mapping as JSON text, e.g. \'["a", "b"]\''
            if isinstance(value, (list, dict))
            else ""
        )
        raise RAIInputError(f"{where}: Azure's type is {parameter.type}, got {_short(value)}{hint}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- the audit config ------------------------------------------------------------------------------


def read_config(
    config: Mapping[Any, Any], *, base_dir: Path, read_data: bool = False, check_paths: bool = True
) -> tuple[dict[Any, Any], list[str]]:
    """An audit config with Azure's parameter names and value forms, in rai-audit's; and the notes
    to print (parameters with no equivalent, differences in meaning).

    Top-level keys take the constructor's parameters (``target_column_name``,
    ``categorical_column_names``, ``maximum_rows_for_test_dataset``, ``feature_metadata``,
    ``title``, ...), each step section its component's, ``scorecard`` Azure's
    ``pdf_generation_config`` and ``predefined_cohorts_json`` (added to the audit's cohorts).
    Azure's causal ``random_state`` becomes the audit's one seed. A ``desired_class`` integer is
    Azure's class index, read against the train data's classes (or ``classes``).
    """
    out: dict[Any, Any] = dict(config)
    notes: list[str] = []
    if check_paths:
        for key in PATH_KEYS:
            value = out.get(key)
            if isinstance(value, str) and value.startswith(PLACEHOLDER):
                raise RAIInputError(f"config `{key}` is still the placeholder `rai-audit from-azure` wrote: {value!r}")
    title = out.pop("title", None)  # Azure's dashboard title: the audit's name
    if title is not None and out.get("name") is None:
        out["name"] = str(title)
    constructor_keys = {p.name for p in AZURE_PARAMETERS["constructor"] if p.form != "input"}
    constructor_keys |= {o.name for o in step_options("constructor")}
    top = {k: out.pop(k) for k in list(out) if k in constructor_keys}
    read = read_options("constructor", top, where="config")
    notes += read.notes
    out.update(read.options)
    given_seed = out.get("random_state")
    categorical = out.get("categorical_features")
    # Names only: a value of another form passes on to the config reader, which refuses it.
    held = [
        f for key in ("sensitive_features", "immutable_features") if isinstance(out.get(key), list) for f in out[key]
    ]
    context = Context(
        categorical=categorical if isinstance(categorical, list) else None,
        held_fixed=[f for f in held if isinstance(f, str)],
        classes=lambda: _classes(out, base_dir, read_data=read_data),
        defer_class_index=not check_paths,
    )
    for step in ANALYSIS_STEPS:
        section = out.get(step)
        if not isinstance(section, dict):
            continue
        read = read_options(step, section, where=f"config `{step}`", context=context)
        notes += read.notes
        if read.seed is not None:
            if given_seed is not None and given_seed != read.seed:
                raise RAIInputError(
                    f"config `{step}.random_state` {read.seed} differs from the audit's `random_state` {given_seed}: "
                    "rai-audit has one seed for every step"
                )
            out["random_state"] = given_seed = read.seed
        out[step] = read.options
    scorecard = out.get("scorecard")
    if isinstance(scorecard, dict):
        scorecard = dict(scorecard)
        if "pdf_generation_config" in scorecard:
            if "config" in scorecard:
                raise RAIInputError(
                    "config `scorecard` gives both `config` and `pdf_generation_config`, two names of one option"
                )
            scorecard["config"] = scorecard.pop("pdf_generation_config")
        extra = scorecard.pop("predefined_cohorts_json", None)
        if extra is not None:
            out["cohorts"] = _merged_cohorts(out.get("cohorts"), extra, base_dir)
        out["scorecard"] = scorecard
    if read_data and out.get("sample_size") and "maximum_rows_for_test_dataset" in top:
        rows = _row_count(out.get("test_data"), base_dir)
        if rows is not None and rows > out["sample_size"]:
            notes.append(
                f"the test data has {rows} rows, more than `maximum_rows_for_test_dataset` {out['sample_size']}: "
                "Azure would refuse it; rai-audit computes metrics on all of them and samples the per-row steps' rows"
            )
    return out, notes


def _merged_cohorts(cohorts: Any, extra: Any, base_dir: Path) -> list[dict[str, Any]]:
    from rai_audit.core.cohorts import load_cohorts

    def loaded(source: Any) -> list[dict[str, Any]]:
        return load_cohorts(base_dir / source if isinstance(source, str) else source)

    merged = loaded(cohorts) + loaded(extra)
    names = [c["name"] for c in merged]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise RAIInputError(
            f"config `scorecard.predefined_cohorts_json` names cohorts {repeated} that `cohorts` has too"
        )
    return merged


def _local_file(value: Any, base_dir: Path) -> Path | None:
    if not isinstance(value, str) or "://" in value:
        return None
    path = base_dir / value
    return path if path.exists() else None


def _classes(config: Mapping[Any, Any], base_dir: Path, *, read_data: bool) -> list[Any] | None:
    """The sorted classes a `desired_class` index counts in: the train data's target labels
    (a scikit-learn classifier's ``classes_`` are those, sorted), else ``classes`` sorted."""
    path = _local_file(config.get("train_data"), base_dir) if read_data else None
    target = config.get("target_column")
    if path is not None and isinstance(target, str):
        import numpy as np
        import pandas as pd

        from rai_audit.core.loading import table_file

        file = table_file(path, "train data")
        try:
            if file.suffix.lower() == ".csv":
                values = pd.read_csv(file, usecols=[target])[target]
            else:
                values = pd.read_parquet(file, columns=[target])[target]
        except (KeyError, ValueError):
            return None  # no such column: the config check says so
        return [v.item() if hasattr(v, "item") else v for v in np.unique(values.dropna().to_numpy())]
    classes = config.get("classes")
    if isinstance(classes, list) and classes:
        return sorted(classes, key=lambda c: (str(type(c)), c))
    return None


def _row_count(value: Any, base_dir: Path) -> int | None:
    path = _local_file(value, base_dir)
    if path is None:
        return None
    from rai_audit.core.loading import table_file

    file = table_file(path, "test data")
    if file.suffix.lower() == ".csv":
        with open(file, "rb") as handle:
            return max(sum(1 for _ in handle) - 1, 0)
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    return int(pq.ParquetFile(file).metadata.num_rows)


# --- the pipeline job converter -------------------------------------------------------------------


@dataclass
class Conversion:
    """An Azure ML pipeline job as an audit config, with what was mapped and what was not."""

    config: dict[str, Any]
    mapped: list[str] = field(default_factory=list)  # "job.parameter -> key: value"
    unmapped: list[str] = field(default_factory=list)  # "job.parameter ...: not mapped: reason"
    placeholders: list[str] = field(default_factory=list)  # config keys to fill in


_REF = re.compile(r"^\$\{\{\s*parent\.(inputs|jobs)\.([^}\s]+?)\s*\}\}$")


def _component_step(component: Any, pipeline_dir: Path, job: str) -> tuple[str | None, str]:
    """The rai-audit step an Azure component is (None: not a Responsible AI component), and its name."""
    if isinstance(component, dict):  # an inline component definition
        name = str(component.get("name", ""))
    elif isinstance(component, str):
        name = component
        if component.startswith("file:"):
            spec = pipeline_dir / component[len("file:") :]
            if spec.is_file():
                from rai_audit.core.artifacts import read_yaml

                loaded = read_yaml(spec, what=f"job `{job}` component spec")
                name = str(loaded.get("name", "")) if isinstance(loaded, dict) else ""
            else:
                folder = Path(component[len("file:") :]).parent.name
                if folder in COMPONENT_FOLDERS and Path(component).name == "spec.yaml":
                    return COMPONENT_FOLDERS[folder], component
                return None, component
        elif "/components/" in component:  # azureml://registries/<r>/components/<name>/versions/<v>
            name = component.split("/components/", 1)[1].split("/", 1)[0]
        elif component.startswith("azureml:"):  # azureml:<name>:<version> or azureml:<name>@<label>
            name = re.split(r"[:@]", component[len("azureml:") :], maxsplit=1)[0]
    else:
        raise RAIInputError(f"job `{job}`: `component` must be a reference or a definition, got {component!r}")
    bare = re.sub(r"^microsoft_azureml_", "", name)
    if bare in COMPONENT_STEPS:
        return COMPONENT_STEPS[bare], name
    if _RAI_NAME.match(name):
        raise RAIInputError(
            f"job `{job}`: unknown Azure Responsible AI component {name!r}; the components are "
            f"{sorted(COMPONENT_STEPS)}"
        )
    return None, str(component)


def _resolve(value: Any, inputs: Mapping[str, Any]) -> tuple[Any, str | None]:
    """A job input's value with ``${{parent.inputs.X}}`` replaced; and the job it takes an output of."""
    if isinstance(value, str):
        match = _REF.match(value.strip())
        if match and match.group(1) == "inputs":
            name = match.group(2)
            if name not in inputs:
                raise RAIInputError(f"{value} names no input of the pipeline; its inputs are {sorted(inputs)}")
            return inputs[name], None
        if match:
            return value, match.group(2).split(".", 1)[0]
    return value, None


def _input_path(value: Any, pipeline_dir: Path) -> tuple[Path | None, str]:
    """A data or file input's local path if it exists (an Azure `path` beside the pipeline), and
    how Azure names it."""
    if isinstance(value, dict):
        path = value.get("path")
        described = f"{value.get('type', 'input')} {path}"
    else:
        path, described = value, str(value)
    if isinstance(path, str) and not path.startswith(("azureml:", "${{")) and "://" not in path:
        local = (pipeline_dir / path).resolve()
        if local.exists():
            return local, described
    return None, described


def _relative(path: Path, out_dir: Path) -> str:
    """A path as the config names it: relative to the config's folder when under it, else absolute."""
    relative = os.path.relpath(path.resolve(), out_dir.resolve())
    return str(path.resolve()) if relative.startswith("..") else relative


Job = tuple[str, str, dict[str, Any], dict[str, str]]  # job name, component, parameters, job each takes an output of


def convert(
    pipeline: str | Path,
    *,
    output: str | Path,
    pdf_config: str | Path | None = None,
    cohorts: str | Path | None = None,
    sets: Mapping[str, Any] | None = None,
) -> Conversion:
    """Read an Azure ML pipeline job YAML and return the audit config it stands for (paths
    relative to ``output``'s folder). ``pdf_config``/``cohorts`` replace the files the scorecard
    job names; ``sets`` ({"model": path, "causal.train_sample_size": 500, ...}) set config keys.
    Anything refused raises a RAIInputError naming the job, its component and the parameter."""
    from rai_audit.core.artifacts import read_yaml

    pipeline = Path(pipeline)
    pipeline_dir, out_dir = pipeline.parent, Path(output).parent
    document = read_yaml(pipeline, what="Azure ML pipeline job")
    if not isinstance(document, dict) or not isinstance(document.get("jobs"), dict):
        raise RAIInputError(f"{pipeline} is not an Azure ML pipeline job: it needs a mapping `jobs`")
    if document.get("type", "pipeline") != "pipeline":
        raise RAIInputError(f"{pipeline}: `type` is {document.get('type')!r}; a pipeline job has `type: pipeline`")
    inputs = document.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise RAIInputError(f"{pipeline}: `inputs` must be a mapping, got {inputs!r}")
    result = Conversion(config={})
    for key, reason in PIPELINE_KEYS.items():
        if key in document:
            result.unmapped.append(f"pipeline `{key}` {_short(document[key])}: not mapped: {reason}")
    steps = _rai_jobs(document["jobs"], inputs, pipeline_dir, result)
    if "constructor" not in steps:
        raise RAIInputError(f"{pipeline} has no Responsible AI constructor job (rai_tabular_insight_constructor)")

    config = result.config
    _convert_constructor(steps["constructor"], pipeline_dir, out_dir, result)
    for step in sorted(_gathered_steps(steps, result), key=ANALYSIS_STEPS.index):
        job, component, values, refs = steps[step]
        where = f"job `{job}` ({component})"
        _check_dashboard_port(values, refs, steps["constructor"][0], where)
        read = read_options(
            step,
            {k: v for k, v in values.items() if k != "rai_insights_dashboard"},
            where=where,
            context=Context(
                categorical=config.get("categorical_features"),
                dropped=config.get("dropped_features") or [],
                defer_class_index=True,
            ),
            strict=True,
        )
        config[step] = read.options
        if read.seed is not None:
            config["random_state"] = read.seed
        _record(result, job, read)
    cohorts_source: tuple[Path | str, str] | None = None
    if "scorecard" in steps:
        cohorts_source = _convert_scorecard(steps["scorecard"], pipeline_dir, out_dir, result, pdf_config=pdf_config)
    if cohorts is not None:
        cohorts_source = (Path(cohorts), "--cohorts")
    if cohorts_source is not None:
        _convert_cohorts(*cohorts_source, out_dir, result)
    sensitive = config.get("sensitive_features") or []
    if sensitive and "counterfactual" in config and not config["counterfactual"].get("features_to_vary"):
        result.unmapped.append(
            f"counterfactual `features_to_vary` 'all': rai-audit holds the sensitive features {sensitive} fixed; "
            "list them in `counterfactual.features_to_vary` to vary them as Azure does"
        )
    for key, value in (sets or {}).items():
        _set(config, key, value, out_dir)
        result.placeholders = [p for p in result.placeholders if p != key]
        result.mapped.append(f"--set {key} -> `{key}`: {_short(config_value(config, key))}")
    _validate(config, out_dir)
    return result


def config_value(config: Mapping[str, Any], key: str) -> Any:
    """A (dotted) key's value in a config."""
    value: Any = config
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _rai_jobs(
    jobs: Mapping[Any, Any], inputs: Mapping[str, Any], pipeline_dir: Path, result: Conversion
) -> dict[str, Job]:
    """The pipeline's Responsible AI jobs by step; the others (training, registration) are
    listed as not converted, and refused if they take a Responsible AI job's output."""
    steps: dict[str, Job] = {}
    others: dict[str, tuple[str, dict[str, str]]] = {}
    for job, spec in jobs.items():
        if not isinstance(spec, dict):
            raise RAIInputError(f"job `{job}` must be a mapping, got {spec!r}")
        step, component = _component_step(spec.get("component"), pipeline_dir, job)
        job_inputs = spec.get("inputs") or {}
        if not isinstance(job_inputs, dict):
            raise RAIInputError(f"job `{job}` ({component}): `inputs` must be a mapping, got {job_inputs!r}")
        values: dict[str, Any] = {}
        refs: dict[str, str] = {}
        for name, value in job_inputs.items():
            try:
                values[name], ref = _resolve(value, inputs)
            except RAIInputError as err:
                raise RAIInputError(f"job `{job}` ({component}) `{name}`: {err}") from None
            if ref is not None:
                refs[name] = ref
        if step is None:
            others[job] = (component, refs)
            result.unmapped.append(
                f"job `{job}` ({component}): not converted: not a Responsible AI component (it trains or registers "
                "the model); rai-audit audits a saved model, given as `model`"
            )
            continue
        if step in steps:
            raise RAIInputError(
                f"jobs `{steps[step][0]}` and `{job}` are both {step} components; an audit runs each step once"
            )
        for key in spec:
            if key == "limits":
                result.unmapped.append(
                    f"job `{job}` `limits` {_short(spec[key])}: not mapped: rai-audit sets no task timeouts"
                )
            elif key not in JOB_KEYS:
                result.unmapped.append(f"job `{job}` `{key}`: not mapped: an Azure job setting")
        steps[step] = (job, component, values, refs)
    rai_jobs = {entry[0]: step for step, entry in steps.items()}
    for job, (component, refs) in others.items():
        for name, ref in refs.items():
            if ref in rai_jobs:
                raise RAIInputError(
                    f"job `{job}` ({component}) `{name}` takes the output of the {rai_jobs[ref]} job `{ref}`: an "
                    f"unknown component; the Responsible AI components are {sorted(COMPONENT_STEPS)}"
                )
    return steps


def _record(result: Conversion, job: str, read: Read) -> None:
    result.mapped += [
        f"job `{job}` `{name}` -> `{key}`: {_short(value)}"
        + (f" ({read.remarks[name]})" if name in read.remarks else "")
        for name, key, value in read.mapped
    ]
    result.unmapped += read.notes


def _check_dashboard_port(values: dict[str, Any], refs: dict[str, str], constructor: str, where: str) -> None:
    if "rai_insights_dashboard" not in values:
        raise RAIInputError(f"{where} `rai_insights_dashboard`: missing; it takes the constructor's output")
    if refs.get("rai_insights_dashboard") != constructor:
        raise RAIInputError(
            f"{where} `rai_insights_dashboard`: {values['rai_insights_dashboard']!r} is not the output of the "
            f"constructor job `{constructor}`"
        )


def _check_parameters(step: str, values: Mapping[str, Any], where: str) -> None:
    parameters = [p.name for p in AZURE_PARAMETERS[step]]
    unknown = sorted(set(values) - set(parameters), key=str)
    if unknown:
        raise RAIInputError(f"{where} has no parameter `{unknown[0]}`; its parameters are {parameters}")


def _gathered_steps(steps: dict[str, Job], result: Conversion) -> set[str]:
    """The analysis steps the audit includes: those the gather job takes (every analysis job
    when there is no gather job)."""
    present = {s for s in steps if s in ANALYSIS_STEPS}
    if "gather" not in steps:
        return present
    job, component, values, refs = steps["gather"]
    where = f"job `{job}` ({component})"
    _check_parameters("gather", values, where)
    constructor = steps["constructor"][0]
    if refs.get("constructor") != constructor:
        raise RAIInputError(f"{where} `constructor`: must be the output of the constructor job `{constructor}`")
    by_job = {entry[0]: step for step, entry in steps.items()}
    gathered = set()
    for name in sorted(values):
        if name.startswith("insight_"):
            step = by_job.get(refs.get(name, ""))
            if step not in ANALYSIS_STEPS:
                raise RAIInputError(f"{where} `{name}`: {values[name]!r} is not the output of an analysis job")
            gathered.add(step)
            result.mapped.append(f"job `{job}` `{name}` -> `{step}` (the step's section)")
    for step in sorted(present - gathered):
        result.unmapped.append(f"job `{steps[step][0]}`: not gathered into the dashboard: not included (as in Azure)")
    return gathered


def _convert_constructor(entry: Job, pipeline_dir: Path, out_dir: Path, result: Conversion) -> None:
    job, component, values, refs = entry
    where = f"job `{job}` ({component})"
    _check_parameters("constructor", values, where)
    config = result.config
    missing = [n for n in ("task_type", "target_column_name", "train_dataset", "test_dataset") if n not in values]
    if missing:
        raise RAIInputError(f"{where} `{missing[0]}`: missing; the constructor needs it")
    if "title" in values:
        config["name"] = str(values["title"])
    for parameter in AZURE_PARAMETERS["constructor"]:
        if parameter.form != "input" or parameter.name not in values or parameter.role in config:
            continue
        name, role = parameter.name, parameter.role
        local, described = (
            (None, f"job `{refs[name]}`'s output") if name in refs else _input_path(values[name], pipeline_dir)
        )
        if local is not None and role != "model":
            config[role] = _relative(local, out_dir)
            result.mapped.append(f"job `{job}` `{name}` -> `{role}`: {config[role]}")
            continue
        what = (
            "the model saved with skops (or joblib/pickle, with allow_pickle)"
            if role == "model"
            else "a Parquet or CSV file"
        )
        config[role] = f"{PLACEHOLDER}: {what} (Azure's `{name}`: {described})"
        result.placeholders.append(role)
    if "model" not in config:
        config["model"] = f"{PLACEHOLDER}: the model saved with skops (Azure's constructor names no model input)"
        result.placeholders.append("model")
    parameters = {k: v for k, v in values.items() if (azure_parameter("constructor", k) or _NO_INPUT).form != "input"}
    read = read_options("constructor", parameters, where=where, strict=True)
    config.update(read.options)
    _record(result, job, read)


_NO_INPUT = AzureParameter("", "", None, "", "")


def _convert_scorecard(
    entry: Job, pipeline_dir: Path, out_dir: Path, result: Conversion, *, pdf_config: str | Path | None
) -> tuple[Path | str, str] | None:
    """The scorecard job's config (read, checked, referred to); returns its cohort file (a path,
    or how Azure names one not found here) and where it was named."""
    from rai_audit.core.scorecard_config import parse_scorecard_config

    job, component, values, refs = entry
    where = f"job `{job}` ({component})"
    _check_parameters("scorecard", values, where)
    config = result.config
    path: Path | None
    if pdf_config is not None:
        path, at = Path(pdf_config), f"--pdf-config {pdf_config}"
    elif "pdf_generation_config" in values:
        path, described = _input_path(values["pdf_generation_config"], pipeline_dir)
        at = f"{where} `pdf_generation_config` {path}"
    else:
        raise RAIInputError(f"{where} `pdf_generation_config`: missing; the scorecard needs it")
    if path is None:
        config["scorecard"] = {"config": f"{PLACEHOLDER}: Azure's pdf_generation_config ({described}: not found here)"}
        result.placeholders.append("scorecard.config")
    else:
        try:
            parsed = parse_scorecard_config(path)
        except RAIInputError as err:
            raise RAIInputError(f"{at}: {err}") from None
        config["scorecard"] = {"config": _relative(path, out_dir)}
        result.mapped.append(
            f"job `{job}` `pdf_generation_config` -> `scorecard.config`: {config['scorecard']['config']}"
        )
        sensitive = (parsed.get("fairness") or {}).get("sensitive_features") or []
        if sensitive:
            config["sensitive_features"] = list(sensitive)
            result.mapped.append(
                f"the scorecard config's `Fairness.sensitive_features` -> `sensitive_features`: {sensitive} (the "
                "dashboard's fairness views too)"
            )
    if "predefined_cohorts_json" not in values:
        return None
    local, described = _input_path(values["predefined_cohorts_json"], pipeline_dir)
    return (local if local is not None else described), f"{where} `predefined_cohorts_json`"


def _convert_cohorts(source: Path | str, at: str, out_dir: Path, result: Conversion) -> None:
    from rai_audit.core.cohorts import load_cohorts

    config = result.config
    if not isinstance(source, Path):  # the job's file is not here
        config["cohorts"] = f"{PLACEHOLDER}: Azure's predefined_cohorts_json ({source}: not found here)"
        result.placeholders.append("cohorts")
        return
    try:
        loaded = load_cohorts(source)
    except RAIInputError as err:
        raise RAIInputError(f"{at} {source}: {err}") from None
    config["cohorts"] = _relative(source, out_dir)
    result.mapped.append(f"{at} -> `cohorts`: {config['cohorts']} ({len(loaded)} cohorts)")


def _set(config: dict[str, Any], key: str, value: Any, out_dir: Path) -> None:
    """``--set key=value``: a config key (``step.option`` inside a step's section); a path key's
    relative path is the current folder's, written relative to the output's folder."""
    if key in PATH_KEYS or key in ("cohorts", "scorecard.config"):
        if isinstance(value, str) and "://" not in value:
            value = _relative(Path(value), out_dir)
    parts = key.split(".")
    target = config
    for part in parts[:-1]:
        if part in (*ANALYSIS_STEPS, "scorecard") and not isinstance(target.get(part), dict):
            # A section sets a step's options; a typo must not add a step the pipeline has not.
            raise RAIInputError(f"--set {key}: the pipeline has no {part} job")
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise RAIInputError(f"--set {key}: `{part}` is not a section of the config")
    target[parts[-1]] = value


def _validate(config: dict[str, Any], out_dir: Path) -> None:
    """Check the converted config as ``rai-audit run`` will (but the files it names, which may
    be placeholders still, and the data's columns)."""
    from rai_audit.config import resolve_config

    checked = copy.deepcopy(config)
    scorecard = checked.get("scorecard")
    if isinstance(scorecard, dict) and str(scorecard.get("config", "")).startswith(PLACEHOLDER):
        checked.pop("scorecard")
    if str(checked.get("cohorts", "")).startswith(PLACEHOLDER):
        checked.pop("cohorts")
    try:
        resolve_config(checked, base_dir=out_dir, check_paths=False)
    except RAIInputError as err:
        raise RAIInputError(f"the converted config is refused: {err}") from None


# --- the command ---------------------------------------------------------------------------------

KEY_ORDER = (
    "name",
    *PATH_KEYS,
    "target_column",
    "task_type",
    "classes",
    "categorical_features",
    "dropped_features",
    "sensitive_features",
    "sample_size",
    "random_state",
    "cohorts",
    *ANALYSIS_STEPS,
    "scorecard",
)


def config_text(result: Conversion, source: Path) -> str:
    """The converted config as YAML, headed by what to fill in and what was not mapped."""
    ordered = {k: result.config[k] for k in KEY_ORDER if k in result.config}
    ordered.update({k: v for k, v in result.config.items() if k not in ordered})
    lines = [f"# Converted by `rai-audit from-azure` from the Azure ML pipeline job {source.name}."]
    if result.placeholders:
        lines.append(
            f"# Fill in before `rai-audit run`: {', '.join(result.placeholders)} (values starting {PLACEHOLDER!r})."
        )
    if result.unmapped:
        lines.append("# Not mapped (no rai-audit equivalent):")
        lines += [f"#   {line}" for line in result.unmapped]
    body = yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=110)
    return "\n".join(lines) + "\n" + body


def _set_argument(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE (e.g. model=model.skops), got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not YAML: {err}") from None


def add_command(sub: Any) -> None:
    """``rai-audit from-azure``: the subcommand's arguments (``sub``: the CLI's subparsers)."""
    parser = sub.add_parser(
        "from-azure",
        help="convert an Azure ML Responsible AI pipeline job (YAML) into an audit config",
        description="Write the audit config an Azure ML pipeline job of Responsible AI components stands "
        "for; print what was mapped, what has no equivalent (and why) and what to fill in.",
    )
    parser.add_argument("pipeline", help="the Azure ML pipeline job YAML")
    parser.add_argument("--output", required=True, help="the audit config to write (YAML)")
    parser.add_argument("--pdf-config", default=None, help="Azure's scorecard pdf_generation_config (JSON)")
    parser.add_argument("--cohorts", default=None, help="Azure's predefined_cohorts_json (JSON)")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        type=_set_argument,
        default=[],
        metavar="KEY=VALUE",
        help="set a config key (model, train_data, test_data, sample_size, causal.train_sample_size, ...); "
        "paths are relative to the current folder",
    )
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> None:
    output = Path(args.output)
    result = convert(
        args.pipeline, output=output, pdf_config=args.pdf_config, cohorts=args.cohorts, sets=dict(args.sets)
    )
    text = config_text(result, Path(args.pipeline))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    out = sys.stdout
    out.write(f"wrote {output} from {args.pipeline}\n")
    out.write(f"mapped ({len(result.mapped)}):\n" + "".join(f"  {line}\n" for line in result.mapped))
    out.write(
        f"not mapped ({len(result.unmapped)}), with the reason:\n" + "".join(f"  {line}\n" for line in result.unmapped)
    )
    if result.placeholders:
        out.write(f"fill in before `rai-audit run` (or give them with --set): {', '.join(result.placeholders)}\n")
