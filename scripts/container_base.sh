#!/usr/bin/env bash
# Make the local base image for docker/Dockerfile where no image registry is reachable:
# Debian bookworm (minbase) + python3 + python3-venv, imported into podman as $BASE_IMAGE.
# A no-op when the image already exists (debootstrap takes minutes on two cores).
#   scripts/container_base.sh [IMAGE]     (default localhost/warmgate-base:bookworm)
set -euo pipefail
BASE_IMAGE="${1:-${BASE_IMAGE:-localhost/warmgate-base:bookworm}}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if podman image exists "$BASE_IMAGE"; then
  echo "base image $BASE_IMAGE exists"
  exit 0
fi
for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "need $tool: apt-get install -y podman runc debootstrap" >&2; exit 1; }
done
rootfs="$(mktemp -d /var/tmp/warmgate-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm into $rootfs (minutes)"
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$MIRROR" >/dev/null
# What an image does not need: package lists and caches, docs, man pages, translations.
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
  "$rootfs"/usr/share/locale/* "$rootfs"/var/cache/debconf/*-old "$rootfs"/tmp/*
tar -C "$rootfs" -c . | podman import -q --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
echo "base image $BASE_IMAGE: $(podman image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes"
