"""Fairness figures, computed once for gather, the page and the scorecard.

A metric's value per group is compared between groups as fairlearn's ``MetricFrame`` does
with ``method="between_groups"``: the difference is the largest group value minus the
smallest, the ratio the smallest over the largest. Where fairlearn would give a figure that
misleads, the figure is undefined (NaN, null in JSON) with the reason:

- groups of fewer than ``min_group_size`` rows are shown but not compared (one row of a rare
  group would make a selection-rate ratio 0);
- a group whose value is undefined (recall with no positive row) is not compared;
- fewer than two groups left: no difference nor ratio (fairlearn gives 0.0 and 1.0 for one);
- no ratio of a metric that can be negative (r2; see ``metrics.METRIC_SIGNS``), nor when a
  compared value is negative, nor when the largest value is 0 (0 / 0);
- no ratio of a share of rows when the largest group value counts fewer than
  ``MIN_COUNTED_ROWS`` rows (a selection rate of 2 predicted positives in 3,253 rows): a ratio
  of so few is chance, and a group with none would make it 0 with a bootstrap interval [0, 0].

``spread`` works on one row of group values or on a bootstrap's matrix of them, so a figure
and its interval come from the same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

KINDS = ("difference", "ratio")
MIN_COUNTED_ROWS = 5  # the usual rule for a share estimated from counts


def compared_groups(counts: Any, min_group_size: int) -> np.ndarray:
    """Which groups are large enough to be compared (a boolean per group)."""
    return np.asarray(counts) >= min_group_size


def group_flag(count: int, min_group_size: int) -> str | None:
    """What the page and the PDF print beside a group left out of the comparison."""
    return f"too few rows ({int(count)})" if count < min_group_size else None


def spread(values: Any, compared: Any, kind: str, *, signed: bool = False) -> np.ndarray | float:
    """The between-groups difference or ratio of ``values`` (..., groups; NaN: undefined) over
    the ``compared`` groups; NaN where undefined. One row of values gives a float, a matrix
    (a bootstrap's resamples x groups) an array."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    values = np.asarray(values, dtype=float)
    single = values.ndim == 1
    values = np.atleast_2d(values)
    usable = np.isfinite(values) & np.asarray(compared, dtype=bool)
    enough = usable.sum(axis=1) >= 2
    low = np.where(usable, values, np.inf).min(axis=1)
    high = np.where(usable, values, -np.inf).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "difference":
            result = np.where(enough, high - low, np.nan)
        elif signed:
            result = np.full(len(values), np.nan)
        else:
            result = np.where(enough & (low >= 0) & (high > 0), low / high, np.nan)
    return float(result[0]) if single else result


def describe(
    values: Any,
    counts: Any,
    min_group_size: int,
    kind: str,
    *,
    signed: bool = False,
    counted: Any = None,
    counted_what: str = "rows",
) -> dict[str, Any]:
    """A figure as gather and the scorecard write it: ``value`` (None if undefined), ``reason``
    it is undefined (None if defined), the compared groups' ``group_min`` and ``group_max``,
    and how many groups were compared (``groups_compared``). ``counted``: for a metric that is
    a share of rows, the rows each group's value counts (``metrics.counted_rows``; None where
    not counted), named ``counted_what``."""
    values = np.asarray(values, dtype=float)
    compared = compared_groups(counts, min_group_size)
    usable = compared & np.isfinite(values)
    value = float(spread(values, compared, kind, signed=signed))  # one row of group values: a float
    reason = None
    if kind == "ratio" and np.isfinite(value) and counted is not None:
        largest = usable & (values == values[usable].max())
        found = np.asarray(counted, dtype=float)[largest]  # None: NaN, no rule
        if np.isfinite(found).all() and found.max() < MIN_COUNTED_ROWS:
            value, few = float("nan"), int(found.max())
            what = counted_what.removesuffix("s") if few == 1 else counted_what  # 1 predicted positive
            reason = (
                f"cannot be estimated: the largest group value counts {few} {what} "
                f"(a ratio needs at least {MIN_COUNTED_ROWS})"
            )
    if not np.isfinite(value) and reason is None:
        if kind == "ratio" and signed:
            reason = "no ratio of a metric that can be negative"
        elif compared.sum() < 2:
            reason = f"fewer than two groups of at least {min_group_size} rows"
        elif usable.sum() < 2:
            reason = f"fewer than two groups of at least {min_group_size} rows have a value"
        elif values[usable].min() < 0:
            reason = "a group's value is negative"
        else:
            reason = "the largest group value is 0"
    return {
        "value": _number(value),
        "reason": reason,
        "group_min": _number(values[usable].min()) if usable.any() else None,
        "group_max": _number(values[usable].max()) if usable.any() else None,
        "groups_compared": int(usable.sum()),
    }


def percentile_interval(replicates: np.ndarray | None, alpha: float) -> tuple[Any, Any]:
    """Bootstrap percentile interval of each column of ``replicates`` (resamples x figures);
    a column mostly undefined (fewer than half, or 10, of its resamples finite) gets none.
    Returns two arrays (None for no interval), or two floats/None for a 1-d input."""
    if replicates is None:
        return None, None
    replicates = np.asarray(replicates, dtype=float)
    single = replicates.ndim == 1
    columns = replicates[:, None] if single else replicates
    lows: list[float | None] = []
    highs: list[float | None] = []
    for column in columns.T:
        finite = column[np.isfinite(column)]
        if len(finite) < max(10, len(column) // 2):
            lows.append(None)
            highs.append(None)
            continue
        low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
        lows.append(float(low))
        highs.append(float(high))
    return (lows[0], highs[0]) if single else (lows, highs)


def _number(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None
