#!/usr/bin/env bash
# Build the swigapp image with podman on a machine without a registry (CI). Usage:
#   scripts/build_image.sh [TAG]          (default swigapp:latest)
# The Debian base is made with debootstrap (cached as a tarball in $SWIGAPP_CI_CACHE,
# default /var/cache/swigapp-ci) with this machine's apt sources, locally added CA
# certificates and a pip.conf naming the system bundle baked in, then imported as
# docker.io/library/debian:bookworm-slim. The torch CPU wheel of this machine's pip
# find-links, when there is one, goes into docker/wheels/ (git-ignored) so the build does
# not download a CUDA build. Podman runs with runc and explicit ulimits (crun fails here).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-swigapp:latest}
cache=${SWIGAPP_CI_CACHE:-/var/cache/swigapp-ci}
base=docker.io/library/debian:bookworm-slim
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/docker/containers.conf}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if ! podman image exists "$base"; then
  mkdir -p "$cache"
  if [ ! -s "$cache/bookworm-rootfs.tar" ]; then
    rootfs=$(mktemp -d /tmp/swigapp-rootfs.XXXXXX)
    echo "image: debootstrap bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$cache/debootstrap.log" 2>&1
    cp /etc/apt/sources.list.d/*.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null || true
    [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$rootfs/etc/apt/sources.list"
    if compgen -G "/usr/local/share/ca-certificates/*.crt" > /dev/null; then
      mkdir -p "$rootfs/usr/local/share/ca-certificates"
      cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
      chroot "$rootfs" apt-get install -y -q ca-certificates > /dev/null 2>&1 || true
      chroot "$rootfs" update-ca-certificates > /dev/null 2>&1 || true
    fi
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$rootfs/etc/pip.conf"
    tar -C "$rootfs" -cf "$cache/bookworm-rootfs.tar" .
    rm -rf "$rootfs"
  fi
  podman import "$cache/bookworm-rootfs.tar" "$base" > /dev/null
fi

mkdir -p docker/wheels
wheel=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$wheel" ] && [ ! -e "docker/wheels/$(basename "$wheel")" ]; then
  cp "$wheel" docker/wheels/
fi
start=$(date +%s)
podman build --pull=never --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  --build-arg TORCH_VARIANT=cpu -t "$tag" .
echo "image: built $tag in $(( $(date +%s) - start )) s; $(podman image inspect "$tag" --format '{{.Size}}') bytes"
