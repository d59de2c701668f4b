"""Request counts, latency histograms and error counts, aggregated where requests happen.

Buckets are fixed (seconds) so that workers' counts add up exactly on the
master: the master's histogram is the true merge of every observation, not an
approximation from percentiles.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import Any

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


class RequestMetrics:
    """``(method, name) -> [successes, failures, sum_seconds, bucket counts]`` and error counts."""

    REPORT_KEY = "loadstack_metrics"

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], list[Any]] = {}
        self.errors: dict[tuple[str, str, str], int] = {}

    def observe(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int = 0,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        """``events.request`` listener (workers and local runners)."""
        key = (request_type, name)
        acc = self.requests.get(key)
        if acc is None:
            acc = self.requests[key] = [0, 0, 0.0, [0] * (len(BUCKETS) + 1)]
        seconds = response_time / 1000.0
        if exception is None:
            acc[0] += 1
        else:
            acc[1] += 1
            ekey = (request_type, name, exception_label(exception))
            self.errors[ekey] = self.errors.get(ekey, 0) + 1
        acc[2] += seconds
        acc[3][bisect_left(BUCKETS, seconds)] += 1

    def drain(self) -> dict[str, Any]:
        """The deltas since the last drain, as plain data for Locust's worker report."""
        requests, errors = self.requests, self.errors
        self.requests, self.errors = {}, {}
        return {
            "requests": [[m, n, *acc[:3], acc[3]] for (m, n), acc in requests.items()],
            "errors": [[m, n, e, c] for (m, n, e), c in errors.items()],
        }

    def merge(self, delta: dict[str, Any]) -> None:
        """Add a worker's deltas (master side; monotonic, never reset)."""
        for method, name, ok, failed, seconds, buckets in delta.get("requests", ()):
            acc = self.requests.get((method, name))
            if acc is None:
                acc = self.requests[(method, name)] = [0, 0, 0.0, [0] * (len(BUCKETS) + 1)]
            acc[0] += ok
            acc[1] += failed
            acc[2] += seconds
            acc[3] = [a + b for a, b in zip(acc[3], buckets, strict=True)]
        for method, name, error, count in delta.get("errors", ()):
            self.errors[(method, name, error)] = self.errors.get((method, name, error), 0) + count
