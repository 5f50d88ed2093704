"""Plain Argo Workflows output: a WorkflowTemplate and a CronWorkflow built with hera.

The documents are checked strictly against Argo's models (a misspelt field is refused),
against the step CLIs (every flag exists, every default is the CLI's own), and for what a
cluster would do with them: the contract test runs the WorkflowTemplate *as written* (its
parsed YAML, not our Python objects) against a real SeaweedFS S3 server. Each DAG task, in
dependency order (tasks ready together run side by side), gets a folder standing in for
its pod's file system; Argo's placeholders
are substituted; every declared input artifact is downloaded from its declared key with
the credentials of the Kubernetes secret the YAML names; the container's command line runs
as a local process; every declared output artifact is uploaded to its declared key. The
bundle and scorecard read back from the bucket must equal those of a kfp.local run of the
same audit.
"""

from __future__ import annotations

import copy
import graphlib
import importlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import pytest
import yaml

from compare_artifacts import artifact_differences
from rai_audit import __version__
from rai_audit.argo import (
    ANALYSIS_STEPS,
    CRON_WORKFLOW_FILE,
    STEP_OPTIONS,
    WORKFLOW_TEMPLATE_FILE,
    argo_yaml,
    build_argo,
    validate_argo,
    workflow_parameters,
    write_argo,
)
from rai_audit.core import artifacts as A
from rai_audit.demo import train_demo_model
from rai_audit.storage import storage_down, storage_up
from support import ADULT_COHORTS, REPO, Case, shared_dataset, write_case

REGISTRY, TAG = "registry.example.com/acme/rai-audit", "9.9.9-test"
ALL_STEPS = {"constructor", *ANALYSIS_STEPS, "gather", "scorecard"}


def _documents(**options) -> tuple[dict, dict]:
    texts = argo_yaml(**{"registry": REGISTRY, "tag": TAG, **options})
    return yaml.safe_load(texts[WORKFLOW_TEMPLATE_FILE]), yaml.safe_load(texts[CRON_WORKFLOW_FILE])


def _containers(template: dict) -> dict[str, dict]:
    return {t["name"]: t for t in template["spec"]["templates"] if "container" in t}


def _dag(template: dict) -> dict[str, dict]:
    [entry] = [t for t in template["spec"]["templates"] if t["name"] == template["spec"]["entrypoint"]]
    return {task["name"]: task for task in entry["dag"]["tasks"]}


def _depends(task: dict) -> set[str]:
    """A task's dependencies; only the plain `a && b` form is expected (and supported here)."""
    expression = task.get("depends", "")
    names = {part.strip() for part in expression.split("&&")} - {""}
    assert all(re.fullmatch(r"[a-z][a-z0-9-]*", n) for n in names), f"unexpected depends: {expression!r}"
    assert "dependencies" not in task
    return names


# --- the documents -------------------------------------------------------------------


def test_both_documents_validate_strictly_and_schedule_the_template():
    template, cron = _documents(schedule="30 2 * * 1", timezone="Europe/Paris", name="credit-audit")
    for doc in (template, cron):
        assert validate_argo(yaml.safe_dump(doc)) == doc
    assert template["kind"] == "WorkflowTemplate" and template["metadata"]["name"] == "credit-audit"
    spec = cron["spec"]
    assert cron["kind"] == "CronWorkflow"
    assert spec["schedules"] == ["30 2 * * 1"] and spec["timezone"] == "Europe/Paris"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 0  # missed runs are not caught up
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert spec["workflowSpec"] == {"workflowTemplateRef": {"name": "credit-audit"}}
    # values given at compile time travel with the CronWorkflow, JSON where not a string
    _, cron = _documents(arguments={"target_column": "income", "sensitive_features": ["sex"]})
    assert cron["spec"]["workflowSpec"]["arguments"]["parameters"] == [
        {"name": "target_column", "value": "income"},
        {"name": "sensitive_features", "value": '["sex"]'},
    ]


def _renamed(doc: dict, path: list, new: str) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path
    node = doc
    for step in parents:
        node = node[step]
    node[new] = node.pop(last)
    return doc


@pytest.mark.parametrize(
    "which, path, misspelt",
    [
        ("template", ["spec", "entrypoint"], "entrypont"),
        ("template", ["spec", "templates", 0, "container", "image"], "imagee"),
        ("template", ["spec", "templates", 0, "outputs", "artifacts", 0, "archive"], "archiv"),
        ("template", ["spec", "templates", 1, "inputs", "artifacts", 0, "s3", "accessKeySecret"], "access_key_secret"),
        ("template", ["metadata", "name"], "nmae"),
        ("cron", ["spec", "concurrencyPolicy"], "concurrencyPolicyy"),
        ("cron", ["spec", "startingDeadlineSeconds"], "startingDeadlineSecond"),
        ("cron", ["spec", "workflowSpec", "workflowTemplateRef"], "workflowTemplateRefs"),
    ],
)
def test_a_misspelt_field_is_refused_with_its_name(which, path, misspelt):
    template, cron = _documents()
    doc = _renamed(template if which == "template" else cron, path, misspelt)
    with pytest.raises(ValueError, match=rf"unknown field `[^`]*\b{misspelt}`"):
        validate_argo(yaml.safe_dump(doc))


def test_values_argo_would_read_differently_are_refused():
    template, cron = _documents()
    doc = copy.deepcopy(cron)
    doc["spec"]["startingDeadlineSeconds"] = "0"  # a string where Argo wants an integer
    with pytest.raises(ValueError, match="startingDeadlineSeconds"):
        validate_argo(yaml.safe_dump(doc))
    doc = copy.deepcopy(template)
    doc["spec"]["templates"][0]["inputs"]["artifacts"][0]["s3"]["insecure"] = "yes"
    with pytest.raises(ValueError, match=r"s3\.insecure"):
        validate_argo(yaml.safe_dump(doc))
    doc = copy.deepcopy(template)
    doc["spec"]["arguments"]["parameters"][-1]["value"] = 3  # parameter values are strings
    with pytest.raises(ValueError, match=r"spec\.arguments\.parameters\[\d+\]\.value"):
        validate_argo(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="`kind` must be one of"):
        validate_argo(yaml.safe_dump({**template, "kind": "Workflow"}))
    with pytest.raises(ValueError, match="apiVersion"):
        validate_argo(yaml.safe_dump({**template, "apiVersion": "argoproj.io/v1"}))
    with pytest.raises(ValueError, match="not a YAML document"):
        validate_argo("kind: [WorkflowTemplate")


@pytest.mark.parametrize("steps", [ANALYSIS_STEPS, ("causal", "explainer"), ()])
def test_each_step_runs_its_own_image_and_the_dag_is_right(steps):
    template, _ = _documents(steps=steps)
    containers = _containers(template)
    expected = ["constructor", *(s for s in ANALYSIS_STEPS if s in steps), "gather", "scorecard"]
    assert list(containers) == [s.replace("_", "-") for s in expected]
    for name, t in containers.items():
        step = name.replace("-", "_")
        assert t["container"]["image"] == f"{REGISTRY}/{step}:{TAG}"
        assert t["container"]["command"] == ["rai-audit"] and t["container"]["args"][0] == step
    dag = _dag(template)
    assert set(dag) == set(containers) and all(task["template"] == name for name, task in dag.items())
    analyses = {s.replace("_", "-") for s in steps}
    assert {name: _depends(task) for name, task in dag.items()} == {
        "constructor": set(),
        **{a: {"constructor"} for a in analyses},
        "gather": analyses or {"constructor"},
        "scorecard": {"gather"},
    }
    # every artifact a task reads from the run's keys is written by a task it waits for
    upstream: dict[str, set[str]] = {}
    for name in graphlib.TopologicalSorter({n: _depends(t) for n, t in dag.items()}).static_order():
        upstream[name] = set().union(*({d} | upstream[d] for d in _depends(dag[name])))
    written = {name: {a["s3"]["key"] for a in containers[name]["outputs"]["artifacts"]} for name in dag}
    for name in dag:
        for artifact in containers[name]["inputs"].get("artifacts", []):
            key = artifact["s3"]["key"]
            if "{{workflow.name}}" in key:
                assert any(key in written[u] for u in upstream[name]), f"{name} reads {key} before it is written"
    gather_inputs = {a["name"] for a in containers["gather"]["inputs"]["artifacts"]}
    assert gather_inputs == {"constructor"} | {
        {
            "error_analysis": "error_analysis",
            "explainer": "explanation",
            "counterfactual": "counterfactuals",
            "causal": "causal",
        }[s]
        for s in steps
    }


def test_images_default_to_the_package_version(monkeypatch):
    monkeypatch.delenv("RAI_AUDIT_IMAGE_REGISTRY", raising=False)
    monkeypatch.delenv("RAI_AUDIT_IMAGE_TAG", raising=False)
    template = yaml.safe_load(argo_yaml()[WORKFLOW_TEMPLATE_FILE])
    assert {t["container"]["image"] for t in _containers(template).values()} == {
        f"rai-audit/{s}:{__version__}" for s in ALL_STEPS
    }


def test_s3_settings_and_credentials_by_reference_only(monkeypatch, tmp_path):
    # credentials in the environment must not find their way into the YAML
    monkeypatch.setenv("RAI_AUDIT_S3_ACCESS_KEY", "AKIAENVIRONMENTKEY")
    monkeypatch.setenv("RAI_AUDIT_S3_SECRET_KEY", "environment-secret-value-0123456789")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value-0123456789")
    paths = write_argo(
        tmp_path,
        endpoint="https://s3.example.com",
        bucket="audits",
        s3_secret="audit-s3",
        region="eu-west-1",
        prefix="nightly/",
    )
    assert [p.name for p in paths] == [WORKFLOW_TEMPLATE_FILE, CRON_WORKFLOW_FILE]
    texts = [p.read_text() for p in paths]
    for text in texts:
        assert not any(s in text for s in ("AKIAENVIRONMENTKEY", "environment-secret-value", "aws-secret-value"))
    template = yaml.safe_load(texts[0])
    artifacts = [
        a for t in _containers(template).values() for io in ("inputs", "outputs") for a in t[io].get("artifacts", [])
    ]
    assert len(artifacts) == 4 + 4 + 5 + 2 + 7  # inputs of each task, then one output each
    for a in artifacts:
        s3 = a["s3"]
        assert set(s3) == {"endpoint", "bucket", "region", "insecure", "key", "accessKeySecret", "secretKeySecret"}
        assert (s3["endpoint"], s3["bucket"], s3["region"], s3["insecure"]) == (
            "s3.example.com",
            "audits",
            "eu-west-1",
            False,
        )
        assert s3["accessKeySecret"] == {"name": "audit-s3", "key": "access_key"}
        assert s3["secretKeySecret"] == {"name": "audit-s3", "key": "secret_key"}
    assert all(a["archive"] == {"none": {}} for a in artifacts)  # folders stored file by file
    outputs = [a for t in _containers(template).values() for a in t["outputs"]["artifacts"]]
    assert all(re.fullmatch(r"nightly/\{\{workflow\.name\}\}/[a-z-]+/\w+", a["s3"]["key"]) for a in outputs)
    for t in _containers(template).values():
        assert "env" not in t["container"] and "envFrom" not in t["container"]


def test_flags_and_defaults_are_the_step_clis_own():
    """Every template's command line parses with its step's real parser, and the
    parameters' defaults give exactly what the CLI gives without them."""
    template, _ = _documents()
    params = {p["name"]: p.get("value") for p in template["spec"]["arguments"]["parameters"]}
    required = {"target_column": "income", "task_type": "regression", "causal_treatment_features": '["age"]'}
    assert {n for n, v in params.items() if v is None} == set(required) | {
        "model_key",
        "train_data_key",
        "test_data_key",
        "cohorts_key",
        "scorecard_config_key",
    }
    defaulted = {p.name for options in STEP_OPTIONS.values() for _, p in options if p.default is not None}

    def filled(arg: str) -> str:
        return _PARAM.sub(lambda m: params[m[1]] if params[m[1]] is not None else required[m[1]], arg)

    for t in _containers(template).values():
        step, raw = t["container"]["args"][0], t["container"]["args"][1:]
        assert len(raw) % 2 == 0, raw  # flag, value, flag, value, ...
        pairs = list(zip(raw[::2], raw[1::2]))
        args = [filled(a) for pair in pairs for a in pair]
        without_defaults = [
            filled(a)
            for flag, value in pairs
            for a in (flag, value)
            if not (_PARAM.fullmatch(value) and _PARAM.fullmatch(value)[1] in defaulted)
        ]
        parser = importlib.import_module(f"rai_audit.steps.{step}")._parser()
        assert vars(parser.parse_args(args)) == vars(parser.parse_args(without_defaults)), step
        declared = {a["path"] for io in ("inputs", "outputs") for a in t[io].get("artifacts", [])}
        assert {a for a in args if a.startswith("/")} == declared, step  # every path is an artifact's


_PARAM = re.compile(r"\{\{inputs\.parameters\.(\w+)\}\}")


def test_every_parameter_is_documented():
    docs = (REPO / "docs" / "argo.md").read_text()
    missing = [p.name for p in workflow_parameters() if f"`{p.name}`" not in docs]
    assert not missing, f"docs/argo.md does not describe {missing}"


def test_build_refuses_bad_options():
    with pytest.raises(ValueError, match=r"`steps` must be among .*\['shap'\]"):
        build_argo(["shap"])
    with pytest.raises(ValueError, match="`steps` must be a list"):
        build_argo("causal")
    with pytest.raises(ValueError, match=r"`endpoint` must be http\(s\)://host\[:port\]"):
        build_argo(endpoint="minio:9000")
    with pytest.raises(ValueError, match=r"unknown parameters \['causal_treatment_features'\]"):
        build_argo(steps=["explainer"], arguments={"causal_treatment_features": ["age"]})
    # The build's choice is the default of a parameter a run may set either way.
    for fail in (True, False):
        template, _ = _documents(fail_on_missed_target=fail)
        param = next(
            p for p in template["spec"]["arguments"]["parameters"] if p["name"] == "scorecard_fail_on_missed_target"
        )
        assert (param["value"], param["enum"]) == ("true" if fail else "false", ["true", "false"])
        args = _containers(template)["scorecard"]["container"]["args"]
        assert (
            args[args.index("--fail-on-missed-target") + 1] == "{{inputs.parameters.scorecard_fail_on_missed_target}}"
        )


# --- the contract: run the WorkflowTemplate as written against a real S3 server -------

BUCKET, SECRET = "rai-audit-contract", "rai-audit-s3"
_PLACEHOLDER = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seaweedfs-argo")
    settings = storage_up(folder)
    yield settings
    storage_down(folder)


@pytest.fixture(scope="module")
def small_adult(tmp_path_factory) -> Case:
    """The demo's model trained on 5,000 Adult rows, audited on 2,000 test rows: small and quick."""
    train = shared_dataset("adult_train.parquet").head(5000)
    test = shared_dataset("adult_test.parquet").head(2000)
    folder = tmp_path_factory.mktemp("small_adult")
    return write_case(
        folder,
        train_demo_model(train),
        train,
        test,
        target="income",
        task_type="binary_classification",
        sensitive=["sex", "race"],
        positive_label=">50K",
    )


SCORECARD_CONFIG = {
    "targets": ["accuracy_score >= 0.5", {"metric": "recall_score", "op": ">=", "value": 0.3, "cohort": "Under 30"}],
    "fairness": {"sensitive_features": ["sex"], "targets": ["selection_rate ratio >= 0.2"]},
}
# The same audit in both forms: Argo's string parameters (JSON for lists and mappings, text
# otherwise) and the KFP pipeline's typed arguments. Small, so both runs stay short.
ARGO_PARAMETERS = {
    "allow_pickle": "true",  # the test's model is a joblib file it wrote itself
    "target_column": "income",
    "task_type": "binary_classification",
    "sensitive_features": '["sex", "race"]',
    "positive_label": ">50K",
    "sample_size": "200",
    "error_analysis_heatmap_features": '["age"]',
    "counterfactual_total_CFs": "3",
    "counterfactual_features_to_vary": '["age", "hours-per-week", "education"]',
    "causal_treatment_features": '["hours-per-week"]',
    "causal_heterogeneity_features": '["sex"]',
    "causal_train_sample_size": "2000",
    "causal_n_jobs": "1",
    "scorecard_bootstrap": "10",
}
KFP_ARGUMENTS = {
    "allow_pickle": True,
    "target_column": "income",
    "task_type": "binary_classification",
    "sensitive_features": ["sex", "race"],
    "positive_label": ">50K",
    "sample_size": 200,
    "error_analysis_heatmap_features": ["age"],
    "counterfactual_total_CFs": 3,
    "counterfactual_features_to_vary": ["age", "hours-per-week", "education"],
    "causal_treatment_features": ["hours-per-week"],
    "causal_heterogeneity_features": '["sex"]',
    "causal_train_sample_size": 2000,
    "causal_n_jobs": 1,
    "scorecard_bootstrap": 10,
}


class Run:
    """One Argo workflow run of a WorkflowTemplate document, each pod a local folder."""

    def __init__(self, document: dict, parameters: dict[str, str], secrets: dict, root: Path):
        self.spec = document["spec"]
        self.secrets, self.root = secrets, root
        self.name = f"{document['metadata']['name']}-{uuid.uuid4().hex[:5]}"
        self.globals = {"workflow.name": self.name}
        for p in self.spec["arguments"]["parameters"]:
            value = parameters.get(p["name"], p.get("value"))
            assert value is not None, f"required parameter {p['name']} not given"
            assert "enum" not in p or value in p["enum"], f"{p['name']}={value!r} is not in its enum"
            self.globals[f"workflow.parameters.{p['name']}"] = value
        assert set(parameters) <= {p["name"] for p in self.spec["arguments"]["parameters"]}
        self.templates = {t["name"]: t for t in self.spec["templates"]}
        self.mounts = {v["name"] for v in self.spec.get("volumes", []) if v.get("emptyDir") == {}}
        self.clients: dict = {}
        self.seconds: dict[str, float] = {}

    @staticmethod
    def substitute(text: str, values: dict[str, str]) -> str:
        def one(match):
            assert match[1] in values, f"unresolved placeholder {match[0]}"
            return values[match[1]]

        return _PLACEHOLDER.sub(one, text)

    def client(self, s3: dict):
        """A client for the artifact's store, with the credentials of the secret it names."""
        from minio import Minio

        ref = (
            s3["endpoint"],
            s3["insecure"],
            s3["accessKeySecret"]["name"],
            s3["accessKeySecret"]["key"],
            s3["secretKeySecret"]["name"],
            s3["secretKeySecret"]["key"],
        )
        if ref not in self.clients:
            access = self.secrets[ref[2]][ref[3]]
            secret = self.secrets[ref[4]][ref[5]]
            self.clients[ref] = Minio(s3["endpoint"], access_key=access, secret_key=secret, secure=not s3["insecure"])
        return self.clients[ref]

    def download(self, s3: dict, key: str, target: Path) -> None:
        """Argo's S3 driver: the key is a file, or else a "folder" of objects under ``key/``."""
        from minio.error import S3Error

        client = self.client(s3)
        try:
            client.stat_object(s3["bucket"], key)
        except S3Error as err:
            assert err.code == "NoSuchKey", err
            objects = [
                o.object_name for o in client.list_objects(s3["bucket"], prefix=key.rstrip("/") + "/", recursive=True)
            ]
            assert objects, f"input artifact s3://{s3['bucket']}/{key} does not exist"
            for name in objects:
                client.fget_object(s3["bucket"], name, str(target / name[len(key.rstrip("/")) + 1 :]))
        else:
            client.fget_object(s3["bucket"], key, str(target))

    def upload(self, s3: dict, key: str, source: Path) -> None:
        """``archive: none``: a file at the key, a folder as one object per file under it."""
        client = self.client(s3)
        assert source.exists(), f"output artifact {source} was not written"
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for path in files:
            name = key if path == source else f"{key}/{path.relative_to(source).as_posix()}"
            client.fput_object(s3["bucket"], name, str(path))

    def run_task(self, task: dict) -> None:
        template = self.templates[task["template"]]
        given = {
            a["name"]: self.substitute(a["value"], self.globals)
            for a in task.get("arguments", {}).get("parameters", [])
        }
        declared = {p["name"]: p.get("value") for p in template.get("inputs", {}).get("parameters", [])}
        assert set(given) <= set(declared), f"{task['name']} passes undeclared parameters"
        values = dict(self.globals)
        for name, default in declared.items():
            assert name in given or default is not None, f"{task['name']}: input {name} has no value"
            values[f"inputs.parameters.{name}"] = given.get(name, default)
        pod = self.root / task["name"]  # the pod's file system: only what is declared gets in

        def local(path: str) -> Path:
            assert path.startswith("/"), path
            return pod / path.lstrip("/")

        container = template["container"]
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in self.mounts
            local(mount["mountPath"]).mkdir(parents=True, exist_ok=True)
        inputs = template.get("inputs", {}).get("artifacts", [])
        outputs = template.get("outputs", {}).get("artifacts", [])
        for artifact in inputs + outputs:  # what this emulation does: store, never archive
            assert artifact.get("archive") == {"none": {}}, artifact["name"]
        for artifact in inputs:
            self.download(artifact["s3"], self.substitute(artifact["s3"]["key"], values), local(artifact["path"]))
        paths = [a["path"] for a in inputs + outputs] + [m["mountPath"] for m in container.get("volumeMounts", [])]
        argv = []
        for arg in container["command"] + container.get("args", []):
            arg = self.substitute(arg, values)
            if arg.startswith("/"):
                assert any(arg == p or arg.startswith(p + "/") for p in paths), f"undeclared container path {arg}"
                arg = str(local(arg))
            argv.append(arg)
        assert argv[0] == "rai-audit"
        argv[0] = str(Path(sys.executable).with_name("rai-audit"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAI_AUDIT_S3_", "AWS_"))}
        started = time.monotonic()
        done = subprocess.run(argv, cwd=pod, env=env, capture_output=True, text=True)
        self.seconds[task["name"]] = time.monotonic() - started
        assert done.returncode == 0, f"task {task['name']} failed ({done.returncode}):\n{done.stderr[-3000:]}"
        for artifact in outputs:
            self.upload(artifact["s3"], self.substitute(artifact["s3"]["key"], values), local(artifact["path"]))

    def run(self) -> None:
        """The DAG's tasks in dependency order, those ready at once side by side, as Argo does."""
        entry = self.templates[self.spec["entrypoint"]]
        tasks = {t["name"]: t for t in entry["dag"]["tasks"]}
        order = graphlib.TopologicalSorter({n: _depends(t) for n, t in tasks.items()})
        order.prepare()
        with ThreadPoolExecutor(max_workers=min(len(tasks), os.cpu_count() or 2)) as pool:
            running = {}
            while order.is_active():
                running.update({pool.submit(self.run_task, tasks[n]): n for n in order.get_ready()})
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()  # a failed task stops the run, as it stops the DAG
                    order.done(running.pop(future))


def test_the_workflow_template_as_written_computes_what_kfp_local_does(s3_server, small_adult, tmp_path):
    settings = s3_server
    client = settings.client()
    if not client.bucket_exists(BUCKET):
        client.make_bucket(BUCKET)
    # The inputs, staged where the workflow parameters will say they are.
    (tmp_path / "cohorts.json").write_text(json.dumps({"cohorts": ADULT_COHORTS}))
    (tmp_path / "scorecard.yaml").write_text(yaml.safe_dump(SCORECARD_CONFIG))
    case = small_adult
    staged = {
        "model_key": ("inputs/adult/model", case.model),  # a folder holding the model file
        "train_data_key": ("inputs/adult/train", case.train),
        "test_data_key": ("inputs/adult/test", case.test),
        "cohorts_key": ("inputs/adult/cohorts.json", tmp_path / "cohorts.json"),  # a file
        "scorecard_config_key": ("inputs/adult/scorecard.yaml", tmp_path / "scorecard.yaml"),
    }
    for key, path in staged.values():
        client.fput_object(BUCKET, key if key.endswith((".json", ".yaml")) else f"{key}/{path.name}", str(path))

    write_argo(
        tmp_path / "argo", endpoint=settings.endpoint, bucket=BUCKET, s3_secret=SECRET, registry=REGISTRY, tag=TAG
    )
    text = (tmp_path / "argo" / WORKFLOW_TEMPLATE_FILE).read_text()
    cron_text = (tmp_path / "argo" / CRON_WORKFLOW_FILE).read_text()
    assert not any(s in text + cron_text for s in (settings.access_key, settings.secret_key))
    document = validate_argo(text)

    parameters = {name: key for name, (key, _) in staged.items()} | ARGO_PARAMETERS
    secrets = {SECRET: {"access_key": settings.access_key, "secret_key": settings.secret_key}}
    run = Run(document, parameters, secrets, tmp_path / "pods")
    started = time.monotonic()
    run.run()
    argo_seconds = time.monotonic() - started

    # The results, read back from the keys the YAML declares for them.
    got = {}
    for task, output in (("gather", "dashboard"), ("scorecard", "scorecard")):
        [artifact] = run.templates[task]["outputs"]["artifacts"]
        assert artifact["name"] == output
        got[output] = tmp_path / "from-s3" / task / output
        run.download(artifact["s3"], run.substitute(artifact["s3"]["key"], run.globals), got[output])
    A.verify_manifest(got["dashboard"])  # stored file by file, read back intact

    from rai_audit.local_run import run_audit_locally

    started = time.monotonic()
    arguments = dict(
        model_uri=str(case.model),
        train_data_uri=str(case.train),
        test_data_uri=str(case.test),
        cohorts=ADULT_COHORTS,
        scorecard_config=SCORECARD_CONFIG,
        **KFP_ARGUMENTS,
    )
    bundle = run_audit_locally(arguments, tmp_path / "kfp", steps=list(ANALYSIS_STEPS), with_scorecard=True)
    kfp_seconds = time.monotonic() - started
    print(
        f"argo contract run {argo_seconds:.1f} s ({', '.join(f'{k} {v:.1f}' for k, v in run.seconds.items())}); "
        f"kfp.local {kfp_seconds:.1f} s"
    )

    assert artifact_differences(got["dashboard"], bundle) == []
    assert artifact_differences(got["scorecard"], bundle.parents[1] / "scorecard" / "scorecard") == []
    insights = json.loads((got["dashboard"] / A.INSIGHTS_JSON_FILE).read_text())
    assert set(insights["insights"]) == {"error_analysis", "explanation", "counterfactual", "causal"}
    assert insights["data"]["sample"]["size"] == 200
    card = json.loads((got["scorecard"] / "scorecard.json").read_text())
    assert card["n_targets"] == 3 and card["intervals"]["resamples"] == 10
