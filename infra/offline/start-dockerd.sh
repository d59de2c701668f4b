#!/usr/bin/env bash
# Make sure a Docker engine answers; start dockerd if none does (machines without systemd).
#
# dockerd needs the cgroup v1 hierarchy mounted ("Devices cgroup isn't mounted"
# otherwise); cgroupfs-mount, installed with Debian's docker.io, does that.
# Exits non-zero with the reason when no engine can be started.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "no Docker engine: install one (Debian: apt-get install docker.io docker-compose) and rerun" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "no Docker engine answers and starting dockerd needs root; start it yourself (dockerd &) and rerun" >&2
  exit 1
fi
if command -v cgroupfs-mount >/dev/null 2>&1; then
  cgroupfs-mount >/dev/null 2>&1 || true
fi
log=${LOADSTACK_DOCKERD_LOG:-/tmp/loadstack-dockerd.log}
nohup dockerd >"$log" 2>&1 &
echo $! > /tmp/loadstack-dockerd.pid
# Wait for readiness while dockerd lives (up to 5 min): a busy machine starts it slowly.
for _ in $(seq 1 600); do
  if docker info >/dev/null 2>&1; then
    echo "dockerd started (log: $log)" >&2
    exit 0
  fi
  if ! kill -0 "$(cat /tmp/loadstack-dockerd.pid)" 2>/dev/null; then
    break
  fi
  sleep 0.5
done
echo "dockerd did not come up; its log ($log):" >&2
tail -20 "$log" >&2
exit 1
