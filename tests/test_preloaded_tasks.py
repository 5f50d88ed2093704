"""Tasks forked from the run's starter (rai_audit.preloaded_tasks) run as kfp.local runs them:
the same environment, working folder, arguments, output and exit status, in a process of their
own whose libraries are already imported; what the starter cannot take, kfp.local runs."""

# No `from __future__ import annotations`: KFP reads the components' annotations.
import json
import os
import re
import time

import pytest
from kfp import dsl, local
from kfp.dsl import Artifact, Output

from rai_audit.preloaded_tasks import KFP_SCRIPT, TaskStarter, preloaded_tasks

SHELL_VARIABLES = {"PWD", "SHLVL", "_", "OLDPWD"}  # what `sh -c` adds to a kfp.local task's environment


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def describe_process(report: Output[Artifact]):
    import json
    import os
    import sys

    with open(report.path, "w") as file:
        json.dump(
            {
                "ppid": os.getppid(),
                "cwd": os.getcwd(),
                "env": dict(os.environ),
                "argv": sys.argv[3:],  # after --component_module_path and its (temporary) file
                "sklearn_imported": "sklearn" in sys.modules,
            },
            file,
        )
    for i in range(3):
        print(f"line {i}")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fail_with(message: str):
    raise ValueError(message)


@dsl.pipeline(name="described")
def described_pipeline() -> Artifact:
    return describe_process().output


@dsl.pipeline(name="failing")
def failing_pipeline():
    fail_with(message="no such column: 'income'")


def loaded(starter: TaskStarter) -> TaskStarter:
    """The starter, once it has imported every library it preloads."""
    deadline = time.monotonic() + 120
    while not starter.loaded:
        assert time.monotonic() < deadline and not starter.closed, "the starter never became ready"
        time.sleep(0.1)
    return starter


def without_shell_variables(environment: dict) -> dict:
    return {k: v for k, v in environment.items() if k not in SHELL_VARIABLES}


def described(output) -> dict:
    with open(output.path) as file:
        return json.load(file)


@pytest.fixture
def kfp_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))


def test_a_forked_task_runs_as_kfp_local_runs_it_with_its_libraries_already_imported(kfp_local, capfd):
    plain = described(described_pipeline().output)
    plain_log = capfd.readouterr().out
    with preloaded_tasks() as starter:
        loaded(starter)
        forked = described(described_pipeline().output)
        forked_log = capfd.readouterr().out
    assert forked["ppid"] == starter.process.pid and plain["ppid"] != starter.process.pid
    assert forked["sklearn_imported"] and not plain["sklearn_imported"]
    assert forked["cwd"] == plain["cwd"] == os.getcwd()
    # the same arguments; the executor input names each run's own folder
    assert forked["argv"][0] == plain["argv"][0] == "--executor_input" and forked["argv"][2:] == plain["argv"][2:]
    run_folder = re.compile(r"described-[0-9-]+")
    assert run_folder.sub("", forked["argv"][1]) == run_folder.sub("", plain["argv"][1])
    # the environment kfp.local gives, but for what the shell sets in it
    assert without_shell_variables(plain["env"]) == without_shell_variables(forked["env"])
    assert forked["env"]["_KFP_RUNTIME"] == "true"
    for log in (plain_log, forked_log):  # the task's output, line by line, as it came
        assert re.search(r"^ *line 0\n *line 1\n *line 2\n", log, re.M)
    assert starter.process.poll() is not None  # ended with the run


def test_a_forked_task_that_fails_fails_with_its_own_error(kfp_local, capfd):
    with preloaded_tasks() as starter:
        loaded(starter)
        with pytest.raises(RuntimeError):
            failing_pipeline()
    log = capfd.readouterr().out
    assert "ValueError: no such column: 'income'" in log and "Traceback (most recent call last)" in log
    assert not starter.exits  # every exit status was read


def test_what_the_starter_cannot_take_is_left_to_kfp_local(monkeypatch):
    with preloaded_tasks() as starter:
        assert starter.run(["sh", "-c", "echo not a component"], None) is None
        loaded(starter)
        assert starter.run(["sh", "-c", "echo not a component"], None) is None
        kfp_like = ["sh", "-ec", "echo another script", "source", "--executor_input", "{}"]
        assert starter.run(kfp_like, None) is None
        # A changed environment (the run's, or kfp's variables for the task): the libraries the
        # starter loaded read the one it started with (OpenBLAS its OPENBLAS_NUM_THREADS, say).
        described_command = _kfp_command()
        assert KFP_SCRIPT.fullmatch(described_command[2])
        monkeypatch.setenv("RAI_AUDIT_TEST_CHANGED", "1")
        assert starter.run(described_command, None) is None
        monkeypatch.delenv("RAI_AUDIT_TEST_CHANGED")
        assert starter.run(described_command, {"RAI_AUDIT_TEST_CHANGED": "1"}) is None


def _kfp_command() -> list[str]:
    """describe_process's command as kfp.local runs it (its executor input left out)."""
    container = describe_process.component_spec.implementation.container
    return [*container.command, "--executor_input", "{}", "--function_to_execute", "describe_process"]
