"""Wiring the exporter into a Locust process and serving ``/metrics`` with gevent's WSGI server."""

from __future__ import annotations

import logging
import os
from typing import Any

from gevent.pywsgi import WSGIServer
from locust.env import Environment
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app

from loadstack import runcontext
from loadstack.masking import mask_url
from loadstack.metrics import enabled
from loadstack.metrics.aggregate import RequestMetrics
from loadstack.metrics.collector import LoadstackCollector

log = logging.getLogger("loadstack.metrics")

DEFAULT_PORT = 9646


def install(environment: Environment, role: str) -> RequestMetrics | None:
    """Plugin init hook.  Workers count and report; the master (or a local runner) also serves."""
    if not enabled():
        return None
    metrics = RequestMetrics()
    ev = environment.events
    if role in ("worker", "local"):
        ev.request.add_listener(metrics.observe)
    if role == "worker":
        ev.report_to_master.add_listener(
            lambda client_id, data: data.__setitem__(metrics.REPORT_KEY, metrics.drain())
        )
        return metrics
    if role == "master":
        ev.worker_report.add_listener(lambda client_id, data: metrics.merge(data.get(metrics.REPORT_KEY, {})))
    ctx = runcontext.current()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        LoadstackCollector(environment, metrics, ctx.run_id, ctx.profile, mask_url(environment.host or ""))
    )
    environment.loadstack_metrics_registry = registry  # type: ignore[attr-defined]
    bind = os.environ.get("LOADSTACK_METRICS_BIND", "127.0.0.1")
    port = int(os.environ.get("LOADSTACK_METRICS_PORT", DEFAULT_PORT))
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
        if ctx.run_dir is not None:
            (ctx.run_dir / "metrics.prom").write_bytes(generate_latest(registry))
        server.stop(timeout=1)

    ev.quitting.add_listener(snapshot)
    return metrics
