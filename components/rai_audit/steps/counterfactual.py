"""The counterfactual step: what would need to change for a different outcome.

For each selected test row, ``total_CFs`` counterfactuals are searched (rows as close as
possible whose prediction is the desired class or in the desired range), by the batched
random search here (default: DiCE's random method for all rows at once, one model call
per round) or by dice-ml itself, row by row (``engine="dice"``, any dice-ml method). Every
counterfactual is then checked by calling the real model on it; only valid ones are kept,
and each row records how many were asked for, found and valid, which features changed,
and how far (sparsity, proximity). Rows dice-ml cannot handle (a missing numeric value,
a category unseen in training) are reported with the reason, never dropped silently.

Speed: the batched search makes a handful of model calls for all rows; rows are also
split over worker processes (``n_jobs``), and the step is shardable
(``shard_index``/``shard_count``, merged exactly by ``merge_counterfactuals``).
Missing categorical values are handed to dice-ml as the text ``(missing)`` and turned
back into missing values before the model sees them, so validity is judged on the data
the model really gets.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from rai_audit.core import RAIInputError, served_model
from rai_audit.core import artifacts as A
from rai_audit.core.constructor_artifact import ConstructorArtifact, load_constructor_artifact
from rai_audit.core.shards import read_shards
from rai_audit.specs import CounterfactualOptions
from rai_audit.steps._cli import run_sharded_cli, sharded_parser

KIND = "counterfactual"
COUNTERFACTUALS_FILE = "counterfactuals.parquet"
ROWS_FILE = "rows.parquet"
MISSING = "(missing)"
CF_INDEX, PREDICTION = "cf_index", "prediction"
WHAT_IF_ROWS = 20  # rows shown as what-if examples in result.json (the dashboard's table)
# The batched search: candidates tried per row and round, and rounds (round k changes k features);
# rows still short of total_CFs after those get wider rounds (1, 2, ... features again, more
# candidates): with the first four alone 3-5% of the CFs asked for on Adult were not found. A
# row that STALLED wide rounds in a row find nothing new for gets no more (where few rows can
# flip, as on diabetes' readmissions, eight rounds for every row took 8 minutes and 9 GB).
# Each row's rounds depend on that row alone, so shards give what one run gives.
CANDIDATES_PER_ROW = 64
ROUNDS = 4
WIDE_ROUNDS, WIDE_CANDIDATES_PER_ROW, STALLED = 8, 256, 2
# Candidates given to the model in one call (memory: object columns cost ~1 KB a row).
MAX_CANDIDATES = 32_768
# Why a feature is held fixed (result.json's held_fixed).
PROTECTED_REASONS = ("sensitive", "immutable")
# A worker process costs seconds to start (imports, the model and train rows sent to it): the
# demo's 1,000 rows took 5.6-5.9 s in one process and 7.4-7.8 s in two workers, the wide
# data's 2,000 rows (a slower model) 77 s and 43 s (bench/README.md). A worker gets 1,000 rows.
ROWS_PER_WORKER = 1000
NOT_LISTED = "not in features_to_vary"
ALREADY = "already"  # the status of a row whose prediction already is the desired outcome (not searched)


@dataclass
class CounterfactualResult:
    run_id: str
    n_rows: int
    n_valid: int
    seconds: float


def _check(audit: ConstructorArtifact, options: CounterfactualOptions) -> None:
    features = audit.meta["model_features"]
    for name in ("features_to_vary", "increase_only", "decrease_only"):
        unknown = [f for f in getattr(options, name) if f not in features]
        if unknown:
            raise RAIInputError(f"`{name}` names unknown features {unknown}; the model's features are {features}")
    unknown = [f for f in options.permitted_range if f not in features]
    if unknown:
        raise RAIInputError(f"`permitted_range` names unknown features {unknown}; the model's features are {features}")
    numeric = set(audit.meta["numeric_features"])
    wrong = [f for f in (*options.increase_only, *options.decrease_only) if f not in numeric]
    if wrong:
        raise RAIInputError(f"`increase_only`/`decrease_only` need numeric features, got {wrong}")
    if audit.task == "regression":
        if not options.desired_range:
            raise RAIInputError("regression needs `desired_range` [low, high]")
    elif options.desired_range:
        raise RAIInputError("`desired_range` applies to regression; use `desired_class` for classification")
    elif options.desired_class in ("opposite", "better"):
        if audit.task != "binary_classification":
            raise RAIInputError(
                f"`desired_class` {options.desired_class!r} needs binary classification; "
                f"name one of the classes {audit.meta['classes']}"
            )
    elif options.desired_class not in map(str, audit.meta["classes"]):
        raise RAIInputError(
            f"`desired_class` must be 'opposite' or one of the classes "
            f"{audit.meta['classes']} ('better' too for binary), got {options.desired_class!r}"
        )
    problems = settings_on_held_fixed(_plan(audit, options)[1], options.__dict__)
    if problems:
        raise RAIInputError(problems[0])


def _option(name: str) -> str:
    return f"`{name}`"


def plan_features(
    features: list[str],
    sensitive: list[str],
    immutable: list[str],
    features_to_vary: list[str],
    *,
    option: Callable[[str], str] = _option,
) -> tuple[list[str], list[dict[str, str]]]:
    """The features counterfactuals may change, and those held fixed with the reason.

    Sensitive and immutable features are held fixed unless ``features_to_vary`` names them: a
    counterfactual "change your sex" is no advice to give. A ``features_to_vary`` list is
    taken as written (its order seeds the batched search). ``option`` names an option in a
    message (the config reader says `counterfactual.features_to_vary`).
    """
    protected = {*sensitive, *immutable}
    vary = list(features_to_vary) or [f for f in features if f not in protected]
    if not vary:
        raise RAIInputError(
            f"every model feature is sensitive or immutable ({features}), so counterfactuals "
            f"could change nothing; list those they may change in {option('features_to_vary')}"
        )
    held = [
        {"feature": f, "reason": "sensitive" if f in sensitive else "immutable" if f in protected else NOT_LISTED}
        for f in features
        if f not in vary
    ]
    return vary, held


def settings_on_held_fixed(
    held: list[dict[str, str]], settings: dict[str, Any], *, option: Callable[[str], str] = _option
) -> list[str]:
    """A message per monotone or range setting naming a sensitive or immutable feature held
    fixed: it would be ignored without a word."""
    fixed = {h["feature"]: h["reason"] for h in held if h["reason"] in PROTECTED_REASONS}
    problems = []
    for name in ("increase_only", "decrease_only", "permitted_range"):
        named = [f for f in (settings.get(name) or []) if f in fixed]
        if named:
            problems.append(
                f"{option(name)} names {named}, which counterfactuals hold fixed "
                f"({', '.join(sorted({fixed[f] for f in named}))}); list them in "
                f"{option('features_to_vary')} to let counterfactuals change them"
            )
    return problems


def _plan(audit: ConstructorArtifact, options: CounterfactualOptions) -> tuple[list[str], list[dict[str, str]]]:
    return plan_features(
        audit.meta["model_features"],
        audit.meta["sensitive_features"],
        audit.immutable_features,
        options.features_to_vary,
    )


def _held_fixed_note(held: list[dict[str, str]], varied_protected: list[str]) -> str | None:
    """One sentence for the page and the PDF: "sex, race were held fixed (sensitive)"."""
    parts = []
    for reason in (*PROTECTED_REASONS, NOT_LISTED):
        names = [h["feature"] for h in held if h["reason"] == reason]
        if names:
            parts.append(f"{', '.join(names)} {'was' if len(names) == 1 else 'were'} held fixed ({reason})")
    if varied_protected:
        parts.append(
            f"{', '.join(varied_protected)} may change (sensitive or immutable, but listed in features_to_vary)"
        )
    return "; ".join(parts) + "." if parts else None


def _better_class(meta: dict[str, Any], desired_outcome: str) -> str:
    """Binary: the class desired_outcome calls better (increase: the positive label)."""
    positive = str(meta["positive_label"])
    other = next(str(c) for c in meta["classes"] if str(c) != positive)
    return positive if desired_outcome == "increase" else other


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _aim(audit: ConstructorArtifact, options: CounterfactualOptions) -> str:
    """What the counterfactuals aim for, in words, with the direction desired_outcome calls better."""
    meta, outcome = audit.meta, audit.desired_outcome
    if audit.task == "regression":
        low, high = options.desired_range
        return (
            f"a predicted {meta['target_column']} from {_number(low)} to {_number(high)} (a "
            f"{'higher' if outcome == 'increase' else 'lower'} {meta['target_column']} is the better outcome, "
            f"desired_outcome: {outcome})"
        )
    if audit.task != "binary_classification":
        return f"the prediction {options.desired_class}"
    better = _better_class(meta, outcome)
    worse = next(str(c) for c in meta["classes"] if str(c) != better)
    why = f"desired_outcome: {outcome}"
    if options.desired_class == "opposite":
        return (
            f"the opposite prediction: {better} (the better outcome, {why}) for rows predicted {worse}, "
            f"{worse} for rows predicted {better}"
        )
    if options.desired_class in ("better", better):
        return f"the prediction {better} (the better outcome, {why})"
    return f"the prediction {worse} (the worse outcome, {why})"


def _selected_rows(audit: ConstructorArtifact, options: CounterfactualOptions) -> np.ndarray:
    rows = audit.predictions[A.ROW_ID].to_numpy()
    if options.rows == "all":
        return rows
    if options.rows == "sample":
        return rows[audit.predictions[A.IN_SAMPLE].to_numpy()]
    if options.rows in audit.cohort_masks:
        return rows[audit.cohort_masks[options.rows]]
    raise RAIInputError(
        f"`rows` must be 'sample', 'all' or a cohort name {list(audit.cohort_masks)}, got {options.rows!r}"
    )


def _missing_markers(frames: list[pd.DataFrame], categorical: list[str]) -> dict[str, Any]:
    """Per categorical column, the object the data uses for a missing value (None or NaN):
    models can tell them apart (a OneHotEncoder fitted on None sees NaN as unknown)."""
    markers = {}
    for c in categorical:
        missing = [frame[c][frame[c].isna()] for frame in frames]
        markers[c] = next((m.iloc[0] for m in missing if len(m)), np.nan)
    return markers


def _restore_missing(X: pd.DataFrame, markers: dict[str, Any]) -> pd.DataFrame:
    """Turn the ``(missing)`` text dice-ml works with back into the data's missing value."""
    X = X.copy()
    for c, marker in markers.items():
        column = X[c].astype(object)
        column[column == MISSING] = marker
        X[c] = column
    return X


class _ModelWithMissing:
    """The user's model as dice-ml sees it: missing categories come back as in the data."""

    def __init__(self, model: Any, markers: dict[str, Any]) -> None:
        self.model, self.markers = model, markers
        self.classes_ = getattr(model, "classes_", None)

    def _restore(self, X: pd.DataFrame) -> pd.DataFrame:
        return _restore_missing(X, self.markers)

    def predict(self, X: pd.DataFrame) -> Any:
        return self.model.predict(self._restore(X))

    def predict_proba(self, X: pd.DataFrame) -> Any:
        return self.model.predict_proba(self._restore(X))


def _as_dice_data(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    for c in categorical:
        frame[c] = frame[c].astype(object).where(frame[c].notna(), MISSING).astype(str)
    return frame


def _numpy_numbers(frame: pd.DataFrame, numeric: list[str]) -> pd.DataFrame:
    """dice-ml knows int and float columns only: a nullable one (Int64, Float64) becomes int64
    when it has no missing value, else float64 with NaN."""
    frame = frame.copy()
    for c in numeric:
        if isinstance(frame[c].dtype, pd.api.extensions.ExtensionDtype):
            values = frame[c].astype(float)
            whole = frame[c].dtype.kind in "iu" and values.notna().all()
            frame[c] = values.astype(np.int64) if whole else values
    return frame


def _explain_chunk(
    model: Any,
    train: pd.DataFrame,
    queries: pd.DataFrame,
    row_ids: np.ndarray,
    meta: dict[str, Any],
    options: CounterfactualOptions,
) -> tuple[list[tuple[int, str]], pd.DataFrame]:
    """dice-ml on some rows, in one worker: each row's (row id, status), and the counterfactuals
    found (``_numbered``)."""
    import dice_ml

    features = meta["model_features"]
    categorical = [f for f in features if f in meta["categorical_features"]]
    numeric = [f for f in features if f not in categorical]
    train, queries = _numpy_numbers(train, numeric), _numpy_numbers(queries, numeric)
    target = meta["target_column"]
    wrapped = _ModelWithMissing(model, _missing_markers([train, queries], categorical))
    is_classifier = meta["task_type"] != "regression"
    data = dice_ml.Data(dataframe=_as_dice_data(train, categorical), continuous_features=numeric, outcome_name=target)
    dice = dice_ml.Dice(
        data,
        dice_ml.Model(model=wrapped, backend="sklearn", model_type="classifier" if is_classifier else "regressor"),
        method=options.method,
    )
    seen = {c: set(_as_dice_data(train, categorical)[c].unique()) for c in categorical}
    desired_class = options.desired_class  # "better" is resolved to its class before the search
    if is_classifier and desired_class != "opposite":  # dice-ml wants the predict_proba column
        desired_class = [str(c) for c in getattr(model, "classes_", meta["classes"])].index(desired_class)
    results, found_per_row = [], []
    for row_id, (_, query) in zip(row_ids, _as_dice_data(queries, categorical).iterrows()):
        missing = [f for f in numeric if pd.isna(query[f])]
        unseen = [f for f in categorical if query[f] not in seen[f]]
        if missing or unseen:
            reason = f"missing numeric values in {missing}" if missing else f"categories unseen in training in {unseen}"
            results.append((int(row_id), f"skipped: {reason}"))
            continue
        permitted = {k: list(v) for k, v in options.permitted_range.items()}
        for f in options.increase_only:
            permitted[f] = [float(query[f]), float(permitted.get(f, [None, train[f].max()])[1])]
        for f in options.decrease_only:
            permitted[f] = [float(permitted.get(f, [train[f].min()])[0]), float(query[f])]
        try:
            # dice-ml draws a progress bar per row on stderr; its errors are raised, not printed.
            with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                found = dice.generate_counterfactuals(
                    query.to_frame().T.astype(queries.dtypes.to_dict() | {c: object for c in categorical}),
                    total_CFs=options.total_CFs,
                    desired_class=desired_class,
                    desired_range=options.desired_range or None,
                    permitted_range=permitted or None,
                    features_to_vary=list(options.features_to_vary),
                    random_seed=options.random_state,
                    verbose=False,
                )
            cfs = found.cf_examples_list[0].final_cfs_df
            results.append((int(row_id), "searched"))
            if cfs is not None and len(cfs):
                found_per_row.append(cfs[features].assign(**{A.ROW_ID: int(row_id)}))
        except Exception as err:  # dice-ml raises plain exceptions when it finds nothing
            results.append((int(row_id), f"searched: {type(err).__name__}: {err}"[:300]))
    return results, _numbered(found_per_row, features)


def _numbered(frames: list[pd.DataFrame], features: list[str]) -> pd.DataFrame:
    """The counterfactuals found (frames of the features and ``A.ROW_ID``) as one frame, rows in
    order and each row's in the order found, numbered among their row's (``CF_INDEX``)."""
    columns = [*features, A.ROW_ID, CF_INDEX]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    joined = pd.concat(frames, ignore_index=True)
    joined = joined.iloc[np.argsort(joined[A.ROW_ID].to_numpy(), kind="stable")].reset_index(drop=True)
    row = joined[A.ROW_ID].to_numpy()
    joined[CF_INDEX] = np.arange(len(row)) - np.searchsorted(row, row)  # the first of its row's: 0
    return joined[columns]


def _value_ranges(train: pd.DataFrame, meta: dict[str, Any], options: CounterfactualOptions) -> dict[str, Any]:
    """Per feature that may vary: [low, high] for numbers, the allowed values otherwise."""
    features = list(options.features_to_vary) or meta["model_features"]
    ranges = {}
    for f in features:
        if f not in options.permitted_range and train[f].isna().all():
            continue  # no value in the train data to move it to: it stays as it is
        if f in options.permitted_range:
            ranges[f] = list(options.permitted_range[f])
        elif f in meta["categorical_features"]:
            ranges[f] = pd.unique(train[f].dropna()).tolist()
        else:
            ranges[f] = [float(train[f].min()), float(train[f].max())]
    return ranges


def search_rounds(n_vary: int) -> list[tuple[int, int, bool]]:
    """(features changed, candidates per row, wide) of each round of the batched search."""
    first = [(k, CANDIDATES_PER_ROW, False) for k in range(1, min(ROUNDS, n_vary) + 1)]
    return first + [(1 + k % n_vary, WIDE_CANDIDATES_PER_ROW, True) for k in range(WIDE_ROUNDS)] if n_vary else []


def _batched_search(
    model: Any,
    train: pd.DataFrame,
    queries: pd.DataFrame,
    row_ids: np.ndarray,
    meta: dict[str, Any],
    options: CounterfactualOptions,
    original: np.ndarray,
) -> tuple[list[tuple[int, str]], pd.DataFrame]:
    """DiCE's random search, done for many rows at once: one model call per round for all rows.

    Round k gives each row still short of ``total_CFs`` some candidates that change k randomly
    chosen features to random values from their ranges (monotone features only one way);
    the model predicts every candidate of every row in one call, and each row keeps its
    valid candidates with the fewest changes, then the closest (rows still short after round
    4 get ``search_rounds``' wider rounds). dice-ml loops over rows
    and calls the model many times per row, which is where its time goes. Each row draws
    from its own seeded generator, so results do not depend on workers or shards. Returns each
    row's (row id, status) and the counterfactuals found (``_numbered``): each row's in the
    order found, round by round and the closest first.
    """
    categorical = set(meta["categorical_features"])
    ranges = _value_ranges(train, meta, options)
    vary = list(ranges)
    numeric = [f for f in vary if f not in categorical]
    # Whole numbers in the training data stay whole (a missing value can make the column float).
    integer = {f for f in numeric if (train[f].dropna() % 1 == 0).all()}
    scales = _scales(train, numeric)
    target = _desired(meta, options, np.asarray(original).astype(str))
    rngs = [np.random.default_rng([options.random_state, int(r)]) for r in row_ids]
    # Per model call: the candidates kept and the positions of their rows (whole frames: one
    # frame per row and round took a third of the step's time at 1,000 rows).
    found: list[tuple[pd.DataFrame, np.ndarray]] = []
    kept: list[set[int]] = [set() for _ in row_ids]  # hashes of each row's counterfactuals
    queries = queries.reset_index(drop=True)
    empty = np.zeros(len(row_ids), dtype=int)  # wide rounds in a row that found a row nothing new

    def search(pending: list[int], changes: int, per_row: int, wide: bool) -> None:
        """One round for the rows ``pending`` (positions in ``row_ids``): one model call."""
        owner = np.repeat(pending, per_row)
        base = queries.iloc[owner].reset_index(drop=True)
        draws = [rngs[i].random((2, per_row, len(vary))) for i in pending]
        which = np.concatenate([d[0] for d in draws])  # ranks: the k lowest pick the features
        where = np.concatenate([d[1] for d in draws])  # where in its range each new value falls
        changed = np.argsort(np.argsort(which, axis=1), axis=1) < changes
        candidates = base.copy()
        for j, f in enumerate(vary):
            rows = np.flatnonzero(changed[:, j])
            if f in categorical:
                pool = np.asarray(ranges[f], dtype=object)
                values = pool[np.minimum((where[rows, j] * len(pool)).astype(int), len(pool) - 1)]
                column = candidates[f].astype(object)
            else:
                low = np.full(len(rows), ranges[f][0], dtype=float)
                high = np.full(len(rows), ranges[f][1], dtype=float)
                current = _floats(base[f])[rows]
                if f in options.increase_only:
                    low = np.where(np.isnan(current), low, np.maximum(low, current))
                if f in options.decrease_only:
                    high = np.where(np.isnan(current), high, np.minimum(high, current))
                high = np.maximum(low, high)
                values = low + where[rows, j] * (high - low)
                if f in integer:
                    values = np.clip(np.round(values), np.ceil(low), np.floor(high))
                column = candidates[f].astype(float)
            column.iloc[rows] = values
            candidates[f] = column
        for f in integer:
            candidates[f] = candidates[f].round().astype(queries[f].dtype)  # int, Int64, or float with NaN
        for f in vary:  # nullable text and numbers back to their dtype, as the model gets the test rows
            if f not in integer and (
                isinstance(queries[f].dtype, pd.StringDtype)
                or (f not in categorical and isinstance(queries[f].dtype, pd.api.extensions.ExtensionDtype))
            ):
                candidates[f] = candidates[f].astype(queries[f].dtype)
        change = changed_mask(candidates[vary], base[vary], set(numeric))
        # A candidate equal to its row is no counterfactual (a drawn value can be the row's own).
        valid = target(np.asarray(model.predict(candidates)), owner) & change.any(axis=1).to_numpy()
        distance = np.zeros(len(candidates))
        for f in vary:
            if f in categorical:
                distance += change[f].to_numpy(dtype=float)
            else:  # a missing value kept costs nothing, one replaced by a number costs 1
                new, old = _floats(candidates[f]), _floats(base[f])
                step = np.abs(new - old) / scales[f]
                step[np.isnan(new) & np.isnan(old)] = 0.0
                distance += np.nan_to_num(step, nan=1.0)
        keys = pd.util.hash_pandas_object(candidates, index=False).to_numpy()
        chosen: list[int] = []
        chosen_rows: list[int] = []
        for i in pending:
            mine = np.flatnonzero(valid & (owner == i))
            if not len(mine):
                empty[i] += wide
                continue
            # Closest first, each counterfactual once (also across rounds: a later round can draw one again).
            picked = []
            for c in mine[np.argsort(distance[mine], kind="stable")]:
                if keys[c] not in kept[i]:
                    kept[i].add(keys[c])
                    picked.append(c)
                if len(kept[i]) == options.total_CFs:
                    break
            empty[i] = empty[i] + 1 if wide and not picked else 0
            chosen += picked
            chosen_rows += [i] * len(picked)
        found.append((candidates.iloc[chosen], np.array(chosen_rows, dtype=np.int64)))

    for changes, per_row, wide in search_rounds(len(vary)):
        pending = [i for i in range(len(row_ids)) if len(kept[i]) < options.total_CFs and empty[i] < STALLED]
        if not pending:
            break
        # At most MAX_CANDIDATES rows per model call: each row draws from its own generator,
        # so the chunks find what one call would.
        chunk = max(1, MAX_CANDIDATES // per_row)
        for first in range(0, len(pending), chunk):
            search(pending[first : first + chunk], changes, per_row, wide)

    seen = {c: set(train[c].dropna()) for c in categorical if c in queries}
    statuses = [(int(r), _batched_status(queries.iloc[i], seen, numeric)) for i, r in enumerate(row_ids)]
    frames = [frame.assign(**{A.ROW_ID: np.asarray(row_ids)[rows]}) for frame, rows in found]
    return statuses, _numbered(frames, list(queries.columns))


def _batched_status(query: pd.Series, seen: dict[str, set[Any]], numeric: list[str]) -> str:
    """'searched', saying which missing values or unseen categories the model was given as they are."""
    notes = [f"missing numeric values in {m} kept" for m in [[f for f in numeric if pd.isna(query[f])]] if m]
    notes += [
        f"categories unseen in training in {u} kept"
        for u in [[c for c, values in seen.items() if pd.notna(query[c]) and query[c] not in values]]
        if u
    ]
    return "; ".join(["searched", *notes])


def _desired(
    meta: dict[str, Any], options: CounterfactualOptions, original: np.ndarray
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """f(predictions, row positions) -> which predictions reach the desired outcome;
    ``original`` holds each row's own prediction (as text), for "opposite"."""
    if meta["task_type"] == "regression":
        low, high = options.desired_range
        return lambda predicted, owner: (predicted >= low) & (predicted <= high)
    if options.desired_class == "opposite":
        return lambda predicted, owner: predicted.astype(str) != original[owner]
    return lambda predicted, owner: predicted.astype(str) == options.desired_class


def _floats(values: pd.Series) -> np.ndarray:
    return values.astype(float).to_numpy()  # via pandas: a nullable integer's missing value becomes NaN


def changed_mask(cfs: pd.DataFrame, queries: pd.DataFrame, numeric: set[str]) -> pd.DataFrame:
    """Per counterfactual and feature: does it differ from its query row (the row of
    ``queries`` at the same position)? Numbers within 1e-12 (relative) or 1e-9; missing
    (None, NaN, pd.NA) equals missing and differs from any value (a nullable column's NA
    never reaches a comparison: its truth value is ambiguous). Gather uses it too."""
    out = {}
    for f in cfs.columns:
        if f in numeric:
            out[f] = ~np.isclose(_floats(cfs[f]), _floats(queries[f]), rtol=1e-12, atol=1e-9, equal_nan=True)
        else:
            a, b = cfs[f].to_numpy(dtype=object), queries[f].to_numpy(dtype=object)
            missing_a, missing_b = pd.isna(a), pd.isna(b)
            same = missing_a & missing_b
            both = ~missing_a & ~missing_b
            same[both] = (a[both] == b[both]).astype(bool)
            out[f] = ~same
    return pd.DataFrame(out, index=cfs.index)


def _scales(train: pd.DataFrame, numeric: list[str]) -> dict[str, float]:
    """Per numeric feature, the median absolute deviation (DiCE's scale); the standard
    deviation where that is 0 (e.g. capital-gain, mostly 0), else 1."""
    scales = {}
    for f in numeric:
        values = train[f].dropna().astype(float)
        mad = float(np.median(np.abs(values - values.median()))) if len(values) else 0.0
        std = float(values.std()) if len(values) > 1 else 0.0
        scales[f] = mad if mad > 0 else (std if std > 0 else 1.0)
    return scales


def _row_table(
    audit: ConstructorArtifact,
    model: Any,
    train: pd.DataFrame,
    searched: list[tuple[int, str]],
    all_cfs: pd.DataFrame,
    options: CounterfactualOptions,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate every counterfactual (``_numbered``) with the real model; per-row figures (each
    row's (row id, status) in ``searched``) and the valid CFs."""
    meta = audit.meta
    features = meta["model_features"]
    categorical = [f for f in features if f in meta["categorical_features"]]
    numeric = [f for f in features if f not in categorical]
    test = audit.features[features]
    markers = _missing_markers([train, test], categorical)
    if len(all_cfs):
        all_cfs = _restore_missing(all_cfs, markers)
        for c in numeric:  # dice-ml returns numbers as floats or text; give back the column's type
            values = pd.to_numeric(all_cfs[c], errors="coerce").astype(float)
            nullable = isinstance(test[c].dtype, pd.api.extensions.ExtensionDtype)
            if nullable and test[c].dtype.kind in "iu":
                values = values.round()  # dice-ml saw an Int64 column with NA as floats; the model gets integers
            integral = (
                test[c].dtype.kind in "iu" and (nullable or values.notna().all()) and (values.dropna() % 1 == 0).all()
            )
            all_cfs[c] = values.astype(test[c].dtype) if integral else values
        # A counterfactual equal to its row is none (it "reaches" the outcome the row already has).
        identical = (
            ~changed_mask(all_cfs[features], test.iloc[all_cfs[A.ROW_ID].to_numpy(dtype=np.int64)], set(numeric))
            .any(axis=1)
            .to_numpy()
        )
        all_cfs = all_cfs[~identical].reset_index(drop=True)
    if len(all_cfs):
        # One batched model call validates every counterfactual of every row.
        all_cfs[PREDICTION] = model.predict(all_cfs[features].astype(test.dtypes.to_dict()))
        predicted = audit.y_pred.to_numpy()[all_cfs[A.ROW_ID].to_numpy()]
        if audit.task == "regression":
            low, high = options.desired_range
            all_cfs["valid"] = all_cfs[PREDICTION].between(low, high)
        elif options.desired_class == "opposite":
            all_cfs["valid"] = all_cfs[PREDICTION].astype(str) != predicted.astype(str)
        else:
            all_cfs["valid"] = all_cfs[PREDICTION].astype(str) == str(options.desired_class)
    else:
        all_cfs[PREDICTION] = pd.Series(dtype=object)
        all_cfs["valid"] = pd.Series(dtype=bool)
    scales = _scales(train, numeric)
    # Every valid counterfactual against its own query row at once, then per row (a loop
    # over rows took most of the step's time at 1,000 rows).
    valid = all_cfs[all_cfs["valid"]]
    owner = valid[A.ROW_ID].to_numpy(dtype=np.int64)
    queries = test.iloc[owner]
    changed = changed_mask(valid[features], queries, set(numeric))
    # As the search counts it: a number by its scale; a change from or to missing, 1.
    distance = pd.DataFrame(
        {
            f: pd.Series(np.abs(_floats(valid[f]) - _floats(queries[f])) / scales[f], index=valid.index)
            .where(changed[f], 0.0)
            .fillna(1.0)
            if f in numeric
            else changed[f].astype(float)
            for f in features
        }
    )
    per_row = (
        pd.DataFrame(
            {
                "sparsity": changed.sum(axis=1).to_numpy(),
                "proximity": distance.mean(axis=1).to_numpy(),
                **{f"importance:{f}": changed[f].to_numpy(dtype=float) for f in features},
            }
        )
        .groupby(owner)
        .mean()
    )
    touched = changed.groupby(owner).any()
    found = all_cfs[A.ROW_ID].astype(np.int64).value_counts().to_dict()
    n_valid = pd.Series(owner).value_counts().to_dict()
    rows = []
    for row_id, status in searched:
        requested = 0 if status.startswith(ALREADY) else options.total_CFs  # not searched
        record = {
            A.ROW_ID: row_id,
            "status": status,
            "requested": requested,
            "found": int(found.get(row_id, 0)),
            "valid": int(n_valid.get(row_id, 0)),
            "changed_features": [],
            "sparsity": None,
            "proximity": None,
        }
        if record["valid"]:
            figures = per_row.loc[row_id]
            record.update(
                changed_features=[f for f in features if touched.at[row_id, f]],
                sparsity=float(figures["sparsity"]),
                proximity=float(figures["proximity"]),
                **{f"importance:{f}": float(figures[f"importance:{f}"]) for f in features},
            )
        rows.append(record)
    return pd.DataFrame(rows), valid.drop(columns="valid").reset_index(drop=True)


def _summary(audit: ConstructorArtifact, rows: pd.DataFrame, features: list[str]) -> dict[str, Any]:
    with_cf = rows[rows["valid"] > 0]
    importance = {f: float(with_cf[f"importance:{f}"].mean()) if len(with_cf) else None for f in features}
    already = rows["status"].astype(str).str.startswith(ALREADY)

    def figures(selected: pd.DataFrame) -> dict[str, Any]:
        # Rows whose prediction already is the desired outcome were not searched: counted
        # apart, never as explained nor as failures.
        hit = selected[selected["valid"] > 0]
        return {
            "rows": len(selected),
            "already_desired": int(already[selected.index].sum()),
            "rows_with_valid": len(hit),
            "mean_sparsity": float(hit["sparsity"].mean()) if len(hit) else None,
            "mean_proximity": float(hit["proximity"].mean()) if len(hit) else None,
        }

    row_ids = audit.predictions[A.ROW_ID].to_numpy()
    return {
        "totals": {
            **figures(rows),
            "requested": int(rows["requested"].sum()),
            "found": int(rows["found"].sum()),
            "valid": int(rows["valid"].sum()),
        },
        "rows_without_valid": [
            {"row_id": int(r[A.ROW_ID]), "status": r["status"], "found": int(r["found"])}
            for _, r in rows[(rows["valid"] == 0) & ~already].iterrows()
        ],
        "global_importance": sorted(
            ({"feature": f, "importance": v} for f, v in importance.items()),
            key=lambda item: -(item["importance"] or 0),
        ),
        "cohorts": [
            {"name": name, **figures(rows[rows[A.ROW_ID].isin(row_ids[mask])])}
            for name, mask in audit.cohort_masks.items()
        ],
        "sensitive_groups": [
            {"feature": f, "group": g, **figures(rows[rows[A.ROW_ID].isin(row_ids[(labels == g).to_numpy()])])}
            for f, (labels, _) in audit.sensitive_groups.items()
            for g in sorted(labels.unique())
        ],
    }


def _what_if(audit: ConstructorArtifact, cfs: pd.DataFrame, features: list[str]) -> list[dict[str, Any]]:
    """The first rows with a valid counterfactual: what changes in their first one, and the outcome
    (one that changes nothing, which a merged older shard could hold, is no example)."""
    numeric = set(audit.meta["numeric_features"])
    examples: list[dict[str, Any]] = []
    for row_id, mine in cfs.groupby(A.ROW_ID, sort=True):
        if len(examples) == WHAT_IF_ROWS:
            break
        first = mine.iloc[[0]]
        queries = audit.features[features].iloc[[int(row_id)]]
        query = queries.iloc[0]
        changed = changed_mask(first[features], queries, numeric).iloc[0]
        if not changed.any():
            continue
        examples.append(
            {
                "row_id": int(row_id),
                "prediction": audit.y_pred.iloc[int(row_id)],
                "counterfactual_prediction": first[PREDICTION].iloc[0],
                "changes": [{"feature": f, "from": query[f], "to": first[f].iloc[0]} for f in features if changed[f]],
            }
        )
    return examples


def _write(
    output_dir: Path,
    audit: ConstructorArtifact,
    rows: pd.DataFrame,
    cfs: pd.DataFrame,
    options: CounterfactualOptions,
    info: dict[str, Any],
    seconds: float,
    model_calls: dict[str, Any] | None = None,
) -> None:
    features = audit.meta["model_features"]
    rows = rows.sort_values(A.ROW_ID, kind="stable").reset_index(drop=True)
    cfs = cfs.sort_values([A.ROW_ID, CF_INDEX], kind="stable").reset_index(drop=True)
    result = {
        **info,
        "features": features,
        **_summary(audit, rows, features),
        "what_if": _what_if(audit, cfs, features),
    }
    stored = rows.assign(changed_features=rows["changed_features"].map(list))
    with A.artifact_writer(output_dir) as out:
        A.write_parquet(stored, out / ROWS_FILE)
        A.write_parquet(cfs[[A.ROW_ID, CF_INDEX, *features, PREDICTION]], out / COUNTERFACTUALS_FILE)
        A.write_json(out / A.INSIGHT_RESULT_FILE, result)
        calls = {"model_calls": model_calls} if model_calls else {}  # a served model's requests
        A.write_json(
            out / A.META_FILE, A.new_meta(KIND, audit.run_id, options=asdict(options), seconds=seconds, **calls)
        )


def _workers(n_jobs: int, rows: int) -> int:
    """Worker processes for ``rows`` rows: ``n_jobs``, or with -1 every core the process may use
    (joblib reads the container's CPU quota), each worker given at least ``ROWS_PER_WORKER``."""
    if n_jobs != -1:
        return n_jobs
    import joblib

    return max(1, min(joblib.cpu_count(), -(-rows // ROWS_PER_WORKER)))


def run_counterfactual(
    constructor_dir: str | Path, output_dir: str | Path, *, options: CounterfactualOptions = CounterfactualOptions()
) -> CounterfactualResult:
    """Search and validate counterfactuals for the selected rows (this shard of them)."""
    started = time.perf_counter()
    before = served_model.counts()  # a served model's calls, for meta.json
    audit = load_constructor_artifact(constructor_dir)
    _check(audit, options)
    meta = audit.meta
    features = meta["model_features"]
    vary, held = _plan(audit, options)
    # What the search works with: the features it may change, and "better" as its class.
    resolved = replace(
        options,
        features_to_vary=vary,
        desired_class=(
            _better_class(meta, audit.desired_outcome) if options.desired_class == "better" else options.desired_class
        ),
    )
    train = A.read_parquet(audit.folder / A.TRAIN_FILE)[[*features, meta["target_column"]]]
    selected = _selected_rows(audit, options)
    if options.shard_count > max(len(selected), 1):
        raise RAIInputError(
            f"`shard_count` ({options.shard_count}) must not exceed the number of rows ({len(selected)})"
        )
    shard = np.array_split(selected, options.shard_count)[options.shard_index]
    model = audit.load_model()
    queries = audit.features[features]
    predicted = audit.y_pred.to_numpy()
    # A row whose prediction already is the desired outcome has nothing to explain: the only
    # "counterfactual" reaching it unchanged is the row itself. Not searched, counted apart.
    already = _desired(meta, resolved, predicted.astype(str))(predicted[shard], shard)
    status = (
        "already in the desired range" if audit.task == "regression" else f"already predicted {resolved.desired_class}"
    )
    chunks = [c for c in np.array_split(shard[~already], _workers(options.n_jobs, int((~already).sum()))) if len(c)]
    search = (
        (
            lambda chunk: delayed(_batched_search)(
                model, train, queries.iloc[chunk], chunk, meta, resolved, predicted[chunk]
            )
        )
        if options.engine == "batched"
        else (lambda chunk: delayed(_explain_chunk)(model, train, queries.iloc[chunk], chunk, meta, resolved))
    )
    parts = Parallel(n_jobs=max(len(chunks), 1), backend=served_model.joblib_backend(model))(
        search(chunk) for chunk in chunks
    )
    searched = sorted([item for statuses, _ in parts for item in statuses] + [(int(r), status) for r in shard[already]])
    found = _numbered([frame for _, frame in parts], features)
    rows, cfs = _row_table(audit, model, train, searched, found, resolved)
    if rows.empty:
        rows = pd.DataFrame(
            columns=[
                A.ROW_ID,
                "status",
                "requested",
                "found",
                "valid",
                "changed_features",
                "sparsity",
                "proximity",
                *[f"importance:{f}" for f in features],
            ]
        )
    varied_protected = [f for f in vary if f in audit.protected_features]
    info = {
        "engine": options.engine,
        "method": options.method,
        "desired_class": options.desired_class,
        "desired_range": list(options.desired_range),
        "total_CFs": options.total_CFs,
        "desired_outcome": audit.desired_outcome,
        "aim": _aim(audit, resolved),
        "features_varied": vary,
        "held_fixed": held,
        "varied_protected": varied_protected,
        "held_fixed_note": _held_fixed_note(held, varied_protected),
        "rows_selection": {
            "rows": options.rows,
            "total": int(len(selected)),
            "shard_index": options.shard_index,
            "shard_count": options.shard_count,
        },
    }
    seconds = time.perf_counter() - started
    _write(Path(output_dir), audit, rows, cfs, options, info, seconds, served_model.calls_since(model, before))
    return CounterfactualResult(audit.run_id, len(rows), int(rows["valid"].sum()) if len(rows) else 0, seconds)


def merge_counterfactuals(
    constructor_dir: str | Path, shard_dirs: list[str | Path], output_dir: str | Path
) -> CounterfactualResult:
    """Join the shards of one counterfactual run into the result of an unsharded run."""
    started = time.perf_counter()
    audit = load_constructor_artifact(constructor_dir)
    shards = [
        (
            meta,
            A.read_json(folder / A.INSIGHT_RESULT_FILE),
            A.read_parquet(folder / ROWS_FILE),
            A.read_parquet(folder / COUNTERFACTUALS_FILE),
        )
        for folder, meta in read_shards(audit.run_id, shard_dirs, KIND, free_options=("shard_index", "n_jobs"))
    ]
    first_meta, first = shards[0][0], shards[0][1]
    rows = pd.concat([s[2] for s in shards], ignore_index=True)
    rows["changed_features"] = rows["changed_features"].map(list)
    cfs = pd.concat([s[3] for s in shards], ignore_index=True)
    options = CounterfactualOptions(**{**first_meta["options"], "shard_index": 0, "shard_count": 1})
    info = {
        k: first.get(k)
        for k in (
            "engine",
            "method",
            "desired_class",
            "desired_range",
            "total_CFs",
            "desired_outcome",
            "aim",
            "features_varied",
            "held_fixed",
            "varied_protected",
            "held_fixed_note",
        )
    }
    info["rows_selection"] = {**first["rows_selection"], "shard_index": 0, "shard_count": 1, "merged_from": len(shards)}
    seconds = time.perf_counter() - started
    _write(Path(output_dir), audit, rows, cfs, options, info, seconds, served_model.summed_calls(s[0] for s in shards))
    return CounterfactualResult(audit.run_id, len(rows), int(rows["valid"].sum()), seconds)


def _parser() -> argparse.ArgumentParser:
    return sharded_parser("counterfactual", __doc__.splitlines()[0], "counterfactual", "searching")


def main(argv: list[str] | None = None) -> int:
    return run_sharded_cli(
        _parser(),
        argv,
        "counterfactual",
        run_counterfactual,
        merge_counterfactuals,
        lambda output, r: (
            f"counterfactuals written to {output} ({r.n_rows} rows, {r.n_valid} valid, {r.seconds:.1f} s)"
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
