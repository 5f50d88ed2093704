"""Run a pipeline on this machine with ``kfp.local`` (SubprocessRunner, no venv per task)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from kfp import local

from rai_audit.core import RAIInputError
from rai_audit.pipelines import audit_pipeline


def run_audit_locally(arguments: dict[str, Any], output_dir: str | Path) -> Path:
    """Run the audit pipeline with these arguments; return the dashboard bundle's folder.

    Task outputs land under ``output_dir/pipeline_root/<pipeline run>/<task>/``.
    """
    root = Path(output_dir).resolve() / "pipeline_root"
    root.mkdir(parents=True, exist_ok=True)
    # The tasks run in this Python environment, which has rai_audit installed.
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    try:
        with warnings.catch_warnings():
            # Locally every task runs in this environment; the step images matter on a cluster.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            run = audit_pipeline(**arguments)
    except RuntimeError as err:
        raise RAIInputError(f"the local pipeline run failed: {err} (the failing task's log is above)") from err
    return Path(run.output.path)
