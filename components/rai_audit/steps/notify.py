"""The notify step: post a scorecard's verdict to a webhook when it changed or failed.

Reads the scorecard folder (its ``scorecard.json``) and, optionally, the baseline audit's
(a scorecard folder, its scorecard.json, or ``find_baseline``'s folder). With ``on: change``
it posts when the verdict changed (PASS -> FAIL or back), a target is newly missed, or a
change target is missed; without a baseline, when the audit failed (the model's first audit).
With ``on: every_failure`` it posts whenever the scorecard did not pass.

The payload is Slack's (``text`` and ``blocks``), Teams' (a MessageCard) or the fields alone
(``json``): model, version, verdict, missed targets, run id, why it was sent and links. The
webhook URL comes from an environment variable (``RAI_AUDIT_WEBHOOK_URL`` by default; on a
cluster, set from a Kubernetes secret) and is written nowhere: not in ``notification.json``,
a log line or an error message. 5xx answers and connection errors are retried with exponential
backoff; a webhook that cannot be reached does not fail the step unless ``fail_on_error``.

Writes ``notification.json`` (sent or not, why, the HTTP status, attempts, the payload) and a
manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import logging
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.specs import NotifyOptions, options_from_parameters, step_options
from rai_audit.steps._cli import add_options, run_cli

KIND = "notification"
RESULT_FILE = "notification.json"
SCORECARD_FILE = "scorecard.json"
PASS, FAIL = "PASS", "FAIL"
MAX_BACKOFF = 60.0  # seconds: a retry never waits longer than this
log = logging.getLogger(__name__)


class NotifyFailed(Exception):
    """Raised after notification.json is written when the webhook failed and ``fail_on_error``."""


@dataclass
class NotifyResult:
    sent: bool
    reason: str
    status: int | None
    attempts: int
    error: str | None


# --- what to say -----------------------------------------------------------------------------


def _judged(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Every judged target of a scorecard.json, with where it is (targets, fairness, changes)."""
    found = [{**t, "section": "target"} for t in card.get("targets") or []]
    for entry in card.get("fairness") or []:
        for m in entry.get("metrics") or []:
            found += [{**t, "section": "fairness", "feature": entry.get("feature")} for t in m.get("targets") or []]
    found += [{**t, "section": "change"} for t in card.get("change_targets") or []]
    return found


def _key(t: dict[str, Any]) -> tuple[Any, ...]:
    """A target across audits: where it is, what it measures and its threshold."""
    return (
        t["section"],
        t.get("metric"),
        t.get("kind"),
        t.get("cohort"),
        t.get("feature") or t.get("sensitive_feature"),
        t.get("op"),
        t.get("value"),
    )


def _missed(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in _judged(card) if t.get("verdict") == FAIL]


def _describe(t: dict[str, Any]) -> str:
    return _missed_line(_missed_fields(t))


def _missed_fields(t: dict[str, Any]) -> dict[str, Any]:
    """A missed target as the payload names it."""
    return {
        "metric": t.get("metric"),
        "kind": t.get("kind"),
        "cohort": t.get("cohort"),
        "feature": t.get("feature") or t.get("sensitive_feature"),
        "change": t["section"] == "change",
        "measured": t.get("measured"),
        "op": t.get("op"),
        "threshold": t.get("value"),
    }


def _read_card(path: Path, what: str) -> dict[str, Any]:
    card = A.read_json(path, what=what)
    if not isinstance(card, dict) or not isinstance(card.get("passed"), bool):
        raise RAIInputError(f"{path} is not a rai-audit scorecard.json (no `passed` verdict)")
    return card


def read_scorecard(scorecard_dir: str | Path) -> dict[str, Any]:
    """The scorecard folder's scorecard.json (the folder's manifest checked first)."""
    folder = Path(scorecard_dir)
    if folder.is_file():
        return _read_card(folder, "the scorecard")
    A.read_artifact_meta(folder, expected_kind="scorecard")
    return _read_card(folder / SCORECARD_FILE, "the scorecard's scorecard.json")


def read_baseline(baseline: str | Path | None) -> tuple[dict[str, Any] | None, str | None]:
    """The baseline audit's scorecard.json, or None and why there is none.

    ``baseline``: a scorecard folder, its scorecard.json, or find_baseline's folder (whose
    baseline.json says which archived audit it is, or that the model had none)."""
    if baseline is None:
        return None, "no baseline was given"
    path = Path(baseline)
    if path.is_dir():
        if (path / A.BASELINE_FILE).is_file():
            source = A.read_json(path / A.BASELINE_FILE, what="the baseline's baseline.json")
            if isinstance(source, dict) and source.get("audit") is None:
                return None, str(source.get("reason") or "the model has no archived audit")
        path = path / SCORECARD_FILE
    return _read_card(path, "the baseline scorecard"), None


def triggers(card: dict[str, Any], baseline: dict[str, Any] | None, on: str) -> list[str]:
    """Why a notification is due (none: nothing to send)."""
    verdict = PASS if card["passed"] else FAIL
    if on == "every_failure":
        return [f"the audit did not pass ({card.get('n_missed', 0)} targets missed)"] if verdict == FAIL else []
    if baseline is None:
        # No earlier verdict to compare with: the first failing audit of a model is news too.
        return ["the audit did not pass and there is no baseline audit to compare with"] if verdict == FAIL else []
    reasons = []
    before = PASS if baseline["passed"] else FAIL
    if before != verdict:
        reasons.append(f"verdict {before} -> {verdict}")
    missed_before = {_key(t) for t in _missed(baseline)}
    for t in _missed(card):
        if t["section"] == "change":
            reasons.append(f"change target missed: {_describe(t)}")
        elif _key(t) not in missed_before:
            reasons.append(f"target newly missed: {_describe(t)}")
    return reasons


def _version(card: dict[str, Any], options: NotifyOptions) -> str | None:
    return options.model_version or (card.get("model") or {}).get("version") or None


def build_payload(
    card: dict[str, Any], baseline: dict[str, Any] | None, reasons: list[str], options: NotifyOptions
) -> dict[str, Any]:
    """The fields every format carries, as plain JSON (``format: json`` posts this)."""
    model = card.get("model") or {}
    links = {k: v for k, v in (("pdf", options.pdf_url), ("dashboard", options.dashboard_url)) if v}
    return {
        "model": model.get("name"),
        "version": _version(card, options),
        "verdict": PASS if card["passed"] else FAIL,
        "run_id": card.get("run_id"),
        "pipeline_run": card.get("pipeline_run"),
        "generated_at": card.get("generated_at"),
        "n_targets": card.get("n_targets"),
        "n_missed": card.get("n_missed"),
        "n_undefined": card.get("n_undefined"),
        "missed_targets": [_missed_fields(t) for t in _missed(card)],
        "baseline": None
        if baseline is None
        else {"run_id": baseline.get("run_id"), "verdict": PASS if baseline["passed"] else FAIL},
        "reasons": reasons,
        "links": links,
    }


def _slack_text(text: Any) -> str:
    # Slack reads <, > and & as markup (links, mentions): user text is escaped, never parsed.
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _title(fields: dict[str, Any]) -> str:
    version = f" version {fields['version']}" if fields["version"] else ""
    return f"rai-audit: {fields['model'] or 'model'}{version}: {fields['verdict']}"


def slack_message(fields: dict[str, Any]) -> dict[str, Any]:
    """Slack's incoming-webhook form: ``text`` (the notification's line) and ``blocks``."""
    title = _slack_text(_title(fields))
    lines = [f"*Run* {_slack_text(fields['run_id'])}", *(f"• {_slack_text(r)}" for r in fields["reasons"])]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _title(fields)[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}},
    ]
    if fields["missed_targets"]:
        missed = "\n".join(f"• {_slack_text(_missed_line(t))}" for t in fields["missed_targets"])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Missed targets*\n{missed}"[:3000]}})
    if fields["links"]:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": f"Open {name}"}, "url": url}
                    for name, url in fields["links"].items()
                ],
            }
        )
    return {"text": title, "blocks": blocks}


def _missed_line(t: dict[str, Any]) -> str:
    what = t["metric"] + (f" {t['kind']}" if t["kind"] else "") + (" change" if t["change"] else "")
    where = ", ".join(x for x in (t["cohort"] and f"cohort {t['cohort']}", t["feature"] and f"by {t['feature']}") if x)
    measured = "n/a" if t["measured"] is None else f"{t['measured']:.4g}"
    return f"{what}{f' ({where})' if where else ''}: measured {measured}, target {t['op']} {t['threshold']:g}"


def teams_message(fields: dict[str, Any]) -> dict[str, Any]:
    """An Office 365 connector MessageCard (Teams' incoming webhooks); markdown off, so user
    text is shown as written."""
    facts = [
        {"name": "Model", "value": str(fields["model"])},
        {"name": "Version", "value": str(fields["version"] or "")},
        {"name": "Verdict", "value": fields["verdict"]},
        {"name": "Run", "value": str(fields["run_id"])},
        *({"name": "Why", "value": r} for r in fields["reasons"]),
        *({"name": "Missed", "value": _missed_line(t)} for t in fields["missed_targets"]),
    ]
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": _title(fields),
        "title": _title(fields),
        "themeColor": "2EB886" if fields["verdict"] == PASS else "D00000",
        "sections": [{"facts": facts, "markdown": False}],
        "potentialAction": [
            {"@type": "OpenUri", "name": f"Open {name}", "targets": [{"os": "default", "uri": url}]}
            for name, url in fields["links"].items()
        ],
    }


def message(fields: dict[str, Any], fmt: str) -> dict[str, Any]:
    if fmt == "slack":
        return slack_message(fields)
    if fmt == "teams":
        return teams_message(fields)
    return dict(fields)


# --- how to send it ----------------------------------------------------------------------------


def _secrets_of(url: str) -> list[str]:
    """The URL and its parts that may hold its token, longest first: each is redacted."""
    parts = urllib.parse.urlsplit(url)
    found = {url, parts.path, parts.query, parts.netloc + parts.path, urllib.parse.unquote(url)}
    # A token as a path segment (Slack's T…/B…/…, Teams' ids); credentials in the URL.
    found |= {seg for seg in parts.path.split("/") if len(seg) >= 8 and any(c.isdigit() for c in seg)}
    found |= {v for v in (parts.username, parts.password) if v}
    found |= {v for _, v in urllib.parse.parse_qsl(parts.query) if v}
    found |= {repr(f)[1:-1] for f in found}  # as an error message quotes it (control characters escaped)
    return sorted((s for s in found if s and s != "/"), key=len, reverse=True)


def redact(text: str, url: str) -> str:
    for secret in _secrets_of(url):
        text = text.replace(secret, "[webhook URL]")
    return text


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A webhook that redirects is misconfigured; following it would resend (or drop) the body elsewhere.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


def post(
    url: str, body: bytes, options: NotifyOptions, sleep: Callable[[float], None] = time.sleep
) -> tuple[int | None, int, str | None]:
    """POST ``body`` with retries: (HTTP status or None, attempts, error or None). Errors are
    redacted of the URL.

    urllib (the standard library) rather than requests/httpx: neither is a dependency of the
    step images, and one POST needs no more. Its default HTTPS context verifies the
    certificate and the host name."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=ssl.create_default_context()), _NoRedirect()
    )
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "rai-audit"}
    )
    status, error = None, None
    for attempt in range(1, options.retries + 2):
        retry = False
        try:
            with opener.open(request, timeout=options.timeout) as answer:
                answer.read()
                return answer.status, attempt, None
        except urllib.error.HTTPError as err:
            status, error = err.code, f"HTTP {err.code} {err.reason}"
            retry = err.code >= 500 or err.code == 429
        except ValueError as err:  # a URL urllib refuses: not retried, its message redacted
            return None, attempt, redact(f"the webhook URL is not valid: {err}", url)
        except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, refused or reset connections
            reason = getattr(err, "reason", err)
            # A URL http.client or urllib refuses fails the same way each time.
            refused = isinstance(reason, (ValueError, http.client.InvalidURL))
            status, error, retry = None, f"{type(err).__name__}: {reason}", not refused
        error = redact(error, url)
        if not retry or attempt > options.retries:
            return status, attempt, error
        wait = min(options.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
        log.warning("webhook attempt %d failed (%s); retrying in %.2g s", attempt, error, wait)
        sleep(wait)
    return status, options.retries + 1, error


def _webhook_url(options: NotifyOptions) -> tuple[str | None, str | None]:
    """The URL from the environment, or None and why not."""
    url = os.environ.get(options.webhook_env, "").strip()
    if not url:
        return None, f"${options.webhook_env} is not set"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("https", "http") or not parts.netloc or not url.isprintable():
        return None, f"${options.webhook_env} is not an http(s) URL"
    return url, None


# --- the step ----------------------------------------------------------------------------------


def run_notify(
    scorecard_dir: str | Path,
    baseline_dir: str | Path | None,
    output_dir: str | Path,
    *,
    options: NotifyOptions | None = None,
) -> NotifyResult:
    """Post the scorecard's verdict when ``options.on`` says so; write notification.json."""
    options = options or NotifyOptions()
    card = read_scorecard(scorecard_dir)
    baseline, no_baseline = read_baseline(baseline_dir)
    reasons = triggers(card, baseline, options.on)
    fields = build_payload(card, baseline, reasons, options)
    body = json.dumps(message(fields, options.format), ensure_ascii=False).encode()
    status, attempts, error = None, 0, None
    if not reasons:
        sent, why = False, f"nothing to notify (on: {options.on}; verdict {fields['verdict']})"
    else:
        url, missing = _webhook_url(options)
        if url is None:
            sent, why, error = False, f"not sent: {missing}", missing
        else:
            status, attempts, error = post(url, body, options)
            sent = error is None
            why = "; ".join(reasons) if sent else f"not sent after {attempts} attempts: {error}"
    log.info("notify: %s", why)
    record = {
        "sent": sent,
        "reason": why,
        "triggers": reasons,
        "status": status,
        "attempts": attempts,
        "error": error,
        "on": options.on,
        "format": options.format,
        "webhook_env": options.webhook_env,
        "no_baseline_reason": no_baseline,
        "payload_sha256": hashlib.sha256(body).hexdigest(),
        "payload": fields,
    }
    with A.artifact_writer(Path(output_dir)) as out:
        A.write_json(out / RESULT_FILE, record)
        A.write_json(
            out / A.META_FILE,
            A.new_meta(KIND, str(card.get("run_id")), sent=sent, options=asdict(options), verdict=fields["verdict"]),
        )
    result = NotifyResult(sent, why, status, attempts, error)
    if reasons and not sent and options.fail_on_error:
        raise NotifyFailed(why)
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rai-audit notify", description=__doc__.splitlines()[0])
    p.add_argument("--scorecard", required=True, help="the scorecard folder (or its scorecard.json)")
    p.add_argument(
        "--baseline", default=None, help="the baseline audit's scorecard (folder, scorecard.json or find_baseline's)"
    )
    p.add_argument("--output", required=True, help="notification folder to create")
    add_options(p, "notify")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    values = {o.name: getattr(args, o.name) for o in step_options("notify", "cli")}

    def action() -> None:
        result = run_notify(
            args.scorecard, args.baseline, args.output, options=options_from_parameters(NotifyOptions, values)
        )
        print(f"notification written to {Path(args.output) / RESULT_FILE}: {'sent' if result.sent else result.reason}")

    try:
        return run_cli(action)
    except NotifyFailed as err:
        print(f"rai-audit: notify: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
