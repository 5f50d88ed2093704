"""What `rai-audit run` and `rai-audit demo` print: a line per task, the full log in a file, a
failed task's last lines and its error; and the kfp.local internals that rests on."""

# No `from __future__ import annotations`: KFP reads the components' annotations.
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Output

from rai_audit.cli import _TaskDisplay, main
from rai_audit.core import artifacts as A
from rai_audit.local_run import (
    LOG_FILE,
    LONGEST_ANALYSES_FIRST,
    TAIL_LINES,
    THREAD_LIMIT_VARS,
    ArtifactOutput,
    TaskFailed,
    TaskRun,
    _raised,
    _RunLog,
    run_pipeline_locally,
)
from rai_audit.pipelines import build_audit_pipeline

# --- kfp.local, as local_run relies on it (this breaks when kfp.local changes) ----------------


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count_words(text: str, counted: Output[Artifact]):
    words = text.split()
    for i, word in enumerate(words):
        print(f"word {i}: {word}")
    with open(counted.path, "w") as file:
        file.write(str(len(words)))
    counted.metadata["words"] = len(words)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def number_lines(shard: int, lines: int) -> int:
    for i in range(lines):
        print(f"shard {shard} line {i}", flush=True)
    return shard * lines


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def refuse(column: str):
    from rai_audit.core import RAIInputError

    print("checking the column")
    raise RAIInputError(f"column {column!r} is not in the data")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def crash():
    print("dividing")
    print(1 / 0)


@dsl.pipeline(name="words")
def words_pipeline(text: str, data_uri: str):
    dsl.importer(artifact_uri=data_uri, artifact_class=Dataset, reimport=False)  # no step runs: not told
    count_words(text=text)
    with dsl.ParallelFor([0, 1]) as shard:
        number_lines(shard=shard, lines=30)


@dsl.pipeline(name="refusing")
def refusing_pipeline(column: str):
    refuse(column=column)


@dsl.pipeline(name="crashing")
def crashing_pipeline():
    crash()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def task_started(self, task: TaskRun) -> None:
        self.events.append(("started", task.label, task.state))

    def task_ended(self, task: TaskRun) -> None:
        self.events.append(("ended", task.label, task.state))


def _kfp_free(line: str) -> bool:
    """Not a line kfp.local writes itself (its records, its rules)."""
    return not re.match(r"\d\d:\d\d:\d\d\.\d{3} - [A-Z]+ - |-{20,}$", line)


def test_tasks_their_outputs_and_their_own_log_lines_from_kfp_local(tmp_path):
    (tmp_path / "data.csv").write_text("x\n1\n")
    arguments = {"text": "three little words", "data_uri": str(tmp_path / "data.csv")}
    heard = Recorder()
    level = logging.getLogger().level
    run_pipeline_locally(words_pipeline, arguments, tmp_path / "out", enable_caching=True, progress=heard)
    labels = ["count-words", "number-lines shard 1", "number-lines shard 2"]
    assert sorted(label for event, label, _ in heard.events if event == "started") == labels  # not the importer
    assert sorted((label, state) for event, label, state in heard.events if event == "ended") == [
        (label, "done") for label in labels
    ]
    [run] = [p for p in (tmp_path / "out" / "pipeline_root").iterdir() if p.name.startswith("words-")]
    log = (tmp_path / "out" / LOG_FILE).read_text()
    assert "\x1b[" not in log and "Executing task 'count-words'" in log
    assert "Cleaned up workspace" in log  # logged after the tasks, outside kfp.local's own set-up
    for i, word in enumerate(["three", "little", "words"]):
        assert f"    count-words | word {i}: {word}\n" in log
    for shard in (0, 1):  # the two shards ran side by side; each line is whole and labelled
        for i in range(30):
            assert f"    number-lines shard {shard + 1} | shard {shard} line {i}\n" in log

    # kfp.local's logging set-up races when ParallelFor tasks end together; no handler of the
    # run's log may stay on the root logger (it would write to a closed file in the next run)
    assert not any(isinstance(getattr(h, "stream", None), _RunLog) for h in logging.getLogger().handlers)
    assert logging.getLogger().level == level

    # The same again with the cache: every task is reused, its outputs those of the first run.
    again = Recorder()
    tasks = []
    again.task_ended = lambda task: tasks.append(task)
    run_pipeline_locally(words_pipeline, arguments, tmp_path / "out", enable_caching=True, progress=again)
    counted = next(t for t in tasks if t.name == "count-words")
    assert counted.state == "reused"
    assert counted.outputs["counted"] == ArtifactOutput(run / "count-words" / "counted", {"words": 3.0})
    assert (run / "count-words" / "counted").read_text() == "3"
    shards = sorted((t for t in tasks if t.name == "number-lines"), key=lambda t: t.shard)
    assert [(t.shard, t.outputs) for t in shards] == [(0, {"Output": 0}), (1, {"Output": 30})]
    assert "Task count-words cache hit" in (tmp_path / "out" / LOG_FILE).read_text()


def test_a_task_keeps_its_own_log_lines(tmp_path):
    (tmp_path / "data.csv").write_text("x\n1\n")
    tasks: list[TaskRun] = []
    heard = Recorder()
    heard.task_ended = lambda task: tasks.append(task)
    run_pipeline_locally(
        words_pipeline, {"text": "a b", "data_uri": str(tmp_path / "data.csv")}, tmp_path / "out", progress=heard
    )
    by_label = {t.label: t for t in tasks}
    assert [line for line in by_label["count-words"].log_lines() if line.startswith("word")] == [
        "word 0: a",
        "word 1: b",
    ]
    for shard in (0, 1):
        lines = by_label[f"number-lines shard {shard + 1}"].log_lines()
        assert [line for line in lines if line.startswith("shard")] == [f"shard {shard} line {i}" for i in range(30)]
        assert [line for line in lines if not _kfp_free(line)] == []
        assert by_label[f"number-lines shard {shard + 1}"].tail()[-1].startswith("[KFP Executor")


@pytest.mark.parametrize(
    "pipeline, arguments, message, last_line",
    [
        (
            refusing_pipeline,
            {"column": "salary"},
            "the local pipeline run failed: refuse: column 'salary' is not in the data",
            "rai_audit.core._errors.RAIInputError: column 'salary' is not in the data",
        ),
        (
            crashing_pipeline,
            {},
            "the local pipeline run failed: crash failed with ZeroDivisionError: division by zero",
            "ZeroDivisionError: division by zero",
        ),
    ],
)
def test_a_failed_task_comes_back_with_its_last_lines_and_its_error(tmp_path, pipeline, arguments, message, last_line):
    with pytest.raises(TaskFailed) as failed:
        run_pipeline_locally(pipeline, arguments, tmp_path)
    assert str(failed.value) == message
    tail = failed.value.task.tail()
    assert tail[-1] == last_line and "Traceback (most recent call last):" in tail
    assert all(_kfp_free(line) for line in tail), tail
    assert len(tail) <= TAIL_LINES
    log = (tmp_path / LOG_FILE).read_text().splitlines()
    assert log[-1] == f"rai-audit: error: {message}"
    assert f"    {failed.value.task.label} | {last_line}" in log


def test_the_exception_line_of_a_traceback():
    def chained():
        try:
            {}["key"]
        except KeyError as err:
            raise ValueError("a bad value\non two lines") from err

    try:
        chained()
    except ValueError as err:
        text = "".join(traceback.format_exception(err))
    lines = ["some output", *text.splitlines(), ""]
    assert _raised(lines) == "ValueError: a bad value"
    assert _raised(["no traceback here"]) is None
    # a real one, as a step prints it
    done = subprocess.run(
        [sys.executable, "-c", "from rai_audit.core import RAIInputError\nraise RAIInputError('no column x')"],
        capture_output=True,
        text=True,
    )
    assert _raised(done.stderr.splitlines()) == "rai_audit.core._errors.RAIInputError: no column x"


# --- several tasks at once (parallel_tasks; kfp.local alone runs one at a time) ----------------


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def meet(me: str, other: str, folder: str) -> str:
    """Says it started, then waits for ``other`` to say so: it ends only if the two ran side by side."""
    import pathlib
    import time

    (pathlib.Path(folder) / me).touch()
    deadline = time.monotonic() + 60
    while not (pathlib.Path(folder) / other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} did not start while {me} ran")
        time.sleep(0.05)
    return me


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def join(first: str, second: str) -> str:
    return f"{first}+{second}"


@dsl.pipeline(name="meeting")
def meeting_pipeline(folder: str):
    a = meet(me="a", other="b", folder=folder)
    b = meet(me="b", other="a", folder=folder)
    join(first=a.output, second=b.output)


@dsl.pipeline(name="failing-beside")
def failing_beside_pipeline(column: str, folder: str):
    refused = refuse(column=column)
    count_words(text="never counted").after(refused)
    beside = meet(me="beside", other="beside", folder=folder)  # needs nothing of refuse
    join(first=beside.output, second="after")


@dsl.pipeline(name="four-joins")
def four_joins_pipeline():
    for n in range(4):
        join(first=str(n), second="x")


def _run_keeping_ended(pipeline, arguments, output, parallel_tasks, ended: dict[str, TaskRun], **run: Any) -> None:
    """Run the pipeline; each task that ends goes into ``ended`` by its label (also when the run fails)."""
    heard = Recorder()
    heard.task_ended = lambda task: ended.setdefault(task.label, task)
    run_pipeline_locally(pipeline, arguments, output, parallel_tasks=parallel_tasks, progress=heard, **run)


def test_two_tasks_at_once_run_side_by_side_and_a_task_waits_for_its_inputs(tmp_path):
    (tmp_path / "met").mkdir()
    tasks: dict[str, TaskRun] = {}
    _run_keeping_ended(meeting_pipeline, {"folder": str(tmp_path / "met")}, tmp_path / "out", 2, tasks)
    assert {label: task.state for label, task in tasks.items()} == {"meet": "done", "meet-2": "done", "join": "done"}
    assert tasks["join"].outputs == {"Output": "a+b"}
    assert tasks["join"].started >= max(tasks[t].started + tasks[t].seconds for t in ("meet", "meet-2"))


@pytest.mark.parametrize("first", [("join-4", "join-3"), ("join", "join-2")])
def test_the_tasks_named_first_start_before_the_other_ready_tasks(tmp_path, first):
    """Four independent tasks, two slots: the two named first start at once, the other two only
    after one of them ended. (kfp.local's own order starts at most one of the two pairs first.)"""
    tasks: dict[str, TaskRun] = {}
    _run_keeping_ended(four_joins_pipeline, {}, tmp_path / "out", 2, tasks, first_tasks=first)
    assert {label: task.state for label, task in tasks.items()} == dict.fromkeys(
        ("join", "join-2", "join-3", "join-4"), "done"
    )
    others = set(tasks) - set(first)
    assert min(tasks[t].started for t in others) >= min(tasks[t].started + tasks[t].seconds for t in first)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def thread_limits(names: list) -> str:
    import json
    import os

    return json.dumps({name: os.environ.get(name) for name in names})


@dsl.pipeline(name="thread-limits")
def thread_limits_pipeline(names: list):
    thread_limits(names=names)
    thread_limits(names=names)


@pytest.mark.parametrize("parallel_tasks", [1, 2])
def test_tasks_run_side_by_side_get_their_share_of_the_cores_unless_the_user_set_one(
    tmp_path, monkeypatch, parallel_tasks
):
    """Several tasks at once: each task's thread pools (joblib's n_jobs -1, OpenMP, BLAS) get
    cores // tasks, as a cluster's pods get their CPU limits; one at a time, every core."""
    import joblib

    monkeypatch.delenv("LOKY_MAX_CPU_COUNT", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the user's own limit
    names = ["LOKY_MAX_CPU_COUNT", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"]
    tasks: dict[str, TaskRun] = {}
    _run_keeping_ended(thread_limits_pipeline, {"names": names}, tmp_path / "out", parallel_tasks, tasks)
    share = str(max(joblib.cpu_count() // 2, 1)) if parallel_tasks == 2 else None
    expected = {"LOKY_MAX_CPU_COUNT": share, "OPENBLAS_NUM_THREADS": share, "OMP_NUM_THREADS": "7"}
    assert [json.loads(t.outputs["Output"]) for t in tasks.values()] == [expected, expected]
    assert set(THREAD_LIMIT_VARS) >= set(names)
    assert "LOKY_MAX_CPU_COUNT" not in os.environ and os.environ["OMP_NUM_THREADS"] == "7"  # as before the run


def test_the_audit_pipeline_has_the_analyses_a_local_run_starts_first():
    """A renamed analysis would silently lose its place at the front."""
    tasks = build_audit_pipeline(run_times=False).pipeline_spec.root.dag.tasks
    assert set(LONGEST_ANALYSES_FIRST) <= set(tasks)


def test_one_task_at_a_time_is_kfp_locals_own_order(tmp_path):
    (tmp_path / "met").mkdir()
    for name in ("a", "b"):  # each meet finds the other's mark: one at a time does not wait forever
        (tmp_path / "met" / name).touch()
    tasks: dict[str, TaskRun] = {}
    _run_keeping_ended(meeting_pipeline, {"folder": str(tmp_path / "met")}, tmp_path / "out", 1, tasks)
    first, second = sorted((tasks["meet"], tasks["meet-2"]), key=lambda t: t.started)
    assert second.started >= first.started + first.seconds


def test_a_failed_task_skips_what_needs_it_while_the_other_tasks_go_on(tmp_path):
    (tmp_path / "met").mkdir()
    tasks: dict[str, TaskRun] = {}
    with pytest.raises(TaskFailed) as failed:
        _run_keeping_ended(
            failing_beside_pipeline, {"column": "salary", "folder": str(tmp_path / "met")}, tmp_path / "out", 2, tasks
        )
    assert str(failed.value) == "the local pipeline run failed: refuse: column 'salary' is not in the data"
    assert {label: t.state for label, t in tasks.items()} == {"refuse": "failed", "meet": "done", "join": "done"}
    assert "Skipping task count-words: upstream task(s) ['refuse'] failed." in (tmp_path / "out" / LOG_FILE).read_text()


def test_parallel_tasks_must_be_at_least_one(tmp_path):
    with pytest.raises(ValueError, match="`max_tasks` must be at least 1, got 0"):
        run_pipeline_locally(crashing_pipeline, {}, tmp_path, parallel_tasks=0)


# --- the display -----------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _finished(name: str, **outputs) -> TaskRun:
    task = TaskRun(name, state="done", seconds=2.04)
    task.outputs = outputs
    return task


def test_a_terminal_gets_a_live_display_and_a_line_per_task():
    screen = Terminal()
    with _TaskDisplay(screen, verbose=False) as display:
        task = TaskRun("error-analysis")
        display.task_started(task)
        task.state, task.seconds = "done", 2.04
        task.outputs = {"error_analysis": ArtifactOutput(Path("x"), {"leaves": 8.0})}
        display.task_ended(task)
    shown = screen.getvalue()
    assert "\x1b[" in shown  # rich's styles and cursor moves
    assert "started" not in shown  # the live display stands for the start line
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    assert re.search(r"done  error-analysis +2\.0 s  8 leaves in the error tree", plain)


def test_a_pipe_gets_a_line_as_each_task_starts_and_ends():
    out = io.StringIO()
    with _TaskDisplay(out, verbose=False) as display:
        task = TaskRun("constructor")
        display.task_started(task)
        task.state, task.seconds = "done", 5.06
        task.outputs = {
            "insights": ArtifactOutput(Path("x"), {"n_test": 16281.0, "task_type": "binary_classification"})
        }
        display.task_ended(task)
        reused = _finished("causal", causal=ArtifactOutput(Path("y"), {"treatments": ["age"], "fit_rows": 500.0}))
        reused.state = "reused"
        display.task_started(reused)
        display.task_ended(reused)
    assert out.getvalue().splitlines() == [
        "started  constructor",
        "   done  constructor                 5.1 s  16,281 test rows, binary classification",
        "started  causal",
        " reused  causal                             effects of age (500 train rows)",
    ]


# --- rai-audit run and demo ------------------------------------------------------------------


@pytest.fixture
def audit_folder(insurance_case, tmp_path):
    """The insurance model and data beside an audit config (no analysis yet)."""
    for name in ("model", "train", "test"):
        shutil.copy2(getattr(insurance_case, name), tmp_path / getattr(insurance_case, name).name)
    config = {
        "model": insurance_case.model.name,
        "allow_pickle": True,
        "train_data": insurance_case.train.name,
        "test_data": insurance_case.test.name,
        "target_column": "charges",
        "task_type": "regression",
        "sensitive_features": ["sex"],
    }
    return tmp_path, config


def test_a_step_that_refuses_shows_its_last_lines_then_its_error_and_exits_2(audit_folder, capsys):
    folder, config = audit_folder
    # passes the preflight (region is a feature); the causal step finds the third region in the data
    config["causal"] = {"treatment_features": ["region"], "categories": {"region": ["southwest", "southeast"]}}
    (folder / "audit.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(folder / "audit.yaml"), "--output", str(folder / "out")]) == 2
    captured = capsys.readouterr()
    [error] = captured.err.splitlines()
    assert re.fullmatch(
        r"rai-audit: error: the local pipeline run failed: causal: `categories` for 'region' lists "
        r"\['southwest', 'southeast'\], but the data also has .*",
        error,
    )
    out = captured.out.splitlines()
    assert re.fullmatch(r"FAILED  causal +\d+\.\d s", out[out.index("started  causal") + 1].strip())
    assert out[-1] == f"full log: {folder / 'out' / LOG_FILE}"
    header = next(i for i, line in enumerate(out) if line.startswith("the last "))
    assert out[header] == f"the last {TAIL_LINES} lines of causal's log:"
    tail = [line.removeprefix("  | ") for line in out[header + 1 : -1]]
    assert len(tail) == TAIL_LINES
    assert tail[-1] == "rai_audit.core._errors.RAIInputError: " + error.split("causal: ", 1)[1]
    # the terminal shows no more of the log than that; the file holds all of it
    assert sum("[KFP Executor" in line for line in out) == sum("[KFP Executor" in line for line in tail)
    log = (folder / "out" / LOG_FILE).read_text().splitlines()
    causal = [line.removeprefix("    causal | ") for line in log if line.startswith("    causal | ")]
    assert causal[-TAIL_LINES - 1 : -1] == tail and set(causal[-1]) == {"-"}  # then kfp.local's rule
    assert "Executing task 'constructor'" in "\n".join(log) and "Traceback (most recent call last):" in causal
    assert any(line.startswith("    constructor | [KFP Executor") for line in log)
    assert log[-1] == error


def test_verbose_shows_the_whole_log_as_it_goes(audit_folder, capsys):
    folder, config = audit_folder
    (folder / "audit.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(folder / "audit.yaml"), "--output", str(folder / "out"), "--verbose"]) == 0
    out = capsys.readouterr().out.splitlines()
    log = (folder / "out" / LOG_FILE).read_text().splitlines()
    assert any(line.startswith("    constructor | [KFP Executor") for line in log)
    shown = iter(out)  # the log's lines, in order, among the task lines
    assert all(line in shown for line in log)
    assert [line.split()[:2] for line in out if re.match(r" *(started|done) ", line)] == [
        ["started", "fingerprint-inputs"],
        ["done", "fingerprint-inputs"],
        ["started", "constructor"],
        ["done", "constructor"],
        ["started", "gather"],
        ["done", "gather"],
    ]


def test_the_demo_prints_a_line_per_task_and_the_log_holds_the_rest(demo_run):
    assert demo_run.code == 0
    tmp_path = demo_run.folder
    out = demo_run.out.splitlines()
    assert len(out) < 40, demo_run.out
    assert demo_run.err == ""
    bundle = tmp_path / next(line for line in out if line.startswith("dashboard bundle: ")).split(": ", 1)[1]
    doc = json.loads((bundle / A.INSIGHTS_JSON_FILE).read_text())
    ended = {}
    for line in out:
        found = re.fullmatch(r" *(started|done)  (\S+(?: shard \d)?) *(\d+\.\d s|\d+ min \d\d s)?(?:  (.*))?", line)
        if found and found[1] == "done":
            ended[found[2]] = found[4] or ""
    steps = ["fingerprint-inputs", "constructor", "error-analysis", "causal", "merge-explanations", "gather"]
    steps += ["counterfactual shard 1", "counterfactual shard 2", "explainer shard 1", "explainer shard 2"]
    steps += ["merge-counterfactuals", "find-baseline", "scorecard", "publish"]
    assert sorted(ended) == sorted(steps)
    assert sum(line.lstrip().startswith("started  ") for line in out) == len(steps)
    # the key figures, against the bundle
    assert ended["constructor"] == f"{doc['data']['n_test']:,} test rows, binary classification"
    leaves = sum(node["leaf"] for node in doc["error_analysis"]["tree"]["nodes"])
    assert ended["error-analysis"] == f"{leaves} leaves in the error tree"
    explained = doc["explanation"]
    assert ended["merge-explanations"] == f"{explained['method']} explanations of {explained['n_rows']:,} rows"
    totals = doc["counterfactual"]["totals"]
    assert ended["merge-counterfactuals"] == f"{totals['valid']:,} valid counterfactuals for {totals['rows']:,} rows"
    treatments = ", ".join(t["feature"] for t in doc["causal"]["treatments"])
    assert ended["causal"] == f"effects of {treatments} ({doc['causal']['fit']['train_rows']:,} train rows)"
    assert ended["gather"] == f"dashboard with {', '.join(sorted(doc['insights']))}"
    card = json.loads((bundle.parents[1] / "scorecard" / "scorecard" / "scorecard.json").read_text())
    assert ended["scorecard"] == f"NOT PASSED ({card['n_missed']} of {card['n_targets']} targets missed)"
    assert ended["publish"].startswith("archived: s3://rai-audit/audits/adult-income-demo/")
    assert out[-1] == f"full log: {Path('demo-out') / LOG_FILE}"
    # the log file holds what the terminal did not show
    log = (tmp_path / "demo-out" / LOG_FILE).read_text()
    assert not any("[KFP Executor" in line or "Executing task" in line for line in out)
    for step in steps:
        assert f"    {step} | [KFP Executor" in log, step
    assert "Pipeline 'rai-audit' finished with status SUCCESS" in log
