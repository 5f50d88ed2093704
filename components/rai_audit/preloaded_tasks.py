"""Local tasks started from a process that has already imported their libraries.

kfp.local starts each task as ``sh -c 'python3 -m kfp.dsl.executor_main ...'``, and every task
then imports kfp, pandas, scikit-learn and its step's libraries (econml, LightGBM, WeasyPrint)
anew: 1-3 s of each of the audit's eight tasks, ~12 s of the Adult audit (bench/README.md).
Here one process per run (the "starter") imports them once, while the first tasks run, and
then forks each task: the task is still a process of its own, with its own environment, working
folder and output, and runs the same code as kfp's command (``executor_main`` on the
component's source), only without the imports. A task the starter cannot take (it is not ready
yet, or the command is not kfp's usual one) runs as kfp.local runs it.

Nothing but imports runs in the starter before it forks: no Python thread, no thread pool. The
threads some libraries start as they load (OpenBLAS's, pyarrow's jemalloc) are made safe across
fork by those libraries, as for any ``multiprocessing`` fork. A task's environment is the one
kfp.local gives it (the starter's, started with the run's), also for the libraries that read
theirs as they load (OpenBLAS's and OpenMP's thread counts).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import json
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from typing import Any

# kfp's command for a lightweight component (kfp.dsl.component_factory), after kfp.local put
# its Python in place of python3: the component's source comes as $0, the executor's arguments after.
KFP_SCRIPT = re.compile(
    r'program_path=\$\(mktemp -d\)\n\nprintf "%s" "\$0" > "\$program_path/ephemeral_component\.py"\n'
    r"_KFP_RUNTIME=true \S+ -m kfp\.dsl\.executor_main\s+--component_module_path\s+"
    r'"\$program_path/ephemeral_component\.py"\s+"\$@"\n'
)
# What a component's source imports before its body (kfp's executor, the artifact types), then
# the modules the bodies import: light, by design (tests/test_start_imports.py).
TASK_MODULES = (
    "kfp.dsl.executor_main",
    "rai_audit.kfp_types",
    "rai_audit.kfp_runtime",
    "rai_audit.core.fingerprint",
    "rai_audit.steps.constructor",
    "rai_audit.steps.error_analysis",
    "rai_audit.steps.explainer",
    "rai_audit.steps.counterfactual",
    "rai_audit.steps.causal",
    "rai_audit.steps.gather",
    "rai_audit.steps.scorecard",
    "rai_audit.steps.notify",
    "rai_audit.archive",
    "rai_audit.storage",
)
# What the starter imports: those, then the libraries the steps' work imports, in the order the
# audit's tasks first need them (a library not loaded yet, or not there, costs the task its import).
PRELOAD = (
    *TASK_MODULES,
    "pyarrow.parquet",
    "sklearn.ensemble",
    "sklearn.pipeline",
    "skops.io",
    "lightgbm",
    # the steps' own helpers: shap, interpret-community and econml without matplotlib and MLflow
    "rai_audit.steps.causal:_import_causal_analysis",
    "rai_audit.steps.explainer:_import_interpret_community",
    "weasyprint",
    "altair",
)
_HEADER = struct.Struct("!I")
PR_SET_NAME = 15  # prctl(2)


def _load(name: str) -> None:
    module, _, helper = name.partition(":")
    with contextlib.suppress(Exception):  # the task's own import says what is wrong, where it is needed
        loaded = importlib.import_module(module)
        if helper:
            getattr(loaded, helper)()


# --- messages: a 4-byte length, then JSON ---------------------------------------------------


def _send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    payload = json.dumps(message).encode()
    header = _HEADER.pack(len(payload))
    if fds:  # the descriptors travel with the header's bytes
        socket.send_fds(sock, [header], fds)
        sock.sendall(payload)
    else:
        sock.sendall(header + payload)


def _exactly(sock: socket.socket, n: int, data: bytes = b"") -> bytes | None:
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _payload(sock: socket.socket, head: bytes | None) -> dict[str, Any] | None:
    head = None if head is None else _exactly(sock, _HEADER.size, head)
    payload = None if head is None else _exactly(sock, _HEADER.unpack(head)[0])
    return None if payload is None else dict(json.loads(payload))


def _receive(sock: socket.socket) -> dict[str, Any] | None:
    """The next message; None when the other side has closed."""
    return _payload(sock, b"")


def _receive_request(sock: socket.socket) -> tuple[dict[str, Any], int] | None:
    """The next request and the descriptor sent with it; None when the run has closed."""
    head, fds, _, _ = socket.recv_fds(sock, _HEADER.size, 1)
    request = _payload(sock, head) if head else None
    return None if request is None or not fds else (request, fds[0])


# --- the starter's side ------------------------------------------------------------------------


def _serve(sock: socket.socket, to_load: list[str]) -> dict[str, Any]:
    """Fork a task per request and report its exit code when it ends; while no
    request waits, import the next of ``to_load``. Returns only in a forked task, with its
    request; the starter itself exits when the run closes the socket."""
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    while True:
        events = selector.select(timeout=0 if to_load else None)
        if not events and to_load:
            _load(to_load.pop(0))
            if not to_load:
                _send(sock, {"loaded": True})
        for key, _ in events:
            if key.fileobj is sock:
                received = _receive_request(sock)
                if received is None:
                    sys.exit(0)
                request, output = received
                pid = os.fork()
                if pid == 0:
                    for other in list(selector.get_map().values()):  # the other tasks' pidfds
                        if other.fileobj is not sock:
                            os.close(other.fd)
                    selector.close()
                    sock.close()
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    os.dup2(output, 1)
                    os.dup2(output, 2)
                    os.close(output)
                    return request
                os.close(output)
                selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (request["id"], pid))
            else:
                task, pid = key.data
                selector.unregister(key.fileobj)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                _send(sock, {"id": task, "exit": os.waitstatus_to_exitcode(status)})


def _name_process(args: list[str]) -> None:
    """Name the process after its task (its outputs' folder, cut to 15 bytes by Linux) where
    ``ps`` and /proc/PID/comm show it: its command line is the starter's."""
    with contextlib.suppress(Exception):
        executor_input = json.loads(args[args.index("--executor_input") + 1])
        task = os.path.basename(os.path.dirname(executor_input["outputs"]["outputFile"]))
        ctypes.CDLL(None).prctl(PR_SET_NAME, task.encode()[:15], 0, 0, 0)


def _run_task(request: dict[str, Any]) -> None:
    """What kfp's command does: the component's source in a file, then its executor on it; then
    the ending of a Python process, but for the tearing down of its modules (as a
    ``multiprocessing`` child ends): with all that the starter imported, that took ~0.8 s a task."""
    os.chdir(request["cwd"])
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "ephemeral_component.py")
    with open(path, "w", encoding="utf-8") as file:
        file.write(request["source"])
    sys.argv = ["kfp.dsl.executor_main", "--component_module_path", path, *request["args"]]
    _name_process(request["args"])
    interrupted = False
    try:
        from kfp.dsl.executor_main import executor_main  # type: ignore[import-untyped]

        executor_main()
        code = 0
    except SystemExit as stop:  # as Python reads it
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        if stop.code is not None and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)
    except BaseException as err:  # as Python reports an uncaught exception
        traceback.print_exc()
        code, interrupted = 1, isinstance(err, KeyboardInterrupt)
    threading._shutdown()  # type: ignore[attr-defined]  # what Python's exit does first: join the threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if interrupted:  # ended by Ctrl-C, as Python ends then
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def main() -> None:
    """The starter: ``python -m rai_audit.preloaded_tasks FD`` (FD: its end of the run's socket)."""
    sock = socket.socket(fileno=int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the run, which ends it
    os.environ["_KFP_RUNTIME"] = "true"  # as kfp's command sets it for the tasks (read as kfp loads)
    environment = dict(os.environ)
    os.close(os.pidfd_open(os.getpid()))  # how the starter hears its tasks end (Linux 5.3): else no start
    _load(PRELOAD[0])  # kfp's executor: then the starter can take tasks, and goes on loading
    _send(sock, {"ready": True})
    request = _serve(sock, list(PRELOAD[1:]))
    # What the imports set in the environment (TF_CPP_MIN_LOG_LEVEL, one of them) is not the task's.
    os.environ.clear()
    os.environ.update(environment)
    _run_task(request)


# --- the run's side --------------------------------------------------------------------------


class TaskStarter:
    """The run's handle on the starter: ``run`` a kfp.local task's command in a forked process
    when the starter is ready and the command is kfp's usual one; None otherwise."""

    def __init__(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = mine
        # The tasks inherit the starter's environment, which is this process's now, as a
        # subprocess of kfp.local's would; a task that would get another one (the run's or
        # kfp's variables changed since) runs as kfp.local runs it.
        self.environment = dict(os.environ)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rai_audit.preloaded_tasks", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        theirs.close()
        self.ready = False  # it takes tasks
        self.loaded = False  # it has imported all of PRELOAD
        self.lock = threading.Lock()  # one request at a time on the socket
        self.exits: dict[int, int] = {}  # request id -> its task's exit code
        self.replied = threading.Condition()
        self.next_id = 0
        self.closed = False
        threading.Thread(target=self._read_replies, name="task starter", daemon=True).start()

    def _read_replies(self) -> None:
        while True:
            try:
                message = _receive(self.sock)
            except OSError:
                message = None
            with self.replied:
                if message is None:
                    self.closed = True
                    self.ready = False
                    self.replied.notify_all()
                    return
                if "ready" in message or "loaded" in message:
                    self.ready, self.loaded = True, message.get("loaded", self.loaded)
                else:
                    self.exits[message["id"]] = message["exit"]
                self.replied.notify_all()

    def run(self, full_command: list[str], env_vars: dict[str, str] | None) -> int | None:
        if not self.ready or len(full_command) < 4 or full_command[:2] not in (["sh", "-c"], ["sh", "-ec"]):
            return None
        if not KFP_SCRIPT.fullmatch(full_command[2]):
            return None
        if {**os.environ, **(env_vars or {})} != self.environment:
            return None
        reading, writing = os.pipe()
        request: dict[str, Any] = {"cwd": os.getcwd(), "source": full_command[3], "args": full_command[4:]}
        try:
            with self.lock:
                task = request["id"] = self.next_id
                self.next_id += 1
                _send(self.sock, request, [writing])
        except OSError:  # the starter has ended: kfp.local runs this task
            os.close(reading)
            return None
        finally:
            os.close(writing)
        # As kfp.local reads its subprocess: each line as it comes, then a blank line.
        with open(reading, encoding="utf-8", errors="replace") as output:
            for line in output:
                print(line, end="")
        print("\n")
        with self.replied:
            self.replied.wait_for(lambda: task in self.exits or self.closed)
            return self.exits.pop(task, 1)  # the starter gone: a failure

    def close(self) -> None:
        """End the starter, where it is: when the run ends no task of its runs, and it may be
        in the middle of an import a short run never needed."""
        self.sock.close()
        self.process.terminate()
        self.process.wait()


@contextlib.contextmanager
def preloaded_tasks() -> Iterator[TaskStarter | None]:
    """While inside, kfp.local's SubprocessRunner starts tasks from a ``TaskStarter`` (started
    here; it is ready a few seconds later) whenever it can take them."""
    from kfp.local import subprocess_task_handler as handler  # type: ignore[import-untyped]

    if not hasattr(os, "pidfd_open"):  # not Linux: no fork server, kfp.local runs every task
        yield None
        return
    original = handler.run_local_subprocess
    starter = TaskStarter()

    def run_local_subprocess(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        code = starter.run(full_command, env_vars)
        return original(full_command=full_command, env_vars=env_vars) if code is None else code

    handler.run_local_subprocess = run_local_subprocess
    try:
        yield starter
    finally:
        handler.run_local_subprocess = original
        starter.close()


if __name__ == "__main__":
    main()
