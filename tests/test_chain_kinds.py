"""Every chain step kind and control-flow option in one real Locust run against the real services."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from loadstack.processes import free_port
from tests.helpers import ROOT, loadstack, rows_by_name, summary, write_profile

pytestmark = pytest.mark.slow

KINDS = """
name: kinds
vars: {note: hello, marker: "m-{{ faker.uuid4() }}"}
steps:
  - name: fresh_marker
    redis: {command: SADD, args: ["loadtest:{{ run_id }}:markers", "{{ vars.marker }}"]}
    check: "last.value == 1 and vars.marker[:2] == 'm-'"
  - name: ws_start
    ws: {send: {cmd: start, rate: 50}, expect: "message.type == 'data'"}
    save: {first_seq: {expr: "last.message.seq"}}
  - name: ws_stop
    ws: {send: {cmd: stop}, expect: "message.type == 'ack' and message.cmd == 'stop'"}
  - name: publish
    amqp_publish:
      exchange: amq.topic
      routing_key: "loadtest.kinds.{{ user.index }}"
      json: {seq: "{{ vars.first_seq }}", user: "{{ user.index }}"}
  - name: tapped
    amqp_expect:
      exchange: amq.topic
      routing_key: "loadtest.kinds.#"
      match: "message.json.user == user.index and message.json.seq == vars.first_seq"
      timeout: 3s
  - name: cache_set
    redis: {command: SET, args: ["loadtest:{{ run_id }}:kinds:{{ user.index }}", "{{ vars.note }}", EX, 120]}
  - name: cache_get
    redis: {command: GET, args: ["loadtest:{{ run_id }}:kinds:{{ user.index }}"]}
    check: "last.value == vars.note"
  - name: one
    sql: {query: "SELECT 1 AS one, %(n)s::int AS n", params: {n: "{{ vars.first_seq }}"}}
    expect: {rows: 1}
    check: "last.rows[0].one == 1 and last.rows[0].n == vars.first_seq"
  - name: status_until_ok
    http: {path: /api/status}
    repeat: {until: "last.json.status == 'ok'", max: 3}
  - name: health_twice
    http: {path: /health}
    repeat: {times: 2}
  - name: tolerated
    http: {path: /does-not-exist}
    on_failure: continue
  - name: pause
    sleep: 10ms
  - name: ponder
    think: {min: 5ms, max: 10ms}
"""

RETRY = """
name: retry
steps:
  - name: before
    sleep: 5ms
  - name: needs_token
    http: {path: /api/v1/orders}
    expect: {status: 200}
    on_failure: {goto: before, max: 2}
"""


def test_every_step_kind_and_control_flow(tmp_path: Path) -> None:
    (tmp_path / "kinds.yml").write_text(KINDS)
    (tmp_path / "retry.yml").write_text(RETRY)
    profile = write_profile(
        tmp_path / "kinds-profile.yml",
        locustfile=str(ROOT / "load-testing/locustfiles/chain_users.py"),
        users=3,
        spawn_rate=3,
        run_time="10s",
        wait_time={"min": 0.05, "max": 0.1},
        chains=[{"path": str(tmp_path / "kinds.yml"), "weight": 3}, {"path": str(tmp_path / "retry.yml")}],
    )
    out = loadstack("run", "--profile", str(profile), "--run-id", "kinds", "--results-dir", str(tmp_path))
    assert out.returncode == 1, (
        out.stdout + out.stderr
    )  # the tolerated 404s and the retry chain fail by design
    doc = summary(tmp_path, "kinds")
    rows = rows_by_name(doc)
    kinds = rows[("CHAIN", "kinds")]
    assert kinds["count"] >= 10 and kinds["failures"] == 0, doc["errors"]
    for kind, step in [
        ("WS", "ws_start"),
        ("WS", "ws_stop"),
        ("AMQP", "publish"),
        ("AMQP", "tapped"),
        ("REDIS", "fresh_marker"),
        ("REDIS", "cache_set"),
        ("REDIS", "cache_get"),
        ("SQL", "one"),
        ("HTTP", "status_until_ok"),
        ("HTTP", "health_twice"),
    ]:
        row = rows[(kind, f"kinds/{step}")]
        assert row["count"] >= kinds["count"] and row["failures"] == 0, (step, row, doc["errors"])
    assert rows[("HTTP", "kinds/health_twice")]["count"] >= 2 * kinds["count"]
    assert rows[("WS", "kinds/ws_start/connect")]["count"] >= 1
    tolerated = rows[("HTTP", "kinds/tolerated")]
    assert tolerated["failures"] == tolerated["count"] >= kinds["count"], (
        "continue: failed but the chain went on"
    )
    retry = rows[("CHAIN", "retry")]
    attempts = rows[("HTTP", "retry/needs_token")]
    assert retry["count"] >= 1 and retry["failures"] == retry["count"]
    assert retry["count"] * 3 <= attempts["count"] <= (retry["count"] + 3) * 3, "1 try + 2 gotos per run"
    errors = " | ".join(e["error"] for e in doc["errors"] if e["name"] == "retry")
    assert "gave up after 2 × goto before" in errors and "expected status 200, observed 401" in errors, errors


def test_demo_store_fallback_is_reported_not_silent() -> None:
    closed, port = free_port(), free_port()
    env = {"LOADSTACK_POSTGRES_DSN": f"postgresql://postgres@127.0.0.1:{closed}/test"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadstack", "demo", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**__import__("os").environ, **env},
    )
    try:
        deadline = time.monotonic() + 180  # readiness, however slow the machine
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=1) as resp:
                    status = json.load(resp)
                break
            except OSError:
                assert time.monotonic() < deadline, "demo did not start"
                time.sleep(0.2)
        assert status["store"] == "memory" and "backend unavailable" in status["store_reason"]
        assert "OperationalError" in status["store_reason"]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=15)[0]
    assert "store: memory — backend unavailable (OperationalError" in output, output
    strict = loadstack("demo", "serve", "--port", str(port), "--store", "backend", env=env, timeout=60)
    assert strict.returncode != 0 and "backend store unavailable" in strict.stderr
