"""Check the built step images: size, user, labels, and exactly the packages of their extra.

Each image's installed distributions must be the requirements of rai-audit's base and of
that step's extra, resolved transitively from this environment's metadata (which has
every extra installed) - nothing more (no dice-ml outside the counterfactual image) and
nothing less - plus pip and setuptools. Prints a table; exits 1 on the first mismatch list.
"""

from __future__ import annotations

import json
import subprocess
import sys

from packaging.utils import canonicalize_name

from image_tools import PODMAN_RUN, extra_distributions, podman
from rai_audit.images import STEPS, USER_ID, step_image

TOOLS = {"pip", "setuptools"}
WATCHED = ("dice-ml", "xgboost", "econml", "weasyprint", "lightgbm", "interpret-community", "minio")


def main() -> int:
    failures = []
    print(f"{'image':<38} {'MB':>6} {'user':>6} {'pkgs':>5}  of note")
    for step in STEPS:
        image = step_image(step)
        info = json.loads(
            subprocess.run([*podman(), "image", "inspect", image], check=True, capture_output=True, text=True).stdout
        )[0]
        listed = subprocess.run(
            [*podman(), *PODMAN_RUN, image, "pip", "list", "--format", "json", "--disable-pip-version-check"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        installed = {canonicalize_name(p["name"]) for p in json.loads(listed)} - {"rai-audit"}
        expected = extra_distributions(step) | TOOLS
        user = info["Config"].get("User", "")
        labels = info["Config"].get("Labels") or {}
        print(
            f"{image:<38} {info['Size'] / 1e6:6.0f} {user:>6} {len(installed):5d}  "
            f"{' '.join(n for n in WATCHED if n in installed)}"
        )
        if installed != expected:
            failures.append(f"{image}: extra {sorted(installed - expected)}, missing {sorted(expected - installed)}")
        if user != str(USER_ID):
            failures.append(f"{image}: runs as {user!r}, not the non-root user {USER_ID}")
        for label in ("source", "version", "revision"):
            if not labels.get(f"org.opencontainers.image.{label}"):
                failures.append(f"{image}: no org.opencontainers.image.{label} label")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
