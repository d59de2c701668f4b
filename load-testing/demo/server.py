"""Run the demo platform (``loadstack demo serve``) and its consumer (``loadstack demo consumer``).

Storage is chosen by ``--store`` / ``$LOADSTACK_DEMO_STORE``: ``backend``
(PostgreSQL + RabbitMQ + Redis; fail if any is unreachable), ``memory``
(process memory, HTTP-only), or ``auto`` (backend when all three answer,
else memory).  The choice and the reason are logged at start and reported
by ``GET /api/status``: never silently.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import uvicorn

from loadstack.settings import current
from loadstack_demo import faults
from loadstack_demo.app import create_app
from loadstack_demo.store import MemoryStore, Store
from loadstack_demo.tracing import OFF, Tracing, TracingMiddleware, setup

log = logging.getLogger("loadstack.demo")


def check_backends(*, postgres: bool) -> None:
    """The backends the demo connects to, through the target guard: the demo is loadstack's own
    process, so the same rule as for the load generators (``RemoteTargetError`` when refused).
    ``demo serve`` uses all three, ``demo consumer`` RabbitMQ and Redis only."""
    from loadstack import safety

    config = current()
    backends = [("RabbitMQ", config.amqp_url), ("Redis", config.redis_url)]
    if postgres:
        backends.insert(0, ("PostgreSQL", config.postgres_dsn))
    for what, url in backends:
        safety.check_target(url, allow_remote=config.allow_remote, what=what, environ=config.environ)


def make_store(kind: str, tracing: Tracing = OFF) -> tuple[Store, bool, str]:
    """(store, blocking, why) for ``memory`` | ``backend`` | ``auto``.

    ``backend`` waits up to ``$LOADSTACK_DEMO_STARTUP_WAIT`` seconds (30) for services that are
    still starting (containers), then fails; ``auto`` tries once and falls back to memory.
    """
    if kind == "memory":
        return MemoryStore(), False, "requested"
    from loadstack.masking import mask_patterns
    from loadstack_demo.backend_store import BackendStore

    config = current()
    from loadstack import safety

    try:
        check_backends(postgres=True)
    except safety.RemoteTargetError as exc:
        if kind == "backend":
            raise SystemExit(f"demo platform: {exc}") from None
        return MemoryStore(), False, f"backend refused ({exc})"
    wait = config.demo_startup_wait if kind == "backend" else 0.0
    deadline = time.monotonic() + wait
    while True:
        try:
            store = BackendStore(config.postgres_dsn, config.amqp_url, config.redis_url, tracing=tracing)
        except Exception as exc:
            if time.monotonic() < deadline:
                time.sleep(1)
                continue
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            reason = mask_patterns(f"{type(exc).__name__}: {first}")
            if kind == "backend":
                raise SystemExit(f"demo platform: backend store unavailable: {reason}") from None
            return MemoryStore(), False, f"backend unavailable ({reason})"
        return store, True, "PostgreSQL, RabbitMQ and Redis reachable"


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    store: str | None = None,
    latency_ms: float | None = None,
    slow: list[str] | None = None,
    stall: str | None = None,
    log_level: str = "warning",
    otlp_endpoint: str | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn handles both and shuts down gracefully).

    ``otlp_endpoint`` (or the OTLP variables) turns the platform's spans on; see :mod:`.tracing`.
    """
    logging.basicConfig(format="%(message)s")
    kind = store or current().demo_store
    rules = faults.from_env(latency_ms, slow)
    tracing = setup("loadstack-demo", otlp_endpoint)
    chosen, blocking, why = make_store(kind, tracing)
    app = create_app(chosen, blocking_store=blocking)
    app.state.platform.store_reason = why
    log.warning("demo platform on http://%s:%d (store: %s — %s)", host, port, chosen.kind, why)
    served: Any = app
    if rules:
        served = faults.LatencyMiddleware(app, rules)
        log.warning("demo platform: added latency %s", ", ".join(f"{r.glob} +{r.ms:g} ms" for r in rules))
    if (window := faults.stall_from_env(stall)) is not None:
        served = faults.StallMiddleware(served, window)
        log.warning(
            "demo platform: stalls for %g s, %g s after its first request (not /health)",
            window.duration_s,
            window.at_s,
        )
    if tracing.enabled:  # outermost: the server span includes any injected latency
        served = TracingMiddleware(served, tracing, port)
    # No server pings: a load-test client reads its socket only while a task runs, so a ping
    # sent between cycles would go unanswered and close healthy connections.
    # Bounded graceful shutdown: sockets of load generators that just exited may linger.
    uvicorn.run(
        served,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        ws_ping_interval=None,
        timeout_graceful_shutdown=3,
    )
    tracing.shutdown()


def consume(otlp_endpoint: str | None = None) -> None:
    from loadstack_demo.consumer import OrderConsumer

    logging.basicConfig(format="%(message)s")
    config = current()
    tracing = setup("loadstack-demo-consumer", otlp_endpoint)
    OrderConsumer(config.amqp_url, config.redis_url, tracing=tracing).run()
