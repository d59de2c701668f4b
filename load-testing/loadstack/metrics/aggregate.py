"""Request counts, latency histograms and error counts, aggregated where requests happen.

Buckets are fixed (seconds) so that workers' counts add up exactly on the
master: the master's histogram is the true merge of every observation, not an
approximation from percentiles.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from loadstack.aggregation import Aggregator

# Upper bounds in seconds (le); a final +Inf bucket is implied.
BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_DIGITS = re.compile(r"\d+")
_MAX_LABEL = 80


def exception_label(exception: BaseException | str) -> str:
    """A bounded label for an error: class and message, digits folded (ids would explode cardinality)."""
    text = exception if isinstance(exception, str) else repr(exception)
    text = _DIGITS.sub("N", text.strip().splitlines()[0] if text.strip() else type(exception).__name__)
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…"


@dataclass(slots=True)
class RequestTally:
    """One (method, name)'s requests: outcomes, summed seconds and fixed-bucket counts."""

    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))

    def add(self, other: RequestTally) -> None:
        self.ok += other.ok
        self.failed += other.failed
        self.seconds += other.seconds
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]


class RequestMetrics(Aggregator):
    """``(method, name) -> RequestTally`` and error counts; the master's view only grows (never reset)."""

    report_key = "loadstack_metrics"

    def __init__(self) -> None:
        # Merged view (master, or a local runner after sync()) and the deltas since the last report.
        self.requests: dict[tuple[str, str], RequestTally] = {}
        self.errors: dict[tuple[str, str, str], int] = {}
        self._pending: dict[tuple[str, str], RequestTally] = {}
        self._pending_errors: dict[tuple[str, str, str], int] = {}

    def observe(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int = 0,
        response: Any = None,
        context: dict | None = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        url: str | None = None,
        **_: Any,
    ) -> None:
        # Locust's own keywords are named so that no dict of extras is built per request.
        key = (request_type, name)
        tally = self._pending.get(key)
        if tally is None:
            tally = self._pending[key] = RequestTally()
        seconds = response_time / 1000.0
        if exception is None:
            tally.ok += 1
        else:
            tally.failed += 1
            ekey = (request_type, name, exception_label(exception))
            self._pending_errors[ekey] = self._pending_errors.get(ekey, 0) + 1
        tally.seconds += seconds
        tally.buckets[bisect_left(BUCKETS, seconds)] += 1

    def drain(self) -> dict[str, Any]:
        requests, errors = self._pending, self._pending_errors
        self._pending, self._pending_errors = {}, {}
        return {
            "requests": [[m, n, t.ok, t.failed, t.seconds, t.buckets] for (m, n), t in requests.items()],
            "errors": [[m, n, e, c] for (m, n, e), c in errors.items()],
        }

    def merge(self, payload: dict[str, Any]) -> None:
        for method, name, ok, failed, seconds, buckets in payload.get("requests", ()):
            tally = self.requests.get((method, name))
            if tally is None:
                tally = self.requests[(method, name)] = RequestTally()
            tally.add(RequestTally(ok, failed, seconds, buckets))
        for method, name, error, count in payload.get("errors", ()):
            self.errors[(method, name, error)] = self.errors.get((method, name, error), 0) + count
