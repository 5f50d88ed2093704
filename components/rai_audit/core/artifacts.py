"""The on-disk artifact contract (documented in docs/artifacts.md).

Every artifact is a folder holding Parquet tables, JSON files, a ``meta.json`` (kind,
schema version, run id) and a ``manifest.json`` with the sha256 of every other file.
Folders are written to a temporary sibling and renamed into place only when complete, so
a failed step never leaves a half-written artifact behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from rai_audit import __version__
from rai_audit.core._errors import ArtifactIntegrityError, RAIInputError

SCHEMA_VERSION = "1.0"
SUPPORTED_SCHEMA_VERSIONS = (SCHEMA_VERSION,)

MANIFEST_FILE = "manifest.json"
META_FILE = "meta.json"
# A baseline folder (rai_audit.archive.fetch_baseline): which archived audit's scorecard.json
# it holds, or that the model had none.
BASELINE_FILE = "baseline.json"

# Artifact kinds.
KIND_CONSTRUCTOR = "constructor"
KIND_DASHBOARD = "dashboard"
# Insight kinds that gather accepts (each produced by one analysis step).
INSIGHT_KINDS = ("error_analysis", "explanation", "counterfactual", "causal")
# Every insight's results as one JSON document; gather embeds it under the insight's kind.
INSIGHT_RESULT_FILE = "result.json"

# Files of the constructor's insights artifact.
TEST_FEATURES_FILE = "test.parquet"
TRAIN_FILE = "train.parquet"
PREDICTIONS_FILE = "predictions.parquet"
COHORTS_FILE = "cohorts.json"
MODEL_DIR = "model"

# Files of the gathered dashboard bundle.
INSIGHTS_JSON_FILE = "insights.json"
DASHBOARD_HTML_FILE = "dashboard.html"
TABLES_DIR = "tables"
CONSTRUCTOR_COPY_DIR = "constructor"
INSIGHT_COPIES_DIR = "insights"

# Special columns of predictions.parquet.
ROW_ID = "row_id"
Y_TRUE = "y_true"
Y_PRED = "y_pred"
IN_SAMPLE = "in_sample"
PROBA_PREFIX = "proba_"  # proba_<i> is the probability of meta["classes"][i]


def proba_column(class_index: int) -> str:
    return f"{PROBA_PREFIX}{class_index}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files_under(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST_FILE
    )


def write_manifest(folder: Path) -> dict[str, Any]:
    """Write manifest.json listing the sha256 and size of every other file in ``folder``."""
    folder = Path(folder)
    files = {
        name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size}
        for name in _files_under(folder)
    }
    manifest = {"schema_version": SCHEMA_VERSION, "files": files}
    write_json(folder / MANIFEST_FILE, manifest)
    return manifest


def verify_manifest(folder: Path) -> dict[str, Any]:
    """Check every file of ``folder`` against its manifest; raise on any difference."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise ArtifactIntegrityError(f"artifact folder {folder} does not exist or is not a folder")
    if not manifest_path.is_file():
        raise ArtifactIntegrityError(f"artifact folder {folder} has no {MANIFEST_FILE}; was it written by rai-audit?")
    manifest = read_json(manifest_path)
    listed = manifest.get("files", {})
    present = set(_files_under(folder))
    missing = sorted(set(listed) - present)
    extra = sorted(present - set(listed))
    changed = sorted(name for name in set(listed) & present if sha256_file(folder / name) != listed[name]["sha256"])
    if missing or extra or changed:
        details = "; ".join(
            f"{label}: {', '.join(names)}"
            for label, names in (("changed", changed), ("missing", missing), ("not in manifest", extra))
            if names
        )
        raise ArtifactIntegrityError(
            f"artifact {folder} does not match its {MANIFEST_FILE} ({details}); "
            "it was modified after it was written: re-run the step that produced it"
        )
    return manifest


def new_meta(kind: str, run_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "producer": f"rai-audit {__version__}",
        **fields,
    }


def read_artifact_meta(folder: Path, *, expected_kind: str | None = None) -> dict[str, Any]:
    """Verify the folder's manifest, then return its meta.json after checking kind and schema."""
    folder = Path(folder)
    verify_manifest(folder)
    meta = read_json(folder / META_FILE)
    if not isinstance(meta, dict) or "run_id" not in meta:
        raise ArtifactIntegrityError(
            f"artifact {folder}: {META_FILE} must be a mapping with `kind`, "
            "`schema_version` and `run_id`; re-run the step that produced it"
        )
    version = meta.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ArtifactIntegrityError(
            f"artifact {folder} has schema_version {version!r}; this rai-audit "
            f"({__version__}) reads {list(SUPPORTED_SCHEMA_VERSIONS)}: run all steps with one version"
        )
    if expected_kind is not None and meta.get("kind") != expected_kind:
        raise ArtifactIntegrityError(f"artifact {folder} must be of kind {expected_kind!r}, got {meta.get('kind')!r}")
    return meta


@contextlib.contextmanager
def artifact_writer(out_dir: Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success write its manifest and move it to out_dir.

    Refuses an out_dir that already holds files, so earlier results are never overwritten.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise RAIInputError(
            f"output folder {out_dir} already exists and is not empty; choose a new folder or remove the old one"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        yield tmp
        write_manifest(tmp)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def to_jsonable(value: Any) -> Any:
    """Turn numpy/pandas values into plain JSON values; NaN and infinities become null."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.datetime64, np.timedelta64)):  # a row's value of a dropped column
        # (before np.integer: numpy's timedelta64 is one)
        value = pd.Timestamp(value) if isinstance(value, np.datetime64) else pd.Timedelta(value)
        if value is pd.NaT:
            return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):  # as pandas writes it in tables: "1 days 02:00:00"
        return str(pd.Timedelta(value))
    if isinstance(value, bytes):  # a dropped Parquet binary column's value
        return value.decode("utf-8", errors="replace")
    return value


def write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(to_jsonable(data), handle, indent=2, ensure_ascii=False, allow_nan=False)
        handle.write("\n")


def _read_text(path: Path, what: str, form: str) -> str:
    """A text file's content; a missing, unreadable or undecodable file, or an unusable path,
    is an RAIInputError naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise RAIInputError(f"{what} {path} does not exist") from err
    except UnicodeDecodeError as err:
        raise RAIInputError(f"{what} {path} is not valid {form}: {err}") from err
    except OSError as err:  # e.g. a name too long
        raise RAIInputError(f"{what} {path} could not be read: {err.strerror or err}") from err
    except ValueError as err:  # a NUL character in the path
        raise RAIInputError(f"{what} {str(path)!r} is not a usable path: {err}") from err


def read_json(path: Path, *, what: str = "file") -> Any:
    text = _read_text(path, what, "JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RAIInputError(f"{what} {path} is not valid JSON: {err}") from err


def _yaml_problem(err: Exception) -> str:
    """PyYAML's error on one line: where (line, column) and what (its message spans lines)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())


def read_yaml(path: Path, *, what: str = "file") -> Any:
    """A YAML (or JSON) file, parsed; any failure is an RAIInputError naming the file, on one line."""
    text = _read_text(path, what, "YAML/JSON")
    try:
        return yaml.safe_load(text)  # YAML also reads JSON
    except (yaml.YAMLError, ValueError) as err:  # ValueError: e.g. a date such as 2021-13-45
        raise RAIInputError(f"{what} {path} is not valid YAML/JSON: {_yaml_problem(err)}") from err


def read_parquet(path: Path, **kwargs: Any) -> pd.DataFrame:
    """A Parquet table of an artifact; a damaged file (which a rewritten manifest can hide)
    is an ArtifactIntegrityError naming it, not pyarrow's error."""
    try:
        return pd.read_parquet(path, **kwargs)
    except Exception as err:  # pyarrow raises several types for damaged files
        raise ArtifactIntegrityError(
            f"artifact file {path} could not be read as Parquet ({type(err).__name__}: {err}); "
            "re-run the step that produced it"
        ) from err


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    try:
        frame.to_parquet(path, index=False)
    except Exception as err:  # pyarrow raises several types for unconvertible columns
        raise RAIInputError(
            f"could not write table {Path(path).name} as Parquet: {err}; "
            "make each column hold one type (e.g. cast mixed object columns to str)"
        ) from err
