"""An audit bundle read for live answers: the model copy, every test row, the run's explainer and search.

Nothing here has a second implementation of what the steps compute: predictions go through
the constructor's ``_predict`` (class order, checks), explanations through the explainer
step's functions (its exact explainer where the model allows, else its mimic, fitted again
on the same seeded rows, which gives the same surrogate), counterfactuals through the
counterfactual step's search and validation with the run's options (sensitive and immutable
features held fixed as in the run), and a cohort's figures through gather's and the
explainer's own functions on every test row of the bundle.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rai_audit.core import ArtifactIntegrityError, RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.core.cohorts import cohort_masks, load_cohorts, ordered_values
from rai_audit.core.constructor_artifact import ConstructorArtifact
from rai_audit.core.loading import model_sha256

if TYPE_CHECKING:  # the explainer step is imported where a bundle explains
    from rai_audit.steps.explainer import BuiltExplainer

ARCHIVE_MANIFEST = "manifest.json"  # rai_audit.archive.MANIFEST: a fetched audit's own manifest
BUNDLE_PART = "dashboard"  # a fetched audit keeps the bundle under dashboard/


@dataclass
class Limits:
    """What one request may ask for: bounded so that no request holds the server for long."""

    body_bytes: int = 1 << 20  # 1 MiB of JSON
    predict_rows: int = 1000
    explain_rows: int = 20
    seconds: float = 30.0  # answer 504 after this (the computation itself ends by itself)


# --- finding and verifying the bundle -------------------------------------------------------------


def _sha256(path: Path) -> str:
    return A.sha256_file(path)


def _verify_fetched_audit(folder: Path) -> Path:
    """A folder written by ``rai-audit audits fetch``: every file against the archive's manifest,
    and its claims (run id, model digest, verdict) against the files, as when it was fetched."""
    from rai_audit.archive import _CLAIM_FILES, _check_claims, _checked_target

    manifest = A.read_json(folder / ARCHIVE_MANIFEST, what="the audit's manifest")
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise ArtifactIntegrityError(f"{folder / ARCHIVE_MANIFEST} is not a rai-audit archive manifest")
    kept: dict[str, bytes] = {}
    for relative, expected in files.items():
        path = _checked_target(folder, relative)
        if not path.is_file():
            raise ArtifactIntegrityError(f"audit {folder}: {relative} is listed in its manifest but missing")
        if _sha256(path) != expected.get("sha256") or path.stat().st_size != expected.get("size", path.stat().st_size):
            raise ArtifactIntegrityError(
                f"audit {folder}: {relative} does not match its manifest: it was changed after it was fetched"
            )
        if relative in _CLAIM_FILES:
            kept[relative] = path.read_bytes()
    _check_claims(str(folder), manifest, kept)
    return folder / BUNDLE_PART


def _parse_s3(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    if not prefix.strip("/"):
        raise RAIInputError(f"{uri}: give the audit's prefix after the bucket, as `rai-audit audits list` prints it")
    return bucket, prefix.strip("/")


def locate_bundle(source: str | Path, workdir: Path | None = None) -> tuple[Path, str]:
    """The verified bundle folder for a bundle folder, a fetched audit folder or an archived
    audit's URI (``s3://bucket/audits/...``, fetched into ``workdir`` and verified as
    ``rai-audit audits fetch`` does); and what it was, in words."""
    text = str(source)
    if text.startswith(("s3://", "minio://")):
        from rai_audit.archive import fetch_audit
        from rai_audit.storage import check_bucket_name, settings_from_env

        bucket, prefix = _parse_s3(text)
        check_bucket_name(bucket)
        if workdir is None:
            raise RAIInputError("an archived audit needs a folder to be fetched into")
        fetched = fetch_audit(settings_from_env(), bucket, prefix, workdir / "audit")
        bundle, what = fetched / BUNDLE_PART, f"archived audit {text} (fetched and verified)"
    else:
        folder = Path(text)
        if not folder.is_dir():
            raise RAIInputError(f"{folder} is not a folder: give a dashboard bundle, a fetched audit or an s3:// URI")
        if (folder / ARCHIVE_MANIFEST).is_file() and (folder / BUNDLE_PART).is_dir():
            bundle, what = _verify_fetched_audit(folder), f"fetched audit {folder}"
        else:
            bundle, what = folder, f"dashboard bundle {folder}"
    A.read_artifact_meta(bundle, expected_kind=A.KIND_DASHBOARD)  # every file against its manifest
    return bundle, what


def bundle_file(bundle: Path, relative: str, manifest: dict[str, Any]) -> Path | None:
    """A file of the bundle that its manifest lists and that still matches it, else None.
    Only listed names are looked up, so no path can leave the bundle."""
    entry = manifest.get("files", {}).get(relative)
    if entry is None or ".." in PurePosixPath(relative).parts or relative.startswith("/"):
        return None
    path = bundle / Path(*PurePosixPath(relative).parts)
    if not path.is_file() or _sha256(path) != entry["sha256"]:
        return None
    return path


# --- rows sent by the page --------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def feature_info(name: str, values: pd.Series, categorical: bool) -> dict[str, Any]:
    """How the page offers a feature for editing: numbers with their range (and whether they are
    whole), categories with their values in the data's order."""
    present = values.dropna()
    missing = bool(values.isna().any())
    if pd.api.types.is_bool_dtype(values):
        return {"name": name, "kind": "boolean", "categories": [False, True], "missing": missing}
    if not categorical and pd.api.types.is_numeric_dtype(values):
        floats = present.astype(float)
        return {
            "name": name,
            "kind": "numeric",
            "min": float(floats.min()) if len(floats) else None,
            "max": float(floats.max()) if len(floats) else None,
            "integer": bool(len(floats) and (floats % 1 == 0).all()),
            "missing": missing,
        }
    return {"name": name, "kind": "categorical", "categories": ordered_values(values), "missing": missing}


def rows_frame(rows: Any, template: pd.DataFrame, *, what: str = "rows") -> pd.DataFrame:
    """The page's rows ({feature: value}, null = missing) as a frame of the test data's columns
    and dtypes, each value checked against its column (a model must get what it was trained on)."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise RAIInputError(f"`{what}` must be a list of {{feature: value}} mappings")
    columns = list(template.columns)
    for i, row in enumerate(rows):
        unknown = sorted(set(row) - set(columns), key=str)
        absent = [c for c in columns if c not in row]
        if unknown or absent:
            raise RAIInputError(
                f"row {i}: "
                + "; ".join(
                    p
                    for p in (f"unknown features {unknown}" if unknown else "", f"missing {absent}" if absent else "")
                    if p
                )
            )
    out = {}
    for column in columns:
        dtype = template[column].dtype
        values = [row[column] for row in rows]
        present = [v for v in values if v is not None]
        where = f"feature {column!r}"
        if pd.api.types.is_bool_dtype(dtype):
            if not all(isinstance(v, bool) for v in present):
                raise RAIInputError(f"{where} takes true or false")
            out[column] = pd.Series(values, dtype=dtype if len(present) == len(values) else object)
        elif isinstance(dtype, pd.CategoricalDtype):
            known = list(dtype.categories)
            wrong = [v for v in present if v not in known]
            if wrong:
                raise RAIInputError(f"{where} takes one of {known[:50]}, got {wrong[0]!r}")
            out[column] = pd.Series(pd.Categorical(values, categories=dtype.categories, ordered=dtype.ordered))
        elif pd.api.types.is_numeric_dtype(dtype):
            if not all(_is_number(v) for v in present):
                raise RAIInputError(f"{where} takes numbers, got {next(v for v in present if not _is_number(v))!r}")
            whole = dtype.kind in "iu"
            if whole and any(float(v) % 1 for v in present):
                raise RAIInputError(f"{where} takes whole numbers")
            if whole and len(present) < len(values) and not isinstance(dtype, pd.api.extensions.ExtensionDtype):
                out[column] = pd.Series(values, dtype=float)  # as pandas reads a whole column with a gap
            else:
                out[column] = pd.Series([pd.NA if v is None else v for v in values]).astype(dtype)
        else:
            sample = template[column].dropna()
            text = len(sample) == 0 or isinstance(sample.iloc[0], str)
            if text and not all(isinstance(v, str) for v in present):
                raise RAIInputError(f"{where} takes text")
            out[column] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(out, columns=columns)


# --- the audit ------------------------------------------------------------------------------------


class LiveAudit:
    """A verified bundle in memory: what the server answers from. Built once at start; every
    method is called from one worker thread at a time."""

    def __init__(self, bundle: Path) -> None:
        self.bundle = bundle
        self.manifest = A.read_json(bundle / A.MANIFEST_FILE)
        self.doc = A.read_json(bundle / A.INSIGHTS_JSON_FILE)
        constructor = bundle / A.CONSTRUCTOR_COPY_DIR
        meta = A.read_json(constructor / A.META_FILE)
        if meta.get("run_id") != self.doc.get("run_id"):
            raise ArtifactIntegrityError(f"bundle {bundle}: its constructor/meta.json is from another run")
        table = A.read_parquet(bundle / A.TABLES_DIR / "predictions.parquet")
        classes = meta["classes"] or []
        kept = [A.ROW_ID, A.Y_TRUE, A.Y_PRED, *[A.proba_column(i) for i in range(len(classes))], A.IN_SAMPLE]
        self.audit = ConstructorArtifact(
            folder=constructor,
            meta=meta,
            features=table[meta["features"]],
            predictions=table[[c for c in kept if c in table.columns]],
            cohorts=[{"name": c["name"], "filter": c["filter"]} for c in self.doc.get("cohorts", [])],
        )
        self.meta = meta
        self.model_features: list[str] = meta["model_features"]
        self.insights = {
            kind: (bundle / A.INSIGHT_COPIES_DIR / kind)
            for kind in self.doc.get("insights", {})
            if kind in A.INSIGHT_KINDS
        }
        self.model = self._load_model()
        train_file = constructor / A.TRAIN_FILE
        self.train = A.read_parquet(train_file) if train_file.is_file() else None
        self.template = self.audit.features[self.model_features].iloc[:0]
        self.explainer = self._explainer() if self.model is not None and "explanation" in self.insights else None
        self.search = self._search() if self.model is not None and "counterfactual" in self.insights else None
        self.local = None
        if "explanation" in self.insights:
            self.local = A.read_parquet(self.insights["explanation"] / "local_importance.parquet")
        # Computed once: every cohort request filters and slices these.
        from rai_audit.steps.gather import _metric_fns

        self.fns = _metric_fns(self.audit)
        _ = self.audit.cohort_frame, self.audit.sensitive_groups, self.audit.metric_labels, self.audit.proba
        self._info: dict[str, Any] | None = None
        self.info()

    # -- setup --------------------------------------------------------------------------------------

    def _load_model(self) -> Any:
        """The model copy (a file, or an MLflow folder), or None for a bundle gathered before
        bundles held it. Its digest must be the one the constructor recorded (and the manifest
        verified its files)."""
        model = self.meta["model"]
        path = self.audit.folder / model["file"]
        if not path.exists():
            return None
        if model_sha256(path) != model["sha256"] or (self.doc.get("model") or {}).get("sha256") != model["sha256"]:
            raise ArtifactIntegrityError(f"bundle {self.bundle}: the model copy is not the model the audit ran on")
        return self.audit.load_model()

    def _explainer(self) -> BuiltExplainer | None:
        """The explainer step's explainer for this run, built as ``run_explainer`` builds it (same
        options, seeded rows)."""
        from rai_audit.specs import ExplainerOptions
        from rai_audit.steps import explainer as E

        if self.train is None:
            return None
        folder = self.insights["explanation"]
        options = ExplainerOptions(**A.read_json(folder / A.META_FILE)["options"])
        result = A.read_json(folder / A.INSIGHT_RESULT_FILE)
        features = self.model_features
        built = E.build_explainer(
            self.model,
            self.train[features],
            self.audit.features[features],
            self.meta["classes"],
            self.audit.is_classifier,
            options,
        )
        if built.method != result["method"]:
            raise ArtifactIntegrityError(
                f"bundle {self.bundle}: the explainer rebuilt here is {built.method!r}, "
                f"the run used {result['method']!r}"
            )
        return built

    def _search(self) -> SimpleNamespace | None:
        """The counterfactual step's options as the run resolved them (``run_counterfactual``)."""
        from rai_audit.specs import CounterfactualOptions
        from rai_audit.steps import counterfactual as C

        if self.train is None:
            return None
        folder = self.insights["counterfactual"]
        options = CounterfactualOptions(**A.read_json(folder / A.META_FILE)["options"])
        C._check(self.audit, options)
        vary, held = C._plan(self.audit, options)
        better = C._better_class(self.meta, self.audit.desired_outcome) if options.desired_class == "better" else None
        resolved = replace(options, features_to_vary=vary, desired_class=better or options.desired_class)
        train = self.train[[*self.model_features, self.meta["target_column"]]]
        return SimpleNamespace(
            options=options, resolved=resolved, held=held, train=train, aim=C._aim(self.audit, resolved)
        )

    # -- answers ------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What the page offers (computed once: the ranges and values of every feature)."""
        if self._info is None:
            self._info = self._describe()
        return self._info

    def _describe(self) -> dict[str, Any]:
        meta = self.meta
        categorical = set(meta["categorical_features"])
        data = self.audit.features
        if self.train is not None:
            data = pd.concat([data, self.train[meta["features"]]], ignore_index=True)
        search = self.search
        return A.to_jsonable(
            {
                "live": True,
                "run_id": meta["run_id"],
                "task_type": meta["task_type"],
                "target_column": meta["target_column"],
                "classes": meta["classes"],
                "positive_label": meta["positive_label"],
                "n_test": len(self.audit.predictions),
                "model_features": self.model_features,
                "features": [feature_info(f, data[f], f in categorical) for f in self.model_features],
                "sensitive_features": meta["sensitive_features"],
                "available": {
                    "predict": self.model is not None,
                    "explain": self.explainer is not None,
                    "counterfactuals": search is not None,
                    "cohort": True,
                },
                "explanation": None if self.explainer is None else {"method": self.explainer.method},
                "counterfactual": None
                if search is None
                else {
                    "engine": search.options.engine,
                    "method": search.options.method,
                    "total_CFs": search.options.total_CFs,
                    "aim": search.aim,
                    "held_fixed": search.held,
                },
            }
        )

    def _require_model(self) -> Any:
        if self.model is None:
            raise RAIInputError(
                "this bundle holds no copy of the model (it was gathered before bundles held one); "
                "gather it again to use the live what-if"
            )
        return self.model

    def row(self, row_id: Any) -> dict[str, Any]:
        """A test row as the what-if starts from: its features, truth and prediction."""
        n = len(self.audit.predictions)
        if isinstance(row_id, bool) or not isinstance(row_id, int) or not 0 <= row_id < n:
            raise RAIInputError(f"`row_id` must be a test row's position, 0 to {n - 1}")
        out = {
            "row_id": row_id,
            "features": {f: self.audit.features[f].iloc[row_id] for f in self.audit.meta["features"]},
            "y_true": self.audit.y_true.iloc[row_id],
            "y_pred": self.audit.y_pred.iloc[row_id],
            "probabilities": None if self.audit.proba is None else self.audit.proba[row_id].tolist(),
        }
        return A.to_jsonable(out)

    def _predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        from rai_audit.steps.constructor import _predict

        hint = self.train if self.train is not None else self.audit.features
        return _predict(self._require_model(), X, self.audit.task, self.meta["classes"], train=hint)

    def predict(self, rows: Any) -> dict[str, Any]:
        X = rows_frame(rows, self.template)
        y_pred, proba = self._predict(X)
        return A.to_jsonable({"classes": self.meta["classes"], "predictions": y_pred, "probabilities": proba})

    def explain(self, rows: Any) -> dict[str, Any]:
        """Local importance of each row in raw features, per class (or "output"), as the
        explainer step computes it."""
        self._require_model()
        if self.explainer is None:
            raise RAIInputError("this bundle has no explanation (or no train data): no live explanation")
        X = rows_frame(rows, self.template)
        y_pred, _ = self._predict(X)
        classes = self.meta["classes"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw, expected = self.explainer.explain(X, len(classes) if classes else None)  # as run_explainer
        labels = [str(c) for c in classes] if classes and raw.shape[0] == len(classes) else ["output"]
        return A.to_jsonable(
            {
                "method": self.explainer.method,
                "labels": labels,
                "expected_values": dict(zip(labels, expected.tolist())),
                "predictions": y_pred,
                "rows": [
                    {label: dict(zip(self.model_features, raw[k, i])) for k, label in enumerate(labels)}
                    for i in range(len(X))
                ],
            }
        )

    def counterfactuals(self, row: Any, seed_row: Any = None) -> dict[str, Any]:
        """Counterfactuals of one (edited) row with the run's engine and options, each validated
        by the model as the step validates them. ``seed_row``: the test row it was edited from,
        whose seeded draws the batched search uses (the unedited row gets the step's answer)."""
        from rai_audit.steps import counterfactual as C

        model = self._require_model()
        if self.search is None:
            raise RAIInputError("this bundle has no counterfactuals (or no train data): no live search")
        n = len(self.audit.predictions)
        seed = 0 if seed_row is None else seed_row
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < n:
            raise RAIInputError(f"`row_id` must be a test row's position, 0 to {n - 1}, or null")
        X = rows_frame([row], self.template, what="row")
        y_pred, _ = self._predict(X)
        search, meta = self.search, self.meta
        resolved = search.resolved
        # A one-row audit (row 0 = the edited row) for the step's validation (_row_table).
        features = X.copy()
        for f in meta["features"]:
            if f not in features:
                features[f] = self.audit.features[f].iloc[[seed]].to_numpy()
        one = ConstructorArtifact(
            folder=self.audit.folder,
            meta=meta,
            features=features[meta["features"]],
            predictions=pd.DataFrame({A.ROW_ID: [0], A.Y_TRUE: [None], A.Y_PRED: y_pred}),
            cohorts=[],
        )
        already = C._desired(meta, resolved, y_pred.astype(str))(y_pred, np.array([0]))[0]
        found = C._numbered([], meta["model_features"])  # none: the row already has the outcome
        if already:
            status = (
                "already in the desired range"
                if self.audit.task == "regression"
                else f"already predicted {resolved.desired_class}"
            )
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows = np.array([seed])
                if search.options.engine == "batched":
                    statuses, found = C._batched_search(model, search.train, X, rows, meta, resolved, y_pred)
                else:
                    statuses, found = C._explain_chunk(model, search.train, X, rows, meta, resolved)
            status = statuses[0][1]
            found[A.ROW_ID] = 0  # the edited row is row 0 of the one-row audit
        table, valid = C._row_table(one, model, search.train, [(0, status)], found, resolved)
        record = table.iloc[0]
        cfs = []
        if len(valid):
            numeric = set(self.model_features) - set(meta["categorical_features"])
            query = X.iloc[[0] * len(valid)].reset_index(drop=True)
            changed = C.changed_mask(valid[self.model_features].reset_index(drop=True), query, numeric)
            for i, cf in valid.reset_index(drop=True).iterrows():
                cfs.append(
                    {
                        "prediction": cf[C.PREDICTION],
                        "features": {f: cf[f] for f in self.model_features},
                        "changes": [
                            {"feature": f, "from": X[f].iloc[0], "to": cf[f]}
                            for f in self.model_features
                            if changed.at[i, f]
                        ],
                    }
                )
        return A.to_jsonable(
            {
                "prediction": y_pred[0],
                "status": record["status"],
                "requested": int(record["requested"]),
                "found": int(record["found"]),
                "valid": int(record["valid"]),
                "aim": search.aim,
                "engine": search.options.engine,
                "held_fixed": search.held,
                "counterfactuals": cfs,
            }
        )

    def cohort(self, cohort_filter: Any, name: Any = "cohort") -> dict[str, Any]:
        """A cohort's figures on every test row of the bundle, with gather's functions: the model
        overview (metrics, confusion matrix, per sensitive group), fairness, balance, and the
        explainer's importance over its explained rows."""
        from rai_audit.steps.explainer import _aggregate
        from rai_audit.steps.gather import _balance, _fairness, _model_overview

        if not isinstance(name, str) or not name:
            name = "cohort"
        audit = self.audit
        if cohort_filter is None:
            mask = np.ones(len(audit.predictions), dtype=bool)
        else:
            cohorts = load_cohorts({"cohorts": [{"name": name, "filter": cohort_filter}]})
            mask = cohort_masks(cohorts, audit.cohort_frame)[name]
        positions = np.flatnonzero(mask)
        sub = ConstructorArtifact(
            folder=audit.folder,
            meta=audit.meta,
            features=audit.features.iloc[positions].reset_index(drop=True),
            predictions=audit.predictions.iloc[positions].reset_index(drop=True),
            cohorts=[],
        )
        # The groups of all rows, restricted to the cohort: a numeric feature keeps its bins.
        groups = {
            f: (labels.iloc[positions].reset_index(drop=True), binning)
            for f, (labels, binning) in audit.sensitive_groups.items()
        }
        sub.__dict__["sensitive_groups"] = groups  # (a cached_property, given)
        overview = _model_overview(sub, self.fns, {}, groups)
        fairness = _fairness(sub, self.fns, groups, overview) if len(positions) else []  # no group to compare
        out: dict[str, Any] = {
            "name": name,
            "filter": cohort_filter,
            "count": int(mask.sum()),
            "of": int(len(mask)),
            "metric_names": overview["metric_names"],
            "signed_metrics": overview["signed_metrics"],
            "metrics": overview["overall"],
            "sensitive_groups": overview["sensitive_groups"],
            "fairness": fairness,
            "balance": _balance(audit, mask),
            "importance": None,
        }
        if self.local is not None:
            row_ids = audit.predictions[A.ROW_ID].to_numpy()[positions]
            local = self.local[self.local[A.ROW_ID].isin(row_ids)]
            explained = int(local[A.ROW_ID].nunique())
            if explained:
                everything = SimpleNamespace(predictions=audit.predictions, cohort_masks={}, sensitive_groups={})
                figures = _aggregate(local, self.model_features, everything)  # type: ignore[arg-type]
                out["importance"] = {"explained_rows": explained, "global": figures["global"]}
            else:
                out["importance"] = {"explained_rows": 0, "global": []}
        return A.to_jsonable(out)
