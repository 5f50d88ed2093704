"""What the image scripts and tests share: podman's command line and an image's expected packages.

scripts/check-images.py and scripts/audit-in-containers.py import this (a script's own
folder is on its sys.path); tests/conftest.py puts scripts/ on sys.path for the tests.
The package does not need it, so the images do not carry it.
"""

from __future__ import annotations

import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Explicit limits for `podman run` (runc may not raise the defaults here).
PODMAN_RUN = ("run", "--rm", "--network", "none", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")


@cache
def podman() -> tuple[str, ...]:
    """Podman as scripts/build-images.sh runs it, without a daemon or cgroup manager.

    The images' storage driver is scripts/storage-driver.sh's answer, as for buildah; runc.
    """
    driver = subprocess.run(
        [str(Path(__file__).with_name("storage-driver.sh"))], check=True, capture_output=True, text=True
    ).stdout.strip()
    return ("podman", "--storage-driver", driver, "--runtime", "runc", "--cgroup-manager=cgroupfs")


def extra_distributions(extra: str) -> set[str]:
    """The distributions rai-audit needs with ``extra``, transitively (canonical names).

    Read from this environment's package metadata, so it must have that extra installed.
    """
    wanted: set[str] = set()
    todo = [("rai-audit", frozenset({extra}))]
    seen = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for line in metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue
            key = canonicalize_name(req.name)
            if key != "rai-audit":
                wanted.add(key)
            todo.append((key, frozenset(req.extras)))
    return wanted
