#!/usr/bin/env bash
# Build every image of the stack without a registry (air-gapped, or behind a firewall).
#
#  1. debian:bookworm-slim, if missing: debootstrap (minbase) from the Debian mirror apt uses,
#     imported as a Docker image (what the official image is made from).
#  2. loadstack:dev (load-testing/Dockerfile) and the Debian-package equivalents of the official
#     images: loadstack/postgres:15, loadstack/redis:7, loadstack/rabbitmq:3, loadstack/prometheus:2,
#     built in parallel.
#
# Images are labelled with a hash of what they are built from; an image whose hash matches is
# skipped (so warm runs take seconds).  --rebuild forces every build.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
rebuild=0
[ "${1:-}" = "--rebuild" ] && rebuild=1
log_dir=${LOADSTACK_BUILD_LOGS:-/tmp/loadstack-build}
mkdir -p "$log_dir"
say() { printf 'images: %s\n' "$*" >&2; }

"$root/infra/offline/start-dockerd.sh"

mirror=${LOADSTACK_DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}

if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { say "debootstrap missing: apt-get install debootstrap"; exit 1; }
  say "building debian:bookworm-slim with debootstrap from $mirror (about 30 s)"
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$log_dir/debootstrap.log" 2>&1 \
    || { say "debootstrap failed, see $log_dir/debootstrap.log"; tail -5 "$log_dir/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"
  chmod +x "$rootfs/usr/sbin/policy-rc.d"
  tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
  rm -rf "$rootfs"
fi

# pip in the loadstack build needs the host's CA bundle when HTTPS is intercepted; it stays in the
# build stage (see load-testing/Dockerfile).
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/load-testing/docker-certs/ca-certificates.crt"
fi

hash_of() { (cd "$root" && find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }

build() {  # name dockerfile context hash
  local name=$1 dockerfile=$2 context=$3 hash=$4
  local have
  have=$(docker image inspect -f '{{ index .Config.Labels "org.loadstack.hash" }}' "$name" 2>/dev/null || true)
  if [ "$rebuild" = 0 ] && [ "$have" = "$hash" ]; then
    say "$name is up to date"
    return 0
  fi
  say "building $name"
  if docker build --label "org.loadstack.hash=$hash" -t "$name" -f "$dockerfile" "$context" >"$log_dir/${name//[:\/]/_}.log" 2>&1; then
    say "built $name"
  else
    say "FAILED $name, see $log_dir/${name//[:\/]/_}.log"
    tail -15 "$log_dir/${name//[:\/]/_}.log" >&2
    return 1
  fi
}

pids=()
build loadstack:dev "$root/load-testing/Dockerfile" "$root" \
  "$(hash_of load-testing/Dockerfile pyproject.toml load-testing/loadstack load-testing/demo load-testing/locustfiles load-testing/chains profiles)" &
pids+=($!)
for image in postgres:15 redis:7 rabbitmq:3 prometheus:2; do
  dir="$root/infra/images/${image%%:*}"
  build "loadstack/$image" "$dir/Dockerfile" "$dir" "$(hash_of "infra/images/${image%%:*}")" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || { say "some images failed to build"; exit 1; }
# Superseded builds of our own images are dangling now; drop them so disk use stays flat.
docker image prune -f --filter "label=org.loadstack.hash" >/dev/null
say "all images ready"
