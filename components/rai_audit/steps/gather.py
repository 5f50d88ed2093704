"""The gather step: check that all insights belong to one run, then build the dashboard bundle.

Adds what needs no model call: the model overview (metrics overall, per cohort and per
sensitive group), the fairness assessment (per group metrics, their differences and ratios, as
fairlearn's ``MetricFrame`` gives them, with ``rai_audit.core.fairness``'s rules: groups under
``min_group_size`` rows flagged and not compared, no ratio of a signed metric) and the data
analysis. Writes ``insights.json``,
Parquet tables, ``dashboard.html`` and a manifest.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from rai_audit.core import ArtifactIntegrityError
from rai_audit.core import artifacts as A
from rai_audit.core.cohorts import ERROR, Y_PRED, Y_TRUE, filter_mask, ordered_values
from rai_audit.core.constructor_artifact import ConstructorArtifact, SensitiveGroups, load_constructor_artifact
from rai_audit.core.fairness import KINDS, describe, group_flag
from rai_audit.core.metrics import (
    COUNTED_ROWS,
    MetricFn,
    compute_metrics,
    confusion,
    confusion_counts,
    counted_rows,
    group_sort_key,
    metric_functions,
    signed_metrics,
    target_can_be_negative,
)
from rai_audit.report.dashboard import render_dashboard
from rai_audit.specs import DEFAULT_DASHBOARD_ROWS
from rai_audit.steps._cli import run_cli

TOP_CATEGORIES = 20
HISTOGRAM_BINS = 10
PAGE_ROWS = 300  # rows with per-row views (local importance, counterfactuals) in the page


@dataclass
class GatherResult:
    run_id: str
    insight_kinds: list[str]
    overall_metrics: dict[str, float]


def _check_insights(run_id: str, insight_dirs: list[Path]) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each insight must be a known kind, from this run, and the only one of its kind."""
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    for folder in insight_dirs:
        meta = A.read_artifact_meta(folder)
        kind = meta.get("kind")
        if kind not in A.INSIGHT_KINDS:
            raise ArtifactIntegrityError(
                f"insight {folder} is of kind {kind!r}; gather takes one of {list(A.INSIGHT_KINDS)}"
            )
        if meta.get("run_id") != run_id:
            raise ArtifactIntegrityError(
                f"insight {folder} ({kind}) comes from constructor run {meta.get('run_id')!r}, "
                f"not from this audit's run {run_id!r}; re-run it on this constructor's output"
            )
        if kind in found:
            raise ArtifactIntegrityError(f"two insights of kind {kind!r}: {found[kind][0]} and {folder}; pass only one")
        found[kind] = (folder, meta)
    return found


def _metric_fns(audit: ConstructorArtifact) -> dict[str, MetricFn]:
    _, _, classes, positive = audit.metric_labels
    return metric_functions(audit.task, classes=classes, positive=positive, with_proba=audit.proba is not None)


def _rows_metrics(
    audit: ConstructorArtifact, fns: dict[str, MetricFn], mask: np.ndarray, *, with_confusion: bool = True
) -> dict[str, Any]:
    """Metrics of some rows (a boolean mask or positions)."""
    proba = audit.proba
    y_true, y_pred, classes, _ = audit.metric_labels
    result: dict[str, Any] = compute_metrics(fns, y_true[mask], y_pred[mask], None if proba is None else proba[mask])
    if audit.is_classifier and with_confusion:
        result["confusion_matrix"] = {
            **confusion(y_true[mask], y_pred[mask], cast(list[Any], classes)),  # a classifier has classes
            "labels": list(audit.meta["classes"]),
        }
    return result


def _model_overview(
    audit: ConstructorArtifact, fns: dict[str, MetricFn], masks: dict[str, np.ndarray], groups: SensitiveGroups
) -> dict[str, Any]:
    everything = np.ones(len(audit.predictions), dtype=bool)
    by_group = []
    for feature, (labels, binning) in groups.items():
        for group in sorted(labels.unique(), key=group_sort_key(binning)):
            by_group.append(
                {"feature": feature, "group": group, **_rows_metrics(audit, fns, (labels == group).to_numpy())}
            )
    return {
        "metric_names": list(fns),
        # Metrics that can be negative: no ratio of them between groups (core.fairness).
        "signed_metrics": signed_metrics(fns, target_signed=target_can_be_negative(audit.task, audit.y_true)),
        "overall": _rows_metrics(audit, fns, everything),
        "cohorts": [{"name": name, **_rows_metrics(audit, fns, mask)} for name, mask in masks.items()],
        "sensitive_groups": by_group,
    }


def _counted_rows(audit: ConstructorArtifact, names: list[str], rows: np.ndarray) -> dict[str, int | None]:
    """Per metric that is a share of rows, the rows it counts on these rows (core.fairness: too
    few make a ratio chance); none where the labels are not all the model's classes."""
    y_true, y_pred, classes, positive = audit.metric_labels
    if not audit.is_classifier or y_true.dtype.kind != "i" or y_pred.dtype.kind != "i":
        return {}
    counts = confusion_counts(y_true[rows], y_pred[rows], len(cast(list[Any], classes)))
    return {m: counted_rows(m, counts, positive) for m in names}


def _figures(
    table: pd.DataFrame,
    counts: np.ndarray,
    min_group_size: int,
    signed: list[str],
    counted: Mapping[str, tuple[Sequence[int | None], str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Between-groups figures of a groups x metrics table (core.fairness), keyed as fairlearn's
    MetricFrame: difference, ratio, group_min, group_max (of the compared groups), plus how
    many groups were compared and why a figure is undefined. ``counted``: per metric that is a
    share of rows, the rows each group's value counts and what they are."""
    out: dict[str, dict[str, Any]] = {k: {} for k in (*KINDS, "group_min", "group_max", "groups_compared", "undefined")}
    for name in table.columns:
        rows_counted, what = (counted or {}).get(name, (None, "rows"))
        for kind in KINDS:
            figure = describe(
                table[name].to_numpy(dtype=float),
                counts,
                min_group_size,
                kind,
                signed=name in signed,
                counted=rows_counted,
                counted_what=what,
            )
            out[kind][name] = figure["value"]
            if figure["reason"]:
                out["undefined"].setdefault(kind, {})[name] = figure["reason"]
        out["group_min"][name], out["group_max"][name] = figure["group_min"], figure["group_max"]
        out["groups_compared"][name] = figure["groups_compared"]
    return out


def _fairness_entry(
    audit: ConstructorArtifact,
    fns: dict[str, MetricFn],
    sensitive: pd.DataFrame,
    binning: dict[str, dict[str, Any]],  # sensitive feature -> its binning (numeric features)
    known: dict[tuple[Any, ...], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per group metrics and their differences and ratios, as fairlearn's MetricFrame gives
    them on the groups of at least ``min_group_size`` rows (the tests check against it).
    Computed with one groupby: MetricFrame 0.15 stacks its inputs element by element, ~9 s per
    metric on 1,000,000 rows. ``known``: group key -> metrics already computed (the model
    overview's sensitive groups)."""
    names = list(fns)
    size = audit.min_group_size
    signed = signed_metrics(names, target_signed=target_can_be_negative(audit.task, audit.y_true))
    found = sensitive.groupby(list(sensitive.columns), sort=False, observed=True).indices
    keys = {c: group_sort_key(binning.get(c)) for c in sensitive.columns}
    as_tuple = lambda key: key if isinstance(key, tuple) else (key,)  # noqa: E731
    positions = {
        k: found[k]
        for k in sorted(found, key=lambda k: tuple(keys[c](v) for c, v in zip(sensitive.columns, as_tuple(k))))
    }  # groups in reading order
    groups = []
    for key, rows in positions.items():
        key = as_tuple(key)
        values = (known or {}).get(key) or _rows_metrics(audit, fns, rows, with_confusion=False)
        groups.append(
            {
                "group": dict(zip(sensitive.columns, key)),
                "label": ", ".join(f"{c}={v}" for c, v in zip(sensitive.columns, key)),
                "count": int(len(rows)),
                "too_few_rows": bool(len(rows) < size),
                "flag": group_flag(len(rows), size),
                **{m: values[m] for m in names},
            }
        )
    counts = np.array([g["count"] for g in groups])
    table = pd.DataFrame([{m: g[m] for m in names} for g in groups], columns=names, dtype=float)
    # The parity figures' rates are these three shares too.
    parity = {"selection": "selection_rate", "tpr": "recall_score", "fpr": "false_positive_rate"}
    per_group = [_counted_rows(audit, [*names, *parity.values()], rows) for rows in positions.values()]

    def counted_of(metric: str) -> tuple[list[int | None], str]:
        return [c.get(metric) for c in per_group], COUNTED_ROWS[metric]

    counted = {m: counted_of(m) for m in names if m in COUNTED_ROWS}
    entry: dict[str, Any] = {
        "features": list(sensitive.columns),
        "binning": binning,
        "min_group_size": size,
        "by_group": groups,
        **_figures(table, counts, size, signed, counted),
    }
    if audit.task == "binary_classification":
        positive = audit.meta["positive_label"]
        truth, chosen = (audit.y_true == positive).to_numpy(), (audit.y_pred == positive).to_numpy()
        rates = pd.DataFrame(
            [
                {
                    "selection": chosen[rows].mean(),
                    "tpr": chosen[rows][truth[rows]].mean() if truth[rows].any() else np.nan,
                    "fpr": chosen[rows][~truth[rows]].mean() if (~truth[rows]).any() else np.nan,
                }
                for rows in positions.values()
            ]
        )
        spread = _figures(rates, counts, size, [], {rate: counted_of(metric) for rate, metric in parity.items()})
        entry["demographic_parity_difference"] = spread["difference"]["selection"]
        entry["demographic_parity_ratio"] = spread["ratio"]["selection"]
        # Equalized odds asks both rates to be equal: undefined when either cannot be compared.
        both = [spread[k][r] for k in KINDS for r in ("tpr", "fpr")]
        entry["equalized_odds_difference"] = None if None in both[:2] else max(both[:2])
        entry["equalized_odds_ratio"] = None if None in both[2:] else min(both[2:])
    return entry


def _fairness(
    audit: ConstructorArtifact, fns: dict[str, MetricFn], groups: SensitiveGroups, overview: dict[str, Any]
) -> list[dict[str, Any]]:
    if not groups:
        return []
    entries = [
        _fairness_entry(
            audit,
            fns,
            labels.to_frame(feature),
            {feature: binning} if binning else {},
            known={(g["group"],): g for g in overview["sensitive_groups"] if g["feature"] == feature},
        )
        for feature, (labels, binning) in groups.items()
    ]
    if len(groups) > 1:  # the intersection of all sensitive features
        table = pd.DataFrame({f: labels for f, (labels, _) in groups.items()})
        entries.append(_fairness_entry(audit, fns, table, {f: b for f, (_, b) in groups.items() if b}))
    return entries


def _small_group_warnings(fairness: list[dict[str, Any]]) -> list[str]:
    """One warning per sensitive feature (not the intersection) with groups too small to compare."""
    out = []
    for entry in fairness:
        small = [g for g in entry["by_group"] if g["too_few_rows"]]
        if small and len(entry["features"]) == 1:
            out.append(
                f"sensitive feature {entry['features'][0]!r}: {len(small)} group(s) with fewer than "
                f"{entry['min_group_size']} test rows, shown but left out of fairness differences and "
                "ratios: " + ", ".join(f"{g['group'][entry['features'][0]]} ({g['count']} rows)" for g in small)
            )
    return out


def _feature_summary(name: str, values: pd.Series, kind: str) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "feature": name,
        "kind": kind,
        "count": int(values.notna().sum()),
        "missing": int(values.isna().sum()),
    }
    present = values.dropna()
    if kind == "numeric" and len(present):
        counts, edges = np.histogram(present.astype(float), bins=HISTOGRAM_BINS)
        summary.update(
            mean=present.mean(),
            std=present.std(),
            min=present.min(),
            max=present.max(),
            quantiles={str(q): present.quantile(q) for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
            histogram={"edges": edges.tolist(), "counts": counts.tolist()},
        )
    elif kind == "categorical":
        frequencies = present.astype(str).value_counts()
        top = frequencies.head(TOP_CATEGORIES)
        summary.update(
            n_unique=int(len(frequencies)),
            top_values=[{"value": value, "count": int(count)} for value, count in top.items()],
        )
        if len(frequencies) > TOP_CATEGORIES:
            summary["other_count"] = int(frequencies.iloc[TOP_CATEGORIES:].sum())
    return summary


def _balance(audit: ConstructorArtifact, mask: np.ndarray) -> dict[str, Any]:
    """Label and prediction balance of some rows."""
    yt, yp = audit.y_true[mask], audit.y_pred[mask]
    if audit.is_classifier:
        classes = audit.meta["classes"]
        return {
            "count": int(mask.sum()),
            "y_true": {str(c): int((yt == c).sum()) for c in classes},
            "y_pred": {str(c): int((yp == c).sum()) for c in classes},
        }
    return {
        "count": int(mask.sum()),
        "y_true": {"mean": yt.mean(), "std": yt.std()},
        "y_pred": {"mean": yp.mean(), "std": yp.std()},
    }


def _data_analysis(audit: ConstructorArtifact, masks: dict[str, np.ndarray], groups: SensitiveGroups) -> dict[str, Any]:
    categorical = set(audit.meta["categorical_features"])
    return {
        "features": [
            _feature_summary(f, audit.features[f], "categorical" if f in categorical else "numeric")
            for f in audit.meta["features"]
        ],
        "balance": {
            "overall": _balance(audit, np.ones(len(audit.predictions), dtype=bool)),
            "cohorts": {name: _balance(audit, mask) for name, mask in masks.items()},
            "sensitive_groups": {
                feature: {
                    g: _balance(audit, (labels == g).to_numpy())
                    for g in sorted(labels.unique(), key=group_sort_key(binning))
                }
                for feature, (labels, binning) in groups.items()
            },
        },
    }


def _distribution(values: pd.Series, summary: dict[str, Any]) -> dict[str, Any]:
    """Counts of some rows in the overall summary's bins (histogram edges, or top values + other)."""
    present = values.dropna()
    if "histogram" in summary:
        edges = summary["histogram"]["edges"]
        in_bins, _ = np.histogram(present.astype(float), bins=edges)
        labels = [f"{lo:.4g} to {hi:.4g}" for lo, hi in zip(edges[:-1], edges[1:])]
        return {"bins": labels, "counts": in_bins.tolist(), "missing": int(values.isna().sum())}
    top = [t["value"] for t in summary.get("top_values", [])]
    counted = present.astype(str).value_counts()  # one pass, not one comparison per top value
    counts = [int(counted.get(v, 0)) for v in top]
    if "other_count" in summary:
        top, counts = [*top, "(other)"], [*counts, int(counted[~counted.index.isin(top)].sum())]
    return {"bins": top, "counts": counts, "missing": int(values.isna().sum())}


def _cohort_views(
    audit: ConstructorArtifact,
    fns: dict[str, MetricFn],
    masks: dict[str, np.ndarray],
    groups: SensitiveGroups,
    data_analysis: dict[str, Any],
    insights: dict[str, Any],
) -> list[dict[str, Any]]:
    """Everything the dashboard shows for each cohort it can switch to: all data, the user's
    cohorts, each sensitive group and the error tree's saved leaves. The model overview and
    the data analysis already hold the metrics and balance of all but the leaves."""
    overview, balance = insights["model_overview"], data_analysis["balance"]

    def without(entry: dict[str, Any], *keys: str) -> dict[str, Any]:
        return {k: v for k, v in entry.items() if k not in keys}

    # (kind, name, filter, rows, metrics, balance); None: computed here
    choices: list[tuple[Any, ...]] = [
        ("all", "All data", None, np.ones(len(audit.predictions), bool), overview["overall"], balance["overall"])
    ]
    choices += [
        (
            "cohort",
            c["name"],
            next(u["filter"] for u in audit.cohorts if u["name"] == c["name"]),
            masks[c["name"]],
            without(c, "name"),
            balance["cohorts"][c["name"]],
        )
        for c in overview["cohorts"]
    ]
    choices += [
        (
            "group",
            f"{g['feature']} = {g['group']}",
            None,
            (groups[g["feature"]][0] == g["group"]).to_numpy(),
            without(g, "feature", "group"),
            balance["sensitive_groups"][g["feature"]][g["group"]],
        )
        for g in overview["sensitive_groups"]
    ]
    leaves = (insights.get("error_analysis") or {}).get("cohort_errors", {})
    choices += [
        ("error_leaf", leaf["name"], leaf["filter"], filter_mask(leaf["filter"], audit.cohort_frame), None, None)
        for kind in ("worst_leaves", "best_leaves")
        for leaf in leaves.get(kind, [])
    ]
    summaries = {f["feature"]: f for f in data_analysis["features"]}
    views = []
    for i, (kind, name, cohort_filter, mask, metrics, rows_balance) in enumerate(choices):
        view = {
            "id": i,
            "kind": kind,
            "name": name,
            "filter": cohort_filter,
            "count": int(mask.sum()),
            "metrics": metrics if metrics is not None else _rows_metrics(audit, fns, mask),
            "balance": rows_balance if rows_balance is not None else _balance(audit, mask),
            "distributions": {f: _distribution(audit.features[f][mask], summaries[f]) for f in summaries},
        }
        if not audit.is_classifier and mask.any():
            residuals = (audit.y_pred[mask] - audit.y_true[mask]).astype(float)
            counts, edges = np.histogram(residuals, bins=HISTOGRAM_BINS)
            view["residuals"] = {"edges": edges.tolist(), "counts": counts.tolist()}
        views.append(view)
    return views


def _local_importance(
    audit: ConstructorArtifact, insights: dict[str, tuple[Path, dict[str, Any]]]
) -> pd.DataFrame | None:
    """The explained rows' local importances for one class: the positive class (binary), the
    output (regression) or each row's predicted class (multiclass)."""
    if "explanation" not in insights:
        return None
    local = A.read_parquet(insights["explanation"][0] / "local_importance.parquet")
    classes = local["class"].astype(str)
    if audit.task == "multiclass_classification":
        predicted = audit.y_pred.astype(str).to_numpy()[local[A.ROW_ID].to_numpy()]
        return local[classes.to_numpy() == predicted]
    wanted = "output" if audit.task == "regression" else str(audit.meta["positive_label"])
    return local[classes == wanted]


def _page_row_ids(audit: ConstructorArtifact) -> np.ndarray:
    """The test rows dashboard.html carries (``dashboard_rows``, sorted): all of them when there
    are no more, else the constructor's sample (the rows every per-row step covers) topped up
    with a seeded uniform draw of the others."""
    n_test = len(audit.predictions)
    wanted = min(int(audit.meta.get("dashboard_rows", DEFAULT_DASHBOARD_ROWS)), n_test)
    if wanted == n_test:
        return np.arange(n_test)
    in_sample = audit.predictions[A.IN_SAMPLE].to_numpy(dtype=bool)
    chosen = np.flatnonzero(in_sample)[:wanted]
    others = np.flatnonzero(~in_sample)
    rng = np.random.default_rng(audit.meta["sample"]["seed"])
    extra = rng.choice(others, size=wanted - len(chosen), replace=False)
    return np.sort(np.concatenate([chosen, extra]))


def _nullable(values: pd.Series) -> list[Any]:
    """Values for JSON with every kind of missing value (NaN, NA, NaT) as null."""
    return [None if pd.isna(v) else v for v in values.astype(object)]


def _page_feature(name: str, values: pd.Series, categorical: bool) -> dict[str, Any]:
    if pd.api.types.is_datetime64_any_dtype(values):
        return {"name": name, "kind": "datetime", "values": _nullable(values.dt.strftime("%Y-%m-%dT%H:%M:%S"))}
    if not categorical and pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return {"name": name, "kind": "numeric", "values": _nullable(values.astype("Float64"))}
    categories = ordered_values(values)
    codes = pd.Series(pd.Categorical(values, categories=categories).codes, index=values.index)
    return {
        "name": name,
        "kind": "categorical",
        "categories": categories,
        "codes": [None if c < 0 else int(c) for c in codes],
    }


def _page_table(
    audit: ConstructorArtifact, insights: dict[str, tuple[Path, dict[str, Any]]], local: pd.DataFrame | None
) -> dict[str, Any]:
    """A seeded sample of the test rows, columnar (DATA.table in the page): what the page's own
    views (cohorts built in the page, data explorer, threshold, dependence plots) compute on."""
    rows = _page_row_ids(audit)
    meta = audit.meta
    categorical = set(meta["categorical_features"])
    frame = audit.cohort_frame.iloc[rows]
    table: dict[str, Any] = {
        "n": len(rows),
        "of": len(audit.predictions),
        "seed": meta["sample"]["seed"],
        "requested": meta.get("dashboard_rows", DEFAULT_DASHBOARD_ROWS),
        "sampled": len(rows) < len(audit.predictions),
        "row_id": rows.tolist(),
        "y_true": _nullable(frame[Y_TRUE]),
        "y_pred": _nullable(frame[Y_PRED]),
        "error": frame[ERROR].astype(float).tolist(),
        "probability": None,
        "features": [_page_feature(f, frame[f], f in categorical) for f in meta["features"]],
        "local_importance": None,
        "causal_effects": None,
    }
    if audit.task == "binary_classification" and audit.proba is not None:
        positive = meta["classes"].index(meta["positive_label"])
        table["probability"] = audit.proba[rows, positive].tolist()
    if local is not None:
        by_row = local.set_index(A.ROW_ID).reindex(rows)
        label = "output" if audit.task == "regression" else meta["positive_label"]
        table["local_importance"] = {
            "label": label if audit.task != "multiclass_classification" else "the predicted class",
            "features": {f: _nullable(by_row[f]) for f in meta["model_features"]},
        }
    if "causal" in insights:
        effects = A.read_parquet(insights["causal"][0] / "local_effects.parquet")
        name = (
            effects["treatment"]
            .astype(str)
            .where(
                effects["level"].isna(), effects["treatment"].astype(str) + " (" + effects["level"].astype(str) + ")"
            )
        )
        wide = effects.assign(name=name).pivot_table(index=A.ROW_ID, columns="name", values="point", aggfunc="first")
        wide = wide.reindex(rows)
        table["causal_effects"] = {str(c): _nullable(wide[c]) for c in wide.columns} or None
    return table


def _row_samples(
    audit: ConstructorArtifact, insights: dict[str, tuple[Path, dict[str, Any]]], local: pd.DataFrame | None
) -> list[dict[str, Any]]:
    """Per-row views for a bounded sample (local importance, counterfactuals): at most
    ``PAGE_ROWS`` rows that have either, the constructor's sample first, with their
    features and predictions."""
    cfs = None
    if "counterfactual" in insights:
        cfs = A.read_parquet(insights["counterfactual"][0] / "counterfactuals.parquet")
    available = (set(local[A.ROW_ID]) if local is not None else set()) | (
        set(cfs[A.ROW_ID]) if cfs is not None else set()
    )
    in_sample = set(audit.predictions[A.ROW_ID][audit.predictions[A.IN_SAMPLE]])
    # The constructor's sample first: its rows have every per-row view.
    row_ids = sorted(available, key=lambda r: (r not in in_sample, r))[:PAGE_ROWS]
    features, model_features = audit.meta["features"], audit.meta["model_features"]
    # Whole columns, then per row (pandas per row and feature cost seconds on wide data).
    values = {f: audit.features[f].iloc[row_ids].tolist() for f in features}
    y_true, y_pred = audit.y_true.iloc[row_ids].tolist(), audit.y_pred.iloc[row_ids].tolist()
    local_by_row: dict[int, dict[str, float]] = {}
    if local is not None:
        first = local[local[A.ROW_ID].isin(row_ids)].drop_duplicates(A.ROW_ID)  # the first class's row
        local_by_row = dict(zip(first[A.ROW_ID].tolist(), first[model_features].astype(float).to_dict("records")))
    cfs_by_row: dict[int, list[dict[str, Any]]] = {}
    if cfs is not None:
        # The counterfactual step's comparison: missing equals missing (a nullable column's
        # NA has no truth value), numbers within tolerance; one that changes nothing is none.
        from rai_audit.steps.counterfactual import changed_mask

        mine = cfs[cfs[A.ROW_ID].isin(row_ids)].reset_index(drop=True)
        query = audit.features[model_features].iloc[mine[A.ROW_ID].to_numpy()].reset_index(drop=True)
        change = changed_mask(
            mine[model_features], query, set(model_features) - set(audit.meta["categorical_features"])
        ).to_numpy()
        position = {r: k for k, r in enumerate(row_ids)}
        for cf, changed in zip(mine.to_dict("records"), change):
            if changed.any():
                k = position[cf[A.ROW_ID]]
                cfs_by_row.setdefault(int(cf[A.ROW_ID]), []).append(
                    {
                        "prediction": cf["prediction"],
                        "changes": [
                            {"feature": f, "from": values[f][k], "to": cf[f]}
                            for f, moved in zip(model_features, changed)
                            if moved
                        ],
                    }
                )
    rows = []
    for k, row_id in enumerate(row_ids):
        row: dict[str, Any] = {
            "row_id": int(row_id),
            "y_true": y_true[k],
            "y_pred": y_pred[k],
            "features": {f: values[f][k] for f in features},
        }
        if row_id in local_by_row:
            row["local_importance"] = local_by_row[row_id]
        if cfs is not None:
            row["counterfactuals"] = cfs_by_row.get(int(row_id), [])
        rows.append(row)
    return rows


def _metrics_table(overview: dict[str, Any]) -> pd.DataFrame:
    rows = []
    scopes = (
        [("overall", None, "all rows", overview["overall"])]
        + [("cohort", None, c["name"], c) for c in overview["cohorts"]]
        + [("sensitive_group", g["feature"], g["group"], g) for g in overview["sensitive_groups"]]
    )
    for scope, feature, group, values in scopes:
        for metric in overview["metric_names"]:
            rows.append(
                {
                    "scope": scope,
                    "feature": feature,
                    "group": group,
                    "metric": metric,
                    "value": values[metric],
                    "count": values["count"],
                }
            )
    return pd.DataFrame(rows)


def _fairness_table(fairness: list[dict[str, Any]], metric_names: list[str]) -> pd.DataFrame:
    columns = ["features", "metric", "difference", "ratio", "group_min", "group_max", "groups_compared"]
    rows = [
        {"features": " & ".join(e["features"]), "metric": m, **{k: e[k][m] for k in columns[2:]}}
        for e in fairness
        for m in metric_names
    ]
    return pd.DataFrame(rows, columns=columns).astype({k: float for k in columns[2:6]})


def pipeline_run_info(**fields: str | None) -> dict[str, str] | None:
    """The pipeline run (id, name, created_at, scheduled_at) to stamp into the bundle.

    Values the orchestrator left unresolved (kfp.local keeps ``{{$.pipeline_job_...}}``
    placeholders it does not know) or empty are left out; None when nothing is known.
    """
    known = {k: str(v) for k, v in fields.items() if v and not str(v).startswith("{{")}
    return known or None


def run_gather(
    constructor_dir: str | Path,
    insight_dirs: list[str | Path],
    output_dir: str | Path,
    *,
    pipeline_run: dict[str, str] | None = None,
) -> GatherResult:
    """Check the insights against the constructor's run and write the dashboard bundle.

    ``pipeline_run`` (see ``pipeline_run_info``) says which pipeline run, e.g. which
    scheduled run, made it; the page and the scorecard show it.
    """
    constructor_dir = Path(constructor_dir)
    audit = load_constructor_artifact(constructor_dir)
    run_id = audit.run_id
    insights = _check_insights(run_id, [Path(d) for d in insight_dirs])

    fns = _metric_fns(audit)
    masks, groups = audit.cohort_masks, audit.sensitive_groups
    overview = _model_overview(audit, fns, masks, groups)
    fairness = _fairness(audit, fns, groups, overview)
    data_analysis = _data_analysis(audit, masks, groups)
    empty = [name for name, mask in masks.items() if not mask.any()]
    warnings = [f"cohort {name!r} selects no test rows; its metrics are undefined" for name in empty]
    warnings += _small_group_warnings(fairness)

    meta = audit.meta
    document = A.new_meta(
        A.KIND_DASHBOARD,
        run_id,
        model={"class": meta["model"]["class"], "sha256": meta["model"]["sha256"]},
        task_type=meta["task_type"],
        target_column=meta["target_column"],
        classes=meta["classes"],
        positive_label=meta["positive_label"],
        desired_outcome=audit.desired_outcome,
        min_group_size=audit.min_group_size,
        data={
            "n_train": meta["n_train"],
            "n_test": meta["n_test"],
            "features": meta["features"],
            "categorical_features": meta["categorical_features"],
            "sensitive_features": meta["sensitive_features"],
            "sample": meta["sample"],
        },
        pipeline_run=pipeline_run,
        cohorts=[
            {"name": c["name"], "filter": c["filter"], "count": int(masks[c["name"]].sum())} for c in audit.cohorts
        ],
        model_overview=overview,
        fairness=fairness,
        data_analysis=data_analysis,
        insights={
            kind: {"path": f"{A.INSIGHT_COPIES_DIR}/{kind}", "created_at": m.get("created_at")}
            for kind, (_, m) in insights.items()
        },
        **{kind: A.read_json(folder / A.INSIGHT_RESULT_FILE) for kind, (folder, _) in insights.items()},
        warnings=warnings,
    )
    document["cohort_views"] = _cohort_views(audit, fns, masks, groups, data_analysis, document)
    local = _local_importance(audit, insights)  # read once: the row sample and the page table both use it
    row_samples = _row_samples(audit, insights, local)
    page_table = _page_table(audit, insights, local)

    with A.artifact_writer(Path(output_dir)) as out:
        A.write_json(out / A.INSIGHTS_JSON_FILE, document)
        A.write_json(out / A.META_FILE, A.new_meta(A.KIND_DASHBOARD, run_id, insight_kinds=sorted(insights)))
        tables = out / A.TABLES_DIR
        tables.mkdir()
        A.write_parquet(_metrics_table(overview), tables / "metrics.parquet")
        A.write_parquet(_fairness_table(fairness, overview["metric_names"]), tables / "fairness.parquet")
        predictions = pd.concat(
            [
                audit.features,
                audit.cohort_frame.drop(columns=audit.features.columns),
                audit.predictions.drop(columns=[A.Y_TRUE, A.Y_PRED]),
            ],
            axis=1,
        )
        A.write_parquet(predictions, tables / "predictions.parquet")
        # A copy of the constructor's meta and each insight, so the bundle stands on its own.
        (out / A.CONSTRUCTOR_COPY_DIR).mkdir()
        shutil.copy2(constructor_dir / A.META_FILE, out / A.CONSTRUCTOR_COPY_DIR / A.META_FILE)
        # The model too, for `rai-audit dashboard` (rai_audit.live): what-if predictions. And the
        # train data when an explanation or counterfactuals were made: the live explainer and
        # search draw their background, surrogate rows, value ranges and scales from it as the
        # steps did (a summary of it could not rebuild the mimic or dice-ml's data).
        shutil.copytree(constructor_dir / A.MODEL_DIR, out / A.CONSTRUCTOR_COPY_DIR / A.MODEL_DIR)
        if {"explanation", "counterfactual"} & set(insights):
            shutil.copy2(constructor_dir / A.TRAIN_FILE, out / A.CONSTRUCTOR_COPY_DIR / A.TRAIN_FILE)
        for kind, (folder, _) in insights.items():
            shutil.copytree(folder, out / A.INSIGHT_COPIES_DIR / kind)
        (out / A.DASHBOARD_HTML_FILE).write_text(
            render_dashboard(A.to_jsonable(document), A.to_jsonable(row_samples), table=A.to_jsonable(page_table)),
            encoding="utf-8",
        )
    return GatherResult(
        run_id, sorted(insights), {k: v for k, v in overview["overall"].items() if k != "confusion_matrix"}
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rai-audit gather", description=__doc__.splitlines()[0])
    p.add_argument("--constructor", required=True, help="the constructor's insights artifact folder")
    p.add_argument("--insight", action="append", default=[], help="an insight artifact folder (repeatable)")
    p.add_argument("--output", required=True, help="dashboard bundle folder to create")
    for field in ("id", "name", "created_at", "scheduled_at"):
        p.add_argument(
            f"--pipeline-run-{field.replace('_', '-')}",
            default=None,
            help=f"the pipeline run's {field.replace('_', ' ')}, shown on the page and scorecard",
        )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def action() -> None:
        run_gather(
            args.constructor,
            args.insight,
            args.output,
            pipeline_run=pipeline_run_info(
                id=args.pipeline_run_id,
                name=args.pipeline_run_name,
                created_at=args.pipeline_run_created_at,
                scheduled_at=args.pipeline_run_scheduled_at,
            ),
        )
        print(f"dashboard bundle written to {args.output}")

    return run_cli(action)


if __name__ == "__main__":
    raise SystemExit(main())
