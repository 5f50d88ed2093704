"""Reading the user's model and data files (local paths; KFP has already downloaded them)."""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from rai_audit.core._errors import RAIInputError
from rai_audit.core.artifacts import sha256_file

TABLE_SUFFIXES = (".parquet", ".pq", ".csv")
SKOPS, PICKLE, JOBLIB = "skops", "pickle", "compressed joblib"
# The other model sources (rai_audit.core.models), each recognised by its content too.
ONNX = "ONNX model"
MLFLOW = "MLflow model folder"
XGBOOST_UBJ, XGBOOST_JSON = "XGBoost booster (UBJSON)", "XGBoost booster (JSON)"
LIGHTGBM = "LightGBM text model"
CATBOOST = "CatBoost model (CBM)"
ENDPOINT = "served-model endpoint descriptor (JSON)"
MLFLOW_FILE = "MLmodel"
# ModelProto's fields after ir_version (field 1, first in every exporter's output): the tags
# of producer_name, producer_version, domain, model_version, doc_string, graph, opset_import.
ONNX_NEXT_TAGS = (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42)
# An endpoint descriptor is a small JSON file; anything larger is not read as one.
MAX_DESCRIPTOR_BYTES = 1 << 16
# How a pickle stream starts: protocol 2+ with PROTO (0x80, version); protocols 0 and 1 with
# the opcodes a pickled object starts with (GLOBAL, MARK, EMPTY_LIST/DICT/TUPLE).
PICKLE_STARTS = (b"c", b"(", b"]", b"}", b")")
# joblib.dump(..., compress=...) wraps its pickle in zlib, gzip, bz2, xz, lzma or lz4.
JOBLIB_STARTS = (
    b"\x78\x01",
    b"\x78\x5e",
    b"\x78\x9c",
    b"\x78\xda",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"\x5d\x00\x00",
    b"\x04\x22\x4d\x18",
)


def _single_file(path: Path, wanted: Callable[[Path], bool], kind: str, what: str) -> Path:
    """A KFP artifact may be a folder holding one file; return that file (the one ``wanted``)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        found = [p for p in files if wanted(p)]
        if len(found) != 1:
            names = [p.relative_to(path).as_posix() for p in found]
            raise RAIInputError(
                f"{what} folder {path} must hold exactly one {kind}, found {names or 'none'} among "
                f"{[p.relative_to(path).as_posix() for p in files]}"
            )
        return found[0]
    if not path.is_file():
        raise RAIInputError(f"{what} file {path} does not exist")
    return path


def table_file(path: str | Path, what: str) -> Path:
    """The table file itself, given its path or a folder holding it."""
    return _single_file(
        Path(path), lambda p: p.suffix.lower() in TABLE_SUFFIXES, f"file ending in {list(TABLE_SUFFIXES)}", what
    )


def load_table(path: str | Path, *, what: str = "data") -> pd.DataFrame:
    """Read a Parquet or CSV table; the format comes from the file name (Parquet if none)."""
    path = table_file(path, what)
    is_csv = path.suffix.lower() == ".csv"
    try:
        if not is_csv:
            return _decimals_as_floats(pd.read_parquet(path))
        # In one piece: read in chunks (low_memory), a column can come back as numbers in
        # some rows and text in others, which no step (nor Parquet) can take.
        frame = pd.read_csv(path, low_memory=False)
        # pandas renames a repeated header (`age`, `age.1`); read the header row as written.
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
    except Exception as err:  # pandas/pyarrow raise many types for unreadable files
        raise RAIInputError(f"{what} file {path} could not be read as {'CSV' if is_csv else 'Parquet'}: {err}") from err
    repeated = sorted({name for name in header[header.duplicated()] if name})
    if repeated:
        raise RAIInputError(f"{what} file {path} has duplicate column names {repeated}; give each column its own name")
    return frame


def _decimals_as_floats(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet decimal columns (decimal.Decimal objects in pandas) as float64: every step
    takes them as the numbers they are (as objects they were categories, and the error tree
    and the page failed on them); scikit-learn converts them to floats for the model too."""
    for column in frame.columns[frame.dtypes == object]:  # noqa: E721 (elementwise, pandas)
        if pd.api.types.infer_dtype(frame[column], skipna=True) == "decimal":
            frame[column] = frame[column].astype("float64")
    return frame


def model_format(path: Path) -> str | None:
    """What a model file (or folder) is, from its content (a KFP ``Output[Model]`` path has no
    extension, and a name can lie): skops (a zip holding skops' schema.json), a pickle, a
    compressed joblib file, an ONNX protobuf, an MLflow model folder (holding ``MLmodel``), an
    XGBoost booster (UBJSON or JSON), a LightGBM text model, a CatBoost model (``CBM1``), a
    served model's endpoint descriptor (JSON with ``endpoint``), or None."""
    if path.is_dir():
        return MLFLOW if (path / MLFLOW_FILE).is_file() else None
    with open(path, "rb") as handle:
        head = handle.read(64)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                return SKOPS if "schema.json" in archive.namelist() else None
        except zipfile.BadZipFile:
            return None
    if (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5) or head[:1] in PICKLE_STARTS:
        return PICKLE
    if head.startswith(JOBLIB_STARTS):
        return JOBLIB
    if head.startswith(b"CBM1"):
        return CATBOOST
    if head.startswith(b"tree\nversion=") or head.startswith(b"tree\r\nversion="):
        return LIGHTGBM
    if head.startswith(b"{L") and b"learner" in head[:24]:
        return XGBOOST_UBJ
    if _is_onnx(head):
        return ONNX
    if head.lstrip()[:1] == b"{":
        return _json_model(path, head)
    return None


def _is_onnx(head: bytes) -> bool:
    """An ONNX ModelProto: ir_version (field 1, a small varint) and then one of its other fields."""
    return len(head) > 2 and head[0] == 0x08 and 1 <= head[1] <= 0x7F and head[2] in ONNX_NEXT_TAGS


def _json_model(path: Path, head: bytes) -> str | None:
    """An XGBoost JSON booster (``{"learner": ...``) or an endpoint descriptor (``{"endpoint": ...}``)."""
    text = head.lstrip().decode("utf-8", errors="replace")
    if text.replace(" ", "").startswith('{"learner"'):
        return XGBOOST_JSON
    if path.stat().st_size > MAX_DESCRIPTOR_BYTES:
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(document, dict) and "endpoint" in document:
        return ENDPOINT
    if isinstance(document, dict) and "learner" in document:
        return XGBOOST_JSON
    return None


def model_file(path: str | Path) -> Path:
    """The model itself, given its path or a folder holding it (e.g. a KFP Model artifact
    written as a folder): an MLflow model folder (the one holding ``MLmodel``), else the one
    file in the folder whose content is a model."""
    path = Path(path)
    if path.is_dir():
        if (path / MLFLOW_FILE).is_file():
            return path
        mlmodels = sorted(p.parent for p in path.rglob(MLFLOW_FILE) if p.is_file())
        if len(mlmodels) == 1:
            return mlmodels[0]
    return _single_file(
        path,
        lambda p: model_format(p) is not None,
        "model file (skops, pickle, joblib, ONNX, XGBoost, LightGBM or CatBoost, recognised by content) "
        "or MLflow model folder (holding MLmodel)",
        "model",
    )


def copy_model(source: Path, dest_dir: Path) -> Path:
    """Copy a model file, or an MLflow model folder whole, into ``dest_dir``; the copy's path."""
    target = dest_dir / source.name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)
    return target


def model_sha256(path: Path) -> str:
    """sha256 of a model file, or of a model folder's files (names and bytes, in path order)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256(b"rai-audit model folder v1\n")
    for file in sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def load_model(
    path: str | Path,
    *,
    skops_trusted_types: list[str] | None = None,
    allow_pickle: bool = False,
    classes: list[Any] | None = None,
) -> Any:
    """Load a scikit-learn-compatible model saved with skops, or with joblib or pickle if allowed;
    any other model the audit reads (``rai_audit.core.models``) through its adapter.

    skops loads only the types it trusts by default plus ``skops_trusted_types``. Loading a
    joblib or pickle file runs whatever code the file holds, so it needs ``allow_pickle``:
    the user's statement that they trust the file.
    """
    path = model_file(path)
    trusted = list(skops_trusted_types or [])
    found = model_format(path)
    if found is None:
        raise RAIInputError(
            f"model file {path} could not be loaded: its content is neither a skops file (a zip holding "
            "schema.json) nor a pickle or joblib file, nor an ONNX, XGBoost, LightGBM or CatBoost model or an "
            "MLflow model folder; save the model with skops.io.dump"
        )
    if found not in (SKOPS, PICKLE, JOBLIB):  # ONNX, MLflow, a booster, an endpoint
        from rai_audit.core.models import load_any_model

        return load_any_model(path, skops_trusted_types=trusted, allow_pickle=allow_pickle, classes=classes)
    if found != SKOPS and not allow_pickle:
        raise RAIInputError(
            f"model file {path} is a {found} (detected from its content): loading it runs any code stored in "
            "it. Save the model with skops (skops.io.dump), or, if you trust this file, allow pickles with "
            "`allow_pickle` (config `allow_pickle: true`, CLI --allow-pickle)"
        )
    try:
        if found == SKOPS:
            import skops.io

            untrusted = [t for t in skops.io.get_untrusted_types(file=path) if t not in trusted]
            if untrusted:
                raise RAIInputError(
                    f"model file {path} contains types skops does not trust by default: "
                    f"{untrusted}; if you trust them, pass them as `skops_trusted_types`"
                )
            return skops.io.load(path, trusted=trusted)
        return joblib.load(path)  # joblib also reads plain pickles
    except ModuleNotFoundError as err:
        raise RAIInputError(
            f"model file {path} needs the Python package {err.name!r}, which is not installed "
            "in this step's environment; add it to the step image"
        ) from err
    except RAIInputError:
        raise
    except Exception as err:  # a corrupt or incompatible file fails in many ways inside unpickling
        raise RAIInputError(
            f"model file {path} could not be loaded ({type(err).__name__}: {err}); "
            "check the file and that the step has the library versions the model was saved with"
        ) from err


def import_without(module: str, *blocked: str) -> Any:
    """``module``, imported while importing any of ``blocked`` fails (a None entry in
    sys.modules), so that it skips its optional imports of them."""
    if module not in sys.modules:
        saved = {name: sys.modules.get(name) for name in blocked}
        sys.modules.update(dict.fromkeys(blocked))  # type: ignore[arg-type]
        try:
            importlib.import_module(module)
        finally:
            for name, was in saved.items():
                if was is None:
                    del sys.modules[name]
                else:
                    sys.modules[name] = was
    return sys.modules[module]
