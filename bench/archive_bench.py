"""Archive page benchmark: `rai-audit archive serve` on an archive of 5,000 audits, timed.

A SeaweedFS server is started on 127.0.0.1 (``rai_audit.storage.storage_up``). ``--audits``
synthetic audits (``--models`` models, versions of ``--runs-per-version`` scheduled runs
each) are published to it: each is an audit as ``publish_audit`` lays it out (a dashboard
part with meta.json, insights.json, a small dashboard.html and its manifest.json, a
scorecard part with scorecard.json holding two targets with intervals, meta.json and its
manifest.json, and the audit's manifest.json with every sha256 and size), so the server's
verification reads and hashes every file as for a real audit; only the files are small.
The objects are written on 16 threads; then ``rai-audit archive reindex`` builds the index
(timed), and one more audit is published with ``publish_audit``'s index update on top
of the large index (timed: what every publish then costs).

``rai-audit archive serve`` then starts in its own process with the read-only credentials,
and is timed:

- models page and ``/api/archive/models``: the first load after start (the server starts
  verifying every model's latest audit at start; a page waits at most 1.5 s for them and shows
  the rest as CHECKING), the time until every one is verified, and ``--loads`` loads after
  (warm: checks cached), over HTTP;
- the models page in Chromium (navigation until the load event), warm;
- after another publish (the index's ETag changed: reread and parsed), one load;
- one model's history page (all its audits verified, cold, then warm).

    .venv/bin/python bench/archive_bench.py [--audits 5000] [--models 100] [--loads 10] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rai_audit import __version__, archive
from rai_audit.storage import storage_down, storage_up

RAI_AUDIT = Path(sys.executable).with_name("rai-audit")
BUCKET = "bench-archive"


def _doc(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode()


def synthetic_audit(model: str, version: str, run: int, when: datetime, rng: random.Random) -> dict[str, bytes]:
    """The files of one audit, keyed by their path in it, consistent as a published one is."""
    run_id = f"{model}-{version}-{run:04d}-{rng.getrandbits(48):012x}"
    model_sha = hashlib.sha256(f"{model}/{version}".encode()).hexdigest()
    accuracy, recall = 0.7 + rng.random() * 0.2, 0.5 + rng.random() * 0.4
    targets = [
        {"metric": "accuracy_score", "op": ">=", "value": 0.75, "measured": accuracy},
        {"metric": "recall_score", "op": ">=", "value": 0.6, "measured": recall},
    ]
    for t in targets:
        t.update(
            ci_lower=t["measured"] - 0.02,
            ci_upper=t["measured"] + 0.02,
            verdict="PASS" if t["measured"] >= t["value"] else "FAIL",
            cohort=None,
        )
    passed = all(t["verdict"] == "PASS" for t in targets)
    dashboard = {
        "meta.json": _doc({"kind": "dashboard", "run_id": run_id, "producer": f"rai-audit {__version__}"}),
        "insights.json": _doc(
            {
                "model": {"sha256": model_sha},
                "model_overview": {
                    "metric_names": ["accuracy_score", "recall_score"],
                    "overall": {"accuracy_score": accuracy, "recall_score": recall},
                },
                "fairness": [],
            }
        ),
        "dashboard.html": b"<!doctype html><title>synthetic audit</title><p>" + run_id.encode() + b"</p>",
    }
    scorecard = {
        "scorecard.json": _doc({"run_id": run_id, "passed": passed, "targets": targets}),
        "meta.json": _doc({"kind": "scorecard", "run_id": run_id, "signature": None}),
    }
    files: dict[str, bytes] = {}
    listed: dict[str, Any] = {}
    for part, content in (("dashboard", dashboard), ("scorecard", scorecard)):
        own = {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} for name, data in content.items()}
        content["manifest.json"] = _doc({"files": own})
        for name, data in content.items():
            files[f"{part}/{name}"] = data
            listed[f"{part}/{name}"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    files["manifest.json"] = _doc(
        {
            "schema_version": 1,
            "run_id": run_id,
            "pipeline_run": f"scheduled-{run}",
            "model": {"name": model, "version": version, "sha256": model_sha},
            "published_at": when.isoformat(timespec="seconds"),
            "passed": passed,
            "scorecard_signature": {"signed": False, "subject": None},
            "files": listed,
        }
    )
    files["__prefix__"] = f"audits/{model}/{version}/{when.strftime('%Y%m%dT%H%M%SZ')}-{run_id}".encode()
    return files


def publish_synthetic(settings, n_audits: int, n_models: int, runs_per_version: int) -> float:
    client = settings.client()
    if not client.bucket_exists(BUCKET):
        client.make_bucket(BUCKET)
    rng = random.Random(0)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    plan = []
    per_model = n_audits // n_models
    for m in range(n_models):
        for k in range(per_model):
            version = str(1 + k // runs_per_version)
            plan.append((f"model-{m:03d}", version, k, start + timedelta(days=k, minutes=m)))

    def put(item):
        model, version, run, when = item
        files = synthetic_audit(model, version, run, when, random.Random(hash(item) & 0xFFFF))
        prefix = files.pop("__prefix__").decode()
        manifest = files.pop("manifest.json")
        for name, data in files.items():
            client.put_object(BUCKET, f"{prefix}/{name}", io.BytesIO(data), len(data))
        client.put_object(BUCKET, f"{prefix}/manifest.json", io.BytesIO(manifest), len(manifest))  # last

    began = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        for done, _ in enumerate(pool.map(put, plan), 1):
            if done % 1000 == 0:
                print(f"  {done} audits written ({time.perf_counter() - began:.0f} s)", flush=True)
    del rng
    return time.perf_counter() - began


def timed_get(url: str) -> tuple[float, int]:
    began = time.perf_counter()
    with urllib.request.urlopen(url) as response:
        size = len(response.read())
    return time.perf_counter() - began, size


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms (n={len(times)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audits", type=int, default=5000)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--runs-per-version", type=int, default=10)
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="archive-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / "store"
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # the finally below stops the servers it started

    signal.signal(signal.SIGTERM, stop)
    settings = storage_up(store)
    server = None
    try:
        seconds = publish_synthetic(settings, args.audits, args.models, args.runs_per_version)
        print(f"{args.audits} synthetic audits written in {seconds:.1f} s")
        env = {
            **os.environ,
            "RAI_AUDIT_S3_ENDPOINT": settings.endpoint,
            "RAI_AUDIT_S3_ACCESS_KEY": settings.access_key,
            "RAI_AUDIT_S3_SECRET_KEY": settings.secret_key,
        }
        began = time.perf_counter()
        subprocess.run([str(RAI_AUDIT), "archive", "reindex", "--bucket", BUCKET], env=env, check=True)
        print(f"reindex: {time.perf_counter() - began:.1f} s")
        index = archive.read_index(settings, BUCKET)
        size = len(json.dumps(index, sort_keys=True, separators=(",", ":")))
        print(f"index: {index['count']} audits, {size / 1e6:.2f} MB")

        def one_more(run: int) -> float:
            files = synthetic_audit("model-000", "99", run, datetime.now(UTC), random.Random(run))
            prefix = files.pop("__prefix__").decode()
            client = settings.client()
            for name, data in files.items():
                client.put_object(BUCKET, f"{prefix}/{name}", io.BytesIO(data), len(data))
            manifest = json.loads(files["manifest.json"])
            card = json.loads(files["scorecard/scorecard.json"])
            meta = json.loads(files["dashboard/meta.json"])
            began = time.perf_counter()
            archive._index_add(client, BUCKET, archive._index_entry(prefix, manifest, card, meta, None))
            return time.perf_counter() - began

        print(f"index update of one publish on the {index['count']}-audit index: {one_more(1) * 1000:.0f} ms")

        reader_env = {k: v for k, v in env.items() if not k.startswith("RAI_AUDIT_S3_")}
        started = time.perf_counter()
        server = subprocess.Popen(
            [str(RAI_AUDIT), "archive", "serve", "--bucket", BUCKET, "--storage-dir", str(store), "--no-browser"],
            env=reader_env,
            stdout=subprocess.PIPE,
            text=True,
        )
        url = None
        assert server.stdout is not None
        for line in server.stdout:
            print(f"  server: {line.rstrip()}" if not line.startswith("open: ") else "  server: open: <url>")
            if line.startswith("open: "):
                url = line.removeprefix("open: ").strip()
                break
        assert url is not None
        print(f"server process launched to its printed URL: {time.perf_counter() - started:.1f} s")
        base, token = url.split("/archive?token=")
        api = f"{base}/api/archive/models?token={token}"
        cold, page_size = timed_get(url)
        with urllib.request.urlopen(api) as response:
            pending = json.loads(response.read())["checking"]
        print(
            f"models page, first load after start: {cold * 1000:.0f} ms, {page_size / 1e3:.0f} kB "
            f"({pending} of {args.models} latest audits still being verified, shown as CHECKING)"
        )
        while pending:
            time.sleep(0.2)
            with urllib.request.urlopen(api) as response:
                pending = json.loads(response.read())["checking"]
        print(f"every model's latest audit verified {time.perf_counter() - started:.1f} s after the launch")
        page = [timed_get(url)[0] for _ in range(args.loads)]
        api_times, api_size = [], 0
        for _ in range(args.loads):
            t, api_size = timed_get(api)
            api_times.append(t)
        print(f"models page, warm: {summary(page)}")
        print(f"/api/archive/models, warm: {summary(api_times)}, {api_size / 1e3:.0f} kB")

        from playwright.sync_api import sync_playwright

        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        browser_times = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            view = browser.new_page()
            for _ in range(args.loads):
                began = time.perf_counter()
                view.goto(url, wait_until="load")
                browser_times.append(time.perf_counter() - began)
            rows = view.locator("#models tbody tr").count()
            browser.close()
        print(f"models page in Chromium (to the load event), warm: {summary(browser_times)}; {rows} models shown")

        print(f"index update of another publish: {one_more(2) * 1000:.0f} ms")
        t, _ = timed_get(url)
        print(f"models page after the index changed (reread, new model-000 audit verified): {t * 1000:.0f} ms")
        history = f"{base}/archive/model/model-001?token={token}"
        t, size = timed_get(history)
        print(
            f"history of model-001 ({args.audits // args.models} audits), cold: {t * 1000:.0f} ms, {size / 1e3:.0f} kB"
        )
        print(f"history of model-001, warm: {summary([timed_get(history)[0] for _ in range(args.loads)])}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        storage_down(store)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
