"""artifact_differences: two runs of one audit agree; any computed change is found."""

import json
import shutil

import pandas as pd

from compare_artifacts import artifact_differences
from support import ADULT_COHORTS, build_bundle


def _copy(bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    return copy


def test_two_runs_of_one_audit_agree_but_for_run_keys(adult_case, adult_bundle, tmp_path):
    first = adult_bundle[0] / "dashboard"
    second = build_bundle(adult_case, tmp_path, cohorts=ADULT_COHORTS)[0] / "dashboard"
    first_meta, second_meta = (json.loads((b / "meta.json").read_text()) for b in (first, second))
    assert first_meta["run_id"] != second_meta["run_id"]  # really two runs
    assert (first / "dashboard.html").read_bytes() != (second / "dashboard.html").read_bytes()
    assert artifact_differences(first, second) == []


def test_a_changed_figure_is_found(adult_bundle, tmp_path):
    bundle = adult_bundle[0] / "dashboard"
    copy = _copy(bundle, tmp_path)
    insights = json.loads((copy / "insights.json").read_text())
    overall = insights["model_overview"]["overall"]
    metric = next(k for k, v in overall.items() if isinstance(v, float))
    overall[metric] += 1e-6
    (copy / "insights.json").write_text(json.dumps(insights))
    found = artifact_differences(bundle, copy)
    assert len(found) == 1 and found[0].startswith(f"insights.json/model_overview/overall/{metric}: ")
    # A last-bit difference is not one.
    overall[metric] = (overall[metric] - 1e-6) * (1 + 1e-12)
    (copy / "insights.json").write_text(json.dumps(insights))
    assert artifact_differences(bundle, copy) == []


def test_changed_tables_pages_and_files_are_found(adult_bundle, tmp_path):
    bundle = adult_bundle[0] / "dashboard"
    copy = _copy(bundle, tmp_path)
    table = next(copy.rglob("*.parquet"))
    frame = pd.read_parquet(table)
    column = frame.select_dtypes("number").columns[0]
    frame.loc[0, column] = frame.loc[0, column] + 1
    frame.to_parquet(table)
    page = copy / "dashboard.html"
    page.write_text(page.read_text().replace("<body", "<body data-x=1", 1))
    (copy / "extra.txt").write_text("x")
    found = artifact_differences(bundle, copy)
    assert any(line.startswith(table.relative_to(copy).as_posix()) for line in found)
    assert "dashboard.html: the page around the data differs" in found
    assert any(line.startswith("extra.txt: only in") for line in found)
    assert len(found) == 3
