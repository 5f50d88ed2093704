#!/usr/bin/env python3
"""Screenshots of a dashboard.html for a visual review, taken in headless Chromium (Playwright):

    .venv/bin/python scripts/dashboard-screenshots.py [dashboard.html] [out-folder]

With no page given, takes the newest rai-audit-demo/pipeline_root/*/gather/dashboard/dashboard.html
(from `make demo`). Writes into out-folder (default dashboard-screenshots/):
- 00-top.png: the first screen (header, cohort selector, start of the model overview);
- NN-<section>.png: each section of the page, whole (scrolled to, charts drawn);
- NN-cohort-<name>.png: the first screen after switching the cohort to the selector's second option;
- NN-error-tree-open.png: the error analysis section with the tree's root opened.
Prints the files written. Uses the Chromium on PATH (Debian's `chromium`), no network.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHARTS_DRAWN = """() => [...document.querySelectorAll('.chart')]
    .every(c => c.querySelector('svg') || c.querySelector('p.muted'))"""
DEFAULT_GLOB = "rai-audit-demo/pipeline_root/*/gather/dashboard/dashboard.html"


def _default_page() -> Path:
    pages = sorted(Path().glob(DEFAULT_GLOB), key=lambda p: p.stat().st_mtime)
    if not pages:
        sys.exit(f"no dashboard.html given and none matches {DEFAULT_GLOB}: run 'make demo' first")
    return pages[-1]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"


def take(page_path: Path, out: Path, width: int = 1280, height: int = 900) -> list[Path]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("Chromium is not installed: run scripts/install-system-deps.sh")
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith(("file:", "data:", "blob:", "about:"))
                else problems.append(f"network request: {r.url}")
            ),
        )

        def settle() -> None:
            page.wait_for_function(CHARTS_DRAWN, timeout=30_000)
            page.wait_for_timeout(300)  # let the layout settle after the last chart

        def shot(name: str, **kwargs) -> None:
            path = out / f"{len(files):02d}-{name}.png"
            (kwargs.pop("element").screenshot if "element" in kwargs else page.screenshot)(path=str(path), **kwargs)
            files.append(path)

        page.goto(page_path.resolve().as_uri())
        settle()
        shot("top")
        # The sticky header would be painted over the middle of tall section shots.
        page.add_style_tag(content="header { position: static !important; }")
        for section in page.eval_on_selector_all("main > section", "ss => ss.map(s => s.id)"):
            element = page.locator(f"section#{section}")
            element.scroll_into_view_if_needed()
            settle()
            shot(section, element=element)

        options = page.eval_on_selector_all("#cohort option", "os => os.map(o => [o.value, o.textContent])")
        if len(options) > 1:
            value, label = options[1]
            page.select_option("#cohort", value=value)
            page.evaluate("window.scrollTo(0, 0)")
            settle()
            shot(f"cohort-{_slug(label)}")
            page.select_option("#cohort", value=options[0][0])
            settle()

        root = page.locator("#error-tree > details > summary")
        if root.count():
            root.click()
            page.wait_for_function("() => document.querySelector('#error-tree > details').dataset.filled")
            section = page.locator("section#error-analysis")
            section.scroll_into_view_if_needed()
            settle()
            shot("error-tree-open", element=section)
        browser.close()
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", nargs="?", type=Path, help=f"dashboard.html (default: the newest {DEFAULT_GLOB})")
    parser.add_argument("out", nargs="?", type=Path, default=Path("dashboard-screenshots"), help="output folder")
    parser.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels")
    args = parser.parse_args(argv)
    page_path = args.page or _default_page()
    if not page_path.is_file():
        sys.exit(f"{page_path}: no such file")
    for path in take(page_path, args.out, width=args.width):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
