"""Sustained gates (``for: 10s``): thresholds judged second by second.

A gate with ``for`` fails only when its threshold is breached in every second
of a stretch at least that long: a 2 s spike in a 10 s window does not fail it,
a 15 s breach does (and, with ``abort_on_breach``, stops the run once the window
is full).  Workers (and a local runner) count each request into the second it
finished in (:class:`SecondStats`, on Locust's report channel); the master
judges every second once all workers have reported it (:class:`Sustained`) and
keeps, per gate threshold, the longest breached stretch and the figure over it.
A second in which no request of the gate's target finished does not end a
stretch: a target that stopped answering has not recovered.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import gevent

from loadstack.aggregation import Aggregator
from loadstack.gates import Gate, GateTarget, covers, metric_of, percentile
from loadstack.user_classes import _greenlet_user_class, round_ms

REPORT_LAG_S = 4  # Locust workers report every 3 s: a second is complete this long after it ended


@dataclass(slots=True)
class Tally:
    count: int = 0
    failures: int = 0
    total_ms: float = 0.0
    histogram: Counter[int] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.count += other.count
        self.failures += other.failures
        self.total_ms += other.total_ms
        self.histogram.update(other.histogram)


Key = tuple[int, str, str, str]  # second, request type, name, user class


class SecondStats(Aggregator):
    """Requests per second, per request type, name and user class."""

    report_key = "loadstack_seconds"

    def __init__(self) -> None:
        self.enabled = False  # set before attach(): only runs with sustained gates pay for this
        self._pending: dict[Key, Tally] = {}
        self.seconds: dict[int, dict[tuple[str, str, str], Tally]] = defaultdict(dict)

    @property
    def observes_requests(self) -> bool:  # type: ignore[override]
        return self.enabled

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
        user_class = (context.get("user_class") if context else None) or _greenlet_user_class() or "unknown"
        key = (int(time.time()), request_type, name, user_class)
        tally = self._pending.get(key)
        if tally is None:
            tally = self._pending[key] = Tally()
        tally.count += 1
        tally.failures += exception is not None
        tally.total_ms += response_time
        tally.histogram[round_ms(response_time)] += 1

    def drain(self) -> list[list[Any]]:
        pending, self._pending = self._pending, {}
        return [[*key, t.count, t.failures, t.total_ms, dict(t.histogram)] for key, t in pending.items()]

    def merge(self, payload: list[list[Any]]) -> None:
        for second, rtype, name, cls, count, failures, total_ms, histogram in payload:
            row = self.seconds[int(second)]
            tally = row.get((rtype, name, cls))
            if tally is None:
                tally = row[(rtype, name, cls)] = Tally()
            tally.add(Tally(count, failures, total_ms, Counter({int(k): v for k, v in histogram.items()})))


def _covers(target: GateTarget, rtype: str, name: str, user_class: str) -> bool:
    if target.total:
        return True
    if target.user_class:
        return user_class == target.user_class
    if target.chain:
        return rtype == "CHAIN" and name == target.chain
    return covers(target, {"type": rtype, "name": name})


def figures_of(tally: Tally) -> dict[str, float]:
    """The figures of gates over one tally (a second, or a stretch of seconds)."""
    count = tally.count
    hist = {str(k): v for k, v in tally.histogram.items()}
    return {
        "count": count,
        "rps": float(count),
        "error_rate": tally.failures / count if count else 0.0,
        "success_rate": 1 - tally.failures / count if count else 1.0,
        "avg_ms": tally.total_ms / count if count else 0.0,
        "histogram": hist,  # type: ignore[dict-item]
    }


def value(figures: dict[str, Any], metric: str) -> float:
    name, _, q = metric_of(metric)
    if q is not None and name.endswith("_ms"):
        return percentile(figures["histogram"], int(figures["count"]), q)
    return float(figures.get(name, 0.0))


@dataclass
class Streak:
    """One threshold of one sustained gate: the current and the longest breached stretch."""

    start: int | None = None
    length: int = 0
    tally: Tally = field(default_factory=Tally)
    longest: int = 0
    longest_from: int | None = None
    longest_tally: Tally | None = None
    fired: bool = False

    def breach(self, second: int, tally: Tally) -> None:
        if self.start is None:
            self.start, self.length, self.tally = second, 0, Tally()
        self.length = second - self.start + 1
        self.tally.add(tally)
        if self.length > self.longest:
            self.longest, self.longest_from = self.length, self.start
            self.longest_tally = self.tally

    def recover(self) -> None:
        self.start, self.length, self.tally = None, 0, Tally()


class Sustained:
    """Master side: every sustained gate judged second by second."""

    def __init__(self, gates: list[Gate], stats: SecondStats, warmup: float = 0) -> None:
        self.gates = [(i, g) for i, g in enumerate(gates) if g.sustained]
        self.stats = stats
        self.warmup = warmup  # judged like every other gate: after the warm-up
        self.streaks = {(i, m): Streak() for i, g in self.gates for m in g.thresholds()}
        self.next_second: int | None = None
        self.started: float | None = None
        self._keeper: gevent.Greenlet | None = None

    @property
    def active(self) -> bool:
        return bool(self.gates)

    def advance(self, upto: int) -> None:
        """Judge every second before ``upto`` not judged yet."""
        self.stats.sync()
        seconds = self.stats.seconds
        if self.next_second is None:
            if not seconds:
                return
            self.next_second = min(seconds)
        while self.next_second < upto:
            second = self.next_second
            rows = seconds.pop(second, {})
            if self.started is not None and second < self.started + self.warmup:
                self.next_second += 1
                continue
            for index, gate in self.gates:
                tally = Tally()
                for (rtype, name, cls), t in rows.items():
                    if _covers(gate.target, rtype, name, cls):
                        tally.add(t)
                for metric, threshold in gate.thresholds().items():
                    streak = self.streaks[(index, metric)]
                    if not tally.count:
                        if streak.start is not None:
                            streak.breach(second, tally)  # no answers: not a recovery
                        continue
                    actual = value(figures_of(tally), metric)
                    _, op, _ = metric_of(metric)
                    ok = actual >= threshold if op == ">=" else actual <= threshold
                    if ok:
                        streak.recover()
                    else:
                        streak.breach(second, tally)
            self.next_second += 1

    def start(self) -> None:
        """Test start: judge the seconds as the run goes.  Judged seconds are dropped, so a long
        run holds only the last few seconds of per-request tallies, not all of them."""
        self.started = time.time()
        if self._keeper is None:
            self._keeper = gevent.spawn(self._keep_up)

    def _keep_up(self, interval: float = 5.0) -> None:
        while True:
            gevent.sleep(interval)
            self.advance(int(time.time()) - REPORT_LAG_S)

    def section(self, final: bool = False) -> dict[str, Any] | None:
        """``summary.json`` → ``sustained``: per ``gate:metric``, the longest breach and the figure over it."""
        if not self.active:
            return None
        self.advance(int(time.time()) + 1 if final else int(time.time()) - REPORT_LAG_S)
        start = self.started or 0
        out = {}
        for (index, metric), streak in self.streaks.items():
            entry: dict[str, Any] = {"longest_s": streak.longest}
            if streak.longest_tally is not None and streak.longest_tally.count:
                entry["actual"] = value(figures_of(streak.longest_tally), metric)
                entry["from_s"] = round(streak.longest_from - start) if streak.longest_from else None
            out[f"{index}:{metric}"] = entry
        return out


seconds = SecondStats()
