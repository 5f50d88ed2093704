"""Benchmark of the dashboard page: gather's time and memory, the page's size and load time.

Cases: the full Adult test set (16,281 rows) and an Adult-shaped synthetic set of
1,000,000 rows (the error analysis benchmark's: Adult test rows resampled with
replacement, numeric columns jittered); the demo model is trained on Adult train as
given. Each case runs the constructor (sample_size 200, sensitive features sex and race,
the demo's three cohorts), the error analysis (Azure ML's defaults, heatmap on age x
education) and gather, each in a fresh spawned process (wall time, peak RSS). Then it
measures ``dashboard.html`` and ``insights.json`` and opens the page in headless Chromium
(Playwright, no network): time from ``goto(file://...)`` to the load event, and to every
chart drawn (each ``.chart`` box holds an ``svg``, or the page's "no data" note), the JS
heap used then (CDP ``Performance.getMetrics``), and any console error or uncaught
exception, which fails the run.

    .venv/bin/python bench/dashboard_bench.py [--rows 16281 1000000] [--loads 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

# The error analysis benchmark's inputs (demo model, Adult-shaped test sets) and its
# measurement (one spawned child per step, its own VmHWM).
from error_analysis_bench import ADULT_TEST_ROWS, EA_OPTIONS, SEED, prepare_inputs, run_in_fresh_process
from rai_audit.core import artifacts as A
from rai_audit.demo import DEMO_COHORTS, SENSITIVE, TARGET
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from rai_audit.steps.error_analysis import ErrorAnalysisOptions, run_error_analysis
from rai_audit.steps.gather import run_gather

CHROMIUM = "/usr/bin/chromium"
SAMPLE_SIZE = 200
PAGE_TIMEOUT_MS = 120_000
MB = 2**20

# True once every chart box is drawn: vegaEmbed put an svg in it, or the page said it has
# no data. The boxes themselves are made synchronously by the page's script, before load.
CHARTS_DRAWN = """() => {
  const boxes = [...document.querySelectorAll('.chart')];
  return boxes.length > 0 && boxes.every(b => b.querySelector('svg') || b.querySelector('p.muted'));
}"""
PAGE_COUNTS = """() => ({
  charts: document.querySelectorAll('.chart').length,
  svgs: document.querySelectorAll('.chart svg').length,
  nodes: document.getElementsByTagName('*').length,
})"""


def page_parts(html: Path) -> dict[str, int]:
    """Bytes of the page and of its embedded JSON (figures, chart specs, row sample)."""
    text = html.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="rai-data">(.*?)</script>', text, re.S)
    return {"html_bytes": html.stat().st_size, "data_bytes": len(found.group(1).encode("utf-8")) if found else 0}


def load_page(html: Path, loads: int) -> dict[str, Any]:
    """Open the page ``loads`` times, each in a new browser context; the times of each."""
    from playwright.sync_api import sync_playwright

    runs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for _ in range(loads):
                context = browser.new_context()
                page = context.new_page()
                errors: list[str] = []
                page.on(
                    "console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None
                )
                page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
                cdp = context.new_cdp_session(page)
                cdp.send("Performance.enable")
                start = time.perf_counter()
                page.goto(html.as_uri(), wait_until="load", timeout=PAGE_TIMEOUT_MS)
                load_s = time.perf_counter() - start
                try:
                    page.wait_for_function(CHARTS_DRAWN, timeout=PAGE_TIMEOUT_MS)
                    charts_s = time.perf_counter() - start
                except Exception as err:  # noqa: BLE001 - reported, and fails the run
                    errors.append(f"charts not all drawn: {str(err).splitlines()[0]}")
                    charts_s = float("nan")
                metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                runs.append(
                    {
                        "load_s": load_s,
                        "charts_s": charts_s,
                        "errors": errors,
                        "heap_mb": metrics.get("JSHeapUsedSize", float("nan")) / MB,
                        **page.evaluate(PAGE_COUNTS),
                    }
                )
                context.close()
        finally:
            browser.close()
    return {
        "runs": runs,
        "load_s": statistics.median(r["load_s"] for r in runs),
        "charts_s": statistics.median(r["charts_s"] for r in runs),
        "heap_mb": max(r["heap_mb"] for r in runs),
        "errors": sorted({e for r in runs for e in r["errors"]}),
    }


def run(workdir: Path, sizes: list[int], loads: int) -> list[dict[str, Any]]:
    print(f"training the demo model and writing inputs to {workdir} ...", flush=True)
    model_path, train_path, tests = prepare_inputs(workdir, sizes)
    constructor_options = ConstructorOptions(
        allow_pickle=True,  # its own joblib model
        target_column=TARGET,
        task_type="binary_classification",
        positive_label=">50K",
        sensitive_features=SENSITIVE,
        cohorts=DEMO_COHORTS,
        sample_size=SAMPLE_SIZE,
        random_state=SEED,
    )
    results = []
    for n in sizes:
        constructor_dir, ea_dir, bundle = (
            workdir / f"{name}_{n}" for name in ("constructor", "error_analysis", "dashboard")
        )
        result: dict[str, Any] = {"rows": n, "load_before": os.getloadavg()[0]}
        print(f"{n:,} rows: constructor ...", flush=True)
        result["constructor"] = run_in_fresh_process(
            run_constructor, model_path, train_path, tests[n], constructor_dir, options=constructor_options
        )
        print(f"{n:,} rows: error analysis ...", flush=True)
        result["error_analysis"] = run_in_fresh_process(
            run_error_analysis, constructor_dir, ea_dir, options=ErrorAnalysisOptions(**EA_OPTIONS)
        )
        print(f"{n:,} rows: gather ...", flush=True)
        result["gather"] = run_in_fresh_process(run_gather, constructor_dir, [ea_dir], bundle)
        result.update(page_parts(bundle / A.DASHBOARD_HTML_FILE))
        result["insights_bytes"] = (bundle / A.INSIGHTS_JSON_FILE).stat().st_size
        doc = A.read_json(bundle / A.INSIGHTS_JSON_FILE)
        result["views"] = len(doc["cohort_views"])
        print(f"{n:,} rows: opening the page {loads}x in headless Chromium ...", flush=True)
        result["page"] = load_page(bundle / A.DASHBOARD_HTML_FILE, loads)
        results.append(result)
    return results


def print_results(results: list[dict[str, Any]], loads: int, load_before: float) -> None:
    print(
        f"\n{date.today().isoformat()}; CPUs {os.cpu_count()}; 1-minute load average {load_before:.1f} "
        f"before, {os.getloadavg()[0]:.1f} after"
    )
    header = (
        f"{'rows':>10} {'constructor s':>13} {'error an. s':>11} {'gather s':>8} {'gather MB':>9} "
        f"{'html MB':>7} {'(data MB)':>9} {'insights KB':>11} {'views':>5} {'charts':>6} "
        f"{'load s':>6} {'drawn s':>7} {'JS heap MB':>10} {'errors':>6}"
    )
    print(header)
    for r in results:
        page = r["page"]
        print(
            f"{r['rows']:>10,} {r['constructor']['seconds']:>13.2f} {r['error_analysis']['seconds']:>11.2f} "
            f"{r['gather']['seconds']:>8.2f} {r['gather']['peak_rss_mb']:>9.0f} "
            f"{r['html_bytes'] / MB:>7.2f} {r['data_bytes'] / MB:>9.2f} {r['insights_bytes'] / 1024:>11.0f} "
            f"{r['views']:>5} {page['runs'][0]['charts']:>6} {page['load_s']:>6.2f} {page['charts_s']:>7.2f} "
            f"{page['heap_mb']:>10.1f} {len(page['errors']):>6}"
        )
    print(
        f"gather MB: gather's peak RSS (VmHWM, fresh process); data MB: the page's embedded JSON (the rest "
        f"is the Vega runtime and the page's script); views: cohort views the page can switch to; charts: "
        f"chart boxes drawn for the first view; load s / drawn s: median of {loads} loads, goto() to the load "
        f"event / to every chart drawn; JS heap: the largest used heap (CDP) once drawn."
    )
    for small, large in zip(results, results[1:]):
        a, b = small["gather"], large["gather"]
        print(
            f"growth {small['rows']:,} -> {large['rows']:,}: rows x{large['rows'] / small['rows']:.1f}, "
            f"gather time x{b['seconds'] / a['seconds']:.1f}, "
            f"gather peak RSS x{b['peak_rss_mb'] / a['peak_rss_mb']:.1f}, "
            f"page size x{large['html_bytes'] / small['html_bytes']:.2f}"
        )
    for r in results:
        steps = ", ".join(f"{k} {r[k]['peak_rss_mb']:.0f}" for k in ("constructor", "error_analysis", "gather"))
        times = ", ".join(f"{x['load_s']:.2f}/{x['charts_s']:.2f}" for x in r["page"]["runs"])
        print(
            f"{r['rows']:,} rows: peak RSS MB {steps}; each load (load/drawn s) {times}; "
            f"load average before {r['load_before']:.1f}"
        )
        for e in r["page"]["errors"]:
            print(f"{r['rows']:,} rows: PAGE ERROR {e[:300]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[ADULT_TEST_ROWS, 1_000_000],
        help=f"test set sizes; {ADULT_TEST_ROWS} is the real Adult test set, others are synthetic",
    )
    p.add_argument("--loads", type=int, default=3, help="times to open each page (medians are printed)")
    p.add_argument(
        "--workdir",
        help="keep inputs and artifacts in a new subfolder of this (default: a temporary folder, removed at the end)",
    )
    args = p.parse_args(argv)
    if min(args.rows) < 1:
        p.error("--rows must be positive")
    if args.loads < 1:
        p.error("--loads must be positive")
    if not Path(CHROMIUM).exists():
        p.error(f"{CHROMIUM} not found (Debian's chromium package)")
    sizes = sorted(set(args.rows))
    load_before = os.getloadavg()[0]
    if args.workdir:  # a new subfolder each run: the steps refuse to overwrite an artifact
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        results = run(Path(tempfile.mkdtemp(prefix="dashboard-bench-", dir=args.workdir)), sizes, args.loads)
    else:
        with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
            results = run(Path(tmp), sizes, args.loads)
    print_results(results, args.loads, load_before)
    return 1 if any(r["page"]["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
