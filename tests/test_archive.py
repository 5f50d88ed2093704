"""Object storage for real: a SeaweedFS server started on 127.0.0.1 (free ports) by the tests.

An audit run reads its model and data from s3:// URIs. An audit (the Adult bundle and a
scorecard on it) is published, listed, fetched, diffed and verified as a risk officer
would; every fetched file is compared byte for byte with the published one; a byte flipped
in the archive is caught; publishing the same run again changes nothing; stopping the
server for real in the middle of a publish leaves no audit listed, and publishing again
completes that one; object-lock retention refuses deletion; read-only credentials suffice
to list, fetch, verify and link; the credentials appear in no log, compiled pipeline or output.
"""

from __future__ import annotations

import hashlib
import io
import json
import urllib.request

import pandas as pd
import pytest
import yaml

from rai_audit import archive
from rai_audit.cli import main
from rai_audit.core import ArtifactIntegrityError, RAIInputError
from rai_audit.steps.gather import run_gather
from rai_audit.steps.scorecard import ScorecardOptions, run_scorecard
from rai_audit.storage import (
    CREDENTIALS_FILE,
    ENV_ACCESS,
    ENV_ENDPOINT,
    ENV_SECRET,
    S3Settings,
    download,
    parse_s3_uri,
    settings_from_env,
    storage_down,
    storage_up,
)
from support import Case

BUCKET = "audit-archive"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seaweedfs")
    settings = storage_up(folder)
    yield folder, settings
    storage_down(folder)


@pytest.fixture(scope="module")
def audit(adult_bundle, tmp_path_factory):
    folder, _ = adult_bundle
    card = tmp_path_factory.mktemp("card") / "scorecard"
    run_scorecard(
        folder / "dashboard", {"targets": ["accuracy_score >= 0.5"]}, card, options=ScorecardOptions(bootstrap=0)
    )
    return folder / "dashboard", card


@pytest.fixture
def env(server, monkeypatch):
    folder, settings = server
    monkeypatch.setenv(ENV_ENDPOINT, settings.endpoint)
    monkeypatch.setenv(ENV_ACCESS, settings.access_key)
    monkeypatch.setenv(ENV_SECRET, settings.secret_key)
    return settings


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_server_is_local_with_generated_credentials_kept_out_of_sight(server):
    folder, settings = server
    assert settings.endpoint.startswith("http://127.0.0.1:")
    assert (folder / CREDENTIALS_FILE).stat().st_mode & 0o077 == 0  # owner only
    assert settings.secret_key not in repr(settings) and len(settings.secret_key) >= 30
    assert storage_up(folder).endpoint == settings.endpoint  # a second `up` finds the running server


def test_publish_list_fetch_verify_link_as_a_risk_officer(env, audit, tmp_path, capsys):
    bundle, card = audit
    prefix = archive.publish_audit(
        env, BUCKET, bundle_dir=bundle, scorecard_dir=card, model_name="adult", model_version="1", pipeline_run="run-42"
    )
    run_id = json.loads((bundle / "meta.json").read_text())["run_id"]
    assert prefix.startswith("audits/adult/1/") and prefix.endswith(f"-{run_id}")
    # the same run again: nothing new
    assert (
        archive.publish_audit(env, BUCKET, bundle_dir=bundle, scorecard_dir=card, model_name="adult", model_version="1")
        == prefix
    )
    listed = archive.list_audits(env, BUCKET, model="adult")
    assert [a["audit"] for a in listed] == [prefix] and listed[0]["passed"] is True
    assert archive.list_audits(env, BUCKET, model="adult", passed=False) == []

    assert main(["audits", "fetch", prefix, "--bucket", BUCKET, "--to", str(tmp_path / "got")]) == 0
    got = tmp_path / "got"
    assert _files(got / "dashboard") == _files(bundle)
    assert _files(got / "scorecard") == _files(card)
    manifest = json.loads((got / "manifest.json").read_text())
    assert manifest["run_id"] == run_id and manifest["pipeline_run"] == "run-42"
    assert main(["audits", "verify", prefix, "--bucket", BUCKET]) == 0
    assert main(["audits", "link", prefix, "--bucket", BUCKET, "--hours", "1"]) == 0
    url = capsys.readouterr().out.strip().splitlines()[-1]
    with urllib.request.urlopen(url) as response:  # the presigned URL serves the PDF to anyone holding it
        assert response.read() == (card / "scorecard.pdf").read_bytes()
    out = capsys.readouterr()
    assert env.secret_key not in out.out + out.err and env.access_key not in out.out + out.err


def test_a_flipped_byte_in_the_archive_is_caught(env, audit, tmp_path, capsys):
    bundle, card = audit
    prefix = archive.publish_audit(env, BUCKET, bundle_dir=bundle, model_name="tampered", model_version="1")
    client = env.client()
    key = f"{prefix}/dashboard/insights.json"
    data = bytearray(client.get_object(BUCKET, key).read())
    data[100] ^= 1
    client.put_object(BUCKET, key, io.BytesIO(bytes(data)), len(data))
    with pytest.raises(ArtifactIntegrityError, match="insights.json of audit .* does not match its manifest"):
        archive.fetch_audit(env, BUCKET, prefix, tmp_path / "got")
    assert not (tmp_path / "got").exists() and not list(tmp_path.glob(".partial-*"))
    assert main(["audits", "verify", prefix, "--bucket", BUCKET]) == 2
    assert "does not match its manifest" in capsys.readouterr().err


def test_stopping_the_server_mid_publish_leaves_no_audit_and_the_rerun_completes_it(audit, tmp_path, monkeypatch):
    """A server of its own, stopped for real after the third file of the publish."""
    bundle, card = audit
    settings = storage_up(tmp_path / "store")
    client_type = type(settings.client())
    real_upload = client_type.fput_object
    uploaded = []

    def upload_then_stop(self, *args, **kwargs):
        result = real_upload(self, *args, **kwargs)
        uploaded.append(args[1])
        if len(uploaded) == 3:
            storage_down(tmp_path / "store")
        return result

    try:
        monkeypatch.setattr(client_type, "fput_object", upload_then_stop)
        with pytest.raises(Exception):  # noqa: B017 the storage went away: urllib3 gives up after its retries
            archive.publish_audit(
                settings, BUCKET, bundle_dir=bundle, scorecard_dir=card, model_name="midway", model_version="1"
            )
        monkeypatch.setattr(client_type, "fput_object", real_upload)
        settings = storage_up(tmp_path / "store")  # same data, new ports
        assert archive.list_audits(settings, BUCKET, model="midway") == []  # 3 files, no manifest: invisible
        prefix = archive.publish_audit(
            settings, BUCKET, bundle_dir=bundle, scorecard_dir=card, model_name="midway", model_version="1"
        )
        assert prefix.rsplit("/", 1)[0] + "/" == "audits/midway/1/" and uploaded[0].startswith(prefix)
        assert [a["audit"] for a in archive.list_audits(settings, BUCKET, model="midway")] == [prefix]
        archive.verify_audit(settings, BUCKET, prefix)
    finally:
        storage_down(tmp_path / "store")


def test_manifest_paths_cannot_leave_the_target_folder(env, audit, tmp_path):
    bundle, _ = audit
    prefix = archive.publish_audit(env, BUCKET, bundle_dir=bundle, model_name="escape", model_version="1")
    client = env.client()
    manifest = json.loads(client.get_object(BUCKET, f"{prefix}/manifest.json").read())
    manifest["files"]["../outside.txt"] = {"sha256": "0" * 64, "size": 1}
    data = json.dumps(manifest).encode()
    client.put_object(BUCKET, f"{prefix}/manifest.json", io.BytesIO(data), len(data))
    with pytest.raises(ArtifactIntegrityError, match="would leave the target folder"):
        archive.fetch_audit(env, BUCKET, prefix, tmp_path / "got")
    assert not (tmp_path / "outside.txt").exists()


def test_configuration_errors_are_clear(monkeypatch):
    for name in (ENV_ENDPOINT, ENV_ACCESS, ENV_SECRET, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RAIInputError, match=r"object storage is not configured: set \['RAI_AUDIT_S3_ENDPOINT'"):
        settings_from_env()
    assert parse_s3_uri("s3://bucket/a/b.parquet") == ("bucket", "a/b.parquet")
    with pytest.raises(RAIInputError, match="expected an s3://bucket/key URI"):
        parse_s3_uri("https://bucket/a")


def test_storage_down_stops_the_server_and_keeps_the_data(tmp_path):
    settings = storage_up(tmp_path)
    client = settings.client()
    client.make_bucket("kept")
    client.put_object("kept", "x.txt", io.BytesIO(b"still here"), 10)
    assert storage_down(tmp_path) is True
    assert storage_down(tmp_path) is False
    again = storage_up(tmp_path)
    try:
        assert again.client().get_object("kept", "x.txt").read() == b"still here"
    finally:
        storage_down(tmp_path)


def test_diff_of_two_audits_of_a_model(env, audit, adult_case, tmp_path, capsys):
    before_bundle, before_card = audit
    # a later audit: the same model on another test sample
    test = pd.read_parquet(adult_case.test).iloc[:4000]
    test.to_parquet(tmp_path / "test.parquet", index=False)
    later = Case(**{**adult_case.__dict__, "test": tmp_path / "test.parquet"})
    later.construct(tmp_path / "constructor")
    run_gather(tmp_path / "constructor", [], tmp_path / "dashboard")
    config = {"targets": ["accuracy_score >= 0.5"]}
    run_scorecard(tmp_path / "dashboard", config, tmp_path / "card", options=ScorecardOptions(bootstrap=0))
    first = archive.publish_audit(
        env, BUCKET, bundle_dir=before_bundle, scorecard_dir=before_card, model_name="diffed", model_version="1"
    )
    second = archive.publish_audit(
        env,
        BUCKET,
        bundle_dir=tmp_path / "dashboard",
        scorecard_dir=tmp_path / "card",
        model_name="diffed",
        model_version="2",
    )
    changes = archive.diff_audits(env, BUCKET, first, second)
    old = json.loads((before_bundle / "insights.json").read_text())["model_overview"]["overall"]
    new = json.loads((tmp_path / "dashboard" / "insights.json").read_text())["model_overview"]["overall"]
    accuracy = changes["metrics"]["accuracy_score"]
    assert (accuracy["before"], accuracy["after"]) == (old["accuracy_score"], new["accuracy_score"])
    assert accuracy["change"] == pytest.approx(new["accuracy_score"] - old["accuracy_score"])
    [target] = changes["targets"]
    assert target["target"] == "accuracy_score >= 0.5" and target["verdict_after"] == "PASS"
    assert target["after"] == pytest.approx(new["accuracy_score"])
    assert main(["audits", "diff", first, second, "--bucket", BUCKET]) == 0
    assert f"accuracy_score: {old['accuracy_score']:.4g} -> {new['accuracy_score']:.4g}" in capsys.readouterr().out


def test_run_reads_model_and_data_from_s3_uris(env, insurance_case, tmp_path, capsys):
    client = env.client()
    if not client.bucket_exists("inputs"):
        client.make_bucket("inputs")
    uris = {}
    for key, path in (
        ("model", insurance_case.model),
        ("train_data", insurance_case.train),
        ("test_data", insurance_case.test),
    ):
        client.fput_object("inputs", f"insurance/{key}/{path.name}", str(path))
        uris[key] = f"s3://inputs/insurance/{key}/{path.name}"
    config = {
        **uris,
        "allow_pickle": True,
        "target_column": "charges",
        "task_type": "regression",
        "sensitive_features": ["sex"],
    }
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "audit.yaml"), "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    bundle = next(
        line.removeprefix("dashboard bundle: ") for line in out.splitlines() if line.startswith("dashboard bundle: ")
    )
    doc = json.loads((tmp_path / "out" / bundle / "insights.json").read_text())
    assert doc["data"]["n_test"] == len(pd.read_parquet(insurance_case.test))
    assert (
        tmp_path / "out" / "inputs" / "model" / insurance_case.model.name
    ).read_bytes() == insurance_case.model.read_bytes()
    assert env.secret_key not in out
    with pytest.raises(RAIInputError, match=r"cannot read s3://inputs/missing.parquet: NoSuchKey"):
        download("s3://inputs/missing.parquet", tmp_path / "nothing", env)


def test_credentials_appear_in_no_log_or_compiled_pipeline(server, env, tmp_path, capsys):
    folder, settings = server
    secrets = (settings.access_key, settings.secret_key)
    log = (folder / "weed.log").read_text(errors="replace")
    assert not any(s in log for s in secrets)
    for pipeline in ("audit", "overview"):
        assert main(["compile", "--pipeline", pipeline, "--output", str(tmp_path / f"{pipeline}.yaml")]) == 0
        assert not any(s in (tmp_path / f"{pipeline}.yaml").read_text() for s in secrets)
    out = capsys.readouterr()
    assert not any(s in out.out + out.err for s in secrets)


def test_object_lock_retention_refuses_deletion(env, audit):
    from minio.error import S3Error

    bundle, _ = audit
    prefix = archive.publish_audit(
        env,
        "locked-audits",
        bundle_dir=bundle,
        model_name="worm",
        model_version="1",
        retention_mode="compliance",
        retention_days=1,
    )
    client = env.client()
    key = f"{prefix}/manifest.json"
    version = client.stat_object("locked-audits", key).version_id
    assert client.get_object_retention("locked-audits", key).mode == "COMPLIANCE"
    with pytest.raises(S3Error, match="AccessDenied"):
        client.remove_object("locked-audits", key, version_id=version)
    assert [a["audit"] for a in archive.list_audits(env, "locked-audits")] == [prefix]
    if not client.bucket_exists(BUCKET):
        client.make_bucket(BUCKET)  # without object lock
    with pytest.raises(RAIInputError, match=f"bucket '{BUCKET}' has no object lock"):
        archive.publish_audit(
            env,
            BUCKET,
            bundle_dir=bundle,
            model_name="worm",
            model_version="2",
            retention_mode="governance",
            retention_days=1,
        )


def test_the_pipeline_publishes_its_audit(env, insurance_case, tmp_path, capsys):
    """`rai-audit run` with `publish`: the pipeline's last step archives bundle and scorecard."""
    config = {
        "model": str(insurance_case.model),
        "allow_pickle": True,
        "train_data": str(insurance_case.train),
        "test_data": str(insurance_case.test),
        "target_column": "charges",
        "task_type": "regression",
        "scorecard": {"config": {"targets": ["r2_score >= 0.5"]}, "bootstrap": 0},
        "publish": {"model_name": "insurance", "model_version": "7", "bucket": BUCKET},
    }
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "audit.yaml"), "--output", str(tmp_path / "out")]) == 0
    [published] = archive.list_audits(env, BUCKET, model="insurance", version="7")
    manifest = archive.verify_audit(env, BUCKET, published["audit"])
    assert "scorecard/scorecard.pdf" in manifest["files"] and manifest["pipeline_run"]
    out = capsys.readouterr()
    assert env.secret_key not in out.out + out.err


def test_compiled_pipeline_keeps_its_artifacts_in_object_storage(tmp_path, capsys):
    out = tmp_path / "audit.yaml"
    assert (
        main(
            [
                "compile",
                "--pipeline",
                "audit",
                "--output",
                str(out),
                "--pipeline-root",
                "minio://rai-audit/pipeline-root",
            ]
        )
        == 0
    )
    spec, _ = yaml.safe_load_all(out.read_text())
    assert spec["defaultPipelineRoot"] == "minio://rai-audit/pipeline-root"
    assert main(["compile", "--pipeline", "audit", "--output", str(out), "--pipeline-root", "/local/folder"]) == 2
    assert "`pipeline_root` must be an s3://, minio:// or gs:// URI" in capsys.readouterr().err


def test_read_only_credentials_suffice_for_a_risk_officer(server, env, audit, tmp_path):
    from minio.error import S3Error

    from rai_audit.storage import READ_ONLY_CREDENTIALS_FILE, _read_env

    folder, _ = server
    bundle, card = audit
    prefix = archive.publish_audit(
        env, BUCKET, bundle_dir=bundle, scorecard_dir=card, model_name="read-only", model_version="1"
    )
    reader = settings_from_env(_read_env(folder / READ_ONLY_CREDENTIALS_FILE))
    assert reader.access_key != env.access_key
    assert [a["audit"] for a in archive.list_audits(reader, BUCKET, model="read-only")] == [prefix]
    archive.fetch_audit(reader, BUCKET, prefix, tmp_path / "got")
    archive.verify_audit(reader, BUCKET, prefix)
    assert archive.link_audit(reader, BUCKET, prefix).startswith(reader.endpoint)
    with pytest.raises(S3Error, match="AccessDenied"):
        reader.client().put_object(BUCKET, f"{prefix}/extra.txt", io.BytesIO(b"x"), 1)


def test_storage_that_does_not_answer_fails_clearly_after_bounded_retries(capsys):
    """A server that drops every connection: the client tries 1 + 5 times, backing off, then says so."""
    import socket
    import threading

    from rai_audit.storage import RETRIES

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    attempts = []

    def drop_connections():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            attempts.append(1)
            connection.close()

    threading.Thread(target=drop_connections, daemon=True).start()
    settings = S3Settings(f"http://127.0.0.1:{listener.getsockname()[1]}", "ACCESSKEYX", "never-shown-secret")
    try:
        with pytest.raises(
            RAIInputError,
            match=r"object storage at http://127\.0\.0\.1:\d+ did not answer after "
            r"5 tries with backoff",
        ):
            archive.list_audits(settings, BUCKET)
    finally:
        listener.close()
    assert len(attempts) == RETRIES.total + 1
    assert "never-shown-secret" not in capsys.readouterr().err


# --- diff: every target added, removed or changed; list verifies; S3 errors in one line ----------


def _scorecard(bundle, config, folder):
    run_scorecard(bundle, config, folder, options=ScorecardOptions(bootstrap=0))
    return folder


def _adult_predictions(adult_case):
    import joblib

    test = pd.read_parquet(adult_case.test)
    predicted = joblib.load(adult_case.model).predict(test.drop(columns=adult_case.target))
    return test, test[adult_case.target].to_numpy(), predicted


def test_diff_lists_targets_added_removed_and_changed(env, audit, adult_case, tmp_path, capsys):
    """The later audit drops a failing recall target and a failing fairness target, raises the
    accuracy threshold and adds a precision target: each is visible, with its verdicts."""
    from sklearn.metrics import accuracy_score, precision_score, recall_score

    bundle, _ = audit
    test, truth, predicted = _adult_predictions(adult_case)
    accuracy, recall = accuracy_score(truth, predicted), recall_score(truth, predicted, pos_label=">50K")
    precision = precision_score(truth, predicted, pos_label=">50K")
    rates = pd.Series(predicted == ">50K").groupby(test["sex"].to_numpy()).mean()
    assert recall < 0.99 and accuracy < 0.99 and rates.min() / rates.max() < 0.99  # the FAILs below, by hand

    earlier = _scorecard(
        bundle,
        {
            "targets": ["accuracy_score >= 0.5", "recall_score >= 0.99"],
            "fairness": {"sensitive_features": ["sex"], "targets": ["selection_rate ratio >= 0.99"]},
        },
        tmp_path / "earlier",
    )
    later = _scorecard(bundle, {"targets": ["accuracy_score >= 0.99", "precision_score >= 0.1"]}, tmp_path / "later")
    first = archive.publish_audit(
        env, BUCKET, bundle_dir=bundle, scorecard_dir=earlier, model_name="diff-targets", model_version="1"
    )
    second = archive.publish_audit(
        env, BUCKET, bundle_dir=bundle, scorecard_dir=later, model_name="diff-targets", model_version="2"
    )
    changes = archive.diff_audits(env, BUCKET, first, second)
    targets = {t["target"]: t for t in changes["targets"]}
    assert set(targets) == {
        "accuracy_score >= 0.99",
        "recall_score >= 0.99",
        "selection_rate ratio across sex >= 0.99",
        "precision_score >= 0.1",
    }

    kept = targets["accuracy_score >= 0.99"]
    assert (kept["status"], kept["definition_before"], kept["definition_after"]) == ("kept", ">= 0.5", ">= 0.99")
    assert kept["definition_changed"] and kept["verdict_changed"]
    assert (kept["verdict_before"], kept["verdict_after"]) == ("PASS", "FAIL")
    assert kept["before"] == pytest.approx(accuracy) and kept["after"] == pytest.approx(accuracy)

    dropped = targets["recall_score >= 0.99"]
    assert (dropped["status"], dropped["verdict_before"], dropped["verdict_after"]) == ("removed", "FAIL", None)
    assert dropped["before"] == pytest.approx(recall) and dropped["after"] is None
    fairness = targets["selection_rate ratio across sex >= 0.99"]
    assert (fairness["status"], fairness["verdict_before"]) == ("removed", "FAIL")
    assert fairness["before"] == pytest.approx(rates.min() / rates.max())

    added = targets["precision_score >= 0.1"]
    assert (added["status"], added["verdict_before"], added["verdict_after"]) == ("added", None, "PASS")
    assert added["after"] == pytest.approx(precision)

    assert main(["audits", "diff", first, second, "--bucket", BUCKET]) == 0
    out = capsys.readouterr().out
    assert f"target REMOVED recall_score >= 0.99: was {recall:.4g}, FAIL; not judged in the later audit" in out
    assert f"target ADDED precision_score >= 0.1: {precision:.4g}, PASS" in out
    assert (
        f"target accuracy_score: {accuracy:.4g} -> {accuracy:.4g}, PASS -> FAIL (definition changed: >= 0.5 -> >= 0.99)"
    ) in out
    assert (
        "warning: 2 target(s) that FAILED in the earlier audit are gone from the later one: "
        "recall_score >= 0.99; selection_rate ratio across sex >= 0.99"
    ) in out


def _rewrite(client, key, change):
    data = change(client.get_object(BUCKET, key).read())
    client.put_object(BUCKET, key, io.BytesIO(data), len(data))


def test_list_verifies_and_never_shows_a_tampered_or_forged_audit_as_passed(env, audit, tmp_path, capsys):
    bundle, card = audit  # accuracy_score >= 0.5: PASSED
    failing = _scorecard(bundle, {"targets": ["accuracy_score >= 0.99"]}, tmp_path / "failing")
    assert json.loads((failing / "scorecard.json").read_text())["passed"] is False
    honest = archive.publish_audit(
        env, BUCKET, bundle_dir=bundle, scorecard_dir=card, model_name="listed", model_version="1"
    )
    tampered = archive.publish_audit(
        env, BUCKET, bundle_dir=bundle, scorecard_dir=card, model_name="listed", model_version="2"
    )
    forged = archive.publish_audit(
        env, BUCKET, bundle_dir=bundle, scorecard_dir=failing, model_name="listed", model_version="3"
    )
    deeper = archive.publish_audit(
        env, BUCKET, bundle_dir=bundle, scorecard_dir=failing, model_name="listed", model_version="4"
    )
    client = env.client()

    def flip(data):
        data = bytearray(data)
        data[100] ^= 1
        return bytes(data)

    def claim_passed(data):
        manifest = json.loads(data)
        manifest["passed"] = True
        return json.dumps(manifest).encode()

    _rewrite(client, f"{tampered}/dashboard/insights.json", flip)
    _rewrite(client, f"{forged}/manifest.json", claim_passed)  # a failed audit made to read PASSED
    # Deeper: the scorecard.json says passed too, and the manifest its new sha256 and size.
    forged_card = json.dumps({**json.loads((failing / "scorecard.json").read_text()), "passed": True}).encode()
    client.put_object(BUCKET, f"{deeper}/scorecard/scorecard.json", io.BytesIO(forged_card), len(forged_card))

    def claim_passed_with_card(data):
        manifest = json.loads(claim_passed(data))
        manifest["files"]["scorecard/scorecard.json"] = {
            "sha256": hashlib.sha256(forged_card).hexdigest(),
            "size": len(forged_card),
        }
        return json.dumps(manifest).encode()

    _rewrite(client, f"{deeper}/manifest.json", claim_passed_with_card)

    listed = {a["audit"]: a for a in archive.list_audits(env, BUCKET, model="listed")}
    assert listed[honest]["verified"] is True and listed[honest]["passed"] is True
    assert listed[tampered]["verified"] is False
    assert "dashboard/insights.json of audit" in listed[tampered]["problem"]
    assert listed[forged]["verified"] is False
    assert "it says passed=True, the scorecard says passed=False" in listed[forged]["problem"]
    assert listed[deeper]["verified"] is False
    assert "the scorecard's files are not those its own manifest.json lists" in listed[deeper]["problem"]
    assert [a["audit"] for a in archive.list_audits(env, BUCKET, model="listed", passed=True)] == [honest]
    assert {a["audit"] for a in archive.list_audits(env, BUCKET, model="listed", passed=False)} == {
        tampered,
        forged,
        deeper,
    }
    for bad in (tampered, forged, deeper):
        with pytest.raises(ArtifactIntegrityError, match="the archive was changed"):
            archive.verify_audit(env, BUCKET, bad)
        with pytest.raises(ArtifactIntegrityError):
            archive.fetch_audit(env, BUCKET, bad, tmp_path / "fetched")
        assert not (tmp_path / "fetched").exists()

    for flags in ([], ["--verify"]):  # verifying is the default; --verify says so explicitly
        assert main(["audits", "list", "--model", "listed", "--bucket", BUCKET, *flags]) == 2
        captured = capsys.readouterr()
        lines = {line.split()[0]: line for line in captured.out.splitlines()}
        assert "  PASSED  (" in lines[honest]
        for bad in (tampered, forged, deeper):
            assert "FAILED VERIFICATION: " in lines[bad] and "  PASSED" not in lines[bad]
        [error] = captured.err.strip().splitlines()
        assert error == "rai-audit: error: 3 of 4 audits failed verification (marked above); do not rely on them"
    # --no-verify: fast, and says the verdict is the manifest's unverified word
    assert main(["audits", "list", "--model", "listed", "--bucket", BUCKET, "--no-verify"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "PASSED (not verified)" in lines[forged] and "PASSED (not verified)" in lines[honest]


def test_s3_errors_are_one_line_naming_endpoint_bucket_and_what_to_do(server, env, audit, capsys, monkeypatch):
    from rai_audit.storage import READ_ONLY_CREDENTIALS_FILE, _read_env

    folder, _ = server
    bundle, card = audit
    reader = settings_from_env(_read_env(folder / READ_ONLY_CREDENTIALS_FILE))
    endpoint = env.endpoint
    with pytest.raises(
        RAIInputError,
        match=rf"^object storage at {endpoint} denied publishing the audit on "
        rf"bucket '{BUCKET}' \(AccessDenied\).*needs read-write credentials",
    ):
        archive.publish_audit(
            reader, BUCKET, bundle_dir=bundle, scorecard_dir=card, model_name="read-only-publish", model_version="1"
        )
    wrong_secret = S3Settings(endpoint, env.access_key, "not-the-secret-key-at-all-000000")
    with pytest.raises(
        RAIInputError,
        match=rf"^object storage at {endpoint} rejected the credentials "
        r"\(SignatureDoesNotMatch\) when listing audits: check RAI_AUDIT_S3_ACCESS_KEY",
    ):
        archive.list_audits(wrong_secret, BUCKET)
    unknown_key = S3Settings(endpoint, "raiunknownkey000", env.secret_key)
    with pytest.raises(RAIInputError, match=r"rejected the credentials \(InvalidAccessKeyId\)"):
        archive.list_audits(unknown_key, BUCKET)
    with pytest.raises(RAIInputError, match=rf"^bucket 'no-such-bucket' does not exist at {endpoint}: check --bucket"):
        archive.list_audits(env, "no-such-bucket")
    with pytest.raises(RAIInputError, match=r"bucket 'no-such-bucket' does not exist"):
        archive.verify_audit(env, "no-such-bucket", "audits/a/1/x")
    # An invalid name is refused before any request (this endpoint has no server at all).
    nowhere = S3Settings("http://127.0.0.1:9", "key", "secret")
    with pytest.raises(RAIInputError, match=r"^bucket '\.\./x' is not a valid S3 bucket name"):
        archive.list_audits(nowhere, "../x")

    # Through the command: exit 2, one line, no traceback, no secret.
    reader_env = {ENV_ENDPOINT: endpoint, ENV_ACCESS: reader.access_key, ENV_SECRET: reader.secret_key}
    for name, value in reader_env.items():
        monkeypatch.setenv(name, value)
    cases = [
        (
            [
                "publish",
                "--bundle",
                str(bundle),
                "--scorecard",
                str(card),
                "--model-name",
                "ro",
                "--model-version",
                "1",
                "--bucket",
                BUCKET,
            ],
            "denied publishing the audit",
        ),
        (["audits", "list", "--bucket", "no-such-bucket"], "bucket 'no-such-bucket' does not exist"),
        (["audits", "list", "--bucket", "../x"], "is not a valid S3 bucket name"),
        (
            ["publish", "--bundle", str(bundle), "--model-name", "ro", "--model-version", "1", "--bucket", "../x"],
            "is not a valid S3 bucket name",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        out = capsys.readouterr()
        [line] = out.err.strip().splitlines()
        assert line.startswith("rai-audit: error: ") and message in line, line
        assert reader.secret_key not in out.err + out.out
    monkeypatch.setenv(ENV_SECRET, "not-the-secret-key-at-all-000000")
    assert main(["audits", "list", "--bucket", BUCKET]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "rejected the credentials (SignatureDoesNotMatch)" in line and endpoint in line


def test_a_link_longer_than_s3_allows_is_refused_in_one_line(env, capsys):
    for hours in ("1000", "0", "-1"):
        assert main(["audits", "link", "audits/any/1/audit", "--bucket", BUCKET, "--hours", hours]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line == (
            "rai-audit: error: `hours` must be more than 0 and at most 168 (7 days, the longest an S3 "
            f"presigned URL lasts), got {hours}"
        )
