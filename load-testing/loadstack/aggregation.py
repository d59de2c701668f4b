"""Worker→master data that Locust's own stats do not carry, on Locust's own report channel.

An :class:`Aggregator` observes where requests happen (workers, or a local
runner), hands its pending deltas to Locust's ``report_to_master`` event, and
merges what arrives with ``worker_report`` on the master.  A local runner is
its own master: :meth:`Aggregator.sync` folds its pending deltas in before the
merged view is read.  Subclasses only say what to count (:meth:`observe`),
how to package it (:meth:`drain`) and how to add it up (:meth:`merge`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from locust.env import Environment


class Aggregator:
    """Base of user-class stats, exporter metrics and chain counters."""

    report_key: ClassVar[str]
    # Whether every Locust request event goes to observe(); counters fed by other code say False.
    observes_requests: ClassVar[bool] = True

    role = "local"

    def attach(self, environment: Environment, role: str) -> None:
        """Wire this aggregator into a Locust process of the given role (master, worker or local)."""
        self.role = role
        ev = environment.events
        if role in ("worker", "local") and self.observes_requests:
            ev.request.add_listener(self.observe)
        if role == "worker":
            ev.report_to_master.add_listener(self._ship)
        elif role == "master":
            ev.worker_report.add_listener(self._receive)

    # -- what subclasses define ------------------------------------------------------------
    def observe(self, request_type: str, name: str, response_time: float, **kwargs: Any) -> None:
        """A Locust ``request`` event (workers and local runners); runs on every request."""

    def drain(self) -> Any:
        """The deltas since the last drain as plain (msgpack-able) data; empties the pending state."""
        raise NotImplementedError

    def merge(self, payload: Any) -> None:
        """Add deltas from :meth:`drain` (of a worker, or of this process) to the merged view."""
        raise NotImplementedError

    # -- plumbing ----------------------------------------------------------------------------
    def sync(self) -> None:
        """Bring the merged view up to date; a local runner merges its own pending deltas."""
        if self.role == "local":
            self.merge(self.drain())

    def _ship(self, client_id: str, data: dict[str, Any]) -> None:
        data[self.report_key] = self.drain()

    def _receive(self, client_id: str, data: dict[str, Any]) -> None:
        payload = data.get(self.report_key)
        if payload:
            self.merge(payload)
