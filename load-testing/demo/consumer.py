"""``loadstack demo consumer``: takes ``order.created`` events, enriches them, writes ``order:{id}`` to Redis.

This is the asynchronous hop chains measure: an order is visible in Redis
only after this process has handled its event.  Stop it and the chains'
consistency checks fail, which is the point of having it separate.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from typing import Any

import kombu
import redis

from loadstack import safety
from loadstack.data.teardown import ended_key
from loadstack.settings import current
from loadstack_demo.backend_store import order_key, run_index_key
from loadstack_demo.events import EXCHANGE, ORDERS_QUEUE, RUN_ID_HEADER, declare
from loadstack_demo.tracing import CLIENT, CONSUMER, OFF, Tracing, url_server

log = logging.getLogger("loadstack.demo.consumer")
TAX_RATE = 0.19


def enrich(event: dict[str, Any]) -> dict[str, Any]:
    """What a real pipeline adds: totals, a risk band, the processing time."""
    amount = float(event["amount"])
    return {
        **{k: v for k, v in event.items() if v is not None},
        "status": "processed",
        "tax": round(amount * TAX_RATE, 2),
        "total": round(amount * (1 + TAX_RATE), 2),
        "risk": "high" if amount >= 1000 else "medium" if amount >= 200 else "low",
        "processed_at": time.time(),
    }


class OrderConsumer:
    def __init__(self, amqp_url: str, redis_url: str, *, prefetch: int = 50, tracing: Tracing = OFF) -> None:
        self.amqp_url = amqp_url
        self.tracing = tracing
        self._process_attributes = {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": EXCHANGE.name,
            **url_server(amqp_url),
        }
        self._redis_attributes = {"db.system.name": "redis", **url_server(redis_url)}
        self.redis = redis.Redis.from_url(
            redis_url,
            socket_timeout=3,
            socket_connect_timeout=3,
            **safety.redis_options(redis_url, allow_remote=current().allow_remote),
        )
        self.prefetch = prefetch
        self.running = True
        self.processed = 0
        self.dropped = 0
        # run id -> ended? (True is final; False is asked again after a second)
        self._ended: dict[str, tuple[bool, float]] = {}

    def run_ended(self, run_id: str) -> bool:
        """loadstack's teardown marks a run ended; its late messages are ours to drop."""
        known, checked = self._ended.get(run_id, (False, 0.0))
        if known or time.monotonic() - checked < 1.0:
            return known
        ended = bool(self.redis.exists(ended_key(run_id)))
        self._ended[run_id] = (ended, time.monotonic())
        return ended

    def handle(self, body: Any, message: kombu.message.Message) -> None:
        """One event, in a consumer span that continues the publisher's trace (its headers)."""
        routing_key = (message.delivery_info or {}).get("routing_key", "")
        attributes = {**self._process_attributes, "messaging.rabbitmq.destination.routing_key": routing_key}
        with self.tracing.span(
            f"process {ORDERS_QUEUE.name}", CONSUMER, attributes, dict(message.headers or {})
        ):
            self._handle(body, message)

    def _handle(self, body: Any, message: kombu.message.Message) -> None:
        try:
            event = json.loads(body) if isinstance(body, str | bytes) else body
            record = enrich(event)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("dropping malformed event: %s", exc)
            message.reject(requeue=False)
            return
        run_id = (message.headers or {}).get(RUN_ID_HEADER)
        if run_id and self.run_ended(str(run_id)):
            message.ack()  # the run was torn down: processing it now would re-create what it deleted
            self.dropped += 1
            return
        key = order_key(int(record["id"]))
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={k: str(v) for k, v in record.items()})
        if run_id:
            pipe.sadd(run_index_key(run_id), key)
        # A pipeline of different commands: "BATCH" by the database semantic conventions.
        batch = {**self._redis_attributes, "db.operation.name": "BATCH", "db.operation.batch.size": len(pipe)}
        with self.tracing.span("BATCH", CLIENT, batch):
            pipe.execute()
        message.ack()
        self.processed += 1

    def run(self) -> None:
        def stop(*_: Any) -> None:
            self.running = False

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while self.running:
            try:
                with safety.kombu_connection(
                    self.amqp_url, allow_remote=current().allow_remote, heartbeat=0
                ) as conn:
                    conn.ensure_connection(max_retries=3)
                    declare(conn)
                    with kombu.Consumer(
                        conn,
                        queues=[ORDERS_QUEUE],
                        callbacks=[self.handle],
                        prefetch_count=self.prefetch,
                        accept=["json", "application/json"],
                    ):
                        log.warning("consumer: waiting for order events on %s", ORDERS_QUEUE.name)
                        while self.running:
                            try:
                                conn.drain_events(timeout=1)
                            except TimeoutError:
                                continue
            except (OSError, kombu.exceptions.KombuError, redis.RedisError, safety.RemoteTargetError) as exc:
                if not self.running:
                    break
                log.error("consumer: %s: %s; reconnecting in 1s", type(exc).__name__, exc)
                time.sleep(1)
        log.warning(
            "consumer: stopped after %d events (%d of ended runs dropped)", self.processed, self.dropped
        )
        self.tracing.shutdown()
