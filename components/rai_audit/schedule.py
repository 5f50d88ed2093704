"""Recurring audits on Kubeflow Pipelines: ``rai-audit schedule``.

Creates a KFP recurring run of a compiled audit pipeline through ``kfp.Client``: a cron
(KFP's 6-field form, seconds first) or an interval, at most ``max_concurrency`` runs at
once, and no catch-up of runs missed while paused (a late audit of an old model is of no
use). The pipeline's own caching settings are kept: every run fingerprints what the model
and data URIs hold then, so the constructor and the analyses are reused only when that
content (and the parameters) are unchanged (see docs/scheduling.md).

``--dry-run`` prints the request that would be sent, built by the same ``kfp.Client``
code with only the last HTTP call held back, and contacts no server.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api

from rai_audit.core import RAIInputError

RECURRING_RUNS_PATH = "/apis/v2beta1/recurringruns"


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str | None = None
    interval_seconds: int | None = None
    max_concurrency: int = 1
    catch_up: bool = False
    start_time: str | None = None
    end_time: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval_seconds is None):
            raise RAIInputError("give exactly one of --cron and --interval")
        if self.cron is not None and len(self.cron.split()) != 6:
            raise RAIInputError(
                f"--cron must have KFP's 6 fields (seconds first, e.g. '0 0 3 * * *'), got {self.cron!r}"
            )
        if self.interval_seconds is not None and self.interval_seconds < 1:
            raise RAIInputError(f"--interval must be a number of seconds >= 1, got {self.interval_seconds}")
        if self.max_concurrency < 1:
            raise RAIInputError(f"--max-concurrency must be >= 1, got {self.max_concurrency}")


class _HeldBack(Exception):
    """Raised in place of the HTTP call a dry run does not make; carries its body."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("dry run")
        self.body = body


class _DryRunClient(kfp.Client):
    """A kfp.Client whose start-up probe of the server is answered here (single-user)."""

    def get_kfp_healthz(self, sleep_duration: int = 5):
        return kfp_server_api.V2beta1GetHealthzResponse(multi_user=False)


def _create(client, experiment_id: str, pipeline: Path, arguments: dict[str, Any], schedule: Schedule):
    return client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=schedule.name,
        description=schedule.description,
        start_time=schedule.start_time,
        end_time=schedule.end_time,
        cron_expression=schedule.cron,
        interval_second=schedule.interval_seconds,
        max_concurrency=schedule.max_concurrency,
        no_catchup=not schedule.catch_up,
        params=arguments,
        pipeline_package_path=str(pipeline),
    )


def schedule_audit(
    pipeline: str | Path,
    arguments: dict[str, Any],
    schedule: Schedule,
    *,
    host: str | None,
    experiment: str,
    namespace: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Create the recurring run (or, with ``dry_run``, return the request instead).

    Returns ``{"method", "url", "body"}`` for a dry run, else the created recurring run's
    id, name and the experiment's id.
    """
    pipeline = Path(pipeline)
    if not pipeline.is_file():
        raise RAIInputError(f"compiled pipeline {pipeline} does not exist (see `rai-audit compile`)")
    # kfp.Client warns on every start that it needs a KFP 2 server; so does this command.
    warnings.filterwarnings(
        "ignore", message="This client only works with Kubeflow Pipeline v2", category=FutureWarning
    )
    if dry_run:
        client = _DryRunClient(host=host or "http://localhost:8888", namespace=namespace)

        def hold_back(recurring_run, **_):
            # What the API client would serialize as the POST body.
            raise _HeldBack(client._recurring_run_api.api_client.sanitize_for_serialization(recurring_run))

        client._recurring_run_api.recurring_run_service_create_recurring_run = hold_back
        try:
            _create(
                client,
                f"<id of experiment {experiment!r}, looked up or created on the server>",
                pipeline,
                arguments,
                schedule,
            )
        except _HeldBack as held:
            return {"method": "POST", "url": f"{host or '<host>'}{RECURRING_RUNS_PATH}", "body": held.body}
        raise AssertionError("kfp.Client did not reach its create call")  # pragma: no cover
    client = kfp.Client(host=host, namespace=namespace)
    experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
    created = _create(client, experiment_id, pipeline, arguments, schedule)
    return {"recurring_run_id": created.recurring_run_id, "name": created.display_name, "experiment_id": experiment_id}
