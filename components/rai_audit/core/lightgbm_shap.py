"""LightGBM's exact tree SHAP (``pred_contrib``), computed once per group of rows that split alike.

Written here because no maintained library computes exact tree SHAP faster than LightGBM's
own code (shap's TreeExplainer is the same algorithm at the same speed per core; bench/README.md,
issue 25), but LightGBM computes it for every row and tree, and most of the explainer's time
is there. A row's values in one tree depend on the row only through the side it takes at each
of that tree's splits, so rows that take the same sides at every split of a tree have equal
values in it. For each boosting iteration the rows are grouped by which pair of that
iteration's thresholds each numeric value lies between, by each category its splits name (all
other categories together), with missing values and zeros apart, whatever a split's missing
handling; LightGBM computes the values of one row per group, and the iterations' values add up
to the model's. On Adult's 16,281 test rows and the mimic's 100 trees, 18% of the tree-rows
remain: 2.4 s instead of 8.1 s on 2 cores (bench/README.md). The values are one ``pred_contrib``
call's on all rows but for the order of the sums (tests/core/test_lightgbm_shap.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

# LightGBM's kZeroThreshold (1e-35 as a float): it reads a value this close to 0 as 0.
ZERO = float(np.float32(1e-35))
# Below this many rows one pred_contrib call is faster (Adult's mimic: 1 row 7.5 ms in one call,
# 126 ms grouped; 1,000 rows 624 ms and 514 ms).
GROUPED_FROM = 1000


def lightgbm_matrix(booster: Any, X: pd.DataFrame) -> np.ndarray:
    """``X`` as LightGBM's ``predict`` reads a DataFrame: numbers as floats, a category column
    as its code among the categories the booster was trained with (missing: NaN)."""
    categories = iter(booster.pandas_categorical or [])
    columns = []
    for name in X.columns:
        values = X[name]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.set_categories(next(categories)).cat.codes.to_numpy(dtype=float)
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(values.to_numpy(dtype=float, na_value=np.nan))
    return np.column_stack(columns) if columns else np.empty((len(X), 0))


def _splits(node: dict[str, Any], cuts: dict[int, set[float]], categories: dict[int, set[int]]) -> None:
    """The thresholds a tree compares each numeric feature with, and the categories its
    categorical splits name (a split sends the categories it names one way, all others the other)."""
    if "split_feature" not in node:
        return
    feature = node["split_feature"]
    if node["decision_type"] == "==":
        categories.setdefault(feature, set()).update(int(c) for c in str(node["threshold"]).split("||"))
    else:
        cuts.setdefault(feature, set()).add(float(node["threshold"]))
    _splits(node["left_child"], cuts, categories)
    _splits(node["right_child"], cuts, categories)


def _cells(matrix: np.ndarray, cuts: dict[int, set[float]], categories: dict[int, set[int]]) -> np.ndarray:
    """Each row's group in one iteration (equal numbers: equal sides at every split)."""
    key = np.zeros(len(matrix), dtype=np.int64)
    for feature in sorted(cuts.keys() | categories.keys()):
        values = np.where(np.abs(matrix[:, feature]) <= ZERO, 0.0, matrix[:, feature])
        if feature in categories:  # a category named by a split: its own cell; any other: one cell
            category = np.trunc(values)  # LightGBM reads a category as an int
            named = np.array(sorted(categories[feature]), dtype=float)
            at = np.minimum(np.searchsorted(named, category), len(named) - 1)
            cell = np.where(named[at] == category, at + 2, 1)
        else:  # which pair of sorted thresholds the value lies between (<= as LightGBM's splits),
            # and 0 apart from the others there: a split may take it as missing
            between = np.searchsorted(np.array(sorted(cuts[feature])), values, side="left")
            cell = 2 * between + 1 + (values == 0)
        cell[np.isnan(values)] = 0
        size = int(cell.max()) + 1
        if int(key.max()) >= 2**62 // size:  # the next product could overflow: renumber first
            key = np.unique(key, return_inverse=True)[1].reshape(-1)
        key = key * size + cell
    return key


def tree_contributions(booster: Any, X: pd.DataFrame, num_threads: int, grouped_from: int = GROUPED_FROM) -> np.ndarray:
    """``booster.predict(X, pred_contrib=True)``: per row, each output's value per feature and,
    last, its expected value (rows, outputs x (features + 1)). Fewer rows than ``grouped_from``
    go to LightGBM in one call: one call per iteration costs more than it saves on them."""
    if len(X) < max(grouped_from, 1):
        return np.asarray(booster.predict(X, pred_contrib=True, num_threads=num_threads), dtype=float)
    matrix = lightgbm_matrix(booster, X)
    iterations = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
    per_iteration = booster.num_model_per_iteration()
    trees = booster.dump_model()["tree_info"]
    total = np.zeros((len(matrix), per_iteration * (matrix.shape[1] + 1)))
    for iteration in range(iterations):
        cuts: dict[int, set[float]] = {}
        categories: dict[int, set[int]] = {}
        for tree in trees[iteration * per_iteration : (iteration + 1) * per_iteration]:
            _splits(tree["tree_structure"], cuts, categories)
        _, first, group = np.unique(_cells(matrix, cuts, categories), return_index=True, return_inverse=True)
        values = booster.predict(
            matrix[first], pred_contrib=True, start_iteration=iteration, num_iteration=1, num_threads=num_threads
        )
        total += np.asarray(values, dtype=float)[group.reshape(-1)]
    return total
