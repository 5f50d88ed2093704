"""Reading the user's model and data files (local paths; KFP has already downloaded them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from rai_audit.core._errors import RAIInputError

TABLE_SUFFIXES = (".parquet", ".pq", ".csv")
MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle", ".skops")


def _single_file(path: Path, suffixes: tuple[str, ...], what: str) -> Path:
    """A KFP artifact may be a folder holding one file; return that file."""
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if len(found) != 1:
            raise RAIInputError(
                f"{what} folder {path} must hold exactly one file ending in {list(suffixes)}, "
                f"found {[p.name for p in found]}"
            )
        return found[0]
    if not path.is_file():
        raise RAIInputError(f"{what} file {path} does not exist")
    return path


def load_table(path: str | Path, *, what: str = "data") -> pd.DataFrame:
    """Read a Parquet or CSV table; the format comes from the file name (Parquet if none)."""
    path = _single_file(Path(path), TABLE_SUFFIXES, what)
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


def model_file(path: str | Path) -> Path:
    """The model file itself, given its path or a folder holding it."""
    return _single_file(Path(path), MODEL_SUFFIXES, "model")


def load_model(path: str | Path, *, skops_trusted_types: list[str] | None = None, allow_pickle: bool = False) -> Any:
    """Load a scikit-learn-compatible model saved with skops, or with joblib or pickle if allowed.

    skops loads only the types it trusts by default plus ``skops_trusted_types``. Loading a
    joblib or pickle file runs whatever code the file holds, so it needs ``allow_pickle``:
    the user's statement that they trust the file.
    """
    path = model_file(path)
    trusted = list(skops_trusted_types or [])
    if path.suffix.lower() != ".skops" and not allow_pickle:
        raise RAIInputError(
            f"model file {path} is a pickle ({path.suffix}): loading it runs any code stored in it. "
            "Save the model with skops (skops.io.dump), or, if you trust this file, allow pickles with "
            "`allow_pickle` (config `allow_pickle: true`, CLI --allow-pickle)"
        )
    try:
        if path.suffix.lower() == ".skops":
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
