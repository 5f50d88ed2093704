"""The live dashboard server: Starlette on uvicorn, serving one verified audit bundle.

Routes (every one needs the token, as ``?token=`` or ``Authorization: Bearer``; 401 without,
403 with a wrong one):

- ``GET /`` (and ``/dashboard.html``): the bundle's page; the page finds the API itself.
- ``GET /bundle/<file>``: a file of the bundle, only one its manifest lists and still matches.
- ``GET /api/info``: the run, the model's features with their ranges or values, what is available.
- ``POST /api/row`` ``{"row_id"}``, ``/api/predict`` ``{"rows"}``, ``/api/explain`` ``{"rows"}``,
  ``/api/counterfactuals`` ``{"row", "row_id"}``, ``/api/cohort`` ``{"filter", "name"}``.

Nothing is written: file routes are GET only and read only manifest-listed files. Request
bodies are JSON, at most ``Limits.body_bytes``; batches are bounded; the model runs in one
worker thread, and a request waits at most ``Limits.seconds`` for it (504 after that; the
computation then ends by itself and the next one starts; a queue of more than a few is
refused with 503). Host headers other than the bound address are refused (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rai_audit.core import RAIInputError
from rai_audit.live.bundle import Limits, LiveAudit, bundle_file

logger = logging.getLogger("rai_audit.live")
MAX_QUEUED = 4  # model requests waiting for the worker beyond which the server says it is busy
PUBLIC_PATHS = ("/favicon.ico",)  # browsers ask for it unprompted; it says nothing
# The page is one self-contained file: it may talk to this server only. Vega compiles its
# expressions with Function() (unsafe-eval); exports are data:/blob: links.
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'"
)
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class Refused(Exception):
    """A request answered with an error status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenGuard:
    """Every request but PUBLIC_PATHS carries the token (compared in constant time); every
    answer gets the security headers."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

    def _given(self, scope: Scope) -> bytes | None:
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                return value[7:].strip()
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        tokens = query.get("token")
        return tokens[0].encode("latin-1") if tokens else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        if scope["path"] not in PUBLIC_PATHS:
            given = self._given(scope)
            if given is None:
                refusal = JSONResponse(
                    {"error": "no token: open the URL `rai-audit dashboard` printed (it ends in ?token=...)"}, 401
                )
                await refusal(scope, receive, send_secured)
                return
            if not hmac.compare_digest(given, self.token):
                await JSONResponse({"error": "wrong token"}, 403)(scope, receive, send_secured)
                return
        await self.app(scope, receive, send_secured)


class Worker:
    """One thread runs the model; a request waits for its answer at most ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="rai-audit-live")
        self.lock = threading.Lock()
        self.queued = 0

    def _done(self, _: Any) -> None:
        with self.lock:
            self.queued -= 1

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self.lock:
            if self.queued >= MAX_QUEUED:
                raise Refused(503, "the server is busy with earlier requests; try again in a moment")
            self.queued += 1
        future = self.pool.submit(fn, *args)
        future.add_done_callback(self._done)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.seconds)
        except TimeoutError:
            raise Refused(504, f"the answer took longer than {self.seconds:g} s") from None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


async def _json_body(request: Request, limit: int) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise Refused(415, "send the request as JSON (Content-Type: application/json)")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise Refused(413, f"the request is larger than {limit:,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"the request is larger than {limit:,} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except ValueError as err:
        raise Refused(400, f"the request is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise Refused(400, "the request must be a JSON object")
    return body


def _rows(body: dict[str, Any], key: str, most: int) -> Any:
    rows = body.get(key)
    if isinstance(rows, list) and len(rows) > most:
        raise Refused(413, f"at most {most:,} rows per request, got {len(rows):,}")
    if isinstance(rows, list) and not rows:
        raise Refused(400, f"`{key}` holds no row")
    return rows


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(value, ensure_ascii=False, allow_nan=False), status_code=status, media_type="application/json"
    )


def create_app(
    live: LiveAudit, token: str, *, limits: Limits | None = None, hosts: list[str] | None = None
) -> Starlette:
    """The ASGI app serving ``live``'s bundle; ``hosts``: the Host header values accepted."""
    limits = limits or Limits()
    worker = Worker(limits.seconds)
    page = live.bundle / "dashboard.html"

    def answer(compute: Callable[[dict[str, Any]], Any]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await _json_body(request, limits.body_bytes)
            return _json(await worker.run(compute, body))

        return endpoint

    async def show_page(request: Request) -> Response:
        path = await run_in_threadpool(bundle_file, live.bundle, page.name, live.manifest)  # hashes the file
        if path is None:
            raise Refused(404, "the bundle's dashboard.html is missing or was changed after the server started")
        return FileResponse(path, media_type="text/html", headers={"content-security-policy": PAGE_POLICY})

    async def show_file(request: Request) -> Response:
        relative = request.path_params["path"]
        path = await run_in_threadpool(bundle_file, live.bundle, relative, live.manifest)
        if path is None:
            raise Refused(404, "no such file in the bundle (only files its manifest lists are served)")
        return FileResponse(path, headers={"content-disposition": "attachment"})

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    async def info(request: Request) -> Response:
        return _json({**live.info(), "limits": vars(limits)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        worker.close()

    async def on_refused(request: Request, err: Exception) -> Response:
        assert isinstance(err, Refused)
        return _json({"error": err.message}, err.status)

    async def on_input_error(request: Request, err: Exception) -> Response:
        return _json({"error": str(err)}, 422)

    async def on_failure(request: Request, err: Exception) -> Response:
        # The model or a library failed on this input: say so in one line (it is logged in full).
        logger.exception("%s failed", request.url.path)
        return _json({"error": f"{type(err).__name__}: {err}"}, 500)

    routes = [
        Route("/", show_page, methods=["GET"]),
        Route("/dashboard.html", show_page, methods=["GET"]),
        Route("/bundle/{path:path}", show_file, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Route("/api/info", info, methods=["GET"]),
        Route("/api/row", answer(lambda b: live.row(b.get("row_id"))), methods=["POST"]),
        Route("/api/predict", answer(lambda b: live.predict(_rows(b, "rows", limits.predict_rows))), methods=["POST"]),
        Route("/api/explain", answer(lambda b: live.explain(_rows(b, "rows", limits.explain_rows))), methods=["POST"]),
        Route(
            "/api/counterfactuals",
            answer(lambda b: live.counterfactuals(b.get("row"), b.get("row_id"))),
            methods=["POST"],
        ),
        Route("/api/cohort", answer(lambda b: live.cohort(b.get("filter"), b.get("name", "cohort"))), methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts or ["127.0.0.1", "localhost"]),
            Middleware(TokenGuard, token=token),
        ],
        exception_handlers={Refused: on_refused, RAIInputError: on_input_error, Exception: on_failure},
        lifespan=lifespan,
    )
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise RAIInputError(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def accepted_hosts(host: str) -> list[str]:
    """Host header values to accept: the address bound, and localhost for a loopback one; any
    name for a wildcard address (--allow-remote), whose clients use names this cannot know
    (the token still guards every request)."""
    if host in ("0.0.0.0", "::"):
        return ["*"]
    hosts = [url_host(host), host]
    if is_loopback(host):
        hosts += ["127.0.0.1", "localhost", "[::1]"]
    return list(dict.fromkeys(hosts))


def uvicorn_server(app: Starlette) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,  # the URLs carry the token
        server_header=False,
        lifespan="on",
        limit_concurrency=64,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=64 * 1024,  # request line and headers
        ws="none",
    )
    return uvicorn.Server(config)


def page_url(host: str, port: int, token: str) -> str:
    return f"http://{url_host(host)}:{port}/?token={token}"
