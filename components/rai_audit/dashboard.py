"""Serve an audit bundle with its model: the dashboard page with its live features.

``serve(bundle)`` (and ``rai-audit dashboard BUNDLE``) verifies the bundle (a bundle folder,
a fetched audit folder, or an archived audit's ``s3://bucket/audits/...`` URI, fetched and
verified as ``rai-audit audits fetch`` does), loads the model copy it holds with the
constructor's safety rules (skops' trusted types, ``allow_pickle`` as recorded in the run),
and serves the page on 127.0.0.1 at a URL carrying a random token. In a notebook it returns
at once, and the returned object shows the page inline (an iframe of that URL).

The model's libraries must be installed where this runs (as for the steps that loaded it).
"""

from __future__ import annotations

import html
import secrets
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rai_audit.core import RAIInputError
from rai_audit.live.bundle import Limits, LiveAudit, locate_bundle

STARTUP_SECONDS = 30.0


@dataclass
class LiveDashboard:
    """A running server: its URL (with the token), and how to stop it."""

    url: str
    host: str
    port: int
    token: str
    bundle: Path
    server: Any  # uvicorn.Server
    thread: threading.Thread | None = None
    workdir: Path | None = None  # an archived audit's fetched copy, removed on stop
    live: LiveAudit | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop serving (and remove a fetched archive's copy)."""
        self.server.should_exit = True
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)
        if self.workdir is not None:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)
        self._stopped = True

    def wait(self) -> None:
        """Block until the server stops; Ctrl-C or SIGTERM stops it (and removes a fetched copy)."""
        if self.thread is None:
            return
        import signal

        def interrupt(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, interrupt) if main else None
        try:
            while self.thread.is_alive():
                self.thread.join(timeout=0.5)
        except KeyboardInterrupt:
            self.stop()
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)

    def _repr_html_(self) -> str:
        """The page inline in a notebook, live (its own origin is this server)."""
        return (
            f'<iframe src="{html.escape(self.url, quote=True)}" title="rai-audit dashboard" '
            'style="width:100%;height:820px;border:1px solid #ccc"></iframe>'
        )


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def start(
    source: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
    limits: Limits | None = None,
    token: str | None = None,
    say: Callable[[str], Any] = print,
) -> LiveDashboard:
    """Verify and load the bundle, then serve it from a background thread; returns once it
    accepts connections."""
    from rai_audit.live.server import is_loopback

    if not is_loopback(host) and not allow_remote:
        raise RAIInputError(
            f"--host {host} would let other machines reach the audit (its test rows and its model); "
            "it serves 127.0.0.1 by default. To expose it anyway, add --allow-remote"
        )
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise RAIInputError(f"--port must be 0 (any free port) to 65535, got {port!r}")
    workdir = None
    if str(source).startswith(("s3://", "minio://")):
        import tempfile

        workdir = Path(tempfile.mkdtemp(prefix="rai-audit-dashboard-"))
    try:
        bundle, what = locate_bundle(source, workdir)
        live = LiveAudit(bundle)
        running = run_server(live, host=host, port=port, limits=limits, token=token)
    except BaseException:
        if workdir is not None:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        raise
    running.workdir = workdir
    if not is_loopback(host):
        say(
            f"WARNING: serving on {host}: any machine that reaches this address and knows the URL's token can "
            "read the audit's data and query its model; the connection is not encrypted (no TLS)"
        )
    available = [k for k, v in live.info()["available"].items() if v]
    say(f"serving {what} ({', '.join(available)})")
    if live.model is None:
        say("note: this bundle holds no model copy (gathered before bundles held one): no what-if")
    say(f"open: {running.url}")
    say("the token in the URL lets anyone who has it use the server: do not share it")
    return running


def run_server(
    live: LiveAudit, *, host: str = "127.0.0.1", port: int = 0, limits: Limits | None = None, token: str | None = None
) -> LiveDashboard:
    """Serve a loaded bundle from a background thread; returns once it accepts connections."""
    from rai_audit.live import server as S

    token = token or secrets.token_urlsafe(32)
    sock = S.bind(host, port)
    bound_port = sock.getsockname()[1]
    server = S.uvicorn_server(S.create_app(live, token, limits=limits, hosts=S.accepted_hosts(host)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="rai-audit-dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RAIInputError(f"the server did not start on {host}:{bound_port}")
        time.sleep(0.02)
    url = S.page_url(host, bound_port, token)
    return LiveDashboard(url, host, bound_port, token, live.bundle, server, thread, live=live)


def serve(
    bundle: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
    open_browser: bool | None = None,
    block: bool | None = None,
    limits: Limits | None = None,
) -> LiveDashboard:
    """Serve ``bundle`` (a bundle folder, a fetched audit, or an archived audit's s3:// URI).

    In a notebook (``block`` None there) it returns at once: show the returned object to get the
    page inline; ``.stop()`` stops it. Elsewhere it opens the browser (``open_browser``) and
    serves until interrupted (Ctrl-C), unless ``block=False``.
    """
    notebook = _in_notebook()
    block = (not notebook) if block is None else block
    running = start(bundle, host=host, port=port, allow_remote=allow_remote, limits=limits)
    if open_browser if open_browser is not None else not notebook:
        webbrowser.open(running.url)
    if block:
        running.wait()
        print("stopped")
    return running
