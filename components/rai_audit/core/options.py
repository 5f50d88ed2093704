"""Checks shared by the steps' option classes, with the same messages everywhere."""

from __future__ import annotations

from typing import Any

from rai_audit.core._errors import RAIInputError

# Test rows a group needs to count in fairness differences (the constructor's option's
# default, and what an artifact written before the option existed is read with).
DEFAULT_MIN_GROUP_SIZE = 30


def check_min_ints(options: Any, minimums: dict[str, int]) -> None:
    """Each named option must be an integer (not a bool) at least its minimum."""
    for name, low in minimums.items():
        value = getattr(options, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise RAIInputError(f"`{name}` must be an integer >= {low}, got {value!r}")


def check_n_jobs(options: Any) -> None:
    """``n_jobs`` is -1 (every core) or a number of workers."""
    value = options.n_jobs
    if not isinstance(value, int) or isinstance(value, bool) or value == 0 or value < -1:
        raise RAIInputError(f"`n_jobs` must be -1 (all cores) or an integer >= 1, got {value!r}")


def check_shard(options: Any) -> None:
    """``shard_count`` >= 1 and ``shard_index`` within it."""
    check_min_ints(options, {"shard_count": 1})
    if not isinstance(options.shard_index, int) or not 0 <= options.shard_index < options.shard_count:
        raise RAIInputError(
            f"`shard_index` must be in [0, shard_count={options.shard_count}), got {options.shard_index!r}"
        )


def check_name_lists(options: Any, names: tuple[str, ...]) -> None:
    """Each named option must be a list of names (checked before the names are counted or
    compared: a number or a nested list would otherwise fail with a TypeError)."""
    for name in names:
        value = getattr(options, name)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise RAIInputError(f"`{name}` must be a list of feature names, got {value!r}")
