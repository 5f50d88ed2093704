"""Scale benchmark: the whole audit on Adult-shaped test sets of 100,000 and 1,000,000 rows.

The demo model trained on Adult train (as given, saved with skops); each test set is the error analysis
benchmark's (Adult test rows resampled with replacement, numeric columns jittered). Per
size, the full audit (constructor, error analysis, explainer, counterfactual, causal,
gather, scorecard) runs end to end with ``rai-audit run`` (kfp.local, each task its own
subprocess) in a fresh process. Sampling only where a step records it: ``sample_size`` test
rows for the per-row steps (explainer, counterfactual, causal local effects) and the causal
fit's ``train_sample_size``; the constructor, error analysis, gather and scorecard see every
row. Printed per size: wall time and peak RSS of the whole run (process tree, sampled every
0.1 s), and per task its wall time (kfp.local's log) and peak RSS (its process tree); then
the growth between sizes and the slowest task at the largest size.

Targets (the issue): 1,000,000 rows in under 10 minutes and 4 GB on 2 cores, with cost
growing no worse than linearly in the rows.

With ``--profile``, the slowest task at the largest size is run once more alone under
pyinstrument (in a fresh process, on that run's artifacts) and the top of its profile printed.

    .venv/bin/python bench/scale_bench.py [--rows 100000 1000000] [--sample-size 2000]
        [--causal-train-rows 10000] [--profile] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import joblib
import yaml

# The error analysis benchmark's inputs (demo model, Adult-shaped test sets), the causal
# benchmark's analysis, and the end-to-end benchmark's process-tree measurement.
from causal_bench import ANALYSIS as CAUSAL_ANALYSIS
from e2e_bench import NO_TASK, RAI_AUDIT, kfp_run_dir, run_measured, run_task_seconds, save_skops
from error_analysis_bench import EA_OPTIONS, SEED, prepare_inputs
from rai_audit.demo import DEMO_COHORTS, DEMO_SCORECARD, SENSITIVE, TARGET

# The pipeline's tasks in the order they run (kfp.local runs one at a time).
TASKS = [
    "fingerprint-inputs",
    "constructor",
    "error-analysis",
    "explainer",
    "counterfactual",
    "causal",
    "gather",
    "scorecard",
]
# A task's artifact folder inside the run (kfp.local: <run>/<task>/<output>).
OUTPUTS = {
    "constructor": "insights",
    "error-analysis": "error_analysis",
    "explainer": "explanation",
    "counterfactual": "counterfactuals",
    "causal": "causal",
    "gather": "dashboard",
    "scorecard": "scorecard",
}


def audit_config(
    model: Path, trusted: list[str], train: Path, test: Path, sample_size: int, causal_train_rows: int
) -> dict[str, Any]:
    return {
        "model": str(model),
        "skops_trusted_types": trusted,
        "train_data": str(train),
        "test_data": str(test),
        "target_column": TARGET,
        "task_type": "binary_classification",
        "positive_label": ">50K",
        "sensitive_features": SENSITIVE,
        "cohorts": DEMO_COHORTS,
        "sample_size": sample_size,
        "random_state": SEED,
        "error_analysis": dict(EA_OPTIONS),
        "explainer": {"method": "auto", "rows": "sample"},
        "counterfactual": {"total_CFs": 10, "desired_class": "opposite", "rows": "sample"},
        "causal": {**CAUSAL_ANALYSIS, "train_sample_size": causal_train_rows, "rows": "sample"},
        "scorecard": {"config": DEMO_SCORECARD},
    }


def run(workdir: Path, sizes: list[int], sample_size: int, causal_train_rows: int) -> list[dict[str, Any]]:
    print(f"training the demo model and writing inputs to {workdir} ...", flush=True)
    joblib_path, train_path, tests = prepare_inputs(workdir, sizes)
    model_path = workdir / "model.skops"
    trusted = save_skops(joblib.load(joblib_path), model_path)
    results = []
    for n in sizes:
        config = workdir / f"audit_{n}.yaml"
        config.write_text(
            yaml.safe_dump(
                audit_config(model_path, trusted, train_path, tests[n], sample_size, causal_train_rows), sort_keys=False
            )
        )
        print(f"{n:,} rows: rai-audit run ...", flush=True)
        measured = run_measured(
            [str(RAI_AUDIT), "run", str(config), "--output", str(workdir / f"run_{n}")], workdir / f"run_{n}.log"
        )
        results.append(
            {
                "rows": n,
                "config": config,
                "run_dir": kfp_run_dir(measured["log"]),
                "task_seconds": run_task_seconds(workdir / f"run_{n}"),
                **measured,
            }
        )
        print(
            f"{n:,} rows: {measured['seconds']:.1f} s, peak {measured['peak_mb']:.0f} MB "
            f"(proportional set size: {measured['peak_pss_mb']:.0f} MB, shared pages counted once)",
            flush=True,
        )
    return results


def print_results(results: list[dict[str, Any]], load_before: tuple[float, ...]) -> str:
    loads = ", ".join(f"{x:.2f}" for x in load_before)
    print(
        f"\nCPUs {os.cpu_count()}; load average (1, 5, 15 min) before {loads}, "
        f"after {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    head = f"{'task':<16}" + "".join(f" {format(r['rows'], ',') + ' s':>13} {'MB':>6}" for r in results)
    growth = len(results) > 1
    if growth:
        head += f" {'time x':>7} {'MB x':>6}"
    print(head)
    names = [t for t in TASKS if any(t in r["task_seconds"] for r in results)]
    names += sorted({t for r in results for t in r["task_seconds"]} - set(names))
    for task in names + ["kfp.local driver", "whole run"]:
        line = f"{task:<16}"
        values = []
        for r in results:
            if task == "whole run":
                s, mb = r["seconds"], r["peak_mb"]
            elif task == "kfp.local driver":  # the `rai-audit run` process itself; time: the rest
                s, mb = r["seconds"] - sum(r["task_seconds"].values()), r["tasks"].get(NO_TASK, {}).get("peak_mb")
            else:
                s, mb = r["task_seconds"].get(task), r["tasks"].get(task, {}).get("peak_mb")
            values.append((s, mb))
            line += f" {s if s is not None else float('nan'):>13.1f} {mb if mb else float('nan'):>6.0f}"
        if growth and values[0][0] and values[-1][0]:
            line += f" {values[-1][0] / values[0][0]:>7.1f} {values[-1][1] / values[0][1]:>6.1f}"
        print(line)
    print(
        "s: wall time (whole run: the `rai-audit run` process; a task: kfp.local's log, its own process with its "
        "imports); MB: peak RSS summed over the process tree, sampled every 0.1 s; time x / MB x: largest size "
        "over smallest. The whole run's time includes kfp.local's driver (its imports, building the pipeline)."
    )
    for r in results:
        print(f"{r['rows']:,} rows: load average before the run {r['load']:.2f}")
    if growth:
        small, large = results[0], results[-1]
        rows_x, time_x = large["rows"] / small["rows"], large["seconds"] / small["seconds"]
        print(
            f"growth {small['rows']:,} -> {large['rows']:,}: rows x{rows_x:.1f}, whole run time x{time_x:.1f} "
            f"({'no worse than' if time_x <= rows_x else 'WORSE than'} linear), peak RSS "
            f"x{large['peak_mb'] / small['peak_mb']:.1f}"
        )
    large = results[-1]
    slowest = max(large["task_seconds"], key=large["task_seconds"].get)
    print(
        f"slowest task at {large['rows']:,} rows: {slowest} ({large['task_seconds'][slowest]:.1f} s of "
        f"{large['seconds']:.1f} s)"
    )
    if large["rows"] >= 1_000_000:
        minutes, gb = large["seconds"] / 60, large["peak_mb"] / 1024
        print(
            f"targets at {large['rows']:,} rows: under 10 minutes: {minutes:.1f} min, "
            f"{'MET' if minutes < 10 else 'NOT MET'}; under 4 GB: {gb:.2f} GB, {'MET' if gb < 4 else 'NOT MET'}"
        )
    return slowest


# --- Profiling one task ---------------------------------------------------------------------


def task_call(task: str, run_dir: Path, config: dict[str, Any], out: Path):
    """(function, args, kwargs) that redo a task of a finished run on its inputs, into ``out``."""
    from rai_audit.steps.causal import CausalOptions, run_causal
    from rai_audit.steps.constructor import ConstructorOptions, run_constructor
    from rai_audit.steps.counterfactual import CounterfactualOptions, run_counterfactual
    from rai_audit.steps.error_analysis import ErrorAnalysisOptions, run_error_analysis
    from rai_audit.steps.explainer import ExplainerOptions, run_explainer
    from rai_audit.steps.gather import run_gather
    from rai_audit.steps.scorecard import ScorecardOptions, run_scorecard

    constructor = run_dir / "constructor" / "insights"
    seed = {"random_state": config["random_state"]}
    if task == "constructor":
        return (
            run_constructor,
            (config["model"], config["train_data"], config["test_data"], out),
            {
                "options": ConstructorOptions(
                    target_column=config["target_column"],
                    task_type=config["task_type"],
                    positive_label=config["positive_label"],
                    sensitive_features=config["sensitive_features"],
                    cohorts=config["cohorts"],
                    sample_size=config["sample_size"],
                    skops_trusted_types=config["skops_trusted_types"],
                    **seed,
                )
            },
        )
    steps = {
        "error-analysis": (run_error_analysis, ErrorAnalysisOptions, "error_analysis"),
        "explainer": (run_explainer, ExplainerOptions, "explainer"),
        "counterfactual": (run_counterfactual, CounterfactualOptions, "counterfactual"),
        "causal": (run_causal, CausalOptions, "causal"),
    }
    if task in steps:
        function, options, key = steps[task]
        return function, (constructor, out), {"options": options(**config[key], **seed)}
    if task == "gather":
        insights = [run_dir / t / OUTPUTS[t] for t in ("error-analysis", "explainer", "counterfactual", "causal")]
        return run_gather, (constructor, insights, out), {}
    if task == "scorecard":
        return (
            run_scorecard,
            (run_dir / "gather" / "dashboard", config["scorecard"]["config"], out),
            {"options": ScorecardOptions(**seed)},
        )
    raise ValueError(f"no profile for task {task!r}")


def _profiled(task: str, run_dir: str, config_path: str, out: str, report: str) -> None:
    """Runs in a fresh process: the task under pyinstrument, its text report written to ``report``."""
    import time

    from pyinstrument import Profiler

    config = yaml.safe_load(Path(config_path).read_text())
    function, args, kwargs = task_call(task, Path(run_dir), config, Path(out))
    profiler = Profiler(interval=0.01)
    start = time.perf_counter()
    profiler.start()
    function(*args, **kwargs)
    profiler.stop()
    seconds = time.perf_counter() - start
    text = profiler.output_text(unicode=False, color=False)
    Path(report).write_text(f"{task}: {seconds:.1f} s under pyinstrument\n{text}")


def profile(result: dict[str, Any], task: str, workdir: Path, lines: int = 45) -> None:
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        print("--profile: pyinstrument is not installed (.venv/bin/pip install pyinstrument)")
        return
    report = workdir / f"profile_{task}_{result['rows']}.txt"
    print(f"\nprofiling {task} at {result['rows']:,} rows (pyinstrument, a fresh process) ...", flush=True)
    load = os.getloadavg()[0]
    code = "import sys; sys.path.insert(0, sys.argv[1]); import scale_bench; scale_bench._profiled(*sys.argv[2:])"
    subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(Path(__file__).parent),
            task,
            str(result["run_dir"]),
            str(result["config"]),
            str(workdir / f"profiled_{task}_{result['rows']}"),
            str(report),
        ],
        check=True,
    )
    text = report.read_text().splitlines()
    print(f"load average before {load:.2f}; the whole report: {report}")
    print("\n".join(text[:lines]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[100_000, 1_000_000],
        help="test set sizes (16281 is the real Adult test set, others are synthetic)",
    )
    p.add_argument("--sample-size", type=int, default=2000, help="test rows of the per-row steps (0: all)")
    p.add_argument("--causal-train-rows", type=int, default=10_000, help="train rows of the causal fit (0: all)")
    p.add_argument("--profile", action="store_true", help="profile the slowest task at the largest size")
    p.add_argument(
        "--workdir",
        help="keep inputs and runs in a new subfolder of this (default: a temporary folder, removed at the end)",
    )
    args = p.parse_args(argv)
    if min(args.rows) < 1 or args.sample_size < 0 or args.causal_train_rows < 0:
        p.error("--rows must be positive, --sample-size and --causal-train-rows >= 0")
    sizes = sorted(set(args.rows))
    load_before = os.getloadavg()

    def go(workdir: Path) -> None:
        results = run(workdir, sizes, args.sample_size, args.causal_train_rows)
        slowest = print_results(results, load_before)
        if args.profile:
            profile(results[-1], slowest, workdir)

    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        go(Path(tempfile.mkdtemp(prefix="scale-bench-", dir=args.workdir)))
    else:
        with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
            go(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
