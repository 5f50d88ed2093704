"""The constructor's insights artifact, read back into memory by the analysis steps and gather."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from rai_audit.core import artifacts as A
from rai_audit.core._errors import ArtifactIntegrityError
from rai_audit.core.cohorts import cohort_frame, cohort_masks
from rai_audit.core.metrics import class_positions, group_labels
from rai_audit.core.options import DEFAULT_MIN_GROUP_SIZE

# Per sensitive feature: each row's group label, and the binning of a numeric feature (or None).
SensitiveGroups: TypeAlias = "dict[str, tuple[pd.Series, dict[str, Any] | None]]"

# What the constructor writes to meta.json (beside kind, schema_version, run_id) and the steps read.
CONSTRUCTOR_META_KEYS = (
    "task_type",
    "target_column",
    "features",
    "model_features",
    "categorical_features",
    "numeric_features",
    "sensitive_features",
    "dropped_features",
    "classes",
    "positive_label",
    "has_probabilities",
    "n_train",
    "n_test",
    "sample",
    "cohort_sizes",
    "model",
    "options",
)


@dataclass
class ConstructorArtifact:
    folder: Path
    meta: dict[str, Any]
    features: pd.DataFrame
    predictions: pd.DataFrame
    cohorts: list[dict[str, Any]]

    @property
    def run_id(self) -> str:
        return self.meta["run_id"]

    @property
    def task(self) -> str:
        return self.meta["task_type"]

    # Artifacts written before these options existed carry none: the defaults then.
    @property
    def desired_outcome(self) -> str:
        return self.meta.get("desired_outcome", "increase")

    @property
    def immutable_features(self) -> list[str]:
        return list(self.meta.get("immutable_features", []))

    @property
    def protected_features(self) -> list[str]:
        """Features no counterfactual or causal policy may suggest changing unless named
        explicitly: the sensitive and the immutable ones."""
        return list(dict.fromkeys([*self.meta["sensitive_features"], *self.immutable_features]))

    @property
    def min_group_size(self) -> int:
        return int(self.meta.get("min_group_size", DEFAULT_MIN_GROUP_SIZE))

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    @property
    def y_true(self) -> pd.Series:
        return self.predictions[A.Y_TRUE]

    @property
    def y_pred(self) -> pd.Series:
        return self.predictions[A.Y_PRED]

    @cached_property
    def proba(self) -> np.ndarray | None:
        if not self.meta.get("has_probabilities"):
            return None
        return self.predictions[[A.proba_column(i) for i in range(len(self.meta["classes"]))]].to_numpy()

    def load_model(self) -> Any:
        """The model copied into this artifact, loaded as the constructor was allowed to load it.

        The copy is the file (or MLflow folder) the constructor checked (its sha256 is in
        meta.json and the manifest), so its trusted skops types and pickle permission carry
        over, and a booster's outputs are numbered by the same classes.
        """
        from rai_audit.core.models import load_any_model

        model = self.meta["model"]
        return load_any_model(
            self.folder / model["file"],
            skops_trusted_types=model.get("skops_trusted_types"),
            allow_pickle=model.get("allow_pickle", False),
            classes=model.get("load_classes"),
        )

    @cached_property
    def metric_labels(self) -> tuple[np.ndarray, np.ndarray, list[Any] | None, Any]:
        """y_true and y_pred for metrics, with the classes and positive label they are written in.

        A classifier's labels become their positions in ``classes`` (see ``class_positions``).
        """
        classes = self.meta["classes"] if self.is_classifier else None
        return class_positions(self.y_true.to_numpy(), self.y_pred.to_numpy(), classes, self.meta["positive_label"])

    @cached_property
    def cohort_frame(self) -> pd.DataFrame:
        """Features plus y_true, y_pred, error (and correct): what cohort filters select on."""
        return cohort_frame(self.features, self.y_true, self.y_pred, is_classifier=self.is_classifier)

    @cached_property
    def cohort_masks(self) -> dict[str, np.ndarray]:
        return cohort_masks(self.cohorts, self.cohort_frame)

    @cached_property
    def sensitive_groups(self) -> SensitiveGroups:
        """Per sensitive feature: the group label of each row, and the binning used, if any."""
        return {f: group_labels(self.features[f]) for f in self.meta["sensitive_features"]}


def load_constructor_artifact(folder: str | Path) -> ConstructorArtifact:
    """Verify and read the constructor's artifact."""
    folder = Path(folder)
    meta = A.read_artifact_meta(folder, expected_kind=A.KIND_CONSTRUCTOR)
    # The manifest only says the files are those written (a rewritten one matches anything):
    # check that meta.json holds what the steps read, and read the tables with clear errors.
    missing = [k for k in CONSTRUCTOR_META_KEYS if k not in meta]
    if missing:
        raise ArtifactIntegrityError(
            f"artifact {folder}: {A.META_FILE} lacks the keys {missing}; re-run the constructor"
        )
    cohorts = A.read_json(folder / A.COHORTS_FILE, what="artifact file")
    if not isinstance(cohorts, dict) or not isinstance(cohorts.get("cohorts"), list):
        raise ArtifactIntegrityError(
            f"artifact {folder}: {A.COHORTS_FILE} holds no `cohorts` list; re-run the constructor"
        )
    return ConstructorArtifact(
        folder=folder,
        meta=meta,
        features=A.read_parquet(folder / A.TEST_FEATURES_FILE),
        predictions=A.read_parquet(folder / A.PREDICTIONS_FILE),
        cohorts=cohorts["cohorts"],
    )
