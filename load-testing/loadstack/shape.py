"""Profile-driven load shapes: ``stages`` (incl. spike) and ``breakpoint`` step load.

The shape is a regular Locust ``LoadTestShape``.  The master plugin installs
it when the run's profile has stages or a breakpoint and the locustfile brings
no shape of its own, so plain profiles keep ``-u/-r/-t``.  Why and where a
shaped run ended is kept in :attr:`ProfileShape.outcome` for the summary.

Open-model shapes (rate stages, a rate breakpoint) keep the pool of users
constant; the rate itself is paced on every process from the same schedule
(:mod:`loadstack.workload`).  The shape decides when they end.
"""

from __future__ import annotations

import logging
from typing import Any

from locust import LoadTestShape

from loadstack.profiles import Breakpoint, RunSettings, Stage

log = logging.getLogger("loadstack.shape")


def stage_at(stages: list[Stage], t: float) -> tuple[int, float] | None:
    """(users, spawn_rate) of the users stage running at ``t`` seconds; None after the last."""
    end = 0.0
    for stage in stages:
        end += stage.duration
        if t < end:
            assert stage.users is not None and stage.spawn_rate is not None
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
        assert self.spec.start_users is not None and self.spec.step_users is not None
        return self.spec.start_users + int(t // self.spec.step_duration) * self.spec.step_users

    def level_for(self, t: float) -> float:
        """The step's users (closed model) or rate (open model) at ``t``."""
        if self.spec.open:
            assert self.spec.start_rate is not None and self.spec.step_rate is not None
            return self.spec.start_rate + int(t // self.spec.step_duration) * self.spec.step_rate
        return self.users_for(t)

    @property
    def maximum(self) -> float:
        return float(self.spec.max_rate if self.spec.open else self.spec.max_users or 0)

    def label(self, level: float) -> str:
        return f"{level:g}/s" if self.spec.open else f"{level:g} users"

    def check(self, runner: Any, level: float) -> str | None:
        """Evaluate the step that just ended; a reason string when a stop condition holds."""
        total = runner.stats.total
        requests = total.num_requests - self.base_requests
        failures = total.num_failures - self.base_failures
        self.base_requests, self.base_failures = total.num_requests, total.num_failures
        rate_max = self.stop_when.error_rate_max
        at = self.label(level)
        if rate_max is not None and requests and failures / requests > rate_max:
            return f"error rate {failures / requests:.2%} > {rate_max:.2%} at {at}"
        p95_max = self.stop_when.p95_ms_max
        if p95_max is not None and requests:
            p95 = total.get_current_response_time_percentile(0.95) or 0
            if p95 > p95_max:
                return f"p95 {p95:.0f} ms > {p95_max:.0f} ms at {at}"
        return None


class ProfileShape(LoadTestShape):
    """Runs the current profile's ``stages`` or ``breakpoint`` spec."""

    abstract = True  # built by the plugin from a run's settings, never picked up from a locustfile

    def __init__(self, run: RunSettings) -> None:
        super().__init__()
        self.stages = run.stages or []
        self.cap = run.planned_duration
        self.breakpoint = BreakpointTracker(run.breakpoint) if run.breakpoint else None
        # Open model: the whole pool all along; the rate schedule is paced by the workload model.
        self.pool = (run.users, run.spawn_rate) if run.open else None
        self.last_level = 0.0
        self.outcome: dict[str, Any] = {}

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        if self.breakpoint is not None:
            return self._breakpoint_tick(t)
        current = None
        if t < self.cap:
            current = self.pool if self.pool is not None else stage_at(self.stages, t)
        if current is None:
            self.outcome.setdefault("reason", "shape completed")
        return current

    def _breakpoint_tick(self, t: float) -> tuple[int, float] | None:
        bp = self.breakpoint
        assert bp is not None
        level = bp.level_for(t)
        open_model = bp.spec.open
        key = "rate" if open_model else "users"
        if level != self.last_level and self.last_level:
            reason = bp.check(self.runner, self.last_level)
            if reason:
                self.outcome.update(
                    {"reason": "breakpoint reached", f"breakpoint_{key}": self.last_level, "detail": reason}
                )
                log.warning("breakpoint reached: %s", reason)
                return None
        if level > bp.maximum + 1e-9 or t >= self.cap:
            self.outcome.update({"reason": "breakpoint not reached", f"max_{key}": self.last_level})
            return None
        self.last_level = level
        if self.pool is not None:
            return self.pool
        assert bp.spec.spawn_rate is not None
        return int(level), bp.spec.spawn_rate
