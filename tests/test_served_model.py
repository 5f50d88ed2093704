"""A model served over HTTP (rai_audit.core.served_model), against real servers.

A real MLServer (Open Inference Protocol, from its own venv ``.venv-mlserver``, built by
``make test``) serves two scikit-learn models on 127.0.0.1: a k-nearest-neighbours classifier
on Adult's numeric features (no exact explainer takes it, so its file audit uses the mimic
too) and the demo Pipeline (text features with missing values). The first is audited by
every step twice, served and from its file, and every figure must be equal; the request
carries an Authorization header from an environment variable whose value must appear in no
output file or log. Faults come from a small stdlib HTTP server in a thread.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.core.constructor_artifact import load_constructor_artifact
from rai_audit.core.served_model import Endpoint, ServedClassifier, ServedModel, connect, load_endpoint
from rai_audit.demo import demo_data_path, train_demo_model
from rai_audit.live.bundle import LiveAudit
from rai_audit.specs import (
    CausalOptions,
    ConstructorOptions,
    CounterfactualOptions,
    ErrorAnalysisOptions,
    ExplainerOptions,
)
from rai_audit.steps.causal import run_causal
from rai_audit.steps.constructor import run_constructor
from rai_audit.steps.counterfactual import run_counterfactual
from rai_audit.steps.error_analysis import run_error_analysis
from rai_audit.steps.explainer import run_explainer
from rai_audit.steps.gather import run_gather
from support import REPO

MLSERVER = REPO / ".venv-mlserver" / "bin" / "mlserver"
TOKEN_ENV = "RAI_AUDIT_TEST_MODEL_TOKEN"
SECRET = "Bearer rai-audit-test-9d2f61c4e8-secret"
TEXT = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex", "native-country"]
NUMERIC = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def adult(tmp_path_factory) -> dict[str, Any]:
    """A few hundred demo rows, and the two models saved with joblib."""
    folder = tmp_path_factory.mktemp("served")
    train = pd.read_parquet(demo_data_path("adult_train.parquet")).iloc[:1500].reset_index(drop=True)
    test = pd.read_parquet(demo_data_path("adult_test.parquet")).iloc[:300].reset_index(drop=True)
    train.to_parquet(folder / "train.parquet", index=False)
    test.to_parquet(folder / "test.parquet", index=False)
    knn = KNeighborsClassifier(n_neighbors=15).fit(train[NUMERIC], train["income"])
    with threadpool_limits(1):  # OpenMP threads on a busy machine cost minutes, not seconds
        models = {"numeric": knn, "pipeline": train_demo_model(train)}
    for name, model in models.items():
        (folder / name).mkdir()
        joblib.dump(model, folder / name / "model.joblib")
    return {"folder": folder, "train": train, "test": test, "models": models}


@pytest.fixture(scope="module")
def mlserver(adult) -> Iterator[str]:
    """MLServer serving both models on 127.0.0.1; its URL."""
    if not MLSERVER.is_file():
        pytest.fail(f"{MLSERVER} is missing: build it with `make .venv-mlserver/.installed` (`make test` does)")
    repo = adult["folder"] / "mlserver"
    repo.mkdir()
    port = _free_port()
    settings = {"host": "127.0.0.1", "http_port": port, "grpc_port": _free_port(), "metrics_port": _free_port()}
    (repo / "settings.json").write_text(json.dumps({**settings, "parallel_workers": 0}))
    for name in adult["models"]:
        (repo / name).mkdir()
        (repo / name / "model.joblib").write_bytes((adult["folder"] / name / "model.joblib").read_bytes())
        (repo / name / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib"},
                }
            )
        )
    log = open(repo / "mlserver.log", "wb")
    server = subprocess.Popen([str(MLSERVER), "start", str(repo)], stdout=log, stderr=subprocess.STDOUT, cwd=repo)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                ready = all(
                    urllib.request.urlopen(f"{url}/v2/models/{name}/ready", timeout=2).status == 200
                    for name in adult["models"]
                )
                if ready:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"MLServer did not start: {(repo / 'mlserver.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _options(**overrides: Any) -> ConstructorOptions:
    values: dict[str, Any] = dict(
        target_column="income",
        task_type="binary_classification",
        sensitive_features=["sex", "race"],
        dropped_features=TEXT,  # the KNN takes the numbers; the text stays for cohorts and fairness
        positive_label=">50K",
        sample_size=40,
        cohorts=[{"name": "Under 30", "filter": {"column": "age", "op": "<", "value": 30}}],
    )
    return ConstructorOptions(**{**values, **overrides})


def _audit(adult: dict[str, Any], out: Path, model: Path | None, options: ConstructorOptions) -> Path:
    """Every step, as the pipeline runs them, into ``out``."""
    folder = adult["folder"]
    run_constructor(model, folder / "train.parquet", folder / "test.parquet", out / "constructor", options=options)
    c = out / "constructor"
    run_error_analysis(c, out / "error_analysis", options=ErrorAnalysisOptions(heatmap_features=["age"]))
    run_explainer(c, out / "explainer", options=ExplainerOptions(rows="sample"))
    run_counterfactual(c, out / "counterfactual", options=CounterfactualOptions(total_CFs=2, n_jobs=2))
    causal = CausalOptions(treatment_features=["hours-per-week"], train_sample_size=500, n_jobs=1)
    run_causal(c, out / "causal", options=causal)
    insights = [out / s for s in ("error_analysis", "explainer", "counterfactual", "causal")]
    run_gather(c, insights, out / "dashboard")
    return out


# Keys that differ between any two runs (ids, times) or name the model (its file, its class).
VOLATILE = {"run_id", "created_at", "seconds", "model", "model_calls", "producer", "input_fingerprint", "generated_at"}
VOLATILE |= {"estimator", "notes"}


def _figures(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _figures(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_figures(v) for v in value]
    return value


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.relative_to(folder).as_posix(): pd.read_parquet(p) for p in sorted(folder.rglob("*.parquet"))}


def test_a_served_model_audited_by_every_step_equals_its_file_audit(adult, mlserver, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv(TOKEN_ENV, SECRET)
    served = _audit(
        adult,
        tmp_path / "served",
        None,
        _options(
            model_endpoint=mlserver,
            model_name="numeric",
            model_headers_from_env={"Authorization": TOKEN_ENV},
            model_batch_size=5000,
        ),
    )
    from_file = _audit(
        adult, tmp_path / "file", adult["folder"] / "numeric" / "model.joblib", _options(allow_pickle=True)
    )

    # Every figure: the JSON results and the tables of every step, and the page's insights.
    for step in ("constructor", "error_analysis", "explainer", "counterfactual", "causal", "dashboard"):
        for name in ("result.json", A.INSIGHTS_JSON_FILE, A.COHORTS_FILE):
            if (from_file / step / name).exists():
                assert _figures(json.loads((served / step / name).read_text())) == _figures(
                    json.loads((from_file / step / name).read_text())
                ), f"{step}/{name}"
        file_tables, served_tables = _tables(from_file / step), _tables(served / step)
        assert served_tables.keys() == file_tables.keys()
        for name, table in file_tables.items():
            pd.testing.assert_frame_equal(served_tables[name], table, obj=f"{step}/{name}")
    explanation = json.loads((served / "explainer" / "result.json").read_text())
    assert explanation["method"] == "mimic" and "served (v2)" in explanation["estimator"]

    # The model-calling steps count their requests; the others call nothing.
    n_test = len(adult["test"])
    calls = {
        step: json.loads((served / step / A.META_FILE).read_text()).get("model_calls")
        for step in ("constructor", "error_analysis", "explainer", "counterfactual", "causal")
    }
    assert calls["constructor"] == {"endpoint": mlserver, "protocol": "v2", "calls": 1, "rows": n_test, "retries": 0}
    # Only the mimic's training rows: its fidelity is against the constructor's predictions.
    n_mimic = min(ExplainerOptions().mimic_train_size, len(adult["train"]))
    assert (calls["explainer"]["calls"], calls["explainer"]["rows"]) == (1, n_mimic)
    assert calls["counterfactual"]["rows"] >= 40 and calls["counterfactual"]["calls"] >= 2
    assert calls["error_analysis"] is None and calls["causal"] is None
    assert all("model_calls" not in json.loads((from_file / s / A.META_FILE).read_text()) for s in calls)

    # The artifact holds the endpoint's descriptor: the header's variable NAME, never its value.
    meta = json.loads((served / "constructor" / A.META_FILE).read_text())
    descriptor = json.loads((served / "constructor" / meta["model"]["file"]).read_text())
    assert descriptor["endpoint"] == mlserver and descriptor["headers_from_env"] == {"Authorization": TOKEN_ENV}
    assert descriptor["classes"] == ["<=50K", ">50K"]
    model = load_constructor_artifact(served / "constructor").load_model()
    assert isinstance(model, ServedClassifier) and list(model.classes_) == ["<=50K", ">50K"]
    # The live dashboard calls the endpoint too: an edited row's prediction is the model's.
    live = LiveAudit(served / "dashboard")
    edited = adult["test"][NUMERIC].iloc[:4].assign(age=lambda f: f["age"] + 20)
    answer = live.predict(edited.to_dict("records"))
    assert answer["predictions"] == list(adult["models"]["numeric"].predict(edited))
    np.testing.assert_allclose(answer["probabilities"], adult["models"]["numeric"].predict_proba(edited))

    out, err = capfd.readouterr()
    for path in [p for p in tmp_path.rglob("*") if p.is_file()]:
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in out + err


def test_a_served_pipeline_with_text_and_missing_values_predicts_as_its_file(adult, mlserver, tmp_path):
    options = _options(dropped_features=[], model_endpoint=mlserver, model_name="pipeline", model_batch_size=120)
    folder = adult["folder"]
    run_constructor(None, folder / "train.parquet", folder / "test.parquet", tmp_path / "c", options=options)
    audit = load_constructor_artifact(tmp_path / "c")
    model, X = adult["models"]["pipeline"], adult["test"].drop(columns="income")
    assert X.isna().any().any()  # missing text values travel as JSON null
    assert (audit.y_pred.to_numpy() == model.predict(X)).all()
    np.testing.assert_array_equal(audit.proba, model.predict_proba(X))  # JSON floats round-trip exactly
    assert audit.meta["model_calls"]["calls"] == 3 and audit.meta["model_calls"]["rows"] == len(X)  # 120 per call


def test_a_descriptor_file_given_as_the_model_is_read_not_rewritten(adult, mlserver, tmp_path):
    given = tmp_path / "model.json"  # what a user uploads as the pipeline's model artifact
    given.write_text(json.dumps({"endpoint": mlserver, "protocol": "v2", "name": "numeric"}))
    before = given.read_bytes()
    folder = adult["folder"]
    run_constructor(given, folder / "train.parquet", folder / "test.parquet", tmp_path / "c", options=_options())
    assert given.read_bytes() == before
    audit = load_constructor_artifact(tmp_path / "c")
    assert audit.meta["model_calls"]["rows"] == len(adult["test"])
    assert (audit.y_pred.to_numpy() == adult["models"]["numeric"].predict(adult["test"][NUMERIC])).all()
    copy = json.loads((audit.folder / audit.meta["model"]["file"]).read_text())
    assert copy["classes"] == ["<=50K", ">50K"] and copy["outputs"]["proba"] == "predict_proba"


def test_the_constructor_command_takes_an_endpoint_and_no_model_file(adult, mlserver, tmp_path, capsys):
    from rai_audit.steps.constructor import main

    folder = adult["folder"]
    argv = ["--train", str(folder / "train.parquet"), "--test", str(folder / "test.parquet")]
    argv += ["--output", str(tmp_path / "c"), "--target-column", "income", "--task-type", "binary_classification"]
    argv += ["--dropped-features", json.dumps(TEXT)]
    assert main([*argv, "--model-endpoint", mlserver, "--model-name", "numeric"]) == 0
    assert load_constructor_artifact(tmp_path / "c").meta["model_calls"]["endpoint"] == mlserver
    assert main(argv[:-2] + ["--output", str(tmp_path / "d")]) == 2  # neither a file nor an endpoint
    assert "model_endpoint" in capsys.readouterr().err


def test_a_config_names_a_served_model_with_no_model_file(tmp_path):
    from rai_audit.config import resolve_config

    config = {
        "model": {"endpoint": "https://models.example/", "name": "adult", "headers_from_env": {"X-Api-Key": "KEY"}},
        "train_data": "train.parquet",
        "test_data": "test.parquet",
        "target_column": "income",
        "task_type": "binary_classification",
    }
    pd.DataFrame({"age": [30, 40], "income": ["<=50K", ">50K"]}).to_parquet(tmp_path / "train.parquet")
    pd.DataFrame({"age": [35], "income": [">50K"]}).to_parquet(tmp_path / "test.parquet")
    args, _ = resolve_config(config, base_dir=tmp_path)
    assert args["model_endpoint"] == "https://models.example/" and args["model_name"] == "adult"
    assert args["model_headers_from_env"] == {"X-Api-Key": "KEY"}
    assert args["model_uri"] == args["train_data_uri"]  # the pipeline's model input, not read
    with pytest.raises(RAIInputError, match="`endpoint` is missing"):
        resolve_config({**config, "model": {"name": "adult"}}, base_dir=tmp_path)


# --- faults, from a stdlib server ------------------------------------------------------------


class Stub:
    """An HTTP server in a thread answering as ``answer(method, path, body, n)`` says
    (n: the POSTs so far): (status, JSON body) or a callable that misbehaves itself."""

    def __init__(self, answer: Callable[[str, str, Any, int], tuple[int, Any]]) -> None:
        self.answer, self.posts, self.headers = answer, 0, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _reply(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                stub.headers.append(dict(self.headers))
                if method == "POST":
                    stub.posts += 1
                status, payload = stub.answer(method, self.path, body, stub.posts)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply("GET")

            def do_POST(self) -> None:
                self._reply("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=lambda: self.server.serve_forever(poll_interval=0.05), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[Callable[..., Stub]]:
    started: list[Stub] = []

    def start(answer: Callable[[str, str, Any, int], tuple[int, Any]]) -> Stub:
        started.append(Stub(answer))
        return started[-1]

    yield start
    for s in started:
        s.close()


ROWS = pd.DataFrame({"age": [30, 40, 50], "sex": ["Female", "Male", None]})
METADATA = {"name": "m", "inputs": [], "outputs": []}


def v2(labels: list[Any], proba: list[list[float | None]] | None = None) -> dict[str, Any]:
    outputs = [{"name": "predict", "shape": [len(labels), 1], "datatype": "BYTES", "data": labels}]
    if proba is not None:
        flat = [v for row in proba for v in row]
        outputs.append({"name": "predict_proba", "shape": [len(proba), 2], "datatype": "FP64", "data": flat})
    return {"model_name": "m", "outputs": outputs}


GOOD = v2(["no", "yes", "no"], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])


def _model(url: str, **endpoint: Any) -> ServedModel:
    values = {"name": "m", "retries": 2, "backoff_s": 0.01, "timeout_s": 5.0, **endpoint}
    return connect(Endpoint(url, **values), classifier=True, classes=["no", "yes"])


def _answer(post: Callable[[Any, int], tuple[int, Any]]) -> Callable[[str, str, Any, int], tuple[int, Any]]:
    return lambda method, path, body, n: (200, METADATA) if method == "GET" else post(body, n)


def test_the_v2_request_holds_one_tensor_per_column_and_reads_both_outputs(stub):
    seen: list[Any] = []
    server = stub(_answer(lambda body, n: (seen.append(body), (200, GOOD))[1]))
    model = _model(server.url)
    assert list(model.predict(ROWS)) == ["no", "yes", "no"]
    np.testing.assert_array_equal(model.predict_proba(ROWS), [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert model.stats.as_dict() == {"calls": 1, "rows": 3, "retries": 0}  # one request for both
    inputs = {t["name"]: t for t in seen[0]["inputs"]}
    assert inputs["age"] == {"name": "age", "shape": [3], "datatype": "INT64", "data": [30, 40, 50]}
    assert inputs["sex"]["datatype"] == "BYTES" and inputs["sex"]["data"] == ["Female", "Male", None]
    assert seen[0]["outputs"] == [{"name": "predict"}, {"name": "predict_proba"}]
    assert seen[0]["parameters"] == {"content_type": "pd"}


def test_batches_of_the_configured_size_go_out_concurrently(stub):
    X = pd.DataFrame({"age": np.arange(10)})

    def post(body: Any, n: int) -> tuple[int, Any]:
        ages = body["inputs"][0]["data"]
        return 200, v2(["yes" if a % 2 else "no" for a in ages], [[0.5, 0.5] if a % 2 else [1.0, 0.0] for a in ages])

    model = _model(stub(_answer(post)).url, batch_size=3, concurrency=3)
    assert list(model.predict(X)) == ["yes" if a % 2 else "no" for a in range(10)]  # in order
    assert model.stats.as_dict() == {"calls": 4, "rows": 10, "retries": 0}


def test_an_endpoint_that_is_down_is_named_after_the_bounded_retries():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed when connected to
    with pytest.raises(RAIInputError, match=rf"{url}/v2/models/m .*after 3 attempts .*could not connect"):
        _model(url)


def test_a_slow_endpoint_times_out_with_its_option_named(stub):
    def post(body: Any, n: int) -> tuple[int, Any]:
        time.sleep(1.0)
        return 200, GOOD

    model = _model(stub(_answer(post)).url, timeout_s=0.2, retries=1)
    with pytest.raises(
        RAIInputError, match=r"rows 0-2 after 2 attempts .*no answer within 0.2 s \(`model_timeout_s`\)"
    ):
        model.predict(ROWS)


@pytest.mark.parametrize(
    "answer, match",
    [
        (
            v2(["no", "yes"], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
            r"predictions of shape \[2\]; expected one per row \(3\)",
        ),
        (
            v2(["no", "yes", "no"], [[0.9, 0.1], [0.2, 0.8]]),
            r"probabilities of shape \[2, 2\]; expected \[3, classes\]",
        ),
        (v2(["no", "yes", "no"], [[0.9, 0.1], [0.2, None], [0.6, 0.4]]), r"1 NaN, infinite or null probabilities"),
        (v2(["no", None, "no"], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), r"missing \(null\) predictions"),
        ({"model_name": "m"}, r"no `outputs` list"),
    ],
)
def test_wrong_shapes_or_nan_are_refused_naming_the_call(stub, answer, match):
    model = _model(stub(_answer(lambda body, n: (200, answer))).url)
    with pytest.raises(RAIInputError, match=r"the call for rows 0-2 to http://127\.0\.0\.1:\d+/v2/models/m/infer"):
        model.predict(ROWS)
    with pytest.raises(RAIInputError, match=match):
        _model(stub(_answer(lambda body, n: (200, answer))).url).predict(ROWS)


def test_a_401_names_the_header_to_set_and_its_variable(stub, monkeypatch):
    server = stub(_answer(lambda body, n: (401, {"error": "unauthorized"})))
    with pytest.raises(
        RAIInputError, match=r"401 Unauthorized: set the header .*`model_headers_from_env`.*Authorization"
    ):
        _model(server.url).predict(ROWS)
    monkeypatch.setenv(TOKEN_ENV, SECRET)
    with pytest.raises(
        RAIInputError, match=rf"header Authorization \(from the environment variable {TOKEN_ENV}\)"
    ) as e:
        _model(server.url, headers_from_env={"Authorization": TOKEN_ENV}).predict(ROWS)
    assert SECRET not in str(e.value)
    assert server.headers[-1]["Authorization"] == SECRET  # sent, but named nowhere
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(RAIInputError, match=rf"environment variable {TOKEN_ENV} is not set"):
        _model(server.url, headers_from_env={"Authorization": TOKEN_ENV})


def test_an_endpoint_url_with_credentials_is_refused():
    with pytest.raises(RAIInputError, match="must not hold credentials"):
        Endpoint("https://user:pw@models.example", name="m")


def test_a_500_and_a_429_are_retried_then_the_answer_is_used(stub):
    server = stub(_answer(lambda body, n: (500, {"error": "boom"}) if n == 1 else (429, {}) if n == 2 else (200, GOOD)))
    model = _model(server.url)
    assert list(model.predict(ROWS)) == ["no", "yes", "no"]
    assert model.stats.as_dict() == {"calls": 3, "rows": 9, "retries": 2}
    always = stub(_answer(lambda body, n: (503, {"error": "overloaded"})))
    with pytest.raises(RAIInputError, match=r"after 3 attempts .*HTTP 503"):
        _model(always.url).predict(ROWS)


def test_the_mlflow_protocol_sends_dataframe_split(stub, tmp_path):
    seen: list[Any] = []

    def answer(method: str, path: str, body: Any, n: int) -> tuple[int, Any]:
        seen.append((path, body))
        return 200, {"predictions": [1 if row[0] > 35 else 0 for row in body["dataframe_split"]["data"]]}

    server = stub(answer)
    descriptor = tmp_path / "endpoint.json"
    descriptor.write_text(json.dumps({"endpoint": server.url, "protocol": "mlflow", "batch_size": 2}))
    model = load_endpoint(descriptor)
    assert list(model.predict(ROWS)) == [0, 1, 1] and not hasattr(model, "predict_proba")
    assert [p for p, _ in seen] == ["/invocations", "/invocations"]
    bodies = sorted((b for _, b in seen), key=lambda b: b["dataframe_split"]["data"][0][0])  # sent concurrently
    assert bodies[0] == {"dataframe_split": {"columns": ["age", "sex"], "data": [[30, "Female"], [40, "Male"]]}}
    assert bodies[1]["dataframe_split"]["data"] == [[50, None]]


def test_probabilities_in_another_order_than_the_classes_are_refused(stub, tmp_path):
    swapped = v2(["no", "yes", "no"], [[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]])
    server = stub(_answer(lambda body, n: (200, swapped)))
    frame = pd.DataFrame({"age": [30, 40, 50, 60], "y": ["no", "yes", "no", "yes"]})
    frame.to_parquet(tmp_path / "train.parquet")
    frame.iloc[:3].to_parquet(tmp_path / "test.parquet")
    options = ConstructorOptions(
        target_column="y", task_type="binary_classification", model_endpoint=server.url, model_name="m"
    )
    with pytest.raises(RAIInputError, match=r"probability columns do not follow the classes \['no', 'yes'\]"):
        run_constructor(None, tmp_path / "train.parquet", tmp_path / "test.parquet", tmp_path / "c", options=options)


def test_a_regressor_asks_for_its_values_alone(stub):
    seen: list[Any] = []

    def post(body: Any, n: int) -> tuple[int, Any]:
        seen.append(body)
        values = [1.5, 2.25, 3.0]
        return 200, {"outputs": [{"name": "predict", "shape": [3], "datatype": "FP64", "data": values}]}

    model = connect(Endpoint(stub(_answer(post)).url, name="m"), classifier=False)
    assert not hasattr(model, "predict_proba") and not hasattr(model, "classes_")
    np.testing.assert_array_equal(model.predict(ROWS), [1.5, 2.25, 3.0])
    assert seen[0]["outputs"] == [{"name": "predict"}]


def test_a_merged_steps_calls_are_its_shards_sums():
    from rai_audit.core.served_model import summed_calls

    shard = {"endpoint": "http://m", "protocol": "v2", "calls": 3, "rows": 30, "retries": 1}
    metas = [{"model_calls": shard}, {"model_calls": {**shard, "calls": 2, "retries": 0}}]
    assert summed_calls(metas) == {**shard, "calls": 5, "rows": 60, "retries": 1, "shards": 2}
    assert summed_calls([{"kind": "explanation"}]) is None  # a model file: nothing recorded
