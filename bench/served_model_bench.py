"""Benchmark: the demo model audited served by MLServer (Open Inference Protocol) beside the
same model audited from its file.

The demo Pipeline (one-hot + gradient boosting, trained on the demo's Adult train split) is
saved with joblib and served by a real MLServer (``.venv-mlserver``, ``make
.venv-mlserver/.installed``) on 127.0.0.1. Both audits run the model-calling steps as the
demo's config does (constructor with a 200-row sample, error analysis, the explainer on all
test rows, counterfactuals for the sample, gather; causal calls no model and is left out),
the steps called directly in this process. Printed per step: seconds for each audit, and for
the served one the requests and rows sent (each step's meta.json ``model_calls``); and the
counterfactual step's rows per second through the endpoint.

    .venv/bin/python bench/served_model_bench.py [--batch-size 512] [--concurrency 4] [--workers 0]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from rai_audit.core import artifacts as A
from rai_audit.demo import DEMO_COHORTS, SENSITIVE, TARGET, demo_data_path, train_demo_model
from rai_audit.specs import ConstructorOptions, CounterfactualOptions, ErrorAnalysisOptions, ExplainerOptions
from rai_audit.steps.constructor import run_constructor
from rai_audit.steps.counterfactual import run_counterfactual
from rai_audit.steps.error_analysis import run_error_analysis
from rai_audit.steps.explainer import run_explainer
from rai_audit.steps.gather import run_gather

REPO = Path(__file__).resolve().parents[1]
MLSERVER = REPO / ".venv-mlserver" / "bin" / "mlserver"
STEPS = ("constructor", "error_analysis", "explainer", "counterfactual", "gather")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlserver(folder: Path, model: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    repo = folder / "mlserver"
    (repo / "adult").mkdir(parents=True)
    (repo / "adult" / "model.joblib").write_bytes(model.read_bytes())
    (repo / "adult" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "adult",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    port = _free_port()
    settings = {"host": "127.0.0.1", "http_port": port, "grpc_port": _free_port(), "metrics_port": _free_port()}
    (repo / "settings.json").write_text(json.dumps({**settings, "parallel_workers": workers}))
    log = open(repo / "mlserver.log", "wb")
    server = subprocess.Popen([str(MLSERVER), "start", str(repo)], stdout=log, stderr=subprocess.STDOUT, cwd=repo)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/v2/models/adult/ready", timeout=2).status == 200:
                return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError(f"MLServer did not start: {(repo / 'mlserver.log').read_text()[-2000:]}")


def audit(folder: Path, out: Path, model: Path | None, options: ConstructorOptions) -> dict[str, float]:
    """The steps, timed; returns seconds per step."""
    steps: dict[str, Callable[[], Any]] = {
        "constructor": lambda: run_constructor(
            model, folder / "train.parquet", folder / "test.parquet", out / "constructor", options=options
        ),
        "error_analysis": lambda: run_error_analysis(
            out / "constructor",
            out / "error_analysis",
            options=ErrorAnalysisOptions(max_depth=3, heatmap_features=["age", "education"]),
        ),
        "explainer": lambda: run_explainer(
            out / "constructor", out / "explainer", options=ExplainerOptions(rows="all")
        ),
        "counterfactual": lambda: run_counterfactual(
            out / "constructor",
            out / "counterfactual",
            options=CounterfactualOptions(total_CFs=5, rows="sample", increase_only=["age"], n_jobs=2),
        ),
        "gather": lambda: run_gather(
            out / "constructor", [out / s for s in ("error_analysis", "explainer", "counterfactual")], out / "dashboard"
        ),
    }
    seconds = {}
    for name, step in steps.items():
        started = time.perf_counter()
        step()
        seconds[name] = time.perf_counter() - started
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=4)
    # MLServer 1.7.1's worker processes stop at start on Python 3.11 (uvloop: no current event
    # loop): inference runs in the server's own process.
    parser.add_argument("--workers", type=int, default=0, help="MLServer's parallel_workers")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="served-bench-") as tmp:
        folder = Path(tmp)
        train = pd.read_parquet(demo_data_path("adult_train.parquet"))
        train.to_parquet(folder / "train.parquet", index=False)
        pd.read_parquet(demo_data_path("adult_test.parquet")).to_parquet(folder / "test.parquet", index=False)
        model = folder / "model.joblib"
        joblib.dump(train_demo_model(train), model)
        common = dict(
            target_column=TARGET,
            task_type="binary_classification",
            positive_label=">50K",
            sensitive_features=SENSITIVE,
            cohorts=DEMO_COHORTS,
            sample_size=200,
        )
        server, url = start_mlserver(folder, model, args.workers)
        try:
            served_options = ConstructorOptions(
                **common,
                model_endpoint=url,
                model_name="adult",
                model_batch_size=args.batch_size,
                model_concurrency=args.concurrency,
            )
            served = audit(folder, folder / "served", None, served_options)
        finally:
            server.terminate()
            server.wait(timeout=30)
        from_file = audit(folder, folder / "file", model, ConstructorOptions(**common, allow_pickle=True))
        calls = {
            s: json.loads((folder / "served" / s / A.META_FILE).read_text()).get("model_calls") or {}
            for s in STEPS
            if (folder / "served" / s / A.META_FILE).exists()
        }
        print(f"batch size {args.batch_size}, concurrency {args.concurrency}, MLServer parallel_workers {args.workers}")
        print(f"{'step':<16}{'file s':>9}{'served s':>10}{'requests':>10}{'rows sent':>11}")
        for s in STEPS:
            c = calls.get(s, {})
            print(f"{s:<16}{from_file[s]:>9.1f}{served[s]:>10.1f}{c.get('calls', 0):>10}{c.get('rows', 0):>11}")
        total_calls = sum(c.get("calls", 0) for c in calls.values())
        total_rows = sum(c.get("rows", 0) for c in calls.values())
        print(
            f"{'total':<16}{sum(from_file.values()):>9.1f}{sum(served.values()):>10.1f}{total_calls:>10}{total_rows:>11}"
        )
        cf = calls["counterfactual"]
        print(f"counterfactual step through the endpoint: {cf['rows'] / served['counterfactual']:.0f} rows/s")
        same = pd.read_parquet(folder / "served" / "constructor" / A.PREDICTIONS_FILE).equals(
            pd.read_parquet(folder / "file" / "constructor" / A.PREDICTIONS_FILE)
        )
        print(f"predictions and probabilities identical: {same}")


if __name__ == "__main__":
    main()
