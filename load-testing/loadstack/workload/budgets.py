"""Iteration budgets: exactly N iterations across all workers, then a clean stop.

The master keeps a :class:`Ledger` per budget scope (the run, a user class, a
chain) and grants permits in batches that shrink as the budget runs out, so a
worker never holds permits another one would need at the end.  A worker's users
take a permit before each iteration (:class:`Permits`) and report finished
iterations back; when every permit of every scope was granted and its iteration
finished, the master ends the run.  Permits a worker holds when its users stop
go back to the master, and another worker uses them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import Event

from loadstack.workload.channel import Client

KIND_TAKE = "permits"
KIND_DONE = "permits_done"


@dataclass
class Ledger:
    """Master side: one budget scope."""

    total: int
    granted: int = 0
    completed: int = 0
    held: Counter[str] = field(default_factory=Counter)  # permits granted and not yet finished, per worker

    @property
    def remaining(self) -> int:
        return self.total - self.granted

    @property
    def finished(self) -> bool:
        return self.completed >= self.total

    def grant(self, client: str, want: int, workers: int) -> int:
        """A batch for ``client``: at most what is left divided among the workers (at least 1)."""
        fair = max(1, math.ceil(self.remaining / max(1, 2 * workers)))
        n = max(0, min(want, fair, self.remaining))
        self.granted += n
        self.held[client] += n
        return n

    def report(self, client: str, done: int, returned: int) -> None:
        self.completed += done
        self.granted -= returned
        self.held[client] -= done + returned


class Budgets:
    """Master side: the run's budget scopes and the requests for permits."""

    def __init__(self, totals: dict[str, int], workers: Any) -> None:
        self.ledgers = {scope: Ledger(total) for scope, total in totals.items()}
        self.workers = workers  # () -> number of workers, for fair batches

    def take(self, payload: dict[str, Any], client: str) -> dict[str, Any]:
        self.done(payload, client)
        ledger = self.ledgers[payload["scope"]]
        granted = ledger.grant(client, int(payload.get("want", 1)), self.workers())
        return {"granted": granted, "exhausted": ledger.remaining == 0, "scope": payload["scope"]}

    def done(self, payload: dict[str, Any], client: str) -> dict[str, Any]:
        for scope, (done, returned) in (payload.get("report") or {}).items():
            if scope in self.ledgers:
                self.ledgers[scope].report(client, int(done), int(returned))
        return {}

    def finished(self) -> bool:
        return all(ledger.finished for ledger in self.ledgers.values())

    def section(self) -> dict[str, Any]:
        return {
            scope: {"budget": ledger.total, "completed": ledger.completed}
            for scope, ledger in sorted(self.ledgers.items())
        }


@dataclass
class _Stock:
    permits: int = 0
    in_flight: int = 0
    done: int = 0  # finished since the last report
    returned: int = 0
    exhausted: bool = False
    asking: Event | None = None


class Permits:
    """Worker (or local runner) side: permits for this process's users."""

    def __init__(self, client: Client, scopes: list[str]) -> None:
        self.client = client
        self.stock = {scope: _Stock() for scope in scopes}
        client.on_late(KIND_TAKE, self._late_grant)

    def _late_grant(self, reply: dict[str, Any]) -> None:
        """Permits granted after their ask timed out: still ours to use (or give back)."""
        s = self.stock.get(reply.get("scope", ""))
        if s is not None:
            s.permits += int(reply.get("granted", 0))

    def take(self, scope: str, want: int) -> bool:
        """One permit for an iteration in ``scope``; False when the budget is used up."""
        s = self.stock[scope]
        while s.permits == 0:
            if s.exhausted:
                return False
            if s.asking is not None:  # another user of this process already asked: wait for that answer
                s.asking.wait(5)
                continue
            s.asking = Event()
            try:
                reply = self.client.ask(KIND_TAKE, {"scope": scope, "want": want, "report": self._report()})
                s.permits += reply["granted"]
                s.exhausted = bool(reply["exhausted"]) and reply["granted"] == 0
            except (TimeoutError, RuntimeError):
                gevent.sleep(1)
            finally:
                s.asking.set()
                s.asking = None
        s.permits -= 1
        s.in_flight += 1
        return True

    def untake(self, scope: str) -> None:
        """A permit taken for an iteration that did not start (another budget of it ran out)."""
        s = self.stock[scope]
        s.permits += 1
        s.in_flight -= 1

    def finish(self, scope: str) -> None:
        """An iteration that took a permit of ``scope`` ended (however it ended)."""
        s = self.stock[scope]
        s.in_flight -= 1
        s.done += 1
        if s.exhausted:
            self.flush()  # the last iterations: the master's view of the end must not wait

    def give_back(self) -> None:
        """Users are stopping: unused permits go back to the master for the other workers."""
        for s in self.stock.values():
            s.returned += s.permits
            s.permits = 0
        self.flush()

    def flush(self) -> None:
        report = self._report()
        if report:
            self.client.tell(KIND_DONE, {"report": report})

    def _report(self) -> dict[str, list[int]]:
        out = {}
        for scope, s in self.stock.items():
            if s.done or s.returned:
                out[scope] = [s.done, s.returned]
                s.done = s.returned = 0
        return out
