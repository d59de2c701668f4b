"""Process exit statuses, the same however a run is started (README: "Exit status")."""

from __future__ import annotations

OK = 0
FAILURES = 1  # failed requests, no SLO gates configured
BAD_INPUT = 2  # nothing ran (or a gate matched no request)
GATE_FAILED = 3
REGRESSION = 4  # `loadstack compare`
INTERRUPTED = 130
