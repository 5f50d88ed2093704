"""Whether two runs of an audit computed the same thing.

Two runs of the same audit on the same inputs differ only in what identifies or times the
run: the run id, creation times, durations, and the hashes of files holding those. Those
are set aside here; every other JSON value, every Parquet table and every other file must
be equal (floats to a relative 1e-9, so a different CPU's last bit does not count).

Used by scripts/audit-in-containers.py (the step images' results against a local run) and
by the tests (tests/conftest.py puts scripts/ on sys.path); the package itself never needs
it, so it is not shipped in the images.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

# Keys whose values name or time a run, not what it computed (input_fingerprint: the KFP
# pipeline's cache key of the inputs; empty when a step runs alone, as on Argo).
RUN_KEYS = frozenset(
    {
        "run_id",
        "bundle_run_id",
        "created_at",
        "generated_at",
        "seconds",
        "bundle_manifest_sha256",
        "pipeline_run",
        "input_fingerprint",
    }
)
# Files that only list hashes and times of the files compared here.
SKIPPED_FILES = frozenset({"manifest.json", "executor_output.json"})
RELATIVE_TOLERANCE = 1e-9
_DATA_ELEMENT = re.compile(r'(<script type="application/json" id="rai-data">)(.*?)(</script>)', re.S)


def _without_run_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_run_keys(v) for k, v in value.items() if k not in RUN_KEYS}
    if isinstance(value, list):
        return [_without_run_keys(v) for v in value]
    return value


def _json_differences(a: Any, b: Any, where: str, found: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                found.append(f"{where}/{key}: only in {'the first' if key in a else 'the second'}")
            else:
                _json_differences(a[key], b[key], f"{where}/{key}", found)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _json_differences(x, y, f"{where}[{i}]", found)
    elif (
        isinstance(a, float)
        and isinstance(b, (int, float))
        and not isinstance(b, bool)
        and math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12)
    ):
        return
    elif a != b:
        found.append(f"{where}: {json.dumps(a)[:80]} != {json.dumps(b)[:80]}")


def _page_parts(path: Path) -> tuple[Any, str]:
    """A dashboard page's embedded data and the page around it."""
    text = path.read_text()
    match = _DATA_ELEMENT.search(text)
    if not match:
        return None, text
    return json.loads(match.group(2)), text[: match.start(2)] + text[match.end(2) :]


def _file_differences(a: Path, b: Path, relative: str) -> list[str]:
    found: list[str] = []
    if a.suffix == ".json":
        _json_differences(
            _without_run_keys(json.loads(a.read_text())), _without_run_keys(json.loads(b.read_text())), relative, found
        )
    elif a.suffix == ".parquet":
        try:
            pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b), rtol=RELATIVE_TOLERANCE)
        except AssertionError as err:
            found.append(f"{relative}: {str(err).splitlines()[0]}")
    elif a.suffix == ".html":
        (data_a, page_a), (data_b, page_b) = _page_parts(a), _page_parts(b)
        _json_differences(_without_run_keys(data_a), _without_run_keys(data_b), f"{relative} (data)", found)
        if page_a != page_b:
            found.append(f"{relative}: the page around the data differs")
    elif a.suffix == ".pdf":
        pass  # drawn from scorecard.json, compared as JSON; its bytes hold the run id and time
    elif a.read_bytes() != b.read_bytes():
        found.append(f"{relative}: the bytes differ")
    return found


def artifact_differences(first: str | Path, second: str | Path) -> list[str]:
    """What differs between two artifact folders (bundle, scorecard, ...), run keys set aside.

    An empty list means the two computed the same results.
    """
    first, second = Path(first), Path(second)
    files = {}
    for root in (first, second):
        files[root] = {
            p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name not in SKIPPED_FILES
        }
    found = [
        f"{name}: only in {root}"
        for root, other in ((first, second), (second, first))
        for name in sorted(files[root] - files[other])
    ]
    for name in sorted(files[first] & files[second]):
        found += _file_differences(first / name, second / name, name)
    return found
