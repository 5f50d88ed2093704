"""The embedded store serves S3 only: no port of the real SeaweedFS server answers a request
made without credentials.

`rai-audit storage up` runs `weed mini`, which also starts a master, a volume server, a
filer, an admin server and (by default) WebDAV, each with HTTP and gRPC APIs that have no
authentication of their own: before this was fixed, any local process could list, read and
write the archive through them (a filer PUT or a master /submit returned 201), defeating the
read-only credentials. The test starts the real server, finds every port its process
listens on from /proc (not from our own list of flags), and probes each without
credentials: plain HTTP (GET /, PUT, multipart POST, WebDAV PROPFIND, the master's and
filer's APIs), the same over TLS without a client certificate, and gRPC's HTTP/2 preface.
Nothing may succeed; the S3 port with credentials still works, multipart uploads included.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import ssl
from pathlib import Path

import pytest

from rai_audit.storage import STATE_FILE, storage_down, storage_up

BUCKET = "probed"
BOUNDARY = "rai-audit-probe"
MULTIPART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="probe.txt"\r\n'
    f"Content-Type: text/plain\r\n\r\nwritten without credentials\r\n--{BOUNDARY}--\r\n"
).encode()
# (method, path, body, headers): reads and writes of every API weed mini can serve.
REQUESTS = [
    ("GET", "/", None, {}),
    ("GET", f"/{BUCKET}/", None, {"Accept": "application/json"}),
    ("GET", "/buckets/", None, {"Accept": "application/json"}),  # filer listing
    ("PUT", f"/{BUCKET}/probe.txt", b"written without credentials", {}),  # S3 / filer / WebDAV write
    ("PUT", f"/buckets/{BUCKET}/probe.txt", b"written without credentials", {}),
    ("POST", f"/buckets/{BUCKET}/", MULTIPART, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}),
    ("POST", "/submit", MULTIPART, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}),  # master
    ("GET", "/dir/assign", None, {}),  # master: a file id to write
    ("GET", "/cluster/status", None, {}),
    ("PROPFIND", "/", None, {"Depth": "1"}),  # WebDAV
    ("MKCOL", "/probe-dir", None, {}),
]
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def listening_ports(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by ``pid`` or a descendant:
    the socket inodes of its open files, matched in /proc/net/tcp and tcp6."""
    inodes = set()
    for process in [pid, *_descendants(pid)]:
        try:
            fds = os.listdir(f"/proc/{process}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{process}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            columns = line.split()
            if columns[3] == "0A" and columns[9] in inodes:  # 0A: LISTEN
                address, port = columns[1].split(":")
                found.add((address, int(port, 16)))
    return found


def _http(port: int, method: str, path: str, body, headers, *, tls: bool):
    """The status of one request, or the error that kept it from being answered."""
    if tls:  # TLS as a client without a certificate (and not checking the server's)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(200)
    except (OSError, http.client.HTTPException) as err:
        return None, repr(err)
    finally:
        connection.close()


def _http2_answers(port: int, *, tls: bool) -> bool:
    """Whether the port speaks HTTP/2 (gRPC) to a client without credentials: the preface is
    answered with a SETTINGS frame."""
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return False
    try:
        sock = raw
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(raw)
        sock.sendall(HTTP2_PREFACE)
        header = sock.recv(9)
        return len(header) == 9 and header[3] == 0x04  # frame type 4: SETTINGS
    except (OSError, ssl.SSLError):
        return False
    finally:
        raw.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seaweedfs-probed")
    settings = storage_up(folder)
    client = settings.client()
    client.make_bucket(BUCKET)
    client.put_object(BUCKET, "existing.txt", io.BytesIO(b"archived"), 8)
    yield folder, settings
    storage_down(folder)


def test_no_port_of_the_server_answers_without_credentials(server):
    folder, settings = server
    pid = json.loads((folder / STATE_FILE).read_text())["pid"]
    ports = listening_ports(pid)
    s3_port = int(settings.endpoint.rsplit(":", 1)[1])
    assert ("0100007F", s3_port) in ports, ports  # found from the process, on 127.0.0.1
    assert all(address == "0100007F" for address, _ in ports), ports  # nothing beyond 127.0.0.1
    assert len(ports) >= 5, ports  # master, volume, filer, S3 and their gRPC ports at least

    succeeded = []
    for _, port in sorted(ports):
        for tls in (False, True):
            for method, path, body, headers in REQUESTS:
                status, answer = _http(port, method, path, body, headers, tls=tls)
                if status is not None and status < 400:
                    succeeded.append((port, "https" if tls else "http", method, path, status, answer[:80]))
            if _http2_answers(port, tls=tls):
                succeeded.append((port, "h2 over TLS" if tls else "h2c", "preface", "", "SETTINGS", b""))
    assert succeeded == []

    # Nothing was written by the probes: the bucket holds what was put with credentials only.
    client = settings.client()
    assert [o.object_name for o in client.list_objects(BUCKET, recursive=True)] == ["existing.txt"]
    assert [b.name for b in client.list_buckets()] == [BUCKET]


def test_s3_with_credentials_still_works(server):
    _, settings = server
    client = settings.client()
    data = os.urandom(12 * 1024 * 1024)  # above minio's 5 MiB part: a multipart upload
    client.put_object(BUCKET, "big/object.bin", io.BytesIO(data), len(data), part_size=5 * 1024 * 1024)
    response = client.get_object(BUCKET, "big/object.bin")
    try:
        assert response.read() == data
    finally:
        response.close()
        response.release_conn()
    assert client.stat_object(BUCKET, "big/object.bin").size == len(data)
    client.remove_object(BUCKET, "big/object.bin")


def test_the_internal_keys_are_private_and_fresh_each_start(server, tmp_path):
    folder, _ = server
    for path in [folder / "security.toml", *(folder / "tls").iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, path  # owner only
    assert (folder / "tls").stat().st_mode & 0o077 == 0
    assert not any("ca.key" in p.name for p in (folder / "tls").iterdir())  # nothing else can be signed
    log = (folder / "weed.log").read_text(errors="replace")
    assert "telemetry.seaweedfs.com" not in log
    # A second server gets its own CA: the first one's certificate opens nothing there.
    storage_up(tmp_path)
    try:
        assert (tmp_path / "tls" / "ca.crt").read_bytes() != (folder / "tls" / "ca.crt").read_bytes()
        assert (tmp_path / "security.toml").read_text() != (folder / "security.toml").read_text()
    finally:
        storage_down(tmp_path)
    assert not (tmp_path / "security.toml").exists() and not (tmp_path / "tls").exists()  # gone with the server


def test_ctrl_c_while_the_server_starts_leaves_no_server_running(tmp_path, monkeypatch):
    """Interrupted before it answered, the server (in a session of its own, so a terminal's
    Ctrl-C never reaches it) is stopped: none is left running unrecorded with open ports."""
    import rai_audit.storage as storage

    class Interrupting:
        def list_buckets(self):
            raise KeyboardInterrupt

    monkeypatch.setattr(storage.S3Settings, "client", lambda self: Interrupting())
    with pytest.raises(KeyboardInterrupt):
        storage_up(tmp_path)
    assert not (tmp_path / STATE_FILE).exists() and not (tmp_path / "security.toml").exists()
    running = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if str(tmp_path).encode() in cmdline and state != "Z":
                running.append(cmdline)
    assert running == []
