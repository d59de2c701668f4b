"""Deliberate faults in the demo platform: added latency, globally or per path glob.

``--latency-ms 50`` slows every request; ``--slow '/api/v1/orders*=80'`` (repeatable)
slows matching paths.  The same from the environment for runs that start the
platform themselves: ``LOADSTACK_DEMO_LATENCY_MS=50``,
``LOADSTACK_DEMO_SLOW='/api/v1/orders*=80;/api/v1/payments=20'``.  Regression
detection is tested against exactly this.

``--stall 5:2`` (``LOADSTACK_DEMO_STALL=5:2``) stalls the whole platform once: 5 s after the
first request other than ``/health`` (readiness probes do not start the clock), every request
waits until the 2 s window is over, as a server in a GC pause or a failover would.  An
open-model run's latency from the intended start (``summary.json`` → ``corrected``) is tested
against exactly this: the iterations due during the stall start late, and only the corrected
figure shows it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from dataclasses import dataclass
from typing import Any

from loadstack.settings import current, parse_slow_rule, parse_stall


@dataclass(frozen=True)
class Slowdown:
    glob: str
    ms: float


def parse_slow(spec: str) -> Slowdown:
    """``GLOB=MS``; a malformed rule is a ``ValueError`` (the same rule as the setting's check)."""
    return Slowdown(*parse_slow_rule(spec))


def from_env(latency_ms: float | None = None, slow: list[str] | None = None) -> list[Slowdown]:
    rules = [parse_slow(s) for s in (slow or [])]
    config = current()
    rules += [parse_slow(s.strip()) for s in config.demo_slow.split(";") if s.strip()]
    latency = latency_ms if latency_ms is not None else config.demo_latency_ms
    if latency:
        rules.append(Slowdown("*", latency))
    return rules


class LatencyMiddleware:
    """ASGI middleware: sleep before handling requests whose path matches a rule (sum of matching rules)."""

    def __init__(self, app: Any, rules: list[Slowdown]) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            delay = sum(r.ms for r in self.rules if fnmatch.fnmatchcase(scope["path"], r.glob))
            if delay:
                await asyncio.sleep(delay / 1000.0)
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class Stall:
    """The platform stops answering for ``duration_s``, ``at_s`` after its first real request."""

    at_s: float
    duration_s: float


def stall_from_env(spec: str | None = None) -> Stall | None:
    """``--stall AT_S:DURATION_S`` or ``$LOADSTACK_DEMO_STALL``; None when neither asks for one."""
    text = (spec if spec is not None else current().demo_stall).strip()
    if not text:
        return None
    return Stall(*parse_stall(text))


class StallMiddleware:
    """ASGI middleware: requests (HTTP and WebSocket) that arrive in the stall window wait it out."""

    def __init__(self, app: Any, stall: Stall) -> None:
        self.app = app
        self.stall = stall
        self.clock_from: float | None = None  # monotonic time of the first request that is not /health

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            now = time.monotonic()
            if self.clock_from is None and scope.get("path") != "/health":
                self.clock_from = now
            if self.clock_from is not None:
                begin = self.clock_from + self.stall.at_s
                end = begin + self.stall.duration_s
                if begin <= now < end:
                    await asyncio.sleep(end - now)
        await self.app(scope, receive, send)
