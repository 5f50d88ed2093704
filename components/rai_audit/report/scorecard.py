"""Render the scorecard: an HTML page for print (Jinja2, charts as inline SVG) made a PDF by weasyprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import Markup

from rai_audit.report import charts
from rai_audit.report.dashboard import ENV

# What each metric's number is, printed beside it: a share of rows only where it is one.
METRIC_UNITS = {
    "mean_absolute_error": "target units",
    "root_mean_squared_error": "target units",
    "mean_squared_error": "squared target units",
    "mean_prediction": "target units",
    "r2_score": "1 is perfect, below 0 worse than the mean",
    "roc_auc_score": "0 to 1, 0.5 is chance",
    "log_loss": "nats, lower is better",
    "f1_score": "0 to 1",
    "balanced_accuracy_score": "mean recall per class",
    "precision_score": "share of predicted positives",
    "recall_score": "share of actual positives",
    "false_positive_rate": "share of actual negatives",
    "false_negative_rate": "share of actual positives",
}


def _svg(chart) -> Markup:
    # vl-convert writes the SVG from our aggregated figures; labels inside it are escaped by Vega.
    return Markup(charts.to_svg(chart))


def _unit(metric: str, task: str = "binary_classification") -> str:
    if task == "multiclass_classification" and metric in ("precision_score", "recall_score", "f1_score"):
        return "mean over classes"
    return METRIC_UNITS.get(metric, "share of rows")


def _charts(card: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    performance = card["performance"]
    if performance.get("confusion_matrix"):
        cm = performance["confusion_matrix"]
        out["confusion"] = _svg(charts.confusion_matrix(cm["labels"], cm["matrix"]))
    if performance.get("grid"):
        out["predicted_vs_true"] = _svg(
            charts.binned_scatter(performance["grid"], x_title="true value", y_title="predicted value")
        )
        residuals = performance["residuals"]
        out["residuals"] = _svg(
            charts.histogram(residuals["edges"], residuals["counts"], x_title="residual (predicted - true)")
        )
    out["fairness"] = {}
    for entry in card["fairness"]:
        for m in entry["metrics"]:
            rows = [{"group": g["group"], "value": g["value"]} for g in m["by_group"] if g["value"] is not None]
            if rows:
                out["fairness"][(entry["feature"], m["metric"])] = _svg(
                    charts.horizontal_bars(
                        rows,
                        label="group",
                        value="value",
                        label_title=entry["feature"],
                        value_title=f"{m['metric']} ({_unit(m['metric'], card['task_type'])})",
                    )
                )
    out["explorer"] = {}
    for feature in card["data_explorer"]:
        rows = [{"bin": b["bin"], "share": b["share"]} for b in feature["bins"]]
        out["explorer"][feature["feature"]] = _svg(
            charts.horizontal_bars(
                rows, label="bin", value="share", label_title=feature["feature"], value_title="share of test rows"
            )
        )
    if card["feature_importance"]:
        out["importance"] = _svg(
            charts.horizontal_bars(
                card["feature_importance"],
                label="feature",
                value="importance",
                label_title="feature",
                value_title="mean |contribution| (model output units)",
            )
        )
    causal = card.get("causal")
    if causal and causal.get("global_effects"):
        out["causal"] = _svg(charts.treatment_effects(causal["global_effects"], causal["outcome"]))
    return out


def render_scorecard_html(card: dict[str, Any]) -> str:
    return ENV.get_template("scorecard.html.j2").render(
        c=card, charts=_charts(card), unit=lambda metric: _unit(metric, card["task_type"])
    )


def render_scorecard_pdf(card: dict[str, Any], path: Path) -> None:
    import weasyprint

    weasyprint.HTML(string=render_scorecard_html(card)).write_pdf(path)
