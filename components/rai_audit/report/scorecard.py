"""Render the scorecard: an HTML page for print (Jinja2, charts as inline SVG) made a PDF by weasyprint.

The PDF is evidence meant to be kept: PDF/A-3b (archival: fonts embedded, an sRGB output
intent, XMP metadata) and tagged (headings, tables whose data cells name their header
cells, every chart a figure with alternate text saying what it shows, the document's
language), for readers who use assistive technology. Its XMP metadata name the model, its
version, the audit run, the verdict and the producer; ``scorecard.json`` and the audited
bundle's ``manifest.json`` ride inside it as PDF/A-3 associated files, so the PDF alone is
enough to re-check its figures and which bundle it judged (``rai_audit.report.evidence``).
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from markupsafe import Markup

from rai_audit import __version__
from rai_audit.report import charts
from rai_audit.report.dashboard import ENV, effect_unit

# PDF/A-3b: the archival level WeasyPrint writes that allows embedded (associated) files.
# It has one variant per document, so PDF/UA-1's identification cannot be added to it; the
# tags PDF/UA asks for are written all the same (pdf_tags).
PDF_VARIANT = "pdf/a-3b"
PRODUCER = f"rai-audit {__version__}"
# The XMP namespace of the scorecard's own properties, declared in the packet as a PDF/A
# extension schema (PDF/A allows no undeclared property).
XMP_NAMESPACE = "urn:rai-audit:ns:scorecard:1.0#"
XMP_PREFIX = "raiaudit"
XMP_PROPERTIES = {  # name -> (XMP value type, what it is)
    "ModelName": ("Text", "name of the audited model"),
    "ModelVersion": ("Text", "version of the audited model"),
    "RunId": ("Text", "the audit run the scorecard judged"),
    "Verdict": ("Text", "PASSED, NOT PASSED, or NO TARGETS (figures reported only)"),
    "BundleManifestSHA256": ("Text", "sha256 of the audited dashboard bundle's manifest.json"),
    "Producer": ("Text", "the software and version that wrote the scorecard"),
}
# The files attached to the PDF (PDF/A-3 associated files): name -> (description, relationship).
SCORECARD_ATTACHMENT = "scorecard.json"
MANIFEST_ATTACHMENT = "manifest.json"
ATTACHMENTS = {
    SCORECARD_ATTACHMENT: ("every target, figure, interval and verdict this PDF shows", "Data"),
    MANIFEST_ATTACHMENT: ("the audited dashboard bundle's manifest.json: the sha256 of each of its files", "Source"),
}

# What each metric's number is, printed beside it: a share of rows only where it is one.
METRIC_UNITS = {
    "mean_absolute_error": "target units",
    "median_absolute_error": "target units",
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


def _svg(chart: Any, alt: str) -> Markup:
    """The chart as inline SVG whose ``<title>`` is ``alt``: WeasyPrint tags the SVG as a
    figure and takes its alternate text from there (a title is not drawn)."""
    # vl-convert writes the SVG from our aggregated figures; labels inside it are escaped by Vega.
    svg = charts.to_svg(chart)
    opened = svg.index(">", svg.index("<svg")) + 1
    return Markup(f"{svg[:opened]}<title>{html.escape(alt, quote=False)}</title>{svg[opened:]}")


def _unit(metric: str, task: str = "binary_classification") -> str:
    if task == "multiclass_classification" and metric in ("precision_score", "recall_score", "f1_score"):
        return "mean over classes"
    return METRIC_UNITS.get(metric, "share of rows")


def _number(value: Any) -> str:
    return ENV.filters["fmt"](value)


def _listed(pairs: list[tuple[Any, Any]]) -> str:
    """``label value`` pairs as a sentence's list: "Female 0.07407, Male 0.2195"."""
    return ", ".join(f"{label} {_number(value)}" for label, value in pairs)


def _confusion_alt(cm: dict[str, Any]) -> str:
    labels, matrix = cm["labels"], cm["matrix"]
    rows = "; ".join(
        f"true {labels[i]}: " + ", ".join(f"{count:,} predicted {labels[j]}" for j, count in enumerate(row))
        for i, row in enumerate(matrix)
    )
    return f"Confusion matrix of the {len(labels)} classes, test rows by true and predicted class: {rows}."


def _grid_alt(cells: list[dict[str, Any]]) -> str:
    low = min(min(c["x0"], c["y0"]) for c in cells)
    high = max(max(c["x1"], c["y1"]) for c in cells)
    on_diagonal = sum(c["rows"] for c in cells if c["x0"] == c["y0"])
    total = sum(c["rows"] for c in cells)
    return (
        f"Heat map of predicted against true values of {total:,} test rows, in bins from {_number(low)} "
        f"to {_number(high)} on both axes; darker cells hold more rows; {on_diagonal:,} rows fall in the bins "
        "of the dashed diagonal, where the prediction equals the true value."
    )


def _histogram_alt(edges: list[float], counts: list[int]) -> str:
    fullest = max(range(len(counts)), key=counts.__getitem__)
    return (
        f"Histogram of the residuals (predicted minus true) of {sum(counts):,} test rows in {len(counts)} bins "
        f"from {_number(edges[0])} to {_number(edges[-1])}; the fullest bin, {_number(edges[fullest])} to "
        f"{_number(edges[fullest + 1])}, holds {counts[fullest]:,} rows."
    )


def _effects_alt(effects: list[dict[str, Any]], outcome: str, treatments: list[dict[str, Any]]) -> str:
    parts = []
    for e in effects:
        unit = effect_unit(e, treatments)
        label = unit if unit.startswith("per 1 unit") else f"{e['treatment']} {unit}"
        interval = (
            f" (interval {_number(e['ci_lower'])} to {_number(e['ci_upper'])})" if e.get("ci_lower") is not None else ""
        )
        parts.append(f"{label}: {_number(e['point'])}{interval}")
    return f"Estimated effect of each treatment on the {outcome}, dashed line at zero: " + "; ".join(parts) + "."


def _charts(card: dict[str, Any]) -> dict[str, Any]:
    """Each chart as SVG with its alternate text: what it draws, with the figures it draws."""
    out: dict[str, Any] = {}
    unit: Callable[[str], str] = lambda metric: _unit(metric, card["task_type"])  # noqa: E731
    performance = card["performance"]
    if performance.get("confusion_matrix"):
        cm = performance["confusion_matrix"]
        out["confusion"] = _svg(charts.confusion_matrix(cm["labels"], cm["matrix"]), _confusion_alt(cm))
    if performance.get("grid"):
        out["predicted_vs_true"] = _svg(
            charts.binned_scatter(performance["grid"], x_title="true value", y_title="predicted value"),
            _grid_alt(performance["grid"]),
        )
        residuals = performance["residuals"]
        out["residuals"] = _svg(
            charts.histogram(residuals["edges"], residuals["counts"], x_title="residual (predicted - true)"),
            _histogram_alt(residuals["edges"], residuals["counts"]),
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
                        value_title=f"{m['metric']} ({unit(m['metric'])})",
                    ),
                    f"Bar chart of {m['metric']} ({unit(m['metric'])}) per {entry['feature']} group: "
                    + _listed([(r["group"], r["value"]) for r in rows])
                    + ".",
                )
    out["explorer"] = {}
    for feature in card["data_explorer"]:
        rows = [{"bin": b["bin"], "share": b["share"]} for b in feature["bins"]]
        out["explorer"][feature["feature"]] = _svg(
            charts.horizontal_bars(
                rows, label="bin", value="share", label_title=feature["feature"], value_title="share of test rows"
            ),
            f"Bar chart of the share of test rows in each bin of {feature['feature']}: "
            + _listed([(r["bin"], r["share"]) for r in rows])
            + ".",
        )
    if card["feature_importance"]:
        out["importance"] = _svg(
            charts.horizontal_bars(
                card["feature_importance"],
                label="feature",
                value="importance",
                label_title="feature",
                value_title="mean |contribution| (model output units)",
            ),
            f"Bar chart of the mean absolute contribution to the model's output (model output units) of the "
            f"{len(card['feature_importance'])} most important features, most important first: "
            + _listed([(f["feature"], f["importance"]) for f in card["feature_importance"]])
            + ".",
        )
    causal = card.get("causal")
    if causal and causal.get("global_effects"):
        out["causal"] = _svg(
            charts.treatment_effects(causal["global_effects"], causal["outcome"], causal["treatments"]),
            _effects_alt(causal["global_effects"], causal["outcome"], causal["treatments"]),
        )
    return out


def verdict(card: dict[str, Any]) -> str:
    """The scorecard's verdict in one word or two, as page 1 states it."""
    if card["n_targets"] == 0:
        return "NO TARGETS"
    return "PASSED" if card["passed"] else "NOT PASSED"


def document_metadata(card: dict[str, Any]) -> dict[str, str]:
    """What the PDF says about itself (document information and XMP): the model, the run, the verdict."""
    model = card.get("model") or {}
    name, version = model.get("name") or "", model.get("version") or ""
    about = f"model {name}" + (f" version {version}" if version else "") if name else "the model"
    # generated_at is "YYYY-MM-DD HH:MM UTC", as the page prints it: the same instant in W3C form.
    day, time = card["generated_at"].split()[:2]
    return {
        "title": f"Model scorecard: {name}" if name else "Model scorecard",
        "description": (
            f"Responsible AI scorecard of {about}, audit run {card['run_id']}: {verdict(card)}"
            f" ({card['n_targets']} targets judged, {card['n_missed']} missed)"
        ),
        "keywords": "model scorecard, responsible AI audit",
        "generator": PRODUCER,
        "created": f"{day}T{time}:00Z",
        "model_name": name,
        "model_version": version,
    }


def _weasyprint_version() -> str:
    from importlib.metadata import version

    return version("weasyprint")


def _xmp_descriptions(card: dict[str, Any]) -> bytes:
    """The scorecard's XMP properties, and the PDF/A extension schema that declares them."""
    meta = document_metadata(card)
    values = {
        "ModelName": meta["model_name"],
        "ModelVersion": meta["model_version"],
        "RunId": card["run_id"],
        "Verdict": verdict(card),
        "BundleManifestSHA256": card["bundle_manifest_sha256"],
        "Producer": f"{PRODUCER} (rendered by WeasyPrint {_weasyprint_version()})",
    }
    declared = "".join(
        '<rdf:li rdf:parseType="Resource">'
        f"<pdfaProperty:name>{name}</pdfaProperty:name><pdfaProperty:valueType>{kind}</pdfaProperty:valueType>"
        "<pdfaProperty:category>external</pdfaProperty:category>"
        f"<pdfaProperty:description>{xml_escape(what)}</pdfaProperty:description></rdf:li>"
        for name, (kind, what) in XMP_PROPERTIES.items()
    )
    properties = "".join(
        f"<{XMP_PREFIX}:{name}>{xml_escape(str(value))}</{XMP_PREFIX}:{name}>" for name, value in values.items()
    )
    return (
        '<rdf:Description rdf:about="" xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/"'
        ' xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#"'
        ' xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#">'
        '<pdfaExtension:schemas><rdf:Bag><rdf:li rdf:parseType="Resource">'
        "<pdfaSchema:schema>rai-audit scorecard</pdfaSchema:schema>"
        f"<pdfaSchema:namespaceURI>{XMP_NAMESPACE}</pdfaSchema:namespaceURI>"
        f"<pdfaSchema:prefix>{XMP_PREFIX}</pdfaSchema:prefix>"
        f"<pdfaSchema:property><rdf:Seq>{declared}</rdf:Seq></pdfaSchema:property>"
        "</rdf:li></rdf:Bag></pdfaExtension:schemas></rdf:Description>"
        f'<rdf:Description rdf:about="" xmlns:{XMP_PREFIX}="{XMP_NAMESPACE}">{properties}</rdf:Description>'
    ).encode()


def _finisher(card: dict[str, Any]) -> Callable[[Any, Any], None]:
    """WeasyPrint's last step before the PDF is written: the scorecard's XMP properties go
    into WeasyPrint's own rdf:RDF (``xmp_metadata`` would add a second one, which XMP
    readers such as pikepdf's ignore), each attachment is listed once in the catalog's
    associated files (WeasyPrint 70 lists each twice), and the producer is left to the XMP."""
    descriptions = _xmp_descriptions(card)

    def finish(document: Any, pdf: Any) -> None:
        import pydyf  # type: ignore[import-untyped]

        # The XMP packet names WeasyPrint as producer. A signature (pyHanko) makes it
        # "pyHanko" there and appends it to the document information's producer: PDF/A wants
        # the two equal, so the information dictionary holds none until a signer writes one.
        pdf.info.pop("Producer", None)
        if "AF" in pdf.catalog:
            pdf.catalog["AF"] = pydyf.Array(dict.fromkeys(pdf.catalog["AF"]))
        metadata = pdf.objects[int(pdf.catalog["Metadata"].split()[0])]
        packet = b"".join(part if isinstance(part, bytes) else str(part).encode() for part in metadata.stream)
        if packet.count(b"</rdf:RDF>") != 1:
            raise RuntimeError("WeasyPrint's XMP packet has no single rdf:RDF to add the scorecard's metadata to")
        metadata.stream = [packet.replace(b"</rdf:RDF>", descriptions + b"</rdf:RDF>")]

    return finish


def render_scorecard_html(card: dict[str, Any]) -> str:
    return ENV.get_template("scorecard.html.j2").render(
        c=card, charts=_charts(card), unit=lambda metric: _unit(metric, card["task_type"]), meta=document_metadata(card)
    )


def render_scorecard_pdf(card: dict[str, Any], path: Path, *, attachments: dict[str, bytes]) -> None:
    """Write the PDF/A-3b, tagged scorecard with ``attachments`` (name -> bytes; those of
    ``ATTACHMENTS``) embedded as associated files."""
    import weasyprint  # type: ignore[import-untyped]

    if set(attachments) != set(ATTACHMENTS):
        raise ValueError(f"the scorecard PDF carries {sorted(ATTACHMENTS)}, got {sorted(attachments)}")
    files = [
        weasyprint.Attachment(
            file_obj=io.BytesIO(data), name=name, description=ATTACHMENTS[name][0], relationship=ATTACHMENTS[name][1]
        )
        for name, data in attachments.items()
    ]
    options = {"pdf_variant": PDF_VARIANT, "pdf_tags": True}  # layout depends on the variant too
    document = weasyprint.HTML(string=render_scorecard_html(card)).render(**options)
    document.write_pdf(path, finisher=_finisher(card), attachments=files, **options)
