"""Live server benchmark: `rai-audit dashboard` answering the page's requests, timed.

Per test-set size (the real Adult test set, 16,281 rows, and Adult-shaped sets resampled from
it, as in the error analysis benchmark), a bundle is built as the demo builds it: the demo
model (one-hot + HistGradientBoosting, saved with skops), the constructor (the demo's cohorts
and sensitive features, ``sample_size`` rows sampled), the explainer (the demo's: every row at
16,281 rows; the sample at larger sizes, where explaining every row would take an hour), the
counterfactual search (the demo's options on the sample) and gather. Then ``rai-audit
dashboard`` starts in its own process, and ``--requests`` requests of each kind are sent one
after the other over HTTP, as the page sends them:

- predict: one edited test row (a different row each time: age and hours per week changed);
- explain: the local explanation of such a row (the demo model has no exact explainer: the
  explanation step's mimic, fitted again at start);
- counterfactuals: the search for such a row, with the run's options;
- cohort: a cohort's figures on every test row (a different filter each time).

Printed per size: the server's start time (to the printed URL) and peak RSS, and per kind
p50, p95 and max latency in milliseconds.

    .venv/bin/python bench/live_bench.py [--rows 16281 1000000] [--requests 100] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from e2e_bench import save_skops
from error_analysis_bench import SEED, adult_like
from rai_audit.demo import DEMO_COHORTS, SENSITIVE, TARGET, demo_data_path, train_demo_model
from rai_audit.specs import ConstructorOptions, CounterfactualOptions, ExplainerOptions
from rai_audit.steps.constructor import run_constructor
from rai_audit.steps.counterfactual import run_counterfactual
from rai_audit.steps.explainer import run_explainer
from rai_audit.steps.gather import run_gather

RAI_AUDIT = Path(sys.executable).with_name("rai-audit")
ADULT_TEST_ROWS = 16281
KINDS = ("predict", "explain", "counterfactuals", "cohort")


def build_bundle(workdir: Path, n_rows: int, sample_size: int, model: Path, trusted: list[str]) -> Path:
    folder = workdir / f"rows_{n_rows}"
    if (folder / "dashboard" / "manifest.json").is_file():
        return folder / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    test = pd.read_parquet(demo_data_path("adult_test.parquet"))
    if n_rows != ADULT_TEST_ROWS:
        test = adult_like(test, n_rows, SEED)
    test_path = folder / "test.parquet"
    test.to_parquet(test_path, index=False)
    options = ConstructorOptions(
        target_column=TARGET,
        task_type="binary_classification",
        positive_label=">50K",
        sensitive_features=SENSITIVE,
        cohorts=DEMO_COHORTS,
        sample_size=sample_size,
        skops_trusted_types=trusted,
        random_state=0,
    )
    started = time.perf_counter()
    run_constructor(model, demo_data_path("adult_train.parquet"), test_path, folder / "constructor", options=options)
    rows = "all" if n_rows == ADULT_TEST_ROWS else "sample"
    run_explainer(folder / "constructor", folder / "explanation", options=ExplainerOptions(rows=rows))
    run_counterfactual(
        folder / "constructor",
        folder / "counterfactual",
        options=CounterfactualOptions(total_CFs=5, rows="sample", increase_only=["age"], n_jobs=1),
    )
    run_gather(folder / "constructor", [folder / "explanation", folder / "counterfactual"], folder / "dashboard")
    print(f"  bundle of {n_rows:,} rows built in {time.perf_counter() - started:.0f} s (explained rows: {rows})")
    return folder / "dashboard"


class Server:
    """`rai-audit dashboard BUNDLE --no-browser` in its own process."""

    def __init__(self, bundle: Path):
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [str(RAI_AUDIT), "dashboard", str(bundle), "--no-browser"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            if line.startswith("open: "):
                break
        else:
            raise RuntimeError("the server did not start:\n" + "".join(lines))
        self.start_seconds = time.perf_counter() - started
        url = line.split("open: ", 1)[1].strip()
        self.port = int(url.split(":")[2].split("/")[0])
        self.token = url.split("token=", 1)[1]

    def ask(self, path: str, body: Any = None) -> tuple[int, Any, float]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        connection.request("POST" if data is not None else "GET", path, body=data, headers=headers)
        response = connection.getresponse()
        content = response.read()
        seconds = time.perf_counter() - started
        connection.close()
        return response.status, json.loads(content), seconds

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def requests_of(
    kind: str, k: int, test: pd.DataFrame, features: list[str], rng: np.random.Generator
) -> tuple[str, Any]:
    """The k-th request of a kind, as the page sends it."""
    if kind == "cohort":
        age = 18 + k % 50
        filters = [
            {"column": "age", "op": ">=", "value": age},
            {"and": [{"column": "sex", "op": "==", "value": "Female"}, {"column": "age", "op": "<", "value": age}]},
            {
                "or": [
                    {"column": "race", "op": "!=", "value": "White"},
                    {"column": "hours-per-week", "op": ">", "value": age},
                ]
            },
        ]
        return "/api/cohort", {"filter": filters[k % 3], "name": f"cohort {k}"}
    row_id = int(rng.integers(len(test)))
    row = {f: (v.item() if hasattr(v, "item") else v) for f, v in test.iloc[row_id][features].items()}
    row = {f: (None if isinstance(v, float) and np.isnan(v) else v) for f, v in row.items()}
    row["age"] = int(min(90, row["age"] + 1 + k % 10))
    row["hours-per-week"] = int(20 + (k * 7) % 50)
    if kind == "counterfactuals":
        return "/api/counterfactuals", {"row": row, "row_id": row_id}
    return f"/api/{kind}", {"rows": [row]}


def bench_size(bundle: Path, n_requests: int) -> dict[str, Any]:
    test = pd.read_parquet(bundle / "tables" / "predictions.parquet")
    server = Server(bundle)
    try:
        features = server.ask("/api/info")[1]["model_features"]
        out: dict[str, Any] = {"start_seconds": server.start_seconds}
        for kind in KINDS:
            rng = np.random.default_rng(SEED)
            times, failed = [], []
            for k in range(n_requests):
                path, body = requests_of(kind, k, test, features, rng)
                status, answer, seconds = server.ask(path, body)
                times.append(seconds)
                if status != 200:
                    failed.append(f"{status}: {answer.get('error')}")
            ms = np.array(times) * 1000
            out[kind] = {
                "n": len(ms),
                "p50": float(np.percentile(ms, 50)),
                "p95": float(np.percentile(ms, 95)),
                "max": float(ms.max()),
                "failed": failed[:3],
                "n_failed": len(failed),
            }
            print(
                f"  {kind:<16} p50 {out[kind]['p50']:8.1f} ms  p95 {out[kind]['p95']:8.1f} ms  ({len(failed)} failed)"
            )
        out["peak_rss_mb"] = server.peak_rss_mb()
    finally:
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[ADULT_TEST_ROWS, 1_000_000])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--sample-size", type=int, default=200, help="the constructor's sample (the demo's 200)")
    parser.add_argument("--workdir", default=None, help="reuse bundles built there before")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="live-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir {workdir}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    model = workdir / "model.skops"
    trusted_file = workdir / "trusted.json"
    if not model.is_file():
        trusted_file.write_text(
            json.dumps(save_skops(train_demo_model(pd.read_parquet(demo_data_path("adult_train.parquet"))), model))
        )
    trusted = json.loads(trusted_file.read_text())
    results = {}
    for n in args.rows:
        print(f"{n:,} test rows")
        bundle = build_bundle(workdir, n, args.sample_size, model, trusted)
        results[n] = bench_size(bundle, args.requests)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}\n")
    header = "| request | " + " | ".join(f"{n:,} rows p50 / p95 (ms)" for n in results) + " |"
    print(header)
    print("|" + "---|" * (len(results) + 1))
    for kind in KINDS:
        cells = [
            f"{r[kind]['p50']:.0f} / {r[kind]['p95']:.0f}"
            + (f" ({r[kind]['n_failed']} failed)" if r[kind]["n_failed"] else "")
            for r in results.values()
        ]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print("| server start (s) | " + " | ".join(f"{r['start_seconds']:.1f}" for r in results.values()) + " |")
    print("| server peak RSS (MB) | " + " | ".join(f"{r['peak_rss_mb']:.0f}" for r in results.values()) + " |")
    for n, r in results.items():
        for kind in KINDS:
            if r[kind]["failed"]:
                print(f"{n:,} rows, {kind}: {r[kind]['failed']}")


if __name__ == "__main__":
    main()
