"""Wiring the exporter into a Locust process and serving ``/metrics`` with gevent's WSGI server."""

from __future__ import annotations

import logging
from typing import Any

from gevent.pywsgi import WSGIServer
from locust.env import Environment
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.registry import Collector

from loadstack import runcontext, settings
from loadstack.inspect.rabbitmq import QueueSampler
from loadstack.masking import mask_url
from loadstack.metrics import enabled, otlp
from loadstack.metrics.aggregate import RequestMetrics
from loadstack.metrics.collector import LoadstackCollector, Masked

log = logging.getLogger("loadstack.metrics")


def install(
    environment: Environment,
    role: str,
    sampler: QueueSampler | None = None,
    collectors: list[Collector] | None = None,
) -> RequestMetrics | None:
    """Plugin init hook.  Workers count and report; the master (or a local runner) also serves.

    ``collectors`` add metric families of other features (e.g. dropped iterations).  With
    OpenTelemetry on, every process keeps exemplars and the master also pushes the metrics over
    OTLP (:mod:`loadstack.metrics.otlp`), with or without the Prometheus exporter.
    """
    otel = otlp.enabled(environment)
    if not enabled() and not otel:
        return None
    metrics = RequestMetrics(otlp.current_span() if otel else None)
    metrics.attach(environment, role)
    if role == "worker":
        return metrics
    ev = environment.events
    ctx = runcontext.current()
    if otel:
        otlp.start(environment, metrics, ctx.run_id, ctx.profile)
    if not enabled():
        return metrics
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        LoadstackCollector(
            environment, metrics, ctx.run_id, ctx.profile, mask_url(environment.host or ""), sampler
        )
    )
    for collector in collectors or []:
        registry.register(Masked(collector))
    config = settings.current()
    bind, port = config.metrics_bind, config.metrics_port
    try:
        server = WSGIServer((bind, port), make_wsgi_app(registry), log=None, error_log=None)
        server.start()
    except OSError as exc:
        log.error(
            "metrics exporter not started: cannot bind %s:%d (%s); set LOADSTACK_METRICS_PORT",
            bind,
            port,
            exc,
        )
        return metrics
    log.info("Prometheus metrics on http://%s:%d/metrics", bind, port)

    def snapshot(**_: Any) -> None:
        # The final state of every series, next to the run's other results.
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        (ctx.run_dir / "metrics.prom").write_bytes(generate_latest(registry))
        server.stop(timeout=1)

    ev.quitting.add_listener(snapshot)
    return metrics
