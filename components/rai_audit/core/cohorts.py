"""Cohorts: named subsets of the test data, defined by filters over raw values.

A cohort file is JSON (schema in ``cohorts.json`` beside this module)::

    {"cohorts": [
      {"name": "Young women",
       "filter": {"and": [{"column": "sex", "op": "==", "value": "Female"},
                          {"column": "age", "op": "<", "value": 30}]}},
      {"name": "Misclassified", "filter": {"column": "error", "op": "==", "value": true}}
    ]}

Filters nest with ``and``/``or``; leaves compare a column with ==, !=, <, <=, >, >=,
in, not in or between (inclusive). Columns are the features plus the special columns
``y_true``, ``y_pred``, ``error`` (classification: misclassified; regression: absolute
error), ``correct`` (classification only), ``row_id`` (the test row's position, from 0) and
``classification_outcome`` (binary classification: "True positive", "True negative", "False
positive" or "False negative", the positive class being the second of the sorted classes, as
in Azure ML's dashboard). ``value: null`` with == / != selects
missing / present values. One rule for missing values in every dtype (docs/artifacts.md):
a missing value is != any value and ``not in`` any list, and no other operator selects it
(``DataFrame.query`` agrees on float and object columns, not on nullable Int64/boolean
ones, where its != drops missing values). Azure ML's cohort list format
(``cohort_filter_list`` with ``method``/``arg``/``column``) is accepted too: its special
columns ``True Y``, ``Predicted Y``, ``Error``, ``Index`` and ``Classification Outcome``, and
an empty filter list (all test rows).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from decimal import ROUND_CEILING, Decimal, localcontext
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import numpy as np
import pandas as pd

from rai_audit.core._errors import RAIInputError
from rai_audit.core.artifacts import read_json

Y_TRUE, Y_PRED, ERROR, CORRECT = "y_true", "y_pred", "error", "correct"
# Computed from the frame where a filter asks for them (any frame holding y_true and y_pred:
# the constructor's, the scorecard's predictions table), so no caller has to add them.
ROW_INDEX, CLASSIFICATION_OUTCOME = "row_id", "classification_outcome"
SPECIAL_COLUMNS = (Y_TRUE, Y_PRED, ERROR, CORRECT, ROW_INDEX, CLASSIFICATION_OUTCOME)
# Azure ML's (raiutils ClassificationOutcomes) values, in its order.
CLASSIFICATION_OUTCOMES = ("False negative", "False positive", "True negative", "True positive")

ORDER_OPS = ("<", "<=", ">", ">=")
EQUALITY_OPS = ("==", "!=")
LIST_OPS = ("in", "not in")
OPS = (*EQUALITY_OPS, *ORDER_OPS, *LIST_OPS, "between")

# Azure ML (raiutils) cohort filter methods and the operators they mean.
AZURE_METHODS = {
    "greater": ">",
    "greater and equal": ">=",
    "less": "<",
    "less and equal": "<=",
    "equal": "==",
    "includes": "in",
    "excludes": "not in",
    "in the range of": "between",
}
# Azure ML's special cohort columns: the dashboard's cohort names (and erroranalysis's true_y
# and pred_y) -> rai-audit's.
AZURE_COLUMNS = {
    "True Y": Y_TRUE,
    "true_y": Y_TRUE,
    "Predicted Y": Y_PRED,
    "pred_y": Y_PRED,
    "Error": ERROR,
    "Index": ROW_INDEX,
    "Classification Outcome": CLASSIFICATION_OUTCOME,
    "Classification outcome": CLASSIFICATION_OUTCOME,  # erroranalysis's spelling
}
# Azure's empty filter list selects every test row. As a filter that reads as one wherever
# filters are shown: every test row has a target (the constructor refuses a missing one).
ALL_ROWS_FILTER = {"column": Y_TRUE, "op": "!=", "value": None}
ALL_DATA_VIEW = "All data"  # the dashboard's own view of every row (steps.constructor's name)

ColumnKind = Literal["numeric", "categorical", "boolean"]


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads(resources.files("rai_audit.core").joinpath("cohorts.json").read_text())


def _from_azure(items: list[dict[str, Any]]) -> dict[str, Any]:
    cohorts = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RAIInputError(
                f"cohort {i}: an Azure ML cohort must be a mapping with `name` and `cohort_filter_list`, got {item!r}"
            )
        filters = item.get("cohort_filter_list", [])
        if not isinstance(filters, list):
            raise RAIInputError(
                f"cohort {item.get('name', i)!r}: `cohort_filter_list` must be a list of filters, got {filters!r}"
            )
        if not filters and item.get("name") == ALL_DATA_VIEW:
            continue  # Azure's "All data" cohort: the view every bundle has under that name
        leaves = []
        for j, flt in enumerate(filters):
            where = f"cohort {item.get('name', i)!r}, filter {j}"
            if not isinstance(flt, dict):
                raise RAIInputError(
                    f"{where}: a filter must be a mapping with `method`, `arg` and `column`, got {flt!r}"
                )
            method, arg = flt.get("method"), flt.get("arg")
            if not isinstance(method, str) or method not in AZURE_METHODS:  # (a list is unhashable)
                raise RAIInputError(f"{where}: `method` must be one of {sorted(AZURE_METHODS)}, got {method!r}")
            if not isinstance(arg, list) or not arg:
                raise RAIInputError(f"{where}: `arg` must be a non-empty list, got {arg!r}")
            op = AZURE_METHODS[method]
            value = arg if op in (*LIST_OPS, "between") else arg[0]
            column = flt.get("column")
            column = AZURE_COLUMNS.get(column, column) if isinstance(column, str) else column
            leaves.append({"column": column, "op": op, "value": value})
        cohort_filter = all_of(leaves) or dict(ALL_ROWS_FILTER)
        cohorts.append({"name": item.get("name"), "filter": cohort_filter})
    return {"cohorts": cohorts}


def load_cohorts(source: str | Path | dict[str, Any] | list[Any] | None) -> list[dict[str, Any]]:
    """Read cohorts from a file path or parsed JSON, check their structure, return the list."""
    if source is None or source == "" or source == []:
        return []
    parsed = read_json(Path(source), what="cohort file") if isinstance(source, (str, Path)) else source
    document: dict[str, Any]
    if isinstance(parsed, list):
        is_azure = any(isinstance(c, dict) and "cohort_filter_list" in c for c in parsed)
        document = _from_azure(parsed) if is_azure else {"cohorts": parsed}
    else:
        document = parsed
    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(document), key=str)
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise RAIInputError(
            f"cohorts are not valid at {where}: {err.message}; see the cohort format in "
            "docs/artifacts.md (filters are {column, op, value} or {and|or: [...]})"
        )
    cohorts = document["cohorts"]
    names = [c["name"] for c in cohorts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RAIInputError(f"cohort names must be unique, got duplicates {duplicates}")
    return cohorts


def column_kind(series: pd.Series) -> ColumnKind:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    return "categorical"


def _leaves(node: dict[str, Any]) -> list[dict[str, Any]]:
    if "and" in node or "or" in node:
        return [leaf for child in (node["and"] if "and" in node else node["or"]) for leaf in _leaves(child)]
    return [node]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_derived(column: Any, frame: pd.DataFrame) -> bool:
    """A special column computed from the frame when a filter names it (not one of its columns)."""
    return column in (ROW_INDEX, CLASSIFICATION_OUTCOME) and column not in frame.columns and Y_TRUE in frame.columns


def _column(frame: pd.DataFrame, column: str, where: str = "") -> pd.Series:
    """A column of the frame, or a derived special column computed from it."""
    if not _is_derived(column, frame):
        return frame[column]
    if column == ROW_INDEX:
        return pd.Series(np.arange(len(frame)), index=frame.index)
    return classification_outcomes(frame[Y_TRUE], frame[Y_PRED], where=where)


def classification_outcomes(y_true: pd.Series, y_pred: pd.Series, *, where: str = "") -> pd.Series:
    """Each row's outcome as Azure ML's dashboard names it ("True positive", ...): binary
    classification only, the positive class being the second of the sorted classes (a
    scikit-learn classifier's ``classes_[1]``, rai-audit's default ``positive_label``)."""
    prefix = f"{where}: " if where else ""
    if len(y_true) == 0:  # no rows (the config check's typed frame): only the type matters
        return pd.Series([], dtype=object, index=y_true.index)
    labels = np.unique(np.concatenate([np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)]))
    if pd.api.types.is_float_dtype(y_true) and not np.all(np.mod(np.asarray(y_true, dtype=float), 1) == 0):
        raise RAIInputError(f"{prefix}`Classification Outcome` is for classification; this model is a regressor")
    if len(labels) != 2:
        raise RAIInputError(
            f"{prefix}`Classification Outcome` is defined for binary classification (True/False "
            f"positive/negative); the labels and predictions hold {len(labels)} classes"
        )
    positive = labels[1]
    actual, predicted = np.asarray(y_true, dtype=object) == positive, np.asarray(y_pred, dtype=object) == positive
    outcome = np.where(
        actual == predicted,
        np.where(predicted, "True positive", "True negative"),
        np.where(predicted, "False positive", "False negative"),
    )
    return pd.Series(outcome, index=y_true.index, dtype=object)


def _check_leaf(leaf: dict[str, Any], frame: pd.DataFrame, cohort: str) -> None:
    column, op, value = leaf["column"], leaf["op"], leaf["value"]
    where = f"cohort {cohort!r}: filter on {column!r}"
    if column not in frame.columns and not _is_derived(column, frame):
        close = difflib.get_close_matches(column, [str(c) for c in frame.columns], n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise RAIInputError(
            f"cohort {cohort!r}: column {column!r} is not a feature nor one of {list(SPECIAL_COLUMNS)}{hint}"
        )
    series = _column(frame, column, where)
    kind = column_kind(series)
    if op in LIST_OPS:
        if not isinstance(value, list):
            raise RAIInputError(f"{where}: `{op}` needs a list value, got {value!r}")
        values = value
    elif op == "between":
        if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)):
            raise RAIInputError(f"{where}: `between` needs [low, high] numbers, got {value!r}")
        if value[0] > value[1]:
            raise RAIInputError(f"{where}: `between` needs low <= high, got {value!r}")
        values = value
    else:
        if isinstance(value, list):
            raise RAIInputError(f"{where}: `{op}` needs a single value, got the list {value!r}")
        if value is None and op not in EQUALITY_OPS:
            raise RAIInputError(f"{where}: null is only allowed with == or !=, got `{op}`")
        values = [value]
    if (op in ORDER_OPS or op == "between") and kind != "numeric":
        raise RAIInputError(f"{where}: `{op}` needs a numeric column, but {column!r} is {kind}; use ==, != or in")
    observed = series.dropna()
    sample = observed.iloc[0] if len(observed) else None
    for v in values:
        if v is None:
            continue
        if kind == "numeric" and not _is_number(v):
            raise RAIInputError(f"{where}: value {v!r} must be a number, as {column!r} is numeric")
        if kind == "boolean" and not isinstance(v, bool):
            raise RAIInputError(f"{where}: value {v!r} must be true or false, as {column!r} is boolean")
        if kind == "categorical" and isinstance(sample, str) and not isinstance(v, str):
            raise RAIInputError(f"{where}: value {v!r} must be a string, as {column!r} holds text such as {sample!r}")
        if column == CLASSIFICATION_OUTCOME and v not in CLASSIFICATION_OUTCOMES:
            raise RAIInputError(f"{where}: value {v!r} must be one of {list(CLASSIFICATION_OUTCOMES)}")


def validate_cohorts(cohorts: list[dict[str, Any]], frame: pd.DataFrame) -> None:
    """Check every filter against the columns and value types of ``frame``."""
    for cohort in cohorts:
        for leaf in _leaves(cohort["filter"]):
            _check_leaf(leaf, frame, cohort["name"])


def all_of(conditions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The filter that ANDs ``conditions`` (None for none: every row)."""
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else {"and": list(conditions)}


def filter_mask(node: dict[str, Any] | None, frame: pd.DataFrame) -> np.ndarray:
    """The boolean row mask that a (validated) filter selects in ``frame``; no filter
    (None, as the root of an error tree has) selects every row."""
    if node is None:
        return np.ones(len(frame), dtype=bool)
    if "and" in node:
        return np.logical_and.reduce([filter_mask(child, frame) for child in node["and"]])
    if "or" in node:
        return np.logical_or.reduce([filter_mask(child, frame) for child in node["or"]])
    series, op, value = _column(frame, node["column"]), node["op"], node["value"]
    if value is None:
        result = series.isna() if op == "==" else series.notna()
    elif op == "==":
        result = series == value
    elif op == "!=":
        # A missing value is != any value: nullable (Int64, boolean) columns give <NA> here,
        # where float NaN and object None give True.
        result = (series != value).fillna(True)
    elif op == "<":
        result = series < value
    elif op == "<=":
        result = series <= value
    elif op == ">":
        result = series > value
    elif op == ">=":
        result = series >= value
    elif op == "in":
        result = series.isin(value)
    elif op == "not in":
        result = ~series.isin(value)
    else:  # between, inclusive like pandas Series.between
        result = series.between(value[0], value[1])
    return np.asarray(result.fillna(False), dtype=bool)


def cohort_frame(features: pd.DataFrame, y_true: pd.Series, y_pred: pd.Series, *, is_classifier: bool) -> pd.DataFrame:
    """The features plus the special columns that cohort filters may use."""
    frame = features.reset_index(drop=True).copy()
    frame[Y_TRUE] = np.asarray(y_true)
    frame[Y_PRED] = np.asarray(y_pred)
    if is_classifier:
        frame[ERROR] = frame[Y_TRUE] != frame[Y_PRED]
        frame[CORRECT] = ~frame[ERROR]
    else:
        frame[ERROR] = (frame[Y_TRUE] - frame[Y_PRED]).abs()
    return frame


def cohort_masks(cohorts: list[dict[str, Any]], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    validate_cohorts(cohorts, frame)
    return {c["name"]: filter_mask(c["filter"], frame) for c in cohorts}


# --- readable values: cut points, numeric bins and the order of values -----------------------


def is_integral(values: Any) -> bool:
    """True when every present value is a whole number (integer codes such as PAY_0, one-hot
    0/1, ages stored as floats)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return bool(np.isfinite(v).all() and (v == np.floor(v)).all())


def _shortest_decimal(low: float, high: float) -> float:
    """The number with the fewest decimals in [low, high) (low itself at worst)."""
    if low <= 0 < high:
        return 0
    with localcontext() as context:
        context.prec = 60
        exact = Decimal(repr(low))  # the shortest text of low (Decimal(1.3) is 1.3000000000000000444)
        top = math.floor(math.log10(max(abs(low), abs(high)))) + 1
        for exponent in range(top, top - 19, -1):
            candidate = float(exact.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_CEILING))
            if low <= candidate < high:  # float() keeps candidate >= low: rounding is monotone
                return int(candidate) if candidate == math.floor(candidate) and abs(candidate) < 2**53 else candidate
    return low


def readable_cut(values: Any, threshold: float) -> int | float:
    """A cut point that splits ``values`` exactly as ``value <= threshold`` does, as a person
    would write it: for whole numbers the largest value at or below the threshold (LightGBM's
    ``1e-35`` between 0 and 1 becomes 0), otherwise the shortest decimal between the values
    on either side. Only the rows of ``values`` are promised the same side."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    below, above = v[v <= threshold], v[v > threshold]
    if not len(below):
        return float(threshold)
    low = float(below.max())
    if is_integral(v):
        return int(low)
    if not len(above):
        return low
    return _shortest_decimal(low, float(above.min()))


def _number_text(value: float) -> str:
    return str(int(value)) if value == math.floor(value) and abs(value) < 2**53 else repr(float(value))


def numeric_bins(values: pd.Series, n_bins: int) -> tuple[np.ndarray, list[dict[str, Any]], list[float]]:
    """Quantile bins of a numeric column with readable, exact edges.

    The quantile edges (as ``pd.qcut``) are replaced by ``readable_cut`` points, which put
    every row on the same side; bins left empty by two quantiles in one gap of the data are
    merged away. Labels say what is in the bin: ``17-24`` (both ends included) for whole
    numbers, else ``<= 7.3``, ``(7.3, 9.1]``, ``> 9.1``. Returns each row's bin (-1 for a
    missing value), the bins (``label``, ``filter``) and the edges (min, cuts..., max).
    """
    name = values.name
    v = values.astype(float).to_numpy()
    present = v[~np.isnan(v)]
    quantiles = np.unique(np.quantile(present, np.linspace(0, 1, n_bins + 1)))
    cuts = sorted({readable_cut(present, q) for q in quantiles[1:-1]})
    lowest, highest = float(present.min()), float(present.max())
    codes = np.searchsorted(np.asarray(cuts, dtype=float), v, side="left")
    codes[np.isnan(v)] = -1
    integral = is_integral(present)
    bins = []
    bounds = [None, *cuts, None]
    for i in range(len(cuts) + 1):
        low, high = bounds[i], bounds[i + 1]
        if integral:  # whole numbers: the first and last whole numbers of the bin, both included
            first = int(lowest) if low is None else int(low) + 1
            last = int(highest) if high is None else int(high)
            label = str(first) if first == last else f"{first}-{last}" if first >= 0 else f"{first} to {last}"
            flt = (
                {"column": name, "op": "==", "value": first}
                if first == last
                else {"column": name, "op": "between", "value": [first, last]}
            )
        elif low is not None and high is not None:
            label = f"({_number_text(low)}, {_number_text(high)}]"
            flt = {"and": [{"column": name, "op": ">", "value": low}, {"column": name, "op": "<=", "value": high}]}
        elif high is not None:
            label, flt = f"<= {_number_text(high)}", {"column": name, "op": "<=", "value": high}
        elif low is not None:
            label, flt = f"> {_number_text(low)}", {"column": name, "op": ">", "value": low}
        else:  # a single bin: no cut
            label = f"{_number_text(lowest)} to {_number_text(highest)}"
            flt = {"column": name, "op": "!=", "value": None}
        bins.append({"label": label, "filter": flt})
    return codes, bins, [lowest, *[float(c) for c in cuts], highest]


_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?)")


def natural_key(value: Any) -> tuple[Any, ...]:
    """Sort key that reads as people expect: numbers (and numeric text such as "10") by
    value, text by its numbers then letters ("1st-4th" < "9th" < "10th" < "Bachelors"),
    anything else after."""
    if isinstance(value, (bool, np.bool_)):
        return (0, float(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return (0, float(value))
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return (0, number)
        parts = tuple(
            (0, float(p), "") if _NUMBER.fullmatch(p) else (1, 0.0, p.casefold()) for p in _NUMBER.split(value) if p
        )
        return (1, parts, value)
    return (2, str(value))


def ordered_values(values: pd.Series) -> list[Any]:
    """The distinct present values of a column in reading order: an ordered categorical's
    own order, else ``natural_key`` (numbers by value, so "2" before "10"). Plain Python
    scalars."""
    present = values.dropna()
    if isinstance(values.dtype, pd.CategoricalDtype) and values.cat.ordered:
        seen = set(present.unique().tolist())
        ordered = [c for c in values.cat.categories.tolist() if c in seen]
    else:
        ordered = sorted(pd.unique(present).tolist(), key=natural_key)
    return [v.item() if hasattr(v, "item") else v for v in ordered]
