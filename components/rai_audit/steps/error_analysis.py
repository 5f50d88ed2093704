"""The error analysis step: where is the model wrong, and for whom.

From the constructor's artifact (whole test set, predictions made once there):
- an **error tree**: one LightGBM regression tree fitted to the model's error
  (classification: misclassified 0/1; regression: absolute error) over the features;
  each node carries its filter path in the cohort format, so any node is a cohort;
- a **heatmap** of the error over one or two features (numeric ones binned by quantiles,
  categorical ones by value);
- the error per user cohort and per sensitive group, and the worst leaves (error above the
  overall error) and best leaves (below it) as ready-made cohorts;
- **feature importance for errors**: binned mutual information between each feature and
  the error.
LightGBM is used (not scikit-learn's tree) because it splits categorical features and
missing values natively, so paths read as raw values, and it is fast on millions of rows.
Its thresholds are rewritten as the values they separate (``PAY_0 <= 0``, not LightGBM's
``PAY_0 <= 1e-35``), selecting exactly the rows the tree does. Only the features the model
uses are analysed: ``dropped_features`` never reach the tree.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.core.cohorts import all_of, filter_mask, natural_key, numeric_bins, ordered_values, readable_cut
from rai_audit.core.constructor_artifact import ConstructorArtifact, load_constructor_artifact
from rai_audit.core.metrics import confusion_counts
from rai_audit.specs import ErrorAnalysisOptions
from rai_audit.steps._cli import add_options, options_from_args, run_cli

KIND = "error_analysis"
HEATMAP_MAX_CATEGORIES = 20
IMPORTANCE_BINS = 32
OTHER, MISSING = "(other)", "(missing)"


@dataclass
class ErrorAnalysisResult:
    run_id: str
    n_rows: int
    n_leaves: int
    seconds: float


def _error(audit: ConstructorArtifact) -> np.ndarray:
    """Per row: 1.0 if misclassified (classification) or the absolute error (regression)."""
    return audit.cohort_frame["error"].to_numpy(dtype=float)


def _error_stats(error: np.ndarray, mask: np.ndarray, total: float) -> dict[str, Any]:
    count = int(mask.sum())
    error_sum = float(error[mask].sum())
    return {
        "count": count,
        "error_sum": error_sum,
        "error_rate": error_sum / count if count else None,
        "error_share": error_sum / total if total else None,
    }


def _model_features(audit: ConstructorArtifact) -> list[str]:
    """The features the model is given (old artifacts without ``model_features``: all but dropped)."""
    dropped = set(audit.meta.get("dropped_features") or [])
    return list(audit.meta.get("model_features") or [f for f in audit.meta["features"] if f not in dropped])


def _is_time(values: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values)


def _check_features(names: list[str], audit: ConstructorArtifact, option: str) -> None:
    model_features = _model_features(audit)
    unknown = [f for f in names if f not in audit.meta["features"]]
    if unknown:
        raise RAIInputError(f"`{option}` names unknown features {unknown}; the features are {model_features}")
    dropped = [f for f in names if f not in model_features]
    if dropped:
        raise RAIInputError(
            f"`{option}` names {dropped}, which the model is not given (dropped_features); "
            f"error analysis uses the model's features {model_features}"
        )
    # LightGBM cannot split on dates (its dump of their categories fails). The constructor
    # refuses a date the model uses; this covers artifacts written before it did.
    for f in names:
        if _is_time(audit.features[f]):
            raise RAIInputError(
                f"error analysis cannot use {f!r}: it holds dates or durations ({audit.features[f].dtype}); "
                f"list it in `dropped_features` if the model ignores it, convert it to a number, "
                f"or leave it out of `{option}`"
            )


def _tree_inputs(audit: ConstructorArtifact, features: list[str]) -> pd.DataFrame:
    """The features as LightGBM takes them: categorical ones as pandas categories."""
    categorical = set(audit.meta["categorical_features"])
    X = pd.DataFrame(index=audit.features.index)
    for f in features:
        values = audit.features[f]
        if f in categorical or not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            X[f] = values.astype("category")
        else:
            X[f] = values.astype(float)
    return X


def _missing_or(condition: dict[str, Any], feature: str) -> dict[str, Any]:
    return {"or": [condition, {"column": feature, "op": "==", "value": None}]}


def _plain(value: float) -> int | float:
    """A number as the user wrote it: whole numbers as int (JSON ``0``, not ``0.0``)."""
    return int(value) if float(value).is_integer() else float(value)


def _category_sides(feature: str, values: pd.Series, chosen: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Filters of a categorical split's sides, as short as they can be read: ``==`` for one
    value, the right side as the values it holds when that is no longer than ``not in``
    (only without missing values: ``not in`` also holds a row whose value is missing)."""
    present = ordered_values(values)
    chosen = [v for v in present if v in chosen]  # in the data's order (ordered categories too)
    others = [v for v in present if v not in chosen]

    def side(vals: list[Any], negate: bool) -> dict[str, Any]:
        if len(vals) == 1:
            return {"column": feature, "op": "!=" if negate else "==", "value": vals[0]}
        return {"column": feature, "op": "not in" if negate else "in", "value": vals}

    right = side(others, False) if values.notna().all() and len(others) <= len(chosen) else side(chosen, True)
    return side(chosen, False), right


def _split_conditions(node: dict[str, Any], X: pd.DataFrame) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The split as data, and the cohort filters of its left and right sides.

    LightGBM sends a row left when value <= threshold (numeric) or its category is in the
    split's set (categorical); missing values go where ``default_left`` says when the tree
    saw them (``missing_type`` NaN), and a categorical's missing value goes right. LightGBM
    splits an ordered categorical as numbers (its codes): its sides are ranges of categories.
    Thresholds are written as the values they separate, which selects the same rows: a
    whole-number column's largest value on the left (``PAY_0 <= 0`` for LightGBM's
    ``1e-35``), the shortest decimal between the two sides otherwise, and a column of two
    values (one-hot 0/1, codes 1/2) as ``== low`` / ``== high``.
    """
    feature = X.columns[node["split_feature"]]
    nan_left = node["missing_type"] == "NaN" and node["default_left"]
    if node["decision_type"] == "==" or isinstance(X[feature].dtype, pd.CategoricalDtype):
        categories = X[feature].cat.categories
        if node["decision_type"] == "==":
            chosen = [categories[int(code)] for code in str(node["threshold"]).split("||")]
        else:  # an ordered categorical, which LightGBM splits by its codes: the categories up to the cut
            chosen = [c for code, c in enumerate(categories) if code <= float(node["threshold"])]
        chosen = [v.item() if hasattr(v, "item") else v for v in chosen]
        left, right = _category_sides(feature, X[feature], chosen)
        split = {"feature": feature, "op": left["op"], "value": left["value"]}
        if nan_left:
            left = _missing_or(left, feature)
            right = {"and": [right, {"column": feature, "op": "!=", "value": None}]}
    else:
        threshold = float(node["threshold"])
        values = X[feature].to_numpy(dtype=float)
        cut = readable_cut(values, threshold)
        low_side, high_side = np.unique(values[values <= cut]), np.unique(values[values > cut])
        if len(low_side) == 1 and len(high_side) == 1:  # a column of two values: name them
            low, high = _plain(low_side[0]), _plain(high_side[0])
            left = {"column": feature, "op": "==", "value": low}
            right = {"column": feature, "op": "==", "value": high}
        else:
            left = {"column": feature, "op": "<=", "value": cut}
            right = {"column": feature, "op": ">", "value": cut}
        split = {"feature": feature, "op": left["op"], "value": left["value"], "lightgbm_threshold": threshold}
        if node["missing_type"] == "NaN":
            left, right = (_missing_or(left, feature), right) if nan_left else (left, _missing_or(right, feature))
    # Where missing values go matters (and is said) only for a column that has some.
    has_missing = bool(X[feature].isna().any())
    split["missing_values_go"] = ("left" if nan_left else "right") if has_missing else None
    return split, left, right


def min_split_gain(error: np.ndarray) -> float:
    """The least gain worth a split: 1e-7 of the error's total sum of squares.

    With LightGBM's default of 0, rounding noise (gains of ~1e-14) splits nodes whose
    error is constant, cutting a region that is always wrong into pieces.
    """
    return max(1e-7 * float(((error - error.mean()) ** 2).sum()), 1e-12)


def _error_tree(
    audit: ConstructorArtifact, X: pd.DataFrame, error: np.ndarray, options: ErrorAnalysisOptions
) -> list[dict[str, Any]]:
    """Fit one tree to the error; return its nodes with filters and error figures."""
    import lightgbm  # here, not at load: it imports scikit-learn (1.6 s in all), which the step's start need not pay

    tree = lightgbm.LGBMRegressor(
        n_estimators=1,
        learning_rate=1.0,
        num_leaves=options.num_leaves,
        max_depth=options.max_depth,
        min_child_samples=options.min_child_samples,
        min_split_gain=min_split_gain(error),
        random_state=options.random_state,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbose=-1,
    )
    # LightGBM refuses feature names with JSON characters ('"', ',', ':', '[', ...); the tree
    # is read back by column position, so it is fitted on positional names.
    tree.fit(X.set_axis([f"f{i}" for i in range(X.shape[1])], axis=1), error)
    structure = tree.booster_.dump_model()["tree_info"][0]["tree_structure"]
    frame = audit.cohort_frame
    total = float(error.sum())
    nodes: list[dict[str, Any]] = []
    # Every node's confusion matrix (classification): the page derives any label metric of the
    # node on all rows from it, not only the error rate.
    y_true, y_pred, positions, _ = audit.metric_labels
    # (class_positions gives positions 0..k-1 unless a label is outside the classes.)
    counted = audit.is_classifier and positions == list(range(len(audit.meta["classes"] or [])))

    def visit(node: dict[str, Any], parent: int | None, conditions: list[dict[str, Any]], mask: np.ndarray) -> int:
        node_id = len(nodes)
        entry: dict[str, Any] = {
            "id": node_id,
            "parent": parent,
            "depth": len(conditions),
            "condition": conditions[-1] if conditions else None,  # its side of the split
            "filter": all_of(conditions),
            **_error_stats(error, mask, total),
        }
        if counted:
            entry["confusion_matrix"] = {
                "labels": audit.meta["classes"],
                "matrix": confusion_counts(y_true[mask], y_pred[mask], len(audit.meta["classes"])).tolist(),
            }
        nodes.append(entry)
        if "split_feature" not in node:  # a leaf (a tree with no split has a bare root leaf)
            entry.update(leaf=True, children=[])
            return node_id
        split, left, right = _split_conditions(node, X)
        entry.update(leaf=False, split=split)
        entry["children"] = [
            visit(child, node_id, [*conditions, side], mask & filter_mask(side, frame))
            for child, side in ((node["left_child"], left), (node["right_child"], right))
        ]
        return node_id

    visit(structure, None, [], np.ones(len(error), dtype=bool))
    return nodes


def _bins(values: pd.Series, kind: str, n_bins: int) -> tuple[pd.Series, list[dict[str, Any]], list[float] | None]:
    """Bin labels per row, the bins (label + cohort filter) in reading order, and the numeric
    edges if binned (``numeric_bins``: quantiles with readable exact edges, "17-24")."""
    name = values.name
    bins: list[dict[str, Any]] = []
    edges = None
    labels = pd.Series(MISSING, index=values.index, dtype=object)
    present = values.notna()
    if kind == "numeric" and values.nunique() > n_bins:
        codes, bins, edges = numeric_bins(values, n_bins)
        for i, b in enumerate(bins):
            labels[codes == i] = b["label"]
    elif kind == "numeric" or values.nunique() <= HEATMAP_MAX_CATEGORIES:
        for value in ordered_values(values):  # ordered categories in order, "2" before "10"
            labels[(values == value).fillna(False).to_numpy(dtype=bool)] = str(value)
            bins.append({"label": str(value), "filter": {"column": name, "op": "==", "value": value}})
    else:  # many categories: the most frequent ones, the rest as one bin
        top = values[present].value_counts().index[:HEATMAP_MAX_CATEGORIES].tolist()
        top = [v.item() if hasattr(v, "item") else v for v in top]
        for value in top:
            labels[(values == value).fillna(False).to_numpy(dtype=bool)] = str(value)
            bins.append({"label": str(value), "filter": {"column": name, "op": "==", "value": value}})
        labels[present & ~values.isin(top)] = OTHER
        bins.append(
            {
                "label": OTHER,
                "filter": {
                    "and": [{"column": name, "op": "not in", "value": top}, {"column": name, "op": "!=", "value": None}]
                },
            }
        )
    if not present.all():
        bins.append({"label": MISSING, "filter": {"column": name, "op": "==", "value": None}})
    return labels, bins, edges


def _heatmap(audit: ConstructorArtifact, error: np.ndarray, options: ErrorAnalysisOptions) -> dict[str, Any] | None:
    if not options.heatmap_features:
        return None
    categorical = set(audit.meta["categorical_features"])
    axes: list[dict[str, Any]] = []
    labels: list[pd.Series] = []
    for f in options.heatmap_features:
        kind = "categorical" if f in categorical else "numeric"
        row_labels, bins, edges = _bins(audit.features[f], kind, options.heatmap_bins)
        axes.append({"feature": f, "kind": kind, "edges": edges, "bins": bins})
        labels.append(row_labels.rename(f))
    table = pd.concat(labels, axis=1).assign(_error=error)
    grouped = table.groupby(list(options.heatmap_features))["_error"].agg(["size", "sum"])
    figures = {key if isinstance(key, tuple) else (key,): row for key, row in grouped.iterrows()}
    total = float(error.sum())
    cells = []
    for key in itertools.product(*[[b["label"] for b in axis["bins"]] for axis in axes]):
        size, err = figures.get(key, (0, 0.0))  # every combination of bins, empty ones too
        cells.append(
            {
                "bins": list(key),
                "count": int(size),
                "error_sum": float(err),
                "error_rate": float(err) / size if size else None,
                "error_share": float(err) / total if total else None,
            }
        )
    return {"axes": axes, "cells": cells}


def _discretized(values: pd.Series, kind: str) -> np.ndarray:
    """Integer codes for mutual information: quantile bins for numbers, codes for categories; NaN its own."""
    if kind == "numeric" and values.nunique() > IMPORTANCE_BINS:
        codes = pd.qcut(values, IMPORTANCE_BINS, labels=False, duplicates="drop")
    else:
        codes = pd.Series(pd.factorize(values)[0], index=values.index).where(values.notna())
    return codes.fillna(-1).astype(int).to_numpy()


def _importance(audit: ConstructorArtifact, features: list[str], error: np.ndarray) -> list[dict[str, Any]]:
    from sklearn.metrics import mutual_info_score

    categorical = set(audit.meta["categorical_features"])
    target = error.astype(int) if audit.is_classifier else _discretized(pd.Series(error), "numeric")
    scores = [
        {
            "feature": f,
            "mutual_information": float(
                mutual_info_score(
                    target, _discretized(audit.features[f], "categorical" if f in categorical else "numeric")
                )
            ),
        }
        for f in features
    ]
    return sorted(scores, key=lambda s: -s["mutual_information"])


def _group_order(values: pd.Series, labels: pd.Series, binning: dict[str, Any] | None) -> list[str]:
    """A sensitive feature's groups in reading order: bins in order, an ordered categorical's
    order, numbers by value ("2" before "10"); missing last."""
    if binning is not None:
        order = list(binning["labels"])
    else:
        order = [str(v) for v in ordered_values(values)]
    present = set(labels.unique())
    rest = sorted(present - set(order) - {MISSING}, key=natural_key)
    return [g for g in order if g in present] + rest + ([MISSING] if MISSING in present else [])


def _named_leaves(leaves: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [
        {
            "name": f"Error tree: {kind} leaf {i + 1} (node {n['id']})",
            "node": n["id"],
            "filter": n["filter"],
            "count": n["count"],
            "error_rate": n["error_rate"],
        }
        for i, n in enumerate(leaves)
    ]


def _cohort_errors(
    audit: ConstructorArtifact, error: np.ndarray, nodes: list[dict[str, Any]], top: int
) -> dict[str, Any]:
    total = float(error.sum())
    overall = _error_stats(error, np.ones(len(error), dtype=bool), total)
    leaves = [n for n in nodes if n["leaf"] and n["count"]]
    by_rate = sorted(leaves, key=lambda n: (-n["error_rate"], -n["count"]))
    # "Worst" only for a leaf worse than all data, "best" only for one better (a leaf as good
    # as all data, like the root of a tree without splits, is neither).
    rate = overall["error_rate"] or 0.0

    def same(x: float) -> bool:
        return math.isclose(x, rate, rel_tol=1e-9, abs_tol=1e-12)

    worse = [n for n in by_rate if n["error_rate"] > rate and not same(n["error_rate"])]
    better = [n for n in by_rate[::-1] if n["error_rate"] < rate and not same(n["error_rate"])]
    groups = audit.sensitive_groups
    return {
        "overall": overall,
        "cohorts": [{"name": name, **_error_stats(error, mask, total)} for name, mask in audit.cohort_masks.items()],
        "sensitive_groups": [
            {"feature": f, "group": g, **_error_stats(error, (labels == g).to_numpy(), total)}
            for f, (labels, binning) in groups.items()
            for g in _group_order(audit.features[f], labels, binning)
        ],
        "worst_leaves": _named_leaves(worse[:top], "worst"),
        "best_leaves": _named_leaves(better[:top], "best"),
    }


def run_error_analysis(
    constructor_dir: str | Path, output_dir: str | Path, *, options: ErrorAnalysisOptions = ErrorAnalysisOptions()
) -> ErrorAnalysisResult:
    """Analyse the model's errors on the whole test set and write the error analysis artifact."""
    started = time.perf_counter()
    audit = load_constructor_artifact(constructor_dir)
    features = list(options.tree_features) or _model_features(audit)
    _check_features(features, audit, "tree_features")
    _check_features(list(options.heatmap_features), audit, "heatmap_features")
    error = _error(audit)
    nodes = _error_tree(audit, _tree_inputs(audit, features), error, options)
    result = {
        "error_metric": "error_rate" if audit.is_classifier else "mean_absolute_error",
        "n_rows": len(error),
        "tree": {"features": features, "nodes": nodes},
        "heatmap": _heatmap(audit, error, options),
        "cohort_errors": _cohort_errors(audit, error, nodes, options.top_leaves),
        "feature_importance": _importance(audit, _model_features(audit), error),
    }
    seconds = time.perf_counter() - started
    with A.artifact_writer(Path(output_dir)) as out:
        A.write_json(out / A.INSIGHT_RESULT_FILE, result)
        A.write_json(
            out / A.META_FILE,
            A.new_meta(KIND, audit.run_id, options=asdict(options), n_rows=len(error), seconds=seconds),
        )
    return ErrorAnalysisResult(audit.run_id, len(error), sum(n["leaf"] for n in nodes), seconds)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rai-audit error_analysis", description=__doc__.splitlines()[0])
    p.add_argument("--constructor", required=True, help="the constructor's insights artifact folder")
    p.add_argument("--output", required=True, help="error analysis artifact folder to create")
    add_options(p, "error_analysis")
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))

    def action() -> None:
        options = options_from_args("error_analysis", args)
        constructor, output = args.pop("constructor"), args.pop("output")
        result = run_error_analysis(constructor, output, options=options)
        print(f"error analysis written to {output} ({result.n_leaves} leaves, {result.seconds:.2f} s)")

    return run_cli(action)


if __name__ == "__main__":
    raise SystemExit(main())
