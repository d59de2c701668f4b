"""The demo platform's event topology: one topic exchange, one work queue for the consumer.

Both the API (publisher) and ``loadstack demo consumer`` declare it, so
either can start first.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import kombu

EXCHANGE = kombu.Exchange("loadstack.demo", type="topic", durable=True)
ORDERS_QUEUE = kombu.Queue("demo.orders", exchange=EXCHANGE, routing_key="order.*", durable=True)
RUN_ID_HEADER = "x-loadstack-run-id"


def declare(connection: kombu.Connection) -> None:
    channel = connection.default_channel
    EXCHANGE(channel).declare()
    ORDERS_QUEUE(channel).declare()


class EventPublisher:
    """Publishes with publisher confirms; one connection per thread (kombu connections are not thread-safe)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()

    def _producer(self) -> kombu.Producer:
        producer = getattr(self._local, "producer", None)
        if producer is None or not producer.channel.connection:
            conn = kombu.Connection(self.url, heartbeat=0, transport_options={"confirm_publish": True})
            conn.ensure_connection(max_retries=1)
            declare(conn)
            producer = kombu.Producer(conn.channel(), exchange=EXCHANGE)
            self._local.producer, self._local.connection = producer, conn
        return producer

    def publish(self, routing_key: str, event: dict[str, Any], run_id: str | None) -> None:
        try:
            self._producer().publish(
                json.dumps(event, default=str),
                routing_key=routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                headers={RUN_ID_HEADER: run_id} if run_id else {},
                delivery_mode=2,
                retry=False,
            )
        except Exception:
            self.reset()
            raise

    def reset(self) -> None:
        conn = getattr(self._local, "connection", None)
        self._local.producer = self._local.connection = None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # a broken connection is being thrown away anyway
                pass
