"""Benchmark of the causal step: wall time and peak memory as the train rows grow.

On Adult (the demo's data and model) with one fixed analysis: treatments age,
hours-per-week and sex, heterogeneity features sex and education-num, linear nuisance
and heterogeneity models. Missing categories are filled with ``"(missing)"`` in train and
test before anything runs (responsibleai's causal manager refuses missing values; the
step fills them with that same level itself, so its fit is unchanged). The constructor
runs once (untimed), then ``run_causal`` once per train size (a seeded sample of the
train rows, 0 = all 32,561), each in a fresh spawned process, so its peak RSS (VmHWM) is
its own. Printed per run: the train rows fitted, the step's own fit time, the whole run's
time and the global effect (point and confidence interval) of each treatment.

Peer (``--peer-venv``): responsibleai 0.36 (``RAIInsights(...).causal``, econml's
CausalAnalysis as Azure ML runs it) in its own venv, in a fresh process, on the same
train rows and test set, with a copy of the demo model trained there (pickles do not
cross the two venvs' scikit-learn versions; the causal fit does not use the model).

    .venv/bin/python bench/causal_bench.py [--train-sizes 5000 10000 0] [--n-jobs -1]
        [--peer-venv /tmp/peer-venv] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

# The error analysis benchmark's measurement (one spawned child per run, its own VmHWM)
# and the explainer benchmark's copy of the demo model spec, which the peer trains.
from error_analysis_bench import last_line, peer_python, run_in_fresh_process
from explainer_bench import make_model
from rai_audit.core import artifacts as A
from rai_audit.demo import DEMO_COHORTS, SENSITIVE, TARGET, demo_data_path, train_demo_model
from rai_audit.steps.causal import MISSING, CausalOptions, _fit_rows, run_causal
from rai_audit.steps.constructor import ConstructorOptions, run_constructor

SEED = 0
ADULT_TRAIN_ROWS = 32_561
TREATMENTS = ["age", "hours-per-week", "sex"]
ANALYSIS = dict(
    treatment_features=TREATMENTS,
    heterogeneity_features=["sex", "education-num"],
    nuisance_model="linear",
    heterogeneity_model="linear",
)

# Runs in the peer venv, after the source of make_model.
PEER_SCRIPT = r"""
train_path, fit_path, test_path, analysis = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
import threading
import psutil
from raiutils.exceptions import UserConfigValidationException
from responsibleai import RAIInsights
import responsibleai.managers.causal_manager as manager

model = make_model("demo", pd.read_parquet(train_path))  # all of train, as ours
fit_rows, test = pd.read_parquet(fit_path), pd.read_parquet(test_path)
categorical = [c for c in test.columns if test[c].dtype == object and c != "income"]

fit_seconds = []  # CausalAnalysis.fit alone, as the step reports its own
original_fit = manager.CausalManager._fit_causal_analysis
def timed_fit(self, *args, **kwargs):
    start = time.perf_counter()
    try:
        return original_fit(self, *args, **kwargs)
    finally:
        fit_seconds.append(time.perf_counter() - start)
manager.CausalManager._fit_causal_analysis = timed_fit

# With n_jobs != 1, econml fits the treatments in joblib's loky worker processes, whose
# memory is not in this process's VmHWM: sample their summed RSS instead.
workers_peak = [0.0]
def sample_workers():
    me = psutil.Process()
    while True:
        total = 0
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        workers_peak[0] = max(workers_peak[0], total / 2**20)
        time.sleep(0.1)
threading.Thread(target=sample_workers, daemon=True).start()
# Reset VmHWM (Linux >= 4.0): the peak then covers RAIInsights and the causal manager, not training.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
start = time.perf_counter()
insights = RAIInsights(model, fit_rows, test, "income", "classification", categorical_features=categorical,
                       maximum_rows_for_test=20000)  # else only the first 5,000 test rows
init_seconds = time.perf_counter() - start
start = time.perf_counter()
refused = None
try:
    insights.causal.add(**analysis)
except UserConfigValidationException as err:
    # It refuses a test category the train rows lack (likely in a sample); ours gives such
    # rows no effect of that level. Bypassed, so the same rows are timed, and reported.
    if "be also present in the train data" not in str(err):
        raise
    refused = str(err)
    manager.validate_train_test_categories = lambda *args, **kwargs: None
    insights.causal.add(**analysis)
insights.causal.compute()
seconds = time.perf_counter() - start
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
effects = insights.causal.get()[0].global_effects.reset_index()
global_effects = [{"treatment": str(r["feature"]), "level": None if r["feature_value"] == "num"
                   else str(r["feature_value"]).split("v")[0],
                   "point": float(r["point"]), "ci_lower": float(r["ci_lower"]), "ci_upper": float(r["ci_upper"])}
                  for _, r in effects.iterrows()]
print(json.dumps({"seconds": seconds, "fit_seconds": sum(fit_seconds), "init_seconds": init_seconds,
                  "fit_rows": len(fit_rows), "refused": refused, "global_effects": global_effects,
                  "peak_rss_mb": int(peak.split()[1]) / 1024, "workers_peak_mb": workers_peak[0]}))
"""


def peer_source() -> str:
    head = "import json, sys, time, warnings\nimport pandas as pd\nwarnings.simplefilter('ignore')\n"
    return head + inspect.getsource(make_model) + PEER_SCRIPT


def run_peer(python: Path, train_path: Path, fit_path: Path, test_path: Path, n_jobs: int) -> dict[str, Any]:
    analysis = {**ANALYSIS, "n_jobs": n_jobs, "random_state": SEED}
    done = subprocess.run(
        [str(python), "-c", peer_source(), str(train_path), str(fit_path), str(test_path), json.dumps(analysis)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        return {"error": last_line(done)}
    return json.loads(done.stdout.strip().splitlines()[-1])


def filled_inputs(workdir: Path) -> tuple[Path, Path]:
    """Adult train and test with missing categories as ``"(missing)"`` (both sides get these files)."""
    paths = []
    for name in ("adult_train.parquet", "adult_test.parquet"):
        data = pd.read_parquet(demo_data_path(name))
        categorical = [c for c in data.columns if data[c].dtype == object and c != TARGET]
        paths.append(workdir / name)
        data.fillna({c: MISSING for c in categorical}).to_parquet(paths[-1], index=False)
    return paths[0], paths[1]


def peer_fit_rows(constructor_dir: Path, options: CausalOptions, path: Path) -> Path:
    """The train rows the step fits on (its own selection: usable rows, then its seeded sample)."""
    train = pd.read_parquet(constructor_dir / A.TRAIN_FILE)
    numeric = [t for t in options.treatment_features if train[t].dtype != object]
    train = train[train[TARGET].notna() & train[numeric].notna().all(axis=1)].reset_index(drop=True)
    train.iloc[_fit_rows(len(train), options)].to_parquet(path, index=False)
    return path


def run(workdir: Path, sizes: list[int], n_jobs: int, peer_venv: str | None) -> list[dict[str, Any]]:
    print(f"training the demo model, constructor, in {workdir} ...", flush=True)
    train_path, test_path = filled_inputs(workdir)
    model_path = workdir / "model.joblib"
    joblib.dump(train_demo_model(pd.read_parquet(train_path)), model_path)
    constructor_dir = workdir / "constructor"
    run_constructor(
        model_path,
        train_path,
        test_path,
        constructor_dir,
        options=ConstructorOptions(
            allow_pickle=True,  # its own joblib model
            target_column=TARGET,
            task_type="binary_classification",
            positive_label=">50K",
            sensitive_features=SENSITIVE,
            cohorts=DEMO_COHORTS,
            random_state=SEED,
        ),
    )
    python, why_no_peer = peer_python(peer_venv, module="responsibleai")
    results = []
    for n in sizes:
        label = f"{n:,}" if n else "all"
        options = CausalOptions(**ANALYSIS, train_sample_size=n, n_jobs=n_jobs, random_state=SEED)
        out = workdir / f"causal_{n}"
        print(f"train rows {label}: causal step ...", flush=True)
        # The 1-minute load average just before each timed run: shared cores skew timings.
        ours = {"load": os.getloadavg()[0], **run_in_fresh_process(run_causal, constructor_dir, out, options=options)}
        ours["info"] = json.loads((out / A.INSIGHT_RESULT_FILE).read_text())
        if python:
            print(f"train rows {label}: peer RAIInsights causal ...", flush=True)
            fit_path = peer_fit_rows(constructor_dir, options, workdir / f"peer_train_{n}.parquet")
            peer = {"load": os.getloadavg()[0], **run_peer(python, train_path, fit_path, test_path, n_jobs)}
        else:
            peer = {"skipped": why_no_peer}
        results.append({"size": n, "ours": ours, "peer": peer})
    return results


def effect_text(effects: list[dict[str, Any]], treatment: str) -> str:
    parts = [
        f"{e['point']:+.4f} [{e['ci_lower']:+.4f}, {e['ci_upper']:+.4f}]"
        for e in effects
        if e["treatment"] == treatment
    ]
    return "; ".join(parts) or "not fitted"


def print_results(results: list[dict[str, Any]], load_before: tuple[float, ...], n_jobs: int) -> None:
    def loads(values):
        return ", ".join(f"{x:.2f}" for x in values)

    first = results[0]["ours"]["info"]
    names = {}
    for t in first["treatments"]:  # a categorical treatment's effect is per level, against its control
        names[t["feature"]] = (
            t["feature"] if t["kind"] == "numeric" else f"{t['feature']} ({', '.join(t['levels'])} vs {t['control']})"
        )
    width = 27

    print(
        f"\nCPUs {os.cpu_count()}; n_jobs {n_jobs}; load average (1, 5, 15 min) before {loads(load_before)}, "
        f"after {loads(os.getloadavg())}"
    )
    print(
        f"outcome: {first['outcome']}; global effect per unit of a numeric treatment, point "
        f"[{1 - first['fit']['alpha']:.0%} CI]"
    )
    print(
        f"{'train rows':>10} {'who':<16} {'fit s':>7} {'total s':>8} {'peak RSS MB':>11} {'workers MB':>10} "
        f"{'load':>5}  " + "  ".join(f"{names.get(t, t):<{width}}" for t in TREATMENTS)
    )

    def row(rows, who, fit, total, peak, workers, load, effects):
        print(
            f"{rows:>10,} {who:<16} {fit:>7.2f} {total:>8.2f} {peak:>11.0f} {workers:>10} {load:>5.2f}  "
            + "  ".join(f"{effect_text(effects, t):<{width}}" for t in TREATMENTS)
        )

    notes = []
    for r in results:
        ours, info, peer = r["ours"], r["ours"]["info"], r["peer"]
        row(
            info["fit"]["train_rows"],
            "ours (rai_audit)",
            info["fit"]["seconds"],
            ours["seconds"],
            ours["peak_rss_mb"],
            "-",
            ours["load"],
            info["global_effects"],
        )
        label = f"train rows {info['fit']['train_rows']:,}"
        for w in info["warnings"]:
            notes.append(f"{label}: ours warned ({w['count']}x) {w['message'][:160]}")
        if info["untrained"]:
            notes.append(f"{label}: ours could not fit {info['untrained']}")
        if info["unseen_categories_in_test"]:
            notes.append(f"{label}: test rows with a category the fit never saw: {info['unseen_categories_in_test']}")
        if "skipped" in peer:
            notes.append(f"{label}: peer {peer['skipped']}")
            continue
        if "error" in peer:
            notes.append(f"{label}: peer failed: {peer['error']}")
            continue
        row(
            peer["fit_rows"],
            "peer RAIInsights",
            peer["fit_seconds"],
            peer["seconds"],
            peer["peak_rss_mb"],
            f"{peer['workers_peak_mb']:.0f}",
            peer["load"],
            peer["global_effects"],
        )
        notes.append(
            f"{label}: ours/peer total time {ours['seconds'] / peer['seconds']:.2f}; "
            f"the peer's RAIInsights() took {peer['init_seconds']:.2f} s more"
        )
        if peer["refused"]:
            notes.append(
                f"{label}: the peer refused these train rows, check bypassed to time it: {peer['refused'][:300]}"
            )
    print("\n".join(notes))
    print(
        "Ours: run_causal in a fresh process, including reading the artifact and writing its output; fit s is "
        "the step's own CausalAnalysis.fit time (result.json). Peer: causal.add() + causal.compute(); fit s its "
        "CausalAnalysis.fit. peak RSS: the process's VmHWM; workers MB: the sampled peak of the peer's joblib "
        "worker processes (ours fits in threads). load: 1-minute load average before the run."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--train-sizes",
        type=int,
        nargs="+",
        default=[5000, 10000, 0],
        help=f"train rows to fit on (a seeded sample); 0 means all {ADULT_TRAIN_ROWS:,}",
    )
    p.add_argument("--n-jobs", type=int, default=-1, help="the step's n_jobs (and the peer's): -1 = all cores")
    p.add_argument(
        "--workdir",
        help="keep inputs and artifacts in a new subfolder of this (default: a temporary folder, removed at the end)",
    )
    p.add_argument("--peer-venv", help="venv with responsibleai 0.36, to run the peer")
    args = p.parse_args(argv)
    if min(args.train_sizes) < 0:
        p.error("--train-sizes must be >= 0 (0 = all rows)")
    if args.n_jobs == 0 or args.n_jobs < -1:
        p.error("--n-jobs must be -1 (all cores) or >= 1")
    # Sizes at or above the train rows are all of them, as 0 is.
    sizes = sorted({0 if n >= ADULT_TRAIN_ROWS else n for n in args.train_sizes}, key=lambda n: n or ADULT_TRAIN_ROWS)
    load_before = os.getloadavg()
    if args.workdir:  # a new subfolder each run: the steps refuse to overwrite an artifact
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        results = run(
            Path(tempfile.mkdtemp(prefix="causal-bench-", dir=args.workdir)), sizes, args.n_jobs, args.peer_venv
        )
    else:
        with tempfile.TemporaryDirectory(prefix="causal-bench-") as tmp:
            results = run(Path(tmp), sizes, args.n_jobs, args.peer_venv)
    print_results(results, load_before, args.n_jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
