"""Tracing in a Locust process: Locust's own OTel setup, masked and guarded.

Locust's ``--otel`` (``LOCUST_ENABLE_OPENTELEMETRY``) builds the tracer, meter and
logger providers from the standard ``OTEL_*`` variables before the run starts
(``locust.opentelemetry``): exporter, OTLP endpoint and protocol (grpc or
http/protobuf), sampler, resource attributes.  On ``init`` loadstack adds what
Locust's setup lacks:

* the OTLP endpoints must pass :func:`loadstack.safety.check_otlp_endpoint`
  (local, or named by ``LOADSTACK_ALLOW_OTLP``), else the run ends with exit 2;
* every span processor Locust installed is wrapped in :class:`MaskingProcessor`,
  so no exported name, attribute, event or status carries a secret, whoever set
  it (loadstack's spans, a user's own, an instrumentation library's); log records
  sent over OTLP pass the masker too;
* the run id (and role) become resource attributes;
* a :class:`loadstack.telemetry.spans.Tracing` for loadstack's clients and chains.

When a provider was not set up by Locust (an Environment built in Python with
tracing asked for in settings), Locust's setup is called here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Status

from loadstack import exitcodes, masking, runcontext
from loadstack.settings import Settings
from loadstack.telemetry import endpoint_problem, traces_exported
from loadstack.telemetry.spans import Tracing

log = logging.getLogger("loadstack")
TRACER_NAME = "loadstack"
_MASKED_CACHE = 4096  # distinct strings remembered masked (then the cache starts again)


class MaskingProcessor(SpanProcessor):
    """Hands a masked copy of each finished span to the processor it wraps (its exporter's)."""

    def __init__(self, inner: SpanProcessor, masker: masking.Masker, role: str) -> None:
        self.inner = inner
        self.masker = masker
        self.role = role
        self._resources: dict[tuple[int, str], Resource] = {}  # (resource, run id) -> with loadstack's
        # Most span strings repeat (a method, a host, a request name): each is masked once, until the
        # masker learns a new secret (its compiled pattern changes) or the cache is full.
        self._masked: dict[str, str] = {}
        self._masked_by: Any = None

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def _mask(self, text: str) -> str:
        literal = self.masker._literal
        if literal is not self._masked_by or len(self._masked) >= _MASKED_CACHE:
            self._masked, self._masked_by = {}, literal
        found = self._masked.get(text)
        if found is None:
            found = self._masked[text] = self.masker(text)
        return found

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._mask(value)
        if isinstance(value, (list, tuple)):
            return type(value)(self._value(v) for v in value)
        return value

    def _attributes(self, attributes: Any) -> dict[str, Any]:
        return {k: self._value(v) for k, v in (attributes or {}).items()}

    def on_end(self, span: ReadableSpan) -> None:
        status = span.status
        if status.description:
            status = Status(status.status_code, self._mask(status.description))
        resource = self._resource(span.resource)
        name = self._mask(span.name)
        attributes = self._attributes(span.attributes)
        if (  # nothing to mask (the common case): the span as it is, not a copy
            resource is span.resource
            and status is span.status
            and name == span.name
            and not span.events
            and attributes == dict(span.attributes or {})
        ):
            self.inner.on_end(span)
            return
        masked = ReadableSpan(
            name=name,
            context=span.context,
            parent=span.parent,
            resource=resource,
            attributes=attributes,
            events=[
                Event(self._mask(e.name), self._attributes(e.attributes), timestamp=e.timestamp)
                for e in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )
        self.inner.on_end(masked)

    def _resource(self, base: Resource | None) -> Resource:
        """The span's resource plus the run id and role (merged once per run id, not per span)."""
        run_id = runcontext.current().run_id  # a worker adopts the master's id when it joins
        if base is not None and base.attributes.get("loadstack.run_id") == run_id:
            return base  # the provider's own resource has it (set on install)
        key = (id(base), run_id)
        found = self._resources.get(key)
        if found is None:
            extra = {"loadstack.run_id": run_id, "loadstack.role": self.role}
            found = self._resources[key] = (base or Resource.get_empty()).merge(Resource(extra))
        return found

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _MaskRecords(logging.Filter):
    """Log records exported over OTLP carry masked messages, as the console's do."""

    def __init__(self, masker: masking.Masker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.masker(record.getMessage())
        record.args = ()
        return True


def _mask_processors(provider: TracerProvider, masker: masking.Masker, role: str) -> None:
    active = provider._active_span_processor  # the SDK has no public way to wrap its processors
    wrapped: Sequence[SpanProcessor] = tuple(
        p if isinstance(p, MaskingProcessor) else MaskingProcessor(p, masker, role)
        for p in active._span_processors
    )
    active._span_processors = wrapped


def install(environment: Any, settings: Settings, role: str) -> Tracing | None:
    """Tracing for this process, or None when OTel is off; exits 2 on an endpoint not allowed."""
    options = getattr(environment, "parsed_options", None)
    if not (settings.otel or getattr(options, "otel", False)):
        return None
    problem = endpoint_problem(settings)
    if problem is not None:
        log.error("%s", problem)
        raise SystemExit(exitcodes.BAD_INPUT)
    if not traces_exported(settings):
        return None
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        from locust.opentelemetry import setup_opentelemetry

        setup_opentelemetry(getattr(options, "locustfile", "") or "", getattr(options, "profile", None))
        provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # every exporter `none`: nothing to trace to
        return None
    masker = masking.current()
    _mask_processors(provider, masker, role)
    # The run id and role on the provider's resource, so spans need no copy to carry them (a worker
    # that adopts another run id later gets copies with it: MaskingProcessor._resource).
    extra = Resource({"loadstack.run_id": runcontext.current().run_id, "loadstack.role": role})
    provider._resource = provider.resource.merge(extra)  # before get_tracer: tracers take it then
    for handler in logging.getLogger().handlers + logging.getLogger("locust").handlers:
        if handler.name == "opentelemetry" and not any(isinstance(f, _MaskRecords) for f in handler.filters):
            handler.addFilter(_MaskRecords(masker))
    tracing = Tracing(provider.get_tracer(TRACER_NAME), masker, sqlcommenter=settings.otel_sqlcommenter)
    environment.events.request.add_listener(tracing.on_request)
    environment.events.quitting.add_listener(lambda **_: provider.force_flush())
    return tracing
