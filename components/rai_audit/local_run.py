"""Run a pipeline on this machine with ``kfp.local`` (SubprocessRunner, no venv per task).

kfp.local prints every task's log to stdout (about 1,300 lines for the demo, JSON dumps
included). Here the whole log goes to a file in the output folder (``LOG_FILE``); a
``progress`` object hears when each task starts and ends, with its outputs' metadata; a failed
task comes back in ``TaskFailed`` with its last log lines and its error.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import inspect
import io
import logging
import os
import re
import signal
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from kfp import local

from rai_audit import kfp_local_compat
from rai_audit.core import ArtifactIntegrityError, RAIInputError
from rai_audit.pipelines import build_audit_pipeline
from rai_audit.preloaded_tasks import preloaded_tasks

LOG_FILE = "rai-audit-run.log"  # in the output folder; each run writes it anew
# Exceptions by which a step refuses the user's input (TargetsMissed: rai_audit.steps.scorecard's,
# with fail_on_missed_target); any other exception in a step is a bug.
USER_ERRORS = (RAIInputError.__name__, ArtifactIntegrityError.__name__, "TargetsMissed")
TAIL_LINES = 20  # of a failed task's log, shown with its error
_KEPT_LINES = 500  # of each task's log kept in memory (the file has them all)
# The audit's analyses, longest first on every data set benchmarked (Adult, the wide data, a
# million rows: bench/README.md). With fewer task slots than analyses, started in another order,
# the causal step could run alone at the end while a core idles (~10 s more on Adult, 2 cores).
LONGEST_ANALYSES_FIRST = ("causal", "counterfactual", "explainer", "error-analysis")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp.local colours task names and statuses
# What a task's thread pools read for their size: joblib's count of cores (n_jobs -1, the
# explainer's tree SHAP threads), then the variables joblib sets for its own workers
# (joblib._parallel_backends.ParallelBackendBase.MAX_NUM_THREADS_VARS: OpenMP, BLAS, numba).
THREAD_LIMIT_VARS = (
    "LOKY_MAX_CPU_COUNT",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def interrupted(signum: int) -> KeyboardInterrupt:
    """SIGINT or SIGTERM stopped a local run: a KeyboardInterrupt (exactly that type: Popen's
    ``__exit__`` then waits 0.25 s for a step instead of until it ends) with ``signum``."""
    err = KeyboardInterrupt(signal.Signals(signum).name)
    err.signum = signum
    return err


_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37


def _processes_under(root: int) -> list[tuple[int, str]]:
    """(pid, state) of every descendant of ``root``, from /proc."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()  # the name in () may hold spaces
        except OSError:  # ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append((int(entry.name), fields[0].decode()))
    found, todo = [], [root]
    while todo:
        for pid, state in children.get(todo.pop(), []):
            found.append((pid, state))
            todo.append(pid)
    return found


def end_process_tree(keep: set[int] = frozenset(), *, grace: float = 5.0) -> None:
    """End every process this one started (but ``keep``): SIGTERM, SIGKILL after ``grace``
    seconds, and reap them. As a child subreaper (see ``_ends_its_process_tree``) this
    process also gets back the orphans of a step it ended (a step's own workers)."""
    me, start = os.getpid(), time.monotonic()
    while True:
        tree = [(pid, state) for pid, state in _processes_under(me) if pid not in keep]
        for pid, state in tree:
            if state == "Z":
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)  # ours (a direct child or an orphan given back): reaped
        alive = [pid for pid, state in tree if state != "Z"]
        if not alive or time.monotonic() - start > 4 * grace:
            return
        late = time.monotonic() - start > grace
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL if late else signal.SIGTERM)
        time.sleep(0.05)


def _subreaper(value: int | None = None) -> int | None:
    """Read (no ``value``) or set PR_SET_CHILD_SUBREAPER; None where prctl is not there."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if value is None:
            current = ctypes.c_int(0)
            return current.value if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(current), 0, 0, 0) == 0 else None
        return value if libc.prctl(_PR_SET_CHILD_SUBREAPER, value, 0, 0, 0) == 0 else None
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def _ends_its_process_tree():
    """SIGINT or SIGTERM during the run raise ``interrupted(signum)`` here; on any way out by an
    exception every process the run started is ended. kfp.local runs each step as a
    subprocess (``sh`` then Python), which a signal to this process alone would leave running."""
    if threading.current_thread() is not threading.main_thread() or not os.path.isdir("/proc"):
        yield
        return
    me = os.getpid()
    keep = {pid for pid, _ in _processes_under(me)}  # started before the run (the demo's storage server)
    was_subreaper = _subreaper()
    _subreaper(1)

    def stop(signum, frame):
        for sig in handled:  # a second Ctrl-C does not cut the ending of the steps short
            signal.signal(sig, signal.SIG_IGN)
        raise interrupted(signum)

    # A signal the caller ignores (nohup, a background job) stays ignored.
    handled = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, stop) for sig in handled}
    relay = _SignalRelay(handled)
    try:
        yield
    except BaseException:
        end_process_tree(keep)
        raise
    finally:
        relay.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if was_subreaper is not None:
            _subreaper(was_subreaper)


class _SignalRelay:
    """Re-sends the first handled signal to the main thread. The kernel may deliver a
    process signal to any thread; Python then runs its handler only when the main thread
    next runs bytecode, and kfp.local's main thread sits in a read() of the step's output
    until the step prints or ends. Sent to the main thread, the signal interrupts that read."""

    def __init__(self, signals: list[int]) -> None:
        self.signals = set(signals)
        self.read_end, self.write_end = os.pipe()
        os.set_blocking(self.write_end, False)
        self.previous_fd = signal.set_wakeup_fd(self.write_end, warn_on_full_buffer=False)
        self.main = threading.main_thread().ident
        self.thread = threading.Thread(target=self._run, name="rai-audit-signal-relay", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self.read_end, 1)
            except OSError:
                return
            if not data:
                return
            if data[0] in self.signals:
                signal.pthread_kill(self.main, data[0])
                return  # once: the main thread's handler then ignores the signal while the run ends

    def close(self) -> None:
        signal.set_wakeup_fd(self.previous_fd)
        os.close(self.write_end)  # the relay's read() returns b""
        self.thread.join(timeout=1.0)
        os.close(self.read_end)


@dataclass(frozen=True)
class ArtifactOutput:
    """An artifact a task wrote: its folder or file, and the metadata the step gave it."""

    path: Path
    metadata: dict[str, Any]


@dataclass(eq=False)
class TaskRun:
    """A task of a local run, as it runs and after."""

    name: str  # the pipeline's task name, e.g. error-analysis
    shard: int | None = None  # a dsl.ParallelFor iteration (from 0)
    state: str = "running"  # then done, reused (kfp.local's cache, --cache) or failed
    seconds: float = 0.0
    # artifacts as ArtifactOutput, parameters as their values
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # a failed task's exception line ("module.Class: message"), if it printed one
    started: float = field(default_factory=time.monotonic)
    _lines: deque[str] = field(default_factory=lambda: deque(maxlen=_KEPT_LINES), repr=False)

    @property
    def label(self) -> str:
        return self.name if self.shard is None else f"{self.name} shard {self.shard + 1}"

    def artifact(self, name: str) -> ArtifactOutput | None:
        found = self.outputs.get(name)
        return found if isinstance(found, ArtifactOutput) else None

    def log_lines(self) -> list[str]:
        """Its output (the last ``_KEPT_LINES``), without the blank lines and the rule kfp.local
        prints after it."""
        lines = list(self._lines)
        while lines and not lines[-1].strip("- "):
            lines.pop()
        return lines

    def tail(self, count: int = TAIL_LINES) -> list[str]:
        return self.log_lines()[-count:]


class RunProgress(Protocol):
    """Told when each task starts and ends (from the thread that runs the task)."""

    def task_started(self, task: TaskRun) -> None: ...

    def task_ended(self, task: TaskRun) -> None: ...


class TaskFailed(RAIInputError):
    """A task of the local run failed; ``task`` holds its last log lines and its error."""

    def __init__(self, message: str, task: TaskRun) -> None:
        super().__init__(message)
        self.task = task


def _raised(lines: Sequence[str]) -> str | None:
    """The exception line ("module.Class: message") of the last Python traceback in a task's output:
    the first line back at the traceback's own indentation after its header."""
    starts = [i for i, line in enumerate(lines) if line.strip() == "Traceback (most recent call last):"]
    if not starts:
        return None
    header = lines[starts[-1]]
    indent = len(header) - len(header.lstrip())
    for line in lines[starts[-1] + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            return line.strip()
    return None


def _failure(task: TaskRun) -> str:
    """A failed task's error in one line: the step's own message when it refused the input."""
    if task.error is None:
        return f"{task.label} failed without a Python traceback in its log (killed? out of memory?)"
    kind, _, message = task.error.partition(": ")
    if kind.rsplit(".", 1)[-1] in USER_ERRORS:
        return f"{task.label}: {message}"
    return f"{task.label} failed with {task.error}"


@contextlib.contextmanager
def _kfp_task_events(started: Callable[[TaskRun], None], ended: Callable[[TaskRun], None]) -> Iterator[None]:
    """Call ``started`` and ``ended`` around every step task kfp.local runs (a cache hit too, not
    an importer), in the thread that streams the task's log.

    The one place that relies on kfp.local's internals (kfp 2.17; tests/test_run_output.py
    breaks when they change): every leaf task goes through
    ``kfp.local.orchestrator.task_executor.execute_single_task``, which returns
    ``(outputs, status)``; a ParallelFor iteration runs under the resource name
    ``<run>/<loop>-iteration-<i>``; a task's artifacts are written under
    ``<pipeline_root>/<run>/``, so a cache hit's are elsewhere (in the run that made them).
    """
    from kfp import dsl
    from kfp.local import status
    from kfp.local.orchestrator import task_executor

    execute = task_executor.execute_single_task
    signature = inspect.signature(execute)

    def execute_and_tell(*args: Any, **kwargs: Any) -> Any:
        given = signature.bind(*args, **kwargs).arguments
        component = given["components"][given["task_spec"].component_ref.name]
        executor = given["executors"].get(component.executor_label)
        if executor is None or executor.WhichOneof("spec") != "container":  # an importer: no step runs
            return execute(*args, **kwargs)
        run_name, _, iteration = given["pipeline_resource_name"].partition("/")
        shard = int(iteration.rsplit("-iteration-", 1)[1]) if "-iteration-" in iteration else None
        task = TaskRun(given["task_name"], shard=shard)
        started(task)
        try:
            outputs, task_status = execute(*args, **kwargs)
        except Exception:
            task.state, task.seconds = "failed", time.monotonic() - task.started
            ended(task)
            raise
        run_folder = Path(given["pipeline_root"], run_name)
        task.outputs = {
            key: ArtifactOutput(Path(value.uri), dict(value.metadata)) if isinstance(value, dsl.Artifact) else value
            for key, value in outputs.items()
        }
        artifacts = [value.path for value in task.outputs.values() if isinstance(value, ArtifactOutput)]
        if task_status != status.Status.SUCCESS:
            task.state = "failed"
        elif artifacts and not any(path.is_relative_to(run_folder) for path in artifacts):
            task.state = "reused"
        else:
            task.state = "done"
        task.seconds = time.monotonic() - task.started
        ended(task)
        return outputs, task_status

    task_executor.execute_single_task = execute_and_tell
    try:
        yield
    finally:
        task_executor.execute_single_task = execute


class _RunLog(io.TextIOBase):
    """Stands in for stdout while kfp.local runs. kfp.local prints its log records and each
    task's output there, from one thread per running task (ParallelFor iterations run side by
    side). Each thread's writes are put together into whole lines, which go to the log file
    (a task's output marked with its name), to ``echo`` (--verbose), and to the task's own
    ``TaskRun`` while it runs."""

    def __init__(self, file: TextIO, echo: TextIO | None = None) -> None:
        self.file, self.echo = file, echo
        self.lock = threading.RLock()
        self.partial: dict[int, str] = {}  # thread -> its unfinished line
        self.tasks: dict[int, TaskRun] = {}  # thread -> the task it runs
        self.record_next: set[int] = set()  # threads whose next write is a kfp.local log record
        self.ended = False  # the run is over: a late write (a handler left behind) is dropped

    def follow(self, task: TaskRun) -> None:
        with self.lock:
            self.tasks[threading.get_ident()] = task

    def unfollow(self) -> None:
        me = threading.get_ident()
        with self.lock:
            self._finish_line(me)
            self.tasks.pop(me, None)

    def _finish_line(self, thread: int) -> None:
        rest = self.partial.pop(thread, "")
        if rest:
            self._line(thread, _ANSI.sub("", rest), False)

    def record_coming(self, record: object) -> bool:
        """A logging filter on the root logger (kfp.local logs there): the record about to be
        written is a record, not a task's output, if a handler writes it to this stream."""
        if any(getattr(handler, "stream", None) is self for handler in logging.getLogger().handlers):
            with self.lock:
                self.record_next.add(threading.get_ident())
        return True

    def write(self, text: str) -> int:
        me = threading.get_ident()
        with self.lock:
            if self.ended:
                return len(text)
            before = self.partial.get(me, "")
            if not before and text and not text.strip(" "):
                return len(text)  # kfp.local's indentation of a task's output (a write of its own)
            record = me in self.record_next
            self.record_next.discard(me)
            *lines, self.partial[me] = (before + text).split("\n")
            for line in lines:
                self._line(me, _ANSI.sub("", line), record)
        return len(text)

    def _line(self, thread: int, line: str, record: bool) -> None:
        task = self.tasks.get(thread)
        shown = f"    {task.label} | {line}" if task is not None and not record and line.strip() else line
        for stream in (self.file, self.echo):
            if stream is not None:
                stream.write(shown + "\n")
        if task is not None and not record:
            task._lines.append(line)

    def note(self, line: str) -> None:
        with self.lock:
            self.file.write(line + "\n")

    def flush(self) -> None:
        with self.lock:
            self.file.flush()
            if self.echo is not None:
                self.echo.flush()

    def end(self) -> None:
        """At the end of the run: every thread's unfinished line, as a line; no more writes."""
        with self.lock:
            for thread in list(self.partial):
                self._finish_line(thread)
            self.flush()
            self.ended = True


def auto_parallel_tasks() -> int:
    """``--parallel-tasks auto``: one task per core this process may use (joblib counts the
    affinity and cgroup limits), at most the four analyses that are ready together after the
    constructor."""
    import joblib

    return max(1, min(joblib.cpu_count(), len(LONGEST_ANALYSES_FIRST)))


@contextlib.contextmanager
def cores_per_task(parallel_tasks: int) -> Iterator[None]:
    """While inside, with several tasks at once, the tasks started here size their thread pools
    to their share of the cores (``THREAD_LIMIT_VARS``, unless the user set one), as a cluster
    gives each pod its CPU limit and joblib its workers their share. Each task used every core
    otherwise: on 2 cores two tasks ran 4 busy threads, and the Adult audit took 48 s instead of
    40 s (bench/README.md); the results are the same either way (tests/test_run_output.py)."""
    if parallel_tasks <= 1:
        yield
        return
    import joblib

    share = str(max(joblib.cpu_count() // parallel_tasks, 1))
    added = [name for name in THREAD_LIMIT_VARS if name not in os.environ]
    os.environ.update(dict.fromkeys(added, share))
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def run_audit_locally(
    arguments: dict[str, Any],
    output_dir: str | Path,
    *,
    steps: Sequence[str],
    runner: local.DockerRunner | None = None,
    enable_caching: bool = False,
    parallel_tasks: int = 1,
    preload_tasks: bool = True,
    progress: RunProgress | None = None,
    echo: TextIO | None = None,
    **build: Any,
) -> Path:
    """Run the audit pipeline with these arguments and analysis steps; return the bundle's folder.

    ``build`` holds the shard counts (``explainer_shards``, ``counterfactual_shards``) and any
    other keyword of ``build_audit_pipeline``.
    By default every task runs in this Python environment; with a ``DockerRunner`` each
    runs in its step's image (see ``rai_audit.kfp_components.step_images``).
    Task outputs land under ``output_dir/pipeline_root/<pipeline run>/<task>/``; the log, the
    progress, errors and signals are as ``run_pipeline_locally`` says.
    """
    pipeline = build_audit_pipeline(steps, run_times=False, **build)
    run = run_pipeline_locally(
        pipeline,
        arguments,
        output_dir,
        runner=runner,
        enable_caching=enable_caching,
        parallel_tasks=parallel_tasks,
        preload_tasks=preload_tasks,
        first_tasks=LONGEST_ANALYSES_FIRST,
        progress=progress,
        echo=echo,
    )
    return Path(run.output.path)


def run_pipeline_locally(
    pipeline: Callable[..., Any],
    arguments: dict[str, Any],
    output_dir: str | Path,
    *,
    runner: local.DockerRunner | None = None,
    enable_caching: bool = False,
    parallel_tasks: int = 1,
    preload_tasks: bool = True,
    first_tasks: Sequence[str] = (),
    progress: RunProgress | None = None,
    echo: TextIO | None = None,
) -> Any:
    """Run a KFP pipeline with kfp.local (artifacts in ``output_dir/pipeline_root``); return its task.

    kfp.local's whole log goes to ``output_dir/LOG_FILE`` (and to ``echo`` if given), not to
    stdout. ``progress`` hears when each task starts and ends. A failed task raises
    ``TaskFailed`` (a RAIInputError) with the step's own message when it refused the input
    (bad column, bad cohort, ...), else the exception it failed with.
    SIGINT or SIGTERM end every process the run started and raise KeyboardInterrupt (with ``signum``).

    ``enable_caching`` turns on kfp.local's task cache (in ``output_dir/pipeline_root/.kfp_cache``):
    a run in the same ``output_dir`` then reuses the constructor and the analyses of an
    earlier run (even a failed one) on the same content and parameters; their outputs stay
    in that run's folder.

    ``parallel_tasks`` > 1 runs up to that many tasks at once, each as soon as its inputs are
    there, as a cluster does (``kfp_local_compat.concurrent_tasks``); kfp.local alone runs one
    task at a time. Each running task holds its own memory and its share of the cores
    (``cores_per_task``). Of the tasks ready together, those named in ``first_tasks`` start
    first, in that order.

    ``preload_tasks`` (without a ``runner``): the tasks are forked from a process that has
    already imported their libraries, once it has (``rai_audit.preloaded_tasks``), instead of
    each importing them anew.
    """
    root = Path(output_dir).resolve() / "pipeline_root"
    root.mkdir(parents=True, exist_ok=True)
    kfp_local_compat.patch()  # the registration's dsl.If on the scorecard's `passed`
    local.init(
        runner=runner or local.SubprocessRunner(use_venv=False), pipeline_root=str(root), enable_caching=enable_caching
    )
    tasks: list[TaskRun] = []
    stopping = threading.Event()  # interrupted: the tasks that end now were ended by us, not failed

    with open(Path(output_dir) / LOG_FILE, "w", encoding="utf-8") as file:
        log = _RunLog(file, echo)

        def started(task: TaskRun) -> None:
            tasks.append(task)
            log.follow(task)
            if progress is not None and not stopping.is_set():
                progress.task_started(task)

        def ended(task: TaskRun) -> None:
            log.unfollow()
            if task.state == "failed":
                task.error = _raised(task.log_lines())
            if progress is not None and not stopping.is_set():
                progress.task_ended(task)

        # kfp.local logs with the root logger: inside a task with a handler it sets up (writing
        # here), elsewhere (a cache hit, the end of the run) with whatever the root has. This
        # handler takes those to the log too, and keeps logging.info from adding one for stderr.
        # kfp.local's set-up is not thread-safe: ParallelFor tasks that end together can leave
        # the root's level or another task's handler behind; both are put back after the run.
        root_logger = logging.getLogger()
        saved_level, saved_handlers = root_logger.level, root_logger.handlers[:]
        records = logging.StreamHandler(log)
        records.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d - %(levelname)s - %(message)s", "%H:%M:%S"))
        record_filter = log.record_coming
        records.addFilter(record_filter)  # a record of another logger, passed on to the root's handlers
        root_logger.addHandler(records)
        root_logger.setLevel(min(root_logger.getEffectiveLevel(), logging.INFO))
        root_logger.addFilter(record_filter)
        # kfp.local swaps builtins.print for an indenting one and, after a ParallelFor, leaves it
        # there; code that runs later in this process (numba's registry, for one) then breaks.
        print_function = builtins.print
        try:
            # stdout is restored last: the steps a signal ends still print while they end
            with (
                contextlib.redirect_stdout(log),
                warnings.catch_warnings(),
                _ends_its_process_tree(),
                _kfp_task_events(started, ended),
                cores_per_task(parallel_tasks),
                preloaded_tasks() if preload_tasks and runner is None else contextlib.nullcontext(),
                kfp_local_compat.concurrent_tasks(parallel_tasks, first_tasks),
            ):
                # The images are not python:* ones; kfp warns that it cannot tell they have Python.
                warnings.filterwarnings("ignore", message=".*non-Python base image.*")
                try:
                    return pipeline(**arguments)
                except BaseException:
                    stopping.set()
                    raise
        except RuntimeError as err:  # kfp.local: a task failed
            failed = sorted((t for t in tasks if t.state == "failed"), key=lambda t: t.started + t.seconds)
            message = f"the local pipeline run failed: {_failure(failed[0]) if failed else _ANSI.sub('', str(err))}"
            log.note(f"rai-audit: error: {message}")
            if failed:
                raise TaskFailed(message, failed[0]) from err
            raise RAIInputError(message) from err
        finally:
            builtins.print = print_function
            root_logger.removeFilter(record_filter)
            root_logger.setLevel(saved_level)
            root_logger.handlers[:] = saved_handlers
            log.end()
