"""Iterations started, finished and dropped, per scenario and per second, added up on the master.

Workers (and a local runner) count; the counts travel with Locust's worker
report (:mod:`loadstack.aggregation`) so totals add up exactly across workers,
and the master keeps them per scenario and as a per-second timeline of starts
and drops (the arrival rate a run achieved, drawn in the run's ``workload.svg``).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

from locust.env import Environment

from loadstack.aggregation import Aggregator


class IterationCounters(Aggregator):
    report_key = "loadstack_iterations"
    observes_requests = False

    def __init__(self) -> None:
        self.totals: dict[str, Counter[str]] = defaultdict(Counter)  # scenario -> started/finished/dropped
        # The same since the start, warm-up included: Prometheus counters never go down.
        self.lifetime: dict[str, Counter[str]] = defaultdict(Counter)
        # epoch second -> (scenario, started|finished|dropped) -> n
        self.timeline: dict[int, Counter[tuple[str, str]]] = defaultdict(Counter)
        self._pending: dict[str, Counter[str]] = defaultdict(Counter)
        self._pending_seconds: dict[int, Counter[tuple[str, str]]] = defaultdict(Counter)

    def attach(self, environment: Environment, role: str) -> None:
        super().attach(environment, role)
        environment.events.reset_stats.add_listener(self.reset)

    def count(self, scenario: str, what: str, n: int = 1) -> None:
        """``started``, ``finished`` or ``dropped`` iterations of a scenario, now."""
        self._pending[scenario][what] += n
        self._pending_seconds[int(time.time())][(scenario, what)] += n

    def drain(self) -> dict[str, Any]:
        payload = {
            "totals": {k: dict(v) for k, v in self._pending.items()},
            "seconds": [
                [s, [[sc, what, n] for (sc, what), n in v.items()]] for s, v in self._pending_seconds.items()
            ],
        }
        self._pending = defaultdict(Counter)
        self._pending_seconds = defaultdict(Counter)
        return payload

    def merge(self, payload: dict[str, Any]) -> None:
        for scenario, counts in (payload.get("totals") or {}).items():
            self.totals[scenario].update(counts)
            self.lifetime[scenario].update(counts)
        for second, counts in payload.get("seconds") or ():
            for scenario, what, n in counts:
                self.timeline[int(second)][(scenario, what)] += n

    def reset(self, **_: Any) -> None:
        """Warm-up over: the totals count from here (the timeline keeps the whole run)."""
        self.totals.clear()
        self._pending.clear()

    def steady_rate(self, scenario: str) -> float | None:
        """Mean starts per second of ``scenario``, over the whole seconds between its first and last."""
        seconds = sorted(s for s, c in self.timeline.items() if c.get((scenario, "started")))
        inner = seconds[1:-1]
        if not inner:
            return None
        span = inner[-1] - inner[0] + 1
        return sum(self.timeline[s][(scenario, "started")] for s in range(inner[0], inner[-1] + 1)) / span

    def dropped(self) -> int:
        self.sync()
        return sum(c["dropped"] for c in self.totals.values())


counters = IterationCounters()
