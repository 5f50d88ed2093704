"""The scorecard PDF as evidence: read what it carries, check it, sign it (PAdES), verify it.

A scorecard PDF (``rai_audit.report.scorecard``) carries ``scorecard.json`` and the audited
bundle's ``manifest.json`` as PDF/A-3 associated files, and prints the manifest's sha256 (its
first 16 hex digits) in the footer of every page. ``verify_scorecard`` checks that these
agree (the attached manifest hashes to the digest of the footer, of the attached
scorecard.json and of the XMP metadata), with a bundle folder that the bundle is the one
judged and unchanged (every file's sha256 against the attached manifest), and every
signature: intact and cryptographically valid, the last one covering the whole file (a
byte changed or appended after signing fails), the signer trusted when trust anchors are
given. ``sign_scorecard`` adds a PAdES signature (pyHanko; CAdES-detached, SHA-256,
baseline B: no timestamp authority is reached) as an incremental update, so the first
revision, the PDF/A document, stays byte for byte as rendered.

Every problem is a ``RAIInputError`` naming the file and what is wrong; nothing is written
unless every check passed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.report.scorecard import ATTACHMENTS, MANIFEST_ATTACHMENT, SCORECARD_ATTACHMENT, XMP_NAMESPACE, XMP_PREFIX

# The step's `sign` option reads the key and certificate from the files these name; a
# passphrase of the key, if it has one, from the third (never from a command line).
ENV_SIGNING_KEY = "RAI_AUDIT_SIGNING_KEY"
ENV_SIGNING_CERT = "RAI_AUDIT_SIGNING_CERT"
ENV_SIGNING_PASSPHRASE = "RAI_AUDIT_SIGNING_PASSPHRASE"
# Where the compiled pipelines mount the Kubernetes TLS secret (tls.key, tls.crt) on a cluster.
SIGNING_SECRET_MOUNT = "/var/run/secrets/rai-audit-signing"
SIGNATURE_FIELD = "RaiAuditSignature"
SIGNATURE_REASON = "rai-audit scorecard: the audit's figures and verdict as published"
FOOTER_DIGEST = re.compile(r"bundle\s+manifest\s+sha256\s+([0-9a-f]{16})")
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
PDFAID = "http://www.aiim.org/pdfa/ns/id/"


@dataclass
class ScorecardPdf:
    """What a scorecard PDF carries: its attachments, XMP properties and footer digests."""

    path: Path
    attachments: dict[str, bytes]
    card: dict[str, Any]
    xmp: dict[str, str]  # the scorecard's own XMP properties (raiaudit:*) and pdfaid:part/conformance
    footer_digests: list[str | None]  # per page, the manifest digest its footer prints
    manifest_sha256: str


@dataclass
class SignatureCheck:
    field: str
    subject: str  # the signer certificate's subject, RFC 4514 ("CN=Risk Office,O=Example Bank")
    signed_at: dt.datetime | None  # as the signer states it (no timestamp authority)
    trusted: bool | None  # None: no trust anchors were given


@contextlib.contextmanager
def _quiet_pyhanko() -> Iterator[None]:
    """pyHanko logs each validation problem with a traceback; the verdict is ours to say, in one line."""
    loggers = [logging.getLogger(name) for name in ("pyhanko", "pyhanko_certvalidator")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _pdf_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise RAIInputError(f"{path}: no such file")
    data = path.read_bytes()
    if not data.startswith(b"%PDF-"):
        raise RAIInputError(f"{path} is not a PDF (it does not start with %PDF-)")
    return data


def _xmp_properties(packet: bytes) -> dict[str, str]:
    """The raiaudit:* properties and the PDF/A identification, as attributes or elements of any rdf:Description."""
    root = ET.fromstring(packet.split(b"?>", 1)[1].rsplit(b"<?xpacket", 1)[0])
    found: dict[str, str] = {}
    for description in root.iter(f"{{{RDF}}}Description"):
        items = list(description.attrib.items()) + [(child.tag, child.text or "") for child in description]
        for key, value in items:
            for namespace, prefix in ((XMP_NAMESPACE, ""), (PDFAID, "pdfaid:")):
                if key.startswith(f"{{{namespace}}}"):
                    found[prefix + key.split("}", 1)[1]] = value
    return found


def read_scorecard_pdf(path: str | Path) -> ScorecardPdf:
    """The attachments, XMP properties and footer digests of a scorecard PDF; an error when
    ``path`` is not one."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    path = Path(path)
    data = _pdf_bytes(path)
    not_scorecard = (
        f"{path} is not a rai-audit scorecard PDF: it has no {SCORECARD_ATTACHMENT} and {MANIFEST_ATTACHMENT} "
        "attached as associated files"
    )
    try:
        reader = PdfReader(io.BytesIO(data))
        catalog: Any = reader.trailer["/Root"]  # pypdf's objects are typed as its base class
        attachments: dict[str, bytes] = {}
        # PDF/A-3 associated files: the catalog's /AF, each a file specification with its file inside.
        for reference in catalog.get("/AF", []):
            spec = reference.get_object()
            name = str(spec.get("/UF", spec.get("/F", "")))
            if name in ATTACHMENTS and "/EF" in spec:
                attachments[name] = spec["/EF"]["/F"].get_object().get_data()
        if set(attachments) != set(ATTACHMENTS):
            raise RAIInputError(not_scorecard)
        metadata = catalog.get("/Metadata")
        xmp = _xmp_properties(metadata.get_object().get_data()) if metadata is not None else {}
        footers = []
        for page in reader.pages:
            digests = FOOTER_DIGEST.findall(page.extract_text())
            footers.append(digests[-1] if digests else None)
    except (PyPdfError, KeyError, ValueError, ET.ParseError, OSError) as err:
        if isinstance(err, RAIInputError):
            raise
        raise RAIInputError(f"{path} is not a readable PDF: {err}") from None
    try:
        card = json.loads(attachments[SCORECARD_ATTACHMENT])
        json.loads(attachments[MANIFEST_ATTACHMENT])
    except ValueError as err:
        raise RAIInputError(f"{path}: an attached JSON file is unreadable ({err}); the PDF was changed") from None
    if not isinstance(card, dict) or not {"run_id", "bundle_manifest_sha256", "passed"} <= set(card):
        raise RAIInputError(f"{path}: the attached {SCORECARD_ATTACHMENT} is not a rai-audit scorecard result")
    return ScorecardPdf(
        path=path,
        attachments=attachments,
        card=card,
        xmp=xmp,
        footer_digests=footers,
        manifest_sha256=hashlib.sha256(attachments[MANIFEST_ATTACHMENT]).hexdigest(),
    )


def check_consistent(pdf: ScorecardPdf) -> None:
    """The attached manifest is the one the scorecard judged: its sha256 is the one in
    scorecard.json, in the XMP metadata and (first 16 hex digits) in every page's footer."""
    digest, where = pdf.manifest_sha256, pdf.path
    if pdf.card["bundle_manifest_sha256"] != digest:
        raise RAIInputError(
            f"{where}: the attached {MANIFEST_ATTACHMENT} has sha256 {digest}, but the attached "
            f"{SCORECARD_ATTACHMENT} judged the bundle whose manifest has {pdf.card['bundle_manifest_sha256']}"
        )
    if pdf.xmp.get("BundleManifestSHA256") != digest or pdf.xmp.get("RunId") != pdf.card["run_id"]:
        raise RAIInputError(
            f"{where}: its XMP metadata name bundle manifest {pdf.xmp.get('BundleManifestSHA256')} and run "
            f"{pdf.xmp.get('RunId')}, its attachments {digest} and run {pdf.card['run_id']}"
        )
    wrong = [i for i, printed in enumerate(pdf.footer_digests, 1) if printed != digest[:16]]
    if wrong:
        printed = pdf.footer_digests[wrong[0] - 1]
        raise RAIInputError(
            f"{where}: the footer of page {wrong[0]} prints bundle manifest sha256 {printed or '(none found)'}, "
            f"the attached {MANIFEST_ATTACHMENT} has {digest[:16]}..."
        )


def check_bundle(pdf: ScorecardPdf, bundle: str | Path) -> int:
    """The bundle folder is the one the PDF judged, unchanged: its manifest.json is the
    attached one and every file has the sha256 it lists. Returns the number of files."""
    bundle = Path(bundle)
    manifest_path = bundle / A.MANIFEST_FILE
    if not manifest_path.is_file():
        raise RAIInputError(f"bundle {bundle} has no {A.MANIFEST_FILE}: it is not a rai-audit dashboard bundle")
    found = A.sha256_file(manifest_path)
    if found != pdf.manifest_sha256:
        raise RAIInputError(
            f"bundle {bundle} is not the one {pdf.path} judged: its {A.MANIFEST_FILE} has sha256 {found[:16]}..., "
            f"the attached one {pdf.manifest_sha256[:16]}..."
        )
    return len(A.verify_manifest(bundle)["files"])  # every file's sha256: one line naming those changed


def _load_certificates(path: Path, what: str) -> list[Any]:
    """Every certificate of a PEM file (a chain: the signer's first) or the one of a DER file."""
    from cryptography import x509

    if not path.is_file():
        raise RAIInputError(f"{what} {path}: no such file")
    data = path.read_bytes()
    try:
        return (
            x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data else [x509.load_der_x509_certificate(data)]
        )
    except ValueError as err:
        raise RAIInputError(f"{what} {path} holds no X.509 certificate (PEM or DER): {err}") from None


def _load_key(path: Path, passphrase: str | None) -> Any:
    from cryptography.hazmat.primitives import serialization

    if not path.is_file():
        raise RAIInputError(f"key {path}: no such file")
    data = path.read_bytes()
    password = passphrase.encode() if passphrase else None
    load = serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    try:
        return load(data, password=password)
    except TypeError:  # encrypted without a passphrase, or a passphrase for a key without one
        raise RAIInputError(
            f"key {path} is encrypted: set {ENV_SIGNING_PASSPHRASE} to its passphrase"
            if password is None
            else f"key {path} is not encrypted, but {ENV_SIGNING_PASSPHRASE} is set"
        ) from None
    except ValueError as err:
        raise RAIInputError(
            f"key {path} is not a private key (PEM or DER), or its passphrase is wrong: {err}"
        ) from None


@dataclass
class SigningMaterial:
    signer: Any  # pyhanko.sign.signers.SimpleSigner
    subject: str  # RFC 4514
    certificate_sha256: str
    not_after: dt.datetime
    rsa: bool


def load_signing_material(
    key: str | Path, cert: str | Path, *, passphrase: str | None = None, now: dt.datetime | None = None
) -> SigningMaterial:
    """The key and certificate to sign with, checked: the key is the certificate's, the
    certificate valid now and allowed to sign."""
    from asn1crypto import keys as asn1_keys  # type: ignore[import-untyped]
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    key, cert = Path(key), Path(cert)
    private_key = _load_key(key, passphrase)
    chain = _load_certificates(cert, "certificate")
    signer_cert = chain[0]

    def spki(public_key: Any) -> bytes:
        return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    subject = signer_cert.subject.rfc4514_string()
    if spki(private_key.public_key()) != spki(signer_cert.public_key()):
        raise RAIInputError(f"key {key} is not the key of certificate {cert} ({subject}): give the matching pair")
    now = now or dt.datetime.now(dt.UTC)
    if now > signer_cert.not_valid_after_utc:
        raise RAIInputError(
            f"certificate {cert} ({subject}) expired on {signer_cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: "
            "a signature made with it would not validate"
        )
    if now < signer_cert.not_valid_before_utc:
        raise RAIInputError(
            f"certificate {cert} ({subject}) is valid only from {signer_cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    try:
        usage = signer_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        raise RAIInputError(
            f"certificate {cert} ({subject}) may not sign documents (key usage without digitalSignature)"
        )
    der = serialization.Encoding.DER
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(signer_cert.public_bytes(der)),
        signing_key=asn1_keys.PrivateKeyInfo.load(
            private_key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        ),
        cert_registry=SimpleCertificateStore.from_certs(
            [asn1_x509.Certificate.load(c.public_bytes(der)) for c in chain[1:]]
        ),
    )
    return SigningMaterial(
        signer=signer,
        subject=subject,
        certificate_sha256=hashlib.sha256(signer_cert.public_bytes(der)).hexdigest(),
        not_after=signer_cert.not_valid_after_utc,
        rsa=isinstance(private_key, rsa.RSAPrivateKey),
    )


def signing_material_from_env() -> SigningMaterial:
    """The key and certificate of the files ``RAI_AUDIT_SIGNING_KEY`` and ``RAI_AUDIT_SIGNING_CERT``
    name; unset, those of the Kubernetes TLS secret mounted at ``SIGNING_SECRET_MOUNT``."""
    paths = {}
    for name, default in ((ENV_SIGNING_KEY, "tls.key"), (ENV_SIGNING_CERT, "tls.crt")):
        given = os.environ.get(name, "").strip()
        paths[name] = Path(given or f"{SIGNING_SECRET_MOUNT}/{default}")
        if not paths[name].is_file():
            raise RAIInputError(
                f"`sign`: {paths[name]} does not exist "
                + (
                    f"({name} names it)"
                    if given
                    else f"({name} is not set: the default is a Kubernetes TLS secret "
                    f"mounted at {SIGNING_SECRET_MOUNT})"
                )
            )
    return load_signing_material(
        paths[ENV_SIGNING_KEY], paths[ENV_SIGNING_CERT], passphrase=os.environ.get(ENV_SIGNING_PASSPHRASE) or None
    )


def _signed_fields(data: bytes) -> list[str]:
    from pyhanko.pdf_utils.reader import PdfFileReader

    return [sig.field_name for sig in PdfFileReader(io.BytesIO(data)).embedded_signatures]


def sign_pdf_bytes(data: bytes, material: SigningMaterial) -> bytes:
    """``data`` with a PAdES signature appended (an incremental update: the bytes before stay as they were)."""
    from lxml import etree  # type: ignore[import-untyped]
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    # pyHanko rewrites the XMP packet (lxml): with the prefix the PDF/A extension schema declares.
    etree.register_namespace(XMP_PREFIX, XMP_NAMESPACE)
    taken = set(_signed_fields(data))
    field = next(f"{SIGNATURE_FIELD}{n}" for n in range(1, len(taken) + 2) if f"{SIGNATURE_FIELD}{n}" not in taken)
    out = io.BytesIO()
    with _quiet_pyhanko():
        signers.sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(data)),
            signers.PdfSignatureMetadata(
                field_name=field,
                subfilter=fields.SigSeedSubFilter.PADES,
                md_algorithm="sha256",
                reason=SIGNATURE_REASON,
            ),
            signer=material.signer,
            output=out,
        )
    return out.getvalue()


def check_signatures(data: bytes, where: Path, trust: list[Any] | None = None) -> list[SignatureCheck]:
    """Every signature of the PDF, validated: intact and valid, the last one covering the
    whole file, each signer trusted when ``trust`` (certificates) is given. An error otherwise."""
    from cryptography import x509
    from pyhanko.pdf_utils.misc import PdfReadError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    with _quiet_pyhanko():
        try:
            signatures = PdfFileReader(io.BytesIO(data)).embedded_signatures
        except (PdfReadError, ValueError, KeyError) as err:
            raise RAIInputError(f"{where} is not a readable PDF: {err}") from None
        checks = []
        for n, sig in enumerate(signatures, 1):
            context = ValidationContext(trust_roots=trust or [], allow_fetching=False)
            try:
                status = validate_pdf_signature(sig, context)
                subject = x509.load_der_x509_certificate(status.signing_cert.dump()).subject.rfc4514_string()
            except (SignatureValidationError, PdfReadError, ValueError, KeyError) as err:
                raise RAIInputError(f"{where}: signature {n} ({sig.field_name}) cannot be read: {err}") from None
            if not (status.intact and status.valid):
                raise RAIInputError(
                    f"{where}: signature {n} ({subject}) does not match the document: it was changed after signing"
                )
            if n == len(signatures) and status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
                raise RAIInputError(
                    f"{where}: bytes were added after signature {n} ({subject}): the PDF was changed after signing"
                )
            if trust and not status.trusted:
                raise RAIInputError(
                    f"{where}: signature {n} is intact, but its signer ({subject}) is not trusted by the "
                    "certificates given (--trust), or its certificate was not valid when it signed"
                )
            checks.append(
                SignatureCheck(
                    sig.field_name, subject, status.signer_reported_dt, bool(status.trusted) if trust else None
                )
            )
    return checks


def _write_new(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a temporary sibling renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as an ordinary new file (mkstemp makes it private)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sign_scorecard(
    pdf: str | Path,
    key: str | Path,
    cert: str | Path,
    output: str | Path | None = None,
    *,
    passphrase: str | None = None,
) -> tuple[Path, SigningMaterial]:
    """Sign a scorecard PDF into ``output`` (default: ``<name>.signed.pdf`` beside it; never
    over an existing file). The PDF must be a consistent scorecard, unchanged since any earlier signature."""
    pdf = Path(pdf)
    output = Path(output) if output is not None else pdf.with_name(f"{pdf.stem}.signed.pdf")
    if output.exists():
        raise RAIInputError(f"{output} already exists: give another --output, or remove it")
    data = _pdf_bytes(pdf)
    check_consistent(read_scorecard_pdf(pdf))
    check_signatures(data, pdf)
    material = load_signing_material(key, cert, passphrase=passphrase)
    _write_new(output, sign_pdf_bytes(data, material))
    return output, material


def verify_scorecard(
    pdf: str | Path,
    *,
    bundle: str | Path | None = None,
    trust: str | Path | None = None,
    extract: str | Path | None = None,
) -> list[str]:
    """Check a scorecard PDF (see the module's docstring); returns what was checked, a line each."""
    pdf = Path(pdf)
    data = _pdf_bytes(pdf)
    anchors = None
    if trust is not None:
        from asn1crypto import x509 as asn1_x509
        from cryptography.hazmat.primitives import serialization

        anchors = [
            asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
            for c in _load_certificates(Path(trust), "trust certificate")
        ]
    signatures = check_signatures(data, pdf, anchors)  # first: a changed byte is said as such
    card = read_scorecard_pdf(pdf)
    check_consistent(card)
    model = card.card.get("model") or {}
    verdict = card.xmp.get("Verdict") or ("PASSED" if card.card["passed"] else "NOT PASSED")
    lines = [
        f"{pdf}: rai-audit scorecard of model {model.get('name') or '(unnamed)'}"
        f"{' version ' + str(model['version']) if model.get('version') else ''}, audit run {card.card['run_id']}: "
        f"{verdict}",
        f"PDF/A-{card.xmp.get('pdfaid:part', '?')}{card.xmp.get('pdfaid:conformance', '').lower()}, written by "
        f"{card.xmp.get('Producer', 'an unknown producer')}",
        f"attached: {', '.join(f'{n} ({len(b):,} bytes)' for n, b in card.attachments.items())}; the manifest's "
        f"sha256 {card.manifest_sha256[:16]}... is the one scorecard.json, the XMP metadata and the footer of all "
        f"{len(card.footer_digests)} pages name",
    ]
    if bundle is not None:
        files = check_bundle(card, bundle)
        lines.append(f"bundle {bundle}: its manifest.json is the attached one, and all {files} files match it")
    for n, s in enumerate(signatures, 1):
        when = f" at {s.signed_at:%Y-%m-%d %H:%M:%S %Z} (as the signer states)" if s.signed_at else ""
        trusted = (
            "the signer is trusted by the certificates given"
            if s.trusted
            else "the signer is not checked against a trust anchor (give --trust CERT)"
        )
        lines.append(f"signature {n}: valid, signed by {s.subject}{when}; {trusted}")
    if not signatures:
        lines.append("not signed")
    if extract is not None:
        folder = Path(extract)
        present = [name for name in card.attachments if (folder / name).exists()]
        if present:
            raise RAIInputError(f"{folder} already holds {', '.join(present)}: extract into another folder")
        for name, content in card.attachments.items():
            _write_new(folder / name, content)
        lines.append(f"extracted {', '.join(card.attachments)} into {folder}")
    return lines


def signature_record(material: SigningMaterial | None) -> dict[str, Any] | None:
    """What the scorecard's meta.json (and so the archive) records of the signature."""
    if material is None:
        return None
    return {
        "subject": material.subject,
        "certificate_sha256": material.certificate_sha256,
        "certificate_not_after": material.not_after.isoformat(timespec="seconds"),
        "format": "PAdES B-B (ETSI.CAdES.detached, SHA-256)",
    }
