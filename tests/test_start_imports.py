"""A task's start imports no heavy library (issue 25): each of them costs 1-2 s in every
task's process, before the step's work begins; the work imports what it needs itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from rai_audit.preloaded_tasks import TASK_MODULES

HEAVY = [
    "sklearn",
    "scipy.stats",
    "lightgbm",
    "econml",
    "shap",
    "interpret_community",
    "altair",
    "weasyprint",
    "dice_ml",
]


def printed_by_python(code: str, env: dict[str, str] | None = None) -> object:
    """The JSON that ``code`` prints last, run in a fresh Python process (nothing imported yet)."""
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_no_task_imports_a_heavy_library_before_its_work():
    code = (
        f"import importlib, json, sys\nfor m in {TASK_MODULES!r}: importlib.import_module(m)\n"
        f"print(json.dumps([h for h in {HEAVY!r} if h in sys.modules]))"
    )
    # _KFP_RUNTIME: as the component's command sets it
    assert printed_by_python(code, env={**os.environ, "_KFP_RUNTIME": "true"}) == []


def test_a_binary_scorecard_s_metrics_need_no_scikit_learn():
    """The scorecard counts its label metrics, binary ROC AUC and confusion matrices, and builds
    scikit-learn's metric functions without importing it (1-2 s of a scorecard task)."""
    code = (
        "import json, sys\nimport numpy as np\n"
        "from rai_audit.core.metrics import binary_roc_auc, confusion, counted_metric, metric_functions\n"
        "metric_functions('binary_classification', classes=[0, 1], positive=1, with_proba=True)\n"
        "y, p = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])\n"
        "values = [counted_metric('recall_score', y, p, 2, 1), binary_roc_auc(y == 1, np.array([.1, .8, .4, .3]))]\n"
        "values.append(confusion(y, p, [0, 1])['matrix'])\n"
        "print(json.dumps([values, 'sklearn' in sys.modules]))"
    )
    assert printed_by_python(code) == [[0.5, 1.0, [[2, 0], [1, 1]]], False]


def test_a_binary_classifier_s_gathered_metrics_need_no_scikit_learn():
    """Gather computes every metric of a binary classifier (log loss and ROC AUC too) on class
    positions without importing scikit-learn (1.7 s of a ~3 s gather task)."""
    code = (
        "import json, sys\nimport numpy as np\n"
        "from rai_audit.core.metrics import compute_metrics, metric_functions\n"
        "fns = metric_functions('binary_classification', classes=[0, 1], positive=1, with_proba=True)\n"
        "y, p = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])\n"
        "proba = np.array([[.9, .1], [.2, .8], [.6, .4], [.7, .3]])\n"
        "values = compute_metrics(fns, y, p, proba)\n"
        "print(json.dumps([values['recall_score'], values['roc_auc_score'], round(values['log_loss'], 6), "
        "'sklearn' in sys.modules]))"
    )
    log_loss = round(-(np.log(0.9) + np.log(0.8) + np.log(0.4) + np.log(0.7)) / 4, 6)
    assert printed_by_python(code) == [0.5, 1.0, log_loss, False]


def test_the_explainer_imports_interpret_community_without_mlflow_and_mlflow_still_imports_after():
    """interpret-community's ml-wrappers import MLflow (1.6 s) only for endpoint models, which
    no step uses; the explainer imports it with MLflow blocked, then leaves MLflow importable
    (an MLflow model's own step needs it)."""
    code = (
        "import json, sys\nfrom rai_audit.steps.explainer import _import_interpret_community\n"
        "_import_interpret_community()\nfrom interpret_community import TabularExplainer\n"
        "seen = ['mlflow' in sys.modules, 'interpret_community.shap' in sys.modules]\n"
        "import mlflow.pyfunc\nprint(json.dumps([*seen, hasattr(mlflow.pyfunc, 'PythonModel')]))"
    )
    assert printed_by_python(code) == [False, True, True]


def test_the_causal_step_imports_econml_without_matplotlib_and_matplotlib_still_imports_after():
    code = (
        "import json, sys\nfrom rai_audit.steps.causal import _import_causal_analysis\n"
        "CausalAnalysis = _import_causal_analysis()\nseen = ['matplotlib' in sys.modules, CausalAnalysis.__name__]\n"
        "import matplotlib.pyplot\nprint(json.dumps([*seen, hasattr(matplotlib.pyplot, 'figure')]))"
    )
    assert printed_by_python(code) == [False, "CausalAnalysis", True]
