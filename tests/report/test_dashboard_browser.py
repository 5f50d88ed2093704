"""dashboard.html opened in a real headless Chromium: it renders, offline, with the numbers."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from rai_audit.core import artifacts as A

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As root, in a closed network: no sandbox, no background connections (see the machine notes).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium(tmp_path, *args: str) -> str:
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: run scripts/install-system-deps.sh (make test does)")
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def test_dashboard_renders_in_chromium(adult_bundle, tmp_path):
    """The first view (model overview) as Chromium renders it on loading: header, tabs, cohorts, figures."""
    folder, doc = adult_bundle
    page = folder / "dashboard" / A.DASHBOARD_HTML_FILE
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the page must not load anything"
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
    overall = doc["model_overview"]["overall"]
    matrix = overall["confusion_matrix"]["matrix"]
    for expected in (
        # the tabs
        "Model overview",
        "Cohorts",
        "Data explorer",
        "Fairness",
        "Data analysis",
        # the cohort selector and the active cohort
        "cohort: Under 30 (4,804 rows)",
        "group: sex = Female (5,421 rows)",
        "Rows 16,281 test rows",
        # the overview: the run, the warnings, the metrics, the confusion matrix (full data)
        doc["run_id"],
        "cohort 'Nobody' selects no test rows",
        f"accuracy_score {overall['accuracy_score']:.4g}",
        f"roc_auc_score {overall['roc_auc_score']:.4g}",
        f"{matrix[1][1]:,} (",
        "all 16,281 test rows (full data)",
    ):
        assert expected in text, expected
    for absent in ("Error analysis", "Feature importance", "Counterfactuals", "Causal"):
        assert absent not in text, absent  # tabs of the bundle's insights only (it has none)
    shot = tmp_path / "dashboard.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank image
