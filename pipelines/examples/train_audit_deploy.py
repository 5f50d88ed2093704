"""Train, audit, and register only a model that passes: rai-audit inside a training pipeline.

A pipeline author's own training component (a scikit-learn pipeline on a table imported from
object storage, written with ``skops.io.dump(model, out.path)``) feeds rai-audit's components,
loaded from their component YAMLs (``components/<step>/component.yaml``: kfp is all it needs,
not rai-audit): the constructor, error analysis, gather and the scorecard; the model is
registered only if the scorecard passed (``dsl.If`` on its ``passed`` output).

    python pipelines/examples/train_audit_deploy.py train_audit_deploy.yaml   # compile it

On a cluster the tables are s3://, minio:// or gs:// URIs (the importers fetch them) and the
training task runs in the constructor's image (scikit-learn, skops, pandas). Locally,
``run_locally`` runs it with kfp.local (each task a subprocess of this Python environment,
which then needs scikit-learn, skops and pandas; ``tests/test_example_pipeline.py`` does).
"""

# No `from __future__ import annotations`: KFP reads the annotations at decoration time.
import sys
from pathlib import Path

from kfp import compiler, components, dsl
from kfp.dsl import Dataset, Input, Model, Output

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
rai = {
    name: components.load_component_from_file(str(COMPONENTS / name / "component.yaml"))
    for name in ("constructor", "error_analysis", "gather", "scorecard", "register_model")
}
# The training step runs in the constructor's image, which has scikit-learn, skops and pandas.
TRAIN_IMAGE = rai["constructor"].component_spec.implementation.container.image

DEFAULT_CONFIG = {
    "model": {"name": "example-classifier"},
    "targets": ["accuracy_score >= 0.7", "recall_score >= 0.5"],
    "fairness": {"sensitive_features": ["group"], "targets": ["accuracy_score difference <= 0.2"]},
}


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def train(
    train_data: Input[Dataset],
    model: Output[Model],
    target_column: str,
    categorical_features: list,
    max_depth: int = 4,
    random_state: int = 0,
):
    """Fits one-hot encoding and a decision tree on the train table; saves it with skops.

    Args:
        train_data: The train table (Parquet), with the target column.
        model: The fitted scikit-learn pipeline, as skops.io.dump writes it.
        target_column: The label column.
        categorical_features: Columns to one-hot encode; the others are numeric.
        max_depth: Depth of the tree.
        random_state: The tree's seed.
    """
    import pandas as pd
    import skops.io
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    frame = pd.read_parquet(train_data.path)
    features = frame.drop(columns=[target_column])
    encode = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore"), list(categorical_features))], remainder="passthrough"
    )
    pipe = Pipeline(
        [("encode", encode), ("tree", DecisionTreeClassifier(max_depth=max_depth, random_state=random_state))]
    )
    pipe.fit(features, frame[target_column])
    skops.io.dump(pipe, model.path)  # the normal way: no extension, and rai-audit reads it by content
    model.metadata.update(framework="scikit-learn", max_depth=max_depth, rows=len(frame))


@dsl.pipeline(name="train-audit-deploy")
def train_audit_deploy(
    train_uri: str,
    test_uri: str,
    target_column: str,
    positive_label: str,
    categorical_features: list,
    sensitive_features: list,
    max_depth: int = 4,
    scorecard_config: dict = DEFAULT_CONFIG,
    bootstrap: int = 200,
):
    """Trains a model, audits it with rai-audit and registers it only if its scorecard passed.

    Args:
        train_uri: The train table (Parquet) in object storage (a local path under kfp.local).
        test_uri: The test table (Parquet), with the target column.
        target_column: The label column.
        positive_label: The positive class, as text.
        categorical_features: Columns to one-hot encode.
        sensitive_features: Features to assess fairness over.
        max_depth: Depth of the tree the training step fits.
        scorecard_config: The targets the model must meet to be registered.
        bootstrap: Resamples for the targets' confidence intervals; 0: none.
    """
    train_data = dsl.importer(artifact_uri=train_uri, artifact_class=Dataset, reimport=False)
    test_data = dsl.importer(artifact_uri=test_uri, artifact_class=Dataset, reimport=False)
    trained = train(
        train_data=train_data.output,
        target_column=target_column,
        categorical_features=categorical_features,
        max_depth=max_depth,
    )
    built = rai["constructor"](
        model=trained.outputs["model"],
        train_data=train_data.output,
        test_data=test_data.output,
        target_column=target_column,
        task_type="binary_classification",
        positive_label=positive_label,
        categorical_features=categorical_features,
        sensitive_features=sensitive_features,
        skops_trusted_types=["sklearn.tree._tree.Tree"],  # the tree's state: skops asks to name it
    )
    errors = rai["error_analysis"](constructor=built.outputs["insights"], max_depth=2)
    gathered = rai["gather"](constructor=built.outputs["insights"], insight_1=errors.outputs["error_analysis"])
    card = rai["scorecard"](dashboard=gathered.outputs["dashboard"], config=scorecard_config, bootstrap=bootstrap)
    with dsl.If(card.outputs["passed"] == True, name="scorecard-passed"):  # noqa: E712 (a KFP condition)
        rai["register_model"](model=trained.outputs["model"], scorecard=card.outputs["scorecard"])


def run_locally(arguments: dict, pipeline_root: str):
    """The pipeline under kfp.local, every task a subprocess of this Python environment."""
    from kfp import local

    try:  # kfp.local 2.17 reads a condition on a named output as always false without it
        from rai_audit import kfp_local_compat

        kfp_local_compat.patch()
    except ImportError:
        print("rai-audit is not installed: kfp.local skips the gated registration", file=sys.stderr)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=pipeline_root)
    return train_audit_deploy(**arguments)


if __name__ == "__main__":
    output = sys.argv[1] if len(sys.argv) > 1 else "train_audit_deploy.yaml"
    compiler.Compiler().compile(train_audit_deploy, output)
    print(f"compiled to {output}")
