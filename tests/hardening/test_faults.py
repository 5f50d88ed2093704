"""Hardening: faults from outside the code.

(a) A step killed while it writes: ``rai-audit gather`` and ``rai-audit constructor`` run in a
    subprocess, killed with SIGKILL as soon as their hidden ``.<output>.partial-*`` folder holds
    a file. No folder may then be at the output path (or, if one were, ``verify_manifest`` must
    refuse it); the half-written folder is refused by ``verify_manifest``; a later step given the
    output path (or the half-written folder) fails with one clear line; and running the step again
    into the same output path works.
(b) Secrets: ``rai-audit run`` with ``publish`` against a real local S3 server (SeaweedFS,
    ``rai_audit.storage.storage_up``) on a small insurance audit, then every file under the
    output folder (bundle, scorecard PDF (its bytes and its text), logs, executor outputs), the
    captured stdout/stderr (fd level: kfp.local runs each task in a subprocess), the archived
    objects, the server's log and the compiled pipelines (KFP and Argo) are searched for the
    access key and the secret key: none may hold either.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import pytest
import yaml

from rai_audit import cli
from rai_audit.core import ArtifactIntegrityError
from rai_audit.core import artifacts as A
from rai_audit.demo import train_demo_model
from rai_audit.steps.constructor import ConstructorOptions, run_constructor
from rai_audit.steps.gather import run_gather
from support import shared_dataset

PICKLE_OPT_IN = "allow_pickle" in ConstructorOptions.__dataclass_fields__
PICKLE = {"allow_pickle": True} if PICKLE_OPT_IN else {}
PICKLE_FLAG = ["--allow-pickle"] if PICKLE_OPT_IN else []
COHORTS = [
    {"name": "Under 30", "filter": {"column": "age", "op": "<", "value": 30}},
    {"name": "Women", "filter": {"column": "sex", "op": "==", "value": "Female"}},
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One OpenMP/BLAS thread (a shared 2-core machine: spinning thread pools slow everything)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --- (a) a step killed while it writes ----------------------------------------------------------


@pytest.fixture(scope="module")
def adult_inputs(tmp_path_factory) -> dict[str, Path]:
    """The demo model (trained on 800 rows) and the whole Adult data: 32,561 train rows and
    16,281 test rows make the constructor's write long enough to be caught in the middle.
    Gather reads a constructor artifact of 2,000 test rows (its dashboard page takes seconds to
    render, inside the write)."""
    folder = tmp_path_factory.mktemp("killed")
    train = shared_dataset("adult_train.parquet")
    model = train_demo_model(train.iloc[:800])
    joblib.dump(model, folder / "model.joblib")
    (folder / "cohorts.json").write_text(json.dumps({"cohorts": COHORTS}))
    constructor = folder / "constructor"
    run_constructor(
        folder / "model.joblib",
        _parquet(train, folder / "train"),
        _parquet(shared_dataset("adult_test.parquet").iloc[:2000], folder / "small_test"),
        constructor,
        options=ConstructorOptions(
            target_column="income", task_type="binary_classification", positive_label=">50K", **PICKLE
        ),
    )
    return {
        "folder": folder,
        "model": folder / "model.joblib",
        "train": folder / "train.parquet",
        "test": _parquet(shared_dataset("adult_test.parquet"), folder / "test"),
        "cohorts": folder / "cohorts.json",
        "constructor": constructor,
    }


def _parquet(frame, path: Path) -> Path:
    path = path.with_suffix(".parquet")
    frame.to_parquet(path, index=False)
    return path


def gather_argv(inputs: dict[str, Path], output: Path) -> list[str]:
    return ["gather", "--constructor", str(inputs["constructor"]), "--output", str(output)]


def constructor_argv(inputs: dict[str, Path], output: Path) -> list[str]:
    return [
        "constructor",
        "--model",
        str(inputs["model"]),
        "--train",
        str(inputs["train"]),
        "--test",
        str(inputs["test"]),
        "--output",
        str(output),
        "--target-column",
        "income",
        "--task-type",
        "binary_classification",
        "--positive-label",
        ">50K",
        "--sensitive-features",
        '["sex", "race"]',
        "--cohorts",
        str(inputs["cohorts"]),
        *PICKLE_FLAG,
    ]


def partial_folders(parent: Path, name: str) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.name.startswith(f".{name}.partial-"))


def started_writing(folder: Path) -> bool:
    try:
        return any(p.is_file() for p in folder.rglob("*"))
    except FileNotFoundError:  # renamed into place meanwhile
        return False


def kill_while_writing(argv: list[str], parent: Path, name: str, timeout: float = 150.0) -> Path | None:
    """Run `rai-audit <argv>` in a subprocess and SIGKILL it (by its pid) as soon as its
    partial folder holds a file; that folder, or None if the step finished first."""
    parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "rai_audit.cli", *argv],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = partial_folders(parent, name)
            if found and started_writing(found[0]):
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                return found[0]
            if process.poll() is not None:
                return None
            time.sleep(0.001)
        pytest.fail(f"`rai-audit {argv[0]}` did not start writing within {timeout} s")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        process.stderr.close()


STEPS = {
    # step: (argv maker, a later step given the output (as argv for an input folder), rerun)
    "gather": (
        gather_argv,
        lambda folder, out: [
            "scorecard",
            "--dashboard",
            str(folder),
            "--config",
            str(out.parent / "card.yaml"),
            "--output",
            str(out),
        ],
        lambda inputs, output: run_gather(inputs["constructor"], [], output),
    ),
    "constructor": (
        constructor_argv,
        lambda folder, out: ["error_analysis", "--constructor", str(folder), "--output", str(out)],
        lambda inputs, output: run_constructor(
            inputs["model"],
            inputs["train"],
            inputs["test"],
            output,
            options=ConstructorOptions(
                target_column="income",
                task_type="binary_classification",
                positive_label=">50K",
                cohorts=str(inputs["cohorts"]),
                **PICKLE,
            ),
        ),
    ),
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_step_killed_while_writing_leaves_nothing_a_later_step_would_take(step, adult_inputs, tmp_path, capsys):
    argv_for, later_argv, rerun = STEPS[step]
    parent = tmp_path / "outputs"
    output = parent / "artifact"
    partial = None
    for attempt in range(3):  # the write may, rarely, finish between two looks
        partial = kill_while_writing(argv_for(adult_inputs, output), parent, output.name)
        if partial is not None:
            break
        assert A.verify_manifest(output)  # it finished: a whole artifact
        output = parent / f"artifact-{attempt}"
    assert partial is not None, "the step was never caught while writing"

    # Nothing at the output path (or, were there something, the manifest check refuses it).
    if output.exists():
        with pytest.raises(ArtifactIntegrityError):
            A.verify_manifest(output)
    # The half-written folder stays (nothing runs after SIGKILL), hidden, and is refused.
    assert partial.name.startswith(f".{output.name}.partial-")
    if not (partial / A.MANIFEST_FILE).is_file():
        with pytest.raises(ArtifactIntegrityError, match="has no manifest.json"):
            A.verify_manifest(partial)

    # A later step given the output path, or the half-written folder: one clear line, exit 2.
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "card.yaml").write_text("targets: [accuracy_score >= 0.5]\n")
    for given, message in ((output, "does not exist or is not a folder"), (partial, "has no manifest.json")):
        capsys.readouterr()
        out = tmp_path / "later" / f"from-{given.name.lstrip('.')}"
        assert cli.main(later_argv(given, out)) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("rai-audit: error: ") and message in line and str(given) in line
        assert not out.exists()

    # The step run again into the same output path, beside the leftover: a whole artifact.
    rerun(adult_inputs, output)
    A.verify_manifest(output)
    assert partial_folders(parent, output.name) == [partial]


# --- (b) no credential in any output ------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    from rai_audit.storage import storage_down, storage_up

    folder = tmp_path_factory.mktemp("seaweedfs")
    settings = storage_up(folder)
    yield folder, settings
    storage_down(folder)


def insurance_audit(folder: Path) -> Path:
    """A small insurance audit: 400 train and 200 test rows, a linear regression, a scorecard
    with a target and the publish step."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    data = shared_dataset("insurance.parquet")
    train, test = data.iloc[:400], data.iloc[1000:1200]
    model = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["sex", "smoker", "region"]),
                        ("num", StandardScaler(), ["age", "bmi", "children"]),
                    ]
                ),
            ),
            ("model", LinearRegression()),
        ]
    )
    model.fit(train.drop(columns="charges"), train["charges"])
    joblib.dump(model, folder / "model.joblib")
    train.to_parquet(folder / "train.parquet", index=False)
    test.to_parquet(folder / "test.parquet", index=False)
    config = {
        "model": "model.joblib",
        "train_data": "train.parquet",
        "test_data": "test.parquet",
        "target_column": "charges",
        "task_type": "regression",
        "sensitive_features": ["sex"],
        "cohorts": [{"name": "Smokers", "filter": {"column": "smoker", "op": "==", "value": "yes"}}],
        "scorecard": {
            "config": {"model": {"name": "insurance", "version": "1"}, "targets": ["r2_score >= 0.5"]},
            "bootstrap": 0,
        },
        "publish": {"model_name": "insurance-secrets", "model_version": "1", "bucket": "secrets-check"},
        **PICKLE,
    }
    (folder / "audit.yaml").write_text(yaml.safe_dump(config))
    return folder / "audit.yaml"


def holders(paths, secrets: dict[str, bytes]) -> list[str]:
    """Which of these files hold which secret (by name)."""
    found = []
    for path in paths:
        data = path.read_bytes()
        found += [f"{path}: {name}" for name, value in secrets.items() if value in data]
    return found


def pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(path)
    return "\n".join(page.extract_text() or "" for page in reader.pages) + json.dumps(
        {str(k): str(v) for k, v in (reader.metadata or {}).items()}
    )


def test_no_credential_is_in_any_output_log_archive_or_compiled_pipeline(s3_server, tmp_path, monkeypatch, capfd):
    from rai_audit.storage import ENV_ACCESS, ENV_ENDPOINT, ENV_SECRET

    folder, settings = s3_server
    secrets = {"access key": settings.access_key.encode(), "secret key": settings.secret_key.encode()}
    assert all(len(v) >= 16 for v in secrets.values())  # long enough not to turn up by chance
    monkeypatch.setenv(ENV_ENDPOINT, settings.endpoint)
    monkeypatch.setenv(ENV_ACCESS, settings.access_key)
    monkeypatch.setenv(ENV_SECRET, settings.secret_key)
    for name, value in (("OMP_NUM_THREADS", "1"), ("OPENBLAS_NUM_THREADS", "1")):
        monkeypatch.setenv(name, value)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    config = insurance_audit(inputs)
    out = tmp_path / "out"

    assert cli.main(["run", str(config), "--output", str(out)]) == 0
    assert cli.main(["compile", "--pipeline", "audit", "--output", str(tmp_path / "compiled" / "audit.yaml")]) == 0
    assert (
        cli.main(
            ["compile", "--target", "argo", "--pipeline", "audit", "--output", str(tmp_path / "compiled" / "argo")]
        )
        == 0
    )
    captured = capfd.readouterr()

    # The run did what it should: a bundle, a scorecard PDF, an archived audit.
    files = sorted(p for p in out.rglob("*") if p.is_file())
    pdfs = [p for p in files if p.suffix == ".pdf"]
    assert pdfs and any(p.name == A.INSIGHTS_JSON_FILE for p in files)
    assert any(p.name == "executor_output.json" for p in files)
    client = settings.client()
    archived = list(client.list_objects("secrets-check", prefix="audits/insurance-secrets/", recursive=True))
    assert any(o.object_name.endswith("/manifest.json") for o in archived)

    # The search finds a secret where one is: the server's credentials file, and text in the PDF.
    assert holders([folder / "credentials.env"], secrets) == [
        f"{folder / 'credentials.env'}: {name}" for name in secrets
    ]
    assert all("r2_score" in pdf_text(p) for p in pdfs)

    leaks = holders(files, secrets)
    leaks += [f"{p} (text): {name}" for p in pdfs for name, value in secrets.items() if value.decode() in pdf_text(p)]
    leaks += [
        f"captured {stream}: {name}"
        for stream, text in (("stdout", captured.out), ("stderr", captured.err))
        for name, value in secrets.items()
        if value.decode() in text
    ]
    leaks += holders(sorted(p for p in (tmp_path / "compiled").rglob("*") if p.is_file()), secrets)
    leaks += holders([folder / "weed.log"], secrets)
    for item in archived:
        response = client.get_object("secrets-check", item.object_name)
        try:
            data = response.read()
        finally:
            response.close()
            response.release_conn()
        leaks += [f"s3://secrets-check/{item.object_name}: {name}" for name, value in secrets.items() if value in data]
    assert leaks == []
    assert len(files) > 20  # the search did cover the run's folder
