"""``--otel``: a traced side in the ``http`` and ``connectors`` benches (docs/performance.md).

The traced side is the loadstack side with tracing on as ``--otel`` gives it: a
:class:`loadstack.telemetry.spans.Tracing` whose spans pass the masking processor into a
``BatchSpanProcessor`` and the OTLP/HTTP protobuf exporter.  The spans go to a sink in another
process (:mod:`bench.otlp_sink`), so what the sink spends is not counted as the generator's; the
export's encoding and sending are (they are a traced run's cost).  The untraced loadstack side is
today's, so the pair is tracing's cost per request; the untraced side against the previous
figures is what being off costs (one ``is None`` test per request).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any


class Sink:
    """The sink's endpoint, and the tracer providers exporting to it (flushed before it stops)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.providers: list[Any] = []

    def attach(self, env: Any) -> None:
        """Tracing for ``env``'s loadstack clients, as the plugin sets it up under ``--otel``."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from loadstack import masking, plugin
        from loadstack.telemetry.setup import MaskingProcessor
        from loadstack.telemetry.spans import Tracing
        from loadstack.user_classes import UserClassStats

        provider = TracerProvider(resource=Resource.create({"service.name": "loadstack-bench"}))
        exporter = OTLPSpanExporter(endpoint=f"{self.endpoint}/v1/traces")
        provider.add_span_processor(
            MaskingProcessor(BatchSpanProcessor(exporter), masking.current(), "local")
        )
        self.providers.append(provider)
        tracing = Tracing(provider.get_tracer("loadstack"), masking.current())
        state = plugin.state(env)
        if state is None:  # a bench environment has no plugin init: give it the state init would
            state = plugin.register_state(env, plugin.PluginState(role="local", class_stats=UserClassStats()))
        state.tracing = tracing
        env.events.request.add_listener(tracing.on_request)


@contextlib.contextmanager
def sink() -> Iterator[Sink]:
    """An OTLP/HTTP endpoint in a child process that accepts and drops everything."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.otlp_sink"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())  # printed once listening: readiness, not a sleep
        found = Sink(f"http://127.0.0.1:{port}")
        yield found
        for provider in found.providers:
            provider.shutdown()  # the last spans, while the sink still listens
    finally:
        proc.terminate()
        proc.wait(timeout=10)
