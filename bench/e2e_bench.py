"""End-to-end benchmark: the whole rai-audit pipeline against responsibleai's RAIInsights.

The same model (the demo model spec, trained in each venv with the same seeds), the same
Adult train and test data (the demo's; missing categories filled with ``"(missing)"`` in
both files, because responsibleai's causal, counterfactual and explainer managers refuse
missing values), and the same analyses on both sides:

- explainer: global and local importance of every test row (the demo model needs a mimic);
- error analysis: Azure ML's defaults (max_depth 3, num_leaves 31, min_child_samples 20),
  heatmap on age x education;
- causal: treatments age, hours-per-week and sex, heterogeneity features sex and
  education-num, linear models, on the same train rows (all of train by default);
- counterfactuals: 10 per row, desired class opposite, for the same 1,000 test rows (our
  constructor's stratified sample).

Ours: ``rai-audit run audit.yaml`` (kfp.local, every task a subprocess: constructor, the
four analyses, gather, scorecard) in a fresh process. Peer: ``RAIInsights`` with the four
managers added, then ``compute()``, in the peer venv in a fresh process (its model trained
there beforehand, untimed). Both are timed from outside, with peak memory as the sampled
RSS sum of the process and all its children (every 0.1 s). Then both are checked: the
metrics of ours against the peer's own predictions, and every counterfactual re-predicted
with the model of its own venv.

With ``--parallel-tasks N`` (N > 1) ours runs a second time, right after the first, as
``rai-audit run --parallel-tasks N`` (up to N tasks at once); its wall time and peak memory are
printed beside the first's, with whether its bundle and scorecard equal the first run's
(scripts/compare_artifacts.py).

    .venv/bin/python bench/e2e_bench.py [--test-rows N] [--cf-rows 1000] [--causal-train-rows 0]
        [--parallel-tasks 2] [--peer-venv /tmp/peer-venv] [--workdir DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import yaml
from sklearn import metrics as skm

# The other benchmarks' pieces: the peer venv check, Azure's error analysis defaults, the
# demo model spec the peer trains, and the causal benchmark's analysis and fit rows.
from causal_bench import ANALYSIS as CAUSAL_ANALYSIS
from causal_bench import peer_fit_rows
from error_analysis_bench import EA_OPTIONS, last_line, peer_python
from explainer_bench import make_model
from rai_audit.core import artifacts as A
from rai_audit.demo import DEMO_COHORTS, DEMO_SCORECARD, SENSITIVE, TARGET, demo_data_path, train_demo_model
from rai_audit.local_run import LOG_FILE
from rai_audit.steps.causal import MISSING, CausalOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from compare_artifacts import artifact_differences  # noqa: E402  (scripts/ is not a package)

SEED = 0
MB = 2**20
PAGE = os.sysconf("SC_PAGE_SIZE")
RAI_AUDIT = Path(sys.executable).with_name("rai-audit")
POSITIVE = ">50K"


# --- Measuring a process tree -------------------------------------------------------------
# Our own sampler, not VmHWM: kfp.local runs every task in a subprocess, and the peer fits
# causal models in joblib worker processes; neither shows in the parent's VmHWM. /proc is
# read directly (psutil is not in our venv).


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process now."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return parents


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss_bytes(pid: int) -> int:
    """Proportional set size: each shared page counted as its share in each process mapping it,
    so that summed over processes it is the memory they take together."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
    except (OSError, StopIteration, ValueError):
        return 0


def _kfp_task(pid: int) -> str | None:
    """The kfp.local task a process runs, from its ``--executor_input`` (the folder of its
    outputFile); a task forked from the run's starter (rai_audit.preloaded_tasks) has the
    starter's command line and names itself in its comm instead, cut to 15 bytes."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        if b"rai_audit.preloaded_tasks" in args:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            return None if comm.startswith("python") else comm  # the starter, or not named yet
        executor_input = json.loads(args[args.index(b"--executor_input") + 1])
        return Path(executor_input["outputs"]["outputFile"]).parent.name
    except (OSError, ValueError, IndexError, KeyError):
        return None


def _full_names(tasks: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``tasks`` with each label cut to 15 bytes (``_kfp_task``) given its task's whole name."""
    return {next((n for n in names if n[:15] == label), label): v for label, v in tasks.items()}


NO_TASK = "(no task)"  # processes outside any kfp.local task: kfp.local's driver, or the peer


class TreeSampler:
    """Every ``interval`` s: the RSS summed over a process and its descendants, overall and
    per kfp.local task (a task's children count for the task). Shared pages are counted in
    every process that maps them, so the sums lean high; ``peak_pss_mb``, the proportional set
    size summed over the tree, counts them once."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.root, self.interval = root, interval
        self.peak_mb, self.peak_pss_mb = 0.0, 0.0
        self.tasks: dict[str, dict[str, float]] = {}  # task -> {"peak_mb", "first", "last"} (s since start)
        self._labels: dict[int, str | None] = {}
        self._stop = threading.Event()
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        parents = _parents()
        children: dict[int, list[int]] = {}
        for pid, parent in parents.items():
            children.setdefault(parent, []).append(pid)
        total, pss, per_task = 0, 0, {}
        todo = [(self.root, None)]
        while todo:
            pid, inherited = todo.pop()
            if self._labels.get(pid) is None:  # again until known: a forked task names itself after it starts
                self._labels[pid] = _kfp_task(pid)
            label = self._labels[pid] or inherited
            rss = _rss_bytes(pid)
            total += rss
            pss += _pss_bytes(pid)
            per_task[label or NO_TASK] = per_task.get(label or NO_TASK, 0) + rss
            todo += [(child, label) for child in children.get(pid, [])]
        now = time.perf_counter() - self._start
        self.peak_mb = max(self.peak_mb, total / MB)
        self.peak_pss_mb = max(self.peak_pss_mb, pss / MB)
        for label, rss in per_task.items():
            task = self.tasks.setdefault(label, {"peak_mb": 0.0, "first": now})
            task["peak_mb"], task["last"] = max(task["peak_mb"], rss / MB), now

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(cmd: list[str], log: Path, cwd: Path | None = None) -> dict[str, Any]:
    """Run ``cmd`` in a fresh process: wall time, peak RSS of its process tree, per-task figures.
    stdout and stderr go to ``log`` (kfp.local prints every task's log)."""
    load = os.getloadavg()[0]
    with open(log, "w") as out:
        start = time.perf_counter()
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        sampler = TreeSampler(process.pid)
        code = process.wait()
        seconds = time.perf_counter() - start
        sampler.stop()
    text = log.read_text(errors="replace")
    if code:
        raise RuntimeError(f"{cmd[:3]} failed with exit code {code}; its log is {log}:\n{text[-3000:]}")
    tasks = _full_names(sampler.tasks, list(kfp_task_seconds(text)))
    return {
        "seconds": seconds,
        "peak_mb": sampler.peak_mb,
        "peak_pss_mb": sampler.peak_pss_mb,
        "tasks": tasks,
        "load": load,
        "log": text,
    }


ANSI = re.compile(r"\x1b\[[0-9;]*m")
KFP_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - \w+ - (?:Executing task '([^']+)'|Task '([^']+)' finished)", re.M)


def kfp_task_seconds(log: str) -> dict[str, float]:
    """Each kfp.local task's wall time, from its 'Executing task' and 'finished' log lines."""
    started, seconds = {}, {}
    for clock, begin, end in KFP_LINE.findall(ANSI.sub("", log)):
        t = datetime.strptime(clock, "%H:%M:%S.%f")
        t = t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6
        if begin:
            started[begin] = t
        elif end in started:
            seconds[end] = (t - started[end]) % 86400  # past midnight
    return {task: s for task, s in seconds.items() if not task.startswith("importer")}


def run_task_seconds(output: Path) -> dict[str, float]:
    """Each task's seconds of a `rai-audit run` into ``output``: kfp.local's task lines go to its
    log file there, not to the terminal."""
    return kfp_task_seconds((output / LOG_FILE).read_text(errors="replace"))


def kfp_run_dir(log: str) -> Path:
    """The pipeline run's folder (<output>/pipeline_root/<run>), from `rai-audit run`'s last lines."""
    found = re.search(r"^dashboard bundle: (.+)$", log, re.M)
    if not found:
        raise RuntimeError("`rai-audit run` did not print its bundle")
    return Path(found.group(1).strip()).parents[1]


# --- Inputs ----------------------------------------------------------------------------


def filled(data: pd.DataFrame) -> pd.DataFrame:
    """Missing categories as the level "(missing)" (the peer's managers refuse missing values)."""
    categorical = [c for c in data.columns if data[c].dtype == object and c != TARGET]
    return data.fillna({c: MISSING for c in categorical})


def save_skops(model: Any, path: Path) -> list[str]:
    """Save the model with skops; return its types that skops does not trust by default, for
    the config's ``skops_trusted_types``. Not joblib: rai-audit loads a pickle only when told
    the file is trusted (``allow_pickle``); skops is its safe format."""
    import skops.io

    skops.io.dump(model, path)
    return skops.io.get_untrusted_types(file=path)


def load_skops(path: Path) -> Any:
    import skops.io

    return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))


def prepare(workdir: Path, test_rows: int | None) -> tuple[Path, Path, Path, list[str]]:
    """Train and test files both sides read (test: all of Adult test, or a seeded sample of
    ``test_rows`` in file order), our model trained on that train file, and its skops types."""
    train = filled(pd.read_parquet(demo_data_path("adult_train.parquet")))
    test = filled(pd.read_parquet(demo_data_path("adult_test.parquet")))
    if test_rows and test_rows < len(test):
        test = test.sample(test_rows, random_state=SEED).sort_index().reset_index(drop=True)
    train_path, test_path, model_path = workdir / "train.parquet", workdir / "test.parquet", workdir / "model.skops"
    train.to_parquet(train_path, index=False)
    test.to_parquet(test_path, index=False)
    trusted = save_skops(train_demo_model(train), model_path)
    return train_path, test_path, model_path, trusted


def audit_config(workdir: Path, trusted: list[str], cf_rows: int, causal_train_rows: int) -> Path:
    """Our audit config: every step, the scorecard too (the peer has nothing like it)."""
    config = {
        "model": "model.skops",
        "skops_trusted_types": trusted,
        "train_data": "train.parquet",
        "test_data": "test.parquet",
        "target_column": TARGET,
        "task_type": "binary_classification",
        "positive_label": POSITIVE,
        "sensitive_features": SENSITIVE,
        "cohorts": DEMO_COHORTS,
        "sample_size": cf_rows,  # the counterfactual rows
        "random_state": SEED,
        "error_analysis": dict(EA_OPTIONS),
        "explainer": {"method": "auto", "rows": "all"},
        "counterfactual": {"total_CFs": 10, "desired_class": "opposite", "rows": "sample"},
        # Local effects and policies on every test row, as the peer computes them.
        "causal": {**CAUSAL_ANALYSIS, "train_sample_size": causal_train_rows, "rows": "all", "n_jobs": -1},
        "scorecard": {"config": DEMO_SCORECARD},
    }
    path = workdir / "audit.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- The peer (runs in the peer venv) ------------------------------------------------------

PEER_TRAIN = r"""
import joblib
joblib.dump(make_model("demo", pd.read_parquet(sys.argv[1])), sys.argv[2])
"""

# Timed from outside as a whole; it also times its own parts.
PEER_AUDIT = r"""
args = json.loads(sys.argv[1])
seconds = {}
started = time.perf_counter()
import joblib
from raiutils.exceptions import UserConfigValidationException
from responsibleai import RAIInsights
import responsibleai.managers.causal_manager as causal_manager
import responsibleai.managers.explainer_manager as explainer_manager
seconds["imports"] = time.perf_counter() - started

def timed(name, fn):
    start = time.perf_counter()
    out = fn()
    seconds[name] = time.perf_counter() - start
    return out

def read():
    return joblib.load(args["model"]), pd.read_parquet(args["train"]), pd.read_parquet(args["test"])
model, train, test = timed("read", read)
categorical = [c for c in test.columns if test[c].dtype == object and c != "income"]
# The manager explains only its first 10,000 rows; raised so it explains every row, as ours.
explainer_manager.MAXIMUM_ROWS_FOR_GLOBAL_EXPLANATIONS = max(explainer_manager.MAXIMUM_ROWS_FOR_GLOBAL_EXPLANATIONS,
                                                             len(test))
insights = timed("RAIInsights()", lambda: RAIInsights(
    model, train, test, "income", "classification", categorical_features=categorical,
    maximum_rows_for_test=max(5000, len(test))))  # else only the first 5,000 test rows

refused = []
def add():
    insights.explainer.add()
    insights.error_analysis.add(**args["error_analysis"])
    # The same rows as ours: the counterfactual rows (our constructor's sample) and the
    # causal fit rows (our step's sample, when it samples).
    insights.counterfactual._test = test.iloc[args["cf_rows"]].reset_index(drop=True)
    insights.counterfactual.add(total_CFs=args["total_CFs"], desired_class="opposite")
    if args["causal_fit"]:
        insights.causal._train = pd.read_parquet(args["causal_fit"])
    try:
        insights.causal.add(**args["causal"])
    except UserConfigValidationException as err:
        # A sample of train can lack a test category; ours gives such rows no effect of it.
        if "be also present in the train data" not in str(err):
            raise
        refused.append(str(err)[:300])
        causal_manager.validate_train_test_categories = lambda *a, **k: None
        insights.causal.add(**args["causal"])
timed("add()", add)

for manager in insights._managers:  # each manager's share of compute()
    def wrapped(original=manager.compute, name=type(manager).__name__):
        return timed(name, original)
    manager.compute = wrapped
timed("compute()", insights.compute)

hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
# For the checks, outside the timed parts: predictions, counterfactuals, summaries.
out = args["out"]
predictions = pd.DataFrame({"y_pred": insights._predict_output})
for i, c in enumerate(insights._classes):
    predictions[f"proba_{c}"] = insights._predict_proba_output[:, i]
predictions.to_parquet(f"{out}/peer_predictions.parquet", index=False)
frames = []
for position, example in enumerate(insights.counterfactual.get()[0].cf_examples_list):
    cfs = example.final_cfs_df
    if cfs is not None and len(cfs):
        frames.append(cfs.drop(columns=["income"]).assign(row=args["cf_rows"][position], cf_index=range(len(cfs))))
cfs = pd.concat(frames, ignore_index=True)
for c in test.columns.drop("income"):
    cfs[c] = cfs[c].astype(str) if c in categorical else pd.to_numeric(cfs[c])
cfs.to_parquet(f"{out}/peer_counterfactuals.parquet", index=False)
explanation = insights.explainer.get()[0]
effects = insights.causal.get()[0].global_effects.reset_index()
report = insights.error_analysis.get()[0]
parents = {node["parentId"] for node in report.tree}
import sklearn
summary = {
    "seconds": seconds, "sklearn": sklearn.__version__, "vmhwm_mb": int(hwm.split()[1]) / 1024, "refused": refused,
    "explained_rows": len(explanation.local_importance_values[0]),
    "global_importance": sorted(explanation.get_feature_importance_dict().items(), key=lambda kv: -kv[1])[:5],
    "leaves": sum(node["id"] not in parents for node in report.tree),
    "causal_fit_rows": len(insights.causal._train),
    "global_effects": [{"treatment": str(r["feature"]), "level": None if r["feature_value"] == "num"
                        else str(r["feature_value"]).split("v")[0], "point": float(r["point"]),
                        "ci_lower": float(r["ci_lower"]), "ci_upper": float(r["ci_upper"])}
                       for _, r in effects.iterrows()],
}
json.dump(summary, open(f"{out}/peer_summary.json", "w"))
"""

# Re-predicts the peer's counterfactuals with its own model (untimed).
PEER_CHECK = r"""
import joblib
model = joblib.load(sys.argv[1])
test, cfs = pd.read_parquet(sys.argv[2]), pd.read_parquet(sys.argv[3])
features = list(test.columns.drop("income"))
original = model.predict(test[features])
predicted = model.predict(cfs[features].astype(test[features].dtypes.to_dict()))
valid = predicted != original[cfs["row"].to_numpy()]
print(json.dumps({"found": len(cfs), "valid": int(valid.sum()),
                  "rows_with_valid": int(cfs.loc[valid, "row"].nunique())}))
"""


def peer_source(script: str) -> str:
    head = "import json, sys, time, warnings\nimport pandas as pd\nwarnings.simplefilter('ignore')\n"
    return head + inspect.getsource(make_model) + script


def run_peer(
    python: Path, workdir: Path, train_path: Path, test_path: Path, cf_rows: list[int], causal_fit: Path | None
) -> dict[str, Any]:
    model_path = workdir / "peer_model.joblib"
    done = subprocess.run(
        [str(python), "-c", peer_source(PEER_TRAIN), str(train_path), str(model_path)], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"the peer could not train the model: {last_line(done)}")
    args = {
        "model": str(model_path),
        "train": str(train_path),
        "test": str(test_path),
        "out": str(workdir),
        "cf_rows": cf_rows,
        "total_CFs": 10,
        "causal_fit": str(causal_fit) if causal_fit else None,
        "error_analysis": {
            "max_depth": EA_OPTIONS["max_depth"],
            "num_leaves": EA_OPTIONS["num_leaves"],
            "min_child_samples": EA_OPTIONS["min_child_samples"],
            "filter_features": EA_OPTIONS["heatmap_features"],
        },
        "causal": {**CAUSAL_ANALYSIS, "n_jobs": -1, "random_state": SEED},
    }
    print("peer: RAIInsights ...", flush=True)
    measured = run_measured([str(python), "-c", peer_source(PEER_AUDIT), json.dumps(args)], workdir / "peer.log")
    check = subprocess.run(
        [
            str(python),
            "-c",
            peer_source(PEER_CHECK),
            str(model_path),
            str(test_path),
            str(workdir / "peer_counterfactuals.parquet"),
        ],
        capture_output=True,
        text=True,
    )
    if check.returncode:
        raise RuntimeError(f"the peer's counterfactual check failed: {last_line(check)}")
    summary = json.loads((workdir / "peer_summary.json").read_text())  # its "seconds" are its parts
    return {
        **measured,
        "seconds_wall": measured["seconds"],
        **summary,
        "cf_check": json.loads(check.stdout.strip().splitlines()[-1]),
        "predictions": pd.read_parquet(workdir / "peer_predictions.parquet"),
    }


# --- Checks ------------------------------------------------------------------------------


def sklearn_metrics(y_true: np.ndarray, y_pred: np.ndarray, proba_positive: np.ndarray) -> dict[str, float]:
    """Our metric names, from scikit-learn on one side's predictions (positive label >50K)."""
    yt, yp = y_true == POSITIVE, y_pred == POSITIVE
    tn, fp, fn, tp = skm.confusion_matrix(yt, yp, labels=[False, True]).ravel()
    return {
        "accuracy_score": skm.accuracy_score(yt, yp),
        "balanced_accuracy_score": skm.balanced_accuracy_score(yt, yp),
        "precision_score": skm.precision_score(yt, yp),
        "recall_score": skm.recall_score(yt, yp),
        "f1_score": skm.f1_score(yt, yp),
        "selection_rate": yp.mean(),
        "false_positive_rate": fp / (fp + tn),
        "false_negative_rate": fn / (fn + tp),
        "roc_auc_score": skm.roc_auc_score(yt, proba_positive),
        "log_loss": skm.log_loss(yt, np.clip(proba_positive, 1e-15, 1 - 1e-15)),
    }


def check_our_counterfactuals(run_dir: Path, model_path: Path) -> dict[str, int]:
    """Re-predict every counterfactual ours kept with our model; found = all it found (it keeps the valid)."""
    constructor = run_dir / "constructor" / "insights"
    test = pd.read_parquet(constructor / A.TEST_FEATURES_FILE)
    y_pred = pd.read_parquet(constructor / A.PREDICTIONS_FILE)[A.Y_PRED].to_numpy()
    folder = run_dir / "counterfactual" / "counterfactuals"
    cfs, rows = pd.read_parquet(folder / "counterfactuals.parquet"), pd.read_parquet(folder / "rows.parquet")
    predicted = load_skops(model_path).predict(cfs[test.columns].astype(test.dtypes.to_dict()))
    valid = predicted != y_pred[cfs[A.ROW_ID].to_numpy()]
    return {
        "rows": len(rows),
        "found": int(rows["found"].sum()),
        "kept": len(cfs),
        "valid": int(valid.sum()),
        "rows_with_valid": int(cfs.loc[valid, A.ROW_ID].nunique()),
    }


# --- The run ----------------------------------------------------------------------------


def run(
    workdir: Path,
    test_rows: int | None,
    cf_rows: int,
    causal_train_rows: int,
    peer_venv: str | None,
    parallel_tasks: int = 1,
) -> dict[str, Any]:
    print(f"training the demo model, writing inputs to {workdir} ...", flush=True)
    train_path, test_path, model_path, trusted = prepare(workdir, test_rows)
    config = audit_config(workdir, trusted, cf_rows, causal_train_rows)
    print("ours: rai-audit run ...", flush=True)
    ours = run_measured(
        [str(RAI_AUDIT), "run", str(config), "--output", str(workdir / "ours")], workdir / "ours.log", cwd=workdir
    )
    ours["task_seconds"] = run_task_seconds(workdir / "ours")
    run_dir = kfp_run_dir(ours["log"])
    ours["run_dir"] = run_dir
    ours["insights"] = A.read_json(run_dir / "gather" / "dashboard" / A.INSIGHTS_JSON_FILE)
    ours["cf_check"] = check_our_counterfactuals(run_dir, model_path)
    for kind, folder in (
        ("explanation", "explainer/explanation"),
        ("causal", "causal/causal"),
        ("error_analysis", "error-analysis/error_analysis"),
    ):
        ours[kind] = A.read_json(run_dir / folder / A.INSIGHT_RESULT_FILE)
    # The steps' own seconds (meta.json), without their process's start and imports.
    ours["step_seconds"] = {
        task: A.read_json(meta).get("seconds")
        for task, meta in ((m.parts[-3], m) for m in run_dir.glob(f"*/*/{A.META_FILE}"))
    }
    ours_parallel = None
    if parallel_tasks > 1:
        print(f"ours: rai-audit run --parallel-tasks {parallel_tasks} ...", flush=True)
        output = workdir / f"ours-parallel-{parallel_tasks}"
        command = [str(RAI_AUDIT), "run", str(config), "--output", str(output), "--parallel-tasks", str(parallel_tasks)]
        ours_parallel = run_measured(command, workdir / f"{output.name}.log", cwd=workdir)
        other = kfp_run_dir(ours_parallel["log"])
        ours_parallel["tasks_at_once"] = parallel_tasks
        ours_parallel["differences"] = artifact_differences(
            run_dir / "gather" / "dashboard", other / "gather" / "dashboard"
        ) + artifact_differences(run_dir / "scorecard" / "scorecard", other / "scorecard" / "scorecard")
    constructor = run_dir / "constructor" / "insights"
    predictions = pd.read_parquet(constructor / A.PREDICTIONS_FILE)
    result = {
        "ours": ours,
        "ours_parallel": ours_parallel,
        "predictions": predictions,
        "test_rows": len(predictions),
        "classes": A.read_json(constructor / A.META_FILE)["classes"],
    }
    python, why_not = peer_python(peer_venv, module="responsibleai")
    if python is None:
        result["peer"] = {"skipped": why_not}
        return result
    cf_row_ids = predictions.loc[predictions[A.IN_SAMPLE], A.ROW_ID].tolist()
    causal_fit = None
    if causal_train_rows:
        causal_fit = peer_fit_rows(
            constructor,
            CausalOptions(**CAUSAL_ANALYSIS, train_sample_size=causal_train_rows, random_state=SEED),
            workdir / "peer_causal_fit.parquet",
        )
    result["peer"] = run_peer(python, workdir, train_path, test_path, cf_row_ids, causal_fit)
    return result


def effect_text(effects: list[dict[str, Any]], treatment: str) -> str:
    return (
        "; ".join(
            f"{e['point']:+.4f} [{e['ci_lower']:+.4f}, {e['ci_upper']:+.4f}]"
            for e in effects
            if e["treatment"] == treatment
        )
        or "-"
    )


TARGET_SPEEDUP = 8  # issue 25: in every run of --repeat 3


def print_results(r: dict[str, Any], load_before: tuple[float, ...]) -> tuple[float | None, float | None]:
    """Print one run's figures; return how many times faster ours was end to end, one task at a
    time and with --parallel-tasks (None: no peer, or not run)."""
    ours, peer = r["ours"], r["peer"]
    loads = ", ".join(f"{x:.2f}" for x in load_before)
    print(
        f"\nCPUs {os.cpu_count()}; test rows {r['test_rows']:,}; load average (1, 5, 15 min) before {loads}, "
        f"after {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    t, mem = ours["task_seconds"], ours["tasks"]
    has_peer = "skipped" not in peer
    ps = peer.get("seconds", {})

    # (part, ours task, peer s): ours from the kfp.local log (each task's process, imports
    # included) and the task's sampled peak RSS; the peer from its own timers inside one process.
    overhead = ours["seconds"] - sum(t.values())
    rows = [
        ("whole run (process wall)", None, peer.get("seconds_wall")),
        ("  fingerprint inputs | -", "fingerprint-inputs", None),
        (
            "  constructor | read + RAIInsights() + add()",
            "constructor",
            ps.get("read", 0) + ps.get("RAIInsights()", 0) + ps.get("add()", 0) if ps else None,
        ),
        ("  explainer", "explainer", ps.get("ExplainerManager")),
        ("  error analysis", "error-analysis", ps.get("ErrorAnalysisManager")),
        ("  causal", "causal", ps.get("CausalManager")),
        ("  counterfactual", "counterfactual", ps.get("CounterfactualManager")),
        ("  gather | data balance", "gather", ps.get("DataBalanceManager")),
        ("  scorecard | -", "scorecard", None),
        ("  kfp.local driver, imports | imports", NO_TASK, ps.get("imports")),
    ]
    print(f"{'part (ours | peer)':<46} {'ours s':>8} {'(step s)':>8} {'ours MB':>8} {'peer s':>8} {'ours/peer':>9}")
    for name, task, p in rows:
        if task is None:
            s, own, m = ours["seconds"], None, ours["peak_mb"]
        else:
            s = overhead if task == NO_TASK else t.get(task)
            own, m = ours["step_seconds"].get(task), mem.get(task, {}).get("peak_mb")
        ratio = f"{s / p:.3f}" if s is not None and p else "-"
        print(
            f"{name:<46} {s if s is not None else float('nan'):>8.1f} {(f'{own:.1f}' if own else '-'):>8} "
            f"{(f'{m:.0f}' if m else '-'):>8} {(f'{p:.1f}' if p is not None else '-'):>8} {ratio:>9}"
        )
    print(
        "ours s: each kfp.local task's wall time (its own process: imports, reading its inputs, writing its "
        "artifact); (step s): the step's own figure in its meta.json, without process start and imports; ours "
        "MB: that task's sampled peak RSS (process tree). peer s: its own timers inside one process (each "
        "manager's share of compute()); ours/peer: ours s over peer s."
    )
    parallel = r["ours_parallel"]
    if parallel:
        differences = parallel["differences"]
        print(
            f"ours with --parallel-tasks {parallel['tasks_at_once']}: {parallel['seconds']:.1f} s (one task at a time "
            f"{ours['seconds']:.1f} s, {ours['seconds'] / parallel['seconds']:.2f}x), peak RSS "
            f"{parallel['peak_mb']:.0f} MB, load before {parallel['load']:.2f}; its bundle and scorecard "
            + (f"differ in {len(differences)} places: {differences[:5]}" if differences else "equal the first run's")
        )
    if not has_peer:
        print(f"peer {peer['skipped']}")
        return None, None
    print(
        f"peak RSS of the process tree (sampled every 0.1 s): ours {ours['peak_mb']:.0f} MB, peer "
        f"{peer['peak_mb']:.0f} MB (the peer's main process VmHWM {peer['vmhwm_mb']:.0f} MB); "
        f"ours/peer {ours['peak_mb'] / peer['peak_mb']:.2f}"
    )
    speedup = peer["seconds_wall"] / ours["seconds"]
    print(
        f"whole audit: ours {ours['seconds']:.1f} s, peer {peer['seconds_wall']:.1f} s (compute() alone "
        f"{ps['compute()']:.1f} s): ours is {speedup:.2f}x faster end to end; target >= {TARGET_SPEEDUP}x: "
        f"{'MET' if speedup >= TARGET_SPEEDUP else 'NOT MET'}; load before ours {ours['load']:.2f}, before the peer "
        f"{peer['load']:.2f}"
    )
    parallel_speedup = peer["seconds_wall"] / parallel["seconds"] if parallel else None
    if parallel_speedup:
        print(
            f"whole audit with --parallel-tasks {parallel['tasks_at_once']}: ours {parallel['seconds']:.1f} s, "
            f"{parallel_speedup:.2f}x faster than the peer; target >= {TARGET_SPEEDUP}x: "
            f"{'MET' if parallel_speedup >= TARGET_SPEEDUP else 'NOT MET'}"
        )

    # Metrics: ours as gather computed them, ours and the peer's from scikit-learn on each side's predictions.
    predictions = r["predictions"]
    y_true = predictions[A.Y_TRUE].to_numpy().astype(str)
    positive = A.proba_column(r["classes"].index(POSITIVE))
    ours_sk = sklearn_metrics(y_true, predictions[A.Y_PRED].to_numpy().astype(str), predictions[positive].to_numpy())
    pp = peer["predictions"]
    peer_sk = sklearn_metrics(y_true, pp["y_pred"].to_numpy().astype(str), pp[f"proba_{POSITIVE}"].to_numpy())
    overall = ours["insights"]["model_overview"]["overall"]
    agreement = float((pp["y_pred"].to_numpy().astype(str) == predictions[A.Y_PRED].to_numpy().astype(str)).mean())
    print(f"\n{'metric':<24} {'ours (gather)':>13} {'ours (sklearn)':>14} {'peer (sklearn)':>14} {'ours - peer':>11}")
    for name, value in ours_sk.items():
        print(
            f"{name:<24} {overall[name]:>13.4f} {value:>14.4f} {peer_sk[name]:>14.4f} "
            f"{overall[name] - peer_sk[name]:>+11.4f}"
        )
    print(
        f"the two models' predictions agree on {agreement:.2%} of the {len(pp):,} test rows "
        f"(scikit-learn {sklearn.__version__} here, {peer['sklearn']} in the peer venv)"
    )

    oc, pc = ours["cf_check"], peer["cf_check"]
    requested = oc["rows"] * 10
    print(
        f"\ncounterfactuals ({oc['rows']:,} rows x 10 requested = {requested:,}), every one re-predicted by the "
        f"model of its own venv:"
    )
    print(
        f"  ours: found {oc['found']:,}, kept {oc['kept']:,} (the step keeps the valid ones), valid on "
        f"re-prediction {oc['valid']:,}/{oc['kept']:,}; valid/requested {oc['valid'] / requested:.1%}; rows "
        f"with a valid one {oc['rows_with_valid']:,}/{oc['rows']:,}"
    )
    print(
        f"  peer: found {pc['found']:,}, valid on re-prediction {pc['valid']:,}/{pc['found']:,} "
        f"({pc['valid'] / max(pc['found'], 1):.1%}); valid/requested {pc['valid'] / requested:.1%}; rows with "
        f"a valid one {pc['rows_with_valid']:,}/{oc['rows']:,}"
    )

    explanation = ours["explanation"]
    print(
        f"\nexplainer: ours {explanation['method']} on {explanation['n_rows']:,} rows, top 5 "
        f"{[g['feature'] for g in explanation['global'][:5]]}; peer mimic on {peer['explained_rows']:,} rows, "
        f"top 5 {[name for name, _ in peer['global_importance']]}"
    )
    leaves = sum(n["leaf"] for n in ours["error_analysis"]["tree"]["nodes"])
    print(f"error analysis: ours {leaves} leaves, peer {peer['leaves']} leaves")
    causal = ours["causal"]
    print(
        f"causal ({causal['fit']['train_rows']:,} fit rows ours, {peer['causal_fit_rows']:,} the peer), global "
        f"effect point [95% CI]:"
    )
    for treatment in CAUSAL_ANALYSIS["treatment_features"]:
        print(
            f"  {treatment:<15} ours {effect_text(causal['global_effects'], treatment):<30} "
            f"peer {effect_text(peer['global_effects'], treatment)}"
        )
    if peer["refused"]:
        print(f"the peer refused the causal train rows, check bypassed: {peer['refused'][0]}")
    return speedup, parallel_speedup


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--test-rows", type=int, default=0, help="a seeded sample of this many Adult test rows (default 0: all 16,281)"
    )
    p.add_argument("--cf-rows", type=int, default=1000, help="test rows given counterfactuals (the sample)")
    p.add_argument(
        "--causal-train-rows",
        type=int,
        default=0,
        help="train rows the causal fit uses, both sides (our step's seeded sample; 0: all)",
    )
    p.add_argument("--peer-venv", default="/tmp/peer-venv", help="venv with responsibleai 0.36")
    p.add_argument(
        "--workdir",
        help="keep inputs and outputs in a new subfolder of this (default: a temporary folder, removed at the end)",
    )
    p.add_argument("--repeat", type=int, default=1, help="run both sides this many times; the worst ratio counts")
    p.add_argument(
        "--parallel-tasks",
        type=int,
        default=1,
        help="N > 1: also run ours with `rai-audit run --parallel-tasks N` (default 1: one task at a time only)",
    )
    args = p.parse_args(argv)
    if args.repeat < 1 or args.parallel_tasks < 1:
        p.error("--repeat and --parallel-tasks must be >= 1")
    if args.test_rows < 0 or args.cf_rows < 10 or args.causal_train_rows < 0:
        p.error("--test-rows and --causal-train-rows must be >= 0, --cf-rows >= 10 (dice-ml's importances)")
    speedups = []
    for attempt in range(1, args.repeat + 1):
        print(f"\n=== run {attempt} of {args.repeat} ===", flush=True)
        load_before = os.getloadavg()
        if args.workdir:
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
            workdir = Path(tempfile.mkdtemp(prefix="e2e-bench-", dir=args.workdir))
            result = run(
                workdir, args.test_rows, args.cf_rows, args.causal_train_rows, args.peer_venv, args.parallel_tasks
            )
        else:
            with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp:
                result = run(
                    Path(tmp), args.test_rows, args.cf_rows, args.causal_train_rows, args.peer_venv, args.parallel_tasks
                )
        speedups.append(print_results(result, load_before))
    for i, label in enumerate(["one task at a time", f"--parallel-tasks {args.parallel_tasks}"]):
        ratios = [pair[i] for pair in speedups]
        if len(ratios) > 1 and None not in ratios:
            worst = min(ratios)
            verdict = "MET" if worst >= TARGET_SPEEDUP else "NOT MET"
            print(
                f"\nwhole audit over {len(ratios)} runs, {label}: ours {', '.join(f'{s:.2f}x' for s in ratios)} "
                f"faster; worst {worst:.2f}x (target >= {TARGET_SPEEDUP}x in every run: {verdict})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
