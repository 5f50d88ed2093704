"""One documented rule for missing values in cohort filters, the same in every dtype
(docs/artifacts.md): a missing value is != any value and not in any list; no other
operator selects it; a filter and its != complement cover every row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rai_audit.core.cohorts import filter_mask

COLUMNS = {
    "float": pd.Series([1.0, np.nan, 2.0, 1.0]),
    "object": pd.Series(["a", None, "b", "a"], dtype=object),
    "Int64": pd.array([1, pd.NA, 2, 1], dtype="Int64"),
    "Float64": pd.array([1.0, pd.NA, 2.0, 1.0], dtype="Float64"),
    "string": pd.array(["a", pd.NA, "b", "a"], dtype="string"),
    "boolean": pd.array([True, pd.NA, False, True], dtype="boolean"),
    "category": pd.Categorical(["a", None, "b", "a"]),
}
FIRST = {"float": 1.0, "object": "a", "Int64": 1, "Float64": 1.0, "string": "a", "boolean": True, "category": "a"}


@pytest.mark.parametrize("dtype", list(COLUMNS))
def test_missing_is_unequal_to_every_value_and_never_equal(dtype):
    frame = pd.DataFrame({"x": COLUMNS[dtype]})
    value = FIRST[dtype]
    equal = filter_mask({"column": "x", "op": "==", "value": value}, frame)
    unequal = filter_mask({"column": "x", "op": "!=", "value": value}, frame)
    not_in = filter_mask({"column": "x", "op": "not in", "value": [value]}, frame)
    inside = filter_mask({"column": "x", "op": "in", "value": [value]}, frame)
    assert equal.tolist() == [True, False, False, True]
    assert unequal.tolist() == [False, True, True, False]  # the missing row (1) is included
    assert not_in.tolist() == unequal.tolist()
    assert inside.tolist() == equal.tolist()
    assert (equal ^ unequal).all()  # a filter and its complement cover every row once
    missing = filter_mask({"column": "x", "op": "==", "value": None}, frame)
    present = filter_mask({"column": "x", "op": "!=", "value": None}, frame)
    assert missing.tolist() == [False, True, False, False] and (missing ^ present).all()


@pytest.mark.parametrize("dtype", ["float", "Int64", "Float64"])
def test_order_operators_never_select_missing(dtype):
    frame = pd.DataFrame({"x": COLUMNS[dtype]})
    for op, value in (("<", 5), ("<=", 5), (">", 0), (">=", 0), ("between", [0, 5])):
        assert not filter_mask({"column": "x", "op": op, "value": value}, frame)[1], op
