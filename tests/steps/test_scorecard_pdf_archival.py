"""The scorecard PDF as lasting evidence: PDF/A-3b, tagged, with its evidence attached, signable.

Read back with pikepdf (not the reader rai-audit's verify uses, pypdf) and checked against
what is computed here from the bundle and the scorecard folder:

- PDF/A-3b identification and the XMP metadata (title, model name and version, run id,
  verdict, producer, creation time) against the config, the bundle's insights.json and the
  sha256 of its manifest hashed here; the document information agrees with the XMP;
- the attachments: byte for byte the scorecard folder's scorecard.json and the bundle's
  manifest.json, each a PDF/A-3 associated file of the catalog with its relationship;
- the structure tree: headings, a figure with alternate text for each chart (the confusion
  matrix's text against counts computed here with scikit-learn), table data cells that name
  their header cells, the document language;
- signing with a key and a self-signed certificate made here: validated here with pyHanko
  and by `verify`; a byte changed or added after signing refused; the step's `sign` option
  reading key and certificate from the files the environment names; the archive's record;
- bad inputs (a key not the certificate's, an expired certificate, a PDF that is not a
  scorecard, a bundle that does not match, missing signing files): exit 2, one line, nothing written.

One COMPAS bundle and one rendered scorecard serve the module.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pikepdf
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sklearn.metrics import confusion_matrix

from rai_audit import __version__, archive
from rai_audit.core import artifacts as A
from rai_audit.report import evidence
from rai_audit.report.scorecard import XMP_NAMESPACE
from rai_audit.steps.scorecard import ScorecardOptions, main, run_scorecard
from rai_audit.storage import storage_down, storage_up
from support import build_bundle

MODEL = {"name": "compas-risk", "version": "7"}
CONFIG = {
    "model": MODEL,
    "targets": ["accuracy_score >= 0.5"],
    "fairness": {
        "sensitive_features": ["race", "sex"],
        "metrics": ["accuracy_score"],
        "targets": ["accuracy_score difference <= 0.9"],
    },
    "data_explorer": {"features": ["age", "priors_count"]},
}
SUBJECT = "O=Example Bank,CN=Risk Office"
XMP = f"{{{XMP_NAMESPACE}}}"


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(compas_case, tmp_path_factory) -> Path:
    folder, _ = build_bundle(compas_case, tmp_path_factory.mktemp("compas_bundle"))
    return folder / "dashboard"


@pytest.fixture(scope="module")
def card(bundle, tmp_path_factory) -> Path:
    """The scorecard folder (unsigned PDF), rendered once."""
    out = tmp_path_factory.mktemp("card") / "scorecard"
    run_scorecard(bundle, CONFIG, out, options=ScorecardOptions(bootstrap=0))
    return out


def _certificate(key, subject: str, *, days: tuple[int, int] = (-1, 30)) -> x509.Certificate:
    name = x509.Name.from_rfc4514_string(subject)
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    """A signer's RSA key and self-signed certificate, another key, an expired certificate."""
    folder = tmp_path_factory.mktemp("keys")
    signer, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    pem = serialization.Encoding.PEM
    files = {
        "key": signer.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "other_key": other.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "cert": _certificate(signer, SUBJECT).public_bytes(pem),
        "expired_cert": _certificate(signer, SUBJECT, days=(-60, -1)).public_bytes(pem),
    }
    for name, data in files.items():
        (folder / f"{name}.pem").write_bytes(data)
    return {name: folder / f"{name}.pem" for name in files}


@pytest.fixture(scope="module")
def signed(card, keys, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("signed") / "scorecard.signed.pdf"
    code = main(
        [
            "sign",
            str(card / "scorecard.pdf"),
            "--key",
            str(keys["key"]),
            "--cert",
            str(keys["cert"]),
            "--output",
            str(out),
        ]
    )
    assert code == 0
    return out


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, *argv: str) -> str:
    """The one line of a refused command (exit 2, nothing on stdout)."""
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith("rai-audit: error: ") and err.count("\n") == 1, err
    return err


def struct_elements(pdf: pikepdf.Pdf) -> list[tuple[pikepdf.Dictionary, list[pikepdf.Dictionary]]]:
    """Every structure element with its ancestors (nearest last), in document order."""
    found = []

    def walk(element: Any, ancestors: list) -> None:
        if not isinstance(element, pikepdf.Dictionary) or "/S" not in element:
            return  # a marked-content id or an annotation reference
        found.append((element, ancestors))
        kids = element.get("/K")
        for kid in kids if isinstance(kids, pikepdf.Array) else [kids]:
            walk(kid, [*ancestors, element])

    for kid in pdf.Root.StructTreeRoot.K:
        walk(kid, [])
    return found


# --- PDF/A, metadata, attachments ------------------------------------------------------------------


def test_pdfa_3b_identification_and_xmp_metadata_name_model_run_verdict_and_producer(card, bundle):
    result = json.loads((card / "scorecard.json").read_text())
    insights = json.loads((bundle / A.INSIGHTS_JSON_FILE).read_text())
    manifest_sha256 = hashlib.sha256((bundle / A.MANIFEST_FILE).read_bytes()).hexdigest()
    with pikepdf.open(card / "scorecard.pdf") as pdf:
        assert pdf.pdf_version == "1.7" and pdf.Root.Lang == "en"
        assert pdf.Root.MarkInfo.Marked is True and pdf.Root.ViewerPreferences.DisplayDocTitle is True
        assert [str(i.S) for i in pdf.Root.OutputIntents] == ["/GTS_PDFA1"]  # sRGB, for PDF/A
        meta = pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False)
        assert meta.pdfa_status == "3B"
        assert meta["dc:title"] == f"Model scorecard: {MODEL['name']}"
        assert meta[f"{XMP}ModelName"] == MODEL["name"] and meta[f"{XMP}ModelVersion"] == MODEL["version"]
        assert meta[f"{XMP}RunId"] == insights["run_id"] == result["run_id"]
        assert meta[f"{XMP}Verdict"] == ("PASSED" if result["passed"] else "NOT PASSED")
        assert meta[f"{XMP}BundleManifestSHA256"] == manifest_sha256
        assert meta[f"{XMP}Producer"] == f"rai-audit {__version__} (rendered by WeasyPrint 70.0)"
        assert meta["xmp:CreatorTool"] == f"rai-audit {__version__}" and meta["pdf:Producer"] == "WeasyPrint 70.0"
        # The page prints generated_at ("2026-01-02 03:04 UTC"): the same minute.
        assert meta["xmp:CreateDate"] == re.sub(r"^(\S+) (\S+) UTC$", r"\1T\2:00Z", result["generated_at"])
        assert "compas-risk version 7" in meta["dc:description"] and insights["run_id"] in meta["dc:description"]
        # PDF/A: the document information says what the XMP says (and leaves the producer to it).
        info = pdf.docinfo
        assert str(info.Title) == meta["dc:title"] and str(info.Subject) == meta["dc:description"]
        assert str(info.Creator) == meta["xmp:CreatorTool"] and "/Producer" not in info
        # Every custom property is declared by a PDF/A extension schema (PDF/A allows no other).
        packet = pdf.Root.Metadata.read_bytes().decode()
        assert packet.count("<rdf:RDF") == 1
        declared = set(re.findall(r"<pdfaProperty:name>(\w+)</pdfaProperty:name>", packet))
        used = set(re.findall(r"<raiaudit:(\w+)>", packet))
        assert used == declared == {"ModelName", "ModelVersion", "RunId", "Verdict", "BundleManifestSHA256", "Producer"}


def test_attachments_are_the_scorecard_json_and_bundle_manifest_byte_for_byte(card, bundle):
    with pikepdf.open(card / "scorecard.pdf") as pdf:
        files = {name: spec.get_file().read_bytes() for name, spec in pdf.attachments.items()}
        assert files == {
            "scorecard.json": (card / "scorecard.json").read_bytes(),
            "manifest.json": (bundle / A.MANIFEST_FILE).read_bytes(),
        }
        # PDF/A-3 associated files: each once in the catalog's /AF, with its relationship and type.
        associated = {str(spec.UF): spec for spec in pdf.Root.AF}
        assert len(pdf.Root.AF) == 2 and set(associated) == set(files)
        assert associated["scorecard.json"].AFRelationship == "/Data"
        assert associated["manifest.json"].AFRelationship == "/Source"
        assert all(spec.EF.F.Subtype == "/application/json" for spec in associated.values())
    assert (card / "scorecard.pdf").stat().st_size < 2_000_000
    # The footer digest is the attached manifest's (verify checks the same with pypdf).
    assert (
        json.loads(files["scorecard.json"])["bundle_manifest_sha256"]
        == hashlib.sha256(files["manifest.json"]).hexdigest()
    )


def test_structure_tree_has_headings_tables_with_header_cells_and_charts_with_alt_text(card, bundle):
    result = json.loads((card / "scorecard.json").read_text())
    with pikepdf.open(card / "scorecard.pdf") as pdf:
        elements = struct_elements(pdf)
        tags = [str(e.S) for e, _ in elements]
        assert tags.count("/H1") == 1 and {"/H2", "/H3", "/Table", "/TH", "/TD", "/P"} <= set(tags)
        # Every chart is a figure with alternate text: confusion matrix, a bar chart per
        # sensitive feature and metric, one per data explorer feature.
        alts = [str(e.Alt) for e, _ in elements if e.S == "/Figure"]
        assert len(alts) == 1 + 2 * 1 + 2 and all(len(a) > 40 for a in alts)
        predictions = pd.read_parquet(bundle / A.TABLES_DIR / "predictions.parquet")
        labels = result["performance"]["confusion_matrix"]["labels"]
        counts = confusion_matrix(predictions["y_true"], predictions["y_pred"], labels=labels)
        confusion = next(a for a in alts if a.startswith("Confusion matrix"))
        for i, true in enumerate(labels):
            row = ", ".join(f"{counts[i, j]:,} predicted {predicted}" for j, predicted in enumerate(labels))
            assert f"true {true}: {row}" in confusion
        correct = predictions["y_true"] == predictions["y_pred"]
        for feature in ("race", "sex"):
            bars = next(
                a for a in alts if a.startswith(f"Bar chart of accuracy_score (share of rows) per {feature} group: ")
            )
            for group, accuracy in correct.groupby(predictions[feature]).mean().items():
                assert f"{group} {accuracy:.4g}" in bars  # 4 significant digits, as the page prints
        assert any(a.startswith("Bar chart of the share of test rows in each bin of age") for a in alts)

        # Data cells name their header cells: in every table that opens with a header row, each
        # data cell's headers are header cells of that table. (WeasyPrint tags a table per page:
        # the rows a table carries onto the next page form a table there without its header row.)
        def cells(parent: Any) -> list:
            return [e for e, a in elements if a and a[-1] == parent]

        headed = 0
        for table in (e for e, _ in elements if e.S == "/Table"):
            rows = [r for r in cells(table) if r.S == "/TR"] or [r for body in cells(table) for r in cells(body)]
            if not rows or any(c.S != "/TH" for c in cells(rows[0])):
                continue
            headed += 1
            ids = {str(c.ID) for row in rows for c in cells(row) if c.S == "/TH"}
            for row in rows[1:]:
                for cell in cells(row):
                    if cell.S == "/TD":
                        assert {str(h) for h in cell.A.Headers} <= ids and len(cell.A.Headers) >= 1
        assert headed >= 5
        first = next(e for e, _ in elements if e.S == "/Table")
        rows = [e for e, a in elements if e.S == "/TR" and first in a]
        for row in rows:
            cells = [e for e, a in elements if a and a[-1] == row]
            th, td = (next(c for c in cells if c.S == tag) for tag in ("/TH", "/TD"))
            assert [str(h) for h in td.A.Headers] == [str(th.ID)]
        assert len(rows) >= 8


# --- signing -----------------------------------------------------------------------------------------


def test_signed_pdf_validates_with_pyhanko_and_verify_and_keeps_the_rendered_bytes(card, bundle, keys, signed, capsys):
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    rendered, data = (card / "scorecard.pdf").read_bytes(), signed.read_bytes()
    assert data.startswith(rendered) and len(data) > len(rendered)  # an incremental update
    root = asn1_x509.Certificate.load(
        x509.load_pem_x509_certificate(keys["cert"].read_bytes()).public_bytes(serialization.Encoding.DER)
    )
    (sig,) = PdfFileReader(io.BytesIO(data)).embedded_signatures
    status = validate_pdf_signature(sig, ValidationContext(trust_roots=[root], allow_fetching=False))
    assert status.intact and status.valid and status.trusted and status.bottom_line
    assert (
        status.coverage == SignatureCoverageLevel.ENTIRE_FILE and sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    )
    assert status.signing_cert.subject.native == {"organization_name": "Example Bank", "common_name": "Risk Office"}
    # Still PDF/A-3b after signing (RSA: no PDF 2.0 extension), producer the same in both places.
    with pikepdf.open(signed) as pdf:
        meta = pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False)
        assert meta.pdfa_status == "3B" and "/Version" not in pdf.Root
        assert str(pdf.docinfo.Producer) == meta["pdf:Producer"]
        assert meta[f"{XMP}RunId"] == json.loads((card / "scorecard.json").read_text())["run_id"]
    code, out, err = cli(capsys, "verify", str(signed), "--bundle", str(bundle), "--trust", str(keys["cert"]))
    assert (code, err) == (0, "")
    assert f"signature 1: valid, signed by {SUBJECT}" in out and "trusted by the certificates given" in out
    assert f"all {len(json.loads((bundle / A.MANIFEST_FILE).read_text())['files'])} files match it" in out
    assert out.endswith("verified\n")


def test_unsigned_pdf_verifies_and_extracts_its_attachments(card, bundle, tmp_path, capsys):
    code, out, _ = cli(
        capsys, "verify", str(card / "scorecard.pdf"), "--bundle", str(bundle), "--extract", str(tmp_path / "x")
    )
    assert code == 0 and "not signed" in out and "PDF/A-3b" in out and ": PASSED" in out
    assert (tmp_path / "x" / "scorecard.json").read_bytes() == (card / "scorecard.json").read_bytes()
    assert (tmp_path / "x" / "manifest.json").read_bytes() == (bundle / A.MANIFEST_FILE).read_bytes()


def test_a_byte_changed_or_added_after_signing_is_refused(signed, tmp_path, capsys):
    data = bytearray(signed.read_bytes())
    # A byte inside the first revision's largest stream (the page content): covered by the signature.
    start = data.index(b"stream", len(data) // 3)
    data[start + 300] ^= 0x01
    changed = tmp_path / "changed.pdf"
    changed.write_bytes(bytes(data))
    err = refused(capsys, "verify", str(changed), "--extract", str(tmp_path / "x"))
    assert f"signature 1 ({SUBJECT}) does not match the document: it was changed after signing" in err
    assert not (tmp_path / "x").exists()
    appended = tmp_path / "appended.pdf"
    appended.write_bytes(signed.read_bytes() + b"\n% added after signing\n")
    assert "bytes were added after signature 1" in refused(capsys, "verify", str(appended))


def test_step_signs_with_key_and_certificate_named_by_the_environment(bundle, keys, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(evidence.ENV_SIGNING_KEY, str(keys["key"]))
    monkeypatch.setenv(evidence.ENV_SIGNING_CERT, str(keys["cert"]))
    out = tmp_path / "card"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    code = main(
        ["--dashboard", str(bundle), "--config", str(config), "--output", str(out), "--bootstrap", "0", "--sign"]
    )
    assert code == 0
    meta = json.loads((out / "meta.json").read_text())
    certificate = x509.load_pem_x509_certificate(keys["cert"].read_bytes())
    assert meta["options"]["sign"] is True
    assert meta["signature"]["subject"] == SUBJECT
    assert (
        meta["signature"]["certificate_sha256"]
        == hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    A.verify_manifest(out)  # the manifest lists the signed PDF
    capsys.readouterr()
    code, printed, _ = cli(
        capsys, "verify", str(out / "scorecard.pdf"), "--bundle", str(bundle), "--trust", str(keys["cert"])
    )
    assert code == 0 and f"signed by {SUBJECT}" in printed
    # The archive records that the PDF is signed, and by whom.
    folder = tmp_path / "s3"
    settings = storage_up(folder)
    try:
        unsigned_card = tmp_path / "unsigned"
        run_scorecard(bundle, CONFIG, unsigned_card, options=ScorecardOptions(bootstrap=0))
        audits = {
            version: archive.publish_audit(
                settings,
                "signed-audits",
                bundle_dir=bundle,
                model_name="compas-risk",
                model_version=version,
                scorecard_dir=folder_,
            )
            for version, folder_ in (("signed", out), ("unsigned", unsigned_card))
        }
        listed = {a["audit"]: a for a in archive.list_audits(settings, "signed-audits")}
        assert listed[audits["signed"]]["scorecard_signature"] == {"signed": True, "subject": SUBJECT}
        assert listed[audits["unsigned"]]["scorecard_signature"] == {"signed": False, "subject": None}
        assert all(a["verified"] for a in listed.values())
    finally:
        storage_down(folder)


# --- bad inputs ----------------------------------------------------------------------------------------


def test_sign_refuses_a_key_that_is_not_the_certificates(card, keys, tmp_path, capsys):
    out = tmp_path / "out.pdf"
    err = refused(
        capsys,
        "sign",
        str(card / "scorecard.pdf"),
        "--key",
        str(keys["other_key"]),
        "--cert",
        str(keys["cert"]),
        "--output",
        str(out),
    )
    assert f"is not the key of certificate {keys['cert']} ({SUBJECT})" in err
    assert not out.exists()


def test_sign_refuses_an_expired_certificate(card, keys, tmp_path, capsys):
    out = tmp_path / "out.pdf"
    err = refused(
        capsys,
        "sign",
        str(card / "scorecard.pdf"),
        "--key",
        str(keys["key"]),
        "--cert",
        str(keys["expired_cert"]),
        "--output",
        str(out),
    )
    assert re.search(rf"certificate .*expired_cert.pem \({re.escape(SUBJECT)}\) expired on \d{{4}}-\d\d-\d\d", err)
    assert not out.exists()


def test_a_pdf_that_is_not_a_scorecard_is_refused(keys, tmp_path, capsys):
    import weasyprint

    other = tmp_path / "other.pdf"
    weasyprint.HTML(string="<p>Quarterly report</p>").write_pdf(other, pdf_variant="pdf/a-3b")
    text = tmp_path / "notes.pdf"
    text.write_text("just text")
    for pdf, expected in (
        (other, "is not a rai-audit scorecard PDF: it has no scorecard.json and manifest.json"),
        (text, "is not a PDF"),
    ):
        assert expected in refused(capsys, "verify", str(pdf))
        assert expected in refused(capsys, "sign", str(pdf), "--key", str(keys["key"]), "--cert", str(keys["cert"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pdf", "other.pdf"]


def test_a_bundle_that_does_not_match_is_refused(card, bundle, tmp_path, capsys):
    changed = tmp_path / "changed"  # a file edited after the scorecard judged the bundle
    shutil.copytree(bundle, changed)
    (changed / A.INSIGHTS_JSON_FILE).write_text((changed / A.INSIGHTS_JSON_FILE).read_text() + " ")
    err = refused(capsys, "verify", str(card / "scorecard.pdf"), "--bundle", str(changed))
    assert f"does not match its manifest.json (changed: {A.INSIGHTS_JSON_FILE})" in err
    other = tmp_path / "other"  # another bundle, consistent in itself
    shutil.copytree(changed, other)
    A.write_manifest(other)
    err = refused(capsys, "verify", str(card / "scorecard.pdf"), "--bundle", str(other))
    assert f"bundle {other} is not the one {card / 'scorecard.pdf'} judged" in err


def test_step_sign_without_signing_files_refuses_before_writing(bundle, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(evidence.ENV_SIGNING_KEY, raising=False)
    monkeypatch.setenv(evidence.ENV_SIGNING_CERT, str(tmp_path / "missing.pem"))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    out = tmp_path / "card"
    err = refused(capsys, "--dashboard", str(bundle), "--config", str(config), "--output", str(out), "--sign")
    assert f"/var/run/secrets/rai-audit-signing/tls.key does not exist ({evidence.ENV_SIGNING_KEY} is not set" in err
    assert not out.exists()


def test_compiled_pipelines_mount_the_signing_secret_where_the_step_looks():
    import yaml

    from support import REPO

    checked = 0
    for path in sorted((REPO / "pipelines").glob("*_pipeline.yaml")):
        documents = list(yaml.safe_load_all(path.read_text()))
        if "exec-scorecard" not in documents[0]["deploymentSpec"]["executors"]:
            continue
        checked += 1
        platform = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-scorecard"]
        assert platform["secretAsVolume"] == [
            {
                "mountPath": evidence.SIGNING_SECRET_MOUNT,
                "optional": True,  # a run that does not sign needs no secret
                "secretName": "rai-audit-signing",
                "secretNameParameter": {"runtimeValue": {"constant": "rai-audit-signing"}},
            }
        ], path
    assert checked == 6  # every flow with a scorecard
