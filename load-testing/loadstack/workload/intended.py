"""Latency from the intended start: open-model figures corrected for coordinated omission.

An open-model iteration (``rate:``, rate stages, a breakpoint) has a *scheduled*
start: the pacer's due time (:mod:`~loadstack.workload.pacing`).  When the system
under test stalls, the users are busy, the iterations due during the stall start
late, and a latency timed from the actual start (Locust's own figures, the
*service* time) hides the stall.  wrk2 and Vegeta time from the intended start
instead; this module does the same, next to the service time:

* the class's iteration (``user_classes``): end − scheduled start,
* the chain's ``CHAIN`` entry (``chains``): its end-to-end time (think pauses left
  out, as Locust's row) plus how late its iteration started,
* the iteration's first request (``first_requests``): its end − scheduled start.

An iteration the pacer dropped (every user of the pool was busy when it was due, see
:mod:`~loadstack.workload.pacing`) never runs, but it was scheduled: it counts in the
corrected figures of its class (and its chain) as waiting from its scheduled start until
the class's next iteration on that process ends, the first moment a user of the pool was
free again.  This is the correction wrk2 and HdrHistogram's ``recordValueWithExpectedInterval``
make; without it a stall that holds every user shows in a handful of samples, and the
starts it swallowed in none.  Such an iteration has no service time, so ``count`` (from
the scheduled start) may exceed ``service_count``.

Both figures go into HDR histograms (``hdrhistogram``, microseconds, 3
significant figures: every value within 0.1 % of the truth), which add up exactly
across workers on Locust's report channel (:class:`~loadstack.aggregation.Aggregator`),
unlike Locust's own 2-digit rounded response times.  ``summary.json`` → ``corrected``
holds the figures and the histograms themselves (base64, HDR's own encoding), so
gates and later tools can read any percentile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
from hdrh.histogram import HdrHistogram
from locust.env import Environment

from loadstack.aggregation import Aggregator

SIGNIFICANT_FIGURES = 3
LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # an hour: longer is recorded as an hour
MAX_OWED = 100_000  # dropped iterations per class waiting for a free user, at most
PERCENTILES = (("p50_ms", 50.0), ("p90_ms", 90.0), ("p95_ms", 95.0), ("p99_ms", 99.0), ("p99.9_ms", 99.9))
ABOUT = (
    "open-model latency from each iteration's scheduled start (response) next to the time from its "
    "actual start (service); response - service is how late the iteration started"
)

# (scope, request type, name): scope is user_class, chain or first_request
Key = tuple[str, str, str]


def histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def record_ms(h: HdrHistogram, ms: float) -> None:
    h.record_value(min(HIGHEST_US, max(LOWEST_US, round(ms * 1000.0))))


def decode(encoded: str | bytes) -> HdrHistogram:
    return HdrHistogram.decode(encoded.encode() if isinstance(encoded, str) else encoded)


@dataclass(slots=True)
class Pair:
    """The service and response (from the scheduled start) histograms of one key."""

    service: HdrHistogram = field(default_factory=histogram)
    response: HdrHistogram = field(default_factory=histogram)

    @property
    def count(self) -> int:
        return int(self.response.get_total_count())

    def record(self, service_ms: float, response_ms: float) -> None:
        record_ms(self.service, service_ms)
        record_ms(self.response, max(response_ms, service_ms))

    def record_dropped(self, waited_ms: float) -> None:
        """A scheduled start that never ran: it waited ``waited_ms``, with no service time."""
        record_ms(self.response, waited_ms)

    def encode(self) -> list[str]:
        return [self.service.encode().decode(), self.response.encode().decode()]

    def add_encoded(self, encoded: list[str]) -> None:
        self.service.add(decode(encoded[0]))
        self.response.add(decode(encoded[1]))

    def add(self, other: Pair) -> None:
        self.service.add(other.service)
        self.response.add(other.response)


@dataclass(slots=True)
class Iteration:
    """One open-model iteration in progress on one greenlet."""

    due: float  # scheduled start (epoch seconds)
    started: float  # actual start
    first_seen: bool = False

    @property
    def late_ms(self) -> float:
        return max(0.0, (self.started - self.due) * 1000.0)


class IntendedLatency(Aggregator):
    """Service and corrected latency histograms of open-model iterations, merged on the master."""

    report_key = "loadstack_corrected"
    observes_requests = True

    def __init__(self) -> None:
        self.merged: dict[Key, Pair] = {}
        self._pending: dict[Key, Pair] = {}
        self._active: dict[Any, Iteration] = {}  # greenlet -> its iteration in progress
        # user class -> (chain or None, scheduled start) of dropped iterations not yet settled
        self._owed: dict[str, list[tuple[str | None, float]]] = {}

    def attach(self, environment: Environment, role: str) -> None:
        super().attach(environment, role)
        environment.events.reset_stats.add_listener(self.reset)

    # -- recording (workers, local runner) ---------------------------------------------------------
    def begin(self, due: float) -> Iteration:
        """The current greenlet starts the iteration scheduled for ``due`` (epoch seconds), now."""
        it = Iteration(due=due, started=time.time())
        self._active[gevent.getcurrent()] = it
        return it

    def end(self, it: Iteration, user_class: str) -> None:
        self._active.pop(gevent.getcurrent(), None)
        now = time.time()
        self.record(("user_class", "", user_class), (now - it.started) * 1000.0, (now - it.due) * 1000.0)
        self.settle(user_class, now)

    def owe(self, user_class: str, dropped: list[tuple[str | None, float]]) -> None:
        """Dropped iterations of ``user_class``: (chain or None, scheduled start as epoch time)."""
        owed = self._owed.setdefault(user_class, [])
        owed.extend(dropped)
        if len(owed) > MAX_OWED:  # the pool has been stuck for long: settle what waited so far (a floor)
            self.settle(user_class, time.time())

    def settle(self, user_class: str, now: float) -> None:
        """A user of the class is free again at ``now``: the dropped iterations waited until then."""
        owed = self._owed.pop(user_class, None)
        for chain, due in owed or ():
            waited_ms = max(0.0, now - due) * 1000.0
            self._pair(("user_class", "", user_class)).record_dropped(waited_ms)
            if chain:
                self._pair(("chain", "CHAIN", chain)).record_dropped(waited_ms)

    def settle_all(self) -> None:
        """The test stops: what is still owed waited until now."""
        now = time.time()
        for user_class in list(self._owed):
            self.settle(user_class, now)

    def _pair(self, key: Key) -> Pair:
        pair = self._pending.get(key)
        if pair is None:
            pair = self._pending[key] = Pair()
        return pair

    def record(self, key: Key, service_ms: float, response_ms: float) -> None:
        self._pair(key).record(service_ms, response_ms)

    def observe(self, request_type: str, name: str, response_time: float, **kwargs: Any) -> None:
        if not self._active:
            return
        it = self._active.get(gevent.getcurrent())
        if it is None or response_time is None:
            return
        if request_type == "CHAIN":
            self.record(("chain", "CHAIN", name), response_time, response_time + it.late_ms)
        elif not it.first_seen:
            it.first_seen = True
            self.record(("first_request", request_type, name), response_time, (time.time() - it.due) * 1000.0)

    # -- aggregation -----------------------------------------------------------------------------
    def drain(self) -> list[list[Any]]:
        payload = [[*key, *pair.encode()] for key, pair in self._pending.items() if pair.count]
        self._pending = {}
        return payload

    def merge(self, payload: list[list[Any]]) -> None:
        for scope, request_type, name, service, response in payload or ():
            key = (scope, request_type, name)
            pair = self.merged.get(key)
            if pair is None:
                pair = self.merged[key] = Pair()
            pair.add_encoded([service, response])

    def reset(self, **_: Any) -> None:
        """Warm-up over (Locust's ``reset_stats``): the measured figures start from here."""
        self.merged = {}
        self._pending = {}
        self._owed = {}

    # -- the summary ---------------------------------------------------------------------------
    def section(self) -> dict[str, Any] | None:
        """``summary.json`` → ``corrected`` (None when no open-model iteration ran)."""
        self.sync()
        if not self.merged:
            return None
        total = Pair()
        for (scope, _, _), pair in self.merged.items():
            if scope == "user_class":
                total.add(pair)
        out: dict[str, Any] = {
            "about": ABOUT,
            "significant_figures": SIGNIFICANT_FIGURES,
            "total": entry(total),
            "user_classes": {},
            "chains": {},
            "first_requests": [],
        }
        for (scope, request_type, name), pair in sorted(self.merged.items()):
            if scope == "user_class":
                out["user_classes"][name] = entry(pair)
            elif scope == "chain":
                out["chains"][name] = entry(pair)
            else:
                out["first_requests"].append({"type": request_type, "name": name, **entry(pair)})
        return out


def figures(h: HdrHistogram) -> dict[str, float]:
    """avg, percentiles and max of one histogram, in milliseconds."""
    out = {"avg_ms": round(h.get_mean_value() / 1000.0, 3)}
    for key, q in PERCENTILES:
        out[key] = round(h.get_value_at_percentile(q) / 1000.0, 3)
    out["max_ms"] = round(h.get_max_value() / 1000.0, 3)
    return out


def entry(pair: Pair) -> dict[str, Any]:
    service, response = pair.encode()
    return {
        "count": pair.count,
        "service_count": int(pair.service.get_total_count()),
        "service": figures(pair.service),
        "response": figures(pair.response),
        "histograms": {"service": service, "response": response},
    }


# -- reading summary.json ------------------------------------------------------------------------
def entries_of(target: Any, section: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The ``corrected`` entries a gate target covers: total, a class, a chain, or first requests."""
    from loadstack import gates

    if not section:
        return []
    if target.total:
        found = [section.get("total")]
    elif target.user_class:
        found = [(section.get("user_classes") or {}).get(target.user_class)]
    elif target.chain:
        found = [(section.get("chains") or {}).get(target.chain)]
    else:
        found = [row for row in section.get("first_requests") or [] if gates.covers(target, row)]
    return [e for e in found if e and e.get("count")]


def percentile_ms(rows: list[dict[str, Any]], q: float, measure: str = "response") -> float:
    """Percentile ``q`` (0..1) of the union of the entries' histograms, in milliseconds."""
    h = histogram()
    for row in rows:
        h.add(decode(row["histograms"][measure]))
    return h.get_value_at_percentile(q * 100.0) / 1000.0


def format_table(summary: dict[str, Any]) -> list[str]:
    """Console lines: per class, chain and first request, the service against the corrected figures."""
    section = summary.get("corrected")
    if not section:
        return []
    head = f"{'Latency from the intended start':<53} {'Count':>8} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>8}"
    lines = ["", head, "-" * len(head)]

    def rows(label: str, e: dict[str, Any]) -> Iterator[str]:
        label = label if len(label) <= 40 else label[:39] + "…"
        for measure, shown in (("service", "service"), ("response", "corrected")):
            f = e[measure]
            yield (
                f"{label:<40} {shown:>12} {e['count']:>8} {_ms(f['p50_ms']):>7} {_ms(f['p95_ms']):>7} "
                f"{_ms(f['p99_ms']):>7} {_ms(f['max_ms']):>8}"
            )
            label = ""

    for name, e in section.get("user_classes", {}).items():
        lines += rows(f"class {name}", e)
    for name, e in section.get("chains", {}).items():
        lines += rows(f"CHAIN {name}", e)
    for e in section.get("first_requests", []):
        lines += rows(f"first {e['type']} {e['name']}", e)
    lines.append("-" * len(head))
    lines += rows("Total iterations", section["total"])
    return lines


def _ms(v: float) -> str:
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"


class Exporter:
    """``/metrics``: service and corrected latency quantiles per class, chain and first request."""

    def __init__(self, run_id: str, profile: str, environment: Environment) -> None:
        self.run = [run_id, profile]
        self.env = environment  # its workload (and so its histograms) is planned after the exporter

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        from loadstack.workload import runtime

        gauge = GaugeMetricFamily(
            "loadstack_corrected_latency_seconds",
            "Open-model latency quantiles: from the scheduled start (measure=response) and from the "
            "actual start (measure=service), since the warm-up",
            labels=["run_id", "profile", "scope", "type", "name", "measure", "quantile"],
        )
        wl = runtime.of(self.env)
        intended = wl.intended if wl is not None else IntendedLatency()
        intended.sync()
        for (scope, request_type, name), pair in sorted(intended.merged.items()):
            for measure, h in (("service", pair.service), ("response", pair.response)):
                for q in (0.5, 0.95, 0.99, 0.999):
                    value = h.get_value_at_percentile(q * 100.0) / 1e6
                    gauge.add_metric([*self.run, scope, request_type, name, measure, f"{q:g}"], value)
        yield gauge
