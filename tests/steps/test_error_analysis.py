"""error_analysis: the error tree, heatmap, cohort errors and importance equal independent recomputations.

Every figure is recomputed here from the user's files (the model predicts again), with pandas,
scikit-learn and a LightGBM tree fitted here; every filter is applied with ``filter_mask`` to
the constructor's cohort frame. A synthetic dataset with a planted weak region checks that
the tree finds it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import confusion_matrix, mutual_info_score

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.core.cohorts import filter_mask
from rai_audit.core.constructor_artifact import load_constructor_artifact
from rai_audit.report.dashboard import _filter_text as pdf_filter_text  # what the PDF prints
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from rai_audit.steps.error_analysis import ErrorAnalysisOptions, main, min_split_gain, run_error_analysis
from rai_audit.steps.gather import run_gather
from support import shared_dataset

OTHER, MISSING = "(other)", "(missing)"
FIGURES = ("count", "error_sum", "error_rate", "error_share")


# --- the planted dataset: a model that is wrong exactly where a > 7 and b == "x" -------------


def planted_truth(X: pd.DataFrame) -> np.ndarray:
    return ((X["a"] >= 5) ^ (X["b"] == "y")).astype(int).to_numpy()


def in_weak_region(X: pd.DataFrame) -> np.ndarray:
    return ((X["a"] > 7) & (X["b"] == "x")).to_numpy()


class PlantedModel:
    """Predicts the true label, flipped in the weak region (unless ``flip`` is False)."""

    def __init__(self, flip: bool = True) -> None:
        self.flip = flip

    def fit(self, X: pd.DataFrame, y: Any) -> PlantedModel:
        self.classes_ = np.array([0, 1])
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        truth = planted_truth(X)
        return np.where(in_weak_region(X) & self.flip, 1 - truth, truth)


def planted_frame(n: int, seed: int) -> pd.DataFrame:
    """a: 0..10 in steps of 0.1 (each value its own LightGBM bin, so a split can fall at 7);
    b: x/y/z with 5% missing; c: ~200 Zipf-distributed strings, 3% missing; d: normal, 10% NaN."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 10, n).round(1)
    b = rng.choice(np.array(["x", "y", "z"], dtype=object), n)
    b[rng.random(n) < 0.05] = None
    weights = 1 / np.arange(1, 201)
    c = rng.choice(np.array([f"c{i:03d}" for i in range(200)], dtype=object), n, p=weights / weights.sum())
    c[rng.random(n) < 0.03] = None
    d = rng.normal(size=n)
    d[rng.random(n) < 0.1] = np.nan
    X = pd.DataFrame({"a": a, "b": b, "c": c, "d": d})
    return X.assign(label=planted_truth(X))


PLANTED_COHORTS = [
    {
        "name": "Weak region",
        "filter": {"and": [{"column": "a", "op": ">", "value": 7}, {"column": "b", "op": "==", "value": "x"}]},
    },
    {"name": "No b", "filter": {"column": "b", "op": "==", "value": None}},
    {
        "name": "d near 0 or a low",
        "filter": {
            "or": [{"column": "d", "op": "between", "value": [-0.5, 0.5]}, {"column": "a", "op": "<", "value": 2}]
        },
    },
]
ADULT_COHORTS = [
    {"name": "Under 30", "filter": {"column": "age", "op": "<", "value": 30}},
    {"name": "Nobody", "filter": {"column": "age", "op": ">", "value": 500}},
    {
        "name": "Misclassified women",
        "filter": {
            "and": [{"column": "sex", "op": "==", "value": "Female"}, {"column": "error", "op": "==", "value": True}]
        },
    },
    {"name": "No workclass", "filter": {"column": "workclass", "op": "==", "value": None}},
]
# The same cohorts in pandas: (test features, recomputed error) -> rows.
COHORT_ROWS: dict[str, dict[str, Callable[[pd.DataFrame, np.ndarray], Any]]] = {
    "planted": {
        "Weak region": lambda X, e: (X["a"] > 7) & (X["b"] == "x"),
        "No b": lambda X, e: X["b"].isna(),
        "d near 0 or a low": lambda X, e: X["d"].between(-0.5, 0.5) | (X["a"] < 2),
    },
    "adult": {
        "Under 30": lambda X, e: X["age"] < 30,
        "Nobody": lambda X, e: X["age"] > 500,
        "Misclassified women": lambda X, e: (X["sex"] == "Female") & (e > 0),
        "No workclass": lambda X, e: X["workclass"].isna(),
    },
    "insurance": {},
}


# --- constructor artifacts, with what the tests recompute from the user's files ----------------


@dataclass
class Audit:
    constructor: Path
    X: pd.DataFrame  # the test features, read here from the user's test file
    error: np.ndarray  # recomputed here: misclassified (0/1) or |y_true - y_pred|
    frame: pd.DataFrame  # the constructor's cohort frame, on which filters select
    run_id: str
    sensitive: list[str]
    y_true: np.ndarray  # read here from the user's test file
    y_pred: np.ndarray  # the model's predictions, recomputed here


def make_audit(
    folder: Path, model: Path, train: Path, test: Path, target: str, task_type: str, **options: Any
) -> Audit:
    run_constructor(
        model,
        train,
        test,
        folder,
        options=ConstructorOptions(target_column=target, task_type=task_type, allow_pickle=True, **options),
    )
    data = pd.read_parquet(test)
    X = data.drop(columns=target)
    y, pred = data[target].to_numpy(), joblib.load(model).predict(X)
    error = np.abs(y - pred) if task_type == "regression" else (y != pred).astype(float)
    artifact = load_constructor_artifact(folder)
    return Audit(
        folder, X, error, artifact.cohort_frame, artifact.run_id, list(options.get("sensitive_features", [])), y, pred
    )


def case_audit(case, folder: Path, **options: Any) -> Audit:
    options = {"sensitive_features": case.sensitive, "positive_label": case.positive_label, **options}
    return make_audit(folder, case.model, case.train, case.test, case.target, case.task_type, **options)


def planted_audit(
    folder: Path, model: Any = None, test: pd.DataFrame | None = None, train: pd.DataFrame | None = None, **options: Any
) -> Audit:
    folder.mkdir(parents=True)
    test = planted_frame(5000, seed=2) if test is None else test
    train = planted_frame(1000, seed=1).reindex(columns=test.columns) if train is None else train
    paths = {name: folder / f"{name}.parquet" for name in ("train", "test")}
    train.to_parquet(paths["train"], index=False)
    test.to_parquet(paths["test"], index=False)
    joblib.dump((model or PlantedModel()).fit(None, None), folder / "model.joblib")
    return make_audit(
        folder / "constructor",
        folder / "model.joblib",
        paths["train"],
        paths["test"],
        "label",
        "binary_classification",
        **options,
    )


@pytest.fixture(scope="module")
def audits(adult_case, compas_case, insurance_case, tmp_path_factory) -> dict[str, Audit]:
    root = tmp_path_factory.mktemp("error_analysis_audits")
    return {
        "adult": case_audit(adult_case, root / "adult", cohorts=ADULT_COHORTS),
        "compas": case_audit(compas_case, root / "compas"),
        "insurance": case_audit(insurance_case, root / "insurance"),
        "planted": planted_audit(root / "planted", sensitive_features=["b", "a"], cohorts=PLANTED_COHORTS),
    }


def read_result(folder: Path) -> dict[str, Any]:
    return json.loads((folder / A.INSIGHT_RESULT_FILE).read_text())


@pytest.fixture(scope="module")
def analyse(audits, tmp_path_factory) -> Callable[..., dict[str, Any]]:
    """analyse(audit name, **options): the error analysis result, computed once per options."""
    root = tmp_path_factory.mktemp("error_analysis_results")
    results: dict[str, dict[str, Any]] = {}

    def run(name: str, **options: Any) -> dict[str, Any]:
        key = json.dumps([name, options], sort_keys=True)
        if key not in results:
            out = root / f"ea{len(results)}"
            run_error_analysis(audits[name].constructor, out, options=ErrorAnalysisOptions(**options))
            results[key] = read_result(out)
        return results[key]

    return run


# --- helpers -----------------------------------------------------------------------------------


def rows_of(node_filter: dict[str, Any] | None, frame: pd.DataFrame) -> np.ndarray:
    """The rows a filter selects; the root's filter (None) selects every row."""
    return np.ones(len(frame), dtype=bool) if node_filter is None else filter_mask(node_filter, frame)


def figures(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in FIGURES}


def expected_figures(error: np.ndarray, rows: np.ndarray) -> Any:
    rows = np.asarray(rows, dtype=bool)
    count, error_sum, total = int(rows.sum()), float(error[rows].sum()), float(error.sum())
    return pytest.approx(
        {
            "count": count,
            "error_sum": error_sum,
            "error_rate": error_sum / count if count else None,
            "error_share": error_sum / total if total else None,
        }
    )


def leaves(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [n for n in nodes if n["leaf"]]


def leaf_of_each_row(nodes: list[dict[str, Any]], frame: pd.DataFrame) -> np.ndarray:
    """The id of the leaf whose filter selects each row; the leaves must partition the rows."""
    assigned = np.full(len(frame), -1)
    for leaf in leaves(nodes):
        rows = rows_of(leaf["filter"], frame)
        assert (assigned[rows] == -1).all(), f"leaf {leaf['id']} overlaps another leaf"
        assigned[rows] = leaf["id"]
    assert (assigned >= 0).all(), "some rows are in no leaf"
    return assigned


def lightgbm_leaf_of_each_row(
    X: pd.DataFrame,
    error: np.ndarray,
    *,
    max_depth: int = 3,
    num_leaves: int = 31,
    min_child_samples: int = 20,
    tree_features: list[str] | None = None,
) -> np.ndarray:
    """A tree fitted here with the documented settings: categorical as category, numeric as float."""
    inputs = pd.DataFrame(
        {
            f: X[f].astype(float)
            if pd.api.types.is_numeric_dtype(X[f]) and not pd.api.types.is_bool_dtype(X[f])
            else X[f].astype("category")
            for f in (tree_features or X.columns)
        }
    )
    tree = lightgbm.LGBMRegressor(
        n_estimators=1,
        learning_rate=1.0,
        num_leaves=num_leaves,
        max_depth=max_depth,
        min_child_samples=min_child_samples,
        min_split_gain=min_split_gain(error),
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbose=-1,
        random_state=0,
    )
    return tree.fit(inputs, error).predict(inputs, pred_leaf=True).ravel()


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the two labelings group the rows identically (labels may differ)."""
    pairs = pd.DataFrame({"a": a, "b": b}).drop_duplicates()
    return pairs["a"].is_unique and pairs["b"].is_unique


def expected_groups(values: pd.Series) -> list[np.ndarray]:
    """Sensitive groups, in order: pandas' quartiles (``pd.qcut``) for a numeric feature with
    many values, else the values sorted (as numbers where they are numbers); missing last."""
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > 10:
        binned = pd.qcut(values, 4, duplicates="drop")
        groups = [(binned == interval).to_numpy() for interval in binned.cat.categories]
    else:
        present = values.dropna()
        distinct = sorted(present.unique(), key=lambda v: (0, float(v)) if pd.api.types.is_number(v) else (1, str(v)))
        groups = [(values == v).fillna(False).to_numpy(dtype=bool) for v in distinct]
    if values.isna().any():
        groups.append(values.isna().to_numpy())
    return [g for g in groups if g.any()]


NUMBER = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
LABEL_FORMS = [  # a bin's label -> the test its values pass
    (rf"({NUMBER})-({NUMBER})", lambda a, b: lambda x: (a <= x) & (x <= b)),  # whole numbers, both included
    (rf"({NUMBER}) to ({NUMBER})", lambda a, b: lambda x: (a <= x) & (x <= b)),
    (rf"\(({NUMBER}), ({NUMBER})\]", lambda a, b: lambda x: (a < x) & (x <= b)),
    (rf"<= ({NUMBER})", lambda a: lambda x: x <= a),
    (rf"> ({NUMBER})", lambda a: lambda x: x > a),
    (rf"({NUMBER})", lambda a: lambda x: x == a),
]


def label_holds(label: str, values: pd.Series) -> np.ndarray:
    """Whether each value is in the bin its label names (the label read as a person reads it)."""
    for pattern, test in LABEL_FORMS:
        match = re.fullmatch(pattern, label)
        if match:
            return np.asarray(test(*map(float, match.groups()))(values.astype(float)), dtype=bool)
    raise AssertionError(f"unreadable bin label {label!r}")


# --- 1. the planted weak region ----------------------------------------------------------------


def test_planted_region_is_exactly_the_leaves_that_are_always_wrong(audits, analyse):
    audit, doc = audits["planted"], analyse("planted")
    region = in_weak_region(audit.X)
    assert (audit.error == region).all() and 400 < region.sum() < 600  # the model is wrong there only
    tree_leaves = leaves(doc["tree"]["nodes"])
    assert {leaf["error_rate"] for leaf in tree_leaves} == {0.0, 1.0}
    always_wrong = np.logical_or.reduce(
        [rows_of(leaf["filter"], audit.frame) for leaf in tree_leaves if leaf["error_rate"] == 1.0]
    )
    assert (always_wrong == region).all()
    worst = doc["cohort_errors"]["worst_leaves"][0]
    assert worst["error_rate"] == 1.0
    assert not rows_of(worst["filter"], audit.frame)[~region].any()


def test_planted_worst_leaf_is_exactly_the_weak_region(audits, analyse):
    audit, doc = audits["planted"], analyse("planted")
    region = in_weak_region(audit.X)
    worst = doc["cohort_errors"]["worst_leaves"][0]
    rows = rows_of(worst["filter"], audit.frame)
    assert (rows == region).all(), f"the worst leaf selects {rows.sum()} rows, the region has {region.sum()}"
    leaf = doc["tree"]["nodes"][worst["node"]]
    assert figures(leaf) == expected_figures(audit.error, region)
    assert worst["count"] == region.sum() and worst["error_rate"] == 1.0


# --- 2. the error tree -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adult", "compas", "insurance", "planted"])
def test_every_node_is_a_cohort_with_its_error_figures(audits, analyse, name):
    audit, doc = audits[name], analyse(name)
    nodes = doc["tree"]["nodes"]
    assert doc["n_rows"] == len(audit.X)
    assert doc["error_metric"] == ("mean_absolute_error" if name == "insurance" else "error_rate")
    assert nodes[0]["parent"] is None and nodes[0]["filter"] is None
    assert sum(leaf["count"] for leaf in leaves(nodes)) == len(audit.X)
    assert sum(leaf["error_share"] for leaf in leaves(nodes)) == pytest.approx(1.0)
    for node in nodes:
        rows = rows_of(node["filter"], audit.frame)
        assert figures(node) == expected_figures(audit.error, rows), f"node {node['id']}"
        if node["leaf"]:
            assert node["children"] == []
            continue
        children = [nodes[i] for i in node["children"]]
        assert len(children) == 2
        assert all(c["parent"] == node["id"] and c["depth"] == node["depth"] + 1 for c in children)
        assert node["count"] == sum(c["count"] for c in children)
        assert node["error_sum"] == pytest.approx(sum(c["error_sum"] for c in children))


@pytest.mark.parametrize("name", ["adult", "compas", "planted"])
def test_every_classification_node_has_its_confusion_matrix(audits, analyse, name):
    """What the page derives a node's label metrics from, equal to scikit-learn's on its rows."""
    audit, doc = audits[name], analyse(name)
    for node in doc["tree"]["nodes"]:
        rows = rows_of(node["filter"], audit.frame)
        matrix = node["confusion_matrix"]
        expected = confusion_matrix(audit.y_true[rows], audit.y_pred[rows], labels=matrix["labels"])
        assert matrix["matrix"] == expected.tolist(), f"node {node['id']}"
    assert "confusion_matrix" not in analyse("insurance")["tree"]["nodes"][0]


TREE_OPTIONS = [
    ("adult", {}),
    ("compas", {}),
    ("insurance", {}),
    ("planted", {}),
    ("adult", {"max_depth": 2}),
    ("adult", {"num_leaves": 3}),
    ("adult", {"min_child_samples": 2000}),
    ("adult", {"tree_features": ["age", "hours-per-week", "workclass", "native-country"]}),
    ("planted", {"tree_features": ["a", "c", "d"]}),  # NaN in a numeric and a high-cardinality feature
]


@pytest.mark.parametrize(
    "name, options", TREE_OPTIONS, ids=[f"{n}-{'-'.join(map(str, o)) or 'default'}" for n, o in TREE_OPTIONS]
)
def test_leaves_equal_a_lightgbm_tree_fitted_here(audits, analyse, name, options):
    audit, doc = audits[name], analyse(name, **options)
    assert doc["tree"]["features"] == options.get("tree_features", list(audit.X.columns))
    ours = leaf_of_each_row(doc["tree"]["nodes"], audit.frame)
    theirs = lightgbm_leaf_of_each_row(audit.X, audit.error, **options)
    assert len(np.unique(ours)) == len(np.unique(theirs)) > 1
    assert same_partition(ours, theirs)


TREE_PARAMETERS = {  # option: a property of the nodes that the default tree does not have
    "max_depth=2": ({"max_depth": 2}, lambda nodes: max(n["depth"] for n in nodes) <= 2),
    "num_leaves=3": ({"num_leaves": 3}, lambda nodes: len(leaves(nodes)) <= 3),
    "min_child_samples=2000": (
        {"min_child_samples": 2000},
        lambda nodes: min(n["count"] for n in leaves(nodes)) >= 2000,
    ),
    "tree_features": (
        {"tree_features": ["age", "sex"]},
        lambda nodes: {n["split"]["feature"] for n in nodes if not n["leaf"]} <= {"age", "sex"},
    ),
}


@pytest.mark.parametrize("options, holds", TREE_PARAMETERS.values(), ids=TREE_PARAMETERS)
def test_tree_parameters_are_honoured(analyse, options, holds):
    assert not holds(analyse("adult")["tree"]["nodes"])  # so the option is what makes it hold
    nodes = analyse("adult", **options)["tree"]["nodes"]
    assert holds(nodes) and len(leaves(nodes)) > 1


@pytest.mark.parametrize(
    "why", ["min_child_samples above half the rows", "a model with no errors", "a test set of 30 rows"]
)
def test_a_tree_without_splits_is_one_leaf_and_gathers(audits, tmp_path, why):
    """A root-only tree is no worst or best leaf (it is all data), so gather has no leaf cohort
    to select (it crashed on the root's null filter)."""
    if why == "a model with no errors":
        audit, options = planted_audit(tmp_path / "perfect", PlantedModel(flip=False)), {}
        assert not audit.error.any()
    elif why == "a test set of 30 rows":
        audit, options = planted_audit(tmp_path / "small", test=planted_frame(30, seed=4)), {}
        assert 0 < audit.error.sum() < 30
    else:
        audit, options = audits["insurance"], {"min_child_samples": 2000}
        assert len(audit.X) < 2 * 2000
    run_error_analysis(audit.constructor, tmp_path / "ea", options=ErrorAnalysisOptions(**options))
    doc = read_result(tmp_path / "ea")
    nodes = doc["tree"]["nodes"]
    assert len(nodes) == 1 and nodes[0]["leaf"] and nodes[0]["filter"] is None
    assert figures(nodes[0]) == expected_figures(audit.error, np.ones(len(audit.X), dtype=bool))
    assert doc["cohort_errors"]["worst_leaves"] == doc["cohort_errors"]["best_leaves"] == []
    run_gather(audit.constructor, [tmp_path / "ea"], tmp_path / "bundle")
    gathered = json.loads((tmp_path / "bundle" / A.INSIGHTS_JSON_FILE).read_text())
    assert gathered["error_analysis"] == doc
    assert not [v for v in gathered["cohort_views"] if v["kind"] == "error_leaf"]


# --- 3. the heatmap ----------------------------------------------------------------------------


def expected_bin_of_each_row(values: pd.Series, axis: dict[str, Any], n_bins: int) -> np.ndarray:
    """Index into axis["bins"] per row, from pd.cut on the quantiles or from the values."""
    labels = [b["label"] for b in axis["bins"]]
    index = pd.Series(-1, index=values.index)
    if axis["kind"] == "numeric" and values.nunique() > n_bins:
        # pandas' quantile bins, those with rows, in order: the bins must hold the same rows
        edges = np.unique(np.nanquantile(values.astype(float), np.linspace(0, 1, n_bins + 1)))
        codes = pd.cut(values, edges, include_lowest=True, labels=False)
        used = np.unique(codes.dropna())
        assert len([label for label in labels if label != MISSING]) == len(used)
        index[codes.notna()] = np.searchsorted(used, codes[codes.notna()])
        for i, label in enumerate(labels):  # every row is where its label says
            if label != MISSING:
                assert label_holds(label, values[(index == i).to_numpy()]).all(), label
                assert not label_holds(label, values[values.notna() & (index != i)]).any(), label
        assert axis["edges"][0] == values.min() and axis["edges"][-1] == values.max()
    else:
        assert axis["edges"] is None
        present = values.notna()
        named = present & values.astype(str).isin(set(labels) - {OTHER, MISSING})
        index[named] = values[named].astype(str).map(labels.index)
        if (present & ~named).any():
            index[present & ~named] = labels.index(OTHER)
    if values.isna().any():
        index[values.isna()] = labels.index(MISSING)
    assert (MISSING in labels) == values.isna().any()
    assert (index >= 0).all()
    return index.to_numpy()


def check_heatmap(heatmap: dict[str, Any], audit: Audit, features: list[str], n_bins: int = 8) -> None:
    axes = heatmap["axes"]
    assert [axis["feature"] for axis in axes] == features
    bin_of_row = []
    for axis in axes:
        labels = [b["label"] for b in axis["bins"]]
        assert len(set(labels)) == len(labels), f"{axis['feature']}: bins share labels {labels}"
        expected = expected_bin_of_each_row(audit.X[axis["feature"]], axis, n_bins)
        for i, b in enumerate(axis["bins"]):
            assert (rows_of(b["filter"], audit.frame) == (expected == i)).all(), b["label"]
        bin_of_row.append(expected)
    table = pd.DataFrame({f"bin{i}": rows for i, rows in enumerate(bin_of_row)})
    groups = {
        key if isinstance(key, tuple) else (key,): rows.index.to_numpy()
        for key, rows in table.groupby(list(table.columns))
    }
    cells = heatmap["cells"]
    assert len(cells) == math.prod(len(axis["bins"]) for axis in axes)  # every combination
    position = [{b["label"]: i for i, b in enumerate(axis["bins"])} for axis in axes]
    seen = set()
    for cell in cells:
        key = tuple(position[j][label] for j, label in enumerate(cell["bins"]))
        seen.add(key)
        rows = np.zeros(len(audit.X), dtype=bool)
        rows[groups.get(key, [])] = True
        assert figures(cell) == expected_figures(audit.error, rows), cell["bins"]
    assert len(seen) == len(cells)
    assert sum(cell["count"] for cell in cells) == len(audit.X)


HEATMAPS = [
    ("adult", ["age", "sex"], 8),
    ("adult", ["education-num", "education"], 8),
    ("adult", ["hours-per-week", "race"], 4),
    ("planted", ["a", "b"], 8),
    ("planted", ["c"], 8),
    ("planted", ["d"], 12),
    ("insurance", ["bmi", "smoker"], 8),
]


@pytest.mark.parametrize("name, features, bins", HEATMAPS, ids=[f"{n}-{'-'.join(f)}-{b}" for n, f, b in HEATMAPS])
def test_heatmap_equals_a_pandas_groupby(audits, analyse, name, features, bins):
    heatmap = analyse(name, heatmap_features=features, heatmap_bins=bins)["heatmap"]
    check_heatmap(heatmap, audits[name], features, n_bins=bins)


def test_heatmap_age_by_sex_on_adult(audits, analyse):
    audit = audits["adult"]
    heatmap = analyse("adult", heatmap_features=["age", "sex"], heatmap_bins=8)["heatmap"]
    age, sex = heatmap["axes"]
    assert (age["kind"], sex["kind"]) == ("numeric", "categorical")
    assert [b["label"] for b in sex["bins"]] == ["Female", "Male"] and sex["edges"] is None
    # pandas' bins, labelled by the whole ages they hold: "17-21", not "(16.999, 21.0]"
    binned = pd.cut(audit.X["age"], np.quantile(audit.X["age"], np.linspace(0, 1, 9)), include_lowest=True)
    intervals = binned.cat.categories
    expected_labels = [
        f"{audit.X['age'].min() if i == 0 else math.floor(iv.left) + 1}-{math.floor(iv.right)}"
        for i, iv in enumerate(intervals)
    ]
    assert [b["label"] for b in age["bins"]] == expected_labels
    assert not any("." in label for label in expected_labels)
    rows = pd.DataFrame({"age": binned, "sex": audit.X["sex"], "error": audit.error})
    expected = rows.groupby(["age", "sex"], observed=False)["error"].agg(["size", "mean"])
    cells = {tuple(c["bins"]): c for c in heatmap["cells"]}
    for (interval, group), (size, rate) in expected.iterrows():
        cell = cells[(expected_labels[intervals.get_loc(interval)], group)]
        assert (cell["count"], cell["error_rate"]) == (size, pytest.approx(rate)), (interval, group)


def test_heatmap_of_dependent_features_keeps_empty_cells(analyse):
    cells = analyse("adult", heatmap_features=["education-num", "education"])["heatmap"]["cells"]
    empty = [c for c in cells if c["count"] == 0]
    assert empty and all(c["error_sum"] == 0 and c["error_rate"] is None for c in empty)


def test_heatmap_of_a_high_cardinality_feature_keeps_the_top_20(audits, analyse):
    c = audits["planted"].X["c"]
    assert c.nunique() > 150
    heatmap = analyse("planted", heatmap_features=["c"])["heatmap"]
    labels = [b["label"] for b in heatmap["axes"][0]["bins"]]
    assert len(labels) == 22 and labels[-2:] == [OTHER, MISSING]
    counts = c.value_counts()
    top = labels[:20]
    assert counts[top].min() >= counts.drop(top).max()  # the most frequent values, ties aside
    by_bin = {cell["bins"][0]: cell["count"] for cell in heatmap["cells"]}
    assert by_bin == {**counts[top].to_dict(), OTHER: counts.drop(top).sum(), MISSING: c.isna().sum()}


def test_heatmap_bins_of_large_close_values_stay_distinct(tmp_path):
    test = planted_frame(5000, seed=2)
    test.insert(4, "t", 1.7e9 + np.random.default_rng(3).integers(0, 3600, len(test)).astype(float))
    audit = planted_audit(tmp_path / "timestamps", test=test)
    run_error_analysis(audit.constructor, tmp_path / "ea", options=ErrorAnalysisOptions(heatmap_features=["t"]))
    check_heatmap(read_result(tmp_path / "ea")["heatmap"], audit, ["t"])


# --- 4. errors per cohort, per sensitive group, and the extreme leaves --------------------------


@pytest.mark.parametrize("name", ["adult", "insurance", "planted"])
def test_cohort_and_sensitive_group_errors_equal_pandas(audits, analyse, name):
    audit, errors = audits[name], analyse(name)["cohort_errors"]
    assert figures(errors["overall"]) == expected_figures(audit.error, np.ones(len(audit.X), dtype=bool))
    assert [c["name"] for c in errors["cohorts"]] == list(COHORT_ROWS[name])
    for cohort in errors["cohorts"]:
        rows = np.asarray(COHORT_ROWS[name][cohort["name"]](audit.X, audit.error), dtype=bool)
        assert figures(cohort) == expected_figures(audit.error, rows), cohort["name"]
    expected = [(f, rows) for f in audit.sensitive for rows in expected_groups(audit.X[f])]
    assert [g["feature"] for g in errors["sensitive_groups"]] == [f for f, _ in expected]
    for group, (feature, rows) in zip(errors["sensitive_groups"], expected):
        assert figures(group) == expected_figures(audit.error, rows), group
        values = audit.X[feature]
        if group["group"] == MISSING:
            assert values[rows].isna().all()
        elif pd.api.types.is_numeric_dtype(values) and values.nunique() > 10:  # a bin: its label says which
            assert (
                label_holds(group["group"], values[rows]).all() and not label_holds(group["group"], values[~rows]).any()
            )
        else:
            assert (values[rows].astype(str) == group["group"]).all()


def test_empty_cohort_has_no_error_rate(analyse):
    nobody = next(c for c in analyse("adult")["cohort_errors"]["cohorts"] if c["name"] == "Nobody")
    assert figures(nobody) == {"count": 0, "error_sum": 0.0, "error_rate": None, "error_share": 0.0}


EXTREMES = [("adult", 3), ("compas", 3), ("insurance", 3), ("planted", 3), ("adult", 1), ("adult", 5)]


@pytest.mark.parametrize("name, top", EXTREMES, ids=[f"{n}-top{t}" for n, t in EXTREMES])
def test_worst_and_best_leaves_are_the_extreme_leaves_on_their_side_of_all_data(audits, analyse, name, top):
    audit = audits[name]
    doc = analyse(name) if top == 3 else analyse(name, top_leaves=top)
    nodes, errors = doc["tree"]["nodes"], doc["cohort_errors"]
    overall = audit.error.mean()
    rates = sorted(leaf["error_rate"] for leaf in leaves(nodes))
    worst, best = errors["worst_leaves"], errors["best_leaves"]
    above, below = [r for r in rates if r > overall][::-1], [r for r in rates if r < overall]
    assert [w["error_rate"] for w in worst] == pytest.approx(above[:top])
    assert [b["error_rate"] for b in best] == pytest.approx(below[:top])
    assert worst and best  # these trees have leaves on both sides
    for entry in worst + best:
        node = nodes[entry["node"]]
        assert node["leaf"] and entry["filter"] == node["filter"]
        assert (entry["count"], entry["error_rate"]) == (node["count"], node["error_rate"])
        assert rows_of(entry["filter"], audit.frame).sum() == entry["count"]
    assert len({w["node"] for w in worst}) == len(worst) and len({b["name"] for b in best}) == len(best)


class BandModel:
    """Right on every row except a share of each band of ``g`` (0..3): where ``u`` (uniform in
    [0, 1)) is below the band's error rate. The tree is given only ``g``, so its leaves are the
    bands, with the error rates 0.8, 0.5, 0.1 and 0."""

    RATES = np.array([0.8, 0.5, 0.1, 0.0])

    def fit(self, X: Any, y: Any) -> BandModel:
        self.classes_ = np.array([0, 1])
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        truth = X["t"].to_numpy()
        wrong = X["u"].to_numpy() < self.RATES[X["g"].to_numpy()]
        return np.where(wrong, 1 - truth, truth)


def test_leaves_are_named_worst_or_best_by_their_side_of_all_data(tmp_path):
    """The third-worst leaf (band 2, 10% wrong) is better than all data (~35%): not "worst"."""
    rng = np.random.default_rng(5)
    n = 4000
    test = pd.DataFrame({"g": rng.integers(0, 4, n), "u": rng.random(n), "t": rng.integers(0, 2, n)})
    test["label"] = test["t"]
    audit = planted_audit(tmp_path / "bands", BandModel(), test=test)
    band_rates = pd.Series(audit.error).groupby(test["g"]).mean()
    overall = audit.error.mean()
    assert band_rates[2] < overall < band_rates[1]
    run_error_analysis(audit.constructor, tmp_path / "ea", options=ErrorAnalysisOptions(tree_features=["g"]))
    doc = read_result(tmp_path / "ea")
    bands = {
        int(test["g"][rows_of(leaf["filter"], audit.frame)].iloc[0]): leaf for leaf in leaves(doc["tree"]["nodes"])
    }
    assert sorted(bands) == [0, 1, 2, 3]
    worst, best = doc["cohort_errors"]["worst_leaves"], doc["cohort_errors"]["best_leaves"]
    assert [w["node"] for w in worst] == [bands[0]["id"], bands[1]["id"]]  # not band 2
    assert [b["node"] for b in best] == [bands[3]["id"], bands[2]["id"]]  # not band 1
    assert [w["name"] for w in worst] == [
        f"Error tree: worst leaf {i + 1} (node {bands[g]['id']})" for i, g in enumerate((0, 1))
    ]
    for g, leaf in bands.items():
        assert leaf["error_rate"] == pytest.approx(band_rates[g])
    # the bands' filters read as the values of g they hold
    assert {json.dumps(bands[g]["condition"]) for g in (0, 3)} == {
        json.dumps({"column": "g", "op": "<=", "value": 0}),
        json.dumps({"column": "g", "op": ">", "value": 2}),
    }


# --- 4b. thresholds and categories read as the values they separate ----------------------------

CREDIT_TARGET = "default_payment_next_month"


@pytest.fixture(scope="module")
def credit(tmp_path_factory) -> tuple[Audit, dict[str, Any]]:
    """UCI credit-card default (integer-coded PAY_0 .. PAY_6, EDUCATION, SEX): 3,000 train and
    3,000 test rows, a gradient boosting model, error analysis with an AGE x EDUCATION heatmap."""
    data = shared_dataset("credit_card_default.parquet").drop(columns="ID")
    train, test = data.iloc[:3000], data.iloc[3000:6000]
    folder = tmp_path_factory.mktemp("credit")
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(
        train.drop(columns=CREDIT_TARGET), train[CREDIT_TARGET]
    )
    joblib.dump(model, folder / "model.joblib")
    train.to_parquet(folder / "train.parquet", index=False)
    test.to_parquet(folder / "test.parquet", index=False)
    audit = make_audit(
        folder / "constructor",
        folder / "model.joblib",
        folder / "train.parquet",
        folder / "test.parquet",
        CREDIT_TARGET,
        "binary_classification",
        positive_label=1,
        sensitive_features=["SEX", "AGE"],
    )
    run_error_analysis(
        audit.constructor, folder / "ea", options=ErrorAnalysisOptions(heatmap_features=["AGE", "EDUCATION"])
    )
    return audit, read_result(folder / "ea")


def numbers_in(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [x for key in ("and", "or") if key in node for child in node[key] for x in numbers_in(child)] or (
            [
                v
                for v in (node["value"] if isinstance(node.get("value"), list) else [node.get("value")])
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            ]
        )
    return []


def test_integer_coded_thresholds_read_as_the_values_they_separate(credit):
    audit, doc = credit
    nodes = doc["tree"]["nodes"]
    splits = [n for n in nodes if not n["leaf"]]
    assert len(splits) >= 3
    for node in splits:
        split, values = node["split"], audit.X[node["split"]["feature"]]
        assert (values == values.round()).all()  # every credit column holds whole numbers
        # the largest value of the data at or below LightGBM's threshold, as an int
        expected = int(values[values <= split["lightgbm_threshold"]].max())
        left, right = (nodes[i]["condition"] for i in node["children"])
        if values.nunique() == 2:
            assert (left["op"], right["op"]) == ("==", "==")
            assert (left["value"], right["value"]) == (expected, int(values[values > expected].min()))
        else:
            assert left == {"column": split["feature"], "op": "<=", "value": expected}
            assert right == {"column": split["feature"], "op": ">", "value": expected}
            assert type(left["value"]) is int
            assert pdf_filter_text(left) == f"{split['feature']} <= {expected}"
    # LightGBM's threshold between 0 and 1 is 1e-35: it reads "PAY_0 <= 0"
    near_zero = [n for n in splits if abs(n["split"]["lightgbm_threshold"]) < 1e-30]
    assert near_zero and all(n["split"]["value"] == 0 for n in near_zero)
    assert "PAY_0 <= 0" in [pdf_filter_text(nodes[n["children"][0]]["condition"]) for n in near_zero]
    for node in nodes:  # no float (1e-35, 1000.5000000000001) anywhere in a filter
        assert all(type(v) is int for v in numbers_in(node["filter"])), node["filter"]
    for leaf in doc["cohort_errors"]["worst_leaves"]:
        assert "e-" not in pdf_filter_text(leaf["filter"]) and ".0" not in pdf_filter_text(leaf["filter"])


def test_integer_coded_filters_select_the_rows_of_the_tree(credit):
    audit, doc = credit
    ours = leaf_of_each_row(doc["tree"]["nodes"], audit.frame)
    theirs = lightgbm_leaf_of_each_row(audit.X, audit.error)
    assert len(np.unique(ours)) == len(np.unique(theirs)) > 4
    assert same_partition(ours, theirs)
    for node in doc["tree"]["nodes"]:  # every node's figures from the rows its readable filter selects
        assert figures(node) == expected_figures(audit.error, rows_of(node["filter"], audit.frame))


def test_integer_coded_bins_and_groups_are_whole_number_ranges(credit):
    audit, doc = credit
    age, education = doc["heatmap"]["axes"]
    labels = [b["label"] for b in age["bins"]]
    assert all(re.fullmatch(r"\d+-\d+", label) for label in labels), labels
    firsts = [int(label.split("-")[0]) for label in labels]
    assert firsts == sorted(firsts) and firsts[0] == audit.X["AGE"].min()
    assert int(labels[-1].split("-")[1]) == audit.X["AGE"].max()
    check_heatmap(doc["heatmap"], audit, ["AGE", "EDUCATION"])
    assert [b["label"] for b in education["bins"]] == [str(v) for v in sorted(audit.X["EDUCATION"].unique())]
    groups = [g["group"] for g in doc["cohort_errors"]["sensitive_groups"] if g["feature"] == "AGE"]
    assert len(groups) == 4 and all(re.fullmatch(r"\d+-\d+", g) for g in groups), groups


SIZES = ["XS", "S", "M", "L", "XL"]  # ordered; alphabetically L, M, S, XL, XS


class KindsModel:
    """Wrong exactly where flag is True, onehot is 1 and size is XS, L or XL."""

    def fit(self, X: Any, y: Any) -> KindsModel:
        self.classes_ = np.array([0, 1])
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        truth = X["t"].to_numpy()
        wrong = (X["flag"] & (X["onehot"] == 1) & X["size"].isin(["XS", "L", "XL"])).to_numpy()
        return np.where(wrong, 1 - truth, truth)


@pytest.fixture(scope="module")
def kinds(tmp_path_factory) -> tuple[Audit, dict[str, Any]]:
    rng = np.random.default_rng(11)
    n = 5000
    test = pd.DataFrame(
        {
            "flag": rng.random(n) < 0.5,
            "onehot": rng.integers(0, 2, n),
            "size": pd.Categorical(rng.choice(SIZES, n), categories=SIZES, ordered=True),
            "grade": rng.choice(["1", "2", "3", "10"], n),  # numbers written as text
            "t": rng.integers(0, 2, n),
        }
    )
    test["label"] = test["t"]
    folder = tmp_path_factory.mktemp("kinds")
    audit = planted_audit(folder / "kinds", KindsModel(), test=test)
    run_error_analysis(
        audit.constructor,
        folder / "ea",
        options=ErrorAnalysisOptions(
            tree_features=["flag", "onehot", "size"], heatmap_features=["size", "grade"], max_depth=4
        ),
    )
    return audit, read_result(folder / "ea")


def test_boolean_one_hot_and_ordered_splits_read_as_values(kinds):
    audit, doc = kinds
    nodes = doc["tree"]["nodes"]
    conditions = {}
    for node in nodes:
        if not node["leaf"]:
            conditions.setdefault(node["split"]["feature"], []).append(
                [nodes[i]["condition"] for i in node["children"]]
            )
    assert set(conditions) == {"flag", "onehot", "size"}
    for left, right in conditions["flag"]:  # a bool: == True / == False
        assert (left["op"], right["op"]) == ("==", "==") and {left["value"], right["value"]} == {True, False}
        assert pdf_filter_text(left) in ("flag == true", "flag == false")
    for left, right in conditions["onehot"]:  # a 0/1 column: == 0 / == 1, not <= 1e-35
        assert (left, right) == (
            {"column": "onehot", "op": "==", "value": 0},
            {"column": "onehot", "op": "==", "value": 1},
        )
    for left, right in conditions["size"]:  # the sizes of each side in their own order
        for side in (left, right):
            values = side["value"] if isinstance(side["value"], list) else [side["value"]]
            assert values == [s for s in SIZES if s in values], side
    region = KindsModel().predict(audit.X) != audit.X["t"].to_numpy()
    wrong = [leaf for leaf in doc["cohort_errors"]["worst_leaves"] if leaf["error_rate"] == 1.0]
    assert (np.logical_or.reduce([rows_of(leaf["filter"], audit.frame) for leaf in wrong]) == region).all()
    ours = leaf_of_each_row(nodes, audit.frame)
    assert same_partition(
        ours, lightgbm_leaf_of_each_row(audit.X, audit.error, max_depth=4, tree_features=["flag", "onehot", "size"])
    )


def test_heatmap_categories_in_their_order(kinds, analyse):
    audit, doc = kinds
    size, grade = doc["heatmap"]["axes"]
    assert [b["label"] for b in size["bins"]] == SIZES  # the ordered categorical's order
    assert [b["label"] for b in grade["bins"]] == ["1", "2", "3", "10"]  # as numbers, not "1", "10", "2"
    check_heatmap(doc["heatmap"], audit, ["size", "grade"])
    education = analyse("adult", heatmap_features=["education"])["heatmap"]["axes"][0]
    labels = [b["label"] for b in education["bins"]]
    assert labels[:7] == ["1st-4th", "5th-6th", "7th-8th", "9th", "10th", "11th", "12th"]


# --- 4c. columns the model is not given, dates -------------------------------------------------


class IgnoresDates:
    """The planted model; it reads only a, b, c and d."""

    def fit(self, X: Any, y: Any) -> IgnoresDates:
        self.classes_ = np.array([0, 1])
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return PlantedModel().predict(X[["a", "b", "c", "d"]])


def dated_frame(n: int, seed: int) -> pd.DataFrame:
    frame = planted_frame(n, seed)
    frame.insert(4, "when", pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) % 400, unit="D"))
    return frame


def test_a_dropped_datetime_column_never_reaches_the_tree(tmp_path):
    """A datetime column in dropped_features crashed the tree (LightGBM's category dump)."""
    audit = planted_audit(
        tmp_path / "dated",
        IgnoresDates(),
        test=dated_frame(2000, seed=2),
        train=dated_frame(1000, seed=1),
        dropped_features=["when"],
        sensitive_features=["b"],
    )
    run_error_analysis(audit.constructor, tmp_path / "ea", options=ErrorAnalysisOptions(heatmap_features=["a"]))
    doc = read_result(tmp_path / "ea")
    assert doc["tree"]["features"] == ["a", "b", "c", "d"]
    assert sorted(e["feature"] for e in doc["feature_importance"]) == ["a", "b", "c", "d"]
    assert "when" not in json.dumps(doc["tree"])
    ours = leaf_of_each_row(doc["tree"]["nodes"], audit.frame)
    assert same_partition(ours, lightgbm_leaf_of_each_row(audit.X, audit.error, tree_features=["a", "b", "c", "d"]))
    run_gather(audit.constructor, [tmp_path / "ea"], tmp_path / "bundle")
    gathered = json.loads((tmp_path / "bundle" / A.INSIGHTS_JSON_FILE).read_text())
    assert gathered["error_analysis"] == doc
    for option in ("tree_features", "heatmap_features"):  # named explicitly: refused, nothing written
        out = tmp_path / f"refused-{option}"
        with pytest.raises(RAIInputError, match=rf"`{option}` names \['when'\], which the model is not given"):
            run_error_analysis(audit.constructor, out, options=ErrorAnalysisOptions(**{option: ["when"]}))
        assert not out.exists()


def test_a_datetime_feature_the_model_uses_is_refused_in_one_line(tmp_path):
    """Refused up front (by the constructor; error analysis refuses it too in an older
    artifact), in one line naming the column; nothing written."""
    out = tmp_path / "ea"
    try:
        audit = planted_audit(
            tmp_path / "dated", IgnoresDates(), test=dated_frame(500, seed=3), train=dated_frame(500, seed=1)
        )
    except RAIInputError as refused:
        message = str(refused)
        assert not (tmp_path / "dated" / "constructor").exists()
    else:
        with pytest.raises(RAIInputError) as refused:
            run_error_analysis(audit.constructor, out)
        message = str(refused.value)
    assert "\n" not in message and "'when'" in message and "dropped_features" in message
    assert not out.exists()


# --- 5. feature importance for errors ----------------------------------------------------------


def test_feature_importance_ranks_the_planted_features_first(analyse):
    mi = {e["feature"]: e["mutual_information"] for e in analyse("planted")["feature_importance"]}
    assert min(mi["a"], mi["b"]) > max(mi["c"], mi["d"]) > 0


@pytest.mark.parametrize("name", ["adult", "compas", "insurance", "planted"])
def test_feature_importance_covers_every_feature_most_informative_first(audits, analyse, name):
    importance = analyse(name)["feature_importance"]
    values = [entry["mutual_information"] for entry in importance]
    assert sorted(entry["feature"] for entry in importance) == sorted(audits[name].X.columns)
    assert values == sorted(values, reverse=True) and min(values) >= 0


CATEGORICAL_IMPORTANCE = [("planted", "b"), ("planted", "c"), ("adult", "workclass"), ("compas", "race")]


@pytest.mark.parametrize("name, feature", CATEGORICAL_IMPORTANCE, ids=["-".join(c) for c in CATEGORICAL_IMPORTANCE])
def test_feature_importance_of_a_categorical_equals_sklearn(audits, analyse, name, feature):
    audit = audits[name]
    mi = {e["feature"]: e["mutual_information"] for e in analyse(name)["feature_importance"]}
    codes = pd.factorize(audit.X[feature], use_na_sentinel=True)[0]  # missing values: code -1
    assert audit.X[feature].isna().any() == (name != "compas")
    assert mi[feature] == pytest.approx(mutual_info_score(audit.error.astype(int), codes))


# --- 6. bad parameters -------------------------------------------------------------------------

BAD_OPTIONS = {
    "max_depth=0": ({"max_depth": 0}, r"`max_depth` must be an integer >= 1, got 0"),
    "num_leaves=1": ({"num_leaves": 1}, r"`num_leaves` must be an integer >= 2, got 1"),
    "min_child_samples=0": ({"min_child_samples": 0}, r"`min_child_samples` must be an integer >= 1"),
    "heatmap_bins=1": ({"heatmap_bins": 1}, r"`heatmap_bins` must be an integer >= 2"),
    "top_leaves=0": ({"top_leaves": 0}, r"`top_leaves` must be an integer >= 1"),
    "max_depth='3'": ({"max_depth": "3"}, r"`max_depth` must be an integer >= 1, got '3'"),
    "three heatmap features": ({"heatmap_features": ["age", "bmi", "sex"]}, r"at most two different features"),
    "duplicate heatmap features": ({"heatmap_features": ["age", "age"]}, r"at most two different features"),
    "unknown tree feature": (
        {"tree_features": ["age", "salary"]},
        r"`tree_features` names unknown features \['salary'\]",
    ),
    "unknown heatmap feature": (
        {"heatmap_features": ["salary"]},
        r"`heatmap_features` names unknown features \['salary'\]",
    ),
}


@pytest.mark.parametrize("options, match", BAD_OPTIONS.values(), ids=BAD_OPTIONS)
def test_bad_parameters_are_refused(audits, tmp_path, options, match):
    out = tmp_path / "ea"
    with pytest.raises(RAIInputError, match=match):
        run_error_analysis(audits["insurance"].constructor, out, options=ErrorAnalysisOptions(**options))
    assert not out.exists() and list(tmp_path.iterdir()) == []


# --- 7. the artifact ---------------------------------------------------------------------------


def test_artifact_is_an_insight_of_the_run_that_gather_accepts(audits, tmp_path):
    audit, out = audits["insurance"], tmp_path / "ea"
    result = run_error_analysis(
        audit.constructor, out, options=ErrorAnalysisOptions(max_depth=2, heatmap_features=["bmi", "smoker"])
    )
    meta = A.read_artifact_meta(out, expected_kind="error_analysis")  # verifies the manifest
    assert meta["kind"] == "error_analysis" and meta["run_id"] == audit.run_id == result.run_id
    assert meta["options"]["max_depth"] == 2 and meta["options"]["heatmap_features"] == ["bmi", "smoker"]
    assert A.INSIGHT_RESULT_FILE in A.verify_manifest(out)["files"]
    doc = read_result(out)
    assert result.n_rows == meta["n_rows"] == doc["n_rows"] == len(audit.X)
    assert result.n_leaves == len(leaves(doc["tree"]["nodes"]))
    run_gather(audit.constructor, [out], tmp_path / "bundle")
    gathered = json.loads((tmp_path / "bundle" / A.INSIGHTS_JSON_FILE).read_text())
    assert list(gathered["insights"]) == ["error_analysis"]
    assert gathered["error_analysis"] == doc
    A.verify_manifest(tmp_path / "bundle" / A.INSIGHT_COPIES_DIR / "error_analysis")


# --- 8. the command line -----------------------------------------------------------------------


def test_cli_runs_and_reports_bad_input(audits, tmp_path, capsys):
    audit = audits["insurance"]
    common = ["--constructor", str(audit.constructor)]
    good = tmp_path / "good"
    assert (
        main(
            [
                *common,
                "--output",
                str(good),
                "--max-depth",
                "2",
                "--num-leaves",
                "3",
                "--heatmap-features",
                '["age"]',
                "--tree-features",
                '["age", "smoker", "bmi"]',
            ]
        )
        == 0
    )
    assert "error analysis written" in capsys.readouterr().out
    doc = read_result(good)
    nodes = doc["tree"]["nodes"]
    assert max(n["depth"] for n in nodes) <= 2 and len(leaves(nodes)) <= 3
    assert doc["tree"]["features"] == ["age", "smoker", "bmi"]
    assert [axis["feature"] for axis in doc["heatmap"]["axes"]] == ["age"]
    bad = tmp_path / "bad"
    assert main([*common, "--output", str(bad), "--heatmap-features", '["salary"]']) == 2
    err = capsys.readouterr().err
    assert "rai-audit: error:" in err and "salary" in err
    assert not bad.exists()
