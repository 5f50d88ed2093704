"""Scheduled audits: the flows' pipelines, recurring runs on KFP, and the baseline comparison."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import joblib
import pandas as pd
import pytest
import yaml
from pypdf import PdfReader
from sklearn.metrics import accuracy_score

from rai_audit import archive
from rai_audit.cli import main
from rai_audit.demo import prepare_demo
from rai_audit.pipelines import PIPELINE_OPTIONS
from rai_audit.storage import ENV_ACCESS, ENV_ENDPOINT, ENV_SECRET, storage_down, storage_up
from support import REPO

RECORDED = Path(__file__).parent / "data" / "kfp_api"


def _dag_tasks(name: str) -> set[str]:
    spec = next(yaml.safe_load_all((REPO / "pipelines" / f"{name}_pipeline.yaml").read_text()))
    tasks = set(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():  # tasks inside dsl.If / ParallelFor
        tasks |= set(component.get("dag", {}).get("tasks", {}))
    return {t for t in tasks if not t.startswith(("condition-", "for-loop-"))}


@pytest.mark.parametrize(
    "name, expected",
    [
        ("overview_error_analysis", {"error-analysis"}),
        ("overview_fairness", set()),
        ("data_analysis_causal", {"causal"}),
        ("interpretability_causal", {"explainer", "causal"}),
        ("error_analysis_counterfactuals", {"error-analysis", "counterfactual"}),
    ],
)
def test_each_flow_has_its_own_compiled_pipeline(name, expected):
    base = {"importer", "importer-2", "importer-3", "fingerprint-inputs", "constructor", "gather", "scorecard"}
    assert _dag_tasks(name) == base | expected
    assert PIPELINE_OPTIONS[name]["with_scorecard"]


def test_the_full_audit_compares_with_the_archive_and_never_reuses_stale_inputs():
    spec = next(yaml.safe_load_all((REPO / "pipelines" / "audit_pipeline.yaml").read_text()))
    tasks = spec["root"]["dag"]["tasks"]
    # Same URIs, new model and data behind them: the content's fingerprint, taken in every run
    # (uncached), keys the constructor's cache, so the constructor and the analyses are
    # reused only for unchanged content; the imports reuse a URI's artifact (reimport=False).
    for name in ("importer", "importer-2", "importer-3"):
        assert (
            spec["deploymentSpec"]["executors"][tasks[name]["componentRef"]["name"].replace("comp-", "exec-")][
                "importer"
            ].get("reimport", False)
            is False
        )
        assert (
            tasks["fingerprint-inputs"]["inputs"]["artifacts"][
                {"importer": "model", "importer-2": "train_data", "importer-3": "test_data"}[name]
            ]["taskOutputArtifact"]["producerTask"]
            == name
        )
    assert tasks["fingerprint-inputs"]["cachingOptions"] == {}
    assert tasks["constructor"]["inputs"]["parameters"]["input_fingerprint"]["taskOutputParameter"] == {
        "outputParameterKey": "Output",
        "producerTask": "fingerprint-inputs",
    }
    assert tasks["constructor"]["cachingOptions"] == {"enableCache": True}
    assert tasks["error-analysis"]["cachingOptions"] == {"enableCache": True}
    # The baseline lookup and gather (which names the run) run in every run.
    assert tasks["find-baseline"]["cachingOptions"] == {} and tasks["gather"]["cachingOptions"] == {}
    assert (
        tasks["scorecard"]["inputs"]["artifacts"]["baseline"]["taskOutputArtifact"]["producerTask"] == "find-baseline"
    )
    stamped = tasks["gather"]["inputs"]["parameters"]
    assert stamped["pipeline_run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    assert stamped["pipeline_run_scheduled_at"]["runtimeValue"]["constant"] == "{{$.pipeline_job_schedule_time_utc}}"


def test_checked_in_argo_manifests_are_up_to_date(monkeypatch):
    monkeypatch.delenv("RAI_AUDIT_IMAGE_REGISTRY", raising=False)
    monkeypatch.delenv("RAI_AUDIT_IMAGE_TAG", raising=False)
    from rai_audit.argo import argo_yaml

    for name, text in argo_yaml(PIPELINE_OPTIONS["audit"]["steps"]).items():
        assert (REPO / "pipelines" / "argo" / name).read_text() == text, (
            f"pipelines/argo/{name} is stale: run `make compile` and commit it"
        )


# --- rai-audit schedule --------------------------------------------------------------------


class _RecordedKFP(BaseHTTPRequestHandler):
    """Answers the KFP v2beta1 calls `rai-audit schedule` makes with recorded responses."""

    requests: list = []

    def _reply(self, name: str, merged: dict | None = None) -> None:
        body = json.loads((RECORDED / name).read_text()) | (merged or {})
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.requests.append(("GET", self.path, None))
        path = urlparse(self.path).path
        self._reply(
            {"/apis/v2beta1/healthz": "healthz.json", "/apis/v2beta1/experiments": "experiments_none.json"}[path]
        )

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, body))
        if self.path == "/apis/v2beta1/experiments":
            self._reply("experiment_created.json", {"display_name": body["display_name"]})
        else:
            self._reply("recurring_run_created.json", {k: body[k] for k in ("display_name", "trigger")})

    def log_message(self, *args):
        pass


@pytest.fixture
def kfp_server():
    _RecordedKFP.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordedKFP)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _RecordedKFP.requests
    server.shutdown()


SCHEDULED_CONFIG = {
    "model": "s3://models/adult/model.joblib",
    "train_data": "s3://data/adult/train.parquet",
    "test_data": "s3://data/adult/test.parquet",
    "target_column": "income",
    "task_type": "binary_classification",
    "positive_label": ">50K",
    "sensitive_features": ["sex"],
    "scorecard": {"config": {"targets": ["accuracy_score >= 0.85"], "changes": ["accuracy_score change >= -0.01"]}},
    "publish": {"model_name": "adult", "model_version": "4"},
}


def test_schedule_sends_exactly_the_dry_run_request(kfp_server, tmp_path, capsys):
    host, requests = kfp_server
    config = tmp_path / "audit.yaml"
    config.write_text(yaml.safe_dump(SCHEDULED_CONFIG))
    args = [
        "schedule",
        str(config),
        "--host",
        host,
        "--name",
        "adult nightly",
        "--cron",
        "0 0 3 * * *",
        "--pipeline",
        str(REPO / "pipelines" / "audit_pipeline.yaml"),
    ]
    assert main([*args, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    first_line, body_text = printed.split("\n", 1)
    assert first_line == f"POST {host}/apis/v2beta1/recurringruns"
    dry = json.loads(body_text)
    assert requests == []  # a dry run contacts no server

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "recurring run 'adult nightly' created: 0b9d6f0e-71a5-4f26-8d0c-6c1e3c2a9b10" in out
    assert [(m, urlparse(p).path) for m, p, _ in requests] == [
        ("GET", "/apis/v2beta1/healthz"),
        ("GET", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/recurringruns"),
    ]
    sent = requests[-1][2]
    assert sent["experiment_id"] == "5f2a7c1e-0d2b-4a8e-9c61-3e8d2f0b7a44"  # the created experiment's
    assert sent == dry | {"experiment_id": sent["experiment_id"]}
    assert sent["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert sent["no_catchup"] is True and sent["max_concurrency"] == 1 and sent["mode"] == "ENABLE"
    compiled = list(yaml.safe_load_all((REPO / "pipelines" / "audit_pipeline.yaml").read_text()))
    assert sent["pipeline_spec"] == {"pipeline_spec": compiled[0], "platform_spec": compiled[1]}
    parameters = sent["runtime_config"]["parameters"]
    assert parameters["model_uri"] == "s3://models/adult/model.joblib"
    # The config's normal form (checked before scheduling), without nulls (KFP refuses them).
    assert parameters["scorecard_config"]["changes"] == [{"metric": "accuracy_score", "op": ">=", "value": -0.01}]
    assert parameters["publish_model_name"] == "adult"


def test_schedule_by_interval_with_catch_up(kfp_server, tmp_path, capsys):
    host, _ = kfp_server
    config = tmp_path / "audit.yaml"
    config.write_text(yaml.safe_dump(SCHEDULED_CONFIG))
    assert (
        main(
            [
                "schedule",
                str(config),
                "--interval",
                "86400",
                "--max-concurrency",
                "2",
                "--catch-up",
                "--dry-run",
                "--host",
                host,
            ]
        )
        == 0
    )
    body = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert body["trigger"] == {"periodic_schedule": {"interval_second": "86400"}} or body["trigger"] == {
        "periodic_schedule": {"interval_second": 86400}
    }
    assert body["no_catchup"] is False and body["max_concurrency"] == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--cron", "0 3 * * *"], "6 fields"),
        (["--interval", "0"], "--interval must be a number of seconds >= 1"),
        (["--cron", "0 0 3 * * *", "--max-concurrency", "0"], "--max-concurrency must be >= 1"),
        (["--cron", "0 0 3 * * *", "--pipeline", "missing.yaml"], "compiled pipeline missing.yaml does not exist"),
    ],
)
def test_schedule_refuses_bad_settings(tmp_path, capsys, extra, message):
    config = tmp_path / "audit.yaml"
    config.write_text(yaml.safe_dump(SCHEDULED_CONFIG))
    assert main(["schedule", str(config), "--dry-run", *extra]) == 2
    assert message in capsys.readouterr().err


def test_schedule_refuses_local_files(tmp_path, capsys):
    (tmp_path / "m.joblib").write_bytes(b"x")
    config = tmp_path / "audit.yaml"
    config.write_text(yaml.safe_dump(SCHEDULED_CONFIG | {"model": "m.joblib"}))
    assert main(["schedule", str(config), "--cron", "0 0 3 * * *", "--dry-run"]) == 2
    assert "cannot read local files: give ['model'] as s3://" in capsys.readouterr().err


# --- baseline comparison: two consecutive audits of the demo model ---------------------------


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seaweedfs")
    settings = storage_up(folder)
    yield settings
    storage_down(folder)


def _scorecard_of(output: Path) -> tuple[dict, Path]:
    [card] = output.glob("pipeline_root/*/scorecard/scorecard")
    return json.loads((card / "scorecard.json").read_text()), card


def test_two_consecutive_audits_report_the_changes(seaweedfs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV_ENDPOINT, seaweedfs.endpoint)
    monkeypatch.setenv(ENV_ACCESS, seaweedfs.access_key)
    monkeypatch.setenv(ENV_SECRET, seaweedfs.secret_key)
    demo = prepare_demo(tmp_path / "inputs")
    test = pd.read_parquet(demo["test_data"]).head(4000)
    test.to_parquet(tmp_path / "week1.parquet", index=False)
    # The second week's test set shifts toward married people, on whom the model errs more.
    shifted = test[test["marital-status"] == "Married-civ-spouse"]
    shifted.to_parquet(tmp_path / "week2.parquet", index=False)
    model = joblib.load(demo["model"])
    accuracy = [accuracy_score(t["income"], model.predict(t.drop(columns=["income"]))) for t in (test, shifted)]
    assert accuracy[1] - accuracy[0] < -0.01  # the shift really costs accuracy

    card_config = {
        "targets": ["accuracy_score >= 0.7"],
        "fairness": {"sensitive_features": ["sex"], "metrics": ["selection_rate"]},
        "changes": ["accuracy_score change >= -0.01", "selection_rate ratio change >= -0.5"],
    }
    cards = []
    for week in ("week1", "week2"):
        config = {
            "model": demo["model"],
            "allow_pickle": True,
            "train_data": demo["train_data"],
            "test_data": str(tmp_path / f"{week}.parquet"),
            "target_column": "income",
            "task_type": "binary_classification",
            "positive_label": ">50K",
            "sensitive_features": ["sex"],
            "scorecard": {"config": card_config, "bootstrap": 0},
            "publish": {"model_name": "adult-demo", "model_version": week, "bucket": "audits"},
        }
        (tmp_path / f"{week}.yaml").write_text(yaml.safe_dump(config))
        assert main(["run", str(tmp_path / f"{week}.yaml"), "--output", str(tmp_path / week)]) == 0
        cards.append(_scorecard_of(tmp_path / week))
    capsys.readouterr()
    (first, first_dir), (second, second_dir) = cards

    # The first audit of the model has no baseline and says so; its change targets are not judged.
    assert first["baseline"] is None and "the first audit of model 'adult-demo'" in first["no_baseline_reason"]
    assert [t["verdict"] for t in first["change_targets"]] == ["NO BASELINE", "NO BASELINE"]
    assert first["passed"] is True and first["n_targets"] == 1
    first_text = "".join(p.extract_text() for p in PdfReader(first_dir / "scorecard.pdf").pages)
    assert "none: the first audit of model 'adult-demo'" in first_text

    # The second is compared with the first, found in the archive.
    [archived_first, _] = archive.list_audits(seaweedfs, "audits", model="adult-demo")
    assert second["baseline"]["run_id"] == first["run_id"]
    assert second["baseline"]["audit"] == archived_first["audit"]
    change = next(
        c for c in second["changes"] if (c["metric"], c["kind"], c["cohort"]) == ("accuracy_score", None, None)
    )
    assert change["baseline"] == pytest.approx(accuracy[0], abs=1e-12)
    assert change["current"] == pytest.approx(accuracy[1], abs=1e-12)
    assert change["change"] == pytest.approx(accuracy[1] - accuracy[0], abs=1e-12)
    accuracy_target, ratio_target = second["change_targets"]
    assert accuracy_target["verdict"] == "FAIL" and accuracy_target["measured"] == pytest.approx(change["change"])
    ratio = next(
        c for c in second["changes"] if (c["metric"], c["kind"], c["feature"]) == ("selection_rate", "ratio", "sex")
    )
    assert ratio_target["measured"] == ratio["change"]
    assert ratio_target["verdict"] == ("PASS" if ratio["change"] >= -0.5 else "FAIL")
    assert second["passed"] is False and second["n_missed"] >= 1
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(second_dir / "scorecard.pdf").pages).split())
    assert "Changes since the baseline audit" in text and f"audit run {first['run_id']}" in text
    assert "change of accuracy_score since the baseline >= -0.01" in text

    # Each run's id and name are stamped into its bundle and scorecard.
    [bundle] = (tmp_path / "week2").glob("pipeline_root/*/gather/dashboard")
    stamped = json.loads((bundle / "insights.json").read_text())["pipeline_run"]
    assert stamped["name"].startswith("rai-audit") and stamped["id"]
    assert second["pipeline_run"] == stamped
    assert f"Pipeline run {stamped['name']}" in text
