"""Re-running a failed audit with KFP caching on recomputes only what failed and publishes once.

The real audit pipeline runs under kfp.local with its cache on, archiving in a real S3
server (SeaweedFS on 127.0.0.1) that the test stops before the first run: that run
computes the constructor and the analysis, then fails where it needs object storage.
With the server back, the second run takes the constructor and the analysis from the
cache (not executed: no task folder of theirs in the run, the same constructor run id)
and runs only the baseline lookup, gather, the scorecard, publish and what follows; the
archive holds one audit of the model. A third run publishes nothing new. New test data
written to the same path (the same URI) recomputes everything and is a second audit: the
content fingerprint that keys the constructor's cache changes with one byte of the data.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from rai_audit import archive
from rai_audit.cli import main
from rai_audit.core import RAIInputError
from rai_audit.core import artifacts as A
from rai_audit.core.fingerprint import input_fingerprint
from rai_audit.local_run import run_audit_locally
from rai_audit.storage import ENV_ACCESS, ENV_ENDPOINT, ENV_SECRET, storage_down, storage_up

BUCKET = "rerun-audits"
MODEL_NAME = "insurance"
# The cheapest real audit: the insurance case (linear regression, 338 test rows) with one
# analysis step, a scorecard without bootstrap, publish and the gated registration.
BUILD = dict(steps=["error_analysis"], with_scorecard=True, gate_registration=True, with_publish=True)
CACHED = {"constructor", "error-analysis"}  # computed once, then taken from the cache
PER_RUN = {"fingerprint-inputs", "find-baseline", "gather", "scorecard", "publish", "register-model"}


# --- the fingerprint ------------------------------------------------------------------------


def _inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.joblib").write_bytes(b"model bytes")
    (folder / "train.parquet").write_bytes(b"train bytes")
    data = folder / "test"  # a folder artifact: its files count by relative path
    (data / "part").mkdir(parents=True, exist_ok=True)
    (data / "a.parquet").write_bytes(b"first part")
    (data / "part" / "b.parquet").write_bytes(b"second part")
    return {"model": folder / "model.joblib", "train_data": folder / "train.parquet", "test_data": data}


def test_fingerprint_is_stable_and_changes_with_one_byte(tmp_path):
    inputs = _inputs(tmp_path / "one")
    first = input_fingerprint(inputs)
    assert len(first) == 64 and int(first, 16) >= 0
    assert input_fingerprint(inputs) == first  # stable
    assert input_fingerprint(_inputs(tmp_path / "elsewhere")) == first  # the content counts, not where it is
    later = inputs["test_data"] / "part" / "b.parquet"
    time.sleep(0.01)
    later.write_bytes(b"second part")  # rewritten, same bytes (a newer mtime)
    assert input_fingerprint(inputs) == first

    flipped = bytearray(later.read_bytes())
    flipped[3] ^= 1  # one bit of one byte of the test data
    later.write_bytes(bytes(flipped))
    assert input_fingerprint(inputs) != first
    later.write_bytes(b"second part")
    assert input_fingerprint(inputs) == first

    (inputs["test_data"] / "part" / "b.parquet").rename(inputs["test_data"] / "b.parquet")  # moved in the folder
    assert input_fingerprint(inputs) != first
    swapped = dict(inputs, model=inputs["train_data"], train_data=inputs["model"])
    assert input_fingerprint(swapped) != input_fingerprint(inputs)
    with pytest.raises(RAIInputError, match="model .* does not exist"):
        input_fingerprint(dict(inputs, model=tmp_path / "missing.joblib"))


def test_run_passes_cache_to_kfp_local(tmp_path, monkeypatch, capsys):
    import rai_audit.local_run

    seen = {}

    def fake_run(arguments, output, **kwargs):
        seen.update(kwargs)
        return tmp_path / "run" / "gather" / "dashboard"

    monkeypatch.setattr(rai_audit.local_run, "run_audit_locally", fake_run)
    (tmp_path / "m.joblib").write_bytes(b"x")
    # real data: `rai-audit run` checks the config against its columns before any step
    pd.DataFrame({"x": [1.0, 2.0], "y": [0.5, 1.5]}).to_parquet(tmp_path / "d.parquet")
    (tmp_path / "audit.yaml").write_text(
        json.dumps(
            {
                "model": "m.joblib",
                "train_data": "d.parquet",
                "test_data": "d.parquet",
                "target_column": "y",
                "task_type": "regression",
            }
        )
    )
    for flags, cached in (([], False), (["--cache"], True)):
        seen.clear()
        assert main(["run", str(tmp_path / "audit.yaml"), "--output", str(tmp_path / "out"), *flags]) == 0
        assert seen["enable_caching"] is cached
    capsys.readouterr()


# --- the pipeline, run three times ------------------------------------------------------------


def _arguments(case, folder: Path) -> dict:
    """The audit of the case's model and data, copied to ``folder`` (the test rewrites them)."""
    folder.mkdir()
    for path in (case.model, case.train, case.test):
        shutil.copy2(path, folder / path.name)
    return dict(
        model_uri=str(folder / case.model.name),
        allow_pickle=True,
        train_data_uri=str(folder / case.train.name),
        test_data_uri=str(folder / case.test.name),
        target_column=case.target,
        task_type=case.task_type,
        sensitive_features=["sex", "smoker"],
        error_analysis_max_depth=2,
        scorecard_config={"targets": ["mean_absolute_error <= 1000000"]},
        scorecard_bootstrap=0,
        publish_model_name=MODEL_NAME,
        publish_model_version="1",
        publish_bucket=BUCKET,
    )


def _run_dirs(root: Path) -> set[Path]:
    return {p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}


def _executed(run_dir: Path) -> set[str]:
    """The tasks kfp.local executed in a run: each writes its outputs under <run>/<task>/;
    a cache hit writes nothing there (its outputs stay in the run that computed them)."""
    return {p.name for p in run_dir.iterdir() if p.is_dir()}


def _point_at(monkeypatch, settings) -> None:
    monkeypatch.setenv(ENV_ENDPOINT, settings.endpoint)
    monkeypatch.setenv(ENV_ACCESS, settings.access_key)
    monkeypatch.setenv(ENV_SECRET, settings.secret_key)


def _cache_hits(caplog) -> set[str]:
    return {r.getMessage().split()[1] for r in caplog.records if "cache hit" in r.getMessage()}


def test_rerun_of_a_failed_audit_recomputes_only_what_failed_and_publishes_once(
    insurance_case, tmp_path, monkeypatch, caplog
):
    started = time.monotonic()
    out, store = tmp_path / "out", tmp_path / "store"
    root = out / "pipeline_root"
    arguments = _arguments(insurance_case, tmp_path / "inputs")
    inputs = {
        "model": arguments["model_uri"],
        "train_data": arguments["train_data_uri"],
        "test_data": arguments["test_data_uri"],
    }
    settings = storage_up(store)
    try:
        # Object storage goes down before the run: the endpoint the run is given is closed.
        _point_at(monkeypatch, settings)
        storage_down(store)
        caplog.set_level(logging.INFO)
        with pytest.raises(RAIInputError, match="did not answer"):
            run_audit_locally(arguments, out, enable_caching=True, **BUILD)
        [first] = _run_dirs(root)
        executed = _executed(first)
        assert CACHED | {"fingerprint-inputs", "gather"} <= executed
        assert not executed & {"scorecard", "publish", "register-model"}  # after the failed lookup
        assert len(list((root / ".kfp_cache").glob("*.json"))) == len(CACHED)  # cached: what succeeded
        constructor_meta = json.loads((first / "constructor" / "insights" / A.META_FILE).read_text())
        assert constructor_meta["input_fingerprint"] == input_fingerprint(inputs)
        caplog.clear()

        # Storage is back (a new endpoint): the re-run recomputes only what failed or names the run.
        settings = storage_up(store)
        _point_at(monkeypatch, settings)
        bundle = run_audit_locally(arguments, out, enable_caching=True, **BUILD)
        [second] = _run_dirs(root) - {first}
        assert bundle.is_relative_to(second)
        assert _executed(second) == PER_RUN
        assert _cache_hits(caplog) == CACHED
        insights = json.loads((bundle / A.INSIGHTS_JSON_FILE).read_text())
        assert insights["run_id"] == constructor_meta["run_id"]  # the first run's constructor, reused
        assert set(insights["insights"]) == {"error_analysis"}
        [audit] = archive.list_audits(settings, BUCKET, model=MODEL_NAME)
        assert audit["run_id"] == constructor_meta["run_id"] and audit["passed"] is True
        published = json.loads((second / "publish" / "executor_output.json").read_text())
        assert published["parameterValues"]["Output"] == f"s3://{BUCKET}/{audit['audit']}"
        caplog.clear()

        # A third run of the same inputs publishes nothing new.
        run_audit_locally(arguments, out, enable_caching=True, **BUILD)
        [third] = _run_dirs(root) - {first, second}
        assert _executed(third) == PER_RUN and _cache_hits(caplog) == CACHED
        assert archive.list_audits(settings, BUCKET, model=MODEL_NAME) == [audit]
        again = json.loads((third / "publish" / "executor_output.json").read_text())
        assert again["parameterValues"]["Output"] == published["parameterValues"]["Output"]
        caplog.clear()

        # New test data behind the same URI (one charge changed): a new fingerprint, so the
        # constructor and the analysis run again, and it is a new audit.
        test = pd.read_parquet(inputs["test_data"])
        test.loc[0, "charges"] += 1.0
        test.to_parquet(inputs["test_data"], index=False)
        bundle = run_audit_locally(arguments, out, enable_caching=True, **BUILD)
        [fourth] = _run_dirs(root) - {first, second, third}
        assert _executed(fourth) == CACHED | PER_RUN and not _cache_hits(caplog)
        rebuilt = json.loads((fourth / "constructor" / "insights" / A.META_FILE).read_text())
        assert rebuilt["input_fingerprint"] == input_fingerprint(inputs) != constructor_meta["input_fingerprint"]
        assert json.loads((bundle / A.INSIGHTS_JSON_FILE).read_text())["run_id"] == rebuilt["run_id"]
        audits = archive.list_audits(settings, BUCKET, model=MODEL_NAME)
        assert [a["run_id"] for a in audits] == [constructor_meta["run_id"], rebuilt["run_id"]]
    finally:
        storage_down(store)
    print(f"four runs in {time.monotonic() - started:.1f} s")
