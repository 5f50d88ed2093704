"""Run a pipeline on this machine with ``kfp.local`` (SubprocessRunner, no venv per task)."""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import io
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kfp import local

from rai_audit.core import RAIInputError
from rai_audit.pipelines import build_audit_pipeline

# The last line of a step's traceback when it refused the user's input.
_USER_ERROR = re.compile(r"^\s*(?:[\w.]+\.)?(?:RAIInputError|ArtifactIntegrityError|TargetsMissed): (.*)$", re.M)


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


class _Tee(io.TextIOBase):
    """Passes writes through to a stream and keeps a copy (kfp.local prints task logs)."""

    def __init__(self, stream) -> None:
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def run_audit_locally(
    arguments: dict[str, Any],
    output_dir: str | Path,
    *,
    steps: Sequence[str],
    runner: local.DockerRunner | None = None,
    enable_caching: bool = False,
    **build: int,
) -> Path:
    """Run the audit pipeline with these arguments and analysis steps; return the bundle's folder.

    ``build`` holds the shard counts (``explainer_shards``, ``counterfactual_shards``).
    By default every task runs in this Python environment; with a ``DockerRunner`` each
    runs in its step's image (see ``rai_audit.kfp_components.step_images``).

    Task outputs land under ``output_dir/pipeline_root/<pipeline run>/<task>/``. A step's
    user error (bad column, bad cohort, ...) is raised here with the step's own message.
    SIGINT or SIGTERM end every process the run started and raise KeyboardInterrupt (with ``signum``).

    ``enable_caching`` turns on kfp.local's task cache (in ``output_dir/pipeline_root/.kfp_cache``):
    a run in the same ``output_dir`` then reuses the constructor and the analyses of an
    earlier run (even a failed one) on the same content and parameters; their outputs stay
    in that run's folder.
    """
    root = Path(output_dir).resolve() / "pipeline_root"
    root.mkdir(parents=True, exist_ok=True)
    local.init(
        runner=runner or local.SubprocessRunner(use_venv=False), pipeline_root=str(root), enable_caching=enable_caching
    )
    tee = _Tee(sys.stdout)
    # kfp.local swaps builtins.print for an indenting one and, after a ParallelFor, leaves it
    # there; code that runs later in this process (numba's registry, for one) then breaks.
    print_function = builtins.print
    try:
        with _ends_its_process_tree(), warnings.catch_warnings(), contextlib.redirect_stdout(tee):
            # The images are not python:* ones; kfp warns that it cannot tell they have Python.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            run = build_audit_pipeline(steps, run_times=False, **build)(**arguments)
    except RuntimeError as err:
        cause = _USER_ERROR.findall(tee.copy.getvalue())
        reason = cause[-1] if cause else f"{err} (the failing task's log is above)"
        raise RAIInputError(f"the local pipeline run failed: {reason}") from err
    finally:
        builtins.print = print_function
    return Path(run.output.path)
