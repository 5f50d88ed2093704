"""Pipeline builders: the audit composes constructor -> chosen analysis steps -> gather.

``build_audit_pipeline(steps)`` includes the analysis steps named in ``steps``; every
pipeline takes the parameters of every step (prefixed with the step's name), and those of
steps left out are unused, so one config format serves every variant.
"""

# No `from __future__ import annotations` here: KFP reads the annotations at decoration time.
import os
from collections.abc import Sequence

from kfp import dsl, kubernetes
from kfp.dsl import Artifact, Dataset, Model

from rai_audit.kfp_components import (
    causal,
    constructor,
    counterfactual,
    error_analysis,
    explainer,
    find_baseline,
    fingerprint_inputs,
    gather,
    merge_counterfactuals,
    merge_explanations,
    publish,
    register_model,
    scorecard,
)
from rai_audit.storage import ENV_ACCESS, ENV_ENDPOINT, ENV_REGION, ENV_SECRET

# The Kubernetes secret the publish step reads its S3 settings from on a cluster (name set
# when the pipeline is compiled; keys endpoint, access_key, secret_key, region).
S3_SECRET = os.environ.get("RAI_AUDIT_S3_SECRET", "rai-audit-s3")

ANALYSIS_STEPS = ("error_analysis", "explainer", "counterfactual", "causal")


def _s3_settings_from_secret(task) -> None:
    """On a cluster the task reads its S3 settings from the S3_SECRET Kubernetes secret."""
    kubernetes.use_secret_as_env(
        task,
        secret_name=S3_SECRET,
        secret_key_to_env={"endpoint": ENV_ENDPOINT, "access_key": ENV_ACCESS, "secret_key": ENV_SECRET},
    )
    kubernetes.use_secret_as_env(task, secret_name=S3_SECRET, secret_key_to_env={"region": ENV_REGION}, optional=True)


def _sharded(step, merge, output: str, constructor_output, shards: int, options: dict):
    """The step's output: one task, or ``shards`` tasks (dsl.ParallelFor) joined by ``merge``."""
    if shards == 1:
        return step(constructor=constructor_output, **options).outputs[output]
    with dsl.ParallelFor(items=list(range(shards))) as shard:
        part = step(constructor=constructor_output, shard_index=shard, shard_count=shards, **options)
    return merge(constructor=constructor_output, shards=dsl.Collected(part.outputs[output])).outputs[output]


def build_audit_pipeline(
    steps: Sequence[str] = ANALYSIS_STEPS,
    *,
    name: str = "rai-audit",
    explainer_shards: int = 1,
    counterfactual_shards: int = 1,
    with_scorecard: bool = False,
    gate_registration: bool = False,
    with_publish: bool = False,
    pipeline_root: str | None = None,
    run_times: bool = True,
):
    """The audit pipeline with the analysis ``steps`` (a subset of ``ANALYSIS_STEPS``).

    With ``explainer_shards`` or ``counterfactual_shards`` > 1 that step fans out over as
    many shards of rows (``dsl.ParallelFor``, one pod each on a cluster) and a merge joins them.
    ``with_scorecard`` adds the scorecard after gather; ``gate_registration`` then registers
    the model only when its scorecard passed (``dsl.If`` on the scorecard's ``passed``);
    ``with_publish`` archives bundle and scorecard in object storage (credentials from the
    ``S3_SECRET`` Kubernetes secret on a cluster, from the environment locally).
    ``pipeline_root`` (s3://, minio:// or gs://) is where a cluster keeps the artifacts.
    ``run_times`` stamps the run's creation and schedule times into the bundle; kfp.local
    (2.17) cannot resolve those placeholders (it fails with an IndexError), so local runs
    are built without them.
    """
    if pipeline_root is not None and pipeline_root.split("://")[0] not in ("s3", "minio", "gs"):
        raise ValueError(f"`pipeline_root` must be an s3://, minio:// or gs:// URI, got {pipeline_root!r}")
    if (gate_registration or with_publish) and not with_scorecard:
        raise ValueError("`gate_registration` and `with_publish` need `with_scorecard`")
    unknown = sorted(set(steps) - set(ANALYSIS_STEPS))
    if unknown:
        raise ValueError(f"`steps` must be among {list(ANALYSIS_STEPS)}, got {unknown}")
    for shards in (explainer_shards, counterfactual_shards):
        if not isinstance(shards, int) or shards < 1:
            raise ValueError(f"shard counts must be integers >= 1, got {shards!r}")

    @dsl.pipeline(name=name, description="Responsible AI audit of a tabular model", pipeline_root=pipeline_root)
    def audit_pipeline(
        model_uri: str,
        train_data_uri: str,
        test_data_uri: str,
        target_column: str,
        task_type: str,
        categorical_features: list = [],
        sensitive_features: list = [],
        dropped_features: list = [],
        classes: list = [],
        positive_label: str = "",
        cohorts: list = [],
        sample_size: int = 0,
        random_state: int = 0,
        skops_trusted_types: list = [],
        allow_pickle: bool = False,
        desired_outcome: str = "increase",
        immutable_features: list = [],
        min_group_size: int = 30,
        error_analysis_max_depth: int = 3,
        error_analysis_num_leaves: int = 31,
        error_analysis_min_child_samples: int = 20,
        error_analysis_tree_features: list = [],
        error_analysis_heatmap_features: list = [],
        error_analysis_heatmap_bins: int = 8,
        error_analysis_top_leaves: int = 3,
        explainer_method: str = "auto",
        explainer_rows: str = "sample",
        explainer_background_size: int = 100,
        explainer_mimic_train_size: int = 5000,
        counterfactual_total_CFs: int = 10,
        counterfactual_engine: str = "batched",
        counterfactual_method: str = "random",
        counterfactual_desired_class: str = "opposite",
        counterfactual_desired_range: list = [],
        counterfactual_features_to_vary: list = [],
        counterfactual_permitted_range: dict = {},
        counterfactual_increase_only: list = [],
        counterfactual_decrease_only: list = [],
        counterfactual_rows: str = "sample",
        counterfactual_n_jobs: int = 1,
        causal_treatment_features: list = [],
        causal_heterogeneity_features: str = "null",
        causal_nuisance_model: str = "linear",
        causal_heterogeneity_model: str = "linear",
        causal_alpha: float = 0.05,
        causal_upper_bound_on_cat_expansion: int = 50,
        causal_treatment_cost: list = [],
        causal_min_tree_leaf_samples: int = 2,
        causal_max_tree_depth: int = 2,
        causal_skip_cat_limit_checks: bool = False,
        causal_categories: dict = {},
        causal_train_sample_size: int = 10000,
        causal_rows: str = "sample",
        causal_top_recommendations: int = 10,
        causal_n_jobs: int = -1,
        scorecard_config: dict = {},
        scorecard_bootstrap: int = 200,
        scorecard_fail_on_missed_target: bool = False,
        publish_model_name: str = "model",
        publish_model_version: str = "0",
        publish_bucket: str = "rai-audit",
        publish_retention_mode: str = "",
        publish_retention_days: int = 0,
    ) -> Artifact:
        # A scheduled audit reads the same URIs each time while the model and data behind them
        # may change. KFP's cache sees the URI only, so an uncached task fingerprints the
        # content and the constructor takes the fingerprint as a parameter: same content and
        # parameters, the cached constructor output (same run id) and with it every cached
        # analysis; changed content, everything recomputes. The importers reuse the artifact
        # of a URI (reimport=False): a new one per run would change every cache key.
        model = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=False)
        model.set_display_name("import model")
        train = dsl.importer(artifact_uri=train_data_uri, artifact_class=Dataset, reimport=False)
        train.set_display_name("import train data")
        test = dsl.importer(artifact_uri=test_data_uri, artifact_class=Dataset, reimport=False)
        test.set_display_name("import test data")
        fingerprint = fingerprint_inputs(model=model.output, train_data=train.output, test_data=test.output)
        fingerprint.set_caching_options(False)  # it must read the content every run
        built = constructor(
            model=model.output,
            train_data=train.output,
            test_data=test.output,
            target_column=target_column,
            task_type=task_type,
            categorical_features=categorical_features,
            sensitive_features=sensitive_features,
            dropped_features=dropped_features,
            classes=classes,
            positive_label=positive_label,
            cohorts=cohorts,
            sample_size=sample_size,
            random_state=random_state,
            skops_trusted_types=skops_trusted_types,
            allow_pickle=allow_pickle,
            desired_outcome=desired_outcome,
            immutable_features=immutable_features,
            min_group_size=min_group_size,
            input_fingerprint=fingerprint.output,
        )
        insights = []
        if "error_analysis" in steps:
            insights.append(
                error_analysis(
                    constructor=built.outputs["insights"],
                    max_depth=error_analysis_max_depth,
                    num_leaves=error_analysis_num_leaves,
                    min_child_samples=error_analysis_min_child_samples,
                    tree_features=error_analysis_tree_features,
                    heatmap_features=error_analysis_heatmap_features,
                    heatmap_bins=error_analysis_heatmap_bins,
                    top_leaves=error_analysis_top_leaves,
                    random_state=random_state,
                ).outputs["error_analysis"]
            )
        if "explainer" in steps:
            insights.append(
                _sharded(
                    explainer,
                    merge_explanations,
                    "explanation",
                    built.outputs["insights"],
                    explainer_shards,
                    dict(
                        method=explainer_method,
                        rows=explainer_rows,
                        background_size=explainer_background_size,
                        mimic_train_size=explainer_mimic_train_size,
                        random_state=random_state,
                    ),
                )
            )
        if "counterfactual" in steps:
            insights.append(
                _sharded(
                    counterfactual,
                    merge_counterfactuals,
                    "counterfactuals",
                    built.outputs["insights"],
                    counterfactual_shards,
                    dict(
                        total_CFs=counterfactual_total_CFs,
                        engine=counterfactual_engine,
                        method=counterfactual_method,
                        desired_class=counterfactual_desired_class,
                        desired_range=counterfactual_desired_range,
                        features_to_vary=counterfactual_features_to_vary,
                        permitted_range=counterfactual_permitted_range,
                        increase_only=counterfactual_increase_only,
                        decrease_only=counterfactual_decrease_only,
                        rows=counterfactual_rows,
                        n_jobs=counterfactual_n_jobs,
                        random_state=random_state,
                    ),
                )
            )
        if "causal" in steps:
            insights.append(
                causal(
                    constructor=built.outputs["insights"],
                    treatment_features=causal_treatment_features,
                    heterogeneity_features=causal_heterogeneity_features,
                    nuisance_model=causal_nuisance_model,
                    heterogeneity_model=causal_heterogeneity_model,
                    alpha=causal_alpha,
                    upper_bound_on_cat_expansion=causal_upper_bound_on_cat_expansion,
                    treatment_cost=causal_treatment_cost,
                    min_tree_leaf_samples=causal_min_tree_leaf_samples,
                    max_tree_depth=causal_max_tree_depth,
                    skip_cat_limit_checks=causal_skip_cat_limit_checks,
                    categories=causal_categories,
                    train_sample_size=causal_train_sample_size,
                    rows=causal_rows,
                    top_recommendations=causal_top_recommendations,
                    n_jobs=causal_n_jobs,
                    random_state=random_state,
                ).outputs["causal"]
            )
        # The run's id, name and times go into the bundle and the scorecard.
        times = (
            dict(
                pipeline_run_created_at=dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER,
                pipeline_run_scheduled_at=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
            )
            if run_times
            else {}
        )
        gathered = gather(
            constructor=built.outputs["insights"],
            pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            pipeline_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            **times,
            **{f"insight_{i}": insight for i, insight in enumerate(insights, start=1)},
        )
        # The bundle names this run, so gather runs in every run (a cache key may hold the
        # placeholder, not its value: kfp.local's does); the scorecard and publish after it
        # get a new bundle, so they run too, and publish writes an audit once per run id.
        gathered.set_caching_options(False)
        if with_scorecard:
            compared = {}
            if with_publish:
                # The model's previous archived audit: the scorecard reports what changed since.
                found = find_baseline(model_name=publish_model_name, bucket=publish_bucket)
                found.set_caching_options(False)  # the archive changes between runs
                _s3_settings_from_secret(found)
                compared["baseline"] = found.outputs["baseline"]
            card = scorecard(
                dashboard=gathered.outputs["dashboard"],
                config=scorecard_config,
                bootstrap=scorecard_bootstrap,
                random_state=random_state,
                fail_on_missed_target=scorecard_fail_on_missed_target,
                **compared,
            )
            if with_publish:
                archived = publish(
                    dashboard=gathered.outputs["dashboard"],
                    scorecard=card.outputs["scorecard"],
                    model_name=publish_model_name,
                    model_version=publish_model_version,
                    bucket=publish_bucket,
                    pipeline_run=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                    retention_mode=publish_retention_mode,
                    retention_days=publish_retention_days,
                )
                _s3_settings_from_secret(archived)
            if gate_registration:
                with dsl.If(card.outputs["Output"] == True, name="scorecard-passed"):  # noqa: E712 (KFP condition)
                    register_model(model=model.output, scorecard=card.outputs["scorecard"])
        return gathered.outputs["dashboard"]

    return audit_pipeline


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
PIPELINES = {name: build_audit_pipeline(**options) for name, options in PIPELINE_OPTIONS.items()}
