"""Pipeline builders: the audit composes constructor -> chosen analysis steps -> gather.

``build_audit_pipeline(steps)`` includes the analysis steps named in ``steps``; a pipeline
takes the parameters of the steps it runs (prefixed with the step's name), each described
(the Kubeflow UI shows it), and no others. The parameters are the steps' options
(``rai_audit.specs``), declared there once.
"""

# No `from __future__ import annotations` here: KFP reads the annotations at decoration time.
import functools
import inspect
import os
from collections.abc import Sequence
from typing import Any

from kfp import dsl, kubernetes
from kfp.dsl import Artifact, Dataset, Model

from rai_audit.kfp_components import with_images
from rai_audit.specs import ANALYSIS_STEPS, DEFAULT_WEBHOOK_ENV, PIPELINE_OPTIONS, step_options
from rai_audit.storage import ENV_ACCESS, ENV_ENDPOINT, ENV_REGION, ENV_SECRET

# The Kubernetes secret the publish step reads its S3 settings from on a cluster (name set
# when the pipeline is compiled; keys endpoint, access_key, secret_key, region).
S3_SECRET = os.environ.get("RAI_AUDIT_S3_SECRET", "rai-audit-s3")
# The Kubernetes TLS secret (tls.key, tls.crt) the scorecard signs its PDF with when its `sign`
# option is on, mounted where the step looks (rai_audit.report.evidence.SIGNING_SECRET_MOUNT).
SIGNING_SECRET = os.environ.get("RAI_AUDIT_SIGNING_SECRET", "rai-audit-signing")
SIGNING_SECRET_MOUNT = "/var/run/secrets/rai-audit-signing"
# The Kubernetes secret (key url) the notify step reads its webhook URL from, into the
# environment variable it reads by default; optional: without it nothing is posted.
WEBHOOK_SECRET = os.environ.get("RAI_AUDIT_WEBHOOK_SECRET", "rai-audit-webhook")


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


# The pipeline's parameters that are not a step's option: the inputs' URIs, the scorecard
# config and where publish archives the audit; (type, default, description).
URI_PARAMETERS = {
    "model_uri": "The model: a file or a folder (skops; joblib/pickle with allow_pickle; MLflow, ONNX, an "
    "XGBoost/LightGBM/CatBoost booster), as an s3://, minio:// or gs:// URI (a local path under kfp.local).",
    "train_data_uri": "The train data, Parquet or CSV (a file or a folder of parts), with the target column.",
    "test_data_uri": "The test data, Parquet or CSV (a file or a folder of parts), with the target column.",
}
SCORECARD_PARAMETERS: dict[str, tuple[type, Any, str]] = {
    "scorecard_config": (
        dict,
        {},
        "The scorecard config: targets, fairness, changes (rai-audit's form or Azure ML's pdf_generation_config).",
    )
}
PUBLISH_PARAMETERS: dict[str, tuple[type, Any, str]] = {
    "publish_model_name": (
        str,
        "model",
        "The archive's model folder (and the model whose last audit is the baseline).",
    ),
    "publish_model_version": (str, "0", "The archive's model version folder."),
    "publish_bucket": (str, "rai-audit", "The archive's S3 bucket."),
    "publish_retention_mode": (
        str,
        "",
        '"governance" or "compliance" to lock every archived object (S3 object lock); empty: none.',
    ),
    "publish_retention_days": (int, 0, "Days of that lock."),
}
OPTION_STEPS = ("constructor", *ANALYSIS_STEPS, "scorecard")


def _notify_options() -> list:
    """The notify step's options as pipeline parameters (``notify_<name>``): all but the
    webhook's variable, which the pipeline sets from WEBHOOK_SECRET."""
    return [o for o in step_options("notify", "kfp") if o.name != "webhook_env"]


def _described(o) -> str:
    return o.help + (f" One of: {', '.join(o.choices)}." if o.choices else "")  # KFP parameters have no enum


def pipeline_parameters(
    steps: Sequence[str] = ANALYSIS_STEPS,
    *,
    with_scorecard: bool = True,
    with_publish: bool = True,
    with_notify: bool = False,
) -> list[tuple[str, type, Any, str]]:
    """A variant's parameters, (name, type, default or ``inspect.Parameter.empty``, description):
    the URIs, the options of the constructor, of ``steps`` and of the scorecard (prefixed with
    the step's name; the seed shared and unprefixed), the scorecard config and the archive's
    settings; only those the variant uses."""
    params: list[tuple[str, type, Any, str]] = [(n, str, inspect.Parameter.empty, d) for n, d in URI_PARAMETERS.items()]
    seen = set(URI_PARAMETERS)
    for step in OPTION_STEPS:
        if step != "constructor" and step not in steps and not (step == "scorecard" and with_scorecard):
            continue
        for o in step_options(step, "pipeline"):
            name = o.parameter_name()
            if name in seen:
                continue  # the shared seed
            seen.add(name)
            default = inspect.Parameter.empty if o.required else o.parameter_default
            params.append((name, o.parameter_type, default, _described(o)))
    extra = {**(SCORECARD_PARAMETERS if with_scorecard else {}), **(PUBLISH_PARAMETERS if with_publish else {})}
    params += [(n, kind, default, d) for n, (kind, default, d) in extra.items()]
    if with_notify:
        params += [
            (f"notify_{o.name}", o.parameter_type, o.parameter_default, _described(o)) for o in _notify_options()
        ]
    # Python's order: parameters without a default first.
    params.sort(key=lambda p: p[2] is not inspect.Parameter.empty)
    return params


def pipeline_signature(
    steps: Sequence[str] = ANALYSIS_STEPS, *, with_scorecard: bool = True, with_publish: bool = True, **more: bool
) -> inspect.Signature:
    """The signature KFP reads a variant's parameters from (``pipeline_parameters``)."""
    params = [
        inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind, default=default)
        for n, kind, default, _ in pipeline_parameters(
            steps, with_scorecard=with_scorecard, with_publish=with_publish, **more
        )
    ]
    return inspect.Signature(params, return_annotation=Artifact)


def pipeline_docstring(parameters: list[tuple[str, type, Any, str]]) -> str:
    """The pipeline function's docstring: KFP's compiler reads each parameter's description
    from its ``Args:`` section into the compiled pipeline (the Kubeflow UI shows it)."""
    lines = ["Responsible AI audit of a tabular model.", "", "Args:"]
    for name, _, _, description in parameters:
        lines.append(f"    {name}: {' '.join(description.split())}")
    return "\n".join(lines) + "\n"


def _step_arguments(step: str, values: dict[str, Any]) -> dict[str, Any]:
    """A step's task arguments: each of its options from the pipeline parameter of that option."""
    return {o.name: values[o.parameter_name()] for o in step_options(step, "pipeline")}


def build_audit_pipeline(
    steps: Sequence[str] = ANALYSIS_STEPS,
    *,
    name: str = "rai-audit",
    explainer_shards: int = 1,
    counterfactual_shards: int = 1,
    causal_shards: int = 1,
    with_scorecard: bool = False,
    gate_registration: bool = False,
    with_publish: bool = False,
    with_notify: bool = False,
    pipeline_root: str | None = None,
    run_times: bool = True,
    registry: str | None = None,
    tag: str | None = None,
    model_image: str | None = None,
):
    """The audit pipeline with the analysis ``steps`` (a subset of ``ANALYSIS_STEPS``).

    With ``explainer_shards`` or ``counterfactual_shards`` > 1 that step fans out over as
    many shards of rows (``dsl.ParallelFor``, one pod each on a cluster) and a merge joins them;
    with ``causal_shards`` > 1 the causal step does so over shards of its treatments.
    ``with_scorecard`` adds the scorecard after gather; ``gate_registration`` then registers
    the model only when its scorecard passed (``dsl.If`` on the scorecard's ``passed``);
    ``with_publish`` archives bundle and scorecard in object storage (credentials from the
    ``S3_SECRET`` Kubernetes secret on a cluster, from the environment locally).
    ``with_notify`` posts the verdict to a webhook after the scorecard when it changed against
    the baseline audit (with ``with_publish``; else a failing audit), as the ``notify_*``
    parameters say; the URL comes from the ``WEBHOOK_SECRET`` Kubernetes secret (key ``url``).
    ``pipeline_root`` (s3://, minio:// or gs://) is where a cluster keeps the artifacts.
    ``run_times`` stamps the run's creation and schedule times into the bundle; kfp.local
    (2.17) cannot resolve those placeholders (it fails with an IndexError), so local runs
    are built without them. ``registry``/``tag``: the tasks run ``<registry>/<step>:<tag>``
    (default: from the environment, see ``rai_audit.images``); ``model_image``: the image of
    the steps that call the model (constructor, explainer, counterfactual and their merges),
    for a model whose library the step images lack (built FROM a step image, images/README.md).
    """
    if pipeline_root is not None and pipeline_root.split("://")[0] not in ("s3", "minio", "gs"):
        raise ValueError(f"`pipeline_root` must be an s3://, minio:// or gs:// URI, got {pipeline_root!r}")
    if (gate_registration or with_publish or with_notify) and not with_scorecard:
        raise ValueError("`gate_registration`, `with_publish` and `with_notify` need `with_scorecard`")
    unknown = sorted(set(steps) - set(ANALYSIS_STEPS))
    if unknown:
        raise ValueError(f"`steps` must be among {list(ANALYSIS_STEPS)}, got {unknown}")
    for shards in (explainer_shards, counterfactual_shards, causal_shards):
        if not isinstance(shards, int) or shards < 1:
            raise ValueError(f"shard counts must be integers >= 1, got {shards!r}")
    c = with_images(registry, tag, model_image)
    chosen = dict(with_scorecard=with_scorecard, with_publish=with_publish, with_notify=with_notify)
    parameters = pipeline_parameters(steps, **chosen)
    signature = pipeline_signature(steps, **chosen)

    def audit_pipeline(*values: Any) -> Artifact:
        # KFP calls the pipeline with one channel per parameter, in the signature's order.
        p = dict(zip(signature.parameters, values))
        # A scheduled audit reads the same URIs each time while the model and data behind them
        # may change. KFP's cache sees the URI only, so an uncached task fingerprints the
        # content and the constructor takes the fingerprint as a parameter: same content and
        # parameters, the cached constructor output (same run id) and with it every cached
        # analysis; changed content, everything recomputes. The importers reuse the artifact
        # of a URI (reimport=False): a new one per run would change every cache key.
        model = dsl.importer(artifact_uri=p["model_uri"], artifact_class=Model, reimport=False)
        model.set_display_name("import model")
        train = dsl.importer(artifact_uri=p["train_data_uri"], artifact_class=Dataset, reimport=False)
        train.set_display_name("import train data")
        test = dsl.importer(artifact_uri=p["test_data_uri"], artifact_class=Dataset, reimport=False)
        test.set_display_name("import test data")
        fingerprint = c["fingerprint-inputs"](model=model.output, train_data=train.output, test_data=test.output)
        fingerprint.set_caching_options(False)  # it must read the content every run
        built = c["constructor"](
            model=model.output,
            train_data=train.output,
            test_data=test.output,
            input_fingerprint=fingerprint.output,
            **_step_arguments("constructor", p),
        )
        constructor_output = built.outputs["insights"]
        insights = []
        if "error_analysis" in steps:
            task = c["error-analysis"](constructor=constructor_output, **_step_arguments("error_analysis", p))
            insights.append(task.outputs["error_analysis"])
        if "explainer" in steps:
            insights.append(
                _sharded(
                    c["explainer"],
                    c["merge-explanations"],
                    "explanation",
                    constructor_output,
                    explainer_shards,
                    _step_arguments("explainer", p),
                )
            )
        if "counterfactual" in steps:
            insights.append(
                _sharded(
                    c["counterfactual"],
                    c["merge-counterfactuals"],
                    "counterfactuals",
                    constructor_output,
                    counterfactual_shards,
                    _step_arguments("counterfactual", p),
                )
            )
        if "causal" in steps:
            insights.append(
                _sharded(
                    c["causal"],
                    c["merge-causal"],
                    "causal",
                    constructor_output,
                    causal_shards,
                    _step_arguments("causal", p),
                )
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
        gathered = c["gather"](
            constructor=constructor_output,
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
                found = c["find-baseline"](model_name=p["publish_model_name"], bucket=p["publish_bucket"])
                found.set_caching_options(False)  # the archive changes between runs
                _s3_settings_from_secret(found)
                compared["baseline"] = found.outputs["baseline"]
            card = c["scorecard"](
                dashboard=gathered.outputs["dashboard"],
                config=p["scorecard_config"],
                **_step_arguments("scorecard", p),
                **compared,
            )
            # Optional: a run that does not sign needs no such secret.
            kubernetes.use_secret_as_volume(
                card, secret_name=SIGNING_SECRET, mount_path=SIGNING_SECRET_MOUNT, optional=True
            )
            if with_publish:
                archived = c["publish"](
                    dashboard=gathered.outputs["dashboard"],
                    scorecard=card.outputs["scorecard"],
                    model_name=p["publish_model_name"],
                    model_version=p["publish_model_version"],
                    bucket=p["publish_bucket"],
                    pipeline_run=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                    retention_mode=p["publish_retention_mode"],
                    retention_days=p["publish_retention_days"],
                )
                _s3_settings_from_secret(archived)
            if with_notify:
                told = c["notify"](
                    scorecard=card.outputs["scorecard"],
                    webhook_env=DEFAULT_WEBHOOK_ENV,
                    **{o.name: p[f"notify_{o.name}"] for o in _notify_options()},
                    **compared,
                )
                told.set_caching_options(False)  # a verdict is posted once per run
                kubernetes.use_secret_as_env(
                    told, secret_name=WEBHOOK_SECRET, secret_key_to_env={"url": DEFAULT_WEBHOOK_ENV}, optional=True
                )
            if gate_registration:
                with dsl.If(card.outputs["passed"] == True, name="scorecard-passed"):  # noqa: E712 (KFP condition)
                    c["register-model"](model=model.output, scorecard=card.outputs["scorecard"])
        return gathered.outputs["dashboard"]

    audit_pipeline.__signature__ = signature  # type: ignore[attr-defined]  # what KFP reads
    audit_pipeline.__doc__ = pipeline_docstring(parameters)
    return dsl.pipeline(name=name, description="Responsible AI audit of a tabular model", pipeline_root=pipeline_root)(
        audit_pipeline
    )


@functools.cache
def pipeline(name: str):
    """The checked-in variant ``name`` (of ``PIPELINE_OPTIONS``), built when first asked for."""
    if name not in PIPELINE_OPTIONS:
        raise ValueError(f"pipeline must be one of {list(PIPELINE_OPTIONS)}, got {name!r}")
    return build_audit_pipeline(**PIPELINE_OPTIONS[name])
