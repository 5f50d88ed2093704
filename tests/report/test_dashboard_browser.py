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
    folder, doc = adult_bundle
    page = folder / "dashboard" / A.DASHBOARD_HTML_FILE
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the page must not load anything"
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    text = re.sub(r"<[^>]+>", " ", dom)
    overall = doc["model_overview"]["overall"]
    for expected in (
        "Model overview",
        "Fairness",
        "Data analysis",
        "Under 30",
        f"{overall['accuracy_score']:.4g}",
        f"{overall['roc_auc_score']:.4g}",
        "cohort 'Nobody' selects no test rows",
        doc["run_id"],
        "sex × race",
    ):
        assert expected in text, expected
    sex = next(e for e in doc["fairness"] if e["features"] == ["sex"])
    assert f"{sex['difference']['accuracy_score']:.4g}" in text
    shot = tmp_path / "dashboard.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank image
