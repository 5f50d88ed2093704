"""The rai-audit command: run from a config, the demo, compile, and clear errors (exit 2)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import pandas as pd
import pytest
import yaml
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from rai_audit import archive
from rai_audit.cli import _parser, main
from rai_audit.core import artifacts as A
from rai_audit.storage import storage_down, storage_up
from support import AZURE_EXAMPLES, REPO


def _bundle_from_output(out: str) -> Path:
    line = next(text for text in out.splitlines() if text.startswith("dashboard bundle: "))
    return Path(line.removeprefix("dashboard bundle: "))


@pytest.fixture
def config_dir(insurance_case, tmp_path):
    """An audit config with relative paths and Azure-format cohorts, as a user writes it."""
    for name in ("model", "train", "test"):
        src = getattr(insurance_case, name)
        shutil.copy2(src, tmp_path / src.name)
    shutil.copy2(AZURE_EXAMPLES / "azureml-assets__boston__cohorts.json", tmp_path / "azure_cohorts.json")
    config = {
        "model": "model.joblib",
        "allow_pickle": True,
        "train_data": "train.parquet",
        "test_data": "test.parquet",
        "target_column": "charges",
        "task_type": "regression",
        "sensitive_features": ["sex", "smoker"],
        "error_analysis": {"filter_features": ["smoker"], "max_depth": 2},  # Azure's name
        "explainer": {"rows": "all"},
        "counterfactual": {"desired_range": [0, 15000], "total_CFs": 2, "rows": "Older smokers"},
        "causal": {
            "treatment_features": ["smoker", "bmi"],
            "heterogeneity_features": None,
            "treatment_cost": 100,
            "n_jobs": 1,
        },
        "cohorts": [
            {
                "name": "Older smokers",
                "filter": {
                    "and": [
                        {"column": "age", "op": ">=", "value": 50},
                        {"column": "smoker", "op": "==", "value": "yes"},
                    ]
                },
            }
        ],
    }
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(config))
    return tmp_path, config


def test_run_from_config(config_dir, capsys):
    folder, _ = config_dir
    assert main(["run", str(folder / "audit.yaml"), "--output", str(folder / "out")]) == 0
    bundle = _bundle_from_output(capsys.readouterr().out)
    doc = json.loads((bundle / A.INSIGHTS_JSON_FILE).read_text())
    assert doc["task_type"] == "regression"
    test = pd.read_parquet(folder / "test.parquet")
    expected = ((test.age >= 50) & (test.smoker == "yes")).sum()
    assert (doc["cohorts"][0]["name"], doc["cohorts"][0]["count"]) == ("Older smokers", expected)
    ea = doc["error_analysis"]
    assert ea["error_metric"] == "mean_absolute_error" and ea["heatmap"]["axes"][0]["feature"] == "smoker"
    assert max(n["depth"] for n in ea["tree"]["nodes"]) <= 2
    assert doc["explanation"]["method"] == "linear" and doc["explanation"]["n_rows"] == len(test)
    counterfactual = doc["counterfactual"]
    assert counterfactual["totals"]["rows"] == expected and counterfactual["desired_range"] == [0, 15000]
    causal = doc["causal"]  # all 1,000 train rows (fewer than the default sample), every feature for heterogeneity
    assert causal["fit"]["train_rows"] == 1000 and causal["fit"]["heterogeneity_features"] is None
    smoking = next(e for e in causal["global_effects"] if e["treatment"] == "smoker")
    assert (smoking["control"], smoking["level"]) == ("no", "yes")
    assert 15000 < smoking["point"] < 35000  # smokers' charges are ~$24k higher in this data
    # smoker is a sensitive feature here: estimated as an attribute, never given a policy
    assert [(p["treatment"], p["cost"]) for p in causal["policies"]] == [("bmi", 100.0)]
    assert next(t for t in causal["treatments"] if t["feature"] == "smoker")["role"] == "attribute"


@pytest.mark.parametrize(
    "change, match",
    [
        ({"colour": "blue"}, r"unknown config keys \['colour'\]"),
        ({"target_column": None}, r"missing the required keys \['target_column'\]"),
        ({"model": "nowhere.joblib"}, r"config `model`: .*nowhere.joblib does not exist"),
        ({"sensitive_features": "sex"}, r"`sensitive_features` must be a list"),
        ({"sample_size": "many"}, r"`sample_size` must be an integer"),
        ({"cohorts": "azure_cohorts.json"}, r"column 'TAX' is not a feature"),
        ({"cohorts": "missing.json"}, r"cohort file .*missing.json does not exist"),
        ({"error_analysis": {"max_depth": 0}}, r"`max_depth` must be an integer >= 1, got 0"),
        ({"error_analysis": {"depth": 3}}, r"config `error_analysis` has unknown options \['depth'\]"),
        ({"error_analysis": [3]}, r"config `error_analysis` must be a mapping"),
        ({"explainer": {"method": "shap"}}, r"`method` must be one of \['auto', 'tree', 'linear', 'mimic'\]"),
        ({"explainer": {"shard_index": 1}}, r"config `explainer` has unknown options \['shard_index'\]"),
        ({"counterfactual": {"desired_range": [5, 1]}}, r"`desired_range` must be \[low, high\] with low <= high"),
        ({"causal": {"heterogeneity_features": ["age"]}}, r"`treatment_features` must be a non-empty list"),
        (
            {"causal": {"treatment_features": ["bmi"], "treatment_cost": [1, 2]}},
            r"`treatment_cost` must have one value per treatment feature \(1\), got 2",
        ),
        # found before any step runs (rai_audit.preflight), where the step used to find it
        (
            {"causal": {"treatment_features": ["charges"]}},
            r"config `causal.treatment_features` names the target column 'charges'",
        ),
        # found by the step itself, reported through the local pipeline run
        (
            {"causal": {"treatment_features": ["region"], "categories": {"region": ["southwest", "southeast"]}}},
            r"run failed: .*`categories` for 'region' lists \['southwest', 'southeast'\], but the data also has",
        ),
    ],
)
def test_bad_config_exits_2_with_a_clear_message(config_dir, capsys, change, match):
    folder, config = config_dir
    (folder / "bad.yaml").write_text(yaml.safe_dump({**config, **change}))
    assert main(["run", str(folder / "bad.yaml"), "--output", str(folder / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rai-audit: error: ")
    assert re.search(match, err), err


def test_unreadable_config(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("model: [unclosed")
    assert main(["run", str(tmp_path / "c.yaml")]) == 2
    assert "is not valid YAML/JSON" in capsys.readouterr().err


def test_demo_runs_the_full_audit(demo_run):
    assert demo_run.code == 0
    out, tmp_path = demo_run.out, demo_run.folder
    bundle = tmp_path / _bundle_from_output(out)
    assert "NOT PASSED (2 of 8 targets missed)" in out and "model not registered" in out
    A.verify_manifest(bundle)
    doc = json.loads((bundle / A.INSIGHTS_JSON_FILE).read_text())
    assert doc["data"]["n_test"] == 16281 and doc["model_overview"]["overall"]["count"] == 16281
    assert 0.8 < doc["model_overview"]["overall"]["accuracy_score"] < 0.95
    assert [e["features"] for e in doc["fairness"]] == [["sex"], ["race"], ["sex", "race"]]
    assert {c["name"] for c in doc["cohorts"]} >= {"Under 30", "Misclassified"}
    assert (bundle / A.DASHBOARD_HTML_FILE).is_file()
    assert sum(n["count"] for n in doc["error_analysis"]["tree"]["nodes"] if n["leaf"]) == 16281
    assert doc["explanation"]["n_rows"] == 16281 and doc["explanation"]["method"] == "mimic"
    counterfactual = doc["counterfactual"]  # the demo's 200-row sample, in 2 shards
    assert counterfactual["totals"]["rows"] == 200 and counterfactual["rows_selection"]["merged_from"] == 2
    assert counterfactual["totals"]["valid"] > 0
    causal = doc["causal"]
    assert causal["fit"]["train_rows"] == 5000 and [t["feature"] for t in causal["treatments"]] == [
        "hours-per-week",
        "sex",
    ]
    # the demo's scorecard misses its demographic parity target, so the model is not registered
    run_dir = bundle.parents[1]
    card = json.loads((run_dir / "scorecard" / "scorecard" / "scorecard.json").read_text())
    assert not card["passed"] and card["n_missed"] == 2
    assert (run_dir / "scorecard" / "scorecard" / "scorecard.pdf").read_bytes().startswith(b"%PDF")
    assert not (run_dir / "register-model").exists()
    # ... and the audit is archived in the demo's SeaweedFS (stopped after the run, data kept)
    settings = storage_up(tmp_path / "demo-out" / "storage")
    try:
        [archived] = archive.list_audits(settings, "rai-audit", model="adult-income-demo")
        assert archived["run_id"] == doc["run_id"] and archived["passed"] is False
        assert f"archived: s3://rai-audit/{archived['audit']}" in out
    finally:
        storage_down(tmp_path / "demo-out" / "storage")


@pytest.mark.parametrize("pipeline", ["audit", "overview"])
def test_compile_writes_the_checked_in_yaml(tmp_path, monkeypatch, pipeline):
    monkeypatch.delenv("RAI_AUDIT_IMAGE_REGISTRY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["compile", "--pipeline", pipeline]) == 0
    name = f"{pipeline}_pipeline.yaml"
    assert (tmp_path / "pipelines" / name).read_text() == (REPO / "pipelines" / name).read_text()


def test_step_commands_are_dispatched(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["gather", "--help"])
    assert exit_info.value.code == 0
    assert "--constructor" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run audit.yaml", "demo"])
@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_parallel_tasks_must_be_auto_or_a_whole_number_of_at_least_one(capsys, command, value):
    with pytest.raises(SystemExit) as exit_info:
        main([*command.split(), "--parallel-tasks", value])
    assert exit_info.value.code == 2
    assert f"--parallel-tasks: must be 'auto' or a whole number >= 1, got {value!r}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run audit.yaml", "demo"])
@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 2), (3, 3), (16, 4)])
def test_parallel_tasks_auto_is_one_per_core_at_most_the_four_analyses(monkeypatch, command, cores, expected):
    monkeypatch.setattr("joblib.cpu_count", lambda *a, **k: cores)
    parser = _parser()
    assert parser.parse_args([*command.split(), "--parallel-tasks", "auto"]).parallel_tasks == expected
    assert parser.parse_args(command.split()).parallel_tasks == 1  # by default, as kfp.local runs them


# --- no traceback for a user's mistake or an interrupt; an interrupt ends every process ----------


def test_an_output_that_is_a_file_is_refused_in_one_line(config_dir, tmp_path, capsys):
    folder, _ = config_dir
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    cases = [
        (["run", str(folder / "audit.yaml"), "--output", str(a_file)], f"--output {a_file}: {a_file} is a file"),
        (["run", str(folder / "audit.yaml"), "--output", str(a_file / "out")], f"{a_file} is a file, not a folder"),
        (["demo", "--output", str(a_file)], f"--output {a_file}: {a_file} is a file"),
        (["compile", "--target", "argo", "--output", str(a_file)], f"{a_file} is a file, not a folder"),
        (["compile", "--output", str(a_file / "audit.yaml")], f"{a_file} is a file, not a folder"),
        (["compile", "--output", str(tmp_path)], f"--output {tmp_path} is a folder; give the file to write"),
        (["storage", "up", "--dir", str(a_file)], f"--dir {a_file}: {a_file} is a file"),
        (["audits", "fetch", "audits/m/1/x", "--to", str(a_file)], f"--to {a_file}: {a_file} is a file"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        [line] = err.strip().splitlines()
        assert line.startswith("rai-audit: error: ") and message in line, (argv, err)
    assert a_file.read_text() == "not a folder"


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    import rai_audit.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_compile", interrupted)
    assert cli.main(["compile"]) == 130
    out = capsys.readouterr()
    assert out.err == "rai-audit: interrupted (Ctrl-C); nothing more was done\n" and "Traceback" not in out.out


def _process_table() -> dict[int, dict]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            # state, parent, process group, start time (ticks since boot: tells a reused pid apart)
            table[int(entry)] = {
                "state": fields[0],
                "ppid": int(fields[1]),
                "pgid": int(fields[2]),
                "start": fields[19],
                "cmdline": cmdline,
            }
    return table


def _tree(table: dict[int, dict], root: int) -> dict[int, dict]:
    found, todo = {}, [root]
    while todo:
        parent = todo.pop()
        for pid, info in table.items():
            if info["ppid"] == parent and pid not in found:
                found[pid] = info
                todo.append(pid)
    return found


SLOW_MODULE = "rai_audit_test_slow_predictions"


def _slow_model(model: Path, folder: Path) -> Path:
    """``model`` behind a step that waits 3 s in each prediction: a step is then surely running
    when the signal comes (insurance's own steps can all end within half a second of being seen).
    The step is a function of a module in ``folder``, which the run finds on its PYTHONPATH."""
    source = folder / f"{SLOW_MODULE}.py"
    source.write_text("import time\n\n\ndef wait_then_pass(X):\n    time.sleep(3)\n    return X\n")
    spec = importlib.util.spec_from_file_location(SLOW_MODULE, source)
    module = importlib.util.module_from_spec(spec)
    sys.modules[SLOW_MODULE] = module  # pickle writes the function as a reference to its module
    spec.loader.exec_module(module)
    slow = Pipeline([("wait", FunctionTransformer(module.wait_then_pass)), *joblib.load(model).steps])
    joblib.dump(slow, folder / "slow_model.joblib")
    return folder / "slow_model.joblib"


@pytest.mark.parametrize(
    "signum, code, message, flags",
    [
        (signal.SIGINT, 130, "rai-audit: interrupted (Ctrl-C); nothing more was done", []),
        (signal.SIGTERM, 143, "rai-audit: stopped by SIGTERM; nothing more was done", []),
        # the main thread then waits for two tasks' threads, not in a read of one task's output
        (signal.SIGINT, 130, "rai-audit: interrupted (Ctrl-C); nothing more was done", ["--parallel-tasks", "2"]),
    ],
)
def test_a_signal_to_the_run_alone_ends_its_whole_process_tree(insurance_case, tmp_path, signum, code, message, flags):
    """kfp.local runs each step as `sh` then Python, or here forked from the run's starter; the
    signal goes to `rai-audit run` only (not its process group, as a terminal's Ctrl-C would),
    while a step runs: the steps, the starter and their children all end."""
    config = {
        "model": str(_slow_model(insurance_case.model, tmp_path)),
        "allow_pickle": True,
        "train_data": str(insurance_case.train),
        "test_data": str(insurance_case.test),
        "target_column": "charges",
        "task_type": "regression",
        "sensitive_features": ["sex"],
        "error_analysis": {},
        "explainer": {},
    }
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(config))
    command = Path(sys.executable).with_name("rai-audit")
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "rai_audit.cli"]
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        # A session of its own: its process group is its pid, so whatever it leaves behind is found.
        run = subprocess.Popen(
            [*argv, "run", str(tmp_path / "audit.yaml"), "--output", str(tmp_path / "out"), *flags],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.getenv("PYTHONPATH")]))},
            start_new_session=True,
            # As from a terminal: a shell's background job (`.ci/run &`) inherits SIGINT ignored,
            # which the run rightly keeps ignoring.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        # A step forked from the run's starter (rai_audit.preloaded_tasks) still running half a
        # second after it was seen: well inside it (the first tasks, such as the input
        # fingerprint, can end sooner or come before the starter; then the next step is waited for).
        deadline, steps = time.monotonic() + 90, []
        while not steps and run.poll() is None and time.monotonic() < deadline:
            table = _tree(_process_table(), run.pid)
            seen = [
                pid
                for pid, info in table.items()
                if "rai_audit.preloaded_tasks" in table.get(info["ppid"], {}).get("cmdline", "")
                and info["state"] not in "ZX"
            ]
            if not seen:
                time.sleep(0.05)
                continue
            time.sleep(0.5)
            tree = _tree(_process_table(), run.pid)
            steps = [pid for pid in seen if pid in tree and tree[pid]["state"] not in "ZX"]
        assert steps, f"no step kept running (exit {run.poll()}): {(tmp_path / 'err.txt').read_text()[-2000:]}"
        os.kill(run.pid, signum)  # the parent alone
        assert run.wait(timeout=30) == code
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert (tmp_path / "err.txt").read_text() == message + "\n"
    assert "dashboard bundle:" not in (tmp_path / "out.txt").read_text()  # it stopped, it did not finish
    time.sleep(0.2)
    now = _process_table()
    survivors = {
        pid: info
        for pid, info in tree.items()
        if pid in now and now[pid]["start"] == info["start"] and now[pid]["state"] not in "ZX"
    }
    survivors.update({pid: info for pid, info in now.items() if info["pgid"] == run.pid and info["state"] not in "ZX"})
    assert survivors == {}
