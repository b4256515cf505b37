#!/usr/bin/env bash
# Makes the local Debian 12 base image (python3, python3-venv, python3-pip) with debootstrap
# and imports it into podman, for machines that cannot pull images (CONTAINERS.md, step 3).
#   scripts/make_base_image.sh [TAG]      (default localhost/base:bookworm; root only)
# Does nothing when the image already exists.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${1:-localhost/base:bookworm}
read -ra engine <<<"$(scripts/container_engine.sh)"
if "${engine[@]}" image exists "$tag" 2>/dev/null || "${engine[@]}" image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag already exists" >&2
    exit 0
fi
command -v debootstrap >/dev/null || { echo "ERROR: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
rootfs=$(mktemp -d /tmp/base-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm into $rootfs ..." >&2
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip bookworm "$rootfs" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; echo "ERROR: debootstrap failed (log: $rootfs.log)" >&2; exit 1; }
rm -f "$rootfs.log"
tar -C "$rootfs" -c . | "${engine[@]}" import - "$tag" >/dev/null
echo "made base image $tag" >&2
