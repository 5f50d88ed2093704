"""Cohorts: filters select what pandas selects, Azure ML lists convert, bad inputs are refused.

Masks are checked against ``DataFrame.query`` / ``Series`` methods on the real UCI Adult
test data (with nulls in workclass, occupation and native-country) and, for regression,
on the medical-insurance data.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rai_audit.core._errors import RAIInputError
from rai_audit.core.cohorts import (
    AZURE_METHODS,
    cohort_frame,
    cohort_masks,
    filter_mask,
    load_cohorts,
    natural_key,
    numeric_bins,
    ordered_values,
    readable_cut,
)
from rai_audit.core.metrics import group_labels
from support import AZURE_EXAMPLES, shared_dataset

NULL_COLUMNS = ["workclass", "occupation", "native-country"]
FLIP_RATE = 0.15


def leaf(column, op, value):
    return {"column": column, "op": op, "value": value}


def query_mask(frame: pd.DataFrame, query: str) -> np.ndarray:
    """The rows ``frame.query(query)`` selects, as a boolean mask."""
    return frame.index.isin(frame.query(query).index)


def select(flt: dict, frame: pd.DataFrame) -> np.ndarray:
    """Load (schema check), validate and apply one filter, as the constructor does."""
    cohorts = load_cohorts([{"name": "c", "filter": flt}])
    mask = cohort_masks(cohorts, frame)["c"]
    np.testing.assert_array_equal(mask, filter_mask(flt, frame))
    assert mask.dtype == bool and mask.shape == (len(frame),)
    return mask


@pytest.fixture(scope="module")
def adult_flips() -> np.ndarray:
    n_rows = len(shared_dataset("adult_test.parquet"))
    return np.random.default_rng(0).random(n_rows) < FLIP_RATE


@pytest.fixture(scope="module")
def adult(adult_flips) -> pd.DataFrame:
    """Adult test features + y_true (income) + a fake y_pred: y_true flipped on ~15% of rows."""
    features = shared_dataset("adult_test.parquet")
    y_true = features.pop("income")
    flipped = y_true.map({"<=50K": ">50K", ">50K": "<=50K"})
    y_pred = y_true.where(~adult_flips, flipped)
    return cohort_frame(features, y_true, y_pred, is_classifier=True)


@pytest.fixture(scope="module")
def insurance() -> pd.DataFrame:
    """Insurance features + charges as y_true + a noisy fake y_pred (regression)."""
    features = shared_dataset("insurance.parquet")
    y_true = features.pop("charges")
    y_pred = y_true * np.random.default_rng(1).uniform(0.7, 1.3, len(y_true))
    return cohort_frame(features, y_true, y_pred, is_classifier=False)


def test_cohort_frame_special_columns(adult, adult_flips):
    assert adult["y_true"].isin(["<=50K", ">50K"]).all()
    np.testing.assert_array_equal(adult["error"], adult_flips)
    np.testing.assert_array_equal(adult["correct"], ~adult_flips)
    assert abs(adult["error"].mean() - FLIP_RATE) < 0.01


def test_regression_error_is_absolute_error(insurance):
    np.testing.assert_allclose(insurance["error"], (insurance["y_true"] - insurance["y_pred"]).abs())
    assert (insurance["error"] >= 0).all() and "correct" not in insurance


QUERY_CASES = {
    "==": (leaf("age", "==", 30), "age == 30"),
    "== text": (leaf("sex", "==", "Female"), "sex == 'Female'"),
    "!=": (leaf("relationship", "!=", "Husband"), "relationship != 'Husband'"),
    "<": (leaf("age", "<", 25), "age < 25"),
    "<=": (leaf("hours-per-week", "<=", 40), "`hours-per-week` <= 40"),
    "< float": (leaf("fnlwgt", "<", 1.5e5), "fnlwgt < 1.5e5"),
    ">": (leaf("capital-gain", ">", 0), "`capital-gain` > 0"),
    ">=": (leaf("education-num", ">=", 13), "`education-num` >= 13"),
    "in": (leaf("race", "in", ["Black", "Asian-Pac-Islander"]), "race in ['Black', 'Asian-Pac-Islander']"),
    "in numbers": (leaf("age", "in", [20, 40, 60]), "age in [20, 40, 60]"),
    "not in": (
        leaf("marital-status", "not in", ["Never-married", "Divorced"]),
        "`marital-status` not in ['Never-married', 'Divorced']",
    ),
    "y_true": (leaf("y_true", "==", ">50K"), "y_true == '>50K'"),
    "y_pred": (leaf("y_pred", "!=", ">50K"), "y_pred != '>50K'"),
    "error": (leaf("error", "==", True), "error == True"),
    "correct": (leaf("correct", "==", False), "correct == False"),
    "null column ==": (leaf("workclass", "==", "Private"), "workclass == 'Private'"),
    "null column !=": (leaf("workclass", "!=", "Private"), "workclass != 'Private'"),
    "null column != 2": (leaf("native-country", "!=", "United-States"), "`native-country` != 'United-States'"),
    "null column in": (leaf("occupation", "in", ["Sales", "Tech-support"]), "occupation in ['Sales', 'Tech-support']"),
    "null column not in": (
        leaf("occupation", "not in", ["Sales", "Tech-support"]),
        "occupation not in ['Sales', 'Tech-support']",
    ),
    "not in with null": (leaf("workclass", "not in", ["Private", None]), "workclass not in ['Private', None]"),
    "and": ({"and": [leaf("sex", "==", "Female"), leaf("age", "<", 30)]}, "sex == 'Female' and age < 30"),
    "or": ({"or": [leaf("race", "==", "Black"), leaf("error", "==", True)]}, "race == 'Black' or error == True"),
    "nested 3 levels": (
        {
            "and": [
                {"or": [leaf("sex", "==", "Female"), leaf("age", "<", 25)]},
                {
                    "or": [
                        {"and": [leaf("race", "==", "White"), leaf("hours-per-week", ">", 40)]},
                        {"and": [leaf("error", "==", True), leaf("workclass", "!=", "Private")]},
                    ]
                },
            ]
        },
        "(sex == 'Female' or age < 25) and ((race == 'White' and `hours-per-week` > 40)"
        " or (error == True and workclass != 'Private'))",
    ),
}


@pytest.mark.parametrize(("flt", "query"), QUERY_CASES.values(), ids=QUERY_CASES.keys())
def test_filter_selects_what_query_selects(adult, flt, query):
    expected = query_mask(adult, query)
    assert 0 < expected.sum() < len(adult), "the case must split the data to be meaningful"
    np.testing.assert_array_equal(select(flt, adult), expected)


@pytest.mark.parametrize(
    ("column", "low", "high"), [("age", 30, 40), ("hours-per-week", 40, 40), ("capital-gain", 0.5, 5000.5)]
)
def test_between_is_inclusive_like_series_between(adult, column, low, high):
    expected = adult[column].between(low, high).to_numpy()
    assert 0 < expected.sum() < len(adult)
    np.testing.assert_array_equal(select(leaf(column, "between", [low, high]), adult), expected)


@pytest.mark.parametrize("column", NULL_COLUMNS)
@pytest.mark.parametrize(("op", "missing"), [("==", True), ("!=", False)])
def test_null_value_selects_missing_or_present(adult, column, op, missing):
    expected = adult[column].isna() if missing else adult[column].notna()
    assert 0 < expected.sum() < len(adult)
    np.testing.assert_array_equal(select(leaf(column, op, None), adult), expected.to_numpy())


REGRESSION_CASES = {
    "error >": (leaf("error", ">", 2000), "error > 2000"),
    "error between": (leaf("error", "between", [500, 3000]), "500 <= error <= 3000"),
    "y_true": (leaf("y_true", ">=", 20000), "y_true >= 20000"),
    "and": ({"and": [leaf("smoker", "==", "yes"), leaf("y_pred", "<", 30000)]}, "smoker == 'yes' and y_pred < 30000"),
}


@pytest.mark.parametrize(("flt", "query"), REGRESSION_CASES.values(), ids=REGRESSION_CASES.keys())
def test_regression_filters_select_what_query_selects(insurance, flt, query):
    expected = query_mask(insurance, query)
    assert 0 < expected.sum() < len(insurance)
    np.testing.assert_array_equal(select(flt, insurance), expected)


@pytest.mark.parametrize(
    "flt",
    [
        leaf("age", ">", 200),
        leaf("sex", "==", "Other"),
        {"and": [leaf("sex", "==", "Male"), leaf("sex", "==", "Female")]},
    ],
    ids=["number", "text", "contradiction"],
)
def test_empty_cohort_is_all_false(adult, flt):
    assert not select(flt, adult).any()


# --- Azure ML cohort lists -------------------------------------------------------------


def test_azure_boston_example_converts():
    path = AZURE_EXAMPLES / "azureml-assets__boston__cohorts.json"
    assert (
        load_cohorts(path)
        == load_cohorts(str(path))
        == [{"name": "High Tax", "filter": leaf("TAX", ">", 300)}, {"name": "Low Tax", "filter": leaf("TAX", "<", 300)}]
    )


AZURE_CASES = [
    ("greater", [30], leaf("age", ">", 30)),
    ("greater and equal", [30], leaf("age", ">=", 30)),
    ("less", [30], leaf("age", "<", 30)),
    ("less and equal", [30], leaf("age", "<=", 30)),
    ("equal", ["Female"], leaf("sex", "==", "Female")),
    ("includes", ["Black", "Other"], leaf("race", "in", ["Black", "Other"])),
    ("excludes", ["Black", "Other"], leaf("race", "not in", ["Black", "Other"])),
    ("in the range of", [30, 40], leaf("age", "between", [30, 40])),
]


def test_azure_cases_cover_every_method():
    assert sorted(method for method, _, _ in AZURE_CASES) == sorted(AZURE_METHODS)


@pytest.mark.parametrize(("method", "arg", "expected"), AZURE_CASES, ids=[c[0] for c in AZURE_CASES])
def test_azure_method_converts(adult, method, arg, expected):
    azure = [{"name": method, "cohort_filter_list": [{"method": method, "arg": arg, "column": expected["column"]}]}]
    [cohort] = load_cohorts(azure)
    assert cohort == {"name": method, "filter": expected}
    assert cohort_masks([cohort], adult)[method].any()


def test_azure_filters_are_and_ed_with_special_columns(adult):
    azure = [
        {
            "name": "Older misclassified women",
            "cohort_filter_list": [
                {"method": "greater", "arg": [40], "column": "age"},
                {"method": "includes", "arg": ["Female"], "column": "sex"},
                {"method": "equal", "arg": [True], "column": "Error"},
                {"method": "equal", "arg": ["<=50K"], "column": "Predicted Y"},
                {"method": "excludes", "arg": ["<=50K"], "column": "True Y"},
            ],
        }
    ]
    [cohort] = load_cohorts(azure)
    assert cohort["filter"] == {
        "and": [
            leaf("age", ">", 40),
            leaf("sex", "in", ["Female"]),
            leaf("error", "==", True),
            leaf("y_pred", "==", "<=50K"),
            leaf("y_true", "not in", ["<=50K"]),
        ]
    }
    expected = query_mask(
        adult, "age > 40 and sex in ['Female'] and error == True and y_pred == '<=50K' and y_true not in ['<=50K']"
    )
    assert expected.sum() > 0
    np.testing.assert_array_equal(cohort_masks([cohort], adult)[cohort["name"]], expected)


# --- bad inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class OnDisk:
    """A cohort source on disk: a file with ``content``, a missing file (None) or a folder."""

    content: bytes | None = None
    folder: bool = False

    def make(self, tmp_path):
        path = tmp_path / "cohorts.json"
        if self.folder:
            path.mkdir()
        elif self.content is not None:
            path.write_bytes(self.content)
        return path


def one(flt, name="c"):
    return {"cohorts": [{"name": name, "filter": flt}]}


def azure(method, arg, column="age"):
    return [{"name": "a", "cohort_filter_list": [{"method": method, "arg": arg, "column": column}]}]


OK = contextlib.nullcontext()


def refused(match):
    return pytest.raises(RAIInputError, match=match)


INPUT_CASES = [
    # accepted
    pytest.param(one(leaf("age", "<", 30)), "adult", OK, id="ok-simple"),
    pytest.param(one(leaf("correct", "==", True)), "adult", OK, id="ok-correct-classifier"),
    pytest.param(one(leaf("error", ">", 1000.5)), "insurance", OK, id="ok-regression-error"),
    pytest.param(one(leaf("workclass", "!=", None)), "adult", OK, id="ok-null"),
    pytest.param(azure("less", [30]), "adult", OK, id="ok-azure"),
    pytest.param(OnDisk(json.dumps(one(leaf("age", "<", 30))).encode()), "adult", OK, id="ok-file"),
    pytest.param(None, "adult", OK, id="ok-none"),
    # refused when checked against the data
    pytest.param(
        one(leaf("hours_per_week", ">", 40)),
        "adult",
        refused(r"'hours_per_week' is not a feature.*did you mean \['hours-per-week'\]"),
        id="unknown-column-suggests",
    ),
    pytest.param(one(leaf("age", "==", "30")), "adult", refused(r"'30' must be a number"), id="string-for-numeric"),
    pytest.param(
        one(leaf("age", "in", [30, "forty"])),
        "adult",
        refused(r"'forty' must be a number"),
        id="string-in-numeric-list",
    ),
    pytest.param(one(leaf("sex", "==", 1)), "adult", refused(r"value 1 must be a string"), id="number-for-text"),
    pytest.param(one(leaf("error", "==", 1)), "adult", refused(r"must be true or false"), id="number-for-boolean"),
    pytest.param(
        one(leaf("race", "<", "White")), "adult", refused(r"`<` needs a numeric column"), id="order-on-categorical"
    ),
    pytest.param(
        one(leaf("age", "between", [1, 2, 3])),
        "adult",
        refused(r"`between` needs \[low, high\]"),
        id="between-3-values",
    ),
    pytest.param(one(leaf("age", "between", [50, 20])), "adult", refused(r"low <= high"), id="between-low-above-high"),
    pytest.param(
        one(leaf("age", "between", 30)), "adult", refused(r"`between` needs \[low, high\]"), id="between-scalar"
    ),
    pytest.param(one(leaf("race", "in", "Black")), "adult", refused(r"`in` needs a list value"), id="in-scalar"),
    pytest.param(one(leaf("race", "==", ["Black"])), "adult", refused(r"`==` needs a single value"), id="equal-list"),
    pytest.param(
        one(leaf("age", "<", None)), "adult", refused(r"null is only allowed with == or !="), id="null-with-order"
    ),
    pytest.param(
        one(leaf("correct", "==", True)),
        "insurance",
        refused(r"'correct' is not a feature"),
        id="correct-in-regression",
    ),
    pytest.param(
        one({"or": [leaf("age", "<", 30), {"and": [leaf("nope", "==", 1)]}]}),
        "adult",
        refused(r"'nope' is not a feature"),
        id="unknown-column-nested",
    ),
    # refused when loaded
    pytest.param(
        {"cohorts": [{"name": "A", "filter": leaf("age", "<", 30)}, {"name": "A", "filter": leaf("age", ">", 60)}]},
        "adult",
        refused(r"unique, got duplicates \['A'\]"),
        id="duplicate-names",
    ),
    pytest.param(
        {"cohorts": [{"name": "A"}]},
        "adult",
        refused(r"not valid at cohorts/0: 'filter' is a required property"),
        id="missing-filter",
    ),
    pytest.param(one(leaf("sex", "=~", "Fem")), "adult", refused(r"not valid at cohorts/0/filter"), id="unknown-op"),
    pytest.param(
        {"cohorts": [{"name": "A", "filter": leaf("age", "<", 30), "colour": "red"}]},
        "adult",
        refused(r"not valid at cohorts/0: .*'colour' was unexpected"),
        id="extra-key",
    ),
    pytest.param(
        one({**leaf("age", "<", 30), "negate": True}),
        "adult",
        refused(r"not valid at cohorts/0/filter"),
        id="extra-key-in-leaf",
    ),
    pytest.param(
        {"groups": []},
        "adult",
        refused(r"not valid at \(top level\): 'cohorts' is a required"),
        id="missing-cohorts-key",
    ),
    pytest.param(one(leaf("age", "<", 30), name=""), "adult", refused(r"not valid at cohorts/0/name"), id="empty-name"),
    pytest.param(
        azure("contains", ["x"]),
        "adult",
        refused(r"`method` must be one of .*got 'contains'"),
        id="azure-unknown-method",
    ),
    pytest.param(
        azure("greater", 30), "adult", refused(r"`arg` must be a non-empty list, got 30"), id="azure-arg-not-list"
    ),
    pytest.param(
        azure("in the range of", [30]), "adult", refused(r"`between` needs \[low, high\]"), id="azure-range-one-value"
    ),
    pytest.param(
        OnDisk(b"name: young\nfilter: age < 30\n"), "adult", refused(r"is not valid JSON"), id="not-json-file"
    ),
    pytest.param(OnDisk(None), "adult", refused(r"cohorts\.json does not exist"), id="missing-file"),
    pytest.param(OnDisk(b"PAR1\x15\x04\x15\xff\xfe"), "adult", refused(r"not valid JSON|UTF-8"), id="binary-file"),
    pytest.param(OnDisk(folder=True), "adult", refused(r"cohorts\.json"), id="folder-not-file"),
]


@pytest.mark.parametrize(("source", "frame_name", "expectation"), INPUT_CASES)
def test_inputs_accepted_or_refused(request, tmp_path, source, frame_name, expectation):
    frame = request.getfixturevalue(frame_name)
    if isinstance(source, OnDisk):
        source = source.make(tmp_path)
    with expectation:
        cohorts = load_cohorts(source)
        masks = cohort_masks(cohorts, frame)
    if expectation is OK:
        assert list(masks) == [c["name"] for c in cohorts]
        assert all(m.dtype == bool and m.shape == (len(frame),) for m in masks.values())


# --- readable cut points, numeric bins, the order of values --------------------------------------


def test_no_filter_selects_every_row(adult):
    """The root of an error tree has no filter; it selects every row (gather crashed on it)."""
    mask = filter_mask(None, adult)
    assert mask.dtype == bool and mask.all() and len(mask) == len(adult)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-50, 50), min_size=2, max_size=40), st.floats(-60, 60), st.booleans())
def test_readable_cut_of_whole_numbers_is_the_largest_value_on_the_left(values, threshold, as_float):
    data = np.array(values, dtype=float if as_float else int)
    cut = readable_cut(data, threshold)
    np.testing.assert_array_equal(data <= cut, data <= threshold)  # the same rows on each side
    if (data <= threshold).any():
        assert type(cut) is int and cut == max(v for v in values if v <= threshold)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), min_size=2, max_size=40),
    st.floats(-1e6, 1e6, allow_subnormal=False),
)
def test_readable_cut_of_any_numbers_splits_the_same_rows(values, threshold):
    data = np.array(values + [0.5], dtype=float)  # one non-whole number: the decimal rule applies
    cut = readable_cut(data, threshold)
    np.testing.assert_array_equal(data <= cut, data <= threshold)
    if (data <= threshold).any() and (data > threshold).any():  # no more digits than the value on its left
        low = data[data <= threshold].max()
        assert significant_digits(cut) <= significant_digits(low)


def significant_digits(x: float) -> int:
    return len(Decimal(repr(float(x))).normalize().as_tuple().digits)


@pytest.mark.parametrize(
    "values, threshold, cut",
    [
        ([-2, -1, 0, 1, 2, 8], 1.0000000180025095e-35, 0),  # LightGBM's threshold between 0 and 1
        ([1000.0, 1001.0, 3000.0], 1000.5000000000001, 1000),
        ([7.25, 7.9, 8.0], 7.575, 7.3),
        ([1.3, 1.4, 2.0], 1.3000000000000003, 1.3),  # not 1.31 (1.3 is 1.3000000000000000444)
        ([-1.23, -1.2], -1.215, -1.23),
        ([0.0001, 5.5], 2.75, 1),
    ],
)
def test_readable_cut_examples(values, threshold, cut):
    got = readable_cut(np.array(values), threshold)
    assert got == cut and type(got) is type(cut)


def bin_label_holds(label: str, x: pd.Series) -> np.ndarray:
    """A numeric bin's label read as a person reads it."""
    number = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
    x = x.astype(float)
    for pattern, test in [
        (rf"({number})-({number})", lambda a, b: (a <= x) & (x <= b)),
        (rf"({number}) to ({number})", lambda a, b: (a <= x) & (x <= b)),
        (rf"\(({number}), ({number})\]", lambda a, b: (a < x) & (x <= b)),
        (rf"<= ({number})", lambda a: x <= a),
        (rf"> ({number})", lambda a: x > a),
        (rf"({number})", lambda a: x == a),
    ]:
        match = re.fullmatch(pattern, label)
        if match:
            return np.asarray(test(*map(float, match.groups())), dtype=bool)
    raise AssertionError(f"unreadable label {label!r}")


@pytest.mark.parametrize(
    "dataset, column",
    [
        ("adult_test.parquet", "age"),
        ("adult_test.parquet", "hours-per-week"),
        ("insurance.parquet", "bmi"),
        ("insurance.parquet", "charges"),
        ("credit_card_default.parquet", "PAY_AMT1"),
    ],
)
def test_group_labels_are_pandas_quartiles_labelled_by_what_they_hold(dataset, column):
    values = shared_dataset(dataset)[column]
    values = values.where(np.arange(len(values)) % 97 != 0)  # some missing values
    labels, binning = group_labels(values)
    quartiles = pd.qcut(values, 4, duplicates="drop")
    expected = [(quartiles == interval).to_numpy() for interval in quartiles.cat.categories]
    assert binning["labels"] == sorted(set(labels) - {"(missing)"}, key=binning["labels"].index)
    assert len(binning["labels"]) == len(expected)
    for label, rows in zip(binning["labels"], expected):  # pandas' bins, in order, same rows
        np.testing.assert_array_equal((labels == label).to_numpy(), rows)
        present = values.notna().to_numpy()
        np.testing.assert_array_equal(bin_label_holds(label, values)[present], rows[present])
    assert (labels[values.isna()] == "(missing)").all()
    assert binning["edges"][0] == values.min() and binning["edges"][-1] == values.max()
    assert not any("999" in label or ".0]" in label for label in binning["labels"])
    if (values.dropna() % 1 == 0).all():  # whole numbers: "17-24", both ends included
        firsts = [values.min()] + [math.floor(iv.left) + 1 for iv in quartiles.cat.categories[1:]]
        assert binning["labels"] == [
            f"{int(a)}-{math.floor(iv.right)}" for a, iv in zip(firsts, quartiles.cat.categories)
        ]


def test_numeric_bins_merge_quantiles_that_fall_in_one_gap():
    values = pd.Series([0] * 50 + [1] * 3 + [10] * 47 + [11, 12, 13], name="x")
    codes, bins, edges = numeric_bins(values, 8)
    labels = [b["label"] for b in bins]
    assert labels == sorted(labels, key=natural_key) and len(set(labels)) == len(labels)
    for i, b in enumerate(bins):  # every bin holds rows, its filter selects them, its label says so
        rows = codes == i
        assert rows.any()
        np.testing.assert_array_equal(filter_mask(b["filter"], values.to_frame()), rows)
        np.testing.assert_array_equal(bin_label_holds(b["label"], values), rows)


def test_values_in_reading_order():
    education = shared_dataset("adult_test.parquet")["education"]
    assert ordered_values(education) == [
        "1st-4th",
        "5th-6th",
        "7th-8th",
        "9th",
        "10th",
        "11th",
        "12th",
        "Assoc-acdm",
        "Assoc-voc",
        "Bachelors",
        "Doctorate",
        "HS-grad",
        "Masters",
        "Preschool",
        "Prof-school",
        "Some-college",
    ]
    assert ordered_values(pd.Series(["10", "2", "1", None, "-3", "1.5"])) == ["-3", "1", "1.5", "2", "10"]
    sizes = pd.Series(pd.Categorical(["L", "XS", "M", "L"], categories=["XS", "S", "M", "L", "XL"], ordered=True))
    assert ordered_values(sizes) == ["XS", "M", "L"]  # its own order, categories without rows left out
    assert ordered_values(pd.Series([True, False, True])) == [False, True]
    assert ordered_values(pd.Series([3, "b", 1, "a"], dtype=object)) == [1, 3, "a", "b"]  # mixed types: no crash
    assert all(type(v) is int for v in ordered_values(pd.Series([3, 1, 2])))
