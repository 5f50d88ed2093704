"""Benchmark of the error analysis step: wall time and peak memory as the test set grows.

Cases: the full Adult test set (16,281 rows) and an Adult-shaped synthetic set of
1,000,000 rows (Adult test rows resampled with replacement, numeric columns jittered).
Each case runs the constructor (timed on its own), then the error analysis with Azure
ML's defaults (max_depth 3, num_leaves 31, min_child_samples 20, heatmap on age x
education). Each step runs in a fresh spawned process, so its peak RSS is its own and not
the parent's data.

Optional peer (``--peer-venv``): responsibleai's ``erroranalysis`` (the library behind
Azure ML's component) in its own venv, because it pins pandas<2. It runs
``PredictionsAnalyzer`` on the constructor's own test features and predictions, doing
what Azure's ``create_error_report`` does (tree, heatmap, importances), part by part.

    .venv/bin/python bench/error_analysis_bench.py [--rows 16281 1000000] [--peer-venv /tmp/peer-venv]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from rai_audit.demo import DEMO_COHORTS, SENSITIVE, TARGET, demo_data_path, train_demo_model
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from rai_audit.steps.error_analysis import ErrorAnalysisOptions, run_error_analysis

SEED = 0
ADULT_TEST_ROWS = 16_281
# Azure ML's error analysis defaults, and a heatmap over one numeric and one categorical.
EA_OPTIONS = dict(max_depth=3, num_leaves=31, min_child_samples=20, heatmap_features=["age", "education"])

# Runs inside the peer venv (pandas 1.5, erroranalysis 0.5): reads the constructor
# artifact and times the parts of BaseAnalyzer.create_error_report one by one.
PEER_SCRIPT = r"""
import json, sys, time
import pandas as pd
from erroranalysis._internal.error_analyzer import PredictionsAnalyzer
from erroranalysis._internal.constants import ModelTask

folder, options = sys.argv[1], json.loads(sys.argv[2])
seconds = {}
def timed(name, fn):
    start = time.perf_counter(); out = fn(); seconds[name] = time.perf_counter() - start; return out

meta = json.load(open(f"{folder}/meta.json"))
def read():
    return pd.read_parquet(f"{folder}/test.parquet"), pd.read_parquet(f"{folder}/predictions.parquet")
features, predictions = timed("read", read)
analyzer = timed("analyzer", lambda: PredictionsAnalyzer(
    predictions["y_pred"].to_numpy(), features[meta["features"]], predictions["y_true"].to_numpy(),
    meta["features"], meta["categorical_features"], model_task=ModelTask.CLASSIFICATION,
    classes=meta["classes"]))
tree = timed("tree", lambda: analyzer.compute_error_tree(
    analyzer.feature_names, None, None, max_depth=options["max_depth"],
    num_leaves=options["num_leaves"], min_child_samples=options["min_child_samples"]))
timed("heatmap", lambda: analyzer.compute_matrix(options["heatmap_features"], None, None))
# Azure's manager skips importances when the data has missing values (Adult has);
# timed anyway to compare like with like. erroranalysis samples 50,000 rows for them.
timed("importances", lambda: analyzer.compute_importances())
timed("root_stats", lambda: analyzer.compute_root_stats())
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
parents = {node["parentId"] for node in tree}
print(json.dumps({"seconds": seconds, "n_leaves": sum(node["id"] not in parents for node in tree),
                  "peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""


def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, from /proc (Linux).

    Not getrusage's ru_maxrss: Linux carries it over fork and exec, so every child would
    report at least the parent's RSS at the time it was started (model, data, ...).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _timed_job(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run in the child: the call's wall time, and the child's RSS before and at peak."""
    base = rss_mb("VmRSS")  # interpreter + imports (the modules are loaded by unpickling fn)
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "base_rss_mb": base, "peak_rss_mb": rss_mb("VmHWM"), "result": result}


def run_in_fresh_process(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A new spawned process per call, so the peak RSS is this call's alone (a reused
    worker would keep earlier peaks; a forked one would start with the parent's pages)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_timed_job, fn, *args, **kwargs).result()


def adult_like(test: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
    """``n_rows`` Adult test rows drawn with replacement, numbers jittered a little.

    Categorical values (and their missing values) and the label stay as drawn.
    education-num is left alone: it is a code of education, one to one.
    """
    rng = np.random.default_rng(seed)
    rows = test.iloc[rng.integers(0, len(test), n_rows)].reset_index(drop=True)

    def shift(column: str, low: int, high: int) -> None:  # +-1, kept in the observed range
        rows[column] = (rows[column] + rng.integers(-1, 2, n_rows)).clip(low, high)

    def scale(column: str) -> None:  # +-2 %; zeros stay zero (most capital gains are 0)
        noisy = rows[column] * (1 + rng.normal(0, 0.02, n_rows))
        rows[column] = noisy.round()

    shift("age", test["age"].min(), test["age"].max())
    shift("hours-per-week", test["hours-per-week"].min(), test["hours-per-week"].max())
    for column in ("fnlwgt", "capital-gain", "capital-loss"):
        scale(column)
    return rows.astype(test.dtypes.to_dict())


def prepare_inputs(workdir: Path, sizes: list[int]) -> tuple[Path, Path, dict[int, Path]]:
    """The demo model trained on Adult train, and one test file per size."""
    train_path = demo_data_path("adult_train.parquet")
    model_path = workdir / "model.joblib"
    joblib.dump(train_demo_model(pd.read_parquet(train_path)), model_path)
    test = pd.read_parquet(demo_data_path("adult_test.parquet"))
    tests = {}
    for n in sizes:
        tests[n] = workdir / f"test_{n}.parquet"
        data = test if n == len(test) else adult_like(test, n, SEED)
        data.to_parquet(tests[n], index=False)
    return model_path, train_path, tests


def last_line(done: subprocess.CompletedProcess) -> str:
    return (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]


def peer_python(venv: str | None, module: str = "erroranalysis") -> tuple[Path | None, str]:
    """The peer venv's python if ``module`` imports there, else None and why not."""
    if not venv:
        return None, "not run: no --peer-venv given"
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        return None, f"not run: {python} does not exist"
    check = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True)
    if check.returncode:
        return None, f"not run: {module} does not import in {venv}: {last_line(check)}"
    return python, ""


def run_peer(python: Path, constructor_dir: Path) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), "-c", PEER_SCRIPT, str(constructor_dir), json.dumps(EA_OPTIONS)], capture_output=True, text=True
    )
    if done.returncode:
        return {"error": last_line(done)}
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_results(results: list[dict[str, Any]], load_before: float) -> None:
    # Other work on the machine skews the figures (the model's OpenMP predict most): say how busy it was.
    print(f"\nCPUs {os.cpu_count()}; 1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(
        f"{'rows':>10} {'constructor s':>14} {'error analysis s':>17} {'peak RSS MB':>12} "
        f"{'(base MB)':>10} {'s per 100k rows':>16} {'leaves':>7}"
    )
    for r in results:
        ea = r["error_analysis"]
        print(
            f"{r['rows']:>10,} {r['constructor']['seconds']:>14.2f} {ea['seconds']:>17.2f} "
            f"{ea['peak_rss_mb']:>12.0f} {ea['base_rss_mb']:>10.0f} "
            f"{ea['seconds'] / r['rows'] * 1e5:>16.3f} {ea['result'].n_leaves:>7}"
        )
    for small, large in zip(results, results[1:]):
        a, b = small["error_analysis"], large["error_analysis"]
        print(
            f"growth {small['rows']:,} -> {large['rows']:,}: rows x{large['rows'] / small['rows']:.1f}, "
            f"error analysis time x{b['seconds'] / a['seconds']:.1f}, "
            f"peak RSS x{b['peak_rss_mb'] / a['peak_rss_mb']:.1f}"
        )
    for r in results:
        peer, label = r["peer"], f"peer erroranalysis, {r['rows']:,} rows:"
        if isinstance(peer, str):
            print(label, peer)
        elif "error" in peer:
            print(label, "failed:", peer["error"])
        else:
            total = sum(peer["seconds"].values())
            parts = ", ".join(f"{k} {v:.2f}" for k, v in peer["seconds"].items())
            print(
                f"{label} {total:.2f} s in all ({parts}); peak RSS {peer['peak_rss_mb']:.0f} MB; "
                f"{peer['n_leaves']} leaves; ours/peer time {r['error_analysis']['seconds'] / total:.2f}"
            )


def run(workdir: Path, sizes: list[int], peer_venv: str | None) -> list[dict[str, Any]]:
    print(f"training the demo model and writing inputs to {workdir} ...", flush=True)
    model_path, train_path, tests = prepare_inputs(workdir, sizes)
    python, why_no_peer = peer_python(peer_venv)
    constructor_options = ConstructorOptions(
        allow_pickle=True,  # its own joblib model
        target_column=TARGET,
        task_type="binary_classification",
        positive_label=">50K",
        sensitive_features=SENSITIVE,
        cohorts=DEMO_COHORTS,
        random_state=SEED,
    )
    results = []
    for n in sizes:
        constructor_dir, ea_dir = workdir / f"constructor_{n}", workdir / f"error_analysis_{n}"
        print(f"{n:,} rows: constructor ...", flush=True)
        result = {
            "rows": n,
            "constructor": run_in_fresh_process(
                run_constructor, model_path, train_path, tests[n], constructor_dir, options=constructor_options
            ),
        }
        print(f"{n:,} rows: error analysis ...", flush=True)
        result["error_analysis"] = run_in_fresh_process(
            run_error_analysis, constructor_dir, ea_dir, options=ErrorAnalysisOptions(**EA_OPTIONS)
        )
        if python:
            print(f"{n:,} rows: peer erroranalysis ...", flush=True)
        result["peer"] = run_peer(python, constructor_dir) if python else why_no_peer
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[ADULT_TEST_ROWS, 1_000_000],
        help=f"test set sizes; {ADULT_TEST_ROWS} is the real Adult test set, others are synthetic",
    )
    p.add_argument(
        "--workdir",
        help="keep inputs and artifacts in a new subfolder of this (default: a temporary folder, removed at the end)",
    )
    p.add_argument("--peer-venv", help="venv with responsibleai's erroranalysis, to run the peer")
    args = p.parse_args(argv)
    if min(args.rows) < 1:
        p.error("--rows must be positive")
    sizes = sorted(set(args.rows))
    load_before = os.getloadavg()[0]
    if args.workdir:  # a new subfolder each run: the steps refuse to overwrite an artifact
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        results = run(Path(tempfile.mkdtemp(prefix="ea-bench-", dir=args.workdir)), sizes, args.peer_venv)
    else:
        with tempfile.TemporaryDirectory(prefix="ea-bench-") as tmp:
            results = run(Path(tmp), sizes, args.peer_venv)
    print_results(results, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
