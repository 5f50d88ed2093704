"""Benchmark of the counterfactual step against dice-ml called the straightforward way.

On the demo model and the same Adult test rows (a stratified, seeded sample of ``--rows``,
1,000 by default), each in a fresh process:
- ours: ``run_counterfactual`` with the batched engine (and, with ``--with-dice-engine``,
  the dice engine over 2 worker processes);
- straightforward dice-ml: one ``generate_counterfactuals`` call per row (method random),
  every counterfactual then checked with the real model, as the step checks its own.
Both ask for ``total_CFs`` (10) counterfactuals of the opposite class per row. Printed:
rows per second, the share of returned counterfactuals that are valid, and the share of
rows with at least one valid counterfactual. The target is >= 10x the rows per second of
the straightforward way with >= 95 % validity.

    .venv/bin/python bench/counterfactual_bench.py [--rows 1000] [--total-cfs 10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from error_analysis_bench import prepare_inputs, run_in_fresh_process
from rai_audit.core import artifacts as A
from rai_audit.demo import SENSITIVE, TARGET
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from rai_audit.steps.counterfactual import MISSING, CounterfactualOptions, run_counterfactual


def ours(constructor_dir: str, out: str, options: dict[str, Any]) -> dict[str, Any]:
    run_counterfactual(constructor_dir, out, options=CounterfactualOptions(**options))
    return json.loads((Path(out) / A.INSIGHT_RESULT_FILE).read_text())["totals"]


def straightforward_dice(constructor_dir: str, total_cfs: int) -> dict[str, Any]:
    """dice-ml as its docs show it: one generate_counterfactuals call per row."""
    import dice_ml

    folder = Path(constructor_dir)
    meta = json.loads((folder / A.META_FILE).read_text())
    model = joblib.load(folder / meta["model"]["file"])
    features, categorical = meta["model_features"], meta["categorical_features"]
    train = pd.read_parquet(folder / A.TRAIN_FILE)
    test = pd.read_parquet(folder / A.TEST_FEATURES_FILE)[features]
    predictions = pd.read_parquet(folder / A.PREDICTIONS_FILE)
    rows = predictions.loc[predictions[A.IN_SAMPLE], A.ROW_ID].to_numpy()
    # dice-ml cannot take missing categories: give them as text, as the step does.
    train[categorical] = train[categorical].fillna(MISSING)
    queries = test.iloc[rows].copy()
    queries[categorical] = queries[categorical].fillna(MISSING)
    data = dice_ml.Data(
        dataframe=train,
        continuous_features=[f for f in features if f not in categorical],
        outcome_name=meta["target_column"],
    )
    dice = dice_ml.Dice(data, dice_ml.Model(model=model, backend="sklearn"), method="random")
    found = valid = with_valid = 0
    for i in range(len(queries)):
        try:
            with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                result = dice.generate_counterfactuals(
                    queries.iloc[[i]], total_CFs=total_cfs, desired_class="opposite", random_seed=0
                )
            cfs = result.cf_examples_list[0].final_cfs_df
        except Exception:  # dice-ml raises when it finds nothing
            cfs = None
        if cfs is None or not len(cfs):
            continue
        cfs = cfs[features].copy()
        cfs[categorical] = cfs[categorical].where(cfs[categorical] != MISSING, np.nan)
        ok = (model.predict(cfs.astype(test.dtypes.to_dict())) != predictions[A.Y_PRED].iloc[rows[i]]).sum()
        found, valid, with_valid = found + len(cfs), valid + int(ok), with_valid + int(ok > 0)
    return {"rows": len(queries), "found": found, "valid": valid, "rows_with_valid": with_valid}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--total-cfs", type=int, default=10)
    parser.add_argument("--with-dice-engine", action="store_true", help="also time engine dice, 2 workers")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_path, train_path, tests = prepare_inputs(workdir, [16_281])
        constructor_dir = workdir / "constructor"
        run_constructor(
            model_path,
            train_path,
            tests[16_281],
            constructor_dir,
            options=ConstructorOptions(
                allow_pickle=True,  # its own joblib model
                target_column=TARGET,
                task_type="binary_classification",
                sensitive_features=SENSITIVE,
                positive_label=">50K",
                sample_size=args.rows,
                random_state=0,
            ),
        )
        runs = {
            "ours, batched engine": run_in_fresh_process(
                ours, str(constructor_dir), str(workdir / "batched"), {"total_CFs": args.total_cfs}
            )
        }
        if args.with_dice_engine:
            runs["ours, dice engine, 2 workers"] = run_in_fresh_process(
                ours,
                str(constructor_dir),
                str(workdir / "dice"),
                {"total_CFs": args.total_cfs, "engine": "dice", "n_jobs": 2},
            )
        runs["dice-ml, one call per row"] = run_in_fresh_process(
            straightforward_dice, str(constructor_dir), args.total_cfs
        )
    print(f"CPUs {os.cpu_count()}; 1-minute load average after the runs: {os.getloadavg()[0]:.2f}")
    print(
        f"{'who':32} {'rows':>6} {'seconds':>8} {'rows/s':>8} {'valid/found':>12} "
        f"{'rows with valid':>16} {'peak MB':>8}"
    )
    baseline = runs["dice-ml, one call per row"]
    for who, run in runs.items():
        r = run["result"]
        rate = r["rows"] / run["seconds"]
        print(
            f"{who:32} {r['rows']:>6} {run['seconds']:>8.1f} {rate:>8.1f} "
            f"{r['valid'] / max(r['found'], 1):>12.1%} {r['rows_with_valid'] / r['rows']:>16.1%} "
            f"{run['peak_rss_mb']:>8.0f}"
        )
    speedup = (runs["ours, batched engine"]["result"]["rows"] / runs["ours, batched engine"]["seconds"]) / (
        baseline["result"]["rows"] / baseline["seconds"]
    )
    print(f"ours (batched) / straightforward dice-ml, rows per second: {speedup:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
