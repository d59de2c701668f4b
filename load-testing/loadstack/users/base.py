"""The connector interface: time any client-library call and report it to Locust.

Every protocol user (WebSocket, PostgreSQL, RabbitMQ, Redis, ...) has a
``client`` derived from :class:`TimedClient`.  A call is timed with
``time.perf_counter`` and reported through ``environment.events.request`` with
a ``request_type`` (``WS``, ``SQL``, ``AMQP``, ``REDIS``), so it shows up in
Locust's stats, CSVs, web UI and loadstack's exporter like any HTTP request.

A failing call is recorded as a Locust failure once, then
:class:`RequestFailure` is raised.  It subclasses Locust's ``RescheduleTask``:
left uncaught it ends the current task quietly and the user carries on with
the next one, so a dead server never kills a user greenlet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, ClassVar, TypeVar

from locust import User
from locust.env import Environment
from locust.exception import RescheduleTask

from loadstack import runcontext
from loadstack.masking import mask_patterns
from loadstack.telemetry import tracing_of

T = TypeVar("T")
_now = time.perf_counter
_MAX_MESSAGE = 200
_SIZED = (bytes, str, list, tuple, dict)
_UNTRACED = nullcontext()  # measure()'s span when OTel is off (reusable: it holds no state)


def short_error(exc: BaseException) -> str:
    """``ClassName: first line of the message`` — what a failure table should show."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = mask_patterns(text)
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1] + "…"
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


class RequestFailure(RescheduleTask):
    """A failed timed operation; already counted in Locust's stats when raised."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause

    def __repr__(self) -> str:
        # Locust groups failures by repr(); make it the readable message.
        return self.message

    __str__ = __repr__


class Timing:
    """Handle of an operation being timed by :meth:`TimedClient.measure`."""

    __slots__ = ("error", "response_length", "start")

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.response_length = 0
        self.error: BaseException | str | None = None

    def fail(self, reason: BaseException | str) -> None:
        """Mark the operation failed without raising (e.g. a wrong reply)."""
        self.error = reason

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000.0


class TimedClient:
    """Base class for protocol clients that report to Locust.

    Subclasses set :attr:`request_type` and wrap their library's calls with
    :meth:`call` (one call) or :meth:`measure` (several calls, one stat entry).
    """

    request_type: ClassVar[str] = "CUSTOM"

    def __init__(
        self, environment: Environment, *, user: User | None = None, context: dict | None = None
    ) -> None:
        self.environment = environment
        self._fire = environment.events.request.fire
        # loadstack.telemetry.spans.Tracing when OTel is on; None (one test per request) when off.
        self._tracing = tracing_of(environment)
        self.context: dict[str, Any] = {
            "run_id": runcontext.current().run_id,
            "user_class": type(user).__name__ if user is not None else None,
            **(context or {}),
        }

    def report(
        self,
        name: str,
        response_time_ms: float,
        *,
        request_type: str | None = None,
        response_length: int = 0,
        error: BaseException | str | None = None,
    ) -> None:
        """Fire one Locust request event (use when the timing was taken elsewhere)."""
        exception: BaseException | None
        if error is None:
            exception = None
        elif isinstance(error, RequestFailure):
            exception = error
        elif isinstance(error, str):
            exception = RequestFailure(error)
        else:
            exception = RequestFailure(short_error(error), error)
        self._fire(
            request_type=request_type or self.request_type,
            name=name,
            response_time=response_time_ms,
            response_length=response_length,
            exception=exception,
            context=self.context,
        )

    def call(
        self,
        name: str,
        fn: Callable[..., T],
        /,
        *args: Any,
        request_type: str | None = None,
        span: tuple[str, dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> T:
        """Time ``fn(*args, **kwargs)``; report it; raise :class:`RequestFailure` if it failed.

        ``span``: the span's name and attributes when traced (default: :meth:`span_for`).
        """
        if self._tracing is not None:
            span_name, attributes = span or self.span_for(name, fn, args, kwargs)
            with self._tracing.request(span_name, attributes):
                return self._call(name, fn, args, kwargs, request_type)
        # Untraced (the default), the body of _call inline: every request of every client comes
        # here, and one more call level with its argument packing is measurable against a local GET.
        start = _now()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            raise self.failed(name, start, exc, request_type) from exc
        self._fire(
            request_type=request_type or self.request_type,
            name=name,
            response_time=(_now() - start) * 1000.0,
            response_length=self.length_of(result),
            exception=None,
            context=self.context,
        )
        return result

    def _call(self, name: str, fn: Callable[..., T], args: Any, kwargs: Any, request_type: str | None) -> T:
        """:meth:`call`'s timed body (what the traced path runs inside its span)."""
        start = _now()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            raise self.failed(name, start, exc, request_type) from exc
        self._fire(
            request_type=request_type or self.request_type,
            name=name,
            response_time=(_now() - start) * 1000.0,
            response_length=self.length_of(result),
            exception=None,
            context=self.context,
        )
        return result

    def failed(
        self, name: str, start: float, exc: Exception, request_type: str | None = None
    ) -> RequestFailure:
        """Report ``exc`` as the failure of the operation started at ``start`` (a ``perf_counter``
        time), let the subclass drop a broken connection, and return the :class:`RequestFailure`
        to raise."""
        failure = RequestFailure(short_error(exc), exc)
        self.report(name, (_now() - start) * 1000.0, request_type=request_type, error=failure)
        self.on_error(exc)
        return failure

    @contextmanager
    def measure(
        self, name: str, request_type: str | None = None, *, span: tuple[str, dict[str, Any]] | None = None
    ) -> Iterator[Timing]:
        """Time a block as one request; an exception inside it is a failure (and is re-raised).

        ``span``: the span's name and attributes when traced (default: :meth:`span_for`).
        """
        tracing = self._tracing
        traced: Any = _UNTRACED
        if tracing is not None:
            span_name, attributes = span or self.span_for(name, None, (), {})
            traced = tracing.request(span_name, attributes)
        with traced:
            timing = Timing()
            try:
                yield timing
            except RequestFailure as exc:
                self.report(name, timing.elapsed_ms, request_type=request_type, error=exc)
                raise
            except Exception as exc:
                failure = RequestFailure(short_error(exc), exc)
                self.report(name, timing.elapsed_ms, request_type=request_type, error=failure)
                self.on_error(exc)
                raise failure from exc
            self.report(
                name,
                timing.elapsed_ms,
                request_type=request_type,
                response_length=timing.response_length,
                error=timing.error,
            )

    def span_for(
        self, name: str, fn: Callable[..., Any] | None, args: Any, kwargs: Any
    ) -> tuple[str, dict[str, Any]]:
        """The span name and semantic-convention attributes of one call (only asked when traced)."""
        return name, {"loadstack.request_type": self.request_type}

    def length_of(self, result: Any) -> int:
        """Response size for Locust's ``response_length``; override per protocol."""
        if result is None:
            return 0
        return len(result) if isinstance(result, _SIZED) else 0

    def on_error(self, exc: BaseException) -> None:
        """Hook for subclasses to drop a broken connection so the next call reconnects."""


class Backoff:
    """Reconnect pacing: after a failed connect, wait before the next attempt (exponential, capped).

    Users call :meth:`wait` before connecting so a dead server is retried
    gently instead of in a tight loop that would flood the failure table.
    """

    def __init__(self, initial: float = 0.1, maximum: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.delay = 0.0

    def wait(self, sleep: Callable[[float], Any] | None = None) -> None:
        if self.delay:
            (sleep or _gevent_sleep)(self.delay)

    def failed(self) -> None:
        self.delay = min(self.maximum, self.delay * 2 if self.delay else self.initial)

    def succeeded(self) -> None:
        self.delay = 0.0


def _gevent_sleep(seconds: float) -> None:
    import gevent

    gevent.sleep(seconds)


def user_context(user: User) -> dict[str, Any]:
    """The request-event context every loadstack user adds (run id and user class)."""
    return {"run_id": runcontext.current().run_id, "user_class": type(user).__name__}
