"""The audit archive in object storage: publish an audit once, list, fetch and verify it later.

Layout: ``audits/<model>/<model version>/<UTC timestamp>-<run id>/`` holding the dashboard
bundle under ``dashboard/``, the scorecard under ``scorecard/`` and ``manifest.json``
(sha256 and size of every file, run id, pipeline run, model digest, verdict). The
manifest is written last, so an audit without one is incomplete and never listed;
publishing the same run id again completes an incomplete audit and otherwise changes
nothing. Verifying (fetch, verify, and list by default) checks every file's sha256 and size
against the manifest, the dashboard's and scorecard's own manifests against it, and the
manifest's claims (run id, model digest, verdict) against the files they summarise, so an
edited file or a forged manifest (say, one that turns a failed audit into a passed one) is
refused; so are paths that would leave the target folder. Without a signature, someone who
can rewrite every object consistently is not caught: object lock (``retention_mode``) keeps
them from rewriting.

The index (``index/audits.json``, outside ``audits/``) holds one small entry per audit (model,
version, run id, verdict claimed, producer, retention, targets with their figures), so a
listing reads one object, not every object of the archive. Publish adds its audit's entry
after the manifest with a conditional write (``If-Match`` the ETag it read, or
``If-None-Match: *`` for the first), re-reading and retrying when another publish wrote in
between, so two publishes at once both land and neither overwrites the other. The index is
a cache of the manifests and the scorecards (verification never trusts it): when it is
missing or stale (audits published before it existed, a publish that died after its
manifest, an index write that kept losing the race), ``rebuild_index`` (``rai-audit archive
reindex``) rebuilds it from the manifests.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from rai_audit.core import ArtifactIntegrityError, RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.storage import S3Settings, storage_errors

ROOT = "audits"
MANIFEST = "manifest.json"
INDEX_KEY = "index/audits.json"  # outside ROOT: never taken for an audit's file
INDEX_SCHEMA = 1
INDEX_TRIES = 20  # conditional writes lost to other publishes before giving up (reindex repairs)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _safe_name(text: str, what: str) -> str:
    if not text or "/" in text or text in (".", "..") or text != text.strip():
        raise RAIInputError(f"`{what}` must be a non-empty name without '/', got {text!r}")
    return text


def _audit_prefixes(client, bucket: str, prefix: str) -> list[str]:
    return sorted({o.object_name.rstrip("/") for o in client.list_objects(bucket, prefix=prefix) if o.is_dir})


def _retention(mode: str | None, days: int | None):
    """The object-lock retention every object of the audit gets (WORM archives), or None."""
    if mode is None:
        return None
    from minio.retention import COMPLIANCE, GOVERNANCE, Retention

    modes = {"governance": GOVERNANCE, "compliance": COMPLIANCE}
    if mode not in modes or not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise RAIInputError(f"retention needs a mode among {list(modes)} and days >= 1, got {mode!r}, {days!r}")
    return Retention(modes[mode], datetime.now(UTC) + timedelta(days=days))


def _lock_enabled(client, bucket: str) -> bool:
    from minio.error import S3Error

    try:
        return client.get_object_lock_config(bucket) is not None
    except S3Error:  # no object lock configuration on the bucket
        return False


@storage_errors(action="publishing the audit", writes=True)
def publish_audit(
    settings: S3Settings,
    bucket: str,
    *,
    bundle_dir: str | Path,
    model_name: str,
    model_version: str,
    scorecard_dir: str | Path | None = None,
    pipeline_run: str | None = None,
    retention_mode: str | None = None,
    retention_days: int | None = None,
) -> str:
    """Upload the audit (files first, manifest last); returns its prefix. Idempotent per run id.

    ``retention_mode`` (governance/compliance) and ``retention_days`` lock every object
    (S3 object lock) where the store supports it; a new bucket is then created with locking.
    """
    bundle_dir = Path(bundle_dir)
    meta = A.read_artifact_meta(bundle_dir, expected_kind=A.KIND_DASHBOARD)  # verifies the bundle
    run_id = meta["run_id"]
    parts = {"dashboard": bundle_dir}
    card = signature = None
    if scorecard_dir is not None:
        # The scorecard step records whether it signed the PDF, and the certificate's subject.
        signature = A.read_artifact_meta(Path(scorecard_dir), expected_kind="scorecard").get("signature")
        parts["scorecard"] = Path(scorecard_dir)
        card = A.read_json(Path(scorecard_dir) / "scorecard.json", what="scorecard.json")
    retention = _retention(retention_mode, retention_days)  # checked before anything is written
    client = settings.client()
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket, object_lock=retention is not None)
    if retention is not None and not _lock_enabled(client, bucket):
        raise RAIInputError(f"bucket {bucket!r} has no object lock; retention needs a bucket created with it")
    base = f"{ROOT}/{_safe_name(model_name, 'model_name')}/{_safe_name(model_version, 'model_version')}/"
    existing = [p for p in _audit_prefixes(client, bucket, base) if p.endswith(f"-{run_id}")]
    prefix = existing[0] if existing else base + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{run_id}"
    if existing and _exists(client, bucket, f"{prefix}/{MANIFEST}"):
        # already published: nothing is written twice (its index entry, if an earlier
        # publish died before writing it, is added)
        manifest = _manifest(client, bucket, prefix)
        _index_add(client, bucket, _index_entry(prefix, manifest, _load_card(scorecard_dir), meta, None), only_new=True)
        return prefix
    files = {}
    for part, folder in parts.items():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = f"{part}/{path.relative_to(folder).as_posix()}"
            files[relative] = {"sha256": A.sha256_file(path), "size": path.stat().st_size}
            client.fput_object(bucket, f"{prefix}/{relative}", str(path), retention=retention)
    bundle_meta = A.read_json(bundle_dir / A.INSIGHTS_JSON_FILE, what="insights.json")
    manifest = {
        "schema_version": A.SCHEMA_VERSION,
        "run_id": run_id,
        "pipeline_run": pipeline_run,
        "model": {"name": model_name, "version": model_version, "sha256": bundle_meta["model"]["sha256"]},
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "passed": None if card is None else card["passed"],
        "scorecard_signature": None if card is None else _signature_claim(signature),
        "files": files,
    }
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    client.put_object(
        bucket,
        f"{prefix}/{MANIFEST}",
        io.BytesIO(data),
        len(data),
        content_type="application/json",
        retention=retention,
    )
    until = None if retention is None else {"mode": retention_mode, "until": retention.retain_until_date.isoformat()}
    _index_add(client, bucket, _index_entry(prefix, manifest, card, meta, until))
    return prefix


def _load_card(scorecard_dir: str | Path | None) -> dict[str, Any] | None:
    if scorecard_dir is None:
        return None
    return A.read_json(Path(scorecard_dir) / "scorecard.json", what="scorecard.json")


def _index_entry(
    audit: str,
    manifest: dict[str, Any],
    card: dict[str, Any] | None,
    meta: dict[str, Any] | None,
    retention: dict[str, Any] | None,
) -> dict[str, Any]:
    """What listing an audit needs without reading it: the manifest's claims and the targets'
    figures (the scorecard's). A claim here is never a verified fact: readers verify."""
    targets = [
        {k: t[k] for k in ("what", "label", "metric", "op", "value", "measured", "ci_lower", "ci_upper", "verdict")}
        for t in _scorecard_targets(card)
    ]
    return {
        "audit": audit,
        "model": manifest["model"].get("name"),
        "version": manifest["model"].get("version"),
        "model_sha256": manifest["model"].get("sha256"),
        "run_id": manifest["run_id"],
        "pipeline_run": manifest.get("pipeline_run"),
        "published_at": manifest.get("published_at"),
        "passed": manifest["passed"],
        "producer": None if meta is None else meta.get("producer"),
        "retention": retention,
        "files": len(manifest["files"]),
        "manifest_sha256": _sha256_bytes(json.dumps(manifest, indent=2, sort_keys=True).encode()),
        "targets": targets,
        "targets_missed": sum(t["verdict"] == "FAIL" for t in targets),
        "scorecard": card is not None,
        "schema": INDEX_SCHEMA,
    }


def _read_index(client, bucket: str) -> tuple[dict[str, Any] | None, str | None]:
    """The index document and its ETag, or (None, None) when there is none."""
    from minio.error import S3Error

    try:
        response = client.get_object(bucket, INDEX_KEY)
    except S3Error as err:
        if err.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
            return None, None
        raise
    try:
        data, etag = response.read(), (response.headers.get("etag") or "").strip('"')
    finally:
        response.close()
        response.release_conn()
    try:
        doc = json.loads(data)
    except ValueError:
        return None, etag  # unreadable: rewritten whole by the next write
    if not isinstance(doc, dict) or not isinstance(doc.get("audits"), dict):
        return None, etag
    return doc, etag


def _write_index(client, bucket: str, audits: dict[str, Any], etag: str | None) -> bool:
    """Write the index only if it is still the version read (ETag), or still absent; False
    when another writer came first (S3 answers 412 PreconditionFailed)."""
    from minio.error import S3Error

    doc = {
        "schema": INDEX_SCHEMA,
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": len(audits),
        "audits": dict(sorted(audits.items())),
    }
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    condition = {"If-Match": f'"{etag}"'} if etag else {"If-None-Match": "*"}
    try:
        client._put_object(bucket, INDEX_KEY, data, headers={"Content-Type": "application/json", **condition})
    except S3Error as err:
        if err.code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
    return True


def _index_add(client, bucket: str, entry: dict[str, Any], *, only_new: bool = False) -> None:
    """Add (or replace) one audit's entry: read, change, write if unchanged since; retry."""
    import random
    import time

    for attempt in range(INDEX_TRIES):
        doc, etag = _read_index(client, bucket)
        audits = dict((doc or {}).get("audits", {}))
        if only_new and entry["audit"] in audits:
            return
        audits[entry["audit"]] = entry
        if _write_index(client, bucket, audits, etag):
            return
        time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # another publish wrote: read it again
    raise RAIInputError(
        f"the archive index s3://{bucket}/{INDEX_KEY} kept changing under {INDEX_TRIES} tries; the audit "
        f"{entry['audit']} is published (its manifest is written): run `rai-audit archive reindex` to list it"
    )


@storage_errors(action="reading the archive index")
def read_index(settings: S3Settings, bucket: str) -> dict[str, Any] | None:
    """The index document (``audits``: prefix -> entry), or None when it is missing."""
    return _read_index(settings.client(), bucket)[0]


def _retention_of(client, bucket: str, key: str) -> dict[str, Any] | None:
    from minio.error import S3Error

    try:
        found = client.get_object_retention(bucket, key)
    except S3Error:  # no lock on the bucket or the object
        return None
    if found is None or found.retain_until_date is None:
        return None
    return {"mode": (found.mode or "").lower() or None, "until": found.retain_until_date.isoformat()}


@storage_errors(action="rebuilding the archive index", writes=True)
def rebuild_index(settings: S3Settings, bucket: str) -> dict[str, Any]:
    """Rebuild the index from every complete audit's manifest and scorecard (each read and
    checked against its manifest's sha256); returns what was added, dropped and kept. The
    write is conditional too: a publish meanwhile makes it read and rebuild again."""
    from concurrent.futures import ThreadPoolExecutor

    client = settings.client()
    locked = _lock_enabled(client, bucket)

    def entry_of(audit: str, old: dict[str, Any]) -> dict[str, Any]:
        try:
            manifest = _manifest(client, bucket, audit)
            digest = _sha256_bytes(json.dumps(manifest, indent=2, sort_keys=True).encode())
            if old.get(audit, {}).get("manifest_sha256") == digest and old[audit].get("schema") == INDEX_SCHEMA:
                return {"entry": old[audit]}  # the manifest it was made from is unchanged
            card = _verified_json(client, bucket, audit, manifest, "scorecard/scorecard.json")
            meta = _verified_json(client, bucket, audit, manifest, "dashboard/meta.json")
        except (ArtifactIntegrityError, ValueError) as err:
            return {"problem": str(err)}
        retention = _retention_of(client, bucket, f"{audit}/{MANIFEST}") if locked else None
        return {"entry": _index_entry(audit, manifest, card, meta, retention)}

    for _ in range(INDEX_TRIES):
        doc, etag = _read_index(client, bucket)
        old = dict((doc or {}).get("audits", {}))
        found = [
            o.object_name.rsplit("/", 1)[0]
            for o in client.list_objects(bucket, prefix=f"{ROOT}/", recursive=True)
            if len(o.object_name.split("/")) == 5 and o.object_name.endswith(f"/{MANIFEST}")
        ]
        audits, unreadable = {}, []
        with ThreadPoolExecutor(8) as pool:  # reads, each small: many at once
            for audit, got in zip(found, pool.map(lambda a: entry_of(a, old), found)):
                if "entry" in got:
                    audits[audit] = got["entry"]
                else:
                    unreadable.append({"audit": audit, "problem": got["problem"]})
        if _write_index(client, bucket, audits, etag):
            return {
                "count": len(audits),
                "added": sorted(set(audits) - set(old)),
                "dropped": sorted(set(old) - set(audits)),
                "changed": sorted(a for a in set(audits) & set(old) if audits[a] != old[a]),
                "unreadable": unreadable,
                "was_missing": doc is None,
            }
    raise RAIInputError(f"the archive index s3://{bucket}/{INDEX_KEY} kept changing while rebuilding it; try again")


@storage_errors(action="checking the audit")
def check_audit(settings: S3Settings, bucket: str, audit: str) -> dict[str, Any]:
    """Verify an audit as ``verify_audit`` does, without raising: ``verified``, ``problem``,
    the manifest, and (verified only) its scorecard.json and dashboard meta.json."""
    client = settings.client()
    try:
        manifest = _manifest(client, bucket, audit)
        kept = _check_objects(client, bucket, audit, manifest)
    except ArtifactIntegrityError as err:
        return {"audit": audit, "verified": False, "problem": str(err), "manifest": None, "card": None, "meta": None}
    card = kept.get("scorecard/scorecard.json")
    return {
        "audit": audit,
        "verified": True,
        "problem": None,
        "manifest": manifest,
        "card": None if card is None else json.loads(card),
        "meta": json.loads(kept["dashboard/meta.json"]),
    }


def _signature_claim(signature: dict[str, Any] | None) -> dict[str, Any]:
    """Whether the scorecard PDF is signed, and by whom (its certificate's subject)."""
    return {"signed": signature is not None, "subject": None if signature is None else signature.get("subject")}


def _exists(client, bucket: str, key: str) -> bool:
    from minio.error import S3Error

    try:
        client.stat_object(bucket, key)
        return True
    except S3Error as err:
        if err.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
            return False
        raise


def _manifest(client, bucket: str, prefix: str) -> dict[str, Any]:
    from minio.error import S3Error

    try:
        response = client.get_object(bucket, f"{prefix.rstrip('/')}/{MANIFEST}")
    except S3Error as err:
        if err.code not in ("NoSuchKey", "NoSuchObject", "NotFound"):
            raise  # access denied, no such bucket: said by storage_errors
        raise ArtifactIntegrityError(
            f"audit {prefix} has no {MANIFEST}: it is incomplete or does not exist ({err.code})"
        ) from err
    try:
        data = response.read()
    finally:
        response.close()
        response.release_conn()
    try:
        manifest = json.loads(data)
    except ValueError:
        manifest = None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not (
        isinstance(files, dict)
        and all(isinstance(f, dict) and isinstance(f.get("sha256"), str) for f in files.values())
        and isinstance(manifest.get("model"), dict)
        and "run_id" in manifest
        and "passed" in manifest
    ):
        raise ArtifactIntegrityError(
            f"the {MANIFEST} of audit {prefix} is not a rai-audit archive manifest "
            "(unreadable, or without files, run id, model and verdict): it was changed"
        )
    return manifest


@storage_errors(action="listing audits")
def list_audits(
    settings: S3Settings,
    bucket: str,
    *,
    model: str | None = None,
    version: str | None = None,
    since: str | None = None,
    passed: bool | None = None,
    verify: bool = True,
    use_index: bool = True,
) -> list[dict[str, Any]]:
    """Complete audits (those with a manifest), newest last, filtered.

    The audits are those the index lists (``use_index``, when there is one), else every
    manifest under ``audits/`` (a listing of the whole archive).

    With ``verify`` (the default) each audit is checked as ``verify_audit`` does: one that
    fails has ``verified`` False and ``problem`` saying why, and is never counted as passed
    (``passed=True`` leaves it out; ``passed=False`` keeps it). Without, ``verified`` is None
    and the verdict is the manifest's claim. An unreadable manifest always fails.
    """
    client = settings.client()
    index = _read_index(client, bucket)[0] if use_index else None
    if index is not None:  # one object read, not a listing of the whole archive
        candidates = [a for a in index["audits"] if is_audit_key(a)]
    else:
        prefix = f"{ROOT}/" + (f"{model}/" if model else "") + (f"{version}/" if model and version else "")
        candidates = [
            o.object_name.rsplit("/", 1)[0]
            for o in client.list_objects(bucket, prefix=prefix, recursive=True)
            # audits/<model>/<version>/<audit>/manifest.json, not an artifact's
            if len(o.object_name.split("/")) == 5 and o.object_name.endswith(f"/{MANIFEST}")
        ]
    found = []
    for audit in candidates:
        parts = audit.split("/")
        if version and parts[2] != version or model and parts[1] != model:
            continue
        entry = (index or {}).get("audits", {}).get(audit) or {}
        try:
            manifest = _manifest(client, bucket, audit)
        except ArtifactIntegrityError as err:
            manifest, problem = None, str(err)
        else:
            problem = None
            if since and str(manifest.get("published_at", "")) < since:
                continue
            if passed is True and manifest["passed"] is not True:
                continue  # not even claimed: no need to read it
            if verify:
                try:
                    _check_objects(client, bucket, audit, manifest)
                except ArtifactIntegrityError as err:
                    problem = str(err)
        claimed = None if manifest is None else manifest["passed"]
        if passed is True and problem:
            continue
        if passed is False and not problem and claimed is not False:
            continue
        found.append(
            {
                "audit": audit,
                "run_id": None if manifest is None else manifest["run_id"],
                "model": None if manifest is None else manifest["model"],
                "published_at": None if manifest is None else manifest.get("published_at"),
                "passed": claimed,
                "scorecard_signature": None if manifest is None else manifest.get("scorecard_signature"),
                "files": 0 if manifest is None else len(manifest["files"]),
                "verified": False if problem else (True if verify else None),
                "problem": problem,
                "version": parts[2],
                "pipeline_run": None if manifest is None else manifest.get("pipeline_run"),
                "producer": entry.get("producer"),
                "retention": entry.get("retention"),
                "targets_missed": entry.get("targets_missed"),
            }
        )
    return sorted(found, key=lambda a: (a["published_at"] or "", a["audit"]))


def is_audit_key(audit: Any) -> bool:
    """``audits/<model>/<version>/<audit>``, each a plain name: the only keys served or read."""
    if not isinstance(audit, str):
        return False
    parts = audit.split("/")
    return (
        len(parts) == 4
        and parts[0] == ROOT
        and all(p and p not in (".", "..") and p == p.strip() and "\\" not in p for p in parts)
    )


def _checked_target(dest: Path, relative: str) -> Path:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts or "" in relative.split("/"):
        raise ArtifactIntegrityError(f"the manifest names {relative!r}, which would leave the target folder")
    return dest / Path(*path.parts)


# The files whose content the manifest's claims are checked against (small JSON, kept in memory).
_CLAIM_FILES = (
    "dashboard/meta.json",
    f"dashboard/{A.INSIGHTS_JSON_FILE}",
    f"dashboard/{A.MANIFEST_FILE}",
    f"scorecard/{A.MANIFEST_FILE}",
    "scorecard/scorecard.json",
    "scorecard/meta.json",
)


def _check_objects(
    client, bucket: str, audit: str, manifest: dict[str, Any], dest: Path | None = None
) -> dict[str, bytes]:
    """Read every file of the audit (streamed; written under ``dest`` when given), check each
    one's sha256 and size against the manifest, then the claims; raise ArtifactIntegrityError.
    Returns the content of the claim files (_CLAIM_FILES) the audit has."""
    from minio.error import S3Error

    kept: dict[str, bytes] = {}
    for relative, expected in manifest["files"].items():
        target = _checked_target(dest or Path("."), relative)
        digest, size = hashlib.sha256(), 0
        try:
            response = client.get_object(bucket, f"{audit.rstrip('/')}/{relative}")
        except S3Error as err:
            if err.code not in ("NoSuchKey", "NoSuchObject", "NotFound"):
                raise
            raise ArtifactIntegrityError(
                f"{relative} of audit {audit} is listed in its manifest but missing "
                "from the archive: the archive was changed"
            ) from err
        try:
            out = None
            if dest is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                out = open(target, "wb")
            try:
                chunks = []
                for block in response.stream(1 << 20):
                    digest.update(block)
                    size += len(block)
                    if out is not None:
                        out.write(block)
                    if relative in _CLAIM_FILES:
                        chunks.append(block)
            finally:
                if out is not None:
                    out.close()
        finally:
            response.close()
            response.release_conn()
        actual = digest.hexdigest()
        if actual != expected["sha256"] or expected.get("size", size) != size:
            raise ArtifactIntegrityError(
                f"{relative} of audit {audit} does not match its manifest "
                f"(sha256 {actual[:16]}…, expected {expected['sha256'][:16]}…): "
                "the archive was changed"
            )
        if relative in _CLAIM_FILES:
            kept[relative] = b"".join(chunks)
    _check_claims(audit, manifest, kept)
    return kept


def _check_claims(audit: str, manifest: dict[str, Any], kept: dict[str, bytes]) -> None:
    """The manifest's summary agrees with the files it lists: each part's own manifest lists
    exactly the part's files with the same sha256; run id, model digest and verdict are the
    bundle's and the scorecard's. A manifest edited to pass a failed audit fails here."""

    def forged(what: str) -> ArtifactIntegrityError:
        return ArtifactIntegrityError(
            f"the {MANIFEST} of audit {audit} does not match its files: {what}; the archive was changed"
        )

    def doc(relative: str) -> Any:
        try:
            return json.loads(kept[relative])
        except (KeyError, ValueError):
            raise forged(f"{relative} is missing or unreadable") from None

    files = manifest["files"]
    parts = ["dashboard"] + (["scorecard"] if any(f.startswith("scorecard/") for f in files) else [])
    for part in parts:
        listed = doc(f"{part}/{A.MANIFEST_FILE}").get("files", {})
        archived = {
            f.removeprefix(f"{part}/"): v
            for f, v in files.items()
            if f.startswith(f"{part}/") and f != f"{part}/{A.MANIFEST_FILE}"
        }
        if set(listed) != set(archived) or any(listed[f].get("sha256") != archived[f]["sha256"] for f in listed):
            raise forged(f"the {part}'s files are not those its own {A.MANIFEST_FILE} lists")
    extra = sorted(f for f in files if f.split("/", 1)[0] not in parts)
    if extra:
        raise forged(f"it lists files outside the dashboard and scorecard ({extra[:3]})")
    meta, insights = doc("dashboard/meta.json"), doc(f"dashboard/{A.INSIGHTS_JSON_FILE}")
    if manifest["run_id"] != meta.get("run_id"):
        raise forged(f"run id {manifest['run_id']!r}, the bundle's is {meta.get('run_id')!r}")
    if manifest["model"].get("sha256") != (insights.get("model") or {}).get("sha256"):
        raise forged("its model digest is not the bundle's")
    if "scorecard" in parts:
        card = doc("scorecard/scorecard.json")
        if manifest["passed"] is not card.get("passed"):
            raise forged(f"it says passed={manifest['passed']}, the scorecard says passed={card.get('passed')}")
        if card.get("run_id", manifest["run_id"]) != manifest["run_id"]:
            raise forged("the scorecard judged another run")
        judged = card.get("bundle_manifest_sha256")
        if judged is not None and judged != files[f"dashboard/{A.MANIFEST_FILE}"]["sha256"]:
            raise forged("the scorecard judged another bundle")
        claimed = manifest.get("scorecard_signature")  # audits published before it was recorded: none
        if claimed is not None and claimed != _signature_claim(doc("scorecard/meta.json").get("signature")):
            raise forged(f"it says the scorecard PDF's signature is {claimed}, the scorecard's meta.json does not")
    elif manifest["passed"] is not None:
        raise forged(f"it says passed={manifest['passed']} without a scorecard")


@storage_errors(action="fetching the audit")
def fetch_audit(settings: S3Settings, bucket: str, audit: str, dest: str | Path) -> Path:
    """Download an audit into ``dest`` and verify every file; nothing is left on failure."""
    client = settings.client()
    manifest = _manifest(client, bucket, audit)
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise RAIInputError(f"{dest} is a file; fetch into a new folder")
    if dest.exists() and any(dest.iterdir()):
        raise RAIInputError(f"{dest} is not empty; fetch into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".partial-", dir=dest.parent))  # beside dest: the final rename is atomic
    try:
        _check_objects(client, bucket, audit, manifest, work)
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if dest.exists():
            dest.rmdir()
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return dest


@storage_errors(action="verifying the audit")
def verify_audit(settings: S3Settings, bucket: str, audit: str) -> dict[str, Any]:
    """Check every file of an archived audit and the manifest's claims (nothing is kept)."""
    client = settings.client()
    manifest = _manifest(client, bucket, audit)
    _check_objects(client, bucket, audit, manifest)
    return manifest


@storage_errors(action="signing a link to the audit")
def link_audit(
    settings: S3Settings, bucket: str, audit: str, *, hours: float = 24.0, file: str = "scorecard/scorecard.pdf"
) -> str:
    """A presigned URL of one file of a complete audit (default: its PDF), valid ``hours``."""
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 24 * 7:
        raise RAIInputError(
            f"`hours` must be more than 0 and at most 168 (7 days, the longest an S3 "
            f"presigned URL lasts), got {hours:g}"
        )
    client = settings.client()
    manifest = _manifest(client, bucket, audit)
    if file not in manifest["files"]:
        raise RAIInputError(f"audit {audit} has no {file}; its files are {sorted(manifest['files'])[:10]}…")
    return client.presigned_get_object(bucket, f"{audit.rstrip('/')}/{file}", expires=timedelta(hours=hours))


def _verified_json(client, bucket: str, audit: str, manifest: dict[str, Any], relative: str) -> Any:
    if relative not in manifest["files"]:
        return None
    response = client.get_object(bucket, f"{audit.rstrip('/')}/{relative}")
    try:
        data = response.read()
    finally:
        response.close()
        response.release_conn()
    if _sha256_bytes(data) != manifest["files"][relative]["sha256"]:
        raise ArtifactIntegrityError(
            f"{relative} of audit {audit} does not match its manifest: the archive was changed"
        )
    return json.loads(data)


@storage_errors(action="reading the model's previous audit")
def fetch_baseline(settings: S3Settings, bucket: str, model_name: str, dest: str | Path) -> dict[str, Any]:
    """The latest complete archived audit of ``model_name`` (any version), as a baseline folder.

    Writes its scorecard.json (checked against its manifest) and baseline.json saying which
    audit it is; when the model has no archived audit with a scorecard, only baseline.json,
    with ``audit`` None and the reason. Returns baseline.json's content.
    """
    client = settings.client()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    audits = (
        list_audits(settings, bucket, model=_safe_name(model_name, "model name"), verify=False)
        if client.bucket_exists(bucket)
        else []
    )
    for audit in reversed(audits):
        if audit["problem"]:  # an unreadable manifest: the baseline would be a guess
            raise ArtifactIntegrityError(audit["problem"])
        manifest = _manifest(client, bucket, audit["audit"])
        if "scorecard/scorecard.json" not in manifest["files"]:
            continue
        _check_objects(client, bucket, audit["audit"], manifest)  # the one compared with: checked whole
        card = _verified_json(client, bucket, audit["audit"], manifest, "scorecard/scorecard.json")
        if card is not None:
            info = {
                "audit": audit["audit"],
                "published_at": audit["published_at"],
                "run_id": audit["run_id"],
                "model": audit["model"],
            }
            A.write_json(dest / "scorecard.json", card)
            break
    else:
        info = {"audit": None, "reason": f"the first audit of model {model_name!r} (none archived in s3://{bucket})"}
    A.write_json(dest / A.BASELINE_FILE, info)
    return info


def _target_identity(t: dict[str, Any], section: str) -> tuple[tuple, str]:
    """What a target measures (its identity across audits) and how it reads, without its
    threshold: ``selection_rate ratio across sex``, ``recall_score in 'Under 30'``."""
    feature = t.get("sensitive_feature", t.get("feature"))
    kind = t.get("kind")
    words = [t["metric"]]
    if section == "change":
        words.append("change" if kind is None else f"{kind} change")
    elif kind:
        words.append(kind)
    if feature is not None:
        words.append(f"across {feature}")
    if t.get("cohort") is not None:
        words.append(f"in {t['cohort']!r}")
    return (section, t["metric"], kind, t.get("cohort"), feature), " ".join(words)


def _scorecard_targets(card: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every target of a scorecard.json, judged or reported: overall and cohort targets,
    fairness targets (one per sensitive feature judged) and change targets."""
    if not card:
        return []
    found = [("target", t) for t in card.get("targets", [])]
    found += [
        ("fairness", t) for e in card.get("fairness", []) for m in e.get("metrics", []) for t in m.get("targets", [])
    ]
    found += [("change", t) for t in card.get("change_targets", [])]
    out = []
    for section, t in found:
        identity, what = _target_identity(t, section)
        definition = None if t.get("op") is None else f"{t['op']} {_plain(t.get('value'))}"
        out.append(
            {
                "identity": identity,
                "what": what,
                "definition": definition,
                "label": what if definition is None else f"{what} {definition}",
                "measured": t.get("measured"),
                "verdict": t.get("verdict"),
                "metric": t["metric"],
                "op": t.get("op"),
                "value": t.get("value"),
                "ci_lower": t.get("ci_lower"),
                "ci_upper": t.get("ci_upper"),
            }
        )
    return out


def _plain(value: Any) -> str:
    """A threshold as the user wrote it (0.8, not np.float64(0.8) or 0.8000000000000002)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def _pair_targets(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[tuple]:
    """(earlier, later) pairs of targets: same identity and definition first, then same
    identity in order (a changed threshold); the rest alone (removed or added)."""
    left, right = list(before), list(after)
    pairs = []
    for same_definition in (True, False):
        for b in list(left):
            match = next(
                (
                    a
                    for a in right
                    if a["identity"] == b["identity"] and (not same_definition or a["definition"] == b["definition"])
                ),
                None,
            )
            if match is not None:
                pairs.append((b, match))
                left.remove(b)
                right.remove(match)
    return pairs + [(b, None) for b in left] + [(None, a) for a in right]


@storage_errors(action="comparing audits")
def diff_audits(settings: S3Settings, bucket: str, before: str, after: str) -> dict[str, Any]:
    """What changed between two audits: overall metrics, fairness differences and ratios,
    and every scorecard target: added, removed (a target the later audit dropped, with the
    verdict it had), or kept with its definition, value and verdict before and after. Both
    audits are verified whole first (as ``verify_audit``)."""
    client = settings.client()
    sides = []
    for audit in (before, after):
        manifest = _manifest(client, bucket, audit)
        kept = _check_objects(client, bucket, audit, manifest)
        card = kept.get("scorecard/scorecard.json")
        sides.append(
            {
                "manifest": manifest,
                "insights": json.loads(kept[f"dashboard/{A.INSIGHTS_JSON_FILE}"]),
                "scorecard": None if card is None else json.loads(card),
            }
        )
    old, new = sides

    def change(a, b):
        delta = b - a if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        return {"before": a, "after": b, "change": delta}

    overall = [old["insights"]["model_overview"]["overall"], new["insights"]["model_overview"]["overall"]]
    metrics = {
        m: change(overall[0].get(m), overall[1].get(m))
        for m in new["insights"]["model_overview"]["metric_names"]
        if m in overall[0]
    }
    fairness = []
    old_fair = {" & ".join(e["features"]): e for e in old["insights"].get("fairness", [])}
    new_fair = {" & ".join(e["features"]): e for e in new["insights"].get("fairness", [])}
    for key, entry in new_fair.items():
        if key in old_fair:
            for kind in ("difference", "ratio"):
                for m, value in entry[kind].items():
                    fairness.append(
                        {"features": key, "kind": kind, "metric": m, **change(old_fair[key][kind].get(m), value)}
                    )
    targets = []
    for b, a in _pair_targets(_scorecard_targets(old["scorecard"]), _scorecard_targets(new["scorecard"])):
        status = "removed" if a is None else "added" if b is None else "kept"
        either = a or b
        targets.append(
            {
                "target": either["label"],
                "what": either["what"],
                "status": status,
                "definition_before": b and b["definition"],
                "definition_after": a and a["definition"],
                "definition_changed": status == "kept" and a["definition"] != b["definition"],
                "verdict_changed": status == "kept" and a["verdict"] != b["verdict"],
                **change(b and b["measured"], a and a["measured"]),
                "verdict_before": b and b["verdict"],
                "verdict_after": a and a["verdict"],
            }
        )
    return {
        "before": {
            "audit": before,
            "run_id": old["manifest"]["run_id"],
            "passed": old["manifest"]["passed"],
            "scorecard": old["scorecard"] is not None,
        },
        "after": {
            "audit": after,
            "run_id": new["manifest"]["run_id"],
            "passed": new["manifest"]["passed"],
            "scorecard": new["scorecard"] is not None,
        },
        "metrics": metrics,
        "fairness": fairness,
        "fairness_features": {
            "added": sorted(set(new_fair) - set(old_fair)),
            "removed": sorted(set(old_fair) - set(new_fair)),
        },
        "targets": targets,
    }
