"""Profile-driven load shapes: ``stages`` (incl. spike) and ``breakpoint`` step load.

The shape is a regular Locust ``LoadTestShape``.  The master plugin installs
it when the run's profile has stages or a breakpoint and the locustfile brings
no shape of its own, so plain profiles keep ``-u/-r/-t``.  Why and where a
shaped run ended is kept in :attr:`ProfileShape.outcome` for the summary.
"""

from __future__ import annotations

import logging
from typing import Any

from locust import LoadTestShape

from loadstack.profiles import Breakpoint, RunSettings, Stage

log = logging.getLogger("loadstack.shape")


def stage_at(stages: list[Stage], t: float) -> tuple[int, float] | None:
    """(users, spawn_rate) of the stage running at ``t`` seconds; None after the last."""
    end = 0.0
    for stage in stages:
        end += stage.duration
        if t < end:
            return stage.users, stage.spawn_rate
    return None


class BreakpointTracker:
    """Decides, at each step boundary, whether the system has broken."""

    def __init__(self, spec: Breakpoint) -> None:
        self.spec = spec
        self.stop_when = spec.stop_when
        self.step = 0
        self.base_requests = 0
        self.base_failures = 0

    def users_for(self, t: float) -> int:
        return self.spec.start_users + int(t // self.spec.step_duration) * self.spec.step_users

    def check(self, runner: Any, users: int) -> str | None:
        """Evaluate the step that just ended; a reason string when a stop condition holds."""
        total = runner.stats.total
        requests = total.num_requests - self.base_requests
        failures = total.num_failures - self.base_failures
        self.base_requests, self.base_failures = total.num_requests, total.num_failures
        rate_max = self.stop_when.error_rate_max
        if rate_max is not None and requests and failures / requests > rate_max:
            return f"error rate {failures / requests:.2%} > {rate_max:.2%} at {users} users"
        p95_max = self.stop_when.p95_ms_max
        if p95_max is not None and requests:
            p95 = total.get_current_response_time_percentile(0.95) or 0
            if p95 > p95_max:
                return f"p95 {p95:.0f} ms > {p95_max:.0f} ms at {users} users"
        return None


class ProfileShape(LoadTestShape):
    """Runs the current profile's ``stages`` or ``breakpoint`` spec."""

    abstract = True  # built by the plugin from a run's settings, never picked up from a locustfile

    def __init__(self, run: RunSettings) -> None:
        super().__init__()
        self.stages = run.stages or []
        self.cap = run.planned_duration
        self.breakpoint = BreakpointTracker(run.breakpoint) if run.breakpoint else None
        self.last_users = 0
        self.outcome: dict[str, Any] = {}

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        if self.breakpoint is not None:
            return self._breakpoint_tick(t)
        current = stage_at(self.stages, t) if t < self.cap else None
        if current is None:
            self.outcome.setdefault("reason", "shape completed")
        return current

    def _breakpoint_tick(self, t: float) -> tuple[int, float] | None:
        bp = self.breakpoint
        assert bp is not None
        users = bp.users_for(t)
        if users != self.last_users and self.last_users:
            reason = bp.check(self.runner, self.last_users)
            if reason:
                self.outcome.update(
                    reason="breakpoint reached", breakpoint_users=self.last_users, detail=reason
                )
                log.warning("breakpoint reached: %s", reason)
                return None
        if users > bp.spec.max_users or t >= self.cap:
            self.outcome.update(reason="breakpoint not reached", max_users=self.last_users)
            return None
        self.last_users = users
        return users, bp.spec.spawn_rate
