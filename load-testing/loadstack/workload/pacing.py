"""Arrival-rate pacing on one Locust process: iteration start times, claimed by idle users.

Each open-model user class has a :class:`Pacer` per process with one
:class:`Arrivals` per arrival process (the class itself, or each of its chains).
The run-wide schedule is split between processes in proportion to their users:
a process running ``n`` of a class's ``pool`` users starts ``n / pool`` of its
iterations.  Locust's dispatcher already spreads users evenly across workers and
rebalances them when workers come and go, so the rate follows every change of
worker count without any coordination of its own.

An idle user *claims* the next start time and sleeps until it; several idle
users hold consecutive start times.  A start time that nobody claimed within
``GRACE_S`` of being due (every user of the pool was busy) is a dropped
iteration: counted, never made up for later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from loadstack.workload.rates import Schedule

GRACE_S = 0.05  # a free user that picks a start time up this late still starts it
MAX_MISSED = 100_000  # scheduled starts of dropped iterations kept for the corrected latency


@dataclass
class Arrivals:
    """One arrival process: start times ``j`` = 0, 1, 2, ... of this process's share of a schedule."""

    name: str
    schedule: Schedule
    phase: float = 0.5  # where in each interval a start falls (spreads workers' starts apart)
    share: float = 0.0
    base_t: float = 0.0  # share changed at base_t (seconds since the test started) ...
    base_k: float = 0.0  # ... when base_k starts (fractional) were due
    next_j: int = 0
    closed: bool = False
    # Scheduled starts (seconds since the test started) of the iterations dropped since the last
    # take_missed(): what latency from the intended start counts as waiting (workload.intended).
    missed: list[float] = field(default_factory=list)

    def due_count(self, t: float) -> float:
        """Starts due by ``t`` (fractional) at the current share."""
        t = max(t, self.base_t)
        return self.base_k + self.share * (self.schedule.count(t) - self.schedule.count(self.base_t))

    def set_share(self, share: float, t: float) -> None:
        if share == self.share:
            return
        self.base_k = self.due_count(t)
        self.base_t = max(t, self.base_t)
        self.share = share

    def due_time(self, j: int) -> float:
        """When start ``j`` is due (seconds since the test started); ``inf`` when never."""
        if self.closed or self.share <= 0:
            return math.inf
        k = j + self.phase
        if k <= self.base_k:
            return self.base_t
        n = self.schedule.count(self.base_t) + (k - self.base_k) / self.share
        return self.schedule.time_of(n)

    def expire(self, t: float) -> int:
        """Drop the starts that were due before ``t - GRACE_S`` and nobody claimed; how many."""
        if self.closed or self.share <= 0:
            return 0
        due = math.floor(self.due_count(t - GRACE_S) - self.phase) + 1  # starts j with j + phase <= K
        missed = max(0, due - self.next_j)
        room = MAX_MISSED - len(self.missed)
        if missed and room > 0:
            self.missed.extend(self.due_time(j) for j in range(self.next_j, self.next_j + min(missed, room)))
        # A start exactly at base_t (due before a share change) may still be claimable: keep the rule simple.
        self.next_j += missed
        return missed


@dataclass
class Pacer:
    """The arrival processes of one user class on this process."""

    lanes: list[Arrivals]
    pool: int
    t0: float = 0.0  # the test's start (epoch seconds, the master's clock)

    def update(self, users: int, now: float) -> dict[str, int]:
        """New share from this process's running users of the class; starts dropped since last time."""
        t = now - self.t0
        share = min(users, self.pool) / self.pool if self.pool else 0.0
        out: dict[str, int] = {}
        for lane in self.lanes:
            missed = lane.expire(t)
            if missed:
                out[lane.name] = missed
            lane.set_share(share, t)
        return out

    def claim(self, now: float) -> tuple[float, str, dict[str, int]] | None:
        """(due epoch time, lane name, drops found on the way) of the earliest unclaimed start; None: none left."""
        t = now - self.t0
        drops: dict[str, int] = {}
        best: Arrivals | None = None
        best_due = math.inf
        for lane in self.lanes:
            missed = lane.expire(t)
            if missed:
                drops[lane.name] = missed
            due = lane.due_time(lane.next_j)
            if due < best_due:
                best, best_due = lane, due
        if best is None:
            return None
        best.next_j += 1
        return self.t0 + best_due, best.name, drops

    def take_missed(self) -> list[tuple[str, float]]:
        """(lane, scheduled start as epoch time) of the iterations dropped since the last call."""
        out = [(lane.name, self.t0 + t) for lane in self.lanes for t in lane.missed]
        for lane in self.lanes:
            lane.missed = []
        return out

    def shares(self) -> list[float]:
        return [lane.share for lane in self.lanes]

    @property
    def shared(self) -> bool:
        """Whether this process has a share of the rate yet (users of the class are running)."""
        return any(lane.share > 0 for lane in self.lanes)

    def close(self, name: str) -> None:
        """No more starts for this lane (its iteration budget is used up)."""
        for lane in self.lanes:
            if lane.name == name:
                lane.closed = True

    @property
    def finished(self) -> bool:
        return all(lane.closed for lane in self.lanes)
