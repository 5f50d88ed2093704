"""The archive's pages (`rai-audit archive serve`) in Chromium, against a real SeaweedFS.

The archive holds real runs on small data (constructor + gather + scorecard, a few hundred
rows each): model "credit" (Adult, three versions), model "insurance" (one), and
model "forged": an audit whose insights.json was then rewritten with the write credentials.
The server runs with the read-only credentials. Checked: the models page's latest verdicts,
the forged audit shown as failing verification (never PASS), the history chart's points
equal to the archived scorecards' figures, the diff page's added, removed and changed
targets, the evidence page; the index (two publishes at once, reindex, a missing index);
the token, the Host check, no write to the bucket, and no key outside audits/ served.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode

import pandas as pd
import pytest

from rai_audit import archive
from rai_audit.cli import main
from rai_audit.demo import train_demo_model
from rai_audit.live.archive_app import ReadOnlyClient, start_archive
from rai_audit.steps.gather import run_gather
from rai_audit.steps.scorecard import ScorecardOptions, run_scorecard
from rai_audit.storage import (
    ENV_ACCESS,
    ENV_ENDPOINT,
    ENV_SECRET,
    READ_ONLY_CREDENTIALS_FILE,
    _read_env,
    settings_from_env,
    storage_down,
    storage_up,
)
from support import encoded_model, shared_dataset, write_case

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BUCKET = "risk-archive"
SECRET_KEY_OUTSIDE = "private/outside.txt"
SECRET_TEXT = b"outside the archive prefix: never served"


def _run(case, rows, folder, targets):
    """One real audit run on ``rows`` of the case's test data: bundle and scorecard."""
    test = pd.read_parquet(case.test).iloc[rows].reset_index(drop=True)
    test.to_parquet(folder / "test.parquet", index=False)
    case.__class__(**{**case.__dict__, "test": folder / "test.parquet"}).construct(folder / "constructor")
    run_gather(folder / "constructor", [], folder / "dashboard")
    run_scorecard(folder / "dashboard", {"targets": targets}, folder / "card", options=ScorecardOptions(bootstrap=20))
    return folder / "dashboard", folder / "card"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("archive-store")
    settings = storage_up(folder)
    yield folder, settings
    storage_down(folder)


@pytest.fixture(scope="module")
def archived(store, tmp_path_factory):
    """Audits of two models and several versions, published in time order, one forged."""
    _, writer = store
    root = tmp_path_factory.mktemp("archive-runs")
    adult_train = shared_dataset("adult_train.parquet").iloc[:600].reset_index(drop=True)
    adult_test = shared_dataset("adult_test.parquet").iloc[:600].reset_index(drop=True)
    credit = write_case(
        root / "credit",
        train_demo_model(adult_train),
        adult_train,
        adult_test,
        target="income",
        task_type="binary_classification",
        sensitive=["sex"],
        positive_label=">50K",
    )
    data = shared_dataset("insurance.parquet")
    train, test = data.iloc[:400].reset_index(drop=True), data.iloc[400:600].reset_index(drop=True)
    model = encoded_model(
        ["sex", "smoker", "region"],
        ["age", "bmi", "children"],
        __import__("sklearn.linear_model").linear_model.LinearRegression(),
    )
    model.fit(train.drop(columns="charges"), train["charges"])
    insurance = write_case(
        root / "insurance", model, train, test, target="charges", task_type="regression", sensitive=["sex"]
    )
    plan = [
        ("credit", "1", credit, slice(0, 200), ["accuracy_score >= 0.5", "recall_score >= 0.99"]),
        ("credit", "2", credit, slice(200, 400), ["accuracy_score >= 0.5"]),
        ("credit", "3", credit, slice(400, 600), ["accuracy_score >= 0.6", "precision_score >= 0.1"]),
        ("insurance", "1", insurance, slice(0, 200), ["r2_score >= 0.99"]),
    ]
    published = {}
    for i, (name, version, case, rows, targets) in enumerate(plan):
        folder = root / f"{name}-{version}"
        folder.mkdir()
        bundle, card = _run(case, rows, folder, targets)
        prefix = archive.publish_audit(
            writer,
            BUCKET,
            bundle_dir=bundle,
            scorecard_dir=card,
            model_name=name,
            model_version=version,
            pipeline_run=f"pipeline-run-{i}",
        )
        published[(name, version)] = {"audit": prefix, "card": json.loads((card / "scorecard.json").read_text())}
        if (name, version) == ("credit", "2"):  # the same passing run, later tampered with
            published[("forged", "1")] = {
                "audit": archive.publish_audit(
                    writer, BUCKET, bundle_dir=bundle, scorecard_dir=card, model_name="forged", model_version="1"
                )
            }
    client = writer.client()
    key = f"{published[('forged', '1')]['audit']}/dashboard/insights.json"
    data = bytearray(client.get_object(BUCKET, key).read())
    data[50] ^= 1
    client.put_object(BUCKET, key, io.BytesIO(bytes(data)), len(data))
    client.put_object(BUCKET, SECRET_KEY_OUTSIDE, io.BytesIO(SECRET_TEXT), len(SECRET_TEXT))
    return published


@pytest.fixture(scope="module")
def reader(store):
    folder, _ = store
    return settings_from_env(_read_env(folder / READ_ONLY_CREDENTIALS_FILE))


@pytest.fixture(scope="module")
def served(archived, reader):
    running = start_archive(reader, BUCKET, wait_seconds=120)  # pages wait for every check: deterministic
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    view = context.new_page()
    requested = []
    context.on("request", lambda r: requested.append(r.url))  # every tab: the dashboard's too
    view.requested = requested
    yield view
    context.close()


def _url(running, path, **params):
    return f"http://127.0.0.1:{running.port}{path}?{urlencode({**params, 'token': running.token})}"


def _get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _only_this_server(page, running):
    here = f"http://127.0.0.1:{running.port}/"
    assert page.requested and all(u.startswith((here, "data:", "blob:", "about:")) for u in page.requested), (
        page.requested
    )


def test_models_page_shows_each_models_latest_verified_verdict(served, archived, page, tmp_path):
    page.goto(served.url)
    rows = {r.get_attribute("data-model"): r for r in page.locator("#models tbody tr").all()}
    assert set(rows) == {"credit", "insurance", "forged"}
    credit, insurance, forged = rows["credit"], rows["insurance"], rows["forged"]
    latest_credit = archived[("credit", "3")]["card"]
    expected = "PASS" if latest_credit["passed"] else "FAIL"
    assert credit.locator(".verdict .status").inner_text() == expected
    assert quote(archived[("credit", "3")]["audit"], safe="") in credit.inner_html()  # its evidence link
    missed = sum(t["verdict"] == "FAIL" for t in latest_credit["targets"])
    assert credit.locator(".missed").inner_text().startswith(f"{missed} of 2")
    assert latest_credit["run_id"] in credit.inner_text() and credit.locator(".verified").inner_text() == "yes"
    assert insurance.locator(".verdict .status").inner_text() == "FAIL"  # r2 >= 0.99: missed
    assert insurance.locator(".missed").inner_text().startswith("1 of 1")
    assert forged.locator(".verdict .status").inner_text() == "FAILED VERIFICATION"
    assert "does not match its manifest" in forged.inner_text() and "PASS" not in forged.inner_text().split()
    assert forged.locator(".verified").inner_text() == "NO"
    page.screenshot(path=str(tmp_path / "models.png"), full_page=True)
    _only_this_server(page, served)
    # the same as JSON
    status, body = _get(_url(served, "/api/archive/models"))
    doc = json.loads(body)
    assert status == 200 and doc["source"] == "index" and doc["count"] == 5
    shown = {m["model"]: m["latest"]["status"] for m in doc["models"]}
    assert shown == {"credit": expected, "insurance": "FAIL", "forged": "FAILED VERIFICATION"}


def test_history_chart_points_are_the_archived_figures(served, archived, page, tmp_path):
    page.goto(_url(served, "/archive/model/credit"))
    assert page.locator("#audits tbody tr").count() == 3
    order = [r.get_attribute("data-audit") for r in page.locator("#audits tbody tr").all()]
    assert order == [archived[("credit", v)]["audit"] for v in ("1", "2", "3")]  # time order
    figures = {}
    for version in ("1", "2", "3"):
        for t in archived[("credit", version)]["card"]["targets"]:
            figures.setdefault(t["metric"], []).append((archived[("credit", version)]["audit"], t))
    for metric, points in figures.items():
        chart = page.locator(f"figure.chart[data-target='{metric}']")
        drawn = chart.locator("circle.point").all()
        assert [c.get_attribute("data-audit") for c in drawn] == [a for a, _ in points]
        assert [float(c.get_attribute("data-measured")) for c in drawn] == [t["measured"] for _, t in points]
        assert [float(c.get_attribute("data-threshold")) for c in drawn] == [t["value"] for _, t in points]
        lows = [float(i.get_attribute("data-low")) for i in chart.locator("line.interval").all()]
        assert lows == [t["ci_lower"] for _, t in points]
        assert chart.locator("polyline.threshold").count() == 1
    # accuracy: threshold 0.5, 0.5, then 0.6; verdicts marked where they change
    accuracy = [t["verdict"] for _, t in figures["accuracy_score"]]
    rings = page.locator("figure.chart[data-target='accuracy_score'] circle.verdict-change").count()
    assert rings == sum(a != b for a, b in zip(accuracy, accuracy[1:]))
    verdicts = [archived[("credit", v)]["card"]["passed"] for v in ("1", "2", "3")]
    marks = page.locator("#audits tbody tr .mark").count()
    assert marks == sum(a != b for a, b in zip(verdicts, verdicts[1:])) and marks >= 1  # v1 FAIL -> v2 PASS
    page.screenshot(path=str(tmp_path / "history.png"), full_page=True)
    # filters: one version, then a date range that holds nothing
    page.select_option("select[name=version]", "2")
    with page.expect_navigation():  # the form's GET: read the rows of the page it loads, not the old one
        page.click("button[type=submit]")
    page.wait_for_load_state()
    assert [r.get_attribute("data-audit") for r in page.locator("#audits tbody tr").all()] == [
        archived[("credit", "2")]["audit"]
    ]
    page.goto(_url(served, "/archive/model/credit", since="2000-01-01", until="2000-12-31"))
    assert page.locator("#audits tbody tr").count() == 0
    _only_this_server(page, served)
    status, body = _get(_url(served, "/api/archive/models/credit", version="3"))
    [chart] = [c for c in json.loads(body)["charts"] if c["target"] == "precision_score"]
    assert status == 200 and [p["measured"] for p in chart["points"]] == [
        archived[("credit", "3")]["card"]["targets"][1]["measured"]
    ]


def test_diff_page_lists_added_removed_and_changed_targets(served, archived, page, tmp_path):
    first, last = archived[("credit", "1")]["audit"], archived[("credit", "3")]["audit"]
    page.goto(_url(served, "/archive/diff"))
    page.select_option("#pick-model select[name=model]", "credit")  # the lists: credit's audits only
    page.click("#pick-model button[type=submit]")
    assert page.locator("select[name=before] option").count() == 3
    page.select_option("select[name=before]", first)
    page.select_option("select[name=after]", last)
    page.click("#pick-audits button[type=submit]")
    rows = {
        r.locator("td").nth(1).inner_text(): r.get_attribute("data-status") for r in page.locator("tr.target").all()
    }
    assert rows == {"accuracy_score": "CHANGED", "recall_score": "REMOVED", "precision_score": "ADDED"}
    assert "0.5 → >= 0.6" in page.locator("tr.target.CHANGED").inner_text()
    assert "FAILED in the earlier audit are gone" in page.inner_text("main")  # recall failed, then dropped
    assert page.locator("#metrics tr").count() > 2 and page.locator("#fairness tr").count() > 1
    page.screenshot(path=str(tmp_path / "diff.png"), full_page=True)
    _only_this_server(page, served)
    status, body = _get(_url(served, "/api/archive/diff", before=first, after=last))
    assert status == 200 and json.loads(body) == json.loads(
        json.dumps(archive.diff_audits(served.view.settings, BUCKET, first, last))
    )


def test_evidence_page_opens_the_dashboard_pdf_and_link(served, archived, page, tmp_path):
    audit = archived[("credit", "3")]["audit"]
    page.goto(_url(served, "/archive/audit", audit=audit))
    text = page.inner_text("#evidence")
    assert archived[("credit", "3")]["card"]["run_id"] in text and "pipeline-run-2" in text
    assert "rai-audit " in text and "none (no object lock)" in text
    with page.expect_download() as download:
        page.click("#download-pdf")
    assert download.value.path().read_bytes()[:5] == b"%PDF-"
    link = page.input_value("#pdf-link")
    assert link.startswith(served.view.settings.endpoint) and "X-Amz-Signature" in link
    with urllib.request.urlopen(link) as response:  # the presigned link works for whoever holds it
        assert response.read()[:5] == b"%PDF-"
    page.screenshot(path=str(tmp_path / "evidence.png"), full_page=True)
    with page.context.expect_page() as opened:
        page.click("#open-dashboard")
    dashboard = opened.value
    dashboard.wait_for_function("document.body.dataset.ready === '1'")
    assert "accuracy" in dashboard.inner_text("body").lower()
    _only_this_server(page, served)  # the archived dashboard page too
    forged = archived[("forged", "1")]["audit"]
    page.goto(_url(served, "/archive/audit", audit=forged))
    assert "FAILED VERIFICATION" in page.inner_text("#evidence") and page.locator("#download-pdf").count() == 0
    status, _ = _get(_url(served, "/archive/file", audit=forged, file="scorecard/scorecard.pdf"))
    assert status == 409


def test_read_only_the_bucket_is_unchanged_and_no_key_outside_the_archive(store, served, archived, reader):
    _, writer = store
    client = writer.client()

    def snapshot():
        return {(o.object_name, o.etag) for o in client.list_objects(BUCKET, recursive=True)}

    before = snapshot()
    for path, params in [
        ("/archive", {}),
        ("/archive/model/credit", {}),
        ("/archive/audit", {"audit": archived[("insurance", "1")]["audit"]}),
        ("/archive/diff", {"before": archived[("credit", "1")]["audit"], "after": archived[("credit", "2")]["audit"]}),
        ("/archive/file", {"audit": archived[("credit", "1")]["audit"], "file": "dashboard/dashboard.html"}),
        ("/api/archive/index", {}),
    ]:
        assert _get(_url(served, path, **params))[0] == 200, path
    assert snapshot() == before  # the server wrote nothing
    with pytest.raises(PermissionError):
        served.view.settings.client().put_object  # noqa: B018 the server's client has no write method
    assert isinstance(served.view.settings.client(), ReadOnlyClient)
    assert served.view.settings.access_key == reader.access_key  # read-only credentials sufficed

    audit = archived[("credit", "1")]["audit"]
    attempts = [
        ("/archive/file", {"audit": SECRET_KEY_OUTSIDE.rsplit("/", 1)[0], "file": "outside.txt"}),
        ("/archive/file", {"audit": audit, "file": "../../../../" + SECRET_KEY_OUTSIDE}),
        ("/archive/file", {"audit": "audits/credit/../../private", "file": "outside.txt"}),
        ("/archive/file", {"audit": "audits/../private/x/y", "file": "outside.txt"}),
        ("/archive/file", {"audit": audit, "file": "dashboard/../../../../" + SECRET_KEY_OUTSIDE}),
        ("/archive/file", {"audit": "index", "file": "audits.json"}),
        ("/archive/file", {"audit": audit + "/..", "file": "manifest.json"}),
        ("/api/archive/audit", {"audit": "private/outside.txt"}),
        ("/api/archive/diff", {"before": "private/outside.txt", "after": audit}),
    ]
    for path, params in attempts:
        status, body = _get(_url(served, path, **params))
        assert status in (400, 404) and SECRET_TEXT not in body, (path, params, status)
    for raw in (
        "/archive/model/..%2F..%2Fprivate",
        "/archive/model/%2e%2e",
        "/api/archive/models/..%2fprivate%2foutside.txt",
        "/archive/file/%2e%2e/private/outside.txt",
        "/archive/..%2F" + quote(SECRET_KEY_OUTSIDE, safe=""),
    ):
        status, body = _get(f"http://127.0.0.1:{served.port}{raw}?token={served.token}")
        assert status == 404 and SECRET_TEXT not in body, raw
    assert snapshot() == before


def test_an_audit_not_yet_checked_is_shown_as_checking_never_with_its_claim(archived, reader):
    from rai_audit.live.archive_app import ArchiveView

    view = ArchiveView(reader, BUCKET, wait_seconds=0)  # the page does not wait for any check
    try:
        first = {m["model"]: m["latest"] for m in view.models()["models"]}
        assert first["forged"]["status"] in ("CHECKING", "FAILED VERIFICATION")
        for shown in first.values():
            if shown["status"] == "CHECKING":
                assert shown["verified"] is None and shown["passed"] is None and shown["targets_missed"] is None
        for audit in [s["audit"] for s in first.values()]:
            view.check(audit)  # once done, the next load shows them
        later = {m["model"]: m["latest"]["status"] for m in view.models()["models"]}
        assert later["forged"] == "FAILED VERIFICATION" and "CHECKING" not in later.values()
    finally:
        view.close()


def test_token_and_host_are_required(served):
    base = f"http://127.0.0.1:{served.port}"
    for path in ("/archive", "/api/archive/models", "/api/archive/index", "/archive/model/credit"):
        assert _get(base + path)[0] == 401
        assert _get(base + path + "?token=wrong")[0] == 403
        assert _get(base + path, {"Authorization": f"Bearer {served.token}"})[0] == 200
    assert _get(_url(served, "/archive"), {"Host": "attacker.example"})[0] == 400  # DNS rebinding


def test_index_two_publishes_at_once_reindex_and_list_json(store, archived, served, capsys, monkeypatch, tmp_path):
    folder, writer = store
    for name, value in (
        (ENV_ENDPOINT, writer.endpoint),
        (ENV_ACCESS, writer.access_key),
        (ENV_SECRET, writer.secret_key),
    ):
        monkeypatch.setenv(name, value)
    client = writer.client()
    bundle = tmp_path / "bundle"
    # one archived audit fetched back as the folder to publish twice at once, as two models
    archive.fetch_audit(writer, BUCKET, archived[("credit", "2")]["audit"], bundle)
    results, errors = {}, []

    def publish(name):
        try:
            results[name] = archive.publish_audit(
                writer,
                BUCKET,
                bundle_dir=bundle / "dashboard",
                scorecard_dir=bundle / "scorecard",
                model_name=name,
                model_version="1",
            )
        except Exception as err:  # noqa: BLE001 reported below
            errors.append(err)

    threads = [threading.Thread(target=publish, args=(n,)) for n in ("twin-a", "twin-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    index = archive.read_index(writer, BUCKET)
    assert set(results.values()) <= set(index["audits"]) and index["count"] == 7
    # a missing index: the server lists by scanning and says so; reindex rebuilds it
    client.remove_object(BUCKET, archive.INDEX_KEY)
    doc = json.loads(_get(_url(served, "/api/archive/models"))[1])
    assert doc["source"] == "scan" and doc["count"] == 7
    assert main(["archive", "reindex", "--bucket", BUCKET]) == 0
    assert "7 audits (was missing; 7 added, 0 dropped, 0 changed)" in capsys.readouterr().out
    rebuilt = archive.read_index(writer, BUCKET)
    assert {k: {**v, "retention": None} for k, v in rebuilt["audits"].items()} == {
        k: {**v, "retention": None} for k, v in index["audits"].items()
    }
    assert json.loads(_get(_url(served, "/api/archive/models"))[1])["source"] == "index"
    # `audits list --json`, from the index, verified
    assert main(["audits", "list", "--bucket", BUCKET, "--model", "credit", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["audits"]
    assert [a["audit"] for a in listed] == [archived[("credit", v)]["audit"] for v in ("1", "2", "3")]
    assert all(a["verified"] for a in listed) and listed[0]["pipeline_run"] == "pipeline-run-0"
    assert main(["audits", "list", "--bucket", BUCKET, "--model", "forged", "--json"]) == 2
    [forged] = json.loads(capsys.readouterr().out)["audits"]
    assert forged["verified"] is False and "does not match" in forged["problem"]
    # a stale index (an update lost: one audit left out): the server's one listing at start says so
    from rai_audit.live.archive_app import ArchiveView

    left_out = archived[("credit", "1")]["audit"]
    doc = archive.read_index(writer, BUCKET)
    del doc["audits"][left_out]
    data = json.dumps(doc).encode()
    client.put_object(BUCKET, archive.INDEX_KEY, io.BytesIO(data), len(data))
    view = ArchiveView(settings_from_env(_read_env(folder / READ_ONLY_CREDENTIALS_FILE)), BUCKET, wait_seconds=60)
    try:
        assert view.compare_index() == {"not_indexed": [left_out], "without_manifest": []}
        assert view.models()["index_stale"]["not_indexed"] == [left_out]
    finally:
        view.close()
    assert main(["archive", "reindex", "--bucket", BUCKET]) == 0
    assert "7 audits (1 added, 0 dropped, 0 changed)" in capsys.readouterr().out


def test_archive_serve_command_uses_the_read_only_credentials(store, archived):
    """`rai-audit archive serve --storage-dir`: the store's read-only keys, no S3 variable needed."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    folder, writer = store
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAI_AUDIT_S3_", "AWS_"))}
    command = [str(Path(sys.executable).with_name("rai-audit")), "archive", "serve", "--bucket", BUCKET]
    process = subprocess.Popen(
        [*command, "--storage-dir", str(folder), "--no-browser"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("open: "):
                break
        assert f"read-only credentials of {folder / READ_ONLY_CREDENTIALS_FILE}" in lines[0]
        url = lines[-1].removeprefix("open: ").strip()
        assert url.startswith("http://127.0.0.1:") and "/archive?token=" in url
        base, token = url.split("/archive?token=")
        doc = json.loads(_get(f"{base}/api/archive/models?token={token}")[1])
        assert {m["model"] for m in doc["models"]} >= {"credit", "insurance", "forged"}
        assert writer.secret_key not in "".join(lines) and token not in lines[0]
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and out.strip().endswith("stopped")
