"""Run the demo platform with uvicorn (``loadstack demo serve``)."""

from __future__ import annotations

import logging

import uvicorn

from loadstack_demo.app import create_app

log = logging.getLogger("loadstack.demo")


def serve(host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "warning") -> None:
    """Serve until SIGINT/SIGTERM (uvicorn handles both and shuts down gracefully)."""
    app = create_app()
    log.warning("demo platform on http://%s:%d (store: %s)", host, port, app.state.platform.store.kind)
    # No server pings: a load-test client reads its socket only while a task runs, so a ping
    # sent between cycles would go unanswered and close healthy connections.
    # Bounded graceful shutdown: sockets of load generators that just exited may linger.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        ws_ping_interval=None,
        timeout_graceful_shutdown=3,
    )
