#!/usr/bin/env bash
# Push every step's image built by scripts/build-images.sh and record what was pushed.
#
#   scripts/push-images.sh REGISTRY TAG       (`make images REGISTRY=... TAG=...` runs it after the build)
#
# Pushes <REGISTRY>/<step>:<TAG> with podman (the build's storage; log in first with
# `podman login`), and writes each pushed image's digest to images/pushed.json
# ({"<REGISTRY>/<step>:<TAG>": "sha256:..."}; RAI_AUDIT_IMAGE_DIGESTS names another file).
# rai_audit.images reads it, so `rai-audit compile --image-registry REGISTRY --image-tag TAG`
# and `make compile`'s specs name <REGISTRY>/<step>:<TAG>@sha256:..., exactly what was pushed.
set -euo pipefail
cd "$(dirname "$0")/.."
REGISTRY=${1:?usage: scripts/push-images.sh REGISTRY TAG}
TAG=${2:?usage: scripts/push-images.sh REGISTRY TAG}
PY=${PY:-.venv/bin/python}
PODMAN=${PODMAN:-podman}
DIGESTS=${RAI_AUDIT_IMAGE_DIGESTS:-images/pushed.json}
STORAGE_DRIVER=$(scripts/storage-driver.sh)
steps=${STEPS:-$($PY -c 'from rai_audit.images import STEPS; print(" ".join(STEPS))')}
digest_file=$(mktemp)
trap 'rm -f "$digest_file"' EXIT
for step in $steps; do
  image="${REGISTRY%/}/$step:$TAG"
  echo "== push $image"
  "$PODMAN" --storage-driver "$STORAGE_DRIVER" push --digestfile "$digest_file" "$image" "docker://$image"
  # One entry per image, merged into what earlier pushes recorded.
  $PY - "$DIGESTS" "$image" "$(cat "$digest_file")" <<'PYTHON'
import json, re, sys
from pathlib import Path

path, image, digest = Path(sys.argv[1]), sys.argv[2], sys.argv[3].strip()
if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
    sys.exit(f"podman push wrote no sha256 digest for {image}: {digest!r}")
recorded = json.loads(path.read_text()) if path.is_file() else {}
recorded[image] = digest
path.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
print(f"   {image}@{digest}")
PYTHON
done
echo "digests in $DIGESTS"
