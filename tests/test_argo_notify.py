"""The notify step as the Argo WorkflowTemplate's exit handler: its template, and its command
line as written, run on a failing scorecard against a webhook on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import re
import threading

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from rai_audit.argo import NOTIFY_FLAGS, argo_yaml
from rai_audit.cli import main
from rai_audit.specs import ScorecardOptions
from rai_audit.steps.scorecard import run_scorecard
from support import build_bundle, encoded_model, write_case


def _template(**options):
    return yaml.safe_load(argo_yaml(["error_analysis"], notify=True, **options)["workflow-template.yaml"])


def test_the_exit_handler_template():
    spec = _template()["spec"]
    assert spec["onExit"] == "notify"
    (handler,) = [t for t in spec["templates"] if t["name"] == "notify"]
    container = handler["container"]
    assert container["command"] == ["rai-audit"] and container["args"][0] == "notify"
    assert container["image"].split("/")[-1].startswith("scorecard:")  # the scorecard's image
    # The URL from the secret only (optional: without it nothing is posted), never a parameter.
    assert container["env"] == [
        {
            "name": "RAI_AUDIT_WEBHOOK_URL",
            "valueFrom": {"secretKeyRef": {"name": "rai-audit-webhook", "key": "url", "optional": True}},
        }
    ]
    parameters = {p["name"]: p for p in spec["arguments"]["parameters"]}
    assert not [n for n in parameters if "webhook" in n]
    assert parameters["notify_on"]["value"] == "every_failure"  # no baseline in the template
    assert all(parameters[p.name].get("description") for _, p in NOTIFY_FLAGS)
    # It reads the scorecard where the scorecard task wrote it; a run that failed before has none.
    (card,) = handler["inputs"]["artifacts"]
    (scorecard_task,) = [t for t in spec["templates"] if t["name"] == "scorecard"]
    assert card["s3"]["key"] == scorecard_task["outputs"]["artifacts"][0]["s3"]["key"]
    assert card["optional"] is True
    # Without notify, no exit handler and no notify parameters.
    plain = yaml.safe_load(argo_yaml(["error_analysis"])["workflow-template.yaml"])["spec"]
    assert "onExit" not in plain and not [p for p in plain["arguments"]["parameters"] if p["name"].startswith("notify")]


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received = []
    url = f"http://127.0.0.1:{server.server_port}/hook/secret-token"
    monkeypatch.setenv("RAI_AUDIT_WEBHOOK_URL", url)
    yield url
    server.shutdown()


@pytest.fixture(scope="module")
def failing_card(tmp_path_factory):
    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"x": rng.normal(size=300), "group": rng.choice(["a", "b"], size=300)})
    frame["label"] = np.where(frame["x"] + rng.normal(size=300) > 0, "yes", "no")
    model = encoded_model(["group"], ["x"], LogisticRegression()).fit(frame.drop(columns="label"), frame["label"])
    folder = tmp_path_factory.mktemp("argo_notify")
    case = write_case(
        folder / "case",
        model,
        frame.iloc[:200],
        frame.iloc[200:],
        target="label",
        task_type="binary_classification",
        sensitive=["group"],
        positive_label="yes",
    )
    bundle, _ = build_bundle(case, folder / "bundle")
    config = {"model": {"name": "argo-model"}, "targets": ["accuracy_score >= 0.999"]}
    run_scorecard(bundle / "dashboard", config, folder / "scorecard", options=ScorecardOptions(bootstrap=0))
    return folder / "scorecard"


def test_the_exit_handlers_command_posts_a_failing_audit(failing_card, webhook, tmp_path, capsys):
    spec = _template()["spec"]
    (handler,) = [t for t in spec["templates"] if t["name"] == "notify"]
    defaults = {p["name"]: p.get("value", "") for p in spec["arguments"]["parameters"]}
    # The command line as Argo gives it: the workflow's parameters, the container's paths here.
    args = [
        re.sub(r"\{\{workflow\.parameters\.(\w+)\}\}", lambda m: defaults[m.group(1)], a)
        .replace("/rai/in/scorecard", str(failing_card))
        .replace("/rai/out/notification", str(tmp_path / "notification"))
        for a in handler["container"]["args"]
    ]
    assert main(args) == 0
    (payload,) = _Hook.received
    assert "FAIL" in json.dumps(payload) and "argo-model" in json.dumps(payload)
    record = json.loads((tmp_path / "notification" / "notification.json").read_text())
    assert record["sent"] is True
    out = capsys.readouterr()
    assert "secret-token" not in out.out + out.err + json.dumps(record)
