"""Everything an audit config names, checked before the first step runs.

``rai-audit run`` used to find an unknown scorecard metric, target cohort or feature only
when the step that needs it ran, minutes into the audit. ``check_audit`` checks them all at
once, in seconds, from what the config says and the data's column names and types alone
(a Parquet file's schema; a CSV file's header and first rows): the target column; the
sensitive, dropped, categorical and immutable features; names reserved by the bundle
(internal columns such as ``proba_1``, built-in view names such as ``All data``); the
cohort filters; each analysis step's feature names; a causal treatment that is also
immutable; and the scorecard's metrics (those of the task), cohorts, features and ratio
targets. Every problem found is reported in one line; nothing is written.

Data given as ``s3://`` URIs is downloaded later (``rai_audit.storage.local_inputs``), so
its columns are checked by the constructor; the rest is checked here all the same.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rai_audit.core import RAIInputError
from rai_audit.core.cohorts import SPECIAL_COLUMNS, cohort_frame, validate_cohorts
from rai_audit.core.loading import table_file
from rai_audit.core.metrics import metric_functions, signed_metrics, target_can_be_negative
from rai_audit.core.scorecard_config import check_against_bundle, parse_scorecard_config
from rai_audit.steps.constructor import ERROR_LEAF_PREFIX, ConstructorOptions, _check_columns, check_cohort_names
from rai_audit.steps.counterfactual import plan_features, settings_on_held_fixed

# CSV rows read to learn the columns' types (a Parquet file's schema holds them).
CSV_SAMPLE_ROWS = 1000
# Most names a message lists before it shortens the list.
LISTED_NAMES = 20
DATA_KEYS = ("train_data", "test_data")


@dataclass
class Table:
    """What the checks know of a data file: its columns, typed, with no or a few rows."""

    path: Path
    frame: pd.DataFrame
    typed: set[str]  # columns whose type is known (a CSV column empty in the sample is not)
    target_values: pd.Series | None = None  # the target column's values where cheap to read


def read_table_columns(path: str | Path, what: str, target: str | None = None) -> Table:
    """The columns of a Parquet or CSV file without reading its rows (CSV: its first rows)."""
    path = table_file(path, what)
    is_csv = path.suffix.lower() == ".csv"
    try:
        if is_csv:
            frame = pd.read_csv(path, nrows=CSV_SAMPLE_ROWS)
            # pandas renames a repeated header (`age`, `age.1`): read the header as written.
            header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
            repeated = sorted({name for name in header[header.duplicated()] if name})
            if repeated:
                raise RAIInputError(
                    f"{what} file {path} has duplicate column names {repeated}; give each column its own name"
                )
            typed = {c for c in frame.columns if frame[c].notna().any()}
            values = frame[target] if target in frame.columns else None
            return Table(path, frame, typed, values)
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        frame = schema.empty_table().to_pandas()  # the pandas types, the index left out
        values = None
        if target is not None and list(frame.columns).count(target) == 1:
            values = pq.read_table(path, columns=[target]).column(0).to_pandas()
        return Table(path, frame, set(frame.columns), values)
    except RAIInputError:
        raise
    except Exception as err:  # pandas/pyarrow raise many types for unreadable files
        raise RAIInputError(f"{what} file {path} could not be read as {'CSV' if is_csv else 'Parquet'}: {err}") from err


def _listed(names: list[Any]) -> str:
    names = list(names)
    if len(names) <= LISTED_NAMES:
        return repr(names)
    return f"[{', '.join(map(repr, names[:LISTED_NAMES]))}, ...] ({len(names)} in all)"


def _unknown(key: str, names: list[Any], known: list[str], what: str) -> None:
    """Refuse the names of config ``key`` that are not among ``known``."""
    unknown = [n for n in names if n not in known]
    if not unknown:
        return
    close = [m for n in unknown if isinstance(n, str) for m in difflib.get_close_matches(n, known, n=1)]
    hint = f" (did you mean {close}?)" if close else ""
    raise RAIInputError(f"config `{key}` names {unknown}, not among {what}{hint}; {what} are {_listed(known)}")


def _leaf_columns(node: dict[str, Any]) -> list[Any]:
    if "and" in node or "or" in node:
        return [c for child in node.get("and", node.get("or")) for c in _leaf_columns(child)]
    return [node["column"]]


class _AnyName(list):
    """Stands for the features when the data is not read yet: every name is taken as known."""

    def __contains__(self, name: object) -> bool:
        return True


class _Problems:
    """The problems found, each a RAIInputError's message; reported together at the end."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except RAIInputError as err:
            self.found.append(str(err))

    def raise_if_any(self) -> None:
        if len(self.found) == 1:
            raise RAIInputError(self.found[0])
        if self.found:
            raise RAIInputError(
                f"the audit config has {len(self.found)} problems: "
                + " ".join(f"({i}) {p}" for i, p in enumerate(self.found, start=1))
            )


def metric_names(task: str) -> list[str]:
    """The metrics the scorecard knows for a task (``classification``: binary's, the most)."""
    task = "binary_classification" if task == "classification" else task
    return list(metric_functions(task, with_proba=True))


def check_audit(args: dict[str, Any], build: dict[str, Any], *, read_data: bool) -> list[str]:
    """Check the pipeline arguments of an audit config (``config.resolve_config``) before any
    step runs; with ``read_data``, against the data's columns too. Raises one RAIInputError
    listing every problem; returns notes on what could not be checked (data in object storage).
    """
    problems, notes = _Problems(), []
    steps = build.get("steps", [])
    target = args["target_column"]
    cohorts = args.get("cohorts") or []
    sensitive = args.get("sensitive_features") or []
    problems.check(lambda: check_cohort_names(cohorts, sensitive))
    _check_steps_without_data(args, steps, cohorts, problems)

    local = [k for k in DATA_KEYS if "://" not in str(args[f"{k}_uri"])] if read_data else []
    if read_data and len(local) < len(DATA_KEYS):
        remote = [k for k in DATA_KEYS if k not in local]
        notes.append(
            f"{' and '.join(remote)} {'are' if len(remote) > 1 else 'is'} read from object storage "
            "after the download: the constructor checks the columns then"
        )
    tables: dict[str, Table] = {}
    for key in local:
        problems.check(
            lambda key=key: tables.__setitem__(
                key, read_table_columns(args[f"{key}_uri"], key.replace("_", " "), target)
            )
        )
    if local and len(tables) == len(local):
        _check_with_data(args, steps, tables, problems)
    else:  # the features are not known: every name is taken as one
        problems.check(lambda: _check_scorecard(args, steps, _AnyName(), None))
    problems.raise_if_any()
    return notes


def _check_steps_without_data(
    args: dict[str, Any], steps: list[str], cohorts: list[dict[str, Any]], problems: _Problems
) -> None:
    """What the config alone decides: options that contradict each other or the task."""
    task, target = args["task_type"], args["target_column"]
    immutable = args.get("immutable_features") or []
    cohort_names = [c.get("name") for c in cohorts]
    if "causal" in steps:
        treatments = args.get("causal_treatment_features") or []
        both = [t for t in treatments if t in immutable]
        if both:
            problems.found.append(
                f"config `causal.treatment_features` names {both}, which `immutable_features` lists: a feature "
                "that cannot change is no treatment; remove it from one of the two"
            )
        if target in treatments:
            problems.found.append(
                f"config `causal.treatment_features` names the target column {target!r}: the "
                "outcome cannot be its own treatment"
            )
        if task == "multiclass_classification":
            problems.found.append(
                "config `causal`: causal analysis supports regression and binary classification "
                "(econml's CausalAnalysis estimates one outcome); this audit is multiclass"
            )
    if "counterfactual" in steps:
        desired_range = args.get("counterfactual_desired_range") or []
        desired_class = args.get("counterfactual_desired_class", "opposite")
        if task == "regression" and not desired_range:
            problems.found.append("config `counterfactual`: regression needs `desired_range: [low, high]`")
        elif task != "regression" and desired_range:
            problems.found.append(
                f"config `counterfactual.desired_range` {desired_range} applies to regression; "
                "use `desired_class` for classification"
            )
        elif task == "multiclass_classification" and desired_class in ("opposite", "better"):
            problems.found.append(
                f"config `counterfactual.desired_class` {desired_class!r} needs binary "
                "classification; name one of the classes"
            )
        rows = args.get("counterfactual_rows", "sample")
        if rows not in ("sample", "all") and rows not in cohort_names:
            problems.found.append(
                f"config `counterfactual.rows` is {rows!r}: it must be 'sample', 'all' or the "
                f"name of a cohort of the config {cohort_names}"
            )


def _check_with_data(args: dict[str, Any], steps: list[str], tables: dict[str, Table], problems: _Problems) -> None:
    task, target = args["task_type"], args["target_column"]
    test = tables.get("test_data") or tables["train_data"]
    train = tables.get("train_data", test)
    categorical = args.get("categorical_features") or None  # empty: inferred from the types
    features: list[str] = []

    def columns() -> None:  # the constructor's own checks (cohort names are checked above)
        options = ConstructorOptions(
            target_column=target,
            task_type=task,
            categorical_features=categorical,
            sensitive_features=args.get("sensitive_features") or [],
            dropped_features=args.get("dropped_features") or [],
            immutable_features=args.get("immutable_features") or [],
        )
        features.extend(_check_columns(train.frame, test.frame, options))

    problems.check(columns)
    if not features:  # no target, or columns that differ: the names below cannot be checked
        return
    # What cohort filters select on, typed as the constructor's (no rows: the types are what
    # the checks need; a CSV's first rows could mislead the check of a value's type).
    is_classifier = task != "regression"
    empty = test.frame.iloc[:0]
    y_pred = empty[target] if is_classifier else pd.Series([], dtype=float)
    frame = cohort_frame(
        empty[features], empty[target] if is_classifier else y_pred, y_pred, is_classifier=is_classifier
    )
    for cohort in args.get("cohorts") or []:
        used = _leaf_columns(cohort["filter"])
        if all(c in test.typed or c in SPECIAL_COLUMNS or c not in frame.columns for c in used):
            problems.check(lambda cohort=cohort: validate_cohorts([cohort], frame))
            continue
        # A CSV column empty in its first rows: its type is unknown, only the names are checked.
        unknown = [c for c in used if c not in frame.columns]
        if unknown:
            problems.found.append(
                f"cohort {cohort['name']!r}: column {unknown[0]!r} is not a feature nor one of {list(SPECIAL_COLUMNS)}"
            )

    dropped = set(args.get("dropped_features") or [])
    model_features = [f for f in features if f not in dropped]
    numeric = (
        [f for f in features if f not in categorical]
        if categorical
        else [
            f
            for f in features
            if pd.api.types.is_numeric_dtype(test.frame[f]) and not pd.api.types.is_bool_dtype(test.frame[f])
        ]
    )
    named: list[tuple[str, list[Any], list[str], str]] = []
    if "error_analysis" in steps:
        named += [
            (f"error_analysis.{k}", args.get(f"error_analysis_{k}") or [], features, "the features")
            for k in ("tree_features", "heatmap_features")
        ]
    if "counterfactual" in steps:
        named += [
            (f"counterfactual.{k}", list(args.get(f"counterfactual_{k}") or []), model_features, "the model's features")
            for k in ("features_to_vary", "permitted_range", "increase_only", "decrease_only")
        ]
    if "causal" in steps:
        named.append(
            (
                "causal.treatment_features",
                args.get("causal_treatment_features") or [],
                model_features,
                "the model's features",
            )
        )
        heterogeneity = args.get("causal_heterogeneity_features", "null")
        heterogeneity = json.loads(heterogeneity) if isinstance(heterogeneity, str) else heterogeneity
        named.append(("causal.heterogeneity_features", heterogeneity or [], model_features, "the model's features"))
    for key, names, known_names, what in named:
        problems.check(
            lambda key=key, names=names, known_names=known_names, what=what: _unknown(key, names, known_names, what)
        )
    if "counterfactual" in steps:
        monotone = [
            *(args.get("counterfactual_increase_only") or []),
            *(args.get("counterfactual_decrease_only") or []),
        ]
        wrong = [f for f in monotone if f in model_features and f not in numeric]
        if wrong:
            problems.found.append(
                f"config `counterfactual.increase_only`/`decrease_only` need numeric features, got {wrong}"
            )
        # What the counterfactual step holds fixed, checked now rather than after the constructor.
        option = lambda name: f"`counterfactual.{name}`"  # noqa: E731
        settings = {k: args.get(f"counterfactual_{k}") for k in ("increase_only", "decrease_only", "permitted_range")}
        try:
            _, held = plan_features(
                model_features,
                args.get("sensitive_features") or [],
                args.get("immutable_features") or [],
                args.get("counterfactual_features_to_vary") or [],
                option=option,
            )
            problems.found += [f"config {p}" for p in settings_on_held_fixed(held, settings, option=option)]
        except RAIInputError as err:
            problems.found.append(f"config `counterfactual`: {err}")
    if "causal" in steps and args.get("causal_categories"):
        categorical_features = categorical or [f for f in features if f not in numeric]
        treatments = args.get("causal_treatment_features") or []
        wrong = [f for f in args["causal_categories"] if f not in treatments or f not in categorical_features]
        if wrong:
            problems.found.append(
                f"config `causal.categories` names {wrong}, which are not categorical treatment features"
            )
    problems.check(lambda: _check_scorecard(args, steps, features, test.target_values))


def _check_scorecard(
    args: dict[str, Any], steps: list[str], features: list[str], target_values: pd.Series | None
) -> None:
    """The scorecard's metrics, cohorts and features, as the scorecard step checks them
    against the bundle (``check_against_bundle``)."""
    if not args.get("scorecard_config"):
        return
    config = parse_scorecard_config(args["scorecard_config"])  # the normal form, nulls and all
    cohorts = [c.get("name") for c in args.get("cohorts") or []]
    if "error_analysis" in steps:  # the error tree's leaves are cohorts too; their names come with the tree
        named = [t.get("cohort") for t in (*config["targets"], *config["changes"])] + list(config["cohorts"] or [])
        cohorts += [n for n in named if isinstance(n, str) and n.startswith(ERROR_LEAF_PREFIX)]
    names = metric_names(args["task_type"])
    # Metrics that can be negative take no ratio target; None (the target's values unknown):
    # those signed whatever the target. A CSV's first rows may miss a negative value, which
    # the scorecard step then finds.
    signed = (
        None
        if target_values is None
        else signed_metrics(names, target_signed=target_can_be_negative(args["task_type"], target_values))
    )
    try:
        check_against_bundle(config, metric_names=names, features=features, cohorts=cohorts, signed_metrics=signed)
    except RAIInputError as err:
        raise RAIInputError(f"config `scorecard`: {err}") from None
