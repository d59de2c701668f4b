"""The demo platform's event topology: one topic exchange, one work queue for the consumer.

Both the API (publisher) and ``loadstack demo consumer`` declare it, so
either can start first.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import kombu

from loadstack import safety
from loadstack.settings import current
from loadstack_demo.tracing import OFF, PRODUCER, Tracing, url_server

EXCHANGE = kombu.Exchange("loadstack.demo", type="topic", durable=True)
ORDERS_QUEUE = kombu.Queue("demo.orders", exchange=EXCHANGE, routing_key="order.*", durable=True)
RUN_ID_HEADER = "x-loadstack-run-id"


def declare(connection: kombu.Connection) -> None:
    channel = connection.default_channel
    EXCHANGE(channel).declare()
    ORDERS_QUEUE(channel).declare()


class EventPublisher:
    """Publishes with publisher confirms; one connection per thread (kombu connections are not thread-safe)."""

    def __init__(self, url: str, tracing: Tracing = OFF) -> None:
        self.url = url
        self.tracing = tracing
        self._local = threading.local()
        # A publish span's attributes (messaging semantic conventions), the same for every event.
        self._span_attributes = {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": EXCHANGE.name,
            **url_server(url),
        }

    def _producer(self) -> kombu.Producer:
        producer = getattr(self._local, "producer", None)
        if producer is None or not producer.channel.connection:
            conn = safety.kombu_connection(
                self.url,
                allow_remote=current().allow_remote,
                heartbeat=0,
                transport_options={"confirm_publish": True},
            )
            conn.ensure_connection(max_retries=1)
            declare(conn)
            producer = kombu.Producer(conn.channel(), exchange=EXCHANGE)
            self._local.producer, self._local.connection = producer, conn
        return producer

    def publish(self, routing_key: str, event: dict[str, Any], run_id: str | None) -> None:
        """Publish one event; with tracing on, in a producer span whose context the headers carry."""
        headers: dict[str, Any] = {RUN_ID_HEADER: run_id} if run_id else {}
        attributes = {**self._span_attributes, "messaging.rabbitmq.destination.routing_key": routing_key}
        with self.tracing.span(f"publish {EXCHANGE.name}", PRODUCER, attributes):
            self.tracing.inject(headers)  # the consumer continues the trace from here
            try:
                self._producer().publish(
                    json.dumps(event, default=str),
                    routing_key=routing_key,
                    content_type="application/json",
                    content_encoding="utf-8",
                    headers=headers,
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
