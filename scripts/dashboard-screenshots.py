#!/usr/bin/env python3
"""Screenshots of a dashboard.html for a visual review, taken in headless Chromium (Playwright):

    .venv/bin/python scripts/dashboard-screenshots.py [dashboard.html] [out-folder] [--widths 1280 800]

With no page given, takes the newest rai-audit-demo/pipeline_root/*/gather/dashboard/dashboard.html
(from `make demo`). Writes into out-folder (default dashboard-screenshots/), for each width W:
- W-NN-tab-<id>.png: every tab of the page, whole (its charts drawn);
- W-NN-tree-node-<id>.png: the error analysis tab with a tree node selected (the deepest one
  holding at least 5% of the errors), then W-NN-tree-node-<id>-overview.png: the
  model overview with that node as the active cohort;
- W-NN-cohort-editor.png: the cohort editor with a cohort built (a numeric feature above its
  median or a categorical feature equal to its first category, or the model wrong) and saved.
Prints the files written; warns of console errors, page errors and any network request, and of
a page wider than the window (horizontal scrolling). Uses the Chromium on PATH (Debian's
`chromium`), no network.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

READY = "() => document.body.dataset.ready === '1'"
CHARTS_DRAWN = """() => [...document.querySelectorAll('.chart')].filter(c => !c.closest('[hidden]'))
    .every(c => c.querySelector('svg') || c.querySelector('p.muted'))"""
DEFAULT_GLOB = "rai-audit-demo/pipeline_root/*/gather/dashboard/dashboard.html"
LOCAL = ("file:", "data:", "blob:", "about:")


def _default_page() -> Path:
    pages = sorted(Path().glob(DEFAULT_GLOB), key=lambda p: p.stat().st_mtime)
    if not pages:
        sys.exit(f"no dashboard.html given and none matches {DEFAULT_GLOB}: run 'make demo' first")
    return pages[-1]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"


def _page_data(page_path: Path) -> dict[str, Any]:
    """The page's embedded DATA (#rai-data), to choose a tree node and a cohort to show."""
    html = page_path.read_text(encoding="utf-8")
    marker = 'id="rai-data">'
    start = html.index(marker) + len(marker)
    return json.loads(html[start : html.index("</script>", start)])


def _tree_node(data: dict[str, Any]) -> dict[str, Any] | None:
    """A deep node worth a look: the deepest of those holding at least 5% of the errors (the
    highest error rate among them), else the root's first child."""
    nodes = ((data["doc"].get("error_analysis") or {}).get("tree") or {}).get("nodes") or []
    if len(nodes) < 2:
        return None
    notable = [n for n in nodes[1:] if (n.get("error_share") or 0) >= 0.05] or nodes[1:2]
    return max(notable, key=lambda n: (n["depth"], n.get("error_rate") or 0))


def _editor_condition(data: dict[str, Any]) -> tuple[str, str, str]:
    """(column, operator, value) of a cohort the editor can build on any data set."""
    table = data.get("table") or {}
    for feature in table.get("features", []):
        if feature["kind"] == "numeric":
            values = [v for v in feature["values"] if v is not None]
            if len(set(values)) > 2:
                return feature["name"], ">", f"{statistics.median(values):g}"
        if feature["kind"] == "categorical" and feature["categories"]:
            return feature["name"], "==", str(feature["categories"][0])
    return "error", "==", "true" if data["doc"]["task_type"] != "regression" else "0"


class Shooter:
    def __init__(self, page: Page, out: Path, width: int, problems: list[str]):
        self.page, self.out, self.width, self.problems = page, out, width, problems
        self.files: list[Path] = []

    def settle(self) -> None:
        self.page.wait_for_function(CHARTS_DRAWN, timeout=30_000)
        self.page.wait_for_timeout(300)  # let the layout settle after the last chart

    def tab(self, tab_id: str) -> None:
        self.page.click(f"#tab-{tab_id}")
        self.page.locator(f"#panel-{tab_id}").wait_for(state="visible")
        self.page.evaluate("window.scrollTo(0, 0)")
        self.settle()
        scroll = self.page.evaluate("document.documentElement.scrollWidth")
        if scroll > self.width:
            self.problems.append(f"{self.width} px, tab {tab_id}: the page is {scroll} px wide (scrolls sideways)")

    def shot(self, name: str) -> None:
        path = self.out / f"{self.width}-{len(self.files):02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.files.append(path)


def take(page_path: Path, out: Path, widths: tuple[int, ...] = (1280, 800), height: int = 900) -> list[Path]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("Chromium is not installed: run scripts/install-system-deps.sh")
    out.mkdir(parents=True, exist_ok=True)
    data = _page_data(page_path)
    node = _tree_node(data)
    column, op, value = _editor_condition(data)
    files: list[Path] = []
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for width in widths:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: None if r.url.startswith(LOCAL) else problems.append(f"request: {r.url}"))
            page.goto(page_path.resolve().as_uri())
            page.wait_for_function(READY, timeout=30_000)
            s = Shooter(page, out, width, problems)
            s.settle()
            tabs = [t.removeprefix("tab-") for t in page.eval_on_selector_all("[role=tab]", "ts => ts.map(t => t.id)")]
            for tab in tabs:
                s.tab(tab)
                s.shot(f"tab-{tab}")

            if node is not None and "error-analysis" in tabs:
                s.tab("error-analysis")
                item = page.locator(f"[data-testid=error-tree] [role=treeitem][data-node-id='{node['id']}']")
                # Open collapsed ancestors (ArrowRight on a closed node opens it).
                ancestors, parent = [], node["parent"]
                nodes = data["doc"]["error_analysis"]["tree"]["nodes"]
                while parent is not None:
                    ancestors.insert(0, parent)
                    parent = nodes[parent]["parent"]
                for a in ancestors:
                    above = page.locator(f"[data-testid=error-tree] [role=treeitem][data-node-id='{a}']")
                    if above.get_attribute("aria-expanded") == "false":
                        above.focus()
                        above.press("ArrowRight")
                item.click()
                s.settle()
                s.shot(f"tree-node-{node['id']}")
                s.tab("overview")
                s.shot(f"tree-node-{node['id']}-overview")

            s.tab("cohorts")
            editor = page.locator("[data-testid=cohort-editor]")
            editor.locator("select[name=column]").first.select_option(column)
            editor.locator("select[name=op]").first.select_option(op)
            editor.locator("input[name=value]").first.fill(value)
            editor.locator("input[name=cohort-name]").fill(f"{column} {op} {value}")
            editor.locator("[data-testid=save-cohort]").click()
            s.settle()
            s.shot("cohort-editor")
            files += s.files
            context.close()
        browser.close()
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", nargs="?", type=Path, help=f"dashboard.html (default: the newest {DEFAULT_GLOB})")
    parser.add_argument("out", nargs="?", type=Path, default=Path("dashboard-screenshots"), help="output folder")
    parser.add_argument(
        "--widths", type=int, nargs="+", default=[1280, 800], help="viewport widths in CSS pixels (default 1280 800)"
    )
    args = parser.parse_args(argv)
    page_path = args.page or _default_page()
    if not page_path.is_file():
        sys.exit(f"{page_path}: no such file")
    for path in take(page_path, args.out, widths=tuple(args.widths)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
