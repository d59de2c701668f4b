"""RabbitMQ users on kombu: confirmed publishes, gets with ack, and publish→consume round trips.

Each user owns one connection and one channel; nothing AMQP is shared
between greenlets.  Heartbeats are disabled (``heartbeat=0``): with gevent a
heartbeat needs a second greenlet writing to the same socket as the user's
greenlet, which is exactly the sharing we avoid, and a load-test connection
is never idle long enough for the broker to need them.  A dead connection is
noticed on the next operation, dropped, and reopened with backoff.
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import amqp
import kombu
from locust import User
from locust.env import Environment

from loadstack import runcontext, safety, settings
from loadstack.users.base import Backoff, RequestFailure, TimedClient, user_context

SENT_AT_HEADER = "x-loadstack-sent-at"
RUN_ID_HEADER = "x-loadstack-run-id"


def default_url() -> str:
    return settings.current().amqp_url


def run_queue_name(suffix: str) -> str:
    """Queue names carry the run id, so teardown can find everything a run created."""
    return f"loadtest.{runcontext.current().run_id}.{suffix}"


class RabbitMQClient(TimedClient):
    """Timed AMQP operations for one user."""

    request_type = "AMQP"

    def __init__(
        self,
        environment: Environment,
        url: str | None = None,
        *,
        user: User | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        super().__init__(environment, user=user)
        self.url = url or default_url()
        self.connect_timeout = connect_timeout
        self.connection: kombu.Connection | None = None
        self.channel: Any = None
        self.producer: kombu.Producer | None = None
        self.backoff = Backoff()
        self.declared: set[str] = set()
        self.run_id = runcontext.current().run_id

    # -- connection ------------------------------------------------------------
    def _ensure(self) -> Any:
        if self.channel is not None and self.connection is not None and self.connection.connected:
            return self.channel
        self.reset()
        self.backoff.wait()
        try:
            with self.measure("connect"):
                safety.check_target(
                    self.url, allow_remote=runcontext.current().settings.allow_remote, what="RabbitMQ"
                )
                conn = safety.kombu_connection(
                    self.url,
                    allow_remote=runcontext.current().settings.allow_remote,
                    heartbeat=0,
                    connect_timeout=self.connect_timeout,
                    transport_options={"confirm_publish": True},
                )
                conn.connect()
                self.connection = conn
                self.channel = conn.channel()
                self.producer = kombu.Producer(self.channel)
        except RequestFailure:
            self.backoff.failed()
            self.reset()
            raise
        self.backoff.succeeded()
        return self.channel

    def reset(self) -> None:
        """Forget the connection (after an error); the next operation reconnects."""
        conn, self.connection, self.channel, self.producer = self.connection, None, None, None
        self.declared.clear()
        if conn is not None:
            with contextlib.suppress(
                Exception
            ):  # a broken connection may fail to close; it is discarded anyway
                conn.release()

    def on_error(self, exc: BaseException) -> None:
        if isinstance(
            exc, OSError | amqp.exceptions.ConnectionError | amqp.exceptions.RecoverableConnectionError
        ):
            self.reset()
        elif isinstance(exc, amqp.exceptions.ChannelError):
            # The broker closed the channel (e.g. 404 on a missing queue); the connection may live on.
            self.reset()

    def close(self) -> None:
        self.reset()

    # -- operations ------------------------------------------------------------
    def declare_queue(self, queue: str, *, name: str = "declare", **arguments: Any) -> None:
        """Declare a queue once per connection (loadstack declares only queues it owns)."""
        channel = self._ensure()
        if queue not in self.declared:
            self.call(
                name, channel.queue_declare, queue, durable=False, auto_delete=False, arguments=arguments
            )
            self.declared.add(queue)

    def publish(
        self,
        name: str,
        body: Any,
        *,
        routing_key: str,
        exchange: str = "",
        headers: dict[str, Any] | None = None,
        content_type: str | None = None,
        **properties: Any,
    ) -> None:
        """Publish and wait for the broker's confirm: the timed operation ends at the confirm."""
        self._ensure()
        assert self.producer is not None
        all_headers = {RUN_ID_HEADER: self.run_id, **headers} if headers else {RUN_ID_HEADER: self.run_id}
        if self._tracing is None:  # today's path, as it was: no span, no context to carry
            self.call(
                name,
                self.producer.publish,
                body,
                routing_key=routing_key,
                exchange=exchange,
                headers=all_headers,
                content_type=content_type,
                retry=False,
                **properties,
            )
            return
        from opentelemetry.trace import SpanKind

        span_name, attributes = self.messaging_span("publish", exchange or "amq.default", name, routing_key)
        with self._tracing.request(span_name, attributes, kind=SpanKind.PRODUCER):
            self._tracing.inject_headers(all_headers)  # W3C trace context in the message headers
            self._call(
                name,
                self.producer.publish,
                (body,),
                dict(
                    routing_key=routing_key,
                    exchange=exchange,
                    headers=all_headers,
                    content_type=content_type,
                    retry=False,
                    **properties,
                ),
                None,
            )

    def messaging_span(
        self, operation: str, destination: str, name: str, routing_key: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """A span name and ``messaging.*`` attributes (RabbitMQ semantic conventions)."""
        kind = {"publish": "send", "receive": "receive"}.get(operation, operation)
        attributes = {
            "messaging.system": "rabbitmq",
            "messaging.operation.name": operation,
            "messaging.operation.type": kind,
            "messaging.destination.name": destination,
            "messaging.rabbitmq.destination.routing_key": routing_key,
            "server.address": self._server_address[0],
            "server.port": self._server_address[1],
            "loadstack.request.name": name,
        }
        return f"{operation} {destination}", attributes

    @functools.cached_property
    def _server_address(self) -> tuple[str | None, int | None]:
        try:
            parts = urlsplit(self.url.split(";", 1)[0])
            return parts.hostname, parts.port or 5672
        except ValueError:
            return None, None

    def span_for(self, name: str, fn: Any, args: Any, kwargs: Any) -> tuple[str, dict[str, Any]]:
        operation = getattr(fn, "__name__", "") or name
        return self.messaging_span(operation, str(args[0]) if args else "", name)

    def get(self, name: str, queue: str, *, ack: bool = True) -> amqp.Message | None:
        """``basic.get`` one message (None if the queue is empty) and ack it."""
        channel = self._ensure()

        def get_one() -> amqp.Message | None:
            message = channel.basic_get(queue, no_ack=False)
            if message is not None and ack:
                channel.basic_ack(message.delivery_tag)
            return message

        span = self.messaging_span("receive", queue, name) if self._tracing is not None else None
        return self.call(name, get_one, span=span)

    def round_trip(self, name: str, queue: str, body: Any, *, timeout: float = 5.0) -> float:
        """Publish to ``queue`` and get the same message back; records its latency under ``name``.

        The message carries its send time in a header; the recorded time is
        receive time minus that, so it includes broker queueing.
        """
        channel = self._ensure()
        assert self.producer is not None
        token = uuid.uuid4().hex
        start = time.perf_counter()

        def trip() -> float:
            sent_at = time.time()
            self.producer.publish(
                body,
                routing_key=queue,
                headers={
                    SENT_AT_HEADER: sent_at,
                    RUN_ID_HEADER: runcontext.current().run_id,
                    "x-token": token,
                },
                retry=False,
            )
            deadline = time.monotonic() + timeout
            delay = 0.0005
            while time.monotonic() < deadline:
                message = channel.basic_get(queue, no_ack=False)
                if message is None:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.02)
                    continue
                channel.basic_ack(message.delivery_tag)
                headers = message.headers or {}
                if headers.get("x-token") == token:
                    return (time.time() - float(headers[SENT_AT_HEADER])) * 1000.0
            raise TimeoutError(f"message not received from {queue} within {timeout:.1f}s")

        try:
            latency_ms = trip()
        except Exception as exc:
            failure = RequestFailure(f"{type(exc).__name__}: {exc}", exc)
            self.report(name, (time.perf_counter() - start) * 1000.0, error=failure)
            self.on_error(exc)
            raise failure from exc
        self.report(name, latency_ms, response_length=len(body) if isinstance(body, bytes | str) else 0)
        return latency_ms


class RabbitMQUser(User):
    """A Locust user with a :class:`RabbitMQClient` as ``self.client`` (``url`` overrides the env)."""

    abstract = True
    url: str | None = None

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.client = RabbitMQClient(environment, self.url, user=self)

    def context(self) -> dict:
        return user_context(self)

    def on_stop(self) -> None:
        self.client.close()
