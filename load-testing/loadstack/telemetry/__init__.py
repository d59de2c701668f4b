"""OpenTelemetry tracing of a run: spans for every request, a trace per chain iteration.

Off by default; Locust's own switch turns it on (``--otel`` or
``LOCUST_ENABLE_OPENTELEMETRY=1``, read through :mod:`loadstack.settings`).
:mod:`loadstack.telemetry.setup` wires it into a Locust process on ``init``;
:mod:`loadstack.telemetry.spans` makes the spans.  Nothing here imports
``opentelemetry`` until tracing is on, so a run without it pays one ``is None``
test per request: :func:`tracing_of` is how a client asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loadstack import safety

if TYPE_CHECKING:
    from loadstack.settings import Settings
    from loadstack.telemetry.spans import Tracing


def tracing_of(environment: Any) -> Tracing | None:
    """The tracing of a Locust environment, or None when OTel is off (the common case)."""
    from loadstack import plugin

    st = plugin.state(environment) if environment is not None else None
    return st.tracing if st is not None else None


def exporters(value: str) -> set[str]:
    """``OTEL_*_EXPORTER``'s comma-separated names, as Locust reads them."""
    return {e.strip().lower() for e in value.split(",") if e.strip()}


def traces_exported(settings: Settings) -> bool:
    """Whether spans go anywhere (``OTEL_TRACES_EXPORTER=none``: making them would be pure cost)."""
    return bool(exporters(settings.otel_traces_exporter) - {"none"})


def endpoints(settings: Settings) -> list[str]:
    """The OTLP endpoints a traced process exports to (the SDK's defaults when unset): traces,
    metrics and log records, each only when its exporter is ``otlp``."""
    default = (
        "http://localhost:4318" if settings.otel_protocol.startswith("http") else "http://localhost:4317"
    )
    found = set()
    for exporter, endpoint in (
        (settings.otel_traces_exporter, settings.otel_endpoint),
        (settings.otel_metrics_exporter, settings.otel_metrics_endpoint),
        (settings.otel_logs_exporter, settings.otel_logs_endpoint),
    ):
        if "otlp" in exporters(exporter):
            found.add(endpoint or default)
    return sorted(found)


def endpoint_problem(settings: Settings) -> str | None:
    """Why telemetry may not be exported where the settings say (None: it may).

    Checked before Locust builds its exporters (at locustfile import) and again on ``init``, so a
    refused endpoint ends the process with exit 2 before anything is sent to it.
    """
    for url in endpoints(settings):
        try:
            safety.check_otlp_endpoint(url, allowed=settings.allow_otlp)
        except safety.RemoteTargetError as exc:
            return str(exc)
    return None
