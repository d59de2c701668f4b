"""The spans of a traced run, named and attributed by the OTel semantic conventions.

One :class:`Tracing` per Locust process (built by :mod:`loadstack.telemetry.setup`
when OTel is on).  Clients ask it for a span around each request
(:meth:`Tracing.request`), made current while the request runs so that a
listener of ``events.request`` sees it through ``trace.get_current_span()``.
A chain iteration is one trace (:meth:`Tracing.iteration`, :meth:`Tracing.step`);
Python users get the same from :func:`iteration` / :func:`step`.

Every string that goes into a span passes the masker once, in the processor that
wraps the exporter's (:class:`loadstack.telemetry.setup.MaskingProcessor`); ``url.full``
also loses its credentials here (:meth:`Tracing.url`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from loadstack import runcontext
from loadstack.masking import Masker, mask_url

# The first keyword of a statement: its operation (db.operation.name); never its parameters.
_SQL_OPERATION = re.compile(r"^\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*([A-Za-z]+)", re.S)
TRACE_HEADERS = ("traceparent", "tracestate")


def sql_operation(statement: str) -> str:
    """``SELECT``, ``INSERT``, ... of a statement (comments skipped)."""
    m = _SQL_OPERATION.match(statement)
    return m.group(1).upper() if m else "SQL"


class Tracing:
    """A process's tracer, masker and options; every span loadstack makes comes from here."""

    def __init__(self, tracer: trace.Tracer, masker: Masker, *, sqlcommenter: bool = False) -> None:
        self.tracer = tracer
        self.masker = masker
        self.sqlcommenter = sqlcommenter

    # -- attributes ------------------------------------------------------------------------
    @staticmethod
    def clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Attributes without None values.  Not masked here: every finished span passes the masker
        once, in the exporter's processor (:class:`loadstack.telemetry.setup.MaskingProcessor`),
        whoever set its attributes; masking them here too would double the masker's work per request."""
        return {key: value for key, value in attributes.items() if value is not None}

    def url(self, url: str) -> str:
        """``url.full`` without credentials or secret query values."""
        return mask_url(url)  # credentials out here; the rest of it is masked on export

    # -- request spans ---------------------------------------------------------------------
    @contextmanager
    def request(
        self, name: str, attributes: Mapping[str, Any], *, kind: SpanKind = SpanKind.CLIENT
    ) -> Iterator[Span]:
        """A client span, current for the duration of the block (the request event fires inside it).

        An exception leaving the block marks the span as an error with its masked message; the
        exception is re-raised unchanged.
        """
        with self.tracer.start_as_current_span(
            name,
            kind=kind,
            attributes=self.clean(attributes),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except Exception as exc:
                self.fail(span, str(exc) or type(exc).__name__, type(exc).__name__)
                raise
            except BaseException:
                interrupted(span)
                raise

    def fail(self, span: Span, message: str, error_type: str | None = None) -> None:
        """Error status with Locust's failure message (masked on export, as everything in a span)."""
        span.set_status(Status(StatusCode.ERROR, message))
        span.set_attribute("error.type", error_type or "failure")

    def on_request(self, exception: BaseException | None = None, **_: Any) -> None:
        """``events.request`` listener: a failure Locust records marks the current span as an error.

        Locust decides some failures after the request (``catch_response``, a status >= 400),
        so the span learns of them here, where the failure message is Locust's own.
        """
        if exception is None:
            return
        span = trace.get_current_span()
        if span.is_recording():
            self.fail(span, str(exception) or type(exception).__name__, type(exception).__name__)

    # -- trace context into the system under test --------------------------------------------
    def inject_headers(self, headers: dict[str, Any]) -> dict[str, Any]:
        """W3C ``traceparent``/``tracestate`` of the current span added to ``headers`` (returned)."""
        inject(headers)
        return headers

    def sql_comment(self, statement: str) -> str:
        """``statement`` with the sqlcommenter comment of the current span (when the setting is on)."""
        if not self.sqlcommenter:
            return statement
        carrier: dict[str, str] = {}
        inject(carrier)
        if not carrier:
            return statement
        pairs = ",".join(f"{k}='{quote(v, safe='')}'" for k, v in sorted(carrier.items()))
        body = statement.rstrip()
        semicolon = body.endswith(";")
        return f"{body[:-1] if semicolon else body} /*{pairs}*/{';' if semicolon else ''}"

    # -- chains and Python users --------------------------------------------------------------
    @contextmanager
    def iteration(self, chain: str, *, user_class: str, number: int) -> Iterator[Span]:
        """The root span of one chain iteration: a new trace, whatever is current."""
        token = otel_context.attach(otel_context.Context())  # a root, never a child of another run
        try:
            with self.tracer.start_as_current_span(
                f"chain {chain}",
                kind=SpanKind.INTERNAL,
                attributes=self.clean(
                    {
                        "loadstack.chain.name": chain,
                        "loadstack.user_class": user_class,
                        "loadstack.run_id": runcontext.current().run_id,  # a worker adopts the master's
                        "loadstack.iteration": number,
                    }
                ),
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    yield span
                except Exception:
                    raise
                except BaseException:
                    interrupted(span)
                    raise
        finally:
            otel_context.detach(token)

    @contextmanager
    def step(self, chain: str, step: str, kind: str) -> Iterator[Span]:
        """A step's span, child of the iteration's; a failure leaving it marks it an error."""
        with self.request(
            f"{chain}/{step}",
            {"loadstack.chain.name": chain, "loadstack.chain.step": step, "loadstack.step.kind": kind},
            kind=SpanKind.INTERNAL,
        ) as span:
            yield span

    def event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        """An event on the current span (``think``/``sleep`` pauses)."""
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(name, self.clean(attributes or {}))


def interrupted(span: Span) -> None:
    """Mark a span its block did not finish: the run stopped its user (Locust kills the greenlet).

    Such a span is still exported, but its request or iteration was never reported, so a trace
    viewer and a count against ``summary.json`` can tell it apart.
    """
    span.set_attribute("loadstack.interrupted", True)
    span.add_event("interrupted", {"reason": "the run stopped the user"})


# -- the context-manager API for Python users ---------------------------------------------------
def _tracing(user: Any) -> Tracing | None:
    from loadstack.telemetry import tracing_of

    return tracing_of(getattr(user, "environment", None))


@contextmanager
def iteration(user: Any, name: str, number: int = 0) -> Iterator[Span | None]:
    """One iteration of a Python user as one trace (a no-op yielding None when OTel is off).

    ``with iteration(self, "checkout", n): with step(self, "checkout", "pay"): self.client.post(...)``
    """
    tracing = _tracing(user)
    if tracing is None:
        yield None
        return
    with tracing.iteration(name, user_class=type(user).__name__, number=number) as span:
        yield span


@contextmanager
def step(user: Any, chain: str, name: str, kind: str = "python") -> Iterator[Span | None]:
    """One step of an :func:`iteration` (a no-op when OTel is off)."""
    tracing = _tracing(user)
    if tracing is None:
        yield None
        return
    with tracing.step(chain, name, kind) as span:
        yield span
