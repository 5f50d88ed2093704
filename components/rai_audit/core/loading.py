"""Reading the user's model and data files (local paths; KFP has already downloaded them)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from rai_audit.core._errors import RAIInputError

TABLE_SUFFIXES = (".parquet", ".pq", ".csv")
SKOPS, PICKLE, JOBLIB = "skops", "pickle", "compressed joblib"
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
    """What a model file is, from its content (a KFP ``Output[Model]`` path has no extension,
    and a name can lie): skops (a zip holding skops' schema.json), a pickle, a compressed
    joblib file, or None."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                return SKOPS if "schema.json" in archive.namelist() else None
        except zipfile.BadZipFile:
            return None
    if (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5) or head[:1] in PICKLE_STARTS:
        return PICKLE
    return JOBLIB if head.startswith(JOBLIB_STARTS) else None


def model_file(path: str | Path) -> Path:
    """The model file itself, given its path or a folder holding it (e.g. a KFP Model
    artifact written as a folder): the one file in it whose content is a model."""
    return _single_file(
        Path(path),
        lambda p: model_format(p) is not None,
        "model file (skops, pickle or joblib, recognised by content)",
        "model",
    )


def load_model(path: str | Path, *, skops_trusted_types: list[str] | None = None, allow_pickle: bool = False) -> Any:
    """Load a scikit-learn-compatible model saved with skops, or with joblib or pickle if allowed.

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
            "schema.json) nor a pickle or joblib file; save the model with skops.io.dump"
        )
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
