"""rai-audit: the Responsible AI dashboard and scorecard as Kubeflow Pipelines steps.

Each step is a plain function over artifact folders (``rai_audit.steps``); the KFP
components in ``rai_audit.kfp_components`` are thin wrappers around them.
"""

__version__ = "0.1.0"
