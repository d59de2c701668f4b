"""Process exit statuses, the same however a run is started (README: "Exit status")."""

from __future__ import annotations

OK = 0
# failed requests (no SLO gates), user-code exceptions, or no request sent at all
FAILURES = 1
BAD_INPUT = 2  # nothing ran (or a gate matched no request)
GATE_FAILED = 3
REGRESSION = 4  # `loadstack compare`
# Teardown could not remove everything the run wrote (what was left is named in the log and in
# summary.json's ``teardown``): a run that leaves data on the target is not a clean run.
TEARDOWN_FAILED = 5
# The master died (SIGKILL, OOM, a crash) before writing its summary: the launcher wrote one
# marked `incomplete` and ran teardown for the run id (docs/lifecycle.md).
MASTER_LOST = 6
# The run would have passed, but its load generator was the bottleneck (summary.json's
# ``generator``: CPU or event-loop lag over the limit for much of the measured time), so its
# figures describe the generator.  `loadstack compare` exits 7 too when either run was saturated:
# inconclusive, no regression called.  A gate failure (3) or failures (1) still win.
GENERATOR_SATURATED = 7
INTERRUPTED = 130
