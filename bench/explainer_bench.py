"""Benchmark of the explainer step: wall time and peak memory on the full Adult test set.

Two models, each a Pipeline of one-hot encoding and boosted trees trained on Adult train:
the demo model (HistGradientBoosting: no exact explainer supports it, so the step uses
its mimic and records its fidelity) and LightGBM (n_estimators=100), which gets tree
SHAP. The constructor runs first (untimed); the explainer then runs in a fresh spawned
process, so its peak RSS (VmHWM) is its own.

Peer (``--peer-venv``): responsibleai 0.36's explainer manager (``RAIInsights``) in its
own venv, which has older scikit-learn and pandas. Pickles do not cross those versions,
so the peer trains the same model spec on the same data with the same seeds and explains
the same test rows. If RAIInsights cannot be driven there, interpret-community's
MimicExplainer is called as the manager calls it, in our venv, and labelled so.

    .venv/bin/python bench/explainer_bench.py [--rows all|N] [--peer-venv /tmp/peer-venv] [--workdir DIR]
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

# The error analysis benchmark's measurement: one spawned child per run, its own VmHWM.
from error_analysis_bench import last_line, peer_python, run_in_fresh_process
from rai_audit.demo import DEMO_COHORTS, SENSITIVE, TARGET, demo_data_path, train_demo_model
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from rai_audit.steps.explainer import ExplainerOptions, _import_shap, run_explainer

SEED = 0
MODELS = {"demo": "demo (HGB)", "lightgbm": "LightGBM"}


def make_model(kind, train):
    """The benchmarked model specs. This source also runs in the peer venv, so both sides
    train the same thing; "demo" is a copy of ``train_demo_model`` (ours uses the real one)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    features = train.drop(columns=["income"])
    categorical = [c for c in features.columns if features[c].dtype == object]
    encode = ColumnTransformer(
        [
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            )
        ],
        remainder="passthrough",
    )
    if kind == "demo":
        estimator = HistGradientBoostingClassifier(max_iter=200, random_state=0)
    else:
        from lightgbm import LGBMClassifier

        estimator = LGBMClassifier(n_estimators=100, verbose=-1, random_state=0)
    return Pipeline([("encode", encode), ("classify", estimator)]).fit(features, train["income"])


def peer_inputs(train_path, constructor_dir, rows):
    """(train, explained test rows with labels, categorical features, our predictions on
    those rows), as the peer gets them; this source also runs in the peer venv.

    responsibleai's explainer refuses missing values in categorical features, so they
    become "?" (Adult's original spelling) in train and test alike.
    """
    train = pd.read_parquet(train_path)
    test = pd.read_parquet(f"{constructor_dir}/test.parquet")
    predictions = pd.read_parquet(f"{constructor_dir}/predictions.parquet")
    test["income"] = predictions["y_true"]
    explained = predictions["in_sample"] if rows != "all" else slice(None)  # ours explains the same
    categorical = [c for c in train.columns if train[c].dtype == object and c != "income"]
    fill = {c: "?" for c in categorical}
    return (
        train.fillna(fill),
        test[explained].reset_index(drop=True).fillna(fill),
        categorical,
        predictions["y_pred"][explained].to_numpy(),
    )


# Runs in the peer venv, after the source of make_model and peer_inputs.
PEER_SCRIPT = r"""
kind, train_path, constructor_dir, rows = sys.argv[1:5]
from responsibleai import RAIInsights
import responsibleai.managers.explainer_manager as manager

train, test, categorical, y_ours = peer_inputs(train_path, constructor_dir, rows)
model = make_model(kind, train)
agreement = float((model.predict(test.drop(columns=["income"])) == y_ours).mean())
# The manager explains only the first 10,000 rows; raised so it explains the rows ours does.
manager.MAXIMUM_ROWS_FOR_GLOBAL_EXPLANATIONS = max(manager.MAXIMUM_ROWS_FOR_GLOBAL_EXPLANATIONS, len(test))
# Reset VmHWM (Linux >= 4.0): the peak then covers RAIInsights and the explainer, not training.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
start = time.perf_counter()
insights = RAIInsights(model, train, test, "income", "classification", categorical_features=categorical,
                       maximum_rows_for_test=20000)
init_seconds = time.perf_counter() - start
start = time.perf_counter()
insights.explainer.add()
insights.explainer.compute()
seconds = time.perf_counter() - start
# RAIInsights.compute() then also runs the managers it always has (data balance, ...).
start = time.perf_counter()
insights.compute()
rest_seconds = time.perf_counter() - start
n_rows = len(insights.explainer.get()[0].local_importance_values[0])
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"seconds": seconds, "init_seconds": init_seconds, "rest_seconds": rest_seconds, "n_rows": n_rows,
                  "agreement": agreement, "peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""


def peer_source() -> str:
    head = "import json, sys, time, warnings\nimport pandas as pd\nwarnings.simplefilter('ignore')\n"
    return head + inspect.getsource(make_model) + inspect.getsource(peer_inputs) + PEER_SCRIPT


def mimic_fallback(model_path: Path, train_path: str, constructor_dir: str, rows: str) -> int:
    """What responsibleai's explainer manager does in compute(), in our venv: a
    MimicExplainer (LightGBM surrogate on the raw features, fitted on all of train)."""
    import warnings

    _import_shap()  # before interpret_community imports shap with its plots (see the explainer)
    from interpret_community.mimic import MimicExplainer
    from interpret_community.mimic.models import LGBMExplainableModel

    model = joblib.load(model_path)
    train, test, categorical, _ = peer_inputs(train_path, constructor_dir, rows)
    features = train.drop(columns=["income"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = MimicExplainer(
            model,
            features,
            LGBMExplainableModel,
            features=list(features.columns),
            model_task="classification",
            classes=list(model.classes_),
            categorical_features=categorical,
        )
        explanation = explainer.explain_global(test.drop(columns=["income"]), include_local=True)
    return len(explanation.local_importance_values[0])


def run_peer(
    python: Path | None, why_not: str, kind: str, train_path: str, constructor_dir: Path, rows: str, workdir: Path
) -> dict[str, Any]:
    if python is None:
        return {"skipped": why_not}
    done = subprocess.run(
        [str(python), "-c", peer_source(), kind, train_path, str(constructor_dir), rows], capture_output=True, text=True
    )
    if done.returncode == 0:
        return {"label": "peer RAIInsights", **json.loads(done.stdout.strip().splitlines()[-1])}
    # RAIInsights could not be driven: the same explainer, in our venv, on the same rows.
    train, test, _, y_ours = peer_inputs(train_path, str(constructor_dir), rows)
    model_path = workdir / f"fallback_{kind}.joblib"
    model = make_model(kind, train)
    joblib.dump(model, model_path)
    agreement = float((model.predict(test.drop(columns=["income"])) == y_ours).mean())
    timed = run_in_fresh_process(mimic_fallback, model_path, train_path, str(constructor_dir), rows)
    return {
        "label": "fallback MimicExplainer",
        "error": last_line(done),
        "seconds": timed["seconds"],
        "n_rows": timed["result"],
        "agreement": agreement,
        "peak_rss_mb": timed["peak_rss_mb"],
    }


def explain_in_memory(constructor_dir: Path, options: ExplainerOptions) -> dict[str, Any]:
    """Ours measured as the peer is: the model, the data and the explainer libraries already in
    memory (untimed, as the peer's process holds them before ``explainer.add()``), then the
    explainer built, every row explained and the fidelity computed (timed). Nothing is written."""
    import time
    import warnings

    from rai_audit.core import artifacts as A
    from rai_audit.core.constructor_artifact import load_constructor_artifact
    from rai_audit.steps import explainer as E

    audit = load_constructor_artifact(constructor_dir)
    model = audit.load_model()
    features = audit.meta["model_features"]
    train = pd.read_parquet(audit.folder / A.TRAIN_FILE)[features]
    test = audit.features[features]
    classes = audit.meta["classes"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _import_shap()
        import interpret_community.shap  # noqa: F401  (the imports `auto` makes, untimed like the peer's)

        started = time.perf_counter()
        built = E.build_explainer(model, train, test, classes, audit.is_classifier, options)
        rows = test.iloc[E._explained_rows(audit, options)].reset_index(drop=True)
        built.explain(rows, len(classes) if classes else None)
        E._fidelity(built, test, audit.y_pred.to_numpy(), audit.is_classifier)
        return {"seconds": time.perf_counter() - started, "n_rows": len(rows)}


def run(workdir: Path, rows: str, peer_venv: str | None) -> list[dict[str, Any]]:
    train_path = str(demo_data_path("adult_train.parquet"))
    train = pd.read_parquet(train_path)
    python, why_not = peer_python(peer_venv, module="responsibleai")
    # A number of rows is the constructor's stratified sample, which the explainer takes.
    constructor_options = ConstructorOptions(
        allow_pickle=True,  # its own joblib model
        target_column=TARGET,
        task_type="binary_classification",
        positive_label=">50K",
        sensitive_features=SENSITIVE,
        cohorts=DEMO_COHORTS,
        random_state=SEED,
        sample_size=0 if rows == "all" else int(rows),
    )
    explainer_options = ExplainerOptions(rows="all" if rows == "all" else "sample", random_state=SEED)
    results = []
    for kind, name in MODELS.items():
        print(f"{name}: training, constructor ...", flush=True)
        model_path = workdir / f"{kind}.joblib"
        joblib.dump(train_demo_model(train) if kind == "demo" else make_model(kind, train), model_path)
        constructor_dir = workdir / f"constructor_{kind}"
        run_constructor(
            model_path, train_path, demo_data_path("adult_test.parquet"), constructor_dir, options=constructor_options
        )
        print(f"{name}: explainer ...", flush=True)
        # The 1-minute load average just before each timed run: shared cores skew timings.
        ours = {
            "load": os.getloadavg()[0],
            **run_in_fresh_process(
                run_explainer, constructor_dir, workdir / f"explanation_{kind}", options=explainer_options
            ),
        }
        ours["info"] = json.loads((workdir / f"explanation_{kind}" / "result.json").read_text())
        load = os.getloadavg()[0]
        in_memory = run_in_fresh_process(explain_in_memory, constructor_dir, explainer_options)
        ours["in_memory"] = {**in_memory, "load": load, "seconds": in_memory["result"]["seconds"]}
        if python:
            print(f"{name}: peer ...", flush=True)
        peer = {
            "load": os.getloadavg()[0],
            **run_peer(python, why_not, kind, train_path, constructor_dir, rows, workdir),
        }
        results.append({"model": name, "ours": ours, "peer": peer})
    return results


def print_results(results: list[dict[str, Any]], load_before: tuple[float, ...]) -> None:
    def row(model, who, method, n, run, fidelity, ratio):
        print(
            f"{model:<11} {who:<24} {method:<7} {n:>7,} {run['seconds']:>8.2f} {run['seconds'] / n * 1000:>9.3f} "
            f"{run['peak_rss_mb']:>11.0f} {fidelity:>9} {ratio:>9} {run['load']:>5.2f}"
        )

    def loads(values):
        return ", ".join(f"{x:.2f}" for x in values)

    print(
        f"\nCPUs {os.cpu_count()}; load average (1, 5, 15 min) before {loads(load_before)}, "
        f"after {loads(os.getloadavg())}"
    )
    print(
        f"{'model':<11} {'who':<24} {'method':<7} {'rows':>7} {'seconds':>8} {'s/1k rows':>9} "
        f"{'peak RSS MB':>11} {'fidelity':>9} {'ours/peer':>9} {'load':>5}"
    )
    notes = []
    for r in results:
        ours, info, peer = r["ours"], r["ours"]["info"], r["peer"]
        fidelity = f"{info['fidelity']['value']:.4f}" if info["fidelity"] else "exact"
        memory = ours["in_memory"]
        row(r["model"], "ours (rai_audit)", info["method"], ours["result"].n_rows, ours, fidelity, "")
        if "skipped" in peer:
            row(r["model"], "ours, in memory", info["method"], memory["result"]["n_rows"], memory, fidelity, "")
            notes.append(f"{r['model']}: peer {peer['skipped']}")
            continue
        ratio = f"{memory['seconds'] / peer['seconds']:.2f}"
        row(r["model"], "ours, in memory", info["method"], memory["result"]["n_rows"], memory, fidelity, ratio)
        row(r["model"], peer["label"], "mimic", peer["n_rows"], peer, "-", f"{ours['seconds'] / peer['seconds']:.2f}")
        notes.append(
            f"{r['model']}: the peer's model agrees with ours on {peer['agreement']:.2%} of the rows; "
            + (
                f"RAIInsights() took {peer['init_seconds']:.2f} s and the rest of its compute() "
                f"{peer['rest_seconds']:.2f} s more"
                if "init_seconds" in peer
                else f"RAIInsights failed ({peer['error']})"
            )
        )
    print("\n".join(notes))
    print(
        "Ours: run_explainer, including reading the artifact, loading the model (its libraries' imports) and "
        "writing its output; fidelity is our mimic's accuracy against the model on the whole test set. Ours, in "
        "memory: the same explainer built, the rows explained and the fidelity computed with the model, data and "
        "libraries already loaded, as the peer's are (its ours/peer is on that row). Peer: explainer.add() + "
        "explainer.compute(); the peer's row gives the whole step's ours/peer. "
        "load: 1-minute load average before the run."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--rows", default="all", help="'all' (the 16,281 Adult test rows) or a number: a stratified sample of that size"
    )
    p.add_argument(
        "--workdir",
        help="keep models and artifacts in a new subfolder of this (default: a temporary folder, removed at the end)",
    )
    p.add_argument("--peer-venv", help="venv with responsibleai 0.36, to run the peer")
    args = p.parse_args(argv)
    if args.rows != "all" and not (args.rows.isdigit() and int(args.rows) > 0):
        p.error("--rows must be 'all' or a positive number")
    load_before = os.getloadavg()
    if args.workdir:  # a new subfolder each run: the steps refuse to overwrite an artifact
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        results = run(Path(tempfile.mkdtemp(prefix="explainer-bench-", dir=args.workdir)), args.rows, args.peer_venv)
    else:
        with tempfile.TemporaryDirectory(prefix="explainer-bench-") as tmp:
            results = run(Path(tmp), args.rows, args.peer_venv)
    print_results(results, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
