"""The audit archive in object storage: publish an audit once, list, fetch and verify it later.

Layout: ``audits/<model>/<model version>/<UTC timestamp>-<run id>/`` holding the dashboard
bundle under ``dashboard/``, the scorecard under ``scorecard/`` and ``manifest.json``
(sha256 and size of every file, run id, pipeline run, model digest, verdict). The
manifest is written last, so an audit without one is incomplete and never listed;
publishing the same run id again completes an incomplete audit and otherwise changes
nothing. Fetching verifies every file's sha256 and refuses a tampered or incomplete audit,
and paths that would leave the target folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from rai_audit.core import ArtifactIntegrityError, RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.storage import S3Settings, storage_errors

ROOT = "audits"
MANIFEST = "manifest.json"


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _safe_name(text: str, what: str) -> str:
    if not text or "/" in text or text in (".", "..") or text != text.strip():
        raise RAIInputError(f"`{what}` must be a non-empty name without '/', got {text!r}")
    return text


def _audit_prefixes(client, bucket: str, prefix: str) -> list[str]:
    return sorted({o.object_name.rstrip("/") for o in client.list_objects(bucket, prefix=prefix)
                   if o.is_dir})


def _retention(mode: str | None, days: int | None):
    """The object-lock retention every object of the audit gets (WORM archives), or None."""
    if mode is None:
        return None
    from minio.retention import COMPLIANCE, GOVERNANCE, Retention

    modes = {"governance": GOVERNANCE, "compliance": COMPLIANCE}
    if mode not in modes or not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise RAIInputError(f"retention needs a mode among {list(modes)} and days >= 1, got {mode!r}, {days!r}")
    return Retention(modes[mode], datetime.now(timezone.utc) + timedelta(days=days))


def _lock_enabled(client, bucket: str) -> bool:
    from minio.error import S3Error

    try:
        return client.get_object_lock_config(bucket) is not None
    except S3Error:  # no object lock configuration on the bucket
        return False


@storage_errors
def publish_audit(settings: S3Settings, bucket: str, *, bundle_dir: str | Path, model_name: str,
                  model_version: str, scorecard_dir: str | Path | None = None,
                  pipeline_run: str | None = None, retention_mode: str | None = None,
                  retention_days: int | None = None) -> str:
    """Upload the audit (files first, manifest last); returns its prefix. Idempotent per run id.

    ``retention_mode`` (governance/compliance) and ``retention_days`` lock every object
    (S3 object lock) where the store supports it; a new bucket is then created with locking.
    """
    bundle_dir = Path(bundle_dir)
    meta = A.read_artifact_meta(bundle_dir, expected_kind=A.KIND_DASHBOARD)  # verifies the bundle
    run_id = meta["run_id"]
    parts = {"dashboard": bundle_dir}
    card = None
    if scorecard_dir is not None:
        A.read_artifact_meta(Path(scorecard_dir), expected_kind="scorecard")
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
    prefix = existing[0] if existing else base + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{run_id}"
    if existing and _exists(client, bucket, f"{prefix}/{MANIFEST}"):
        return prefix  # already published: nothing is written twice
    files = {}
    for part, folder in parts.items():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = f"{part}/{path.relative_to(folder).as_posix()}"
            files[relative] = {"sha256": A.sha256_file(path), "size": path.stat().st_size}
            client.fput_object(bucket, f"{prefix}/{relative}", str(path), retention=retention)
    bundle_meta = A.read_json(bundle_dir / A.INSIGHTS_JSON_FILE, what="insights.json")
    manifest = {"schema_version": A.SCHEMA_VERSION, "run_id": run_id, "pipeline_run": pipeline_run,
                "model": {"name": model_name, "version": model_version, "sha256": bundle_meta["model"]["sha256"]},
                "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "passed": None if card is None else card["passed"], "files": files}
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    client.put_object(bucket, f"{prefix}/{MANIFEST}", io.BytesIO(data), len(data),
                      content_type="application/json", retention=retention)
    return prefix


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
        try:
            return json.loads(response.read())
        finally:
            response.close()
            response.release_conn()
    except S3Error as err:
        raise ArtifactIntegrityError(f"audit {prefix} has no {MANIFEST}: it is incomplete or does not exist "
                                     f"({err.code})") from err


@storage_errors
def list_audits(settings: S3Settings, bucket: str, *, model: str | None = None, version: str | None = None,
                since: str | None = None, passed: bool | None = None) -> list[dict[str, Any]]:
    """Complete audits (those with a manifest), newest last, filtered."""
    client = settings.client()
    prefix = f"{ROOT}/" + (f"{model}/" if model else "") + (f"{version}/" if model and version else "")
    found = []
    for obj in client.list_objects(bucket, prefix=prefix, recursive=True):
        parts = obj.object_name.split("/")  # audits/<model>/<version>/<audit>/manifest.json, not an artifact's
        if len(parts) != 5 or parts[-1] != MANIFEST:
            continue
        audit = obj.object_name.rsplit("/", 1)[0]
        manifest = _manifest(client, bucket, audit)
        if version and manifest["model"]["version"] != version:
            continue
        if since and manifest["published_at"] < since:
            continue
        if passed is not None and manifest["passed"] is not passed:
            continue
        found.append({"audit": audit, "run_id": manifest["run_id"], "model": manifest["model"],
                      "published_at": manifest["published_at"], "passed": manifest["passed"],
                      "files": len(manifest["files"])})
    return sorted(found, key=lambda a: a["published_at"])


def _checked_target(dest: Path, relative: str) -> Path:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ArtifactIntegrityError(f"the manifest names {relative!r}, which would leave the target folder")
    return dest / Path(*path.parts)


@storage_errors
def fetch_audit(settings: S3Settings, bucket: str, audit: str, dest: str | Path) -> Path:
    """Download an audit into ``dest`` and verify every file; nothing is left on failure."""
    client = settings.client()
    manifest = _manifest(client, bucket, audit)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise RAIInputError(f"{dest} is not empty; fetch into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".partial-", dir=dest.parent))  # beside dest: the final rename is atomic
    try:
        for relative, expected in manifest["files"].items():
            target = _checked_target(work, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            client.fget_object(bucket, f"{audit.rstrip('/')}/{relative}", str(target))
            actual = A.sha256_file(target)
            if actual != expected["sha256"]:
                raise ArtifactIntegrityError(f"{relative} of audit {audit} does not match its manifest "
                                             f"(sha256 {actual[:16]}…, expected {expected['sha256'][:16]}…): "
                                             "the archive was changed")
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if dest.exists():
            dest.rmdir()
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return dest


@storage_errors
def verify_audit(settings: S3Settings, bucket: str, audit: str) -> dict[str, Any]:
    """Check every file of an archived audit against its manifest (nothing kept)."""
    with tempfile.TemporaryDirectory() as folder:
        fetched = fetch_audit(settings, bucket, audit, Path(folder) / "audit")
        return json.loads((fetched / MANIFEST).read_text())


@storage_errors
def link_audit(settings: S3Settings, bucket: str, audit: str, *, hours: float = 24.0,
               file: str = "scorecard/scorecard.pdf") -> str:
    """A presigned URL of one file of a complete audit (default: its PDF), valid ``hours``."""
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
        raise ArtifactIntegrityError(f"{relative} of audit {audit} does not match its manifest: the archive was changed")
    return json.loads(data)


@storage_errors
def fetch_baseline(settings: S3Settings, bucket: str, model_name: str, dest: str | Path) -> dict[str, Any]:
    """The latest complete archived audit of ``model_name`` (any version), as a baseline folder.

    Writes its scorecard.json (checked against its manifest) and baseline.json saying which
    audit it is; when the model has no archived audit with a scorecard, only baseline.json,
    with ``audit`` None and the reason. Returns baseline.json's content.
    """
    client = settings.client()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    audits = list_audits(settings, bucket, model=_safe_name(model_name, "model name")) if client.bucket_exists(bucket) else []
    for audit in reversed(audits):
        manifest = _manifest(client, bucket, audit["audit"])
        card = _verified_json(client, bucket, audit["audit"], manifest, "scorecard/scorecard.json")
        if card is not None:
            info = {"audit": audit["audit"], "published_at": audit["published_at"], "run_id": audit["run_id"],
                    "model": audit["model"]}
            A.write_json(dest / "scorecard.json", card)
            break
    else:
        info = {"audit": None, "reason": f"the first audit of model {model_name!r} (none archived in s3://{bucket})"}
    A.write_json(dest / A.BASELINE_FILE, info)
    return info


@storage_errors
def diff_audits(settings: S3Settings, bucket: str, before: str, after: str) -> dict[str, Any]:
    """What changed between two audits: overall metrics, fairness differences and ratios,
    and every scorecard target's value and verdict (each file checked against its manifest)."""
    client = settings.client()
    sides = []
    for audit in (before, after):
        manifest = _manifest(client, bucket, audit)
        sides.append({"manifest": manifest,
                      "insights": _verified_json(client, bucket, audit, manifest, f"dashboard/{A.INSIGHTS_JSON_FILE}"),
                      "scorecard": _verified_json(client, bucket, audit, manifest, "scorecard/scorecard.json")})
    old, new = sides

    def change(a, b):
        delta = b - a if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        return {"before": a, "after": b, "change": delta}

    overall = [old["insights"]["model_overview"]["overall"], new["insights"]["model_overview"]["overall"]]
    metrics = {m: change(overall[0].get(m), overall[1].get(m))
               for m in new["insights"]["model_overview"]["metric_names"] if m in overall[0]}
    fairness = []
    old_fair = {" & ".join(e["features"]): e for e in old["insights"]["fairness"]}
    for entry in new["insights"]["fairness"]:
        key = " & ".join(entry["features"])
        if key in old_fair:
            for kind in ("difference", "ratio"):
                for m, value in entry[kind].items():
                    fairness.append({"features": key, "kind": kind, "metric": m,
                                     **change(old_fair[key][kind].get(m), value)})
    targets = []
    if old["scorecard"] and new["scorecard"]:
        def label(t):
            where = f" in {t['cohort']}" if t.get("cohort") else f" {t['kind']} across {t['sensitive_feature']}" \
                if t.get("kind") else ""
            return f"{t['metric']}{where} {t['op'] or ''} {'' if t['value'] is None else t['value']}".strip()

        def judged(card):
            return {label(t): t for t in card["targets"]} | {
                label(t): t for e in card["fairness"] for m in e["metrics"] for t in m["targets"]}

        before_targets, after_targets = judged(old["scorecard"]), judged(new["scorecard"])
        for name, t in after_targets.items():
            previous = before_targets.get(name)
            targets.append({"target": name, **change(previous["measured"] if previous else None, t["measured"]),
                            "verdict_before": previous["verdict"] if previous else None, "verdict_after": t["verdict"]})
    return {"before": {"audit": before, "run_id": old["manifest"]["run_id"], "passed": old["manifest"]["passed"]},
            "after": {"audit": after, "run_id": new["manifest"]["run_id"], "passed": new["manifest"]["passed"]},
            "metrics": metrics, "fairness": fairness, "targets": targets}
