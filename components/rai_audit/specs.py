"""Every step's options, each declared once: type, default, allowed values, help and Azure ML name.

A step's options class (a frozen dataclass) is its spec, in the habit of TFX's
``ComponentSpec``. Everything else is derived from it: the KFP component's signature and
docstring (``scripts/generate-kfp-steps.py`` writes ``kfp_steps.py``), the pipeline's and
the Argo template's parameters, the step's command line (``add_arguments``), the audit
config reader and the README's option tables. This module imports no heavy library, so
Argo output, the config reader and the CLI's help need neither KFP nor the steps' libraries.

Parameters (KFP, Argo, the command line) cannot hold null, so an option whose default has
no parameter form (None, ``"auto"``, a number where the parameter is a list) says which
parameter value stands for its default (``unset``): ``[]``, ``""`` or ``{}`` almost
everywhere, and ``"null"`` for the one option passed as JSON text (Azure's encoding). The same
value means "not given" in every target; ``from_parameter`` and ``to_parameter`` translate.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from rai_audit.core._errors import RAIInputError
from rai_audit.core.options import DEFAULT_MIN_GROUP_SIZE, check_min_ints, check_n_jobs, check_name_lists, check_shard

ANALYSIS_STEPS = ("error_analysis", "explainer", "counterfactual", "causal")

# The compiled variants checked in under pipelines/ (file name -> how it is built): the full
# audit (archived, compared with the model's previous audit, registration gated on the
# scorecard), the model overview alone, and the flows of Azure ML's Responsible AI dashboard,
# each ending in a scorecard (model overview and fairness come with every pipeline: the
# constructor and gather compute them; data analysis too).
PIPELINE_OPTIONS = {
    "audit": dict(
        steps=ANALYSIS_STEPS,
        explainer_shards=2,
        counterfactual_shards=2,
        with_scorecard=True,
        gate_registration=True,
        with_publish=True,
    ),
    "overview": dict(steps=(), name="rai-audit-overview"),
    "overview_error_analysis": dict(
        steps=("error_analysis",), name="rai-audit-overview-error-analysis", with_scorecard=True
    ),
    "overview_fairness": dict(steps=(), name="rai-audit-overview-fairness", with_scorecard=True),
    "data_analysis_causal": dict(steps=("causal",), name="rai-audit-data-analysis-causal", with_scorecard=True),
    "interpretability_causal": dict(
        steps=("explainer", "causal"), name="rai-audit-interpretability-causal", with_scorecard=True
    ),
    "error_analysis_counterfactuals": dict(
        steps=("error_analysis", "counterfactual"), name="rai-audit-error-analysis-counterfactuals", with_scorecard=True
    ),
}

TaskType = Literal["binary_classification", "multiclass_classification", "regression", "classification"]
TASK_TYPES: tuple[str, ...] = get_args(TaskType)
DesiredOutcome = Literal["increase", "decrease"]
DESIRED_OUTCOMES: tuple[str, ...] = get_args(DesiredOutcome)
EXPLAINER_METHODS = ("auto", "tree", "linear", "mimic")
SAMPLE_OR_ALL = ("sample", "all")
COUNTERFACTUAL_ENGINES = ("batched", "dice")
COUNTERFACTUAL_METHODS = ("random", "genetic", "kdtree")
NUISANCE_MODELS = ("linear", "automl")
MODEL_PROTOCOLS = ("v2", "mlflow")
HETEROGENEITY_MODELS = ("linear", "forest")
# shap's linear explainer silently subsamples a larger background to 100 rows, so the
# explainer takes at most 100 and records exactly the rows it used.
MAX_BACKGROUND = 100
# Test rows dashboard.html carries for the views it computes itself: ~1 MB of page at 14 features.
DEFAULT_DASHBOARD_ROWS = 5000

# Where an option is a parameter: the KFP component, the pipeline, the Argo template, the
# step's command line, the audit config.
TARGETS = frozenset({"kfp", "pipeline", "argo", "cli", "config"})
_NO_UNSET = object()
PARAMETER_TYPES = (bool, int, float, str, list, dict)


@dataclass(frozen=True)
class OptionSpec:
    """One option of a step, as every target sees it."""

    step: str
    name: str
    default: Any  # the options class's default (dataclasses.MISSING when required)
    help: str
    parameter_type: type  # bool, int, float, str, list or dict
    parameter_default: Any  # the parameter value that stands for ``default``
    choices: tuple[str, ...] | None = None
    # Azure ML's names for it (its Responsible AI components' parameters), read wherever an
    # audit config is; their value forms are rai_audit.azure's.
    azure: tuple[str, ...] = ()
    json_text: bool = False  # the parameter holds the value's JSON text
    required: bool = False
    shared: bool = False  # one pipeline/Argo parameter for every step (random_state)
    targets: frozenset[str] = TARGETS

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parameter_name(self) -> str:
        """The pipeline's and the Argo template's name: the step's prefix but for the
        constructor's and shared options."""
        return self.name if self.shared or self.step == "constructor" else f"{self.step}_{self.name}"

    def from_parameter(self, value: Any) -> Any:
        """A parameter value (KFP, Argo, command line) as the option's value."""
        if _same(value, self.parameter_default) and not self.required:
            return copy.deepcopy(self.default)
        if self.json_text and isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as err:
                raise RAIInputError(f"`{self.name}` must be JSON text, got {value!r}: {err}") from None
        return value

    def to_parameter(self, value: Any) -> Any:
        """An option's value (from the audit config) as the parameter value."""
        if not self.required and _same(value, self.default):
            return copy.deepcopy(self.parameter_default)
        if self.json_text:
            return json.dumps(value)
        if self.parameter_type is list and not isinstance(value, list):
            return [value]  # one value for all (treatment_cost)
        if self.parameter_type is str and not isinstance(value, str):
            return str(value)  # labels travel as text and are matched as text
        return value

    def as_text(self, value: Any) -> str:
        """A parameter value as an Argo parameter / command-line argument holds it."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, dict)):
            return json.dumps(value)
        return str(value)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # False is not 0, 0.0 is not 0


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    choices: tuple[str, ...] | None = None,
    azure: str | tuple[str, ...] = (),
    unset: Any = _NO_UNSET,
    parameter_type: type | None = None,
    json_text: bool = False,
    required: bool = False,
    shared: bool = False,
    targets: frozenset[str] = TARGETS,
) -> Any:
    """A dataclass field with what every target needs to know of it.

    ``unset``: the parameter value standing for ``default`` where the default has no
    parameter form. ``parameter_type``: only for a required option (no default to infer from).
    """
    meta = dict(
        help=help,
        choices=choices,
        azure=(azure,) if isinstance(azure, str) else tuple(azure),
        unset=unset,
        parameter_type=parameter_type,
        json_text=json_text,
        required=required,
        shared=shared,
        targets=targets,
    )
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"rai": meta})
    return field(default=default, metadata={"rai": meta})


@functools.cache  # read once per class: every options instance checks its choices with it
def option_specs(options_class: type) -> tuple[OptionSpec, ...]:
    """The options of a step's options class, in declaration order."""
    found = []
    for f in dataclasses.fields(options_class):
        meta = f.metadata["rai"]
        required = meta["required"] or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if meta["unset"] is not _NO_UNSET:
            parameter_default = meta["unset"]
        elif meta["json_text"]:
            parameter_default = json.dumps(default)
        else:
            parameter_default = default
        parameter_type = meta["parameter_type"] or type(parameter_default)
        if parameter_type not in PARAMETER_TYPES:
            raise TypeError(f"{options_class.__name__}.{f.name}: no parameter type for default {default!r}")
        found.append(
            OptionSpec(
                step=STEP_OF[options_class.__name__],
                name=f.name,
                default=default,
                help=meta["help"],
                parameter_type=parameter_type,
                parameter_default=None if required else parameter_default,
                choices=meta["choices"],
                azure=meta["azure"],
                json_text=meta["json_text"],
                required=required,
                shared=meta["shared"],
                targets=meta["targets"],
            )
        )
    return tuple(found)


def options_from_parameters(options_class: type, values: dict[str, Any]) -> Any:
    """The options instance from parameter values (a KFP component's, a command line's)."""
    specs = option_specs(options_class)
    return options_class(**{o.name: o.from_parameter(values[o.name]) for o in specs if o.name in values})


def check_choices(options: Any) -> None:
    """Each option with allowed values holds one of them."""
    options_class: type = type(options)
    for o in option_specs(options_class):
        value = getattr(options, o.name)
        if o.choices is not None and value not in o.choices:
            raise RAIInputError(f"`{o.name}` must be one of {list(o.choices)}, got {value!r}")


def _check_alpha(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise RAIInputError(f"`alpha` must be a number between 0 and 1, got {value!r}")


RANDOM_STATE_HELP = "Seed of every step's randomness (sample, trees, searches, bootstrap)."
# The pipeline sets the shard of each parallel task itself.
SHARD_TARGETS = frozenset({"kfp", "cli"})


@dataclass(frozen=True)
class ConstructorOptions:
    """What the user tells the constructor about the model and the data.

    ``task_type="classification"`` (Azure ML's name) becomes binary or multiclass from the
    number of classes. ``dropped_features`` stay in the data (for cohorts and sensitive
    features) but are not given to the model. ``sample_size`` (0: all rows) picks a
    stratified, seeded sample of test rows for the expensive per-row steps.

    ``desired_outcome`` says which way is good for the people the model decides on:
    ``increase`` (more of the positive label, or a higher regression target) or ``decrease``
    (a lender predicting default); causal policies, counterfactual defaults and the wording
    follow it. ``immutable_features`` (and every sensitive feature) are never varied by
    counterfactuals nor recommended as causal levers unless a step's options name them
    explicitly. Groups of fewer than ``min_group_size`` test rows are shown, flagged and left
    out of fairness differences and ratios.
    """

    target_column: str = option(help="Name of the target column.", parameter_type=str, azure="target_column_name")
    task_type: str = option(help="The model's task.", choices=TASK_TYPES, parameter_type=str, azure="task_type")
    categorical_features: list[str] | None = option(
        None,
        unset=[],
        help="Categorical feature names; empty: inferred from the dtypes.",
        azure="categorical_column_names",
    )
    sensitive_features: list[str] = option([], help="Features to assess fairness over.")
    dropped_features: list[str] = option([], help="Columns kept for cohorts and fairness but not given to the model.")
    classes: list[Any] | None = option(
        None, unset=[], help="The class labels in order; empty: the model's classes.", azure="classes"
    )
    positive_label: Any = option(
        None,
        unset="",
        help="The positive class of a binary classifier (as text, e.g. >50K or 1); empty: the second class.",
    )
    cohorts: Any = option(
        None,
        unset=[],
        help="Cohort definitions (rai-audit or Azure ML format).",
        targets=frozenset({"kfp", "pipeline"}),  # a file on the command line and in Argo
    )
    sample_size: int = option(
        0,
        help="Test rows sampled (stratified, seeded) for per-row steps; 0: all.",
        azure="maximum_rows_for_test_dataset",
    )
    dashboard_rows: int = option(
        DEFAULT_DASHBOARD_ROWS,
        help="Test rows dashboard.html carries for the views it computes itself (a seeded sample when there are "
        "more); 0: none.",
    )
    random_state: int = option(0, help=RANDOM_STATE_HELP, shared=True)
    skops_trusted_types: list[str] = option([], help="Types to trust when loading a .skops model.")
    allow_pickle: bool = option(
        False, help="Load a joblib/pickle model, which runs code stored in the file."
    )  # a joblib/pickle model runs its own code when loaded
    desired_outcome: str = option(
        "increase",
        choices=DESIRED_OUTCOMES,
        help="increase: more of the positive label or a higher target is good for the people the model decides "
        "on; decrease: less is.",
    )
    immutable_features: list[str] = option([], help="Features counterfactuals and causal policies never change.")
    min_group_size: int = option(
        DEFAULT_MIN_GROUP_SIZE, help="Groups with fewer test rows are flagged and left out of fairness differences."
    )
    # A model served over HTTP instead of a model file (rai_audit.core.served_model): the
    # config's `model: {endpoint, protocol, name, headers_from_env, ...}` sets these.
    model_endpoint: str = option(
        "", help="URL of a served model (e.g. https://host:8080); empty: the model file is audited."
    )
    model_protocol: str = option(
        "v2",
        choices=MODEL_PROTOCOLS,
        help="v2: the Open Inference Protocol (KServe V2, MLServer, Triton); mlflow: MLflow's /invocations.",
    )
    model_name: str = option("", help="The served model's name (v2: /v2/models/<name>/infer).")
    model_headers_from_env: dict[str, str] = option(
        {},
        help="Request header -> the environment variable holding its value, e.g. {Authorization: MODEL_TOKEN} "
        "(set from a Kubernetes secret); values are never written anywhere.",
    )
    model_batch_size: int = option(512, help="Rows per request to the served model.")
    model_concurrency: int = option(4, help="Requests to the served model at a time.")
    model_timeout_s: float = option(60.0, help="Seconds to wait for each answer of the served model.")
    model_retries: int = option(
        3, help="Further attempts after a connection error, a timeout, a 5xx or a 429 (exponential backoff)."
    )
    # An MLflow model from a registry or a run, loaded by the constructor in its own task (on a
    # cluster too, where no importer reads such a URI): the config's `model: models:/...` sets it.
    mlflow_model_uri: str = option(
        "", help="An MLflow models:/ or runs:/ URI to audit instead of the model artifact; empty: the artifact."
    )
    mlflow_tracking_uri: str = option(
        "", help="The MLflow tracking server that resolves mlflow_model_uri; empty: $MLFLOW_TRACKING_URI."
    )

    def __post_init__(self) -> None:
        if self.desired_outcome not in DESIRED_OUTCOMES:  # the choices, with what they mean
            raise RAIInputError(
                f"`desired_outcome` must be one of {list(DESIRED_OUTCOMES)} (which way of the "
                f"positive label or target is good), got {self.desired_outcome!r}"
            )
        check_choices(self)
        if not isinstance(self.target_column, str) or not self.target_column:
            raise RAIInputError(f"`target_column` must be a column name, got {self.target_column!r}")
        if not isinstance(self.dashboard_rows, int) or self.dashboard_rows < 0:
            raise RAIInputError(
                f"`dashboard_rows` must be an integer >= 0 (0: no rows in the page), got {self.dashboard_rows!r}"
            )
        if not isinstance(self.sample_size, int) or self.sample_size < 0:
            raise RAIInputError(f"`sample_size` must be an integer >= 0 (0 means every row), got {self.sample_size!r}")
        check_name_lists(self, ("immutable_features",))
        check_min_ints(self, {"min_group_size": 1})
        if self.model_endpoint:
            self.endpoint()  # checks the endpoint's options
        if self.mlflow_model_uri and not self.mlflow_model_uri.startswith(("models:/", "runs:/")):
            raise RAIInputError(
                f"`mlflow_model_uri` must be a models:/... or runs:/... URI, got {self.mlflow_model_uri!r}"
            )
        if self.mlflow_model_uri and self.model_endpoint:
            raise RAIInputError("give one model: `mlflow_model_uri` or `model_endpoint`, not both")
        if self.mlflow_tracking_uri and not self.mlflow_model_uri:
            raise RAIInputError(
                "`mlflow_tracking_uri` applies to a model given as `mlflow_model_uri` (models:/, runs:/)"
            )

    def endpoint(self) -> Any:
        """The served model's endpoint (rai_audit.core.served_model.Endpoint), or None."""
        if not self.model_endpoint:
            return None
        from rai_audit.core.served_model import Endpoint

        return Endpoint(
            url=self.model_endpoint,
            protocol=self.model_protocol,
            name=self.model_name,
            headers_from_env=dict(self.model_headers_from_env),
            batch_size=self.model_batch_size,
            concurrency=self.model_concurrency,
            timeout_s=self.model_timeout_s,
            retries=self.model_retries,
        )


@dataclass(frozen=True)
class ErrorAnalysisOptions:
    """Parameters of the error tree (Azure ML's names and defaults) and the heatmap.

    ``tree_features`` empty means every feature the model is given (never a dropped one).
    ``heatmap_features`` (Azure's ``filter_features``) names one or two features; empty
    means no heatmap.
    """

    max_depth: int = option(3, help="Maximum depth of the error tree.", azure="max_depth")
    num_leaves: int = option(31, help="Maximum number of leaves of the error tree.", azure="num_leaves")
    min_child_samples: int = option(20, help="Minimum number of rows in a leaf.", azure="min_child_samples")
    tree_features: list[str] = option([], help="Features the tree may split on; empty: all.")
    heatmap_features: list[str] = option(
        [], azure="filter_features", help="One or two features for the error heatmap; empty: no heatmap."
    )
    heatmap_bins: int = option(8, help="Number of quantile bins of a numeric heatmap feature.")
    top_leaves: int = option(3, help="How many worst and best leaves to offer as cohorts.")
    random_state: int = option(0, help=RANDOM_STATE_HELP, shared=True)

    def __post_init__(self) -> None:
        check_min_ints(
            self, {"max_depth": 1, "num_leaves": 2, "min_child_samples": 1, "heatmap_bins": 2, "top_leaves": 1}
        )
        check_name_lists(self, ("tree_features", "heatmap_features"))
        if len(self.heatmap_features) > 2 or len(set(self.heatmap_features)) != len(self.heatmap_features):
            raise RAIInputError(
                f"`heatmap_features` must name at most two different features, got {list(self.heatmap_features)}"
            )


@dataclass(frozen=True)
class ExplainerOptions:
    """How to explain: ``method`` auto picks tree or linear SHAP where the model allows it
    and a mimic otherwise; ``rows`` sample uses the constructor's recorded sample."""

    method: str = option(
        "auto",
        choices=EXPLAINER_METHODS,
        help="How to explain; auto: tree or linear SHAP where possible, else a mimic.",
    )
    rows: str = option("sample", choices=SAMPLE_OR_ALL, help="Rows explained; sample: the constructor's sample.")
    shard_index: int = option(0, help="Which shard of the rows to explain.", targets=SHARD_TARGETS)
    shard_count: int = option(1, help="Into how many shards the rows are split.", targets=SHARD_TARGETS)
    background_size: int = option(
        MAX_BACKGROUND, help=f"Train rows used as the background of linear SHAP (seeded, at most {MAX_BACKGROUND})."
    )
    mimic_train_size: int = option(5000, help="Train rows the mimic surrogate learns from (seeded).")
    random_state: int = option(0, help=RANDOM_STATE_HELP, shared=True)

    def __post_init__(self) -> None:
        check_choices(self)
        check_min_ints(self, {"background_size": 1, "mimic_train_size": 10})
        check_shard(self)
        if self.background_size > MAX_BACKGROUND:
            raise RAIInputError(
                f"`background_size` must be at most {MAX_BACKGROUND} (shap's linear explainer uses "
                f"no more), got {self.background_size}"
            )


@dataclass(frozen=True)
class CounterfactualOptions:
    """Azure ML's parameters plus the engine, monotone features, a row selection, workers and shards.

    ``rows``: "sample" (the constructor's sample), "all", or a cohort name.
    ``desired_class``: "opposite" (binary), "better" (binary: the class the constructor's
    ``desired_outcome`` calls better) or a class label; ``desired_range``: [low, high] for
    regression. ``permitted_range``: feature -> [low, high] or allowed values.
    ``features_to_vary``: empty for every feature except the sensitive and immutable ones,
    which vary only when listed here.
    """

    total_CFs: int = option(10, help="Counterfactuals asked for per row.", azure="total_CFs")
    engine: str = option(
        "batched",
        choices=COUNTERFACTUAL_ENGINES,
        help="batched: a random search for all rows at once; dice: dice-ml row by row.",
    )
    method: str = option(
        "random", choices=COUNTERFACTUAL_METHODS, help="dice-ml's method (with engine dice).", azure="method"
    )
    desired_class: Any = option(
        "opposite",
        help="opposite (binary), better (binary: the class desired_outcome calls better) or the class to reach.",
        azure="desired_class",
    )
    desired_range: list[float] = option(
        [], help="[low, high] the prediction must reach (regression).", azure="desired_range"
    )
    features_to_vary: list[str] = option(
        [], help="Features that may change; empty: all but the sensitive and immutable ones.", azure="features_to_vary"
    )
    permitted_range: dict[str, list[Any]] = option(
        {}, help="Feature -> [low, high] or the allowed values.", azure="permitted_range"
    )
    increase_only: list[str] = option([], help="Numeric features that may only increase (e.g. age).")
    decrease_only: list[str] = option([], help="Numeric features that may only decrease.")
    rows: str = option("sample", help="sample (the constructor's sample), all, or a cohort name.")
    n_jobs: int = option(-1, help="Worker processes; -1: all cores, each worker given at least 1,000 rows.")
    shard_index: int = option(0, help="Which shard of the rows to search.", targets=SHARD_TARGETS)
    shard_count: int = option(1, help="Into how many shards the rows are split.", targets=SHARD_TARGETS)
    random_state: int = option(0, help=RANDOM_STATE_HELP, shared=True)

    def __post_init__(self) -> None:
        # Labels travel as text (KFP parameters are typed); they are matched as text.
        object.__setattr__(self, "desired_class", str(self.desired_class))
        check_choices(self)
        check_min_ints(self, {"total_CFs": 1})
        check_n_jobs(self)
        check_shard(self)
        # Types first: a number or nested list here would fail below with a TypeError.
        check_name_lists(self, ("features_to_vary", "increase_only", "decrease_only"))
        if not isinstance(self.desired_range, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.desired_range
        ):
            raise RAIInputError(f"`desired_range` must be [low, high] (two numbers), got {self.desired_range!r}")
        if not isinstance(self.permitted_range, dict) or not all(
            isinstance(v, (list, tuple)) for v in self.permitted_range.values()
        ):
            raise RAIInputError(
                "`permitted_range` must be a mapping of feature -> [low, high] or allowed values, "
                f"got {self.permitted_range!r}"
            )
        if self.desired_range and (len(self.desired_range) != 2 or self.desired_range[0] > self.desired_range[1]):
            raise RAIInputError(f"`desired_range` must be [low, high] with low <= high, got {self.desired_range!r}")
        both = sorted(set(self.increase_only) & set(self.decrease_only))
        if both:
            raise RAIInputError(f"features {both} cannot be both `increase_only` and `decrease_only`")


@dataclass(frozen=True)
class CausalOptions:
    """Azure ML's parameters, plus the train sample, the rows for local effects and the
    number of top recommendations kept in result.json.

    ``heterogeneity_features``: None = all features (Azure's default), [] = none (one
    constant effect). ``treatment_cost``: one value for every treatment or one per
    treatment (marginal cost per unit of a numeric treatment; cost of any non-control
    level of a categorical one). ``categories``: "auto", or categorical treatment ->
    its levels, the first being the control.
    """

    treatment_features: list[str] = option(
        [],
        required=True,
        help="Features whose effect on the outcome is estimated, e.g. [hours-per-week].",
        azure="treatment_features",
    )
    heterogeneity_features: list[str] | None = option(
        None,
        json_text=True,
        help='Features the effect may vary with, as JSON text (Azure\'s encoding): "null": all, "[]": none '
        "(one constant effect).",
        azure="heterogeneity_features",
    )
    nuisance_model: str = option(
        "linear", choices=NUISANCE_MODELS, help="Model of the nuisance functions.", azure="nuisance_model"
    )
    heterogeneity_model: str = option(
        "linear", choices=HETEROGENEITY_MODELS, help="Model of how the effect varies.", azure="heterogeneity_model"
    )
    alpha: float = option(0.05, help="Significance level of the confidence intervals.", azure="alpha")
    upper_bound_on_cat_expansion: int = option(
        50,
        help="Most levels a categorical treatment may have; other categorical features keep only this many "
        "(their most frequent) in the fit, the rest grouped as (other).",
        azure="upper_bound_on_cat_expansion",
    )
    treatment_cost: float | list[float] = option(
        0.0, unset=[], help="One cost for all treatments, or one per treatment; empty: 0.", azure="treatment_cost"
    )
    min_tree_leaf_samples: int = option(2, help="Minimum rows in a policy tree leaf.", azure="min_tree_leaf_samples")
    max_tree_depth: int = option(2, help="Depth of the policy tree.", azure="max_tree_depth")
    skip_cat_limit_checks: bool = option(
        False, help="Fit categorical treatments with fewer than 10 rows of a level.", azure="skip_cat_limit_checks"
    )
    categories: str | dict[str, list[Any]] = option(
        "auto",
        unset={},
        help="Categorical treatment -> its levels, the control first; empty: inferred.",
        azure="categories",
    )
    train_sample_size: int = option(10000, help="Train rows the fit uses (seeded); 0: all.")
    rows: str = option(
        "sample", choices=SAMPLE_OR_ALL, help="Rows given local effects; sample: the constructor's sample."
    )
    top_recommendations: int = option(10, help="Recommendations per treatment kept in the result.")
    n_jobs: int = option(-1, help="Treatments fitted in parallel; -1: all cores.", azure="n_jobs")
    shard_index: int = option(0, help="Which shard of the treatments to fit.", targets=SHARD_TARGETS)
    shard_count: int = option(1, help="Into how many shards the treatments are split.", targets=SHARD_TARGETS)
    # Azure's causal seed: rai-audit has one seed for every step (rai_audit.azure reads it).
    random_state: int = option(0, help=RANDOM_STATE_HELP, shared=True, azure="random_state")

    def __post_init__(self) -> None:
        if not isinstance(self.treatment_features, list) or not self.treatment_features:
            raise RAIInputError(
                f"`treatment_features` must be a non-empty list of feature names, got {self.treatment_features!r}"
            )
        check_name_lists(self, ("treatment_features",))  # names before counting them (hashable)
        repeated = sorted(f for f, n in Counter(self.treatment_features).items() if n > 1)
        if repeated:
            raise RAIInputError(f"`treatment_features` names {repeated} more than once")
        if self.heterogeneity_features is not None and not (
            isinstance(self.heterogeneity_features, list)
            and all(isinstance(f, str) for f in self.heterogeneity_features)
        ):
            raise RAIInputError(
                "`heterogeneity_features` must be a list of feature names or null (all), "
                f"got {self.heterogeneity_features!r}"
            )
        check_choices(self)
        _check_alpha(self.alpha)
        check_min_ints(
            self,
            {
                "upper_bound_on_cat_expansion": 1,
                "min_tree_leaf_samples": 1,
                "max_tree_depth": 1,
                "train_sample_size": 0,
                "top_recommendations": 1,
            },
        )
        check_n_jobs(self)
        check_shard(self)
        if not isinstance(self.skip_cat_limit_checks, bool):
            raise RAIInputError(f"`skip_cat_limit_checks` must be true or false, got {self.skip_cat_limit_checks!r}")
        self.costs()  # checks the shape
        if self.categories != "auto" and not (
            isinstance(self.categories, dict)
            and all(isinstance(v, list) and len(v) >= 2 for v in self.categories.values())
        ):
            raise RAIInputError(
                '`categories` must be "auto" or a mapping of categorical treatment -> its '
                f"levels (at least two, the control first), got {self.categories!r}"
            )

    def costs(self) -> dict[str, float]:
        """The cost of each treatment."""
        cost = self.treatment_cost
        values = cost if isinstance(cost, list) else [cost]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise RAIInputError(f"`treatment_cost` must be a number or a list of numbers, got {cost!r}")
        if isinstance(cost, list) and len(cost) not in (1, len(self.treatment_features)):
            raise RAIInputError(
                f"`treatment_cost` must have one value per treatment feature "
                f"({len(self.treatment_features)}), got {len(cost)}"
            )
        if len(values) == 1:
            values = values * len(self.treatment_features)
        return {f: float(v) for f, v in zip(self.treatment_features, values)}


@dataclass(frozen=True)
class ScorecardOptions:
    """``bootstrap``: resamples for confidence intervals (0: none); ``alpha``: 1 - their level."""

    bootstrap: int = option(200, help="Resamples for the targets' confidence intervals; 0: none.")
    alpha: float = option(0.05, help="One minus the confidence level of those intervals.")
    fail_on_missed_target: bool = option(False, help="Fail the task (and the run) when a target is missed.")
    sign: bool = option(
        False,
        help="Sign the PDF (PAdES) with the key and certificate of the files RAI_AUDIT_SIGNING_KEY and "
        "RAI_AUDIT_SIGNING_CERT name (default: the Kubernetes TLS secret rai-audit-signing, mounted).",
    )
    random_state: int = option(0, help=RANDOM_STATE_HELP, shared=True)

    def __post_init__(self) -> None:
        check_min_ints(self, {"bootstrap": 0})
        _check_alpha(self.alpha)


NOTIFY_ON = ("change", "every_failure")
NOTIFY_FORMATS = ("slack", "teams", "json")
DEFAULT_WEBHOOK_ENV = "RAI_AUDIT_WEBHOOK_URL"
# The notify step is not a parameter of the audit pipeline or the Argo template (yet): its
# options reach its command line and its KFP component only.
NOTIFY_TARGETS = frozenset({"kfp", "cli"})


@dataclass(frozen=True)
class NotifyOptions:
    """When and how the notify step posts a scorecard's verdict to a webhook.

    ``on``: ``change`` (the verdict or a target's verdict changed against the baseline audit,
    or a change target was missed) or ``every_failure``. The webhook's URL is never an option:
    it is read from the environment variable ``webhook_env`` names (on a cluster, set from a
    Kubernetes secret), so it is in no parameter, artifact or log.
    """

    on: str = option(
        "change",
        help="When to post: change (the verdict changed against the baseline audit, a target newly "
        "missed, a change target missed) or every_failure.",
        targets=NOTIFY_TARGETS,
    )
    format: str = option(
        "slack",
        help="The payload: slack (text and blocks), teams (a MessageCard) or json (the fields alone).",
        targets=NOTIFY_TARGETS,
    )
    webhook_env: str = option(
        DEFAULT_WEBHOOK_ENV, help="The environment variable holding the webhook URL.", targets=NOTIFY_TARGETS
    )
    model_version: str = option(
        "", help="The model version to name; empty: the scorecard config's.", targets=NOTIFY_TARGETS
    )
    pdf_url: str = option("", help="A link to the scorecard PDF (e.g. a presigned URL).", targets=NOTIFY_TARGETS)
    dashboard_url: str = option("", help="A link to the dashboard.", targets=NOTIFY_TARGETS)
    retries: int = option(3, help="Further attempts after a 5xx answer or a connection error.", targets=NOTIFY_TARGETS)
    backoff: float = option(
        1.0, help="Seconds before the first retry, doubled for each next one.", targets=NOTIFY_TARGETS
    )
    timeout: float = option(10.0, help="Seconds to wait for the webhook's answer.", targets=NOTIFY_TARGETS)
    fail_on_error: bool = option(
        False, help="Fail the task when the webhook could not be reached.", targets=NOTIFY_TARGETS
    )

    def __post_init__(self) -> None:
        # Checked here rather than as `choices`, which stand for an Argo enum this step does not have yet.
        for name, allowed in (("on", NOTIFY_ON), ("format", NOTIFY_FORMATS)):
            if getattr(self, name) not in allowed:
                raise RAIInputError(f"`{name}` must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if not isinstance(self.webhook_env, str) or not self.webhook_env:
            raise RAIInputError(f"`webhook_env` must name an environment variable, got {self.webhook_env!r}")
        check_min_ints(self, {"retries": 0})
        for name in ("backoff", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise RAIInputError(f"`{name}` must be a number of seconds >= 0, got {value!r}")
        if self.timeout == 0:
            raise RAIInputError("`timeout` must be more than 0 seconds")


# Each step's options class; gather has none.
OPTIONS: dict[str, type] = {
    "constructor": ConstructorOptions,
    "error_analysis": ErrorAnalysisOptions,
    "explainer": ExplainerOptions,
    "counterfactual": CounterfactualOptions,
    "causal": CausalOptions,
    "scorecard": ScorecardOptions,
}
# Steps whose options are not in the audit pipeline, the Argo template or the audit config.
STEP_ONLY_OPTIONS: dict[str, type] = {"notify": NotifyOptions}
STEP_OF = {cls.__name__: step for step, cls in {**OPTIONS, **STEP_ONLY_OPTIONS}.items()}


def step_options(step: str, target: str | None = None) -> list[OptionSpec]:
    """``step``'s options (those ``target`` takes, when given); none for a step without options."""
    options_class = OPTIONS.get(step) or STEP_ONLY_OPTIONS.get(step)
    if options_class is None:
        return []
    return [o for o in option_specs(options_class) if target is None or target in o.targets]
