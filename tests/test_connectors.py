"""PostgreSQL, RabbitMQ and Redis users in real Locust runs against the real servers, faults included."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from loadstack.processes import free_port
from tests.helpers import (
    LOCUSTFILES,
    ROOT,
    PrivateRedis,
    assert_no_orphans,
    loadstack,
    private_vhost,
    rows_by_name,
    start_loadstack,
    summary,
    write_profile,
)

pytestmark = pytest.mark.slow


def _by_type(doc: dict) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in doc["requests"]:
        t = out.setdefault(row["type"], {"count": 0, "failures": 0})
        t["count"] += row["count"]
        t["failures"] += row["failures"]
    return out


def test_mixed_backend_users_run_without_failures(tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path / "backends.yml",
        locustfile=str(LOCUSTFILES / "backends_users.py"),
        users=6,
        spawn_rate=6,
        run_time="12s",
        wait_time={"min": 0.05, "max": 0.2},
        user_classes={"ShopDatabaseUser": 1, "OrderEventsUser": 1, "CacheUser": 1},
        sample_queues=["loadtest.{run_id}.orders"],
        sample_interval=1,
    )
    result = loadstack(
        "run", "--profile", str(profile), "--run-id", "backends-e2e", "--results-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    doc = summary(tmp_path, "backends-e2e")
    types = _by_type(doc)
    for kind in ("SQL", "AMQP", "REDIS"):
        assert types[kind]["count"] > 0 and types[kind]["failures"] == 0, types
    rows = rows_by_name(doc)
    assert rows[("SQL", "place order")]["count"] > 0, "transactions are timed as one request"
    assert rows[("AMQP", "round trip")]["count"] > 0
    assert rows[("REDIS", "PIPELINE checkout")]["count"] > 0
    assert {r["user_class"] for r in doc["user_classes"]} >= {
        "ShopDatabaseUser",
        "OrderEventsUser",
        "CacheUser",
    }
    sampled = doc["queues"]["loadtest.backends-e2e.orders"]
    assert len(sampled["samples"]) >= 5, "depth and consumers sampled every second while the run was active"
    assert all(depth >= 0 and consumers >= 0 for _, depth, consumers in sampled["samples"])
    assert_no_orphans("backends-e2e")


def test_connector_example_from_the_docs_runs(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "writing-connectors.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    locustfile = tmp_path / "mysql_users.py"
    locustfile.write_text(code)
    profile = write_profile(tmp_path / "mysql.yml", locustfile=str(locustfile), users=3, run_time="6s")
    result = loadstack(
        "run", "--profile", str(profile), "--run-id", "mysql-doc", "--results-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = rows_by_name(summary(tmp_path, "mysql-doc"))
    assert rows[("MYSQL", "stock level")]["count"] > 0
    assert rows[("MYSQL", "connect")]["count"] == 3


def test_servers_down_at_start_are_failures_not_crashes(tmp_path: Path) -> None:
    closed = free_port()
    env = {
        "LOADSTACK_POSTGRES_DSN": f"postgresql://postgres@127.0.0.1:{closed}/test",
        "LOADSTACK_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{closed}//",
        "LOADSTACK_REDIS_URL": f"redis://127.0.0.1:{closed}/0",
    }
    profile = write_profile(
        tmp_path / "down.yml",
        locustfile=str(LOCUSTFILES / "backends_users.py"),
        users=3,
        run_time="8s",
        user_classes={"ShopDatabaseUser": 1, "OrderEventsUser": 1, "CacheUser": 1},
    )
    # Unreachable backends do not hang the run: it ends as scheduled (the CLI's timeout catches a hang).
    result = loadstack(
        "run", "--profile", str(profile), "--run-id", "down-e2e", "--results-dir", str(tmp_path), env=env
    )
    assert result.returncode == 1, result.stdout + result.stderr
    doc = summary(tmp_path, "down-e2e")
    assert doc["end_reason"] == "completed" and doc["duration_s"] >= 7
    errors = " | ".join(e["error"] for e in doc["errors"])
    types = _by_type(doc)
    for kind in ("SQL", "AMQP", "REDIS"):
        assert types[kind]["failures"] > 0, types
    assert "OperationalError" in errors and "refused" in errors.lower(), errors
    # Backoff: a dead server is retried gently, not in a tight loop.
    assert doc["totals"]["failures"] < 3 * 8 * 15, doc["totals"]
    assert_no_orphans("down-e2e")


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results_stats_history.csv") as fh:
        return list(csv.DictReader(fh))


def _recovered(history: list[dict[str, str]], kind: str, fault_end: float) -> tuple[int, int, int]:
    """(failures before+during the fault, failures after fault_end+5s, requests after fault_end+5s) for a type."""
    per_second: dict[int, dict[str, int]] = {}
    for row in history:
        if row["Type"] != kind:
            continue
        t = int(row["Timestamp"])
        bucket = per_second.setdefault(t, {"requests": 0, "failures": 0})
        bucket["requests"] += int(row["Total Request Count"])
        bucket["failures"] += int(row["Total Failure Count"])
    times = sorted(per_second)
    at = [t for t in times if t >= fault_end + 5]
    assert at, f"no {kind} history after the fault"
    first, last = per_second[at[0]], per_second[times[-1]]
    return first["failures"], last["failures"] - first["failures"], last["requests"] - first["requests"]


def test_faults_mid_run_users_reconnect_within_five_seconds(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None or shutil.which("rabbitmqctl") is None:
        pytest.fail("redis-server and rabbitmqctl are needed (infra/dev/ensure-services.sh installs them)")
    with private_vhost("lt-faults") as vhost:
        _faults_mid_run(tmp_path, vhost)


def _faults_mid_run(tmp_path: Path, vhost: str) -> None:
    redis_server = PrivateRedis(free_port())
    redis_server.start()
    run_id = "faults-e2e"
    profile = write_profile(
        tmp_path / "faults.yml",
        locustfile=str(LOCUSTFILES / "backends_users.py"),
        users=6,
        spawn_rate=6,
        # Room for the three faults (rabbitmqctl alone takes seconds on a busy machine) and 5 s after each.
        run_time="60s",
        wait_time={"min": 0.05, "max": 0.15},
        user_classes={"ShopDatabaseUser": 1, "OrderEventsUser": 1, "CacheUser": 1},
    )
    proc = start_loadstack(
        "run", "--profile", str(profile), "--workers", "2", "--run-id", run_id, "--results-dir", str(tmp_path),
        env={"LOADSTACK_REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0",
             "LOADSTACK_AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}"},
    )  # fmt: skip
    output: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "requests=" in line and "requests=0 " not in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(240), "".join(output)
        time.sleep(3)
        # 1. Redis restarted (down for ~1 s).
        redis_server.stop()
        time.sleep(1)
        redis_server.start()
        redis_back = time.time()
        time.sleep(6)
        # 2. Every RabbitMQ connection of the run (its own vhost) forcibly closed by the broker.
        subprocess.run(
            ["rabbitmqctl", "close_all_connections", "--vhost", vhost, "loadstack fault test"],
            check=True, capture_output=True,
        )  # fmt: skip
        amqp_back = time.time()
        time.sleep(6)
        # 3. The run's PostgreSQL backends killed.
        with psycopg2.connect("postgresql://postgres@127.0.0.1:5432/test") as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                (f"loadstack-{run_id}",),
            )
            killed = cur.fetchone()[0]
        conn.close()
        sql_back = time.time()
        assert killed >= 1
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
        redis_server.stop()
    reader.join(5)
    assert code == 1, "".join(output)  # failures happened, as they should
    history = _history(tmp_path / run_id)
    for kind, back in (("REDIS", redis_back), ("AMQP", amqp_back), ("SQL", sql_back)):
        failures_before, failures_after, requests_after = _recovered(history, kind, back)
        assert failures_before > 0, f"{kind}: the fault caused no failure"
        assert failures_after == 0, f"{kind}: still failing 5 s after the fault ({failures_after})"
        assert requests_after > 0, f"{kind}: no successful requests after recovery"
    assert_no_orphans(run_id)


def test_pool_saturation_shows_as_acquire_wait(tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path / "pool.yml",
        locustfile=str(LOCUSTFILES / "postgres_users.py"),
        users=8,
        spawn_rate=8,
        run_time="6s",
        workers=1,
        user_classes={"PoolSaturationUser": 1},
        env={"LOADSTACK_PG_POOL_SIZE": "2"},
    )
    result = loadstack(
        "run", "--profile", str(profile), "--run-id", "pool-e2e", "--results-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = rows_by_name(summary(tmp_path, "pool-e2e"))
    acquire, query = rows[("SQL", "pool/acquire")], rows[("SQL", "slow query")]
    # 8 users, 2 connections, 50 ms queries: most of a request's time is spent queueing for a connection.
    assert query["p50_ms"] >= 45
    assert acquire["p50_ms"] > query["p50_ms"], (acquire, query)
