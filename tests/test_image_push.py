"""Pushed images pinned by digest in compiled pipelines, and the images of a pipeline built
at import chosen afterwards (pipeline_with_images); push-images.sh with a stand-in podman."""

# No `from __future__ import annotations`: KFP reads the pipelines' annotations.
import json
import os
import subprocess
import sys

import pytest
import yaml
from kfp import compiler, dsl

from rai_audit import __version__, images
from rai_audit import kfp_components as kc
from rai_audit.pipelines import build_audit_pipeline
from support import REPO

DIGEST = "sha256:" + "ab" * 32


@dsl.component(base_image="python:3.11-slim")
def train(model: dsl.Output[dsl.Model]):
    with open(model.path, "w") as out:
        out.write("a model")


# Built at import, as a pipeline author's module does: the images are those of the environment then.
@dsl.pipeline(name="defined-at-import")
def defined_at_import(uri: str):
    trained = train()
    data = dsl.importer(artifact_uri=uri, artifact_class=dsl.Dataset)
    built = kc.constructor(
        model=trained.outputs["model"],
        train_data=data.output,
        test_data=data.output,
        target_column="y",
        task_type="regression",
    )
    gathered = kc.gather(constructor=built.outputs["insights"])
    kc.scorecard(dashboard=gathered.outputs["dashboard"], config={})


def _images(pipeline, tmp_path):
    compiler.Compiler().compile(pipeline, str(tmp_path / "p.yaml"))
    spec, *_ = yaml.safe_load_all((tmp_path / "p.yaml").read_text())
    return {
        name: e["container"]["image"] for name, e in spec["deploymentSpec"]["executors"].items() if "container" in e
    }


@pytest.fixture
def pushed(tmp_path, monkeypatch):
    path = tmp_path / "pushed.json"
    path.write_text(json.dumps({"reg.example/ml/scorecard:1.2": DIGEST}))
    monkeypatch.setenv(images.ENV_DIGESTS, str(path))
    monkeypatch.delenv(images.ENV_REGISTRY, raising=False)
    monkeypatch.delenv(images.ENV_TAG, raising=False)
    return path


def test_a_pushed_image_is_named_by_its_digest(pushed, tmp_path):
    assert (
        images.step_image("scorecard", registry="reg.example/ml", tag="1.2") == f"reg.example/ml/scorecard:1.2@{DIGEST}"
    )
    assert (
        images.step_image("gather", registry="reg.example/ml", tag="1.2") == "reg.example/ml/gather:1.2"
    )  # not pushed
    built = build_audit_pipeline(["error_analysis"], with_scorecard=True, registry="reg.example/ml", tag="1.2")
    found = _images(built, tmp_path)
    assert found["exec-scorecard"] == f"reg.example/ml/scorecard:1.2@{DIGEST}"
    assert found["exec-gather"] == "reg.example/ml/gather:1.2"


def test_images_of_a_pipeline_built_at_import(pushed, tmp_path):
    before = _images(defined_at_import, tmp_path)
    assert before["exec-constructor"] == f"rai-audit/constructor:{__version__}"
    moved = kc.pipeline_with_images(defined_at_import, "reg.example/ml", "1.2")
    after = _images(moved, tmp_path)
    assert after["exec-constructor"] == "reg.example/ml/constructor:1.2"
    assert after["exec-gather"] == "reg.example/ml/gather:1.2"
    assert after["exec-scorecard"] == f"reg.example/ml/scorecard:1.2@{DIGEST}"
    assert after["exec-train"] == before["exec-train"] == "python:3.11-slim"  # not a rai-audit image
    assert _images(defined_at_import, tmp_path) == before  # a copy: the original is as it was
    # A pinned image moves again (its digest is not carried to another registry).
    again = _images(kc.pipeline_with_images(moved, "other.example", "2.0"), tmp_path)
    assert again["exec-scorecard"] == "other.example/scorecard:2.0"


def test_a_bad_digests_file_is_refused(pushed):
    pushed.write_text(json.dumps({"reg.example/ml/scorecard:1.2": "latest"}))
    with pytest.raises(ValueError, match="not sha256 digests"):
        images.step_image("scorecard")


def test_push_script_records_what_podman_pushed(tmp_path):
    # A stand-in podman: checks the arguments as podman takes them and writes a digest.
    fake = tmp_path / "podman"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$@" >> "$(dirname "$0")/calls"\n'
        'while [ $# -gt 0 ]; do if [ "$1" = --digestfile ]; then shift; '
        f"printf '{DIGEST}' > \"$1\"; fi; shift; done\n"
    )
    fake.chmod(0o755)
    digests = tmp_path / "pushed.json"
    done = subprocess.run(
        [str(REPO / "scripts" / "push-images.sh"), "reg.example/ml/", "1.2"],
        env={
            **os.environ,
            "PODMAN": str(fake),
            "RAI_AUDIT_STORAGE_DRIVER": "overlay",  # the build's storage (scripts/storage-driver.sh)
            "STEPS": "gather scorecard",
            "RAI_AUDIT_IMAGE_DIGESTS": str(digests),
            "PY": sys.executable,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(digests.read_text()) == {
        "reg.example/ml/gather:1.2": DIGEST,
        "reg.example/ml/scorecard:1.2": DIGEST,
    }
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0].endswith(
        "push --digestfile " + calls[0].split("--digestfile ")[1].split()[0] + " "
        "reg.example/ml/gather:1.2 docker://reg.example/ml/gather:1.2"
    )
    assert calls[0].startswith("--storage-driver overlay push")
