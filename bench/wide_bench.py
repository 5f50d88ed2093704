"""Wide data benchmark: the whole audit on ~100,000 rows with ~40 categorical columns.

The data: diabetes_130_hospitals (101,766 encounters of 130 US hospitals, from
``../shared/datasets``) without its ids and the mostly missing ``weight``; target
``readmit_30_days`` (readmitted within 30 days); shuffled with seed 0, the first 80,000 rows
train, the other 21,766 test. 35 categorical columns, among them the three diagnosis codes
diag_1/2/3 with hundreds of levels each. The model: one-hot encoding (levels seen fewer than
20 times grouped) and a HistGradientBoostingClassifier, saved with skops.

The audit: ``rai-audit run`` (kfp.local, every task a subprocess: constructor, error
analysis, explainer, counterfactual, causal, gather, scorecard) in a fresh process, timed from
outside with the end-to-end benchmark's measurement (peak RSS summed over the process tree,
sampled every 0.1 s; each task's time from kfp.local's log). Causal: treatments
num_medications, time_in_hospital and A1Cresult with the default estimators (linear nuisance
and heterogeneity models, every feature a heterogeneity feature) on 10,000 train rows.

Two runs: the default ("after": a categorical feature that is not a treatment keeps its
``upper_bound_on_cat_expansion`` = 50 most frequent levels in the causal fit, the rest
grouped as "(other)"), and ``causal: {upper_bound_on_cat_expansion: 1000}`` ("before": no
feature has that many levels, so nothing is grouped, as before the change). Printed: the
load average before each run, the whole run's and each task's seconds and peak RSS, the
causal global effects of both runs with whether each point lies in the other run's
interval, and the grouped run's ``fit.levels_grouped``.

    .venv/bin/python bench/wide_bench.py [--skip-before] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

# The end-to-end benchmark's process-tree measurement and skops saving.
from e2e_bench import NO_TASK, RAI_AUDIT, kfp_run_dir, run_measured, run_task_seconds, save_skops
from rai_audit.core import artifacts as A

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "diabetes_130_hospitals.parquet"
TARGET = "readmit_30_days"
TRAIN_ROWS = 80_000
SEED = 0
TREATMENTS = ["num_medications", "time_in_hospital", "A1Cresult"]
BEFORE = {"upper_bound_on_cat_expansion": 1000}  # more than any feature's levels: nothing grouped
TASKS = ["fingerprint-inputs", "constructor", "error-analysis", "explainer", "counterfactual", "causal"]
TASKS += ["gather", "scorecard"]
SCORECARD = {
    "model": {
        "name": "Diabetes readmission (wide data benchmark)",
        "version": "1",
        "type": "HistGradientBoostingClassifier",
        "summary": "Predicts whether a diabetic patient is readmitted within 30 days.",
        "owner": "rai-audit bench",
    },
    "targets": ["accuracy_score >= 0.85", "roc_auc_score >= 0.6"],
    "fairness": {
        "sensitive_features": ["gender", "race"],
        "metrics": ["recall_score"],
        "targets": ["selection_rate ratio >= 0.8"],
    },
}


def prepare(workdir: Path, data_path: Path) -> list[str]:
    """train.parquet, test.parquet and model.skops in ``workdir``; returns the model's skops
    types not trusted by default (for the config)."""
    data = pd.read_parquet(data_path).drop(columns=["encounter_id", "patient_nbr", "weight"])
    data[TARGET] = (data.pop("readmitted") == "<30").astype(int)
    data = data.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    train, test = data.iloc[:TRAIN_ROWS].reset_index(drop=True), data.iloc[TRAIN_ROWS:].reset_index(drop=True)
    categorical = [c for c in data.columns if data[c].dtype == object]
    print(f"data {data.shape[0]:,} rows, {data.shape[1] - 1} features, {len(categorical)} categorical", flush=True)
    encode = ColumnTransformer(
        [
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore", min_frequency=20, sparse_output=False),
                ),
                categorical,
            )
        ],
        remainder="passthrough",
    )
    model = Pipeline(
        [("encode", encode), ("classify", HistGradientBoostingClassifier(max_iter=100, random_state=SEED))]
    )
    model.fit(train.drop(columns=TARGET), train[TARGET])
    train.to_parquet(workdir / "train.parquet", index=False)
    test.to_parquet(workdir / "test.parquet", index=False)
    return save_skops(model, workdir / "model.skops")


def audit_config(workdir: Path, trusted: list[str], name: str, causal_extra: dict[str, Any]) -> Path:
    config = {
        "model": "model.skops",
        "skops_trusted_types": trusted,
        "train_data": "train.parquet",
        "test_data": "test.parquet",
        "target_column": TARGET,
        "task_type": "binary_classification",
        "positive_label": 1,
        "desired_outcome": "decrease",
        "sensitive_features": ["gender", "race"],
        "sample_size": 2000,
        "random_state": SEED,
        "error_analysis": {"max_depth": 3, "num_leaves": 31, "min_child_samples": 20},
        "explainer": {"method": "auto", "rows": "sample"},
        "counterfactual": {"total_CFs": 10, "desired_class": "opposite", "rows": "sample"},
        "causal": {"treatment_features": TREATMENTS, "rows": "sample", **causal_extra},
        "scorecard": {"config": SCORECARD},
    }
    path = workdir / f"audit_{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def causal_result(run_dir: Path) -> dict[str, Any]:
    """The causal insight's result.json (the merged one when the step was sharded)."""
    for task in ("merge-causal", "causal"):
        found = sorted((run_dir / task).glob(f"*/{A.INSIGHT_RESULT_FILE}")) if (run_dir / task).is_dir() else []
        if found:
            return json.loads(found[0].read_text())
    raise RuntimeError(f"no causal {A.INSIGHT_RESULT_FILE} under {run_dir}")


def run(workdir: Path, trusted: list[str], name: str, causal_extra: dict[str, Any]) -> dict[str, Any]:
    config = audit_config(workdir, trusted, name, causal_extra)
    load = os.getloadavg()
    print(f"{name}: rai-audit run (load average before {', '.join(f'{x:.2f}' for x in load)}) ...", flush=True)
    output = workdir / f"run_{name}"
    measured = run_measured(
        [str(RAI_AUDIT), "run", str(config), "--output", str(output)], workdir / f"run_{name}.log", cwd=workdir
    )
    result = causal_result(kfp_run_dir(measured["log"]))
    print(f"{name}: {measured['seconds']:.1f} s, peak {measured['peak_mb']:.0f} MB", flush=True)
    return {"name": name, "loads": load, "task_seconds": run_task_seconds(output), "causal": result, **measured}


def print_runs(runs: list[dict[str, Any]]) -> None:
    print(f"\nCPUs {os.cpu_count()}")
    for r in runs:
        print(f"{r['name']}: load average (1, 5, 15 min) before the run {', '.join(f'{x:.2f}' for x in r['loads'])}")
    print(f"{'task':<20}" + "".join(f" {r['name'] + ' s':>10} {'MB':>6}" for r in runs))
    names = [t for t in TASKS if any(t in r["task_seconds"] for r in runs)]
    names += sorted({t for r in runs for t in r["task_seconds"]} - set(names))
    for task in names + ["kfp.local driver", "whole run"]:
        line = f"{task:<20}"
        for r in runs:
            if task == "whole run":
                s, mb = r["seconds"], r["peak_mb"]
            elif task == "kfp.local driver":  # the `rai-audit run` process; time: the rest
                s, mb = r["seconds"] - sum(r["task_seconds"].values()), r["tasks"].get(NO_TASK, {}).get("peak_mb")
            else:
                s, mb = r["task_seconds"].get(task), r["tasks"].get(task, {}).get("peak_mb")
            line += f" {s if s is not None else float('nan'):>10.1f} {mb if mb else float('nan'):>6.0f}"
        print(line)
    print(
        "s: wall time (a task: kfp.local's log, its own process with its imports); MB: peak RSS summed over "
        "the process tree, sampled every 0.1 s"
    )
    for r in runs:
        fit = r["causal"]["fit"]
        print(f"{r['name']}: causal fit {fit['seconds']:.1f} s on {fit['train_rows']:,} train rows")


def _key(effect: dict[str, Any]) -> tuple[str, str]:
    return effect["treatment"], "" if effect.get("level") is None else str(effect["level"])


def _inside(point: float, other: dict[str, Any]) -> str:
    if other["ci_lower"] is None or other["ci_upper"] is None:
        return "n/a"  # the step withholds an interval whose inference is invalid
    return "yes" if other["ci_lower"] <= point <= other["ci_upper"] else "NO"


def _number(x: float | None) -> str:
    return f"{x:>10.5f}" if x is not None else f"{'-':>10}"


def print_effects(runs: list[dict[str, Any]]) -> bool:
    """The causal global effects of each run and each treatment's verdict; with two runs,
    whether each point lies in the other run's interval ("n/a" where that run withholds it).
    Returns whether none lies outside."""
    effects = [{_key(e): e for e in r["causal"]["global_effects"]} for r in runs]
    keys = list(effects[0]) + [k for k in effects[-1] if k not in effects[0]]
    head = f"\n{'treatment':<18} {'level':<8}"
    for r in runs:
        head += f" | {r['name'] + ' point':>16} {'ci_lower':>10} {'ci_upper':>10}"
    if len(runs) == 2:
        head += f" | {'a in b':>6} {'b in a':>6}"
    print(head)
    agree = True
    for key in keys:
        line = f"{key[0]:<18} {key[1]:<8}"
        for e in effects:
            x = e.get(key)
            line += " | " + (
                f"{x['point']:>16.5f} {_number(x['ci_lower'])} {_number(x['ci_upper'])}" if x else f"{'(none)':>38}"
            )
        if len(runs) == 2:
            a, b = effects[0].get(key), effects[1].get(key)
            if a and b:
                a_in_b, b_in_a = _inside(a["point"], b), _inside(b["point"], a)
                agree &= "NO" not in (a_in_b, b_in_a)
                line += f" | {a_in_b:>6} {b_in_a:>6}"
            else:
                agree = False
                line += f" | {'-':>6} {'-':>6}"
        print(line)
    if len(runs) == 2:
        a, b = runs[0]["name"], runs[1]["name"]
        print(
            f"a in b: the {a} point within the {b} interval; b in a: the reverse; n/a: no interval. "
            + ("no point lies outside the other run's interval" if agree else "SOME POINTS LIE OUTSIDE")
        )
    for r in runs:
        for t in r["causal"]["treatments"]:
            stage = t.get("final_stage") or {}
            print(
                f"{r['name']}: {t['feature']}: final stage rank {stage.get('rank')} of {stage.get('coefficients')} "
                f"coefficients; {t['verdict']}"
            )
    return agree


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-before", action="store_true", help="run only the grouped (default) audit")
    p.add_argument("--data", default=str(DATA), help="the diabetes_130_hospitals parquet file")
    p.add_argument(
        "--workdir",
        help="keep inputs and runs in a new subfolder of this (default: a temporary folder, removed at the end)",
    )
    args = p.parse_args(argv)
    if not Path(args.data).is_file():
        p.error(f"--data: no file {args.data}")

    def go(workdir: Path) -> None:
        print(f"building the data and the model in {workdir} ...", flush=True)
        trusted = prepare(workdir, Path(args.data))
        runs = [run(workdir, trusted, "after", {})]
        if not args.skip_before:
            runs.append(run(workdir, trusted, "before", BEFORE))
        print_runs(runs)
        print_effects(runs)
        grouped = runs[0]["causal"]["fit"].get("levels_grouped")
        print(f"\nfit.levels_grouped of the grouped run: {json.dumps(grouped)}")
        if len(runs) == 2:
            print(f"fit.levels_grouped of the before run: {json.dumps(runs[1]['causal']['fit'].get('levels_grouped'))}")

    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        go(Path(tempfile.mkdtemp(prefix="wide-bench-", dir=args.workdir)))
    else:
        with tempfile.TemporaryDirectory(prefix="wide-bench-") as tmp:
            go(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
