"""Pipeline builders: the full audit composes constructor -> analysis steps -> gather."""

# No `from __future__ import annotations` here: KFP reads the annotations at decoration time.
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model

from rai_audit.kfp_components import constructor, gather

PIPELINE_NAME = "rai-audit"


@dsl.pipeline(name=PIPELINE_NAME, description="Responsible AI audit of a tabular model")
def audit_pipeline(
    model_uri: str,
    train_data_uri: str,
    test_data_uri: str,
    target_column: str,
    task_type: str,
    categorical_features: list = [],
    sensitive_features: list = [],
    dropped_features: list = [],
    classes: list = [],
    positive_label: str = "",
    cohorts: list = [],
    sample_size: int = 0,
    random_state: int = 0,
    skops_trusted_types: list = [],
) -> Artifact:
    model = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=False)
    model.set_display_name("import model")
    train = dsl.importer(artifact_uri=train_data_uri, artifact_class=Dataset, reimport=False)
    train.set_display_name("import train data")
    test = dsl.importer(artifact_uri=test_data_uri, artifact_class=Dataset, reimport=False)
    test.set_display_name("import test data")
    built = constructor(
        model=model.output, train_data=train.output, test_data=test.output,
        target_column=target_column, task_type=task_type,
        categorical_features=categorical_features, sensitive_features=sensitive_features,
        dropped_features=dropped_features, classes=classes, positive_label=positive_label,
        cohorts=cohorts, sample_size=sample_size, random_state=random_state,
        skops_trusted_types=skops_trusted_types,
    )
    gathered = gather(constructor=built.outputs["insights"])
    return gathered.outputs["dashboard"]


PIPELINES = {"audit": audit_pipeline}
