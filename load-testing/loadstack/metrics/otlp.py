"""The exporter's request metrics over OTLP too: the master pushes what it serves on :9646.

Design: the master (or a local runner) exports the *merged* view of
:class:`~loadstack.metrics.aggregate.RequestMetrics` — the same fixed-bucket counts the workers
ship with Locust's report and the Prometheus exporter serves — rather than every process
recording into its own OpenTelemetry meter.  So OTLP, ``/metrics`` and ``summary.json`` count
the same requests: counts agree exactly, and the histogram has the exporter's buckets (its
resolution is theirs).  One series per request type, name and user class; the run id and
profile are resource attributes.

Every ``OTEL_METRIC_EXPORT_INTERVAL`` milliseconds (60 s by default) and once more when the
master quits, a cumulative snapshot is built as opentelemetry-sdk's metric data and sent with
the SDK's OTLP/HTTP exporter (no encoder of our own):

* ``loadstack.requests`` (sum, monotonic): attributes ``loadstack.request.type``,
  ``loadstack.request.name``, ``loadstack.user_class`` and ``loadstack.outcome``
  (``success``/``failure``);
* ``loadstack.request.duration`` (histogram, seconds, explicit bounds
  :data:`~loadstack.metrics.aggregate.BUCKETS`): the same attributes less the outcome, with the
  buckets' exemplars (trace and span id).

On when OpenTelemetry is on (``--otel``/``LOCUST_ENABLE_OPENTELEMETRY``) and
``OTEL_METRICS_EXPORTER`` (default ``otlp``) is not ``none``; the sink is
``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``, else ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/metrics``,
else the specification's default ``http://localhost:4318``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.env import Environment

from loadstack import masking, safety
from loadstack.metrics.aggregate import BUCKETS, RequestMetrics
from loadstack.settings import current

log = logging.getLogger("loadstack.metrics")
DEFAULT_ENDPOINT = "http://localhost:4318"  # the OTLP/HTTP default of the specification


def enabled(environment: Environment) -> bool:
    """OpenTelemetry is on: Locust's ``--otel`` flag (or ``LOCUST_ENABLE_OPENTELEMETRY``)."""
    return bool(getattr(environment.parsed_options, "otel", False)) or current().otel


def current_span() -> Any:
    """OpenTelemetry's ``trace.get_current_span`` (imported only when OpenTelemetry is on)."""
    from opentelemetry import trace

    return trace.get_current_span


class OtlpMetrics:
    """Pushes :class:`RequestMetrics`' merged view as cumulative OTLP metrics."""

    def __init__(self, metrics: RequestMetrics, run_id: str, profile: str, url: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.resources import Resource

        self.metrics = metrics
        self.url = url
        self.start_ns = time.time_ns()
        self.resource = Resource.create(
            {"service.name": "loadstack", "loadstack.run_id": run_id, "loadstack.profile": profile}
        )
        self.exporter = OTLPMetricExporter(endpoint=url, session=safety.sink_session(url))
        self.exports = 0

    def snapshot(self) -> Any:
        """The merged view now, as the SDK's ``MetricsData`` (cumulative since the run started)."""
        from opentelemetry.sdk.metrics import Exemplar
        from opentelemetry.sdk.metrics.export import (
            AggregationTemporality,
            Histogram,
            HistogramDataPoint,
            Metric,
            MetricsData,
            NumberDataPoint,
            ResourceMetrics,
            ScopeMetrics,
            Sum,
        )
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.metrics.sync()
        now = time.time_ns()
        mask = masking.current()
        counts, durations = [], []
        for (method, name, user_class), tally in sorted(self.metrics.requests.items()):
            attributes = {
                "loadstack.request.type": method,
                "loadstack.request.name": mask(name),
                "loadstack.user_class": user_class,
            }
            for outcome, value in (("success", tally.ok), ("failure", tally.failed)):
                counts.append(
                    NumberDataPoint({**attributes, "loadstack.outcome": outcome}, self.start_ns, now, value)
                )
            exemplars = [
                Exemplar({}, seconds, int(at * 1e9), int(span_id, 16), int(trace_id, 16))
                for _, (trace_id, span_id, seconds, at) in sorted(tally.exemplars.items())
            ]
            durations.append(
                HistogramDataPoint(
                    attributes,
                    self.start_ns,
                    now,
                    count=tally.ok + tally.failed,
                    sum=tally.seconds,
                    bucket_counts=list(tally.buckets),
                    explicit_bounds=list(BUCKETS),
                    min=None,  # type: ignore[arg-type]  # optional in OTLP; the tally keeps none
                    max=None,  # type: ignore[arg-type]
                    exemplars=exemplars,
                )
            )
        cumulative = AggregationTemporality.CUMULATIVE
        metrics = [
            Metric(
                "loadstack.requests",
                "Requests by outcome",
                "{request}",
                Sum(counts, cumulative, is_monotonic=True),
            ),
            Metric(
                "loadstack.request.duration",
                "Request duration",
                "s",
                Histogram(durations, cumulative),
            ),
        ]
        scope = InstrumentationScope("loadstack")
        return MetricsData([ResourceMetrics(self.resource, [ScopeMetrics(scope, metrics, "")], "")])

    def export(self) -> bool:
        """Send one snapshot; a sink that is down is logged, never fatal to the run."""
        from opentelemetry.sdk.metrics.export import MetricExportResult

        try:
            ok = self.exporter.export(self.snapshot(), timeout_millis=10_000) == MetricExportResult.SUCCESS
        except Exception as exc:  # the exporter's own transport errors: the run goes on
            log.warning("OTLP metrics not exported to %s: %s", masking.mask_url(self.url), exc)
            return False
        self.exports += ok
        return ok


def start(environment: Environment, metrics: RequestMetrics, run_id: str, profile: str) -> OtlpMetrics | None:
    """Master (or local runner): export every interval and once at the end (``quitting``).

    Nothing when ``OTEL_METRICS_EXPORTER`` names no ``otlp`` (``none``): exemplars stay on.
    """
    config = current()
    if "otlp" not in {e.strip().lower() for e in config.otel_metrics_exporter.split(",")}:
        return None
    url = config.otlp_url("metrics") or f"{DEFAULT_ENDPOINT}/v1/metrics"
    try:
        otlp = OtlpMetrics(metrics, run_id, profile, url)
    except ValueError as exc:  # a bad endpoint: said once, the run goes on without OTLP metrics
        log.error("OTLP metrics off: %s", exc)
        return None
    interval = config.otel_metric_export_interval / 1000.0

    def loop() -> None:
        while True:
            gevent.sleep(interval)
            otlp.export()

    exporting = gevent.spawn(loop)

    def final(**_: Any) -> None:
        exporting.kill(block=False)
        if otlp.export():
            log.info("OTLP metrics: final snapshot sent to %s", masking.mask_url(url))

    environment.events.quitting.add_listener(final)
    log.info("OTLP metrics to %s every %g s", masking.mask_url(url), interval)
    return otlp
