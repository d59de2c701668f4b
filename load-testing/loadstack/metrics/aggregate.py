"""Request counts, latency histograms and error counts, aggregated where requests happen.

Buckets are fixed (seconds) so that workers' counts add up exactly on the
master: the master's histogram is the true merge of every observation, not an
approximation from percentiles.  With OpenTelemetry on, counted per request type, name and user
class: the Prometheus exporter sums the classes, the OTLP export (:mod:`loadstack.metrics.otlp`)
shows them; with it off the user class is left empty, which keeps the request path as it was.

With OpenTelemetry on, each bucket also keeps an exemplar: the trace and span id current when
one of its requests was recorded (the request's span, or the locustfile's around it): the first
sampled one of each report interval where it happens, the latest of those on the master.  So a
slow bucket on the dashboard links to a trace that explains it.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadstack.aggregation import Aggregator
from loadstack.user_classes import _greenlet_user_class

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


# An exemplar of a bucket: (trace id hex, span id hex, seconds observed, unix time observed).
Exemplar = tuple[str, str, float, float]


@dataclass(slots=True)
class RequestTally:
    """One (method, name, user class)'s requests: outcomes, summed seconds, fixed-bucket counts and
    the latest exemplar per bucket (bucket index -> :data:`Exemplar`; empty with OpenTelemetry off)."""

    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    exemplars: dict[int, Exemplar] = field(default_factory=dict)

    def add(self, other: RequestTally) -> None:
        self.ok += other.ok
        self.failed += other.failed
        self.seconds += other.seconds
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        for index, exemplar in other.exemplars.items():
            mine = self.exemplars.get(index)
            if mine is None or exemplar[3] >= mine[3]:  # the latest wins
                self.exemplars[index] = exemplar


def _hex_exemplars(exemplars: dict[int, Any]) -> list[list[Any]]:
    """Pending exemplars (ids as ints) as report data: ``[bucket, trace id hex, span id hex, s, t]``."""
    return [[i, format(t, "032x"), format(s, "016x"), v, at] for i, (t, s, v, at) in exemplars.items()]


class RequestMetrics(Aggregator):
    """``(method, name, user class) -> RequestTally`` and error counts; the master's view only grows
    (never reset).  The user class is ``""`` with OpenTelemetry off.

    ``current_span`` (OpenTelemetry's ``trace.get_current_span``, given only when OpenTelemetry is
    on) turns exemplars on; without it no OpenTelemetry module is touched on the request path.
    """

    report_key = "loadstack_metrics"

    def __init__(self, current_span: Callable[[], Any] | None = None) -> None:
        # Merged view (master, or a local runner after sync()) and the deltas since the last report.
        self.requests: dict[tuple[str, str, str], RequestTally] = {}
        self.errors: dict[tuple[str, str, str], int] = {}
        self._pending: dict[tuple[str, str, str], RequestTally] = {}
        self._pending_errors: dict[tuple[str, str, str], int] = {}
        self._current_span = current_span
        if current_span is not None:  # before attach(): the request listener is this method
            self.observe = self._observe_traced  # type: ignore[method-assign]

    def by_request(self) -> dict[tuple[str, str], RequestTally]:
        """The merged view summed over user classes: what the Prometheus series count."""
        out: dict[tuple[str, str], RequestTally] = {}
        for (method, name, _), tally in list(self.requests.items()):
            total = out.get((method, name))
            if total is None:
                total = out[(method, name)] = RequestTally()
            total.add(tally)
        return out

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
        """Every request with OpenTelemetry off: no user class (only the OTLP export shows it), no
        exemplar.  The same counting as :meth:`_count`, inlined: this runs on every request."""
        # Locust's own keywords are named so that no dict of extras is built per request.
        key = (request_type, name, "")
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

    def _count(
        self, key: tuple[str, str, str], response_time: float, exception: BaseException | None
    ) -> tuple[RequestTally, int, float]:
        """Count one request into its tally: (tally, bucket index, seconds)."""
        tally = self._pending.get(key)
        if tally is None:
            tally = self._pending[key] = RequestTally()
        seconds = response_time / 1000.0
        if exception is None:
            tally.ok += 1
        else:
            tally.failed += 1
            ekey = (key[0], key[1], exception_label(exception))
            self._pending_errors[ekey] = self._pending_errors.get(ekey, 0) + 1
        tally.seconds += seconds
        index = bisect_left(BUCKETS, seconds)
        tally.buckets[index] += 1
        return tally, index, seconds

    def _observe_traced(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int = 0,
        response: Any = None,
        context: dict | None = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        """Every request with OpenTelemetry on: per user class, and the buckets' exemplars."""
        user_class = (context.get("user_class") if context else None) or _greenlet_user_class() or "unknown"
        tally, index, seconds = self._count((request_type, name, user_class), response_time, exception)
        # One exemplar per bucket and report interval (the first sampled request's): the common
        # path is one dict lookup; ids stay ints until drain() (msgpack has no 128-bit ints).
        if index not in tally.exemplars:
            assert self._current_span is not None
            span = self._current_span().get_span_context()
            if span.trace_flags.sampled and span.trace_id:  # an unsampled trace is never exported
                tally.exemplars[index] = (span.trace_id, span.span_id, seconds, time.time())  # type: ignore[assignment]

    def drain(self) -> dict[str, Any]:
        requests, errors = self._pending, self._pending_errors
        self._pending, self._pending_errors = {}, {}
        return {
            "requests": [
                [m, n, c, t.ok, t.failed, t.seconds, t.buckets, _hex_exemplars(t.exemplars)]
                for (m, n, c), t in requests.items()
            ],
            "errors": [[m, n, e, c] for (m, n, e), c in errors.items()],
        }

    def merge(self, payload: dict[str, Any]) -> None:
        for method, name, user_class, ok, failed, seconds, buckets, exemplars in payload.get("requests", ()):
            tally = self.requests.get((method, name, user_class))
            if tally is None:
                tally = self.requests[(method, name, user_class)] = RequestTally()
            tally.add(RequestTally(ok, failed, seconds, buckets, {e[0]: tuple(e[1:]) for e in exemplars}))
        for method, name, error, count in payload.get("errors", ()):
            self.errors[(method, name, error)] = self.errors.get((method, name, error), 0) + count
