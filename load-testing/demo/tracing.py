"""The demo platform's own spans: it continues the load generator's trace through its pipeline.

A request that arrives with a W3C ``traceparent`` header (loadstack's users send one when
OpenTelemetry is on) gets a server span that is the child of the load generator's request
span; the platform's PostgreSQL statements, its RabbitMQ publish, the consumer's processing of
that message and the consumer's Redis write are descendants of it, so one trace shows a
load-test iteration crossing HTTP → RabbitMQ → consumer → PostgreSQL/Redis.  The context
travels to the consumer in the message's headers, as the load generator's own AMQP messages
carry it.

Spans are named and attributed by the OpenTelemetry semantic conventions (HTTP server,
database client, messaging).  Statements are described by their operation and table, never
their parameters.  Exported with opentelemetry-sdk's OTLP/HTTP exporter when an endpoint is
set (``--otlp-endpoint``, ``LOADSTACK_DEMO_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``);
otherwise :data:`OFF`, whose methods do nothing and which imports no OpenTelemetry module.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("loadstack.demo")

# The span kinds by name, so that callers need not import opentelemetry when tracing is off.
SERVER, CLIENT, PRODUCER, CONSUMER = "SERVER", "CLIENT", "PRODUCER", "CONSUMER"


class Tracing:
    """One process's tracer (the API server's or the consumer's), or nothing when off."""

    def __init__(self, provider: Any = None) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("loadstack_demo") if provider is not None else None
        if provider is not None:
            from opentelemetry.propagate import get_global_textmap
            from opentelemetry.trace import SpanKind, StatusCode

            self._propagator = get_global_textmap()  # W3C trace context and baggage by default
            self._kinds = {k: getattr(SpanKind, k) for k in (SERVER, CLIENT, PRODUCER, CONSUMER)}
            self._error = StatusCode.ERROR

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        kind: str,
        attributes: Mapping[str, Any],
        parent_carrier: Mapping[str, Any] | None = None,
    ) -> Iterator[Any]:
        """A current span for the block (``None`` when off); an exception marks it an error.

        ``parent_carrier`` (request or message headers) holds the remote parent's ``traceparent``;
        without it the span is the child of the current one.
        """
        if self.tracer is None:
            yield None
            return
        context = self._propagator.extract(parent_carrier) if parent_carrier is not None else None
        with self.tracer.start_as_current_span(
            name,
            context=context,
            kind=self._kinds[kind],
            attributes=dict(attributes),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                # The exception's class only: its message may quote a statement's parameters.
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(self._error, type(exc).__qualname__)
                raise

    def inject(self, carrier: MutableMapping[str, Any]) -> None:
        """Put the current span's ``traceparent`` (and ``tracestate``) into outgoing headers."""
        if self.tracer is not None:
            self._propagator.inject(carrier)

    def error(self, span: Any, error_type: str) -> None:
        """Mark a span failed without an exception (a 5xx answer)."""
        if span is not None:
            span.set_attribute("error.type", error_type)
            span.set_status(self._error)

    def shutdown(self) -> None:
        """Flush what is queued (a process that stops exports its last spans)."""
        if self.provider is not None:
            self.provider.shutdown()


OFF = Tracing()


def endpoint(flag: str | None = None) -> str | None:
    """The OTLP/HTTP traces URL: the demo's flag, its variable, or the standard OTel one."""
    from loadstack.settings import current

    config = current()
    return config.otlp_url("traces", flag or config.demo_otlp_endpoint)


def setup(service_name: str, flag: str | None = None) -> Tracing:
    """The process's tracing: :data:`OFF` unless an OTLP endpoint is set.

    The endpoint is the user's telemetry sink, not a load target: :func:`loadstack.safety.sink_session`
    applies the sink's own rule (local, or named by ``LOADSTACK_ALLOW_OTLP``; docs/security.md) and
    makes sure no proxy of the environment sees the spans.
    """
    url = endpoint(flag)
    if url is None:
        return OFF
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from loadstack import exitcodes, safety
    from loadstack.masking import mask_url

    try:
        session = safety.sink_session(url)
    except ValueError as exc:  # bad input: a message and exit status 2, not a traceback
        log.error("%s: %s", service_name, exc)
        raise SystemExit(exitcodes.BAD_INPUT) from None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=url, session=session)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    log.warning("%s: spans to %s", service_name, mask_url(url))
    return Tracing(provider)


def sql_attributes(operation: str, table: str, server: Mapping[str, Any]) -> dict[str, Any]:
    """A PostgreSQL client span's attributes: the operation and table, never the parameters."""
    return {
        "db.system.name": "postgresql",
        "db.operation.name": operation,
        "db.collection.name": table,
        "db.query.summary": f"{operation} {table}",
        **server,
    }


def postgres_server(dsn_params: Mapping[str, Any]) -> dict[str, Any]:
    """``db.namespace``, ``server.address`` and ``server.port`` of a libpq connection's parameters."""
    out: dict[str, Any] = {}
    if dsn_params.get("dbname"):
        out["db.namespace"] = dsn_params["dbname"]
    if dsn_params.get("host"):
        out["server.address"] = dsn_params["host"]
    if dsn_params.get("port"):
        out["server.port"] = int(dsn_params["port"])
    return out


def url_server(url: str) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of a broker's or cache's URL (no credentials)."""
    parts = urlsplit(url)
    out: dict[str, Any] = {}
    if parts.hostname:
        out["server.address"] = parts.hostname
    if parts.port:
        out["server.port"] = parts.port
    return out


class TracingMiddleware:
    """ASGI: an HTTP server span per request, the child of the caller's ``traceparent``.

    Named ``{method} {route}`` (the route template, not the path: ``/api/v1/orders/{order_id}``),
    as the HTTP semantic conventions ask, with the route Starlette matched; just ``{method}`` when
    none matched (a path would make a name per order id).
    """

    def __init__(self, app: Any, tracing: Tracing, port: int) -> None:
        self.app = app
        self.tracing = tracing
        self.port = port

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        method = scope["method"]
        attributes = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "server.address": (scope.get("server") or ("127.0.0.1",))[0],
            "server.port": self.port,
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        status: list[int] = []

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        with self.tracing.span(method, SERVER, attributes, headers) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None)
                if template:
                    span.set_attribute("http.route", template)
                    span.update_name(f"{method} {template}")
                if status:
                    span.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500:
                        self.tracing.error(span, str(status[0]))
