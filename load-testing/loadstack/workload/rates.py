"""Arrival rates as users write them (``10/s``, ``600/m``) and the schedule they add up to.

A :class:`Schedule` is the target rate against time since the test started:
constant, ``stages`` of ``{duration, rate}`` (held, or ramped linearly with
``ramp: true``) or a rate breakpoint's steps.  It answers the two questions
pacing asks: how many iterations should have started by ``t``
(:meth:`Schedule.count`) and when the ``n``-th is due (:meth:`Schedule.time_of`).
Every Locust process builds the same schedule from the run's settings, so the
workers never need to ask the master what the rate is.

No Locust import here: profiles are validated in processes that must not be
gevent-patched.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from loadstack.limits import MAX_RATE

_RATE = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?:/\s*(?P<unit>s|sec|second|m|min|minute|h|hour))?$")
_PER = {None: 1.0, "s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PER |= {"h": 3600.0, "hour": 3600.0}


def parse_rate(value: Any) -> float:
    """Iterations per second in ``10/s``, ``600/m``, ``36000/h`` or a plain number (per second)."""
    if isinstance(value, bool):
        raise ValueError("expected a rate such as 10/s, 600/m or 2.5")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _RATE.fullmatch(value.strip())
        if match:
            return float(match["n"]) / _PER[match["unit"]]
    raise ValueError(f"invalid rate {value!r}; use e.g. 10/s, 600/m, 36000/h or 2.5 (per second)")


# A rate in a profile: iterations started per second, across all workers.
Rate = Annotated[float, BeforeValidator(parse_rate), Field(ge=0, le=MAX_RATE, allow_inf_nan=False)]
PositiveRate = Annotated[float, BeforeValidator(parse_rate), Field(gt=0, le=MAX_RATE, allow_inf_nan=False)]


@dataclass(frozen=True)
class Segment:
    """``start``..``end`` seconds with the rate going linearly from ``r0`` to ``r1``."""

    start: float
    end: float
    r0: float
    r1: float

    @property
    def slope(self) -> float:
        span = self.end - self.start
        return (self.r1 - self.r0) / span if math.isfinite(span) and span > 0 else 0.0

    def rate_at(self, t: float) -> float:
        return self.r0 + self.slope * (t - self.start)

    def count(self, t: float) -> float:
        """Iterations due between ``start`` and ``min(t, end)``."""
        d = min(t, self.end) - self.start
        if d <= 0:
            return 0.0
        return self.r0 * d + 0.5 * self.slope * d * d

    def time_of(self, n: float) -> float:
        """When ``n`` iterations (counted from ``start``) are due; ``inf`` when not in this segment."""
        if n <= 0:
            return self.start
        s = self.slope
        if abs(s) < 1e-12:
            d = n / self.r0 if self.r0 > 0 else math.inf
        else:
            disc = self.r0 * self.r0 + 2 * s * n
            d = (-self.r0 + math.sqrt(disc)) / s if disc >= 0 else math.inf
        t = self.start + d
        return t if t <= self.end else math.inf


class Schedule:
    """A piecewise linear rate from ``t = 0``; no iterations are due after the last segment."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        self._starts = [s.start for s in segments]
        self._before: list[float] = []
        total = 0.0
        for seg in segments:
            self._before.append(total)
            total += seg.count(seg.end) if math.isfinite(seg.end) else 0.0
        self.total = total if not segments or math.isfinite(segments[-1].end) else math.inf

    @classmethod
    def constant(cls, rate: float) -> Schedule:
        return cls([Segment(0.0, math.inf, rate, rate)])

    @classmethod
    def stages(cls, stages: list[tuple[float, float, bool]]) -> Schedule:
        """``(duration, rate, ramp)`` per stage; a ramp starts from the previous stage's rate (or 0)."""
        segments, t, previous = [], 0.0, 0.0
        for duration, rate, ramp in stages:
            segments.append(Segment(t, t + duration, previous if ramp else rate, rate))
            t += duration
            previous = rate
        return cls(segments)

    @classmethod
    def steps(cls, start: float, step: float, every: float, maximum: float) -> Schedule:
        """A rate breakpoint: ``start``, then ``+step`` every ``every`` seconds, the last step <= ``maximum``."""
        segments, t, rate = [], 0.0, start
        while rate <= maximum + 1e-9:
            segments.append(Segment(t, t + every, rate, rate))
            t += every
            rate += step
        return cls(segments)

    @property
    def duration(self) -> float:
        return self.segments[-1].end if self.segments else 0.0

    def _segment(self, t: float) -> int:
        return max(0, bisect_right(self._starts, t) - 1)

    def rate_at(self, t: float) -> float:
        if not self.segments or t < 0 or t >= self.duration:
            return 0.0
        return self.segments[self._segment(t)].rate_at(t)

    def count(self, t: float) -> float:
        """Iterations due by ``t`` seconds after the start."""
        if not self.segments or t <= 0:
            return 0.0
        i = self._segment(t)
        return self._before[i] + self.segments[i].count(t)

    def time_of(self, n: float) -> float:
        """When the ``n``-th iteration (fractional) is due; ``inf`` if the schedule never gets there."""
        if n <= 0:
            return 0.0
        if n > self.total:
            return math.inf
        i = max(0, bisect_right(self._before, n) - 1)
        for j in range(i, len(self.segments)):
            seg = self.segments[j]
            t = seg.time_of(n - self._before[j])
            if math.isfinite(t):
                return t
        return math.inf
