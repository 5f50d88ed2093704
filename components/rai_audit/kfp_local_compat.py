"""Fixes for kfp.local (2.17) that pipelines run on this machine need: ``dsl.If`` on a named output.

KFP names a condition's channel ``pipelinechannel--<task>-<output>``. kfp.local's condition
evaluator reads it as another task's output only when the output is the return value
(``<task>-Output``); any other name (the scorecard's ``passed``) it looks up as a pipeline
input, does not find, and the condition is false: the gated task never runs, with only a
warning. KFP's backends resolve it. ``patch()`` makes kfp.local try the task's output first.
There is no option of kfp's for this, hence a patch; it is a no-op where the evaluator has changed.
"""

from __future__ import annotations

from typing import Any


def patch() -> None:
    """Let kfp.local resolve ``pipelinechannel--<task>-<output>`` as that task's output, and
    silence its "custom or non-Python base image" warning for the step images (idempotent).

    kfp.local's SubprocessRunner warns for every task whose image is not ``python:*`` that it
    may lack the task's dependencies; a step image is not, and locally the task runs in this
    Python environment, which has rai-audit. Other images' warnings stay.
    """
    import warnings

    from rai_audit.images import STEPS

    steps = "|".join(STEPS)
    warnings.filterwarnings(
        "ignore", message=rf'(?s).*non-Python base image "[^"]*/({steps}):[^"]*"', category=RuntimeWarning
    )
    try:
        from kfp.local.orchestrator.enhanced_dag_orchestrator import ConditionEvaluator
    except ImportError:  # another kfp: nothing to fix here
        return
    original = ConditionEvaluator.__dict__.get("_resolve_pipeline_channel")
    if original is None or getattr(original, "__func__", None) is _resolve:
        return
    ConditionEvaluator._rai_audit_original = original  # type: ignore[attr-defined]
    ConditionEvaluator._resolve_pipeline_channel = staticmethod(_resolve)  # type: ignore[method-assign]


def _resolve(channel_ref: str, io_store: Any) -> Any:
    from kfp.local.orchestrator.enhanced_dag_orchestrator import ConditionEvaluator

    ref = channel_ref.replace("pipelinechannel--", "")
    if "--" not in ref and not ref.endswith("-Output") and "-" in ref:
        task, output = ref.rsplit("-", 1)  # output names are identifiers: no "-" in them
        try:
            return io_store.get_task_output(task, output)
        except Exception:  # not a task's output: a pipeline input, as kfp.local reads it
            pass
    return ConditionEvaluator._rai_audit_original.__func__(channel_ref, io_store)  # type: ignore[attr-defined]
