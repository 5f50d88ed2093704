#!/usr/bin/env bash
# Build every step's image without a Docker engine, then run the demo audit in them.
#
# Debian's buildah builds images/<step>/Dockerfile with chroot isolation and no daemon, in
# overlay storage where the kernel mounts overlays, else vfs (scripts/storage-driver.sh).
# The base is Debian 12 with its Python 3.11 made with debootstrap, since no registry can
# be pulled here (a machine that can pull builds on the Dockerfiles' default
# python:3.11-slim instead). Then scripts/audit-in-containers.py runs each step in its own
# container and checks the result equals the local run's.
#
#   scripts/build-images.sh [OUTPUT_DIR]      (root; default OUTPUT_DIR rai-audit-containers)
#
# STEPS="gather scorecard" rebuilds only those images (default: all).
# RAI_AUDIT_IMAGE_REGISTRY (default localhost/rai-audit) and RAI_AUDIT_IMAGE_TAG (default
# the package version) name the images; `rai-audit compile --image-registry --image-tag`
# puts the same names in the compiled pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
OUTPUT=${1:-rai-audit-containers}
PY=${PY:-.venv/bin/python}
BASE=localhost/rai-audit-base:bookworm
export RAI_AUDIT_IMAGE_REGISTRY=${RAI_AUDIT_IMAGE_REGISTRY:-localhost/rai-audit}
export RAI_AUDIT_IMAGE_TAG=${RAI_AUDIT_IMAGE_TAG:-$($PY -c 'import rai_audit; print(rai_audit.__version__)')}
started=$(date +%s)

missing=""
for p in buildah podman runc debootstrap; do
  command -v "$p" >/dev/null || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah podman runc debootstrap >/dev/null
fi

# Decided once the tools are there; the scripts run below (podman's too) read the same answer.
export RAI_AUDIT_STORAGE_DRIVER=$(scripts/storage-driver.sh)
STORAGE=(--storage-driver "$RAI_AUDIT_STORAGE_DRIVER")
echo "== storage driver: $RAI_AUDIT_STORAGE_DRIVER"

if ! podman "${STORAGE[@]}" image exists "$BASE"; then
  echo "== base image $BASE (debootstrap bookworm)"
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  # This machine's own certificate authorities (e.g. an egress proxy's), so that pip in the
  # build reaches PyPI as it does on this machine. The base is local to this machine.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  fi
  # Like Debian's slim images: no documentation, manuals or translations, now or from apt later.
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
    > "$rootfs/etc/dpkg/dpkg.cfg.d/slim"
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  chmod 755 "$rootfs"  # mktemp made it 0700: the image's / must be readable by its users
  tar -C "$rootfs" -c . | podman "${STORAGE[@]}" import --quiet --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$BASE" >/dev/null
fi

# The Debian package versions of the base's release (the Dockerfiles default to trixie's).
mapfile -t base_args < <(grep -v '^#' images/debian-bookworm.args | sed '/^$/d; s/^/--build-arg=/')
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
source_url=$(git remote get-url origin 2>/dev/null || echo unknown)
steps=${STEPS:-$($PY -c 'from rai_audit.images import STEPS; print(" ".join(STEPS))')}
for step in $steps; do
  image="$RAI_AUDIT_IMAGE_REGISTRY/$step:$RAI_AUDIT_IMAGE_TAG"
  echo "== $image"
  step_started=$(date +%s)
  buildah "${STORAGE[@]}" bud --isolation chroot --layers=false --quiet \
    -f "images/$step/Dockerfile" --build-arg "BASE_IMAGE=$BASE" "${base_args[@]}" \
    --build-arg "VERSION=$RAI_AUDIT_IMAGE_TAG" --build-arg "REVISION=$revision" \
    --build-arg "SOURCE=$source_url" -t "$image" . >/dev/null
  echo "   built in $(( $(date +%s) - step_started )) s"
done
# Intermediate build stages left nothing tagged; drop their dangling images.
podman "${STORAGE[@]}" image prune -f >/dev/null

echo "== images"
$PY scripts/check-images.py
echo "== the demo audit, one container per step"
$PY scripts/audit-in-containers.py --output "$OUTPUT" --kfp-docker
echo "build and run: $(( $(date +%s) - started )) s"
