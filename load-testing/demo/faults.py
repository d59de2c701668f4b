"""Deliberate faults in the demo platform: added latency, globally or per path glob.

``--latency-ms 50`` slows every request; ``--slow '/api/v1/orders*=80'`` (repeatable)
slows matching paths.  The same from the environment for runs that start the
platform themselves: ``LOADSTACK_DEMO_LATENCY_MS=50``,
``LOADSTACK_DEMO_SLOW='/api/v1/orders*=80;/api/v1/payments=20'``.  Regression
detection is tested against exactly this.
"""

from __future__ import annotations

import asyncio
import fnmatch
from dataclasses import dataclass
from typing import Any

from loadstack.settings import current


@dataclass(frozen=True)
class Slowdown:
    glob: str
    ms: float


def parse_slow(spec: str) -> Slowdown:
    glob, sep, ms = spec.rpartition("=")
    if not sep or not glob:
        raise ValueError(f"expected GLOB=MILLISECONDS, got {spec!r}")
    value = float(ms)
    if value < 0:
        raise ValueError(f"latency must be >= 0 ms: {spec!r}")
    return Slowdown(glob, value)


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
