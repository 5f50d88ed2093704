"""Fixes for kfp.local (2.17) that pipelines run on this machine need: ``dsl.If`` on a named output.

KFP names a condition's channel ``pipelinechannel--<task>-<output>``. kfp.local's condition
evaluator reads it as another task's output only when the output is the return value
(``<task>-Output``); any other name (the scorecard's ``passed``) it looks up as a pipeline
input, does not find, and the condition is false: the gated task never runs, with only a
warning. KFP's backends resolve it. ``patch()`` makes kfp.local try the task's output first.
There is no option of kfp's for this, hence a patch; it is a no-op where the evaluator has changed.

``concurrent_tasks(n)`` lets kfp.local run up to n tasks at once, as a cluster does (``rai-audit
run --parallel-tasks``); kfp.local alone runs one at a time.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
from collections.abc import Iterator, Sequence
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


@contextlib.contextmanager
def concurrent_tasks(max_tasks: int, first: Sequence[str] = ()) -> Iterator[None]:
    """While inside, kfp.local runs up to ``max_tasks`` tasks of a DAG at once, each as soon as
    the tasks it depends on have ended, as KFP's backends do on a cluster. Of the tasks ready
    together, those named in ``first`` start first, in that order (the longest first: started
    last, a long task runs alone at the end while the other cores idle); the others follow in
    kfp.local's order.

    kfp.local (2.17) runs a DAG's tasks one after another in a topological order, side by side
    only within a ``dsl.ParallelFor``, and has no option for more. Hence this replacement of its
    two DAG loops (``run_dag`` for a plain DAG, ``run_enhanced_dag`` for one with control flow),
    which keeps the second's rules for both: a task whose upstream task failed is skipped unless
    it ignores upstream failures, the other tasks go on, a ``dsl.If`` is evaluated when its task
    is ready, a ParallelFor counts as one task and runs its iterations as kfp.local does (two at
    a time), and the DAG fails after every task that could run has ended. A DAG with an exit
    handler runs as kfp.local runs it. With ``max_tasks`` 1 nothing is replaced."""
    if max_tasks < 1:
        raise ValueError(f"`max_tasks` must be at least 1, got {max_tasks!r}")
    if max_tasks == 1:
        yield
        return
    from kfp.local.orchestrator import dag_orchestrator
    from kfp.local.orchestrator import enhanced_dag_orchestrator as dag

    original, plain = dag.run_enhanced_dag, dag_orchestrator.run_dag

    def run_dag(
        pipeline_resource_name: str,
        dag_component_spec: Any,
        executors: dict[str, Any],
        components: dict[str, Any],
        dag_arguments: dict[str, Any],
        pipeline_root: str,
        runner: Any,
        unique_pipeline_id: str,
        fail_stack: list[str],
        parent_io_store: Any = None,
    ) -> Any:
        common = dict(
            pipeline_resource_name=pipeline_resource_name,
            components=components,
            executors=executors,
            pipeline_root=pipeline_root,
            runner=runner,
            unique_pipeline_id=unique_pipeline_id,
            fail_stack=fail_stack,
        )
        tasks = dict(dag_component_spec.dag.tasks)
        kind = {name: _task_kind(dag, spec) for name, spec in tasks.items()}
        if dag.TaskKind.EXIT in kind.values():
            return original(
                dag_component_spec=dag_component_spec,
                dag_arguments=dag_arguments,
                parent_io_store=parent_io_store,
                **common,
            )
        io_store = dag.io.IOStore(parent=parent_io_store)
        inputs = dag.OrchestratorUtils.join_user_inputs_and_defaults(
            dag_arguments=dag_arguments, dag_inputs_spec=dag_component_spec.input_definitions
        )
        for key, value in inputs.items():
            io_store.put_parent_input(key, value)
        order = dag.graph_utils.topological_sort_tasks(tasks)[::-1]  # kfp.local's order: ties run in it
        order.sort(key=lambda name: first.index(name) if name in first else len(first))  # stable
        strategy = dag.pipeline_spec_pb2.PipelineTaskSpec.TriggerPolicy.TriggerStrategy
        parallel_for = dag.ParallelExecutor()

        def run(name: str) -> tuple[dict[str, Any], Any] | None:
            """The task's (outputs, status); None for a ParallelFor (it stores its outputs itself)
            and for a dsl.If found false."""
            spec = tasks[name]
            if kind[name] == dag.TaskKind.PARALLEL_FOR:
                failed = dag._run_parallel_for_task(
                    task_name=name, task_spec=spec, io_store=io_store, parallel_executor=parallel_for, **common
                )
                return ({}, dag.status.Status.FAILURE) if failed else None
            if kind[name] == dag.TaskKind.CONDITION and not dag.ConditionEvaluator().evaluate_condition(
                spec.trigger_policy.condition, io_store
            ):
                logging.info(f"Skipping conditional task {name} (condition evaluated to False)")
                return None
            return dag.execute_task(task_name=name, task_spec=spec, io_store=io_store, **common)

        ended: set[str] = set()
        failed: set[str] = set()
        running: dict[concurrent.futures.Future[Any], str] = {}
        pool = concurrent.futures.ThreadPoolExecutor(max_tasks, thread_name_prefix="kfp-local-task")
        try:
            while len(ended) < len(order):
                for name in order:
                    spec = tasks[name]
                    if name in ended or name in running.values() or not set(spec.dependent_tasks) <= ended:
                        continue
                    upstream_failed = sorted(set(spec.dependent_tasks) & failed)
                    if upstream_failed and spec.trigger_policy.strategy != strategy.ALL_UPSTREAM_TASKS_COMPLETED:
                        logging.info(f"Skipping task {name}: upstream task(s) {upstream_failed} failed.")
                        io_store.put_task_status(name, "FAILED")
                        failed.add(name)
                        ended.add(name)
                    elif len(running) < max_tasks:
                        running[pool.submit(run, name)] = name
                if len(ended) == len(order):
                    break
                if not running:  # kfp.local's own sort would have failed on such a DAG first
                    raise RuntimeError(f"tasks {sorted(set(order) - ended)} wait for tasks that are not in the DAG")
                done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    ended.add(name)
                    result = future.result()
                    if result is None:
                        continue
                    outputs, task_status = result
                    if kind[name] != dag.TaskKind.PARALLEL_FOR:
                        io_store.put_task_status(
                            name, "SUCCEEDED" if task_status == dag.status.Status.SUCCESS else "FAILED"
                        )
                    if task_status == dag.status.Status.FAILURE:
                        if kind[name] != dag.TaskKind.PARALLEL_FOR:
                            fail_stack.append(name)
                        failed.add(name)
                        continue
                    for key, output in outputs.items():
                        io_store.put_task_output(name, key, output)
        finally:
            # Not waiting for the running tasks: on Ctrl-C the caller ends their processes.
            pool.shutdown(wait=not running, cancel_futures=True)
        if failed:
            return {}, dag.status.Status.FAILURE
        outputs = dag.OrchestratorUtils.get_dag_outputs(
            dag_outputs_spec=dag_component_spec.dag.outputs, io_store=io_store
        )
        return outputs, dag.status.Status.SUCCESS

    dag.run_enhanced_dag = dag_orchestrator.run_dag = run_dag
    try:
        yield
    finally:
        dag.run_enhanced_dag, dag_orchestrator.run_dag = original, plain


def _task_kind(dag: Any, spec: Any) -> Any:
    """kfp.local's kind of a DAG task, by its own tests (``run_enhanced_dag``)."""
    strategy = dag.pipeline_spec_pb2.PipelineTaskSpec.TriggerPolicy.TriggerStrategy
    if spec.trigger_policy.strategy == strategy.ALL_UPSTREAM_TASKS_COMPLETED and dag._has_task_final_status_input(spec):
        return dag.TaskKind.EXIT
    if spec.trigger_policy.condition:
        return dag.TaskKind.CONDITION
    if spec.WhichOneof("iterator") and dag._has_valid_iterator(spec):
        return dag.TaskKind.PARALLEL_FOR
    return dag.TaskKind.REGULAR
