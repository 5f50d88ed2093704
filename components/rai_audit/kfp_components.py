"""KFP definitions of the steps: thin wrappers that call ``rai_audit.steps`` and nothing else.

Each is a lightweight Python component whose base image is the step's own image (see
``rai_audit.images``), so it runs locally under ``kfp.local`` and on a cluster alike.
List parameters are typed lists; an empty list means "not given".
"""

# No `from __future__ import annotations` here: KFP reads the annotations at decoration time.
import contextlib
from typing import List, Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from rai_audit.images import step_image


@dsl.component(base_image=step_image("constructor"), install_kfp_package=False)
def fingerprint_inputs(model: Input[Model], train_data: Input[Dataset], test_data: Input[Dataset]) -> str:
    """sha256 of the model's, train and test data's bytes (a folder: its files by relative path).

    The pipeline runs it uncached and passes the result to the constructor, whose cache key
    then changes exactly when the content behind the URIs does.

    Args:
        model: The model file (or a folder holding it).
        train_data: The train data.
        test_data: The test data.

    Returns:
        The fingerprint (64 hex digits).
    """
    from rai_audit.core.fingerprint import input_fingerprint

    return input_fingerprint({"model": model.path, "train_data": train_data.path, "test_data": test_data.path})


@dsl.component(base_image=step_image("constructor"), install_kfp_package=False)
def constructor(
    insights: Output[Artifact],
    model: Input[Model],
    train_data: Input[Dataset],
    test_data: Input[Dataset],
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
    input_fingerprint: str = "",
):
    """Validates model and data, predicts once on the whole test set, writes the insights.

    Args:
        insights: The insights artifact every later step reads.
        model: A scikit-learn-compatible model saved with skops (or joblib/pickle with allow_pickle).
        train_data: Train data, Parquet or CSV, with the target column.
        test_data: Test data, Parquet or CSV, with the target column.
        target_column: Name of the target column.
        task_type: binary_classification, multiclass_classification, regression or classification.
        categorical_features: Categorical feature names; empty: inferred from the dtypes.
        sensitive_features: Features to assess fairness over.
        dropped_features: Columns kept for cohorts and fairness but not given to the model.
        classes: The class labels in order; empty: the model's classes.
        positive_label: The positive class of a binary classifier; empty: the second class.
        cohorts: Cohort definitions (rai-audit or Azure ML format); a cohort may be given as its
            JSON text (KFP parameters cannot hold null: `value: null` selects missing values).
        sample_size: Test rows sampled (stratified, seeded) for per-row steps; 0: all.
        random_state: Seed of that sample.
        skops_trusted_types: Types to trust when loading a .skops model.
        allow_pickle: Load a joblib/pickle model, which runs code stored in the file.
        desired_outcome: increase (more of the positive label or a higher target is good) or decrease.
        immutable_features: Features counterfactuals and causal policies never change.
        min_group_size: Groups with fewer test rows are flagged and left out of fairness differences.
        input_fingerprint: The inputs' content fingerprint (fingerprint_inputs), recorded in
            meta.json; it changes no result, only the task's cache key.
    """
    import json

    from rai_audit.core import RAIInputError
    from rai_audit.steps.constructor import ConstructorOptions, run_constructor

    try:  # `rai-audit run` passes a cohort holding a null as its JSON text
        cohorts = [json.loads(c) if isinstance(c, str) else c for c in cohorts]
    except ValueError as err:
        raise RAIInputError(f"`cohorts`: a cohort given as text must be its JSON: {err}") from err
    result = run_constructor(
        model.path,
        train_data.path,
        test_data.path,
        insights.path,
        options=ConstructorOptions(
            target_column=target_column,
            task_type=task_type,
            categorical_features=categorical_features or None,
            sensitive_features=sensitive_features,
            dropped_features=dropped_features,
            classes=classes or None,
            positive_label=positive_label or None,
            cohorts=cohorts,
            sample_size=sample_size,
            random_state=random_state,
            skops_trusted_types=skops_trusted_types,
            allow_pickle=allow_pickle,
            desired_outcome=desired_outcome,
            immutable_features=immutable_features,
            min_group_size=min_group_size,
        ),
        input_fingerprint=input_fingerprint,
    )
    insights.metadata.update(run_id=result.run_id, task_type=result.task_type, n_test=result.n_test)


@dsl.component(base_image=step_image("error_analysis"), install_kfp_package=False)
def error_analysis(
    error_analysis: Output[Artifact],
    constructor: Input[Artifact],
    max_depth: int = 3,
    num_leaves: int = 31,
    min_child_samples: int = 20,
    tree_features: list = [],
    heatmap_features: list = [],
    heatmap_bins: int = 8,
    top_leaves: int = 3,
    random_state: int = 0,
):
    """Finds where the model is wrong: error tree, heatmap, error per cohort and group.

    Args:
        error_analysis: The error analysis insight.
        constructor: The constructor's insights artifact.
        max_depth: Maximum depth of the error tree.
        num_leaves: Maximum number of leaves of the error tree.
        min_child_samples: Minimum number of rows in a leaf.
        tree_features: Features the tree may split on; empty: all.
        heatmap_features: One or two features for the error heatmap; empty: no heatmap.
        heatmap_bins: Number of quantile bins of a numeric heatmap feature.
        top_leaves: How many worst and best leaves to offer as cohorts.
        random_state: Seed of the tree.
    """
    from rai_audit.steps.error_analysis import ErrorAnalysisOptions, run_error_analysis

    result = run_error_analysis(
        constructor.path,
        error_analysis.path,
        options=ErrorAnalysisOptions(
            max_depth=max_depth,
            num_leaves=num_leaves,
            min_child_samples=min_child_samples,
            tree_features=tree_features,
            heatmap_features=heatmap_features,
            heatmap_bins=heatmap_bins,
            top_leaves=top_leaves,
            random_state=random_state,
        ),
    )
    error_analysis.metadata.update(run_id=result.run_id, leaves=result.n_leaves)


@dsl.component(base_image=step_image("explainer"), install_kfp_package=False)
def explainer(
    explanation: Output[Artifact],
    constructor: Input[Artifact],
    method: str = "auto",
    rows: str = "sample",
    shard_index: int = 0,
    shard_count: int = 1,
    background_size: int = 100,
    mimic_train_size: int = 5000,
    random_state: int = 0,
):
    """Global and local feature importance in raw features (interpret-community on shap).

    Args:
        explanation: The explanation insight (of this shard, when sharded).
        constructor: The constructor's insights artifact.
        method: auto (tree or linear SHAP where possible, else a mimic), tree, linear or mimic.
        rows: sample (the constructor's recorded sample) or all test rows.
        shard_index: Which shard of the rows to explain.
        shard_count: Into how many shards the rows are split.
        background_size: Train rows used as the background of linear SHAP (seeded, at most 100).
        mimic_train_size: Train rows the mimic surrogate learns from (seeded).
        random_state: Seed of those samples and the surrogate.
    """
    from rai_audit.steps.explainer import ExplainerOptions, run_explainer

    result = run_explainer(
        constructor.path,
        explanation.path,
        options=ExplainerOptions(
            method=method,
            rows=rows,
            shard_index=shard_index,
            shard_count=shard_count,
            background_size=background_size,
            mimic_train_size=mimic_train_size,
            random_state=random_state,
        ),
    )
    explanation.metadata.update(run_id=result.run_id, method=result.method, rows=result.n_rows)


@dsl.component(base_image=step_image("explainer"), install_kfp_package=False)
def merge_explanations(explanation: Output[Artifact], constructor: Input[Artifact], shards: Input[List[Artifact]]):
    """Joins explanation shards into the result of one unsharded run.

    Args:
        explanation: The merged explanation insight.
        constructor: The constructor's insights artifact.
        shards: The explanation shards (all of one split).
    """
    from rai_audit.steps.explainer import merge_explanations as merge

    result = merge(constructor.path, [shard.path for shard in shards], explanation.path)
    explanation.metadata.update(run_id=result.run_id, method=result.method, rows=result.n_rows)


@dsl.component(base_image=step_image("counterfactual"), install_kfp_package=False)
def counterfactual(
    counterfactuals: Output[Artifact],
    constructor: Input[Artifact],
    total_CFs: int = 10,
    engine: str = "batched",
    method: str = "random",
    desired_class: str = "opposite",
    desired_range: list = [],
    features_to_vary: list = [],
    permitted_range: dict = {},
    increase_only: list = [],
    decrease_only: list = [],
    rows: str = "sample",
    n_jobs: int = 1,
    shard_index: int = 0,
    shard_count: int = 1,
    random_state: int = 0,
):
    """Counterfactuals per row with dice-ml, each checked by calling the real model.

    Args:
        counterfactuals: The counterfactual insight (of this shard, when sharded).
        constructor: The constructor's insights artifact.
        total_CFs: Counterfactuals asked for per row.
        engine: batched (random search for all rows at once) or dice (dice-ml row by row).
        method: dice-ml's method with engine dice: random, genetic or kdtree.
        desired_class: "opposite" (binary) or the class to reach.
        desired_range: [low, high] the prediction must reach (regression).
        features_to_vary: Features that may change; empty: all.
        permitted_range: Feature -> [low, high] or the allowed values.
        increase_only: Numeric features that may only increase (e.g. age).
        decrease_only: Numeric features that may only decrease.
        rows: sample (the constructor's sample), all, or a cohort name.
        n_jobs: Worker processes.
        shard_index: Which shard of the rows to search.
        shard_count: Into how many shards the rows are split.
        random_state: Seed of the search.
    """
    from rai_audit.steps.counterfactual import CounterfactualOptions, run_counterfactual

    result = run_counterfactual(
        constructor.path,
        counterfactuals.path,
        options=CounterfactualOptions(
            total_CFs=total_CFs,
            engine=engine,
            method=method,
            desired_class=desired_class,
            desired_range=desired_range,
            features_to_vary=features_to_vary,
            permitted_range=permitted_range,
            increase_only=increase_only,
            decrease_only=decrease_only,
            rows=rows,
            n_jobs=n_jobs,
            shard_index=shard_index,
            shard_count=shard_count,
            random_state=random_state,
        ),
    )
    counterfactuals.metadata.update(run_id=result.run_id, rows=result.n_rows, valid=result.n_valid)


@dsl.component(base_image=step_image("counterfactual"), install_kfp_package=False)
def merge_counterfactuals(
    counterfactuals: Output[Artifact], constructor: Input[Artifact], shards: Input[List[Artifact]]
):
    """Joins counterfactual shards into the result of one unsharded run.

    Args:
        counterfactuals: The merged counterfactual insight.
        constructor: The constructor's insights artifact.
        shards: The counterfactual shards (all of one split).
    """
    from rai_audit.steps.counterfactual import merge_counterfactuals as merge

    result = merge(constructor.path, [shard.path for shard in shards], counterfactuals.path)
    counterfactuals.metadata.update(run_id=result.run_id, rows=result.n_rows, valid=result.n_valid)


@dsl.component(base_image=step_image("causal"), install_kfp_package=False)
def causal(
    causal: Output[Artifact],
    constructor: Input[Artifact],
    treatment_features: list,
    heterogeneity_features: str = "null",
    nuisance_model: str = "linear",
    heterogeneity_model: str = "linear",
    alpha: float = 0.05,
    upper_bound_on_cat_expansion: int = 50,
    treatment_cost: list = [],
    min_tree_leaf_samples: int = 2,
    max_tree_depth: int = 2,
    skip_cat_limit_checks: bool = False,
    categories: dict = {},
    train_sample_size: int = 10000,
    rows: str = "sample",
    top_recommendations: int = 10,
    n_jobs: int = -1,
    random_state: int = 0,
):
    """Causal effects of treatment features on the true outcome, and treatment policies (econml).

    Args:
        causal: The causal insight.
        constructor: The constructor's insights artifact.
        treatment_features: Features whose effect on the outcome is estimated.
        heterogeneity_features: JSON list of features the effect may vary with; "null": all, "[]": none.
        nuisance_model: linear or automl.
        heterogeneity_model: linear or forest.
        alpha: Significance level of the confidence intervals.
        upper_bound_on_cat_expansion: Most levels a categorical treatment may have.
        treatment_cost: One cost for all treatments, or one per treatment; empty: 0.
        min_tree_leaf_samples: Minimum rows in a policy tree leaf.
        max_tree_depth: Depth of the policy tree.
        skip_cat_limit_checks: Fit categorical treatments with fewer than 10 rows of a level.
        categories: Categorical treatment -> its levels, the control first; empty: inferred.
        train_sample_size: Train rows the fit uses (seeded); 0: all.
        rows: Rows given local effects: sample (the constructor's sample) or all.
        top_recommendations: Recommendations per treatment kept in the result.
        n_jobs: Treatments fitted in parallel; -1: all cores.
        random_state: Seed of the sample and the fit.
    """
    from rai_audit.steps.causal import CausalOptions, heterogeneity_from_json, run_causal

    result = run_causal(
        constructor.path,
        causal.path,
        options=CausalOptions(
            treatment_features=treatment_features,
            heterogeneity_features=heterogeneity_from_json(heterogeneity_features),
            nuisance_model=nuisance_model,
            heterogeneity_model=heterogeneity_model,
            alpha=alpha,
            upper_bound_on_cat_expansion=upper_bound_on_cat_expansion,
            treatment_cost=treatment_cost or 0.0,
            min_tree_leaf_samples=min_tree_leaf_samples,
            max_tree_depth=max_tree_depth,
            skip_cat_limit_checks=skip_cat_limit_checks,
            categories=categories or "auto",
            train_sample_size=train_sample_size,
            rows=rows,
            top_recommendations=top_recommendations,
            n_jobs=n_jobs,
            random_state=random_state,
        ),
    )
    causal.metadata.update(run_id=result.run_id, treatments=result.treatments, fit_rows=result.fit_rows)


@dsl.component(base_image=step_image("gather"), install_kfp_package=False)
def gather(
    dashboard: Output[Artifact],
    dashboard_html: Output[HTML],
    overall_metrics: Output[Metrics],
    constructor: Input[Artifact],
    insight_1: Optional[Input[Artifact]] = None,
    insight_2: Optional[Input[Artifact]] = None,
    insight_3: Optional[Input[Artifact]] = None,
    insight_4: Optional[Input[Artifact]] = None,
    pipeline_run_id: str = "",
    pipeline_run_name: str = "",
    pipeline_run_created_at: str = "",
    pipeline_run_scheduled_at: str = "",
):
    """Checks that every insight is from the constructor's run and builds the dashboard bundle.

    Args:
        dashboard: The bundle: dashboard.html, insights.json, Parquet tables, manifest.json.
        dashboard_html: The dashboard page alone, for the Kubeflow UI.
        overall_metrics: The model's metrics on the whole test set.
        constructor: The constructor's insights artifact.
        insight_1: An analysis step's insight (any kind, at most one of each kind).
        insight_2: Another insight.
        insight_3: Another insight.
        insight_4: Another insight.
        pipeline_run_id: The pipeline run's id (the pipeline passes KFP's placeholder).
        pipeline_run_name: The pipeline run's name.
        pipeline_run_created_at: When the run was created (UTC).
        pipeline_run_scheduled_at: When a recurring run was scheduled to start (UTC).
    """
    import math
    import shutil

    from rai_audit.steps.gather import pipeline_run_info, run_gather

    insight_dirs = [i.path for i in (insight_1, insight_2, insight_3, insight_4) if i is not None]
    result = run_gather(
        constructor.path,
        insight_dirs,
        dashboard.path,
        pipeline_run=pipeline_run_info(
            id=pipeline_run_id,
            name=pipeline_run_name,
            created_at=pipeline_run_created_at,
            scheduled_at=pipeline_run_scheduled_at,
        ),
    )
    shutil.copyfile(f"{dashboard.path}/dashboard.html", dashboard_html.path)
    for name, value in result.overall_metrics.items():
        if value is not None and math.isfinite(value):
            overall_metrics.log_metric(name, value)
    dashboard.metadata.update(run_id=result.run_id, insights=result.insight_kinds)


@dsl.component(base_image=step_image("scorecard"), install_kfp_package=False)
def scorecard(
    scorecard: Output[Artifact],
    headline_metrics: Output[Metrics],
    dashboard: Input[Artifact],
    config: dict,
    baseline: Optional[Input[Artifact]] = None,
    cohorts: list = [],
    bootstrap: int = 200,
    alpha: float = 0.05,
    fail_on_missed_target: bool = False,
    random_state: int = 0,
) -> bool:
    """Judges the model against the config's targets; writes the PDF scorecard and the verdict.

    Args:
        scorecard: The scorecard: scorecard.pdf, scorecard.json (every target and verdict), manifest.json.
        headline_metrics: The targets' measured values and how many were met and missed.
        dashboard: The gathered dashboard bundle.
        config: The scorecard config (rai-audit's form or Azure ML's pdf_generation_config).
        baseline: An earlier audit's scorecard (see find_baseline): every figure's change
            since then is reported, and the config's `changes` targets judged.
        cohorts: Extra cohorts to report and target (rai-audit or Azure ML format); empty: none.
        bootstrap: Resamples for the targets' confidence intervals; 0: none.
        alpha: One minus the confidence level of those intervals.
        fail_on_missed_target: Fail this task (and the run) when a target is missed.
        random_state: Seed of the resamples.

    Returns:
        Whether every target was met (passed), for `dsl.If` to gate on. It is the
        component's single return value, "Output": kfp.local (2.17) resolves a condition
        on another task's output only under that name.
    """
    from rai_audit.steps.scorecard import ScorecardOptions, run_scorecard

    result = run_scorecard(
        dashboard.path,
        config,
        scorecard.path,
        cohorts=cohorts,
        baseline=baseline.path if baseline is not None else None,
        options=ScorecardOptions(
            bootstrap=bootstrap, alpha=alpha, fail_on_missed_target=fail_on_missed_target, random_state=random_state
        ),
    )
    for name, value in result.headline.items():
        headline_metrics.log_metric(name, value)
    scorecard.metadata.update(run_id=result.run_id, passed=result.passed)
    return result.passed


@dsl.component(base_image=step_image("scorecard"), install_kfp_package=False)
def register_model(registered_model: Output[Model], model: Input[Model], scorecard: Input[Artifact]):
    """Registers a model whose scorecard passed: the model file beside its scorecard, with lineage.

    Args:
        registered_model: The model as registered: its file, scorecard.json and scorecard.pdf.
        model: The audited model.
        scorecard: Its passed scorecard.
    """
    from rai_audit.steps.scorecard import register_model as register

    record = register(model.path, scorecard.path, registered_model.path)
    registered_model.metadata.update(record)


@dsl.component(base_image=step_image("publish"), install_kfp_package=False)
def publish(
    dashboard: Input[Artifact],
    scorecard: Input[Artifact],
    model_name: str,
    model_version: str,
    bucket: str = "rai-audit",
    pipeline_run: str = "",
    retention_mode: str = "",
    retention_days: int = 0,
) -> str:
    """Archives the bundle and scorecard in object storage, manifest last, once per run id.

    The S3 endpoint and credentials come from the environment (RAI_AUDIT_S3_ENDPOINT,
    RAI_AUDIT_S3_ACCESS_KEY, RAI_AUDIT_S3_SECRET_KEY), on a cluster from a Kubernetes secret;
    they are never parameters, so they are not in the compiled pipeline.

    Args:
        dashboard: The gathered dashboard bundle.
        scorecard: Its scorecard.
        model_name: The archive's model folder.
        model_version: The archive's model version folder.
        bucket: The archive's bucket.
        pipeline_run: The pipeline run to record (e.g. the KFP run id placeholder).
        retention_mode: "governance" or "compliance" to lock every object (S3 object lock); empty: none.
        retention_days: Days of that lock.

    Returns:
        The audit's s3:// URI.
    """
    from rai_audit.archive import publish_audit
    from rai_audit.storage import settings_from_env

    prefix = publish_audit(
        settings_from_env(),
        bucket,
        bundle_dir=dashboard.path,
        scorecard_dir=scorecard.path,
        model_name=model_name,
        model_version=model_version,
        pipeline_run=pipeline_run or None,
        retention_mode=retention_mode or None,
        retention_days=retention_days or None,
    )
    return f"s3://{bucket}/{prefix}"


@dsl.component(base_image=step_image("publish"), install_kfp_package=False)
def find_baseline(baseline: Output[Artifact], model_name: str, bucket: str = "rai-audit"):
    """Fetches the model's latest archived audit's scorecard as the baseline of this audit.

    Any version of the model counts (a retrained model is compared with the one before).
    With none archived, the artifact says so and the scorecard reports "no baseline".
    S3 settings come from the environment, as for publish.

    Args:
        baseline: scorecard.json of that audit (if any) and baseline.json saying which audit.
        model_name: The archive's model folder.
        bucket: The archive's bucket.
    """
    from rai_audit.archive import fetch_baseline
    from rai_audit.storage import settings_from_env

    found = fetch_baseline(settings_from_env(), bucket, model_name, baseline.path)
    baseline.metadata.update(audit=found["audit"] or "")


# Each component runs in the image of the step it belongs to.
COMPONENT_STEPS = {
    fingerprint_inputs: "constructor",
    constructor: "constructor",
    error_analysis: "error_analysis",
    explainer: "explainer",
    merge_explanations: "explainer",
    counterfactual: "counterfactual",
    merge_counterfactuals: "counterfactual",
    causal: "causal",
    gather: "gather",
    scorecard: "scorecard",
    register_model: "scorecard",
    publish: "publish",
    find_baseline: "publish",
}


@contextlib.contextmanager
def step_images(registry: Optional[str] = None, tag: Optional[str] = None):
    """While a pipeline is built inside this block, its tasks name ``<registry>/<step>:<tag>``.

    The components' images are set when this module is imported (from the environment);
    this changes them for one build and puts them back after.
    """
    containers = {component: component.component_spec.implementation.container for component in COMPONENT_STEPS}
    before = {component: container.image for component, container in containers.items()}
    try:
        for component, step in COMPONENT_STEPS.items():
            containers[component].image = step_image(step, registry=registry, tag=tag)
        yield
    finally:
        for component, image in before.items():
            containers[component].image = image
