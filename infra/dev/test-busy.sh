#!/usr/bin/env bash
# The quick suite with two CPU-bound processes beside it: a suite users can trust on a shared,
# busy CI runner (issue 28).  Usage: infra/dev/test-busy.sh [pytest args ...]
#
# The two spinners are killed when this script ends, however it ends (exit, failure, Ctrl-C,
# SIGTERM); each also stops by itself once this script is gone (its parent changed), so even a
# SIGKILL of the script leaves no spinner behind for long.
set -euo pipefail
python=${PYTHON:-python3}

spin='
import os, sys
parent = int(sys.argv[1])
while os.getppid() == parent:
    for _ in range(1_000_000):
        pass
'
spinners=()
suite=
stop_all() {
  # The suite first (a signal to this script is meant for it too), then the spinners.
  if [ -n "$suite" ]; then
    kill -TERM "$suite" 2>/dev/null || true
    wait "$suite" 2>/dev/null || true
  fi
  for pid in "${spinners[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${spinners[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in 1 2; do
  "$python" -c "$spin" "$$" &
  spinners+=($!)
done
echo "test-busy: two CPU-bound processes beside the suite (pids ${spinners[*]})" >&2
started=$(date +%s)
# In the background and waited for, so that a signal reaches the traps at once.
"$python" -m pytest -m "not slow and not docker" "$@" &
suite=$!
status=0
wait "$suite" || status=$?
suite=
echo "test-busy: quick suite beside two CPU-bound processes: exit $status in $(( $(date +%s) - started )) s" >&2
exit "$status"
