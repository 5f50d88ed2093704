"""What a step's KFP component does when it runs, inside its image.

The components in ``kfp_components`` are generated from the specs and all have the same
body, ``run_step("<step>", locals())``: their parameters (artifacts and the parameter form
of the options, ``rai_audit.specs``) go to the step's plain function here, and the step's
key figures to the output artifacts' metadata.
"""

from __future__ import annotations

import json
from typing import Any

from rai_audit.core import RAIInputError
from rai_audit.specs import OPTIONS, options_from_parameters


def _options(step: str, values: dict[str, Any], **given: Any) -> Any:
    return options_from_parameters(OPTIONS[step], {**values, **given})


def _cohorts(cohorts: list[Any]) -> list[Any]:
    """`rai-audit run` passes a cohort holding a null as its JSON text (KFP parameters cannot hold null)."""
    try:
        return [json.loads(c) if isinstance(c, str) else c for c in cohorts]
    except ValueError as err:
        raise RAIInputError(f"`cohorts`: a cohort given as text must be its JSON: {err}") from err


def _constructor(v: dict[str, Any]) -> None:
    from rai_audit.steps.constructor import run_constructor

    options = _options("constructor", v, cohorts=_cohorts(v["cohorts"]))
    result = run_constructor(
        v["model"].path,
        v["train_data"].path,
        v["test_data"].path,
        v["insights"].path,
        options=options,
        input_fingerprint=v["input_fingerprint"],
    )
    v["insights"].metadata.update(run_id=result.run_id, task_type=result.task_type, n_test=result.n_test)


def _error_analysis(v: dict[str, Any]) -> None:
    from rai_audit.steps.error_analysis import run_error_analysis

    result = run_error_analysis(v["constructor"].path, v["error_analysis"].path, options=_options("error_analysis", v))
    v["error_analysis"].metadata.update(run_id=result.run_id, leaves=result.n_leaves)


def _explainer(v: dict[str, Any]) -> None:
    from rai_audit.steps.explainer import run_explainer

    result = run_explainer(v["constructor"].path, v["explanation"].path, options=_options("explainer", v))
    v["explanation"].metadata.update(run_id=result.run_id, method=result.method, rows=result.n_rows)


def _counterfactual(v: dict[str, Any]) -> None:
    from rai_audit.steps.counterfactual import run_counterfactual

    result = run_counterfactual(v["constructor"].path, v["counterfactuals"].path, options=_options("counterfactual", v))
    v["counterfactuals"].metadata.update(run_id=result.run_id, rows=result.n_rows, valid=result.n_valid)


def _causal(v: dict[str, Any]) -> None:
    from rai_audit.steps.causal import run_causal

    result = run_causal(v["constructor"].path, v["causal"].path, options=_options("causal", v))
    v["causal"].metadata.update(run_id=result.run_id, treatments=result.treatments, fit_rows=result.fit_rows)


def _scorecard(v: dict[str, Any]) -> bool:
    from rai_audit.steps.scorecard import run_scorecard

    baseline = v["baseline"]
    result = run_scorecard(
        v["dashboard"].path,
        v["config"],
        v["scorecard"].path,
        cohorts=v["cohorts"],
        baseline=baseline.path if baseline is not None else None,
        options=_options("scorecard", v),
    )
    for name, value in result.headline.items():
        v["headline_metrics"].log_metric(name, value)
    v["scorecard"].metadata.update(run_id=result.run_id, passed=result.passed)
    _verdict(v["verdict"], result)
    _ui_views(v["dashboard"].path, v["scorecard"].path, v["verdict_markdown"], v["classification_metrics"])
    with open(v["passed"], "w", encoding="utf-8") as out:  # a bool output parameter is read as JSON
        out.write(json.dumps(result.passed))
    return result.passed


def _verdict(artifact: Any, result: Any) -> None:
    """The blessing-like verdict: verdict.json at the artifact's path, ``blessed`` in its metadata."""
    verdict = {
        "passed": result.passed,
        "run_id": result.run_id,
        "n_targets": result.n_targets,
        "n_missed": result.n_missed,
        "n_undefined": result.n_undefined,
    }
    with open(artifact.path, "w", encoding="utf-8") as out:
        json.dump(verdict, out, indent=2)
    artifact.metadata.update(blessed=result.passed, **verdict)


def _ui_views(dashboard_dir: str, scorecard_dir: str, markdown: Any, metrics: Any) -> None:
    """The scorecard's views in the Kubeflow UI: the Markdown verdict, the confusion matrix and ROC curve."""
    from rai_audit.steps.scorecard import ui_views

    views = ui_views(dashboard_dir, scorecard_dir)
    with open(markdown.path, "w", encoding="utf-8") as out:
        out.write(views.markdown)
    if views.confusion is not None:
        labels = [str(label) for label in views.confusion["labels"]]
        metrics.log_confusion_matrix(labels, views.confusion["matrix"])
    if views.roc is not None:
        metrics.log_roc_curve(views.roc["fpr"], views.roc["tpr"], views.roc["threshold"])


_RUNNERS = {
    "constructor": _constructor,
    "error_analysis": _error_analysis,
    "explainer": _explainer,
    "counterfactual": _counterfactual,
    "causal": _causal,
    "scorecard": _scorecard,
}


def run_step(step: str, values: dict[str, Any]) -> Any:
    """Run ``step`` with its component's parameter values (its ``locals()``)."""
    return _RUNNERS[step](values)
