#!/usr/bin/env bash
# Make the local base images for docker/Dockerfile where no image registry is reachable, from
# one Debian bookworm (minbase) debootstrap:
#   $BASE_IMAGE        python3 (3.11) and bash: the runtime base        (--build-arg BASE)
#   $BASE_IMAGE-venv   the same + python3-venv (pip's wheels): builds    (--build-arg BUILD_BASE)
# A no-op when both exist (debootstrap takes about a minute on two cores).
#   scripts/container_base.sh [IMAGE]     (default localhost/warmgate-base:bookworm)
set -euo pipefail
BASE_IMAGE="${1:-${BASE_IMAGE:-localhost/warmgate-base:bookworm}}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if podman image exists "$BASE_IMAGE" && podman image exists "$BASE_IMAGE-venv"; then
  echo "base images $BASE_IMAGE and $BASE_IMAGE-venv exist"
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
tar -C "$rootfs" -c . | podman import -q --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE-venv" >/dev/null
# the runtime needs neither venv nor the pip and setuptools wheels that come with it
chroot "$rootfs" dpkg --purge python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl >/dev/null
tar -C "$rootfs" -c . | podman import -q --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
for image in "$BASE_IMAGE" "$BASE_IMAGE-venv"; do
  echo "base image $image: $(podman image inspect --format '{{.Size}}' "$image") bytes"
done
