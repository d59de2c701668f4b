#!/usr/bin/env bash
# The suite as N pytest processes side by side (tests/shards.py deals the test modules out by
# their recorded durations).  Usage: infra/dev/test-shards.sh [pytest args ...]
#   LOADSTACK_TEST_SHARDS  how many (default 2; 1 = one plain pytest process)
# Shard 1 reports on the terminal as it goes; each other shard's report follows when it is done
# (its log is in /tmp/loadstack-tests/shard-I.log meanwhile).  The exit status is the first
# failing shard's.  Every shard is stopped when this script ends, however it ends.
set -uo pipefail
python=${PYTHON:-python3}
shards=${LOADSTACK_TEST_SHARDS:-2}
if ! [[ "$shards" =~ ^[1-9][0-9]*$ ]]; then
  echo "LOADSTACK_TEST_SHARDS=$shards: give a whole number of shards, 1 or more" >&2
  exit 2
fi
if [ "$shards" -eq 1 ]; then
  exec "$python" -m pytest "$@"
fi

root=/tmp/loadstack-tests
mkdir -p "$root"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$(date +%s)
echo "test-shards: $shards shards side by side; shard 1 below, the others after it" >&2
# In the background and waited for, so that a signal reaches the traps at once.
"$python" -m pytest --shard "1/$shards" --basetemp "$root/shard-1" "$@" &
pids+=($!)
for i in $(seq 2 "$shards"); do
  "$python" -m pytest --shard "$i/$shards" --basetemp "$root/shard-$i" "$@" >"$root/shard-$i.log" 2>&1 &
  pids+=($!)
done
# pytest's 5 is "no tests collected": fine for a shard (-k picked tests of another), not for all.
status=5
for i in $(seq 1 "$shards"); do
  shard_status=0
  wait "${pids[$((i - 1))]}" || shard_status=$?
  if [ "$i" -gt 1 ]; then
    echo
    echo "==================== shard $i of $shards (exit $shard_status) ===================="
    cat "$root/shard-$i.log"
  fi
  if [ "$shard_status" -ne 5 ] && { [ "$status" -eq 5 ] || [ "$status" -eq 0 ]; }; then
    status=$shard_status
  fi
done
pids=()
echo "test-shards: $shards shards: exit $status in $(($(date +%s) - started)) s" >&2
exit "$status"
