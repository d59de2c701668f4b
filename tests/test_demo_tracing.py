"""The demo platform continues a caller's trace through its pipeline (issue 24, item 4).

Real processes: ``loadstack demo serve --store backend`` and ``loadstack demo consumer`` on the
machine's PostgreSQL and Redis and a RabbitMQ vhost of the test's own (so no other consumer of
``demo.orders`` takes the message), exporting to a local OTLP receiver that decodes with the
official protobuf messages.  The test sends requests with a ``traceparent`` it made itself.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
import redis

from loadstack.processes import free_port
from loadstack_demo.backend_store import order_key, run_index_key
from tests.helpers import ROOT, private_vhost
from tests.otlp_sink import OtlpSink, Span, wait_for

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # opentelemetry.proto.trace.v1.Span.SpanKind
ERROR = 2  # Status.STATUS_CODE_ERROR
PIPELINE = {
    "POST /api/v1/orders",
    "INSERT demo_orders",
    "publish loadstack.demo",
    "process demo.orders",
    "BATCH",
}


@pytest.fixture
def vhost() -> Iterator[str]:
    with private_vhost("lt-demotrace") as name:
        yield name


def _call(url: str, method: str, body: dict | None = None, headers: dict[str, str] | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    with urllib.request.urlopen(request, timeout=30) as resp:  # 127.0.0.1 only
        return json.loads(resp.read())


def _wait_healthy(url: str, proc: subprocess.Popen) -> None:
    def up() -> bool:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1).close()
            return True
        except OSError:
            return False

    assert wait_for(up, timeout=120), "demo platform did not answer /health"


def _traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def _one(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [(s.name, s.parent_span_id) for s in spans])
    return found[0]


@pytest.mark.slow
def test_demo_platform_continues_the_trace_through_its_pipeline(vhost: str) -> None:
    run_id = f"demotrace-{uuid.uuid4().hex[:8]}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with OtlpSink() as sink:
        env = {
            **os.environ,
            "LOADSTACK_AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",  # only the demo's own flag: it must be enough
        }
        common = dict(cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        demo = subprocess.Popen(
            [sys.executable, "-m", "loadstack", "demo", "serve", "--port", str(port), "--store", "backend",
             "--otlp-endpoint", sink.url],
            **common,
        )  # fmt: skip
        consumer = subprocess.Popen(
            [sys.executable, "-m", "loadstack", "demo", "consumer", "--otlp-endpoint", sink.url], **common
        )
        pg = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/test")
        r = redis.Redis()
        order_id = None
        try:
            _wait_healthy(url, demo)
            email = f"{run_id}@example.com"
            _call(f"{url}/api/v1/auth/register", "POST", {"email": email, "password": "pw-" + run_id})
            token = _call(f"{url}/api/v1/auth/login", "POST", {"email": email, "password": "pw-" + run_id})
            auth = {"Authorization": f"Bearer {token['access_token']}", "X-Loadstack-Run-Id": run_id}

            trace_id, caller_span, traceparent = _traceparent()
            order = _call(
                f"{url}/api/v1/orders",
                "POST",
                {"sku": "trace-1", "quantity": 2, "amount": 42.5},
                {**auth, "traceparent": traceparent},
            )
            order_id = order["id"]
            assert wait_for(lambda: r.exists(order_key(order_id)), timeout=120), "the consumer wrote Redis"

            def pipeline() -> list[Span]:
                spans = [s for s in sink.spans() if s.trace_id == trace_id]
                return spans if {s.name for s in spans} >= PIPELINE else []

            spans = wait_for(pipeline, timeout=60)
            assert spans, [(s.name, s.trace_id) for s in sink.spans()]
            server = _one(spans, "POST /api/v1/orders")
            insert = _one(spans, "INSERT demo_orders")
            publish = _one(spans, "publish loadstack.demo")
            process = _one(spans, "process demo.orders")
            batch = _one(spans, "BATCH")

            # The parents: the caller's span -> server -> (INSERT, publish) -> process -> Redis.
            assert server.parent_span_id == caller_span
            assert insert.parent_span_id == server.span_id
            assert publish.parent_span_id == server.span_id
            assert process.parent_span_id == publish.span_id
            assert batch.parent_span_id == process.span_id
            assert [s.kind for s in (server, insert, publish, process, batch)] == [
                SERVER, CLIENT, PRODUCER, CONSUMER, CLIENT
            ]  # fmt: skip
            assert server.resource["service.name"] == "loadstack-demo"
            assert process.resource["service.name"] == "loadstack-demo-consumer"

            # Semantic-convention attributes, per protocol.
            assert server.attributes["http.request.method"] == "POST"
            assert server.attributes["http.route"] == "/api/v1/orders"
            assert server.attributes["http.response.status_code"] == 201
            assert server.attributes["server.port"] == port
            assert insert.attributes["db.system.name"] == "postgresql"
            assert insert.attributes["db.operation.name"] == "INSERT"
            assert insert.attributes["db.collection.name"] == "demo_orders"
            assert insert.attributes["db.namespace"] == "test"
            assert publish.attributes["messaging.system"] == "rabbitmq"
            assert publish.attributes["messaging.operation.type"] == "send"
            assert publish.attributes["messaging.rabbitmq.destination.routing_key"] == "order.created"
            assert process.attributes["messaging.operation.type"] == "process"
            assert batch.attributes["db.system.name"] == "redis"
            assert batch.attributes["db.operation.batch.size"] == 2
            assert all(s.status_code != ERROR for s in spans)

            # A read: server span -> Redis HGETALL, in a second trace of the caller's.
            trace_id2, caller_span2, traceparent2 = _traceparent()
            _call(f"{url}/api/v1/orders/{order_id}", "GET", None, {**auth, "traceparent": traceparent2})
            reads = wait_for(
                lambda: [s for s in sink.spans() if s.trace_id == trace_id2 and s.name == "HGETALL"], 60
            )
            get = _one([s for s in sink.spans() if s.trace_id == trace_id2], "GET /api/v1/orders/{order_id}")
            assert get.parent_span_id == caller_span2 and reads[0].parent_span_id == get.span_id

            # A 404 is the caller's error, not the server's: the server span is not an error; an
            # unknown path has no route, so the span is named by its method alone (no id in names).
            with pytest.raises(urllib.error.HTTPError):
                _call(f"{url}/no/such/{order_id}", "GET", None, {"traceparent": _traceparent()[2]})
            unknown = wait_for(
                lambda: [s for s in sink.spans() if s.attributes.get("url.path", "").startswith("/no/")]
            )
            assert unknown[0].name == "GET" and unknown[0].status_code != ERROR

            # Statements by operation and table: no parameter is in any exported byte.
            assert not any(run_id.encode() in raw or b"trace-1" in raw for raw in sink.raw)
        finally:
            for proc in (demo, consumer):
                proc.terminate()
            out = [proc.communicate(timeout=60)[0] for proc in (demo, consumer)]
            with pg, pg.cursor() as cur:
                cur.execute("DELETE FROM demo_orders WHERE run_id = %s", (run_id,))
                cur.execute("DELETE FROM demo_users WHERE email = %s", (f"{run_id}@example.com",))
            pg.close()
            if order_id is not None:
                r.delete(order_key(order_id), run_index_key(run_id))
        assert "Traceback" not in "".join(out), out


def test_demo_platform_without_an_endpoint_makes_no_spans() -> None:
    """Tracing is off unless an endpoint is set: no tracer, no exporter module imported.

    (redis-py 8 imports the OpenTelemetry API and metrics SDK itself when they are installed, so
    the check is on what only the demo's tracing would load.)"""
    code = (
        "import sys\n"
        "from loadstack_demo import server, consumer, tracing\n"
        "assert tracing.setup('x') is tracing.OFF\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk.trace', 'opentelemetry.exporter'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.pop("LOADSTACK_DEMO_OTLP_ENDPOINT", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
