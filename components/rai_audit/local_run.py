"""Run a pipeline on this machine with ``kfp.local`` (SubprocessRunner, no venv per task)."""

from __future__ import annotations

import builtins
import contextlib
import io
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from kfp import local

from rai_audit.core import RAIInputError
from rai_audit.pipelines import build_audit_pipeline

# The last line of a step's traceback when it refused the user's input.
_USER_ERROR = re.compile(r"^\s*(?:[\w.]+\.)?(?:RAIInputError|ArtifactIntegrityError|TargetsMissed): (.*)$", re.M)


class _Tee(io.TextIOBase):
    """Passes writes through to a stream and keeps a copy (kfp.local prints task logs)."""

    def __init__(self, stream) -> None:
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def run_audit_locally(arguments: dict[str, Any], output_dir: str | Path, *,
                      steps: Sequence[str], runner: local.DockerRunner | None = None,
                      enable_caching: bool = False, **build: int) -> Path:
    """Run the audit pipeline with these arguments and analysis steps; return the bundle's folder.

    ``build`` holds the shard counts (``explainer_shards``, ``counterfactual_shards``).
    By default every task runs in this Python environment; with a ``DockerRunner`` each
    runs in its step's image (see ``rai_audit.kfp_components.step_images``).

    Task outputs land under ``output_dir/pipeline_root/<pipeline run>/<task>/``. A step's
    user error (bad column, bad cohort, ...) is raised here with the step's own message.

    ``enable_caching`` turns on kfp.local's task cache (in ``output_dir/pipeline_root/.kfp_cache``):
    a run in the same ``output_dir`` then reuses the constructor and the analyses of an
    earlier run (even a failed one) on the same content and parameters; their outputs stay
    in that run's folder.
    """
    root = Path(output_dir).resolve() / "pipeline_root"
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=runner or local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
               enable_caching=enable_caching)
    tee = _Tee(sys.stdout)
    # kfp.local swaps builtins.print for an indenting one and, after a ParallelFor, leaves it
    # there; code that runs later in this process (numba's registry, for one) then breaks.
    print_function = builtins.print
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(tee):
            # The images are not python:* ones; kfp warns that it cannot tell they have Python.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            run = build_audit_pipeline(steps, run_times=False, **build)(**arguments)
    except RuntimeError as err:
        cause = _USER_ERROR.findall(tee.copy.getvalue())
        reason = cause[-1] if cause else f"{err} (the failing task's log is above)"
        raise RAIInputError(f"the local pipeline run failed: {reason}") from err
    finally:
        builtins.print = print_function
    return Path(run.output.path)
