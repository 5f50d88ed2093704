"""The archive's pages and JSON for risk officers, served by the live dashboard's server code.

``rai-audit archive serve`` runs this app with ``live.server``'s guard (a token on every
request, Host header check, security headers), its socket binding and its uvicorn settings:
one server, the same rules as ``rai-audit dashboard``.

Pages (``/archive...``) and the same data as JSON (``/api/archive/...``):

- models: each model's latest audit: verdict, date, run id, targets missed, verification;
- a model's history: every audit in time order, a chart per target metric (measured value,
  interval, threshold, verdict changes marked), filters by version and date;
- differences between two audits (``archive.diff_audits``, as ``audits diff`` prints);
- evidence: the audit's dashboard page, its PDF, a presigned link, who and what made it.

The pages are rendered here, as HTML with every value escaped (``html.escape``), and the
charts as inline SVG: a second Preact bundle would add a build and a committed file to keep
byte-identical for a few tables and line charts; these pages load nothing but themselves (no
script or style from anywhere else, so they work without network), and their one script
copies a link to the clipboard.

Every audit shown is verified by this server (every file's sha256 and the manifest's claims,
``archive.check_audit``), the result cached per audit for ``recheck_seconds``; one that
fails is shown as FAILED VERIFICATION, never with its claimed verdict, and its figures are
not plotted. The listing comes from the archive index (one object, reread when its ETag
changes). Nothing is written: the S3 client given to the archive functions has no write
method, and files are served only from audits the index names, only those their manifest
lists, each hashed again against the manifest as it is served.
"""

from __future__ import annotations

import html
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from rai_audit import archive
from rai_audit.core import RAIInputError
from rai_audit.live.server import PAGE_POLICY, Refused, TokenGuard, _json
from rai_audit.storage import S3Settings

# The archive pages: inline style and one inline script, forms to this server, nothing else.
ARCHIVE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DIFF_CHOICES = 500  # audits listed in the diff page's choices before they are shown one model at a time
VERIFIES = {True: "yes", False: "NO", None: "checking…"}
DASHBOARD_PAGE, PDF = "dashboard/dashboard.html", "scorecard/scorecard.pdf"
READ_METHODS = frozenset(
    {"get_object", "stat_object", "list_objects", "bucket_exists", "presigned_get_object", "get_object_retention"}
)


class ReadOnlyClient:
    """An S3 client with the read methods only: a write by mistake fails before any request."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        if name not in READ_METHODS:
            raise PermissionError(f"the archive server does not write: {name} is not allowed")
        return getattr(self._client, name)


@dataclass(frozen=True, repr=False)
class ReadOnlySettings(S3Settings):
    def client(self) -> Any:
        return ReadOnlyClient(super().client())


def read_only(settings: S3Settings) -> ReadOnlySettings:
    return ReadOnlySettings(settings.endpoint, settings.access_key, settings.secret_key, settings.region)


def status_of(check: dict[str, Any] | None) -> str:
    """What an audit is shown as: its verdict only once it verifies."""
    if check is None:
        return "CHECKING"
    if not check["verified"]:
        return "FAILED VERIFICATION"
    manifest = check["manifest"]
    return {True: "PASS", False: "FAIL", None: "NO SCORECARD"}[manifest["passed"]]


class ArchiveView:
    """The archive as the pages need it: the index (cached by ETag) and each audit's check
    (cached ``recheck_seconds``, run on a few threads)."""

    def __init__(
        self,
        settings: S3Settings,
        bucket: str,
        *,
        recheck_seconds: float = 600.0,
        wait_seconds: float = 1.5,
        threads: int = 8,
    ):
        self.settings, self.bucket, self.recheck = read_only(settings), bucket, recheck_seconds
        self.wait = wait_seconds  # a listing waits this long for checks, then shows the rest as CHECKING
        self.lock, self.loading = threading.Lock(), threading.Lock()
        self.checks: dict[str, tuple[float, dict[str, Any]]] = {}
        self.running: dict[str, Future[dict[str, Any]]] = {}
        self.stale: tuple[str | None, dict[str, Any]] | None = None  # (index ETag, compare_index's finding)
        self.index: tuple[str | None, dict[str, Any]] | None = None
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="rai-audit-archive")

    # --- the index ---------------------------------------------------------------------
    def entries(self) -> dict[str, Any]:
        """{"audits": prefix -> entry, "source": "index" or "scan", "updated_at"}."""
        from minio.error import S3Error

        client = self.settings.client()
        try:
            etag = client.stat_object(self.bucket, archive.INDEX_KEY).etag
        except S3Error as err:
            if err.code not in ("NoSuchKey", "NoSuchObject", "NotFound"):
                raise RAIInputError(f"cannot read the archive index: {err.code}") from err
            etag = None
        with self.loading:  # one reload at a time: a request during another's waits for it
            with self.lock:
                if self.index is not None and etag is not None and self.index[0] == etag:
                    return self.index[1]
            return self._load(etag)

    def _load(self, etag: str | None) -> dict[str, Any]:
        doc = archive.read_index(self.settings, self.bucket) if etag is not None else None
        if doc is None:  # no index yet: the manifests, listed (slow on a large archive; reindex)
            listed = archive.list_audits(self.settings, self.bucket, verify=False, use_index=False)
            audits = {
                a["audit"]: {
                    "audit": a["audit"],
                    "model": (a["model"] or {}).get("name") or a["audit"].split("/")[1],
                    "version": a["version"],
                    "run_id": a["run_id"],
                    "pipeline_run": a["pipeline_run"],
                    "published_at": a["published_at"],
                    "passed": a["passed"],
                    "targets_missed": None,
                    "targets": [],
                }
                for a in listed
            }
            view = {"audits": audits, "source": "scan", "updated_at": None}
        else:
            audits = {k: v for k, v in doc["audits"].items() if archive.is_audit_key(k) and isinstance(v, dict)}
            view = {"audits": audits, "source": "index", "updated_at": doc.get("updated_at")}
        with self.lock:
            self.index = (etag, view) if etag is not None else None
        return view

    def entry(self, audit: str) -> dict[str, Any]:
        """The index entry of an audit the index names; 404 for any other key."""
        if not archive.is_audit_key(audit):
            raise Refused(404, "no such audit in the archive (audits/<model>/<version>/<audit>)")
        found = self.entries()["audits"].get(audit)
        if found is None:
            raise Refused(404, "no such audit in the archive index (run `rai-audit archive reindex` if it is new)")
        return found

    # --- verification --------------------------------------------------------------------
    def _future(self, audit: str) -> Future[dict[str, Any]]:
        """The audit's check: cached (younger than ``recheck``), under way, or started now."""
        with self.lock:
            cached = self.checks.get(audit)
            if cached is not None and time.monotonic() - cached[0] < self.recheck:
                done: Future[dict[str, Any]] = Future()
                done.set_result(cached[1])
                return done
            if audit not in self.running:
                self.running[audit] = self.pool.submit(self._check, audit)
            return self.running[audit]

    def _check(self, audit: str) -> dict[str, Any]:
        try:
            result = archive.check_audit(self.settings, self.bucket, audit)
            with self.lock:
                self.checks[audit] = (time.monotonic(), result)
            return result
        finally:
            with self.lock:
                self.running.pop(audit, None)

    def check(self, audit: str) -> dict[str, Any]:
        return self._future(audit).result()

    def check_all(self, audits: list[str], began: float) -> dict[str, dict[str, Any] | None]:
        """Each audit's check, waiting until ``wait`` seconds after the request ``began``: None
        for one not done (shown as CHECKING, never with its claimed verdict; the page reloads)."""
        futures = {a: self._future(a) for a in audits}
        wait(list(futures.values()), timeout=max(0.0, began + self.wait - time.monotonic()))
        return {a: f.result() if f.done() else None for a, f in futures.items()}

    def warm(self) -> None:
        """Start checking every model's latest audit (at start: the first page is then quick)."""
        try:
            view = self.entries()
        except Exception:  # noqa: BLE001 the first page load says what is wrong
            return
        latest: dict[str, dict[str, Any]] = {}
        for entry in view["audits"].values():
            model = str(entry.get("model"))
            if model not in latest or _when(entry) > _when(latest[model]):
                latest[model] = entry
        for entry in latest.values():
            self._future(entry["audit"])
        if view["source"] == "index":
            try:
                self.compare_index()
            except Exception:  # noqa: BLE001 a failed comparison says nothing about the audits
                return

    def compare_index(self) -> dict[str, Any]:
        """Audits with a manifest that the index does not name, and entries without a manifest:
        one listing of the archive, once at start (never per request); the pages warn of it."""
        client = self.settings.client()
        found = {
            o.object_name.rsplit("/", 1)[0]
            for o in client.list_objects(self.bucket, prefix=f"{archive.ROOT}/", recursive=True)
            if len(o.object_name.split("/")) == 5 and o.object_name.endswith(f"/{archive.MANIFEST}")
        }
        indexed = set(self.entries()["audits"])
        stale = {"not_indexed": sorted(found - indexed), "without_manifest": sorted(indexed - found)}
        with self.lock:
            self.stale = (None if self.index is None else self.index[0], stale)  # for this index version
        return stale

    def _stale(self) -> dict[str, Any] | None:
        """compare_index's finding while the index is the version it compared (a reindex or a
        publish since: not said)."""
        with self.lock:
            if self.stale is None or self.index is None or self.stale[0] != self.index[0]:
                return None
            return self.stale[1] if any(self.stale[1].values()) else None

    # --- what the pages show ---------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        began = time.monotonic()
        view = self.entries()
        by_model: dict[str, list[dict[str, Any]]] = {}
        for entry in view["audits"].values():
            by_model.setdefault(str(entry.get("model") or entry["audit"].split("/")[1]), []).append(entry)
        latest = {m: max(es, key=_when) for m, es in by_model.items()}
        checks = self.check_all([e["audit"] for e in latest.values()], began)
        rows = []
        for model in sorted(latest):
            entry, check = latest[model], checks[latest[model]["audit"]]
            rows.append(
                {
                    "model": model,
                    "audits": len(by_model[model]),
                    "versions": sorted({str(e.get("version")) for e in by_model[model]}),
                    "latest": _shown(entry, check),
                }
            )
        return {
            "bucket": self.bucket,
            "checking": sum(c is None for c in checks.values()),
            "source": view["source"],
            "index_updated_at": view["updated_at"],
            "index_stale": self._stale(),
            "count": len(view["audits"]),
            "models": rows,
        }

    def history(
        self, model: str, *, version: str | None = None, since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        began = time.monotonic()
        every = sorted((e for e in self.entries()["audits"].values() if e.get("model") == model), key=_when)
        if not every:
            raise Refused(404, f"no audit of model {model!r} in the archive")
        chosen = [
            e
            for e in every
            if (not version or str(e.get("version")) == version)
            and (not since or str(e.get("published_at") or "")[:10] >= since)
            and (not until or str(e.get("published_at") or "")[:10] <= until)
        ]
        checks = self.check_all([e["audit"] for e in chosen], began)
        audits: list[dict[str, Any]] = []
        series: dict[str, dict[str, Any]] = {}
        previous = None
        for entry in chosen:
            check = checks[entry["audit"]]
            shown = _shown(entry, check)
            shown["verdict_changed"] = previous is not None and shown["status"] != previous
            previous = shown["status"]
            audits.append(shown)
            if check is None or not check["verified"]:
                continue  # figures of an audit that does not verify (or not yet) are not drawn
            for t in archive._scorecard_targets(check["card"]):
                if not isinstance(t.get("measured"), (int, float)):
                    continue
                line = series.setdefault(t["what"], {"target": t["what"], "points": []})
                line["points"].append(
                    {
                        "audit": entry["audit"],
                        "published_at": shown["published_at"],
                        "version": shown["version"],
                        "measured": t["measured"],
                        "ci_lower": t.get("ci_lower"),
                        "ci_upper": t.get("ci_upper"),
                        "op": t.get("op"),
                        "threshold": t.get("value"),
                        "verdict": t.get("verdict"),
                    }
                )
        for line in series.values():
            last = None
            for point in line["points"]:
                point["verdict_changed"] = last is not None and point["verdict"] != last
                last = point["verdict"]
        return {
            "model": model,
            "checking": sum(c is None for c in checks.values()),
            "versions": sorted({str(e.get("version")) for e in every}),
            "filters": {"version": version, "since": since, "until": until},
            "audits": audits,
            "charts": list(series.values()),
        }

    def audit(self, audit: str) -> dict[str, Any]:
        entry = self.entry(audit)
        check = self.check(audit)
        shown = _shown(entry, check)
        manifest = check["manifest"] or {}
        files = manifest.get("files", {})
        retention = None
        try:
            retention = archive._retention_of(self.settings.client(), self.bucket, f"{audit}/{archive.MANIFEST}")
        except Exception:  # noqa: BLE001 a store without object lock: the index's word, said as such
            retention = None
        link = None
        if check["verified"] and "scorecard/scorecard.pdf" in files:
            link = archive.link_audit(self.settings, self.bucket, audit, hours=24)
        return {
            **shown,
            "pipeline_run": manifest.get("pipeline_run", entry.get("pipeline_run")),
            "producer": (check["meta"] or {}).get("producer") or entry.get("producer"),
            "model_sha256": (manifest.get("model") or {}).get("sha256"),
            "retention": retention or entry.get("retention"),
            "retention_checked": retention is not None,
            "scorecard_signature": manifest.get("scorecard_signature"),
            "files": len(files),
            "has_dashboard": "dashboard/dashboard.html" in files,
            "has_pdf": "scorecard/scorecard.pdf" in files,
            "pdf_link": link,
            "link_hours": 24 if link else None,
            "targets": [
                {k: t.get(k) for k in ("label", "measured", "ci_lower", "ci_upper", "verdict")}
                for t in archive._scorecard_targets(check["card"])
            ],
        }

    def diff(self, before: str, after: str) -> dict[str, Any]:
        self.entry(before), self.entry(after)
        return archive.diff_audits(self.settings, self.bucket, before, after)

    def file(self, audit: str, relative: str) -> bytes:
        """One file of an audit the index names, listed in its manifest, checked as read."""
        self.entry(audit)
        manifest = archive.check_audit(self.settings, self.bucket, audit)["manifest"]
        if manifest is None:
            raise Refused(409, "this audit fails verification: its files are not served")
        expected = manifest["files"].get(relative)
        if expected is None:
            raise Refused(404, "no such file in this audit (only files its manifest lists are served)")
        response = self.settings.client().get_object(self.bucket, f"{audit}/{relative}")
        try:
            data = response.read()
        finally:
            response.close()
            response.release_conn()
        if archive._sha256_bytes(data) != expected["sha256"]:
            raise Refused(409, f"{relative} does not match the audit's manifest: the archive was changed")
        return data

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _when(entry: dict[str, Any]) -> tuple[str, str]:
    return (str(entry.get("published_at") or ""), entry["audit"])


def _shown(entry: dict[str, Any], check: dict[str, Any] | None) -> dict[str, Any]:
    """An audit as listed: the verified verdict and targets missed (the scorecard's, once it
    verifies); the index's claims are not shown for one that fails or is still being checked
    (``verified`` None)."""
    verified = None if check is None else check["verified"]
    card_targets = archive._scorecard_targets(check["card"]) if check is not None and verified else []
    return {
        "audit": entry["audit"],
        "version": str(entry.get("version")),
        "published_at": entry.get("published_at"),
        "run_id": entry.get("run_id"),
        "status": status_of(check),
        "verified": verified,
        "problem": None if check is None else check["problem"],
        "passed": check["manifest"]["passed"] if check is not None and verified else None,
        "targets_missed": sum(t["verdict"] == "FAIL" for t in card_targets) if verified else None,
        "targets": len(card_targets) if verified else None,
    }


# --- HTML ----------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1f3a5f;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:baseline}
header a{color:#fff} main{padding:16px 20px;max-width:1100px} h1{font-size:20px;margin:4px 0 12px}
h2{font-size:16px;margin:18px 0 8px} table{border-collapse:collapse;background:#fff;width:100%}
th,td{border:1px solid #d5d9e0;padding:5px 8px;text-align:left;vertical-align:top} th{background:#eef1f5}
.PASS{color:#0a6b2d;font-weight:600} .FAIL{color:#b3261e;font-weight:600}
.FAILED-VERIFICATION{color:#fff;background:#b3261e;font-weight:700;padding:1px 5px;border-radius:3px}
.NO-SCORECARD,.CHECKING{color:#6b7280} .note{color:#4b5563}
.warn{background:#fff4d6;padding:8px;border:1px solid #e7c66a}
.ADDED{color:#0a6b2d} .REMOVED{color:#b3261e} .CHANGED{color:#8a5a00} code{font-size:12px}
form{background:#fff;border:1px solid #d5d9e0;padding:8px;display:flex;gap:12px;align-items:end;flex-wrap:wrap}
label{display:flex;flex-direction:column;font-size:12px} .chart{background:#fff;border:1px solid #d5d9e0;margin:8px 0}
svg text{font:11px system-ui,sans-serif;fill:#374151} .mark{color:#8a5a00;font-weight:700}
input.link{width:100%;font-family:monospace;font-size:12px}
"""


def model_path(model: str) -> str:
    return "/archive/model/" + quote(model, safe="")


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def num(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{value:.4g}"


class Pages:
    def __init__(self, view: ArchiveView, token: str) -> None:
        self.view, self.token = view, token

    def url(self, path: str, **params: Any) -> str:
        query = urlencode({**{k: v for k, v in params.items() if v not in (None, "")}, "token": self.token})
        return e(f"{path}?{query}")

    def page(self, title: str, body: str, *, checking: int = 0) -> HTMLResponse:
        # audits still being checked: the page reloads itself until every one is
        refresh = "<meta http-equiv=refresh content=2>" if checking else ""
        if checking:
            body = f"<p class=warn id=checking>{checking} audit(s) still being verified: shown as CHECKING.</p>{body}"
        doc = (
            f"<!doctype html><html lang=en><head><meta charset=utf-8>{refresh}"
            f"<meta name=viewport content='width=device-width'><title>{e(title)} · rai-audit archive</title>"
            f"<style>{STYLE}</style></head><body><header><strong>rai-audit archive</strong>"
            f"<span>s3://{e(self.view.bucket)}</span><a href='{self.url('/archive')}'>Models</a>"
            f"<a href='{self.url('/archive/diff')}'>Differences</a></header><main>{body}</main></body></html>"
        )
        return HTMLResponse(doc, headers={"content-security-policy": ARCHIVE_POLICY})

    def badge(self, status: str) -> str:
        return f"<span class='status {e(status.replace(' ', '-'))}'>{e(status)}</span>"

    def models(self, data: dict[str, Any]) -> HTMLResponse:
        rows = []
        for m in data["models"]:
            a = m["latest"]
            problem = f"<div class=note>{e(a['problem'])}</div>" if a["problem"] else ""
            rows.append(
                f"<tr data-model='{e(m['model'])}'><td><a href='{self.url(model_path(m['model']))}'>"
                f"{e(m['model'])}</a></td><td>{e(a['version'])}</td><td class=verdict>{self.badge(a['status'])}"
                f"{problem}</td><td>{e(a['published_at'])}</td><td><code>{e(a['run_id'])}</code></td>"
                f"<td class=missed>{e('—' if a['targets_missed'] is None else a['targets_missed'])}"
                f"{'' if a['targets'] is None else ' of ' + e(a['targets'])}</td>"
                f"<td class=verified>{VERIFIES[a['verified']]}</td><td>{m['audits']}</td>"
                f"<td><a href='{self.url('/archive/audit', audit=a['audit'])}'>evidence</a></td></tr>"
            )
        note = (
            "<p class=warn>The archive has no index: this list came from listing every manifest. "
            f"Run <code>rai-audit archive reindex --bucket {e(self.view.bucket)}</code> (write credentials).</p>"
            if data["source"] == "scan"
            else f"<p class=note>{data['count']} audits; index updated {e(data['index_updated_at'])}. "
            "Each latest audit below was verified by this server (every file's sha256 and the manifest's claims).</p>"
        )
        stale = data["index_stale"]
        if stale and data["source"] == "index":
            note += (
                f"<p class=warn id=stale>The index is stale: {len(stale['not_indexed'])} audit(s) in the archive are "
                f"not in it, {len(stale['without_manifest'])} of its entries have no manifest. Run "
                f"<code>rai-audit archive reindex --bucket {e(self.view.bucket)}</code> (write credentials).</p>"
            )
        body = (
            f"<h1>Models</h1>{note}<table id=models><thead><tr><th>Model</th><th>Version</th>"
            "<th>Latest verdict</th><th>Date</th><th>Run id</th><th>Targets missed</th><th>Verifies</th>"
            f"<th>Audits</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
        return self.page("Models", body, checking=data["checking"])

    def history(self, data: dict[str, Any]) -> HTMLResponse:
        f = data["filters"]
        options = "".join(
            f"<option value='{e(v)}'{' selected' if v == f['version'] else ''}>{e(v)}</option>"
            for v in data["versions"]
        )
        form = (
            f"<form method=get action='{e(model_path(data['model']))}'>"
            f"<input type=hidden name=token value='{e(self.token)}'>"
            f"<label>Version<select name=version><option value=''>all</option>{options}</select></label>"
            f"<label>From<input type=date name=since value='{e(f['since'])}'></label>"
            f"<label>To<input type=date name=until value='{e(f['until'])}'></label>"
            "<button type=submit>Filter</button></form>"
        )
        rows, previous = [], None
        for a in data["audits"]:
            mark = "<span class=mark title='verdict changed'>◆ verdict changed</span>" if a["verdict_changed"] else ""
            compare = (
                f"<a href='{self.url('/archive/diff', before=previous, after=a['audit'])}'>diff with previous</a>"
                if previous
                else ""
            )
            previous = a["audit"]
            rows.append(
                f"<tr data-audit='{e(a['audit'])}'><td>{e(a['published_at'])}</td><td>{e(a['version'])}</td>"
                f"<td><code>{e(a['run_id'])}</code></td><td>{self.badge(a['status'])} {mark}</td>"
                f"<td>{e('—' if a['targets_missed'] is None else a['targets_missed'])}</td>"
                f"<td><a href='{self.url('/archive/audit', audit=a['audit'])}'>evidence</a> {compare}</td></tr>"
            )
        order = [a["audit"] for a in data["audits"] if a["verified"]]
        charts = "".join(self.chart(c, i, order) for i, c in enumerate(data["charts"]))
        charts = charts or "<p class=note>No target figures.</p>"
        body = (
            f"<h1>{e(data['model'])}: audit history</h1>{form}<h2>Targets over time</h2>"
            "<p class=note>Dots: measured values (bars: their intervals); dashed: the threshold; "
            "a ringed dot: the target's verdict changed. Audits that fail verification are not drawn.</p>"
            f"{charts}<h2>Audits ({len(data['audits'])})</h2><table id=audits><thead><tr><th>Date</th>"
            "<th>Version</th><th>Run id</th><th>Verdict</th><th>Targets missed</th><th></th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        return self.page(data["model"], body, checking=data["checking"])

    def chart(self, line: dict[str, Any], n: int, order: list[str]) -> str:
        """One target over the model's audits: x is the audit's place in ``order`` (time), the
        same in every chart, so a target judged in some audits only sits under them."""
        width, height, left, right, top, bottom = 720, 230, 60, 50, 16, 46
        points = line["points"]
        place = {a: i for i, a in enumerate(order)}
        slots = max(len(order), 1)
        values = [p["measured"] for p in points]
        for p in points:
            values += [v for v in (p["ci_lower"], p["ci_upper"], p["threshold"]) if _is_num(v)]
        low, high = min(values), max(values)
        pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad

        def x(i: int) -> float:
            k = place[points[i]["audit"]]
            return left + (width - left - right) * (0.5 if slots == 1 else k / (slots - 1))

        def y(v: float) -> float:
            return top + (height - top - bottom) * (high - v) / (high - low)

        parts = [
            _el("line", x1=left, y1=height - bottom, x2=width - right, y2=height - bottom, stroke="#9ca3af"),
            _el("line", x1=left, y1=top, x2=left, y2=height - bottom, stroke="#9ca3af"),
        ]
        for k in range(5):
            v = low + (high - low) * k / 4
            parts.append(_el("line", x1=left, y1=y(v), x2=width - right, y2=y(v), stroke="#eef0f3", cls="grid"))
            parts.append(_el("text", num(v), x=left - 6, y=y(v) + 4, text_anchor="end"))
        half = (width - left - right) / (2 * (slots - 1)) if slots > 1 else 40
        steps = [
            f"{xx:.1f},{y(p['threshold']):.1f}"
            for i, p in enumerate(points)
            if _is_num(p["threshold"])
            for xx in (max(left, x(i) - half), min(width - right, x(i) + half))
        ]
        if steps:
            parts.append(
                _el(
                    "polyline",
                    points=" ".join(steps),
                    fill="none",
                    stroke="#b3261e",
                    stroke_dasharray="5 4",
                    cls="threshold",
                )
            )
        trend = " ".join(f"{x(i):.1f},{y(p['measured']):.1f}" for i, p in enumerate(points))
        parts.append(_el("polyline", points=trend, fill="none", stroke="#1f3a5f", cls="trend"))
        every = max(1, slots // 8)
        for i, p in enumerate(points):
            if _is_num(p["ci_lower"]) and _is_num(p["ci_upper"]):
                parts.append(
                    _el(
                        "line",
                        x1=x(i),
                        x2=x(i),
                        y1=y(p["ci_lower"]),
                        y2=y(p["ci_upper"]),
                        stroke="#6b8fbf",
                        stroke_width=3,
                        cls="interval",
                        data_low=repr(p["ci_lower"]),
                        data_high=repr(p["ci_upper"]),
                    )
                )
            if p["verdict_changed"]:
                parts.append(
                    _el(
                        "circle",
                        cx=x(i),
                        cy=y(p["measured"]),
                        r=9,
                        fill="none",
                        stroke="#d97706",
                        stroke_width=2,
                        cls="verdict-change",
                    )
                )
            tip = (
                f"{p['published_at']} v{p['version']}: {num(p['measured'])} ({p['verdict']}; threshold "
                f"{p['op'] or ''} {num(p['threshold'])})"
            )
            parts.append(
                _el(
                    "circle",
                    _el("title", tip),
                    cx=x(i),
                    cy=y(p["measured"]),
                    r=4.5,
                    fill={"PASS": "#0a6b2d", "FAIL": "#b3261e"}.get(str(p["verdict"]), "#6b7280"),
                    cls="point",
                    data_audit=p["audit"],
                    data_measured=repr(p["measured"]),
                    data_threshold=repr(p["threshold"]),
                    data_verdict=p["verdict"],
                    raw=True,
                )
            )
            if place[p["audit"]] % every == 0:
                parts.append(
                    _el("text", str(p["published_at"] or "")[:10], x=x(i), y=height - bottom + 16, text_anchor="middle")
                )
                parts.append(_el("text", f"v{p['version']}", x=x(i), y=height - bottom + 30, text_anchor="middle"))
        svg = _el(
            "svg",
            "".join(parts),
            role="img",
            aria_label=f"{line['target']} over time",
            width=width,
            height=height,
            viewBox=f"0 0 {width} {height}",
            id=f"chart-{n}",
            raw=True,
        )
        return (
            f"<figure class='chart' data-target='{e(line['target'])}'><figcaption><strong>{e(line['target'])}"
            f"</strong></figcaption>{svg}</figure>"
        )

    def audit(self, a: dict[str, Any]) -> HTMLResponse:
        retention = a["retention"]
        kept = (
            "none (no object lock)"
            if not retention
            else f"{retention.get('mode')} until {retention.get('until')}"
            + ("" if a["retention_checked"] else " (the index's record; the store did not say)")
        )
        problem = f"<p class=warn>This audit fails verification: {e(a['problem'])}</p>" if a["problem"] else ""
        actions = []
        if a["verified"] and a["has_dashboard"]:
            actions.append(
                f"<a id=open-dashboard href='{self.url('/archive/file', audit=a['audit'], file=DASHBOARD_PAGE)}'"
                " target=_blank rel=noopener>Open the dashboard</a>"
            )
        if a["verified"] and a["has_pdf"]:
            actions.append(
                f"<a id=download-pdf href='{self.url('/archive/file', audit=a['audit'], file=PDF)}'"
                " download>Download the PDF</a>"
            )
        link = ""
        if a["pdf_link"]:
            link = (
                f"<h2>Presigned link to the PDF (valid {a['link_hours']} h)</h2>"
                f"<input class=link id=pdf-link readonly value='{e(a['pdf_link'])}'> "
                "<button id=copy-link type=button>Copy link</button> <span id=copied class=note></span>"
                "<script>document.getElementById('copy-link').addEventListener('click',async()=>{"
                "const f=document.getElementById('pdf-link');f.select();let ok=false;"
                "try{await navigator.clipboard.writeText(f.value);ok=true}catch(_){ok=document.execCommand('copy')}"
                "document.getElementById('copied').textContent=ok?'copied':'select the link and copy it'})</script>"
            )
        facts = [
            ("Model", a["audit"].split("/")[1]),
            ("Version", a["version"]),
            ("Verdict", None),
            ("Published", a["published_at"]),
            ("Run id", a["run_id"]),
            ("Pipeline run", a["pipeline_run"] or "—"),
            ("Producer", a["producer"]),
            ("Model sha256", a["model_sha256"]),
            ("Object-lock retention", kept),
            ("PDF signature", _signature(a["scorecard_signature"])),
            ("Files", a["files"]),
            ("Archive key", a["audit"]),
        ]
        rows = "".join(
            f"<tr><th>{e(k)}</th><td>{self.badge(a['status']) if k == 'Verdict' else e(v)}</td></tr>" for k, v in facts
        )
        targets = "".join(
            f"<tr><td>{e(t['label'])}</td><td>{num(t['measured'])}</td>"
            f"<td>{'' if t['ci_lower'] is None else e(num(t['ci_lower']) + ' – ' + num(t['ci_upper']))}</td>"
            f"<td>{self.badge(str(t['verdict']))}</td></tr>"
            for t in a["targets"]
        )
        body = (
            f"<h1>Evidence: {e(a['audit'])}</h1>{problem}<p>{' · '.join(actions)}</p>"
            f"<table id=evidence>{rows}</table>{link}"
            + (
                "<p class=note>With its model, live (what-if, full-data cohorts): <code>rai-audit dashboard "
                f"s3://{e(self.view.bucket)}/{e(a['audit'])}</code></p>"
                if a["verified"] and a["has_dashboard"]
                else ""
            )
            + (
                "<h2>Targets</h2><table><tr><th>Target</th><th>Measured</th><th>Interval</th><th>Verdict</th></tr>"
                f"{targets}</table>"
                if targets
                else ""
            )
            + f"<p><a href='{self.url(model_path(a['audit'].split('/')[1]))}'>the model's history</a></p>"
        )
        return self.page("Evidence", body)

    def diff(
        self,
        entries: dict[str, Any],
        before: str | None,
        after: str | None,
        d: dict[str, Any] | None,
        model: str | None = None,
    ) -> HTMLResponse:
        models = sorted({str(x.get("model")) for x in entries.values()})
        if model is None and before in entries:
            model = str(entries[before].get("model"))
        if model is None and len(entries) > DIFF_CHOICES and models:
            model = models[0]  # thousands of audits: one model's at a time in the lists
        ordered = sorted(
            (x for x in entries.values() if model is None or x.get("model") == model or x["audit"] in (before, after)),
            key=lambda x: (str(x.get("model")), *_when(x)),
        )
        choose = "".join(f"<option value='{e(m)}'{' selected' if m == model else ''}>{e(m)}</option>" for m in models)
        picker = (
            f"<form method=get action='/archive/diff' id=pick-model><input type=hidden name=token "
            f"value='{e(self.token)}'><label>Model<select name=model><option value=''>all models</option>"
            f"{choose}</select></label><button type=submit>Show its audits</button></form>"
        )

        def select(name: str, chosen: str | None) -> str:
            opts = "".join(
                f"<option value='{e(x['audit'])}'{' selected' if x['audit'] == chosen else ''}>"
                f"{e(x.get('model'))} v{e(x.get('version'))} · {e(str(x.get('published_at') or '')[:19])} · "
                f"{e(x.get('run_id'))}</option>"
                for x in ordered
            )
            return f"<label>{'Earlier' if name == 'before' else 'Later'}<select name={name}>{opts}</select></label>"

        form = (
            f"<form method=get action='/archive/diff' id=pick-audits><input type=hidden name=token "
            f"value='{e(self.token)}'>{select('before', before)}{select('after', after)}"
            "<button type=submit>Compare</button></form>"
        )
        body = f"<h1>Differences between two audits</h1>{picker}{form}"
        if d is not None:
            verdict = {True: "PASS", False: "FAIL", None: "NO SCORECARD"}
            b, a = d["before"], d["after"]
            body += (
                f"<h2>Verdicts</h2><p id=verdicts>{e(b['audit'])}: {self.badge(verdict[b['passed']])} → "
                f"{e(a['audit'])}: {self.badge(verdict[a['passed']])}</p>"
                "<p class=note>Both audits were verified whole before comparing.</p>"
            )
            rows = []
            for t in d["targets"]:
                status = (
                    "ADDED"
                    if t["status"] == "added"
                    else "REMOVED"
                    if t["status"] == "removed"
                    else "CHANGED"
                    if t["definition_changed"] or t["verdict_changed"]
                    else "kept"
                )
                definition = (
                    f"{e(t['definition_before'])} → {e(t['definition_after'])}"
                    if t["definition_changed"]
                    else e(t["definition_after"] or t["definition_before"])
                )
                rows.append(
                    f"<tr class='target {status}' data-status='{status}'><td class={status}>{status}</td>"
                    f"<td>{e(t['what'])}</td><td>{definition}</td><td>{num(t['before'])} → {num(t['after'])}</td>"
                    f"<td>{e(t['verdict_before'] or '—')} → {e(t['verdict_after'] or '—')}</td></tr>"
                )
            dropped = [t for t in d["targets"] if t["status"] == "removed" and t["verdict_before"] == "FAIL"]
            warn = (
                f"<p class=warn>{len(dropped)} target(s) that FAILED in the earlier audit are gone from the later one: "
                + e("; ".join(t["target"] for t in dropped))
                + "</p>"
                if dropped
                else ""
            )
            body += (
                f"<h2>Targets</h2>{warn}<table id=targets><tr><th></th><th>Target</th><th>Threshold</th>"
                f"<th>Measured</th><th>Verdict</th></tr>{''.join(rows) or '<tr><td colspan=5>no targets</td></tr>'}"
                "</table>"
            )
            metrics = "".join(
                f"<tr><td>{e(m)}</td><td>{num(c['before'])}</td><td>{num(c['after'])}</td>"
                f"<td>{_signed(c['change'])}</td></tr>"
                for m, c in d["metrics"].items()
            )
            body += (
                "<h2>Metrics</h2><table id=metrics><tr><th>Metric</th><th>Earlier</th><th>Later</th><th>Change</th>"
                f"</tr>{metrics}</table>"
            )
            fair = "".join(
                f"<tr><td>{e(f['metric'])} {e(f['kind'])} across {e(f['features'])}</td><td>{num(f['before'])}</td>"
                f"<td>{num(f['after'])}</td></tr>"
                for f in d["fairness"]
            )
            gone = d.get("fairness_features", {})
            extra = "".join(
                f"<p class=note>fairness across {e(x)}: {how}</p>"
                for key, how in (("added", "new in the later audit"), ("removed", "no longer measured"))
                for x in gone.get(key, [])
            )
            body += (
                "<h2>Fairness</h2><table id=fairness><tr><th>Figure</th><th>Earlier</th><th>Later</th></tr>"
                f"{fair}</table>{extra}"
            )
        return self.page("Differences", body)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _el(tag: str, content: str = "", *, raw: bool = False, cls: str | None = None, **attrs: Any) -> str:
    """An SVG element, every attribute quoted and escaped (``data_x`` is ``data-x``); text
    content escaped unless ``raw`` (already built of escaped elements)."""
    if cls is not None:
        attrs["class"] = cls
    pairs = "".join(
        f' {k if k == "viewBox" else k.replace("_", "-")}="{e(f"{v:.1f}" if isinstance(v, float) else v)}"'
        for k, v in attrs.items()
    )
    return f"<{tag}{pairs}>{content if raw else e(content)}</{tag}>"


def _signed(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{value:+.4g}"


def _signature(claim: Any) -> str:
    if not isinstance(claim, dict):
        return "not recorded"
    return f"signed by {claim.get('subject')}" if claim.get("signed") else "not signed"


def _audit_param(request: Request, name: str = "audit") -> str:
    value = request.query_params.get(name)
    if not value:
        raise Refused(400, f"`{name}` is missing: an audit's key, audits/<model>/<version>/<audit>")
    return value


def _date_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None:
        from datetime import date

        try:
            date.fromisoformat(value)
        except ValueError:
            raise Refused(400, f"`{name}` must be a date YYYY-MM-DD, got {value!r}") from None
    return value


def archive_routes(view: ArchiveView, token: str) -> list[Route]:
    """The archive's routes (pages and JSON), to serve alone or beside the dashboard's."""
    pages = Pages(view, token)

    async def models_page(request: Request) -> Response:
        return pages.models(await run_in_threadpool(view.models))

    async def models_api(request: Request) -> Response:
        return _json(await run_in_threadpool(view.models))

    def history_args(request: Request) -> tuple[str, dict[str, Any]]:
        return request.path_params["model"], {
            "version": request.query_params.get("version") or None,
            "since": _date_param(request, "since"),
            "until": _date_param(request, "until"),
        }

    async def history_page(request: Request) -> Response:
        model, kw = history_args(request)
        return pages.history(await run_in_threadpool(lambda: view.history(model, **kw)))

    async def history_api(request: Request) -> Response:
        model, kw = history_args(request)
        return _json(await run_in_threadpool(lambda: view.history(model, **kw)))

    async def audit_page(request: Request) -> Response:
        return pages.audit(await run_in_threadpool(view.audit, _audit_param(request)))

    async def audit_api(request: Request) -> Response:
        return _json(await run_in_threadpool(view.audit, _audit_param(request)))

    async def index_api(request: Request) -> Response:
        data = await run_in_threadpool(view.entries)
        return _json({**data, "audits": sorted(data["audits"].values(), key=_when)})

    async def diff_page(request: Request) -> Response:
        before, after = request.query_params.get("before"), request.query_params.get("after")
        entries = (await run_in_threadpool(view.entries))["audits"]
        found = await run_in_threadpool(view.diff, before, after) if before and after else None
        return pages.diff(entries, before, after, found, request.query_params.get("model") or None)

    async def diff_api(request: Request) -> Response:
        return _json(
            await run_in_threadpool(view.diff, _audit_param(request, "before"), _audit_param(request, "after"))
        )

    async def file(request: Request) -> Response:
        audit, relative = _audit_param(request), request.query_params.get("file", "")
        data = await run_in_threadpool(view.file, audit, relative)
        if relative.endswith(".html"):  # the bundle's own page, under the dashboard's policy
            return Response(data, media_type="text/html", headers={"content-security-policy": PAGE_POLICY})
        name = relative.rsplit("/", 1)[-1].replace('"', "")
        kind = "application/pdf" if relative.endswith(".pdf") else "application/octet-stream"
        return Response(data, media_type=kind, headers={"content-disposition": f'attachment; filename="{name}"'})

    async def home(request: Request) -> Response:
        return RedirectResponse(f"/archive?{urlencode({'token': token})}", 303)

    return [
        Route("/archive", models_page, methods=["GET"]),
        Route("/archive/model/{model}", history_page, methods=["GET"]),
        Route("/archive/audit", audit_page, methods=["GET"]),
        Route("/archive/diff", diff_page, methods=["GET"]),
        Route("/archive/file", file, methods=["GET"]),
        Route("/api/archive/index", index_api, methods=["GET"]),
        Route("/api/archive/models", models_api, methods=["GET"]),
        Route("/api/archive/models/{model}", history_api, methods=["GET"]),
        Route("/api/archive/audit", audit_api, methods=["GET"]),
        Route("/api/archive/diff", diff_api, methods=["GET"]),
        Route("/", home, methods=["GET"]),
    ]


def create_archive_app(view: ArchiveView, token: str, *, hosts: list[str] | None = None) -> Starlette:
    """The archive served with the dashboard server's guard: token, Host check, headers."""

    async def on_refused(request: Request, err: Exception) -> Response:
        assert isinstance(err, Refused)
        return _json({"error": err.message}, err.status)

    async def on_input_error(request: Request, err: Exception) -> Response:
        return _json({"error": str(err)}, 422)

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    return Starlette(
        routes=[*archive_routes(view, token), Route("/favicon.ico", favicon, methods=["GET"])],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts or ["127.0.0.1", "localhost"]),
            Middleware(TokenGuard, token=token),
        ],
        exception_handlers={Refused: on_refused, RAIInputError: on_input_error},
    )


@dataclass
class RunningArchive:
    url: str
    port: int
    token: str
    server: Any
    thread: threading.Thread
    view: ArchiveView

    def stop(self) -> None:
        self.server.should_exit = True
        self.server.force_exit = True  # a browser's idle keep-alive connections need no goodbye
        self.thread.join(timeout=10)
        self.view.close()


def start_archive(
    settings: S3Settings,
    bucket: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
    token: str | None = None,
    recheck_seconds: float = 600.0,
    wait_seconds: float = 1.5,
) -> RunningArchive:
    """Serve the archive from a background thread; returns once it accepts connections."""
    import secrets

    from rai_audit.live import server as S
    from rai_audit.storage import check_bucket_name

    check_bucket_name(bucket)
    if not S.is_loopback(host) and not allow_remote:
        raise RAIInputError(
            f"--host {host} would let other machines read the archive; it serves 127.0.0.1 by default. "
            "To expose it anyway, add --allow-remote"
        )
    token = token or secrets.token_urlsafe(32)
    view = ArchiveView(settings, bucket, recheck_seconds=recheck_seconds, wait_seconds=wait_seconds)
    sock = S.bind(host, port)
    bound = sock.getsockname()[1]
    server = S.uvicorn_server(create_archive_app(view, token, hosts=S.accepted_hosts(host)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="rai-audit-archive", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RAIInputError(f"the archive server did not start on {host}:{bound}")
        time.sleep(0.02)
    threading.Thread(target=view.warm, name="rai-audit-archive-warm", daemon=True).start()
    url = f"http://{S.url_host(host)}:{bound}/archive?{urlencode({'token': token})}"
    return RunningArchive(url, bound, token, server, thread, view)


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
