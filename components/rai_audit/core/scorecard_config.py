"""The scorecard config: what the PDF shows and which targets it judges.

rai-audit's format (YAML or JSON)::

    model: {name: adult-income, version: "3", type: binary classifier,
            summary: "Screens applications", owner: "Credit risk team"}
    targets:                                   # overall, or for a named cohort
      - accuracy_score >= 0.85                 # text, or a mapping:
      - {metric: recall_score, op: ">=", value: 0.6, cohort: "Under 30"}
      - {metric: log_loss}                     # reported, no target
    fairness:
      sensitive_features: [sex, race]
      metrics: [accuracy_score, selection_rate]  # reported as difference and ratio
      targets:                                 # judged for each sensitive feature
        - accuracy_score difference <= 0.05
        - {metric: selection_rate, kind: ratio, op: ">=", value: 0.8, sensitive_feature: sex}
    feature_importance: {top_n: 10}
    data_explorer: {features: [age, education]}
    cohorts: ["Under 30"]                      # cohorts to show; absent: all

Azure ML's scorecard config (``Model``, ``Metrics`` with ``threshold``,
``FeatureImportance``, ``DataExplorer``, ``Fairness`` with ``fairness_evaluation_kind``,
``Cohorts``, ``Causal``) is read too and turned into this form. Unlike Azure's component,
negative and exponent thresholds are kept, ``top_n`` is honoured, and a numeric
sensitive feature is binned rather than dropped.

``parse_scorecard_config`` checks the form; ``check_against_bundle`` checks the names
against a gathered bundle (metrics of its task, features, cohorts). A ratio target (or ratio
change target) on a metric that can be negative (``r2_score``; ``mean_prediction`` of a target
that can be negative, known from the bundle) is refused: a ratio of two groups' values means
nothing when either can be negative.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from rai_audit.core._errors import RAIInputError
from rai_audit.core.artifacts import read_yaml
from rai_audit.core.metrics import ALWAYS_SIGNED_METRICS

OPS = (">=", "<=", ">", "<", "==")
KINDS = ("difference", "ratio")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TARGET_TEXT = re.compile(
    rf"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)(?:\s+(?P<kind>difference|ratio))?"
    rf"(?:\s*(?P<op>>=|<=|==|=|>|<)\s*(?P<value>{_NUMBER}))?\s*$"
)
# A target on the change since the baseline audit: "accuracy_score change >= -0.01",
# "selection_rate ratio change >= -0.05" (a fairness figure), like TFMA's change thresholds.
_CHANGE_TEXT = re.compile(
    rf"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)(?:\s+(?P<kind>difference|ratio))?\s+change"
    rf"\s*(?P<op>>=|<=|==|=|>|<)\s*(?P<value>{_NUMBER})\s*$"
)
_THRESHOLD = re.compile(rf"^\s*(?P<op>>=|<=|==|=|>|<)\s*(?P<value>{_NUMBER})\s*$")
# Short names people write, as scikit-learn's (the bundle's) metric names.
ALIASES = {
    "accuracy": "accuracy_score",
    "balanced_accuracy": "balanced_accuracy_score",
    "precision": "precision_score",
    "recall": "recall_score",
    "f1": "f1_score",
    "roc_auc": "roc_auc_score",
    "auc": "roc_auc_score",
    "mae": "mean_absolute_error",
    "mse": "mean_squared_error",
    "rmse": "root_mean_squared_error",
    "r2": "r2_score",
    # Azure ML's scorecard documentation spells these so in its fairness table.
    "Selection_rate": "selection_rate",
    "r2_Score": "r2_score",
}
MODEL_KEYS = ("name", "version", "type", "summary", "owner")
KEYS = ("model", "targets", "fairness", "feature_importance", "data_explorer", "cohorts", "changes")
AZURE_KEYS = ("Model", "Metrics", "FeatureImportance", "DataExplorer", "Fairness", "Cohorts", "Causal")
DEFAULT_TOP_N = 10


def _check_ratio(target: dict[str, Any], where: str, signed: Any = ALWAYS_SIGNED_METRICS, why: str = "") -> None:
    """A ratio (or ratio change) target needs a metric that cannot be negative."""
    if target.get("kind") == "ratio" and target["metric"] in signed:
        raise RAIInputError(
            f"{where}: {target['metric']} ratio: {target['metric']} can be negative{why}, so a ratio "
            "of two groups' values means nothing; use a difference target"
        )


def _metric(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise RAIInputError(f"{where}: a metric must be a name, got {name!r}")
    return ALIASES.get(name, name)


def _op_value(op: Any, value: Any, where: str) -> tuple[str | None, float | None]:
    if op is None and value is None:
        return None, None
    op = "==" if op == "=" else op
    if op not in OPS:
        raise RAIInputError(f"{where}: `op` must be one of {list(OPS)}, got {op!r}")
    if isinstance(value, str) and re.fullmatch(_NUMBER, value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise RAIInputError(f"{where}: `value` must be a number, got {value!r}")
    # YAML .inf, text such as 1e999, an integer beyond floats: no text form, JSON writes null.
    number = float(value) if not isinstance(value, int) or abs(value) < 2**1023 else math.inf
    if not math.isfinite(number):
        raise RAIInputError(f"{where}: `value` must be a finite number, got {value!r}")
    return op, number


def _target(item: Any, where: str, *, fairness: bool) -> dict[str, Any]:
    """One target from its text ("accuracy_score >= 0.85") or mapping form."""
    if isinstance(item, str):
        match = _TARGET_TEXT.match(item)
        if not match:
            form = "'<metric> <difference|ratio> <op> <number>'" if fairness else "'<metric> <op> <number>'"
            raise RAIInputError(f"{where}: cannot read target {item!r}; write it as {form}, with op one of {list(OPS)}")
        item = {k: v for k, v in match.groupdict().items() if v is not None}
    if not isinstance(item, dict):
        raise RAIInputError(f"{where}: a target must be text or a mapping, got {item!r}")
    allowed = {"metric", "op", "value"} | ({"kind", "sensitive_feature"} if fairness else {"cohort"})
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise RAIInputError(f"{where}: unknown keys {unknown} in target {item!r}; allowed are {sorted(allowed)}")
    op, value = _op_value(item.get("op"), item.get("value"), where)
    target: dict[str, Any] = {"metric": _metric(item.get("metric"), where), "op": op, "value": value}
    if fairness:
        kind = item.get("kind", "difference")
        if kind not in KINDS:
            raise RAIInputError(f"{where}: `kind` must be one of {list(KINDS)}, got {kind!r}")
        if op is None:
            raise RAIInputError(f"{where}: a fairness target needs an operator and a value, got {item!r}")
        target.update(kind=kind, sensitive_feature=item.get("sensitive_feature"))
        _check_ratio(target, where)
    else:
        cohort = item.get("cohort")
        if cohort is not None and not isinstance(cohort, str):
            raise RAIInputError(f"{where}: `cohort` must be a cohort name, got {cohort!r}")
        target["cohort"] = cohort
    return target


def _change_target(item: Any, where: str) -> dict[str, Any]:
    """A target on a figure's change since the baseline, from text or a mapping."""
    if isinstance(item, str):
        match = _CHANGE_TEXT.match(item)
        if not match:
            raise RAIInputError(
                f"{where}: cannot read change target {item!r}; write it as "
                f"'<metric> [difference|ratio] change <op> <number>', with op one of {list(OPS)}"
            )
        item = {k: v for k, v in match.groupdict().items() if v is not None}
    if not isinstance(item, dict):
        raise RAIInputError(f"{where}: a change target must be text or a mapping, got {item!r}")
    allowed = {"metric", "kind", "op", "value", "cohort", "sensitive_feature"}
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise RAIInputError(f"{where}: unknown keys {unknown} in change target {item!r}; allowed are {sorted(allowed)}")
    op, value = _op_value(item.get("op"), item.get("value"), where)
    if op is None:
        raise RAIInputError(f"{where}: a change target needs an operator and a value, got {item!r}")
    kind = item.get("kind")
    if kind is not None and kind not in KINDS:
        raise RAIInputError(f"{where}: `kind` must be one of {list(KINDS)} (a fairness figure) or absent, got {kind!r}")
    if kind is None and item.get("sensitive_feature") is not None:
        raise RAIInputError(f"{where}: `sensitive_feature` needs `kind` (difference or ratio)")
    if kind is not None and item.get("cohort") is not None:
        raise RAIInputError(f"{where}: fairness figures are over the whole test set; `cohort` is for metrics")
    target = {
        "metric": _metric(item.get("metric"), where),
        "kind": kind,
        "op": op,
        "value": value,
        "cohort": item.get("cohort"),
        "sensitive_feature": item.get("sensitive_feature"),
    }
    _check_ratio(target, where)
    return target


def _names(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RAIInputError(f"{where} must be a list of names, got {value!r}")
    return list(value)


def _from_azure(config: dict[str, Any]) -> dict[str, Any]:
    """Azure ML's scorecard config in rai-audit's form."""
    unknown = sorted(set(config) - set(AZURE_KEYS), key=str)
    if unknown:
        raise RAIInputError(f"unknown keys {unknown} in an Azure ML scorecard config; allowed are {list(AZURE_KEYS)}")
    for section in ("Model", "Metrics", "Fairness"):  # read as mappings below
        if not isinstance(config.get(section) or {}, dict):
            raise RAIInputError(f"`{section}` must be a mapping, got {config[section]!r}")
    model = config.get("Model") or {}
    out: dict[str, Any] = {
        "model": {"name": model.get("ModelName"), "type": model.get("ModelType"), "summary": model.get("ModelSummary")}
    }
    targets = []
    for name, spec in (config.get("Metrics") or {}).items():
        spec = spec or {}
        if not isinstance(spec, dict):
            raise RAIInputError(f'`Metrics.{name}` must be a mapping such as {{threshold: ">=0.85"}}, got {spec!r}')
        threshold = spec.get("threshold")
        if threshold is None:
            targets.append({"metric": name})
            continue
        match = _THRESHOLD.match(str(threshold))
        if not match:
            raise RAIInputError(
                f'`Metrics.{name}.threshold` must be an operator and a number (e.g. ">=0.85"), got {threshold!r}'
            )
        targets.append({"metric": name, **match.groupdict()})
    out["targets"] = targets
    if "FeatureImportance" in config:
        out["feature_importance"] = config["FeatureImportance"] or {}
    if "DataExplorer" in config:
        out["data_explorer"] = config["DataExplorer"] or {}
    if "Cohorts" in config:
        out["cohorts"] = config["Cohorts"]
    fairness = config.get("Fairness")
    if fairness:
        kind = fairness.get("fairness_evaluation_kind", "difference")
        if kind not in KINDS:
            raise RAIInputError(f"`Fairness.fairness_evaluation_kind` must be one of {list(KINDS)}, got {kind!r}")
        metrics = _names(fairness.get("metric") or [], "`Fairness.metric`")
        fair: dict[str, Any] = {
            "sensitive_features": fairness.get("sensitive_features") or [],
            "metrics": metrics,
            "kind": kind,
        }
        threshold = fairness.get("threshold")
        if threshold is not None:
            match = _THRESHOLD.match(str(threshold))
            if not match:
                raise RAIInputError(f"`Fairness.threshold` must be an operator and a number, got {threshold!r}")
            fair["targets"] = [{"metric": m, "kind": kind, **match.groupdict()} for m in metrics]
        out["fairness"] = fair
    return out


def parse_scorecard_config(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Read (a file or a mapping) and check a scorecard config; return its normal form."""
    if isinstance(source, (str, Path)):
        config = read_yaml(Path(source), what="scorecard config")
    else:
        config = source
    if not isinstance(config, dict):
        raise RAIInputError(f"the scorecard config must be a mapping of keys, got {type(config).__name__}")
    if set(config) & set(AZURE_KEYS):
        config = _from_azure(config)
    unknown = sorted(set(config) - set(KEYS), key=str)  # YAML keys may be numbers, booleans, null
    if unknown:
        raise RAIInputError(
            f"unknown scorecard config keys {unknown}; allowed are {list(KEYS)} (or Azure ML's {list(AZURE_KEYS)})"
        )
    model = config.get("model") or {}
    if not isinstance(model, dict) or set(model) - set(MODEL_KEYS):
        raise RAIInputError(f"`model` must be a mapping with keys among {list(MODEL_KEYS)}, got {model!r}")
    out: dict[str, Any] = {"model": {k: None if model.get(k) is None else str(model[k]) for k in MODEL_KEYS}}
    targets = config.get("targets") or []
    if not isinstance(targets, list):
        raise RAIInputError(f"`targets` must be a list, got {targets!r}")
    out["targets"] = [_target(t, f"`targets[{i}]`", fairness=False) for i, t in enumerate(targets)]

    fairness = config.get("fairness")
    if fairness is not None:
        if not isinstance(fairness, dict) or set(fairness) - {"sensitive_features", "metrics", "kind", "targets"}:
            raise RAIInputError(
                f"`fairness` must be a mapping with keys sensitive_features, metrics, kind, targets; got {fairness!r}"
            )
        kind = fairness.get("kind", "difference")
        if kind not in KINDS:
            raise RAIInputError(f"`fairness.kind` must be one of {list(KINDS)}, got {kind!r}")
        fair_targets = fairness.get("targets") or []
        if not isinstance(fair_targets, list):
            raise RAIInputError(f"`fairness.targets` must be a list, got {fair_targets!r}")
        fair_targets = [_target(t, f"`fairness.targets[{i}]`", fairness=True) for i, t in enumerate(fair_targets)]
        metrics = [
            _metric(m, "`fairness.metrics`") for m in _names(fairness.get("metrics") or [], "`fairness.metrics`")
        ]
        metrics += [t["metric"] for t in fair_targets if t["metric"] not in metrics]
        out["fairness"] = {
            "sensitive_features": _names(fairness.get("sensitive_features") or [], "`fairness.sensitive_features`"),
            "metrics": metrics,
            "kind": kind,
            "targets": fair_targets,
        }
    else:
        out["fairness"] = None

    importance = config.get("feature_importance")
    if importance is not None:
        top_n = (importance or {}).get("top_n", DEFAULT_TOP_N) if isinstance(importance, dict) else importance
        if isinstance(top_n, float) and top_n.is_integer():  # KFP passes a dict's integers as floats
            top_n = int(top_n)
        if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
            raise RAIInputError(f"`feature_importance.top_n` must be an integer >= 1, got {top_n!r}")
        out["feature_importance"] = {"top_n": top_n}
    else:
        out["feature_importance"] = {"top_n": DEFAULT_TOP_N}
    explorer = config.get("data_explorer")
    features = (explorer or {}).get("features", []) if isinstance(explorer, dict) else explorer
    out["data_explorer"] = {"features": _names(features or [], "`data_explorer.features`")}
    cohorts = config.get("cohorts")
    out["cohorts"] = None if cohorts is None else _names(cohorts, "`cohorts`")
    changes = config.get("changes") or []
    if not isinstance(changes, list):
        raise RAIInputError(f"`changes` must be a list, got {changes!r}")
    out["changes"] = [_change_target(t, f"`changes[{i}]`") for i, t in enumerate(changes)]
    return out


def check_against_bundle(
    config: dict[str, Any],
    *,
    metric_names: list[str],
    features: list[str],
    cohorts: list[str],
    signed_metrics: list[str] | None = None,
) -> None:
    """Every metric, feature and cohort the config names must exist in the bundle, and no
    ratio target may be on one of the bundle's ``signed_metrics`` (``metrics.signed_metrics``
    of its task and target; None: only those signed whatever the target)."""
    signed = ALWAYS_SIGNED_METRICS if signed_metrics is None else signed_metrics
    why = " (the target has negative values)"

    def known_metric(name: str, where: str) -> None:
        if name not in metric_names:
            raise RAIInputError(f"{where}: unknown metric {name!r} for this model; the metrics are {metric_names}")

    for i, t in enumerate(config["targets"]):
        known_metric(t["metric"], f"`targets[{i}]`")
        if t["cohort"] is not None and t["cohort"] not in cohorts:
            raise RAIInputError(f"`targets[{i}]`: unknown cohort {t['cohort']!r}; the cohorts are {cohorts}")
    fairness = config["fairness"]
    if fairness:
        for name in fairness["metrics"]:
            known_metric(name, "`fairness`")
        for name in fairness["sensitive_features"]:
            if name not in features:
                raise RAIInputError(
                    f"`fairness.sensitive_features`: unknown feature {name!r}; the features are {features}"
                )
        for i, t in enumerate(fairness["targets"]):
            _check_ratio(t, f"`fairness.targets[{i}]`", signed, why)
            if t["sensitive_feature"] is not None and t["sensitive_feature"] not in fairness["sensitive_features"]:
                raise RAIInputError(
                    f"`fairness.targets[{i}]`: `sensitive_feature` {t['sensitive_feature']!r} is not "
                    f"among `fairness.sensitive_features` {fairness['sensitive_features']}"
                )
        if fairness["targets"] and not fairness["sensitive_features"]:
            raise RAIInputError("`fairness.targets` need `fairness.sensitive_features`")
    for name in config["data_explorer"]["features"]:
        if name not in features:
            raise RAIInputError(f"`data_explorer.features`: unknown feature {name!r}; the features are {features}")
    for name in config["cohorts"] or []:
        if name not in cohorts:
            raise RAIInputError(f"`cohorts`: unknown cohort {name!r}; the cohorts are {cohorts}")
    for i, t in enumerate(config["changes"]):
        known_metric(t["metric"], f"`changes[{i}]`")
        _check_ratio(t, f"`changes[{i}]`", signed, why)
        if t["cohort"] is not None and t["cohort"] not in cohorts:
            raise RAIInputError(f"`changes[{i}]`: unknown cohort {t['cohort']!r}; the cohorts are {cohorts}")
        if t["kind"] is not None and (not fairness or t["metric"] not in fairness["metrics"]):
            raise RAIInputError(
                f"`changes[{i}]`: {t['metric']} {t['kind']} is not a fairness figure of this "
                "scorecard; add the metric to `fairness.metrics`"
            )
        if t["sensitive_feature"] is not None and t["sensitive_feature"] not in fairness["sensitive_features"]:
            raise RAIInputError(
                f"`changes[{i}]`: `sensitive_feature` {t['sensitive_feature']!r} is not among "
                f"`fairness.sensitive_features` {fairness['sensitive_features']}"
            )
