"""notify: what is posted, when, how it is retried, and that the webhook URL is written nowhere.

The webhook is a real HTTP server this module starts on 127.0.0.1 (http.server in a thread);
its URL carries a secret-looking token in its path and query, which is then looked for in
every file the step writes, every log record, stdout/stderr and every exception's text.
The scorecards are real ones, written once per module from the Adult bundle: a passing
baseline, the same model judged against a stricter config (PASS -> FAIL, a target newly
missed, a change target missed) and the passing config again (nothing changed).
"""

# No `from __future__ import annotations`: KFP reads the test pipeline's annotations at decoration time.

import contextlib
import http.server
import io
import json
import logging
import socket
import threading
import traceback
from pathlib import Path

import pytest

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.specs import NotifyOptions, option_specs
from rai_audit.steps import notify
from rai_audit.steps.notify import NotifyFailed, main, run_notify
from rai_audit.steps.scorecard import ScorecardOptions, run_scorecard

TOKEN = "XoXb9f3Kq7TokenSECRETz81"
SIG = "sigSECRET5a4b3c2d1"
ENV = "RAI_AUDIT_WEBHOOK_URL"
PASSING = {"model": {"name": "adult-income", "version": "7"}, "targets": ["accuracy_score >= 0.5"]}
FAILING = {
    "model": {"name": "adult-income", "version": "8"},
    "targets": ["accuracy_score >= 0.5", "accuracy_score >= 0.99"],
    "changes": ["accuracy_score change >= 0.01"],  # the same model: a change of 0 misses it
}


# --- the webhook -------------------------------------------------------------------------------


class Webhook:
    """A real HTTP server: records each POST, answers with the next of ``statuses`` (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args) -> None:  # the test server's own access log would print the token
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T01/B02/{TOKEN}?sig={SIG}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self, statuses: list[int] = ()) -> None:
        self.requests.clear()
        self.statuses[:] = list(statuses)


@pytest.fixture(scope="module")
def webhook():
    hook = Webhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture
def hook(webhook, monkeypatch):
    webhook.reset()
    monkeypatch.setenv(ENV, webhook.url)
    return webhook


# --- the scorecards ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cards(adult_bundle, tmp_path_factory) -> dict[str, Path]:
    folder, _ = adult_bundle
    root = tmp_path_factory.mktemp("notify_cards")
    fast = ScorecardOptions(bootstrap=0)
    run_scorecard(folder / "dashboard", PASSING, root / "baseline", options=fast)
    run_scorecard(folder / "dashboard", FAILING, root / "failing", baseline=root / "baseline", options=fast)
    run_scorecard(folder / "dashboard", PASSING, root / "unchanged", baseline=root / "baseline", options=fast)
    still = {**FAILING, "changes": []}  # failing as before, the same target missed
    run_scorecard(folder / "dashboard", still, root / "still_failing", baseline=root / "failing", options=fast)
    return {name: root / name for name in ("baseline", "failing", "unchanged", "still_failing")}


def _secret_free(text: str, url: str) -> None:
    for secret in (url, TOKEN, SIG, url.split("?")[0]):
        assert secret not in text


def _files_secret_free(folder: Path, url: str) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for path in files:
        _secret_free(path.read_bytes().decode("utf-8", "replace"), url)


def fast(**overrides) -> NotifyOptions:
    return NotifyOptions(**{"backoff": 0.01, "timeout": 5.0, **overrides})


# --- tests -------------------------------------------------------------------------------------


def test_a_pass_to_fail_change_is_posted_with_its_fields(hook, cards, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    card = json.loads((cards["failing"] / "scorecard.json").read_text())
    assert card["passed"] is False and card["baseline"]["passed"] is True
    result = run_notify(
        cards["failing"],
        cards["baseline"],
        tmp_path / "n",
        options=fast(format="json", pdf_url="https://s3.example/pdf?X-Amz-Signature=abc", dashboard_url="https://d"),
    )
    assert result.sent and result.status == 200 and result.attempts == 1
    [request] = hook.requests
    assert request["path"] == f"/services/T01/B02/{TOKEN}?sig={SIG}"
    assert request["headers"]["Content-Type"] == "application/json"
    body = request["body"]
    assert (body["model"], body["version"], body["verdict"]) == ("adult-income", "8", "FAIL")
    assert body["run_id"] == card["run_id"]
    assert body["baseline"] == {"run_id": card["baseline"]["run_id"], "verdict": "PASS"}
    assert body["links"] == {"pdf": "https://s3.example/pdf?X-Amz-Signature=abc", "dashboard": "https://d"}
    missed = {(t["metric"], t["cohort"], t["op"], t["threshold"], t["change"]): t for t in body["missed_targets"]}
    assert set(missed) == {("accuracy_score", None, ">=", 0.99, False), ("accuracy_score", None, ">=", 0.01, True)}
    accuracy = next(t["measured"] for t in card["targets"] if t["value"] == 0.99)
    assert missed[("accuracy_score", None, ">=", 0.99, False)]["measured"] == pytest.approx(accuracy)
    assert missed[("accuracy_score", None, ">=", 0.01, True)]["measured"] == pytest.approx(0.0)
    reasons = body["reasons"]
    assert reasons[0] == "verdict PASS -> FAIL"
    assert any(r.startswith("target newly missed: accuracy_score") and "0.99" in r for r in reasons)
    assert any(r.startswith("change target missed: accuracy_score change") for r in reasons)
    # The target met in both audits is no news.
    assert not any(">= 0.5" in r for r in reasons)
    record = json.loads((tmp_path / "n" / "notification.json").read_text())
    assert record["sent"] is True and record["status"] == 200 and record["attempts"] == 1
    assert record["payload"] == body
    A.read_artifact_meta(tmp_path / "n", expected_kind="notification")  # manifest written and checked
    _files_secret_free(tmp_path / "n", hook.url)
    captured = capsys.readouterr()
    _secret_free(caplog.text + captured.out + captured.err, hook.url)


def test_slack_and_teams_payloads(hook, cards, tmp_path):
    run_notify(cards["failing"], cards["baseline"], tmp_path / "slack", options=fast(pdf_url="https://pdf"))
    run_notify(cards["failing"], cards["baseline"], tmp_path / "teams", options=fast(format="teams"))
    slack, teams = (r["body"] for r in hook.requests)
    assert slack["text"] == "rai-audit: adult-income version 8: FAIL"
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "section", "actions"]
    assert "verdict PASS -&gt; FAIL" in slack["blocks"][1]["text"]["text"]  # Slack's markup characters escaped
    assert "*Missed targets*" in slack["blocks"][2]["text"]["text"]
    assert slack["blocks"][3]["elements"][0]["url"] == "https://pdf"
    assert teams["@type"] == "MessageCard" and teams["themeColor"] == "D00000"
    facts = {(f["name"], f["value"]) for f in teams["sections"][0]["facts"]}
    assert {("Model", "adult-income"), ("Version", "8"), ("Verdict", "FAIL"), ("Why", "verdict PASS -> FAIL")} <= facts
    assert teams["sections"][0]["markdown"] is False


def test_nothing_is_sent_when_nothing_changed(hook, cards, tmp_path):
    result = run_notify(cards["unchanged"], cards["baseline"], tmp_path / "n", options=fast())
    assert not result.sent and result.attempts == 0 and "nothing to notify" in result.reason
    # Failing as before, with the same target missed: no change either.
    same = run_notify(cards["still_failing"], cards["failing"], tmp_path / "same", options=fast())
    assert not same.sent, same.reason
    # A missed change target is news each time: the figure moved more than allowed since the baseline.
    again = run_notify(cards["failing"], cards["failing"], tmp_path / "again", options=fast(format="json"))
    assert again.sent
    assert [r.split(":")[0] for r in hook.requests[-1]["body"]["reasons"]] == ["change target missed"]
    # A recovery is a change.
    back = run_notify(cards["baseline"], cards["failing"], tmp_path / "back", options=fast(format="json"))
    assert back.sent
    assert hook.requests[-1]["body"]["reasons"] == ["verdict FAIL -> PASS"]
    assert len(hook.requests) == 2
    record = json.loads((tmp_path / "n" / "notification.json").read_text())
    assert record["sent"] is False and record["triggers"] == [] and record["status"] is None


def test_every_failure_posts_every_failure_and_no_pass(hook, cards, tmp_path):
    assert run_notify(cards["failing"], cards["failing"], tmp_path / "a", options=fast(on="every_failure")).sent
    assert not run_notify(cards["unchanged"], None, tmp_path / "b", options=fast(on="every_failure")).sent
    # Without a baseline, a failing audit is posted on change too (a model's first audit).
    assert run_notify(cards["failing"], None, tmp_path / "c", options=fast()).sent
    assert not run_notify(cards["baseline"], None, tmp_path / "d", options=fast()).sent
    assert len(hook.requests) == 2


def test_retries_after_500_then_succeeds(hook, cards, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    hook.reset([500, 503])
    result = run_notify(cards["failing"], cards["baseline"], tmp_path / "n", options=fast(retries=3))
    assert result.sent and result.status == 200 and result.attempts == 3
    assert len(hook.requests) == 3 and hook.requests[0]["body"] == hook.requests[2]["body"]
    assert "HTTP 500" in caplog.text
    _secret_free(caplog.text, hook.url)
    record = json.loads((tmp_path / "n" / "notification.json").read_text())
    assert (record["sent"], record["attempts"], record["error"]) == (True, 3, None)


def test_gives_up_after_n_attempts_and_the_step_still_succeeds(hook, cards, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    hook.reset([500] * 10)
    result = run_notify(cards["failing"], cards["baseline"], tmp_path / "n", options=fast(retries=2))
    assert not result.sent and result.attempts == 3 and result.status == 500 and len(hook.requests) == 3
    record = json.loads((tmp_path / "n" / "notification.json").read_text())
    assert record["sent"] is False and record["attempts"] == 3 and "HTTP 500" in record["error"]
    # A 4xx is not retried: the request itself is wrong.
    hook.reset([404])
    result = run_notify(cards["failing"], cards["baseline"], tmp_path / "m", options=fast(retries=2))
    assert (result.sent, result.attempts, result.status) == (False, 1, 404)
    _files_secret_free(tmp_path, hook.url)
    captured = capsys.readouterr()
    _secret_free(caplog.text + captured.out + captured.err, hook.url)


def test_fail_on_error_fails_the_step_after_writing_its_record(hook, cards, tmp_path, caplog):
    hook.reset([500] * 10)
    with pytest.raises(NotifyFailed) as err:
        run_notify(cards["failing"], cards["baseline"], tmp_path / "n", options=fast(retries=1, fail_on_error=True))
    _secret_free("".join(traceback.format_exception(err.value)) + str(err.value) + repr(err.value), hook.url)
    assert "2 attempts" in str(err.value) and len(hook.requests) == 2
    assert json.loads((tmp_path / "n" / "notification.json").read_text())["sent"] is False
    _files_secret_free(tmp_path, hook.url)


def test_connection_errors_are_retried_and_redacted(cards, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/{TOKEN}?sig={SIG}"
    monkeypatch.setenv("MY_HOOK", url)
    options = fast(webhook_env="MY_HOOK", retries=2, fail_on_error=True)
    with pytest.raises(NotifyFailed) as err:
        run_notify(cards["failing"], cards["baseline"], tmp_path / "n", options=options)
    record = json.loads((tmp_path / "n" / "notification.json").read_text())
    assert record["attempts"] == 3 and record["status"] is None and "refused" in record["error"].lower()
    _secret_free("".join(traceback.format_exception(err.value)) + caplog.text, url)
    _files_secret_free(tmp_path, url)


def test_backoff_doubles():
    waits: list[float] = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    status, attempts, error = notify.post(
        f"http://127.0.0.1:{port}/x", b"{}", NotifyOptions(retries=3, backoff=0.5, timeout=1.0), sleep=waits.append
    )
    assert (status, attempts) == (None, 4) and error and waits == [0.5, 1.0, 2.0]


def test_a_url_http_client_refuses_is_not_retried_and_its_error_is_redacted():
    # http.client's InvalidURL quotes the path (escaped): the error names neither the path nor the token.
    bad = f"http://127.0.0.1:1/hooks/{TOKEN}\x01x"
    status, attempts, error = notify.post(bad, b"{}", fast(retries=3))
    assert (status, attempts) == (None, 1) and "control characters" in error
    _secret_free(error, bad)
    assert TOKEN not in error


def test_redaction_covers_the_url_and_its_parts():
    url = f"https://hooks.example.com/services/T01/B02/{TOKEN}?sig={SIG}"
    text = f"failed {url} then /services/T01/B02/{TOKEN} and {TOKEN} and sig={SIG}"
    assert "[webhook URL]" in notify.redact(text, url)
    _secret_free(notify.redact(text, url), url)


def test_without_a_webhook_url_nothing_is_sent(cards, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    result = run_notify(cards["failing"], cards["baseline"], tmp_path / "n", options=fast())
    assert not result.sent and f"${ENV} is not set" in result.reason
    with pytest.raises(NotifyFailed, match="not set"):
        run_notify(cards["failing"], cards["baseline"], tmp_path / "m", options=fast(fail_on_error=True))
    monkeypatch.setenv(ENV, f"file:///etc/{TOKEN}")
    result = run_notify(cards["failing"], cards["baseline"], tmp_path / "o", options=fast())
    assert not result.sent and "not an http(s) URL" in result.reason
    # A URL with a control character is refused before any request.
    monkeypatch.setenv(ENV, f"http://127.0.0.1:1/hooks/{TOKEN}\x01x")
    result = run_notify(cards["failing"], cards["baseline"], tmp_path / "p", options=fast())
    assert not result.sent and result.attempts == 0 and "not an http(s) URL" in result.reason
    _files_secret_free(tmp_path, f"file:///etc/{TOKEN}")


def test_cli(hook, cards, tmp_path):
    def cli(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
        return code, out.getvalue(), err.getvalue()

    base = ["--scorecard", str(cards["failing"]), "--baseline", str(cards["baseline"]), "--backoff", "0.01"]
    code, out, err = cli(*base, "--output", str(tmp_path / "a"), "--format", "teams")
    assert code == 0 and "notification written" in out and "sent" in out
    assert hook.requests[-1]["body"]["@type"] == "MessageCard"
    hook.reset([500] * 10)
    code, out2, err2 = cli(*base, "--output", str(tmp_path / "b"), "--retries", "1", "--fail-on-error", "true")
    assert code == 1 and "not sent after 2 attempts" in err2
    code, _, err3 = cli(*base, "--output", str(tmp_path / "c"), "--on", "sometimes")
    assert code == 2 and "`on` must be one of" in err3
    _secret_free(out + err + out2 + err2 + err3, hook.url)
    _files_secret_free(tmp_path, hook.url)


def test_options_are_checked_and_the_kfp_component_has_the_same_defaults():
    with pytest.raises(RAIInputError, match="`format` must be one of"):
        NotifyOptions(format="xml")
    with pytest.raises(RAIInputError, match="retries"):
        NotifyOptions(retries=-1)
    with pytest.raises(RAIInputError, match="timeout"):
        NotifyOptions(timeout=0)
    from rai_audit import kfp_components

    inputs = kfp_components.notify.component_spec.inputs
    parser = notify._parser()
    cli = {a.dest: a.default for a in parser._actions}
    for o in option_specs(NotifyOptions):
        assert o.from_parameter(inputs[o.name].default) == o.default, o.name
        assert o.from_parameter(cli[o.name]) == o.default, o.name


def test_the_kfp_component_runs_under_kfp_local(hook, cards, tmp_path, capfd):
    """The component in a pipeline (kfp.local, a subprocess inheriting the environment as a
    pod gets the secret's variable): posted, its record in the output artifact, the URL in no
    task log."""
    from kfp import dsl, local

    from rai_audit import kfp_components

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))

    @dsl.pipeline
    def alert(card: str, base: str) -> bool:
        scorecard = dsl.importer(artifact_uri=card, artifact_class=dsl.Artifact, reimport=False)
        baseline = dsl.importer(artifact_uri=base, artifact_class=dsl.Artifact, reimport=False)
        task = kfp_components.notify(scorecard=scorecard.output, baseline=baseline.output, format="json")
        return task.outputs["Output"]

    run = alert(card=str(cards["failing"]), base=str(cards["baseline"]))
    assert run.output is True
    [request] = hook.requests
    assert request["body"]["verdict"] == "FAIL" and request["body"]["reasons"][0] == "verdict PASS -> FAIL"
    [record] = (tmp_path / "root").rglob("notification.json")
    assert json.loads(record.read_text())["sent"] is True
    _files_secret_free(tmp_path / "root", hook.url)
    captured = capfd.readouterr()
    _secret_free(captured.out + captured.err, hook.url)
