"""OpenTelemetry tracing end to end: real runs export OTLP/HTTP protobuf to a local receiver
(tests/otlp_receiver.py, decoded with opentelemetry-proto) and the tests assert on what was sent."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from loadstack_demo.process import demo_platform
from tests.helpers import ROOT, loadstack, rows_by_name, summary, write_profile
from tests.otlp_receiver import OTLPReceiver

CHAINS = ROOT / "load-testing" / "chains"
CHAIN_USERS = str(ROOT / "load-testing" / "locustfiles" / "chain_users.py")
ERROR = 2  # OTLP Status.STATUS_CODE_ERROR


def otel_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "LOCUST_ENABLE_OPENTELEMETRY": "1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        **extra,
    }


@pytest.mark.slow
def test_chain_iterations_are_traces_with_a_span_per_step(tmp_path: Path) -> None:
    run_id = f"otel-flagship-{secrets.token_hex(3)}"
    profile = write_profile(
        tmp_path / "flagship.yml",
        locustfile=CHAIN_USERS,
        users=4,
        spawn_rate=4,
        run_time="10s",
        seed={"customers": 20},
        chains=[{"path": str(CHAINS / "order_pipeline.yml")}],
        wait_time={"min": 0.05, "max": 0.2},
    )
    with OTLPReceiver() as receiver:
        out = loadstack(
            "run", "--profile", str(profile), "--workers", "2", "--run-id", run_id,
            "--results-dir", str(tmp_path), env=otel_env(receiver.endpoint),
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        received = receiver.spans()
    # The load generator's spans, and the demo platform's (it continues each trace it is sent).
    spans = [s for s in received if "loadstack.role" in s["resource"]]
    platform = [s for s in received if s["resource"].get("service.name", "").startswith("loadstack-demo")]
    rows = rows_by_name(summary(tmp_path, run_id))
    roots = [s for s in spans if s["name"] == "chain order_pipeline"]
    completed = rows[("CHAIN", "order_pipeline")]["count"]
    assert completed > 0
    # Each reported iteration is one trace with its own root; an iteration the stop cut short is
    # marked, and was never reported.
    finished = [r for r in roots if not r["attributes"].get("loadstack.interrupted")]
    assert len(finished) == completed, (completed, len(finished), len(roots))
    assert len(roots) - len(finished) <= 4, "at most one iteration in flight per user at the stop"
    assert len({r["trace_id"] for r in roots}) == len(roots)
    for root in roots:
        assert root["parent_span_id"] == ""
        a = root["attributes"]
        assert a["loadstack.chain.name"] == "order_pipeline" and a["loadstack.run_id"] == run_id
        assert a["loadstack.user_class"] and a["loadstack.iteration"] >= 1
        assert root["resource"]["loadstack.run_id"] == run_id
    assert {r["resource"]["loadstack.role"] for r in roots} == {"worker"}
    by_id = {s["span_id"]: s for s in spans}
    root_ids = {r["span_id"] for r in roots}
    steps = [s for s in spans if "loadstack.chain.step" in s["attributes"] and s["name"].startswith("order_")]
    for step in steps:
        assert step["parent_span_id"] in root_ids, step
        assert by_id[step["parent_span_id"]]["trace_id"] == step["trace_id"]
    counts = Counter(s["attributes"]["loadstack.chain.step"] for s in steps)
    kinds = {"login": "HTTP", "create_order": "HTTP", "row_in_db": "SQL", "event_published": "AMQP"}
    kinds |= {"visible_in_redis": "AWAIT", "read_back": "HTTP"}
    finished_steps = Counter(
        s["attributes"]["loadstack.chain.step"]
        for s in steps
        if not s["attributes"].get("loadstack.interrupted")
    )
    for step, kind in kinds.items():
        # Exported step spans = the summary's step counts, exactly (no step repeats in this chain).
        reported = rows[(kind, f"order_pipeline/{step}")]["count"]
        assert finished_steps[step] == reported, (step, reported, finished_steps)
        assert counts[step] - reported <= 4, (step, reported, counts)  # one cut short per user at most
    # Every completed iteration: one span per step, all in its trace (interrupted ones have fewer).
    per_trace = Counter(s["trace_id"] for s in steps)
    assert max(per_trace.values()) == len(kinds)
    succeeded = completed - rows[("CHAIN", "order_pipeline")]["failures"]
    assert sum(1 for r in finished if per_trace[r["trace_id"]] == len(kinds)) == succeeded
    # One iteration's trace crosses the platform: its HTTP handler (server), the publish, the
    # consumer, PostgreSQL and Redis spans carry the iteration's trace id.
    whole = {r["trace_id"] for r in roots if per_trace[r["trace_id"]] == len(kinds)}
    crossing = Counter()
    for s in platform:
        if s["trace_id"] in whole:
            a = s["attributes"]
            crossing[
                (s["resource"]["service.name"], s["kind"], a.get("db.system.name"), a.get("messaging.system"))
            ] += 1
    seen = {(kind, db, mq) for (_, kind, db, mq) in crossing}
    server, producer, consumer = 2, 4, 5  # SpanKind in OTLP
    assert {(server, None, None), (producer, None, "rabbitmq"), (consumer, None, "rabbitmq")} <= seen, (
        crossing
    )
    assert {"postgresql", "redis"} <= {db for (_, db, _) in seen}, crossing
    assert "loadstack-demo-consumer" in {svc for (svc, *_) in crossing}, crossing
    # Protocol spans are children of their step: HTTP client spans (with the platform's traceparent),
    # PostgreSQL and RabbitMQ ones.
    http = [s for s in spans if "http.request.method" in s["attributes"]]
    assert http and all(
        by_id.get(s["parent_span_id"], {}).get("name", "").startswith("order_pipeline/") for s in http
    )
    a = http[0]["attributes"]
    assert a["server.address"] == "127.0.0.1" and a["url.full"].startswith("http://127.0.0.1:")
    assert {s["attributes"].get("http.response.status_code") for s in http} >= {200, 201}
    sql = [s for s in spans if s["attributes"].get("db.system.name") == "postgresql"]
    assert sql and "SELECT" in {s["attributes"]["db.operation.name"] for s in sql}  # (and "connect")
    assert all("%(id)s" not in json.dumps(s) for s in sql)
    amqp = [s for s in spans if s["attributes"].get("messaging.system") == "rabbitmq"]
    assert any(s["attributes"]["messaging.operation.type"] == "receive" for s in amqp)


@pytest.mark.slow
def test_protocol_spans_failures_context_and_canaries(tmp_path: Path) -> None:
    """Every protocol's semantic conventions, a failing step as an error, trace context carried into
    HTTP, AMQP and (sqlcommenter) PostgreSQL, and no canary secret in any exported byte."""
    token = f"canarytok{secrets.token_hex(6)}"
    dsnpw = f"canarypw{secrets.token_hex(6)}"
    run_id = f"otel-proto-{secrets.token_hex(3)}"
    queue = f"otel-test-{secrets.token_hex(4)}"  # not the run's own prefix: its teardown would delete it
    chain = tmp_path / "protocols.yml"
    chain.write_text(
        "name: protocols\n"
        "steps:\n"
        "  - name: status\n"
        "    http: {method: GET, path: '/api/status?api_key={{ env.SERVICE_TOKEN }}'}\n"
        "  - name: declare\n"
        f"    sql: {{query: 'SELECT 1 AS one WHERE %(x)s = %(x)s', params: {{x: '{{{{ env.SERVICE_TOKEN }}}}'}}}}\n"
        "  - name: remember\n"
        f"    redis: {{command: SET, args: ['loadtest:{run_id}:k', '{{{{ env.SERVICE_TOKEN }}}}', EX, 60]}}\n"
        "  - name: publish\n"
        f"    amqp_publish: {{exchange: '', routing_key: '{queue}', json: {{secret: '{{{{ env.SERVICE_TOKEN }}}}'}}}}\n"
        "  - name: pause\n"
        "    think: 0.01\n"
        "  - name: leak\n"
        "    http: {method: POST, path: /api/v1/forms/echo, form: {note: '{{ env.SERVICE_TOKEN }}'}}\n"
        "    expect: {json: {'$.fields.note': 'something else'}}\n"
    )
    profile = write_profile(
        tmp_path / "protocols-profile.yml",
        locustfile=CHAIN_USERS,
        user_classes={"ConfiguredChainUser": 1},
        chains=[{"path": str(chain)}],
        users=1,
        run_time="4s",
        wait_time={"min": 0.2, "max": 0.3},
        env={"SERVICE_TOKEN": token},
    )
    env = {
        "LOADSTACK_POSTGRES_DSN": f"postgresql://postgres:{dsnpw}@127.0.0.1:5432/test",
        "LOADSTACK_OTEL_SQLCOMMENTER": "1",
    }
    import kombu

    with kombu.Connection("amqp://guest:guest@127.0.0.1:5672//") as conn:
        conn.SimpleQueue(queue, queue_opts={"auto_delete": False}).close()
    try:
        with demo_platform() as url, OTLPReceiver() as receiver:
            out = loadstack(
                "run", "--profile", str(profile), "--host", url, "--workers", "1", "--run-id", run_id,
                "--results-dir", str(tmp_path), env={**otel_env(receiver.endpoint), **env},
            )  # fmt: skip
            assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]  # the leak step fails
            spans = receiver.spans()
            raw = receiver.raw_bytes()
        with kombu.Connection("amqp://guest:guest@127.0.0.1:5672//") as conn:
            message = conn.SimpleQueue(queue).get(timeout=5)
            headers = message.headers
            message.ack()
    finally:
        with kombu.Connection("amqp://guest:guest@127.0.0.1:5672//") as conn:
            conn.default_channel.queue_delete(queue)
    assert token.encode() not in raw and dsnpw.encode() not in raw
    assert token not in json.dumps(spans) and dsnpw not in json.dumps(spans)
    by_id = {s["span_id"]: s for s in spans}
    of = defaultdict(list)
    for s in spans:
        of[s["attributes"].get("loadstack.request.name") or s["name"]].append(s)
    http = of["protocols/status"][0]["attributes"]
    assert http["http.request.method"] == "GET" and http["http.response.status_code"] == 200
    assert http["server.address"] == "127.0.0.1" and "***" in http["url.full"]
    sql = of["protocols/declare"][0]["attributes"]
    assert sql["db.system.name"] == "postgresql" and sql["db.operation.name"] == "SELECT"
    assert sql["db.namespace"] == "test" and sql["server.address"] == "127.0.0.1"
    redis_span = of["protocols/remember"][0]
    assert redis_span["attributes"]["db.system.name"] == "redis" and redis_span["name"] == "SET"
    publish = of["protocols/publish"][0]
    assert publish["attributes"]["messaging.system"] == "rabbitmq" and publish["kind"] == 4  # PRODUCER
    assert publish["attributes"]["messaging.operation.type"] == "send"
    # The published message carries the publish span's context (W3C traceparent).
    assert headers["traceparent"].split("-")[1:3] == [publish["trace_id"], publish["span_id"]]
    # Every leak step that ended is an error; one the run's stop cut short is marked as such instead.
    leak_steps = [
        s for s in spans if s["name"] == "protocols/leak" and not s["attributes"].get("loadstack.interrupted")
    ]
    assert leak_steps and all(s["status_code"] == ERROR for s in leak_steps)
    assert "something else" in leak_steps[0]["status_message"]
    assert all(s["status_code"] != ERROR for s in spans if s["name"] == "protocols/status")
    root = by_id[leak_steps[0]["parent_span_id"]]
    assert root["name"] == "chain protocols" and root["status_code"] == ERROR
    assert any(e["name"] == "think" for e in root["events"])


def test_off_imports_no_opentelemetry_on_the_request_path(tmp_path: Path) -> None:
    """A run without --otel imports no OTel module while loadstack users make their requests.

    (redis-py 8 imports ``opentelemetry`` for its own optional observability when it is installed:
    that is the client library's import, not the request path's, so only what requests add counts.)
    """
    code = (
        "import sys, gevent.monkey; gevent.monkey.patch_all()\n"
        "from locust.env import Environment\n"
        "from loadstack import plugin\n"
        "from loadstack.users.redis import RedisUser\n"
        "from loadstack.users.http import HttpUser\n"
        "from loadstack.users.base import TimedClient\n"
        "env = Environment(user_classes=[RedisUser], events=__import__('locust').events)\n"
        "plugin.install(); env.events.init.fire(environment=env, runner=None, web_ui=None)\n"
        "user = RedisUser(env)\n"
        "assert user.client._tracing is None\n"
        "before = {m for m in sys.modules if m.startswith('opentelemetry')}\n"
        "user.client.set('loadtest:otel-off:k', 'v', ex=5); user.client.get('loadtest:otel-off:k')\n"
        "user.client.delete('loadtest:otel-off:k')\n"
        "after = {m for m in sys.modules if m.startswith(('opentelemetry', 'loadstack.telemetry.'))}\n"
        "print(sorted(after - before))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


class _Recorder:
    """A local HTTP server that records each request's path, headers and body (a stand-in target)."""

    def __init__(self, redirect_to: str | None = None) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if self.path.startswith("/redirect") and redirect_to:
                    self.send_response(307)
                    self.send_header("Location", redirect_to)
                    reply = b""
                elif self.path.startswith("/ws"):
                    self.send_response(400)  # no WebSocket here: the handshake fails, after its headers
                    reply = b"no"
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    reply = b"{}"
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = _answer

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


PY_LOCUSTFILE = """
from locust import constant, task

from loadstack.telemetry.spans import iteration, step
from loadstack.users.base import RequestFailure
from loadstack.users.http import HttpUser
from loadstack.users.postgres import PostgresClient
from loadstack.users.websocket import WebSocketClient


class Traced(HttpUser):
    wait_time = constant(0.2)

    def on_start(self):
        self.sql = PostgresClient(self.environment, user=self)
        self.ws = WebSocketClient(self.environment, self.host, user=self, timeout=5)
        self.n = 0

    @task
    def flow(self):
        if self.n >= 5:
            return
        self.n += 1
        with iteration(self, "pyflow", self.n):
            with step(self, "pyflow", "query"):
                row = self.sql.fetchone("current", "SELECT current_query()")
            with step(self, "pyflow", "send"):
                self.client.post("/record", json={"sql": row[0]}, name="record")
            with step(self, "pyflow", "hop"):
                self.client.get("/redirect", name="redirect")
            with step(self, "pyflow", "ws"):
                try:
                    self.ws.connect("/ws", name="ws-connect")
                except RequestFailure:
                    pass
"""


@pytest.mark.slow
def test_python_users_carry_context_to_the_target_only(tmp_path: Path) -> None:
    """The context-manager API makes one trace per iteration; traceparent reaches the target (HTTP,
    WebSocket handshake, sqlcommenter) and never the other origin a redirect leads to."""
    elsewhere = _Recorder()
    target = _Recorder(redirect_to=f"{elsewhere.url}/elsewhere")
    locustfile = tmp_path / "traced.py"
    locustfile.write_text(PY_LOCUSTFILE)
    profile = write_profile(
        tmp_path / "traced.yml",
        locustfile=str(locustfile),
        user_classes={"Traced": 1},
        users=1,
        run_time="4s",
    )
    run_id = f"otel-py-{secrets.token_hex(3)}"
    try:
        with OTLPReceiver() as receiver:
            out = loadstack(
                "run", "--profile", str(profile), "--host", target.url, "--workers", "1", "--run-id", run_id,
                "--results-dir", str(tmp_path), env=otel_env(receiver.endpoint, LOADSTACK_OTEL_SQLCOMMENTER="1"),
            )  # fmt: skip
            spans = receiver.spans()
    finally:
        target.stop()
        elsewhere.stop()
    assert out.returncode in (0, 1), out.stdout[-3000:] + out.stderr[-3000:]  # ws-connect fails by design
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["name"] == "chain pyflow"]
    assert roots and all(r["attributes"]["loadstack.user_class"] == "Traced" for r in roots)
    steps = [s for s in spans if s["attributes"].get("loadstack.chain.name") == "pyflow" and s not in roots]
    assert {s["attributes"]["loadstack.chain.step"] for s in steps} == {"query", "send", "hop", "ws"}
    assert all(by_id[s["parent_span_id"]]["name"] == "chain pyflow" for s in steps)
    # Every request the target got carries the trace context of an exported span of its trace.
    exported = {(s["trace_id"], s["span_id"]) for s in spans}
    seen = [r for r in target.requests if r[0] in ("/record", "/redirect", "/ws")]
    assert {r[0] for r in seen} == {"/record", "/redirect", "/ws"}
    for path, headers, _ in seen:
        _, trace_id, span_id, _ = headers["traceparent"].split("-")
        assert (trace_id, span_id) in exported, path
    # The WebSocket handshake span is an HTTP GET that failed (400), as an error.
    ws = [s for s in spans if s["attributes"].get("loadstack.request.name") == "ws-connect"]
    assert ws and ws[0]["attributes"]["http.request.method"] == "GET" and ws[0]["status_code"] == ERROR
    # The redirect went to another origin: it got the request, not the context.
    assert elsewhere.requests and all("traceparent" not in h for _, h, _ in elsewhere.requests)
    # sqlcommenter: PostgreSQL saw the statement with the query span's context.
    sql_seen = [json.loads(body)["sql"] for path, _, body in target.requests if path == "/record"]
    queries = {s["span_id"]: s for s in spans if s["attributes"].get("loadstack.request.name") == "current"}
    assert sql_seen and all(q.startswith("SELECT current_query() /*traceparent='00-") for q in sql_seen)
    for q in sql_seen:
        span_id = q.split("traceparent='")[1].split("'")[0].split("-")[2]
        assert span_id in queries and queries[span_id]["attributes"]["db.system.name"] == "postgresql"


def test_an_otlp_endpoint_elsewhere_is_refused_before_anything_starts(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.yml", run_time="2s", users=1)
    out = loadstack(
        "run", "--profile", str(profile), "--run-id", f"otel-refused-{secrets.token_hex(3)}",
        "--results-dir", str(tmp_path),
        env=otel_env("http://192.0.2.1:4318"),  # TEST-NET-1: never dialled, the check comes first
    )  # fmt: skip
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    assert "refusing to export telemetry" in out.stdout + out.stderr
    assert "LOADSTACK_ALLOW_OTLP" in out.stdout + out.stderr


@pytest.mark.slow
def test_grpc_export_from_gevent_workers(tmp_path: Path) -> None:
    """Locust's default OTLP protocol, gRPC, from gevent-patched Locust processes: spans arrive."""
    run_id = f"otel-grpc-{secrets.token_hex(3)}"
    profile = write_profile(
        tmp_path / "grpc.yml",
        locustfile=CHAIN_USERS,
        user_classes={"ConfiguredChainUser": 1},
        chains=[{"path": str(CHAINS / "create_order.yml")}],
        seed={"customers": 5},
        users=1,
        run_time="3s",
        wait_time={"min": 0.2, "max": 0.3},
    )
    with OTLPReceiver() as receiver:
        endpoint = receiver.start_grpc()
        env = otel_env(endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
        out = loadstack(
            "run", "--profile", str(profile), "--workers", "1", "--run-id", run_id,
            "--results-dir", str(tmp_path), env=env, timeout=240,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        spans = receiver.spans()
    roots = [s for s in spans if s["name"].startswith("chain ")]
    assert roots and all(r["resource"]["loadstack.run_id"] == run_id for r in roots)
    assert any("http.request.method" in s["attributes"] for s in spans)
