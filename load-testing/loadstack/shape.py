"""Profile-driven load shapes: ``stages`` (incl. spike) and ``breakpoint`` step load.

The shape is a regular Locust ``LoadTestShape``; ``loadstack run`` adds
``loadstack/_hooks/loadstack_shape.py`` to the locustfile list only when the
profile has stages or a breakpoint, so plain profiles keep ``-u/-r/-t``.
"""

from __future__ import annotations

import logging
from typing import Any

from locust import LoadTestShape

from loadstack import runcontext
from loadstack.profiles import planned_duration

log = logging.getLogger("loadstack.shape")

# Why and where a shaped run ended (read by the summary writer in the same process).
outcome: dict[str, Any] = {}


def stage_at(stages: list[dict[str, Any]], t: float) -> tuple[int, float] | None:
    """(users, spawn_rate) of the stage running at ``t`` seconds; None after the last."""
    end = 0.0
    for stage in stages:
        end += float(stage["duration"])
        if t < end:
            return int(stage["users"]), float(stage["spawn_rate"])
    return None


class BreakpointTracker:
    """Decides, at each step boundary, whether the system has broken."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.stop_when = spec["stop_when"]
        self.step = 0
        self.base_requests = 0
        self.base_failures = 0

    def users_for(self, t: float) -> int:
        return (
            self.spec["start_users"] + int(t // float(self.spec["step_duration"])) * self.spec["step_users"]
        )

    def check(self, runner: Any, users: int) -> str | None:
        """Evaluate the step that just ended; a reason string when a stop condition holds."""
        total = runner.stats.total
        requests = total.num_requests - self.base_requests
        failures = total.num_failures - self.base_failures
        self.base_requests, self.base_failures = total.num_requests, total.num_failures
        rate_max = self.stop_when.get("error_rate_max")
        if rate_max is not None and requests and failures / requests > rate_max:
            return f"error rate {failures / requests:.2%} > {rate_max:.2%} at {users} users"
        p95_max = self.stop_when.get("p95_ms_max")
        if p95_max is not None and requests:
            p95 = total.get_current_response_time_percentile(0.95) or 0
            if p95 > p95_max:
                return f"p95 {p95:.0f} ms > {p95_max:.0f} ms at {users} users"
        return None


class ProfileShape(LoadTestShape):
    """Runs the current profile's ``stages`` or ``breakpoint`` spec."""

    def __init__(self) -> None:
        super().__init__()
        self.settings = runcontext.current().settings
        self.cap = planned_duration(self.settings)
        bp = self.settings.get("breakpoint")
        self.breakpoint = BreakpointTracker(bp) if bp else None
        self.last_users = 0

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        if self.breakpoint is not None:
            return self._breakpoint_tick(t)
        current = stage_at(self.settings.get("stages") or [], t) if t < self.cap else None
        if current is None:
            outcome.setdefault("reason", "shape completed")
        return current

    def _breakpoint_tick(self, t: float) -> tuple[int, float] | None:
        bp = self.breakpoint
        assert bp is not None
        users = bp.users_for(t)
        if users != self.last_users and self.last_users:
            reason = bp.check(self.runner, self.last_users)
            if reason:
                outcome.update(reason="breakpoint reached", breakpoint_users=self.last_users, detail=reason)
                log.warning("breakpoint reached: %s", reason)
                return None
        if users > bp.spec["max_users"] or t >= self.cap:
            outcome.update(reason="breakpoint not reached", max_users=self.last_users)
            return None
        self.last_users = users
        return users, float(bp.spec["spawn_rate"])
