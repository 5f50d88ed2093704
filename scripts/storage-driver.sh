#!/usr/bin/env bash
# Prints the storage driver podman and buildah use for the step images on this machine.
#
# The one the image storage already holds (podman refuses a storage opened with another);
# for a new storage, overlay where the kernel mounts overlays on its filesystem, else vfs.
# vfs copies an image whole for every container and build stage (about 20 s per container
# of a step image on our CI machines, 0.3 s with overlay), so it is only the fallback.
# RAI_AUDIT_STORAGE_DRIVER, when set, is the answer.
set -euo pipefail
if [ -n "${RAI_AUDIT_STORAGE_DRIVER:-}" ]; then
  echo "$RAI_AUDIT_STORAGE_DRIVER"
  exit 0
fi
root=/var/lib/containers/storage
for driver in overlay vfs; do
  if [ -d "$root/$driver-images" ]; then
    echo "$driver"
    exit 0
  fi
done
mkdir -p "$root"
check=$(mktemp -d "$root/.overlay-check.XXXXXX")
mkdir "$check/lower" "$check/upper" "$check/work" "$check/merged"
if mount -t overlay overlay -o "lowerdir=$check/lower,upperdir=$check/upper,workdir=$check/work" \
  "$check/merged" 2>/dev/null; then
  umount "$check/merged"
  echo overlay
else
  echo vfs
fi
rm -rf "$check"
