"""`rai-audit dashboard`: the live server, started here on 127.0.0.1 and asked over HTTP.

The subject is a small Adult bundle (4,000 train and 2,000 test rows, one-hot + logistic
regression: linear SHAP explains it exactly) with an explanation of the constructor's sample
and counterfactuals, gathered as a run gathers it. What the server answers is checked against
what is computed here independently: the model file the case wrote, loaded with joblib and
called with scikit-learn; cohort rows selected with pandas on the user's test file; metrics
with scikit-learn; the steps' stored results for rows they covered. Then the security
rules: the token, sizes, the manifest, the address, the file routes.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm
from sklearn.linear_model import LogisticRegression

from rai_audit.core import ArtifactIntegrityError, RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.dashboard import LiveDashboard, run_server, start
from rai_audit.live.bundle import Limits
from rai_audit.steps.counterfactual import CounterfactualOptions, run_counterfactual
from rai_audit.steps.explainer import ExplainerOptions, run_explainer
from rai_audit.steps.gather import run_gather
from support import ADULT_COHORTS, Case, encoded_model, shared_dataset, write_case

POSITIVE = ">50K"
SENSITIVE = ["sex", "race"]


class Subject:
    def __init__(self, case: Case, bundle: Path):
        self.case, self.bundle = case, bundle
        self.model = joblib.load(case.model)
        self.test = pd.read_parquet(case.test)
        self.features = [c for c in self.test.columns if c != "income"]
        self.local = pd.read_parquet(bundle / "insights" / "explanation" / "local_importance.parquet")
        self.cfs = pd.read_parquet(bundle / "insights" / "counterfactual" / "counterfactuals.parquet")

    def row(self, i: int, **edits: Any) -> dict[str, Any]:
        values = self.test.iloc[i][self.features].to_dict()
        values = {k: (v.item() if hasattr(v, "item") else v) for k, v in values.items()}
        return {**values, **edits}

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=self.features).astype(self.test[self.features].dtypes.to_dict())


@pytest.fixture(scope="module")
def subject(tmp_path_factory) -> Subject:
    root = tmp_path_factory.mktemp("live")
    train = shared_dataset("adult_train.parquet").sample(4000, random_state=0).reset_index(drop=True)
    test = shared_dataset("adult_test.parquet").sample(2000, random_state=1).reset_index(drop=True)
    categorical = [c for c in train.columns if train[c].dtype == object and c != "income"]
    numeric = [c for c in train.columns if c not in categorical and c != "income"]
    model = encoded_model(categorical, numeric, LogisticRegression(max_iter=500))
    model.fit(train.drop(columns="income"), train["income"])
    case = write_case(
        root / "case",
        model,
        train,
        test,
        target="income",
        task_type="binary_classification",
        sensitive=SENSITIVE,
        positive_label=POSITIVE,
    )
    constructor = case.construct(root / "constructor", sample_size=40, cohorts=ADULT_COHORTS, dashboard_rows=400)
    run_explainer(constructor, root / "explanation", options=ExplainerOptions(rows="sample"))
    run_counterfactual(constructor, root / "counterfactual", options=CounterfactualOptions(total_CFs=3, n_jobs=1))
    run_gather(constructor, [root / "explanation", root / "counterfactual"], root / "dashboard")
    return Subject(case, root / "dashboard")


@pytest.fixture(scope="module")
def server(subject):
    said: list[str] = []
    running = start(subject.bundle, say=said.append)
    running.said = said  # type: ignore[attr-defined]
    yield running
    running.stop()


def request(
    server: LiveDashboard,
    path: str,
    body: Any = None,
    *,
    token: str | None | bool = True,
    method: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One HTTP request to the server as sent (http.client: the path is not normalised)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    sent = dict(headers or {})
    if token is True:
        sent["Authorization"] = f"Bearer {server.token}"
    elif isinstance(token, str):
        sent["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    connection.request(method or ("POST" if data is not None else "GET"), path, body=data, headers=sent)
    response = connection.getresponse()
    content = response.read()
    connection.close()
    kind = response.getheader("content-type", "")
    value = json.loads(content) if kind.startswith("application/json") else content
    return response.status, value, {k.lower(): v for k, v in response.getheaders()}


def ok(server: LiveDashboard, path: str, body: Any = None) -> Any:
    status, value, _ = request(server, path, body)
    assert status == 200, (status, value)
    return value


# --- what the server answers -----------------------------------------------------------------------


def test_info_offers_each_feature_with_its_range_or_values(server, subject):
    info = ok(server, "/api/info")
    assert info["available"] == {"predict": True, "explain": True, "counterfactuals": True, "cohort": True}
    assert info["n_test"] == len(subject.test) and info["model_features"] == subject.features
    train = pd.read_parquet(subject.case.train)
    both = pd.concat([subject.test, train], ignore_index=True)
    by_name = {f["name"]: f for f in info["features"]}
    assert by_name["age"]["kind"] == "numeric" and by_name["age"]["integer"] is True
    assert (by_name["age"]["min"], by_name["age"]["max"]) == (both["age"].min(), both["age"].max())
    assert set(by_name["occupation"]["categories"]) == set(both["occupation"].dropna())
    assert by_name["occupation"]["missing"] == bool(both["occupation"].isna().any())
    held = {h["feature"]: h["reason"] for h in info["counterfactual"]["held_fixed"]}
    assert held == {"sex": "sensitive", "race": "sensitive"}


def test_prediction_of_edited_rows_is_the_models(server, subject):
    rows = [
        subject.row(0),
        subject.row(3, age=61, occupation="Exec-managerial", **{"hours-per-week": 60, "capital-gain": 15024}),
        subject.row(7, workclass=None, education="Doctorate", **{"education-num": 16}),
    ]
    answer = ok(server, "/api/predict", {"rows": rows})
    X = subject.frame(rows)
    assert answer["classes"] == list(subject.model.classes_)
    np.testing.assert_allclose(answer["probabilities"], subject.model.predict_proba(X), rtol=1e-12, atol=0)
    assert answer["predictions"] == subject.model.predict(X).tolist()
    # The edit moved the prediction: the what-if is not the stored answer.
    assert answer["probabilities"][1] != answer["probabilities"][0]


def test_rows_are_checked_against_the_data(server, subject):
    for rows, words in [
        ([{**subject.row(0), "age": "old"}], "takes numbers"),
        ([{**subject.row(0), "age": 30.5}], "whole numbers"),
        ([{**subject.row(0), "nonsense": 1}], "unknown features"),
        ([{k: v for k, v in subject.row(0).items() if k != "age"}], "missing ['age']"),
        ([{**subject.row(0), "sex": 3}], "takes text"),
        ("not rows", "must be a list"),
    ]:
        status, value, _ = request(server, "/api/predict", {"rows": rows})
        assert status == 422 and words in value["error"], (rows, value)


def test_explanations_are_the_explainer_steps(server, subject):
    explained = sorted(subject.local[A.ROW_ID].unique())[:5]
    answer = ok(server, "/api/explain", {"rows": [subject.row(int(r)) for r in explained]})
    assert answer["method"] == "linear" and answer["labels"] == ["<=50K", ">50K"]
    for i, r in enumerate(explained):
        for label in answer["labels"]:
            stored = subject.local[(subject.local[A.ROW_ID] == r) & (subject.local["class"] == label)]
            got = pd.Series(answer["rows"][i][label])[subject.features]
            np.testing.assert_allclose(got.to_numpy(), stored[subject.features].iloc[0].to_numpy(), atol=1e-12)
    # An edited row: linear SHAP's contributions add up to the model's log-odds.
    edited = subject.row(11, age=45, **{"hours-per-week": 70, "capital-gain": 7688})
    answer = ok(server, "/api/explain", {"rows": [edited]})
    total = sum(answer["rows"][0][POSITIVE].values()) + answer["expected_values"][POSITIVE]
    assert total == pytest.approx(subject.model.decision_function(subject.frame([edited]))[0], abs=1e-9)


def test_counterfactuals_of_an_edited_row_flip_its_prediction(server, subject):
    edited = subject.row(21, age=52, occupation="Prof-specialty", **{"hours-per-week": 55})
    before = subject.model.predict(subject.frame([edited]))[0]
    answer = ok(server, "/api/counterfactuals", {"row": edited, "row_id": 21})
    assert answer["prediction"] == before and answer["valid"] == len(answer["counterfactuals"]) > 0
    cfs = [cf["features"] for cf in answer["counterfactuals"]]
    repredicted = subject.model.predict(subject.frame(cfs))
    assert (repredicted != before).all()  # desired_class "opposite"
    assert [cf["prediction"] for cf in answer["counterfactuals"]] == repredicted.tolist()
    for cf in answer["counterfactuals"]:
        changed = {f for f in subject.features if cf["features"][f] != edited[f]}
        assert changed == {c["feature"] for c in cf["changes"]} and changed
        assert not changed & set(SENSITIVE)  # held fixed, as in the run


def test_counterfactuals_of_an_unedited_row_are_the_steps(server, subject):
    row_id = int(subject.cfs[A.ROW_ID].iloc[0])
    answer = ok(server, "/api/counterfactuals", {"row": subject.row(row_id), "row_id": row_id})
    stored = subject.cfs[subject.cfs[A.ROW_ID] == row_id][subject.features].reset_index(drop=True)
    got = pd.DataFrame([cf["features"] for cf in answer["counterfactuals"]])[subject.features]
    pd.testing.assert_frame_equal(got.astype(stored.dtypes.to_dict()), stored)


def _cohort_rows(test: pd.DataFrame) -> np.ndarray:
    return ((test["age"] >= 30) & (test["hours-per-week"] >= 40)).to_numpy()


def test_a_cohorts_figures_are_computed_on_every_test_row(server, subject):
    cohort = {
        "and": [{"column": "age", "op": ">=", "value": 30}, {"column": "hours-per-week", "op": ">=", "value": 40}]
    }
    answer = ok(server, "/api/cohort", {"filter": cohort, "name": "Older full-timers"})
    rows = _cohort_rows(subject.test)
    X, y = subject.frame(subject.test[subject.features].to_dict("records")), subject.test["income"].to_numpy()
    proba = subject.model.predict_proba(X)[:, list(subject.model.classes_).index(POSITIVE)]
    predicted = subject.model.predict(X)
    truth, chosen = y[rows] == POSITIVE, predicted[rows] == POSITIVE
    m = answer["metrics"]
    assert answer["count"] == m["count"] == rows.sum() and answer["of"] == len(subject.test) == 2000
    assert m["accuracy_score"] == pytest.approx(skm.accuracy_score(truth, chosen), abs=1e-12)
    assert m["error_rate"] == pytest.approx(1 - skm.accuracy_score(truth, chosen), abs=1e-12)
    assert m["precision_score"] == pytest.approx(skm.precision_score(truth, chosen), abs=1e-12)
    assert m["recall_score"] == pytest.approx(skm.recall_score(truth, chosen), abs=1e-12)
    assert m["f1_score"] == pytest.approx(skm.f1_score(truth, chosen), abs=1e-12)
    assert m["roc_auc_score"] == pytest.approx(skm.roc_auc_score(truth, proba[rows]), abs=1e-9)
    assert m["log_loss"] == pytest.approx(skm.log_loss(truth, proba[rows]), abs=1e-9)
    assert (
        m["confusion_matrix"]["matrix"]
        == skm.confusion_matrix(y[rows], predicted[rows], labels=["<=50K", POSITIVE]).tolist()
    )
    # Fairness within the cohort: per sex, scikit-learn on that group's rows.
    (by_sex,) = [f for f in answer["fairness"] if f["features"] == ["sex"]]
    for group in by_sex["by_group"]:
        mine = rows & (subject.test["sex"] == group["group"]["sex"]).to_numpy()
        assert group["count"] == mine.sum()
        assert group["accuracy_score"] == pytest.approx(skm.accuracy_score(y[mine], predicted[mine]), abs=1e-12)
    accuracy = [g["accuracy_score"] for g in by_sex["by_group"]]
    assert by_sex["difference"]["accuracy_score"] == pytest.approx(max(accuracy) - min(accuracy), abs=1e-12)
    # Importance over the cohort's explained rows: mean |contribution| per class, then over classes.
    local = subject.local[subject.local[A.ROW_ID].isin(np.flatnonzero(rows))]
    expected = local.groupby("class")[subject.features].apply(lambda g: g.abs().mean()).mean()
    importance = {i["feature"]: i["importance"] for i in answer["importance"]["global"]}
    assert answer["importance"]["explained_rows"] == local[A.ROW_ID].nunique() > 0
    np.testing.assert_allclose(pd.Series(importance)[subject.features], expected[subject.features], rtol=1e-12)


def test_cohort_filters_are_checked(server):
    for cohort, status, words in [
        ({"column": "agee", "op": "<", "value": 3}, 422, "did you mean"),
        ({"column": "sex", "op": "<", "value": 3}, 422, "needs a numeric column"),
        ({"column": "age", "op": "~", "value": 3}, 422, "not valid"),
    ]:
        got, value, _ = request(server, "/api/cohort", {"filter": cohort})
        assert got == status and words in value["error"], value
    empty = ok(server, "/api/cohort", {"filter": {"column": "age", "op": ">", "value": 500}})
    assert empty["count"] == 0 and empty["metrics"]["accuracy_score"] is None


def test_a_test_row_is_served_as_the_what_if_starts(server, subject):
    row = ok(server, "/api/row", {"row_id": 5})
    assert row["features"] == subject.row(5) and row["y_true"] == subject.test["income"].iloc[5]
    assert request(server, "/api/row", {"row_id": 2000})[0] == 422


# --- security ---------------------------------------------------------------------------------------

ROUTES = [("GET", "/", None), ("GET", "/api/info", None), ("GET", "/bundle/insights.json", None)]
ROUTES += [("POST", f"/api/{name}", {}) for name in ("row", "predict", "explain", "counterfactuals", "cohort")]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_needs_the_token(server, method, path, body):
    status, value, _ = request(server, path, body, token=None, method=method)
    assert status == 401 and "token" in value["error"]
    status, value, _ = request(server, path, body, token=server.token[:-1] + "x", method=method)
    assert status == 403
    status, _, _ = request(server, f"{path}?token=wrong", body, token=None, method=method)
    assert status == 403


def test_the_page_is_served_with_the_token_in_its_url(server, subject):
    path = server.url.split(str(server.port), 1)[1]
    status, page, headers = request(server, path, token=None)
    assert status == 200 and page == (subject.bundle / "dashboard.html").read_bytes()
    assert "connect-src 'self'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "no-referrer"


def test_an_oversize_request_is_refused(server, subject):
    big = json.dumps({"rows": [subject.row(0)] * 4000}).encode()
    assert len(big) > Limits().body_bytes
    status, value, _ = request(server, "/api/predict", raw=big)
    assert status == 413 and "larger than" in value["error"]
    # Without a length the body is counted as it comes.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("POST", "/api/predict")
    for name, value in (("Authorization", f"Bearer {server.token}"), ("Content-Type", "application/json")):
        connection.putheader(name, value)
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    for start_at in range(0, len(big), 1 << 16):
        chunk = big[start_at : start_at + (1 << 16)]
        try:
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            break
    try:
        connection.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert connection.getresponse().status == 413
    connection.close()
    # Too many rows, even in few bytes; and a non-JSON body.
    status, value, _ = request(server, "/api/explain", {"rows": [subject.row(0)] * (Limits().explain_rows + 1)})
    assert status == 413 and "at most" in value["error"]
    assert request(server, "/api/predict", raw=b"rows=1", headers={"Content-Type": "text/plain"})[0] == 415
    assert request(server, "/api/predict", raw=b"{not json")[0] == 400


def test_a_slow_answer_is_cut_off_and_a_queue_refused(server, subject):
    """A server with a 1 ms budget per answer: the cohort figures take longer (504)."""
    quick = run_server(server.live, limits=Limits(seconds=0.001))
    try:
        status, value, _ = request(quick, "/api/cohort", {"filter": None})
        assert status == 504 and "longer than" in value["error"]
    finally:
        quick.stop()


def test_file_routes_serve_only_the_manifests_files(server, subject):
    status, body, headers = request(server, "/bundle/insights.json")
    assert status == 200 and body == json.loads((subject.bundle / "insights.json").read_text())
    assert headers["content-disposition"] == "attachment"
    for path in [
        "/bundle/../meta.json",
        "/bundle/%2e%2e/%2e%2e/etc/passwd",
        "/bundle/..%2f..%2fetc%2fpasswd",
        "/bundle//etc/passwd",
        "/bundle/constructor/../insights.json",
        "/bundle/manifest.json",  # not in its own list
        "/bundle/tables",
        "/../../etc/passwd",
    ]:
        status, _, _ = request(server, path)
        assert status == 404, path
    for method in ("POST", "PUT", "DELETE"):
        assert request(server, "/bundle/insights.json", method=method, raw=b"{}")[0] == 405
        assert request(server, "/", method=method, raw=b"{}")[0] == 405


def test_another_host_header_is_refused(server):
    assert request(server, "/api/info", headers={"Host": f"evil.example:{server.port}"})[0] == 400


def test_it_listens_on_loopback_only_by_default(server):
    assert server.host == "127.0.0.1" and server.url.startswith(f"http://127.0.0.1:{server.port}/?token=")
    (listening,) = server.server.servers[0].sockets
    assert listening.getsockname() == ("127.0.0.1", server.port)
    with pytest.raises(ConnectionRefusedError):  # another address of this machine: nobody listens
        socket.create_connection(("127.0.0.2", server.port), timeout=5).close()
    with pytest.raises(RAIInputError, match="--allow-remote"):
        start("unused", host="0.0.0.0")
    assert "do not share it" in server.said[-1]


def test_in_a_notebook_the_page_shows_inline(server):
    frame = server._repr_html_()
    assert frame.startswith(f'<iframe src="http://127.0.0.1:{server.port}/?token={server.token}"')


def test_a_tampered_bundle_is_refused_at_start(subject, tmp_path):
    for name, change in [
        (
            "insights.json",
            lambda p: p.write_text(p.read_text().replace('"accuracy_score": 0.', '"accuracy_score": 1.')),
        ),
        ("constructor/model/model.joblib", lambda p: p.write_bytes(p.read_bytes() + b"\0")),
    ]:
        copy = tmp_path / name.replace("/", "_")
        shutil.copytree(subject.bundle, copy)
        change(copy / name)
        with pytest.raises(ArtifactIntegrityError, match="does not match its manifest"):
            start(copy, say=lambda _: None)


def test_a_fetched_audit_is_verified_against_the_archive_manifest(subject, tmp_path):
    """The layout `rai-audit audits fetch` writes: the archive's manifest and dashboard/."""
    fetched = tmp_path / "audit"
    shutil.copytree(subject.bundle, fetched / "dashboard")
    files = {
        f"dashboard/{p.relative_to(fetched / 'dashboard').as_posix()}": {
            "sha256": A.sha256_file(p),
            "size": p.stat().st_size,
        }
        for p in sorted((fetched / "dashboard").rglob("*"))
        if p.is_file()
    }
    insights = json.loads((subject.bundle / "insights.json").read_text())
    manifest = {"files": files, "run_id": insights["run_id"], "model": insights["model"], "passed": None}
    (fetched / "manifest.json").write_text(json.dumps(manifest))
    from rai_audit.live.bundle import locate_bundle

    assert locate_bundle(fetched) == (fetched / "dashboard", f"fetched audit {fetched}")
    # A forged claim (the archive's run id) is refused, as `audits verify` refuses it.
    (fetched / "manifest.json").write_text(json.dumps({**manifest, "run_id": "another"}))
    with pytest.raises(ArtifactIntegrityError, match="run id"):
        locate_bundle(fetched)


def test_an_archived_audit_is_fetched_and_verified_first(subject, tmp_path, monkeypatch):
    """`rai-audit dashboard s3://...`: the audit published to a local SeaweedFS (127.0.0.1),
    fetched as `audits fetch` fetches it; one whose archived copy was changed is refused."""
    import io

    from rai_audit.archive import publish_audit
    from rai_audit.live.bundle import locate_bundle
    from rai_audit.storage import ENV_ACCESS, ENV_ENDPOINT, ENV_SECRET, storage_down, storage_up

    settings = storage_up(tmp_path / "storage")
    try:
        for name, value in ((ENV_ENDPOINT, settings.endpoint), (ENV_ACCESS, settings.access_key)):
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(ENV_SECRET, settings.secret_key)
        prefix = publish_audit(settings, "rai-audit", bundle_dir=subject.bundle, model_name="adult", model_version="1")
        bundle, what = locate_bundle(f"s3://rai-audit/{prefix}", tmp_path / "one")
        assert what == f"archived audit s3://rai-audit/{prefix} (fetched and verified)"
        assert (bundle / "insights.json").read_bytes() == (subject.bundle / "insights.json").read_bytes()
        assert (bundle / "constructor" / "model" / "model.joblib").is_file()  # the model travels with the audit
        changed = b'{"cohorts": []}'
        settings.client().put_object(
            "rai-audit", f"{prefix}/dashboard/insights.json", io.BytesIO(changed), len(changed)
        )
        with pytest.raises(ArtifactIntegrityError, match="the archive was changed"):
            locate_bundle(f"s3://rai-audit/{prefix}", tmp_path / "two")
    finally:
        storage_down(tmp_path / "storage")


def test_nothing_is_written(server, subject):
    """After every request above, the bundle is as it was written."""
    A.verify_manifest(subject.bundle)
    stamps = {p: p.stat().st_mtime_ns for p in subject.bundle.rglob("*")}
    ok(server, "/api/predict", {"rows": [subject.row(1)]})
    ok(server, "/api/cohort", {"filter": {"column": "sex", "op": "==", "value": "Female"}})
    time.sleep(0.01)
    assert {p: p.stat().st_mtime_ns for p in subject.bundle.rglob("*")} == stamps


def test_the_command_refuses_before_serving(subject, tmp_path, capsys):
    from rai_audit.cli import main

    assert main(["dashboard", str(subject.bundle), "--host", "0.0.0.0", "--no-browser"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    copy = tmp_path / "copy"
    shutil.copytree(subject.bundle, copy)
    (copy / "meta.json").write_text("{}")
    assert main(["dashboard", str(copy), "--no-browser"]) == 2
    assert "does not match its manifest" in capsys.readouterr().err


# --- the page, live, in Chromium (Playwright) ---------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOCAL_SCHEMES = ("data:", "blob:", "about:")
READY = "() => document.body.dataset.ready === '1'"
NOT_WIRED = (
    "the page has no {what}: dashboard/src/app.jsx must import views/WhatIf.jsx (tab `what-if`) and "
    "views/LiveCohort.jsx (in <main>), and templates/dashboard.js be rebuilt (make dashboard)"
)


def _wired(page, selector: str, what: str) -> None:
    if page.locator(selector).count() == 0:
        pytest.fail(NOT_WIRED.format(what=what))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: run scripts/install-system-deps.sh (make test does)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class LivePage:
    """The served page in a fresh browser context, with its errors and requests."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)
        self.page.wait_for_function(READY, timeout=30_000)

    def what_if(self) -> None:
        _wired(self.page, "#tab-what-if", "What-if tab")
        self.page.click("#tab-what-if")
        self.page.wait_for_selector("[data-testid=whatif-live]", timeout=20_000)

    def idle(self) -> None:
        """No answer pending (edits are sent after a short pause)."""
        self.page.wait_for_timeout(400)
        self.page.wait_for_function(
            "() => document.querySelector('[data-testid=whatif-live]').dataset.busy === '0'", timeout=30_000
        )

    def check(self, origin: str) -> None:
        assert not self.errors, self.errors
        foreign = [u for u in self.requests if not u.startswith((origin, *LOCAL_SCHEMES))]
        assert not foreign, foreign


@pytest.fixture
def live_page(browser, server):
    pages: list[LivePage] = []

    def opener() -> LivePage:
        pages.append(LivePage(browser, server.url))
        return pages[-1]

    yield opener
    for opened in pages:
        opened.check(f"http://127.0.0.1:{server.port}/")
        opened.context.close()


def _wait_for_row(page, row: dict[str, Any]) -> None:
    """Until the shown prediction is that of ``row`` (the page says which row it answered for)."""
    page.wait_for_function(
        """want => { const p = document.querySelector('[data-testid=whatif-prediction]');
            return p && JSON.stringify(JSON.parse(p.dataset.row)) === JSON.stringify(want); }""",
        arg=row,
        timeout=30_000,
    )


def test_page_edits_a_row_and_shows_the_models_prediction(live_page, subject):
    shown = live_page()
    page = shown.page
    shown.what_if()
    row_id = int(page.eval_on_selector("select[name=row] option:nth-child(3)", "o => o.value"))
    page.select_option("select[name=row]", str(row_id))
    shown.idle()
    page.fill("input[name='feature-age']", "61")
    page.fill("input[name='feature-hours-per-week']", "60")
    page.select_option("select[name='feature-occupation']", label="Exec-managerial")
    edited = subject.row(row_id, age=61, occupation="Exec-managerial", **{"hours-per-week": 60})
    _wait_for_row(page, edited)
    shown.idle()
    expected = subject.model.predict_proba(subject.frame([edited]))[0]
    cells = page.eval_on_selector_all(
        "[data-testid=whatif-probabilities] tbody tr",
        "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].dataset.value, r.cells[1].textContent])",
    )
    assert [c[0] for c in cells] == list(subject.model.classes_)
    np.testing.assert_allclose([float(c[1]) for c in cells], expected, rtol=1e-12)
    assert [c[2] for c in cells] == [f"{p:.4g}" for p in expected]
    predicted = subject.model.predict(subject.frame([edited]))[0]
    assert page.inner_text("[data-testid=whatif-predicted]") == predicted
    # The explanation shown is the edited row's: the age contribution changes with age.
    contributions = dict(
        page.eval_on_selector_all(
            "[data-testid=whatif-explanation] tbody tr",
            "rows => rows.map(r => [r.cells[0].textContent, r.cells[2].textContent])",
        )
    )
    assert set(contributions) == set(subject.features)
    assert "age" in page.inner_text("[data-testid=whatif-changed]")


def test_page_finds_counterfactuals_of_the_edited_row(live_page, subject):
    shown = live_page()
    page = shown.page
    shown.what_if()
    row_id = int(page.eval_on_selector("select[name=row]", "s => s.value"))
    shown.idle()
    page.fill("input[name='feature-capital-loss']", "1000")
    edited = subject.row(row_id, **{"capital-loss": 1000})
    _wait_for_row(page, edited)
    page.click("[data-testid=whatif-cf-run]")
    page.wait_for_selector("[data-testid=whatif-cf-status]", timeout=60_000)
    before = subject.model.predict(subject.frame([edited]))[0]
    cfs = page.eval_on_selector_all(
        "tr[data-counterfactual]", "rows => rows.map(r => JSON.parse(r.dataset.counterfactual))"
    )
    shown_predictions = page.eval_on_selector_all(
        "tr[data-counterfactual] td:first-of-type", "cs => cs.map(c => c.textContent)"
    )
    assert cfs, page.inner_text("[data-testid=whatif-cf-status]")
    again = subject.model.predict(subject.frame(cfs))
    assert (again != before).all() and shown_predictions == again.tolist()
    for cf in cfs:
        assert all(cf[f] == edited[f] for f in SENSITIVE)


def test_page_evaluates_a_built_cohort_on_every_test_row(live_page, subject):
    shown = live_page()
    page = shown.page
    page.click("#tab-cohorts")
    editor = page.locator("[data-testid=cohort-editor]")
    editor.locator("select[name=column]").nth(0).select_option("age")
    editor.locator("select[name=op]").nth(0).select_option(">=")
    editor.locator("input[name=value]").nth(0).fill("30")
    editor.locator("[data-testid=add-condition]").first.click()
    editor.locator("select[name=column]").nth(1).select_option("hours-per-week")
    editor.locator("select[name=op]").nth(1).select_option(">=")
    editor.locator("input[name=value]").nth(1).fill("40")
    editor.locator("input[name=cohort-name]").fill("Older full-timers")
    editor.locator("[data-testid=save-cohort]").click()
    assert page.inner_text("[data-testid=active-cohort]").strip() == "Older full-timers"
    _wired(page, "[data-testid=live-cohort]", "live cohort panel")
    page.click("[data-testid=live-cohort] summary")
    page.click("[data-testid=live-cohort-run]")
    page.wait_for_selector("[data-testid=live-cohort-result]", timeout=60_000)
    asked = json.loads(page.get_attribute("[data-testid=live-cohort-result]", "data-filter"))
    assert asked == {
        "and": [{"column": "age", "op": ">=", "value": 30}, {"column": "hours-per-week", "op": ">=", "value": 40}]
    }
    rows = _cohort_rows(subject.test)
    X, y = subject.frame(subject.test[subject.features].to_dict("records")), subject.test["income"].to_numpy()
    predicted = subject.model.predict(X)
    proba = subject.model.predict_proba(X)[:, 1]
    truth, chosen = y[rows] == POSITIVE, predicted[rows] == POSITIVE
    expected = {
        "accuracy": skm.accuracy_score(truth, chosen),
        "error rate": 1 - skm.accuracy_score(truth, chosen),
        "precision": skm.precision_score(truth, chosen),
        "recall": skm.recall_score(truth, chosen),
        "f1": skm.f1_score(truth, chosen),
        "roc auc": skm.roc_auc_score(truth, proba[rows]),
        "log loss": skm.log_loss(truth, proba[rows]),
    }
    table = dict(
        page.eval_on_selector_all(
            "[data-testid=live-cohort-metrics] tbody tr",
            "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])",
        )
    )
    for name, value in expected.items():
        assert table[name] == f"{value:.4g}", (name, table[name], value)
    assert f"{rows.sum():,} of all 2,000 test rows" in page.inner_text("[data-testid=live-cohort-count]")


def test_static_page_says_how_to_go_live_and_asks_nothing(browser, subject):
    context = browser.new_context()
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((subject.bundle / "dashboard.html").as_uri())
    page.wait_for_function(READY, timeout=30_000)
    _wired(page, "#tab-what-if", "What-if tab")
    page.click("#tab-what-if")
    assert "rai-audit dashboard" in page.inner_text("[data-testid=whatif-static]")
    assert page.locator("[data-testid=live-cohort]").count() == 0
    assert all(u.startswith(("file:", *LOCAL_SCHEMES)) for u in requests), requests
    context.close()
