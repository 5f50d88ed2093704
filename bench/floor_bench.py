"""Floor benchmark: how close the cheap steps (constructor, gather) are to reading and predicting.

Per test set size (the Adult test set's 16,281 rows, and Adult-shaped synthetic sets of
100,000 and 1,000,000 rows, the error analysis benchmark's), each in a fresh spawned
process (wall time of the call, peak RSS from VmHWM):

- floor: read the test Parquet, load the demo model (skops), ``predict`` and ``predict_proba`` on
  every row (each part timed, the least of ``--repeats`` tries), the least any audit must do;
- the constructor (``run_constructor``: reads train and test, predicts once, writes the
  insights artifact);
- gather (``run_gather`` on that constructor artifact alone, no analysis insights: model
  overview, fairness, data analysis, cohort views, the page).

The table gives each time and its ratio to the floor.

    .venv/bin/python bench/floor_bench.py [--rows 16281 100000 1000000] [--repeats 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

# The error analysis benchmark's inputs (demo model, Adult-shaped test sets) and its
# measurement (one spawned child per call, its own VmHWM); the skops helpers of e2e_bench.
from e2e_bench import load_skops, save_skops
from error_analysis_bench import ADULT_TEST_ROWS, SEED, prepare_inputs, run_in_fresh_process
from rai_audit.demo import DEMO_COHORTS, SENSITIVE, TARGET
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from rai_audit.steps.gather import run_gather


def floor(model_path: Path, test_path: Path, repeats: int) -> dict[str, float]:
    """Read, load, predict, predict_proba: the least seconds of each over ``repeats`` tries.
    The least, because the model's OpenMP predict slows down many times over whenever another
    process holds a core, and the floor is what the machine can do."""
    best: dict[str, float] = {}

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
        return out

    for _ in range(repeats):
        features = timed("read", lambda: pd.read_parquet(test_path).drop(columns=[TARGET]))
        model = timed("load model", lambda: load_skops(model_path))
        timed("predict", lambda: model.predict(features))
        timed("predict_proba", lambda: model.predict_proba(features))
    return best


def run(workdir: Path, sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    print(f"training the demo model and writing inputs to {workdir} ...", flush=True)
    joblib_path, train_path, tests = prepare_inputs(workdir, sizes)
    model_path = workdir / "model.skops"  # the file the constructor loads (skops: rai-audit's safe format)
    trusted = save_skops(joblib.load(joblib_path), model_path)
    options = ConstructorOptions(
        target_column=TARGET,
        task_type="binary_classification",
        positive_label=">50K",
        sensitive_features=SENSITIVE,
        cohorts=DEMO_COHORTS,
        sample_size=2000,
        random_state=SEED,
        skops_trusted_types=trusted,
    )
    results = []
    for n in sizes:
        constructor_dir, bundle = workdir / f"constructor_{n}", workdir / f"dashboard_{n}"
        result: dict[str, Any] = {"rows": n, "load": os.getloadavg()[0]}
        print(f"{n:,} rows: floor, constructor, gather ...", flush=True)
        result["floor"] = run_in_fresh_process(floor, model_path, tests[n], repeats)
        result["constructor"] = run_in_fresh_process(
            run_constructor, model_path, train_path, tests[n], constructor_dir, options=options
        )
        result["gather"] = run_in_fresh_process(run_gather, constructor_dir, [], bundle)
        results.append(result)
    return results


def print_results(results: list[dict[str, Any]], load_before: tuple[float, ...], repeats: int) -> None:
    loads = ", ".join(f"{x:.2f}" for x in load_before)
    print(
        f"\nCPUs {os.cpu_count()}; load average (1, 5, 15 min) before {loads}, "
        f"after {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"{'rows':>10} {'read s':>7} {'predict s':>9} {'proba s':>8} {'floor s':>8} {'floor MB':>8} "
        f"{'constr. s':>9} {'constr. MB':>10} {'x floor':>7} {'gather s':>8} {'gather MB':>9} {'x floor':>7} "
        f"{'load':>5}"
    )
    for r in results:
        parts = r["floor"]["result"]
        floor_s = sum(parts.values())
        c, g = r["constructor"], r["gather"]
        print(
            f"{r['rows']:>10,} {parts['read']:>7.2f} {parts['predict']:>9.2f} {parts['predict_proba']:>8.2f} "
            f"{floor_s:>8.2f} {r['floor']['peak_rss_mb']:>8.0f} {c['seconds']:>9.2f} {c['peak_rss_mb']:>10.0f} "
            f"{c['seconds'] / floor_s:>7.1f} {g['seconds']:>8.2f} {g['peak_rss_mb']:>9.0f} "
            f"{g['seconds'] / floor_s:>7.1f} {r['load']:>5.2f}"
        )
    print(
        f"floor s: read the test Parquet + load the model + predict + predict_proba, each part the least of "
        f"{repeats} tries (loading the model is the rest of the floor); floor MB: that process's peak RSS "
        "(VmHWM); constr./gather s: run_constructor / run_gather (on the constructor artifact alone), each "
        "once, the call's wall time in a fresh process (imports excluded), MB its peak RSS (VmHWM); x floor: "
        "its time over the floor's. load: 1-minute load average before the size's runs."
    )
    for small, large in zip(results, results[1:]):
        rows_x = large["rows"] / small["rows"]
        floor_x = sum(large["floor"]["result"].values()) / sum(small["floor"]["result"].values())
        parts = f"floor x{floor_x:.1f}, " + ", ".join(
            f"{k} x{large[k]['seconds'] / small[k]['seconds']:.1f}" for k in ("constructor", "gather")
        )
        print(f"growth {small['rows']:,} -> {large['rows']:,}: rows x{rows_x:.1f}; time {parts}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[ADULT_TEST_ROWS, 100_000, 1_000_000],
        help=f"test set sizes; {ADULT_TEST_ROWS} is the real Adult test set, others are synthetic",
    )
    p.add_argument("--repeats", type=int, default=3, help="tries of each floor part (the least is kept)")
    p.add_argument(
        "--workdir",
        help="keep inputs and artifacts in a new subfolder of this (default: a temporary folder, removed at the end)",
    )
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be positive")
    if min(args.rows) < 1:
        p.error("--rows must be positive")
    sizes = sorted(set(args.rows))
    load_before = os.getloadavg()
    if args.workdir:  # a new subfolder each run: the steps refuse to overwrite an artifact
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        results = run(Path(tempfile.mkdtemp(prefix="floor-bench-", dir=args.workdir)), sizes, args.repeats)
    else:
        with tempfile.TemporaryDirectory(prefix="floor-bench-") as tmp:
            results = run(Path(tmp), sizes, args.repeats)
    print_results(results, load_before, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
