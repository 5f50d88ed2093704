"""Each task's start: from the process's launch to its step function's first line (issue 25).

A task's container runs ``python3 -m kfp.dsl.executor_main`` with ``_KFP_RUNTIME=true`` on
the component's own source, which imports kfp, the artifact types and, inside the component
function, the step's module; the step's work begins after that. This times, in a fresh
process per run, exactly those imports for each task, at this checkout and (with
``--before REV``) at an earlier commit checked out in a temporary worktree, side by side; the
median of ``--repeat`` runs each. The libraries a step's work itself needs (scikit-learn to
unpickle a scikit-learn model or compute a metric, lightgbm, econml) are then imported by the
work, timed in the step's own seconds, and listed in the last column with their import time.

    .venv/bin/python bench/start_bench.py [--before 8afb0e6] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What a component's generated source imports before its function body runs.
KFP_PRELUDE = (
    "import kfp.dsl.executor_main; import kfp; from kfp import dsl; from kfp.dsl import *; from typing import *; "
    "from rai_audit.kfp_types import Analysis, Insights"
)
# Task -> the modules its component function imports, and the libraries its work then imports itself.
TASKS = {
    "fingerprint-inputs": ("rai_audit.core.fingerprint", ""),
    "constructor": ("rai_audit.kfp_runtime, rai_audit.steps.constructor", "sklearn (a scikit-learn model)"),
    "error-analysis": ("rai_audit.kfp_runtime, rai_audit.steps.error_analysis", "lightgbm, sklearn"),
    "explainer": ("rai_audit.kfp_runtime, rai_audit.steps.explainer", "sklearn, shap, interpret_community"),
    "counterfactual": ("rai_audit.kfp_runtime, rai_audit.steps.counterfactual", "sklearn (a scikit-learn model)"),
    "causal": ("rai_audit.kfp_runtime, rai_audit.steps.causal", "econml, sklearn"),
    "merge-explanations": ("rai_audit.steps.explainer", ""),
    "merge-counterfactuals": ("rai_audit.steps.counterfactual", ""),
    "merge-causal": ("rai_audit.steps.causal", ""),
    "gather": ("rai_audit.steps.gather", "sklearn (metrics)"),
    "scorecard": ("rai_audit.kfp_runtime, rai_audit.steps.scorecard", "sklearn (metrics), weasyprint"),
    "publish": ("rai_audit.archive, rai_audit.storage", ""),
    "notify": ("rai_audit.specs, rai_audit.steps.notify", ""),
}
LIBRARIES = {"sklearn": "import sklearn.metrics", "lightgbm": "import lightgbm", "econml": "import econml.dml"}


def seconds_to_run(code: str, components: Path, repeat: int) -> float:
    """Median wall time of a fresh ``python -c code`` with ``components`` first on the path."""
    env = {**os.environ, "_KFP_RUNTIME": "true", "PYTHONPATH": str(components)}
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def task_code(modules: str) -> str:
    return f"{KFP_PRELUDE}; import {modules}"


def commit(path: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--short", "HEAD"], text=True, capture_output=True
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="an earlier commit to time beside this checkout")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; checkout {commit(ROOT)}")
    with tempfile.TemporaryDirectory() as tmp:
        before = None
        if args.before:
            before = Path(tmp) / "before"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(before), args.before], check=True
            )
        try:
            floor = seconds_to_run("pass", ROOT / "components", args.repeat)
            print(f"python itself (no import): {floor:.2f} s; median of {args.repeat} fresh processes per figure\n")
            head = f"{'task':<24}{'before s':>10}{'now s':>8}   the work then imports"
            print(head)
            for task, (modules, work) in TASKS.items():
                now = seconds_to_run(task_code(modules), ROOT / "components", args.repeat)
                was = seconds_to_run(task_code(modules), before / "components", args.repeat) if before else None
                print(f"{task:<24}{'' if was is None else f'{was:.2f}':>10}{now:>8.2f}   {work}")
            print()
            for name, code in LIBRARIES.items():
                print(f"import {name} alone: {seconds_to_run(code, ROOT / 'components', args.repeat) - floor:.2f} s")
        finally:
            if before:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=True)
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
