"""Worker-initiated request/reply over Locust's own message channel.

The master (or a local runner) answers requests for iteration permits and data
rows; a worker asks when it needs something and waits for the reply.  Asking
first matters: a message the master pushed at connect time could reach a worker
before its ``init`` listeners registered a handler (Locust's worker handles
messages while it waits for its ack), and would be lost.  A worker only asks
after its handler is registered, so every reply has somewhere to go.

``runner.register_message``/``send_message`` carry everything; a local runner
delivers its own messages to itself the same way, so one code path serves both.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult
from locust.env import Environment

log = logging.getLogger("loadstack.workload")

REQUEST = "loadstack_workload_request"
REPLY = "loadstack_workload_reply"
TIMEOUT_S = 10.0

Handler = Callable[[dict[str, Any], str], dict[str, Any]]


class Server:
    """Master side: ``kind`` → handler(payload, client_id) → reply payload."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment
        self.handlers: dict[str, Handler] = {}
        environment.runner.register_message(REQUEST, self._on_request)

    def handle(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    def _on_request(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        handler = self.handlers.get(data.get("kind", ""))
        if handler is None:
            log.warning("workload: no handler for request %r", data.get("kind"))
            reply: dict[str, Any] = {"error": "unknown request"}
        else:
            try:
                reply = handler(data.get("payload") or {}, msg.node_id)
            except Exception as exc:  # a broken request must not take the master's message loop down
                log.exception("workload: request %s failed", data.get("kind"))
                reply = {"error": str(exc)}
        if data.get("id"):  # 0: a `tell`, nobody waits for the answer
            self.env.runner.send_message(REPLY, {"id": data["id"], "reply": reply}, msg.node_id)


class Client:
    """Worker (or local runner) side: :meth:`ask` sends a request and waits for its reply."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment
        self._pending: dict[int, AsyncResult] = {}
        self._late: dict[int, str] = {}  # request id -> kind, for asks that timed out
        self._late_handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._ids = itertools.count(1)
        environment.runner.register_message(REPLY, self._on_reply)

    def on_late(self, kind: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Where a reply goes that came after its ask timed out: what the master granted then
        (permits, rows) is still this process's, and would be lost for good otherwise."""
        self._late_handlers[kind] = handler

    def ask(self, kind: str, payload: dict[str, Any], timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """The master's reply; a ``TimeoutError`` when none came (the caller decides what that means)."""
        request_id = next(self._ids)
        result = self._pending[request_id] = AsyncResult()
        try:
            self.env.runner.send_message(REQUEST, {"id": request_id, "kind": kind, "payload": payload})
            try:
                reply = result.get(timeout=timeout)
            except gevent.Timeout:
                self._late[request_id] = kind
                raise TimeoutError(f"no reply from the master to {kind} within {timeout:g}s") from None
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            raise RuntimeError(f"master refused {kind}: {reply['error']}")
        return reply

    def tell(self, kind: str, payload: dict[str, Any]) -> None:
        """A request whose reply nobody waits for (e.g. giving back rows or reporting done iterations)."""
        self.env.runner.send_message(REQUEST, {"id": 0, "kind": kind, "payload": payload})

    def _on_reply(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        request_id = data.get("id") or -1
        result = self._pending.get(request_id)
        if result is not None:
            result.set(data.get("reply") or {})
            return
        kind = self._late.pop(request_id, None)
        handler = self._late_handlers.get(kind or "")
        reply = data.get("reply") or {}
        if handler is not None and "error" not in reply:
            handler(reply)
