"""``amqp_publish`` and ``amqp_expect`` steps: publish a message; wait for a matching one on a queue or a tap.

``amqp_expect`` with ``exchange`` binds a private tap queue of the user to the exchange before
the user's first chain, so it sees events the platform publishes without taking them from the
platform's own consumers.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import gevent

from loadstack.chains.engine import ChainRun, Mismatch, StepFailed
from loadstack.chains.kinds.base import Builder, Step
from loadstack.chains.schema import AmqpExpectStepSpec, AmqpPublishStepSpec
from loadstack.chains.templates import Expression, Template, TemplateError, compile_value
from loadstack.users.base import RequestFailure

if TYPE_CHECKING:
    from loadstack.chains.engine import Chain
    from loadstack.chains.runtime import ChainRuntime


class AmqpPublishStep(Step[AmqpPublishStepSpec]):
    kind, request_type = "amqp_publish", "AMQP"

    def __init__(self, spec: AmqpPublishStepSpec, builder: Builder) -> None:
        super().__init__(spec, builder)
        a = spec.amqp_publish
        self.exchange = a.exchange
        self.routing_key = Template(a.routing_key)
        self.json = compile_value(a.json_body)
        self.body = Template(a.body) if a.body is not None else None
        self.headers = compile_value(a.headers or {})

    def templates(self) -> list[Any]:
        return [self.routing_key, self.json, self.body, self.headers]

    def execute(self, run: ChainRun) -> None:
        if self.body is not None:
            body, content_type = str(self.render(run, self.body)), "text/plain"
        else:
            body, content_type = json.dumps(self.render(run, self.json), default=str), "application/json"
        try:
            run.rt.amqp.publish(
                run.stat_name(self.name),
                body,
                routing_key=str(self.render(run, self.routing_key)),
                exchange=self.exchange,
                headers=self.render(run, self.headers),
                content_type=content_type,
                content_encoding="utf-8",
            )
        except RequestFailure as failure:
            raise StepFailed(self.name, failure.message) from None
        run.last = {"published": True}
        run.done_at[self.name] = time.perf_counter()


def amqp_message(raw: Any) -> dict[str, Any]:
    """A received message as ``last.message``: ``{body, json, headers, routing_key}``."""
    body = raw.body if isinstance(raw.body, bytes) else str(raw.body).encode()
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    return {
        "body": text,
        "json": data,
        "headers": dict(raw.properties.get("application_headers") or {}),
        "routing_key": raw.delivery_info.get("routing_key"),
    }


class AmqpExpectStep(Step[AmqpExpectStepSpec]):
    kind, request_type = "amqp_expect", "AMQP"

    def __init__(self, spec: AmqpExpectStepSpec, builder: Builder) -> None:
        super().__init__(spec, builder)
        a = spec.amqp_expect
        self.exchange = a.exchange
        self.routing_key = a.routing_key
        self.timeout = a.timeout
        self.queue = Template(a.queue) if a.queue else None
        self.match = Expression(a.match)

    def templates(self) -> list[Any]:
        return [self.queue] if self.queue else []

    def references(self) -> set[str]:
        return super().references() | self.match.references

    def prepare(self, runtime: ChainRuntime, chain: Chain) -> None:
        """Bind a private tap queue to the exchange before any run, so no event is missed."""
        if self.exchange is None:
            return
        key = f"{chain.name}/{self.name}"
        tap = f"loadtest.{runtime.run_id}.tap.{uuid.uuid4().hex[:10]}"
        try:
            runtime.amqp.declare_queue(tap, name=f"{key}/tap", **{"x-expires": 120_000})
            runtime.amqp.call(
                f"{key}/tap", runtime.amqp.channel.queue_bind, tap, self.exchange, self.routing_key
            )
        except RequestFailure:
            return  # recorded; the step will fail with "tap not ready"
        runtime.taps[key] = tap

    def execute(self, run: ChainRun) -> None:
        name = run.stat_name(self.name)
        queue = run.rt.taps.get(name) if self.queue is None else str(self.render(run, self.queue))
        client = run.rt.amqp
        timeout = self.timeout

        def op() -> Any:
            if queue is None:
                raise Mismatch(f"no tap on exchange {self.exchange!r} (binding failed at user start)")
            channel = client._ensure()
            deadline = time.monotonic() + timeout
            seen, delay = 0, 0.002
            while time.monotonic() < deadline:
                raw = channel.basic_get(queue, no_ack=True)
                if raw is None:
                    gevent.sleep(delay)
                    delay = min(delay * 1.5, 0.05)
                    continue
                seen += 1
                message = amqp_message(raw)
                try:
                    matched = self.match(run.scope(message=message))
                except TemplateError:
                    matched = False
                if matched:
                    self.finish(run, {"message": message})
                    return message
            raise Mismatch(
                f"no message matching `{self.match.source}` on {queue} within {timeout:.1f}s ({seen} other messages seen)"
            )

        span = client.messaging_span("receive", queue or "", name) if client._tracing is not None else None
        self.run_client(run, client, op, span)
