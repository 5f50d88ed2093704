"""The audit's own KFP artifact types, so that a miswired pipeline fails when it is compiled.

A step's input typed ``Insights`` takes the constructor's output and nothing else: KFP's
compiler refuses a ``Dataset`` (or any other typed artifact) there with an
``InconsistentTypeException``. Only a plain ``system.Artifact`` (e.g. an importer's default)
is accepted anywhere, as KFP treats it as "any type".

KFP 2's SDK accepts schema titles in the ``system`` and ``google`` namespaces only
(``kfp.dsl.types.type_utils.validate_schema_title``), so the titles are ``system.RaiAudit<Name>``:
distinct from KFP's own, and shown as generic artifacts by the Kubeflow UI. A component YAML
holds the title as text, so loading it needs kfp, not this module.
"""

from kfp import dsl


class Insights(dsl.Artifact):
    """The constructor's output: the validated inputs, predictions and cohorts every later step reads."""

    schema_title = "system.RaiAuditInsights"
    schema_version = "0.0.1"


class Analysis(dsl.Artifact):
    """An analysis step's result (error analysis, explanation, counterfactuals, causal), for gather."""

    schema_title = "system.RaiAuditAnalysis"
    schema_version = "0.0.1"


class Dashboard(dsl.Artifact):
    """gather's bundle: dashboard.html, insights.json, the Parquet tables and a manifest."""

    schema_title = "system.RaiAuditDashboard"
    schema_version = "0.0.1"


class Scorecard(dsl.Artifact):
    """A scorecard: scorecard.pdf, scorecard.json and a manifest (find_baseline's: scorecard.json)."""

    schema_title = "system.RaiAuditScorecard"
    schema_version = "0.0.1"


class Verdict(dsl.Artifact):
    """The scorecard's verdict alone, as TFX's ModelBlessing: verdict.json and ``blessed`` in the metadata.

    A deployment step of one's own takes it to know, without reading the scorecard, whether
    the model may go on.
    """

    schema_title = "system.RaiAuditVerdict"
    schema_version = "0.0.1"


ARTIFACT_TYPES = (Insights, Analysis, Dashboard, Scorecard, Verdict)
