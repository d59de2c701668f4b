"""Chains end to end: the flagship pipeline (HTTP → PostgreSQL → RabbitMQ → Redis), consistency
failures, branching, seed/teardown and the Python API, against the real services."""

from __future__ import annotations

import os
import re
from pathlib import Path

import psycopg2
import pytest
import redis

from loadstack.data.teardown import ended_key, remaining
from loadstack.settings import Settings
from tests.helpers import (
    ROOT,
    assert_no_orphans,
    loadstack,
    private_vhost,
    rows_by_name,
    summary,
    write_profile,
)

pytestmark = pytest.mark.slow

CHAINS = ROOT / "load-testing" / "chains"
CHAIN_USERS = str(ROOT / "load-testing" / "locustfiles" / "chain_users.py")
FLAGSHIP_STEPS = ["login", "create_order", "row_in_db", "event_published", "visible_in_redis", "read_back"]


def chain_profile(tmp_path: Path, name: str, chains: list[dict], **fields) -> Path:
    settings = {
        "locustfile": CHAIN_USERS,
        "users": 6,
        "spawn_rate": 6,
        "run_time": "15s",
        "seed": {"customers": 40},
        "chains": chains,
        "wait_time": {"min": 0.05, "max": 0.2},
        **fields,
    }
    return write_profile(tmp_path / f"{name}.yml", **settings)


def assert_clean(run_id: str) -> None:
    left = remaining(run_id)
    assert left == {"postgres": {}, "redis_keys": 0, "rabbitmq": {"queues": 0, "messages": 0}}, left


def test_flagship_chain_distributed(tmp_path: Path) -> None:
    profile = chain_profile(tmp_path, "flagship", [{"path": str(CHAINS / "order_pipeline.yml")}])
    run_id = "chain-flagship"
    out = loadstack(
        "run", "--profile", str(profile), "--workers", "2", "--run-id", run_id, "--results-dir", str(tmp_path)
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "store: backend" in out.stdout and "consumer started" in out.stdout
    doc = summary(tmp_path, run_id)
    assert doc["workers"] == 2
    rows = rows_by_name(doc)
    chain = rows[("CHAIN", "order_pipeline")]
    assert chain["count"] >= 20 and chain["failures"] == 0, doc["errors"]
    kinds = {
        "login": "HTTP",
        "create_order": "HTTP",
        "row_in_db": "SQL",
        "event_published": "AMQP",
        "visible_in_redis": "AWAIT",
        "read_back": "HTTP",
    }
    for step, kind in kinds.items():
        row = rows[(kind, f"order_pipeline/{step}")]
        # Chains still in flight when the run stops have some steps but no CHAIN entry (one per user at most).
        assert chain["count"] <= row["count"] <= chain["count"] + 6 and row["failures"] == 0, row
    hop = rows[("AWAIT", "order_pipeline/visible_in_redis")]
    assert 0 < hop["avg_ms"] < chain["avg_ms"], (hop, chain)
    section = doc["chains"]["order_pipeline"]
    assert section["count"] == chain["count"] and section["success_rate"] == 1.0
    assert {"p50_ms", "p95_ms", "p99_ms", "avg_ms"} <= set(section["end_to_end"])
    assert [s["step"] for s in section["steps"] if "/" not in s["step"]] == FLAGSHIP_STEPS
    assert section["hops"][0]["step"] == "visible_in_redis" and section["hops"][0]["count"] >= chain["count"]
    assert doc["seed"]["created"] == 40
    created = rows[("HTTP", "order_pipeline/create_order")]["count"]
    # Requests cut off by the stop may have reached the platform without being recorded.
    assert created <= doc["teardown"]["deleted"]["public.demo_orders rows"] <= created + 6
    assert_clean(run_id)
    assert_no_orphans(run_id)


def test_consistency_failure_is_detected_without_the_consumer(tmp_path: Path) -> None:
    # A vhost of its own: no demo consumer of another test is on its demo.orders queue.
    with private_vhost("lt-noconsumer") as vhost:
        _consistency_failure_without_the_consumer(tmp_path, f"amqp://guest:guest@127.0.0.1:5672/{vhost}")


def _consistency_failure_without_the_consumer(tmp_path: Path, amqp_url: str) -> None:
    text = (CHAINS / "order_pipeline.yml").read_text().replace("timeout: 10s", "timeout: 2s")
    chain = tmp_path / "order_pipeline.yml"
    chain.write_text(text)
    profile = chain_profile(tmp_path, "noconsumer", [{"path": str(chain)}], users=3, run_time="8s")
    run_id = "chain-noconsumer"
    out = loadstack(
        "run",
        "--profile",
        str(profile),
        "--run-id",
        run_id,
        "--results-dir",
        str(tmp_path),
        env={"LOADSTACK_DEMO_CONSUMER": "0", "LOADSTACK_AMQP_URL": amqp_url},
    )
    assert out.returncode == 1, out.stdout + out.stderr
    doc = summary(tmp_path, run_id)
    rows = rows_by_name(doc)
    hop = rows[("AWAIT", "order_pipeline/visible_in_redis")]
    assert hop["failures"] == hop["count"] > 0
    assert rows[("CHAIN", "order_pipeline")]["failures"] > 0
    assert ("HTTP", "order_pipeline/read_back") not in rows, "on_failure: stop ends the chain"
    messages = [e["error"] for e in doc["errors"] if e["name"] == "order_pipeline/visible_in_redis"]
    assert messages and re.search(r"HGETALL order:\d+", messages[0]) and "within 2.0s" in messages[0], (
        messages
    )
    assert "last.value.status == 'processed'" in messages[0]
    # Teardown leaves the shared demo.orders alone (its live consumers keep seeing every message) and
    # marks the run ended: the platform's consumer drops this run's events when it gets to them.
    config = Settings.load({**os.environ, "LOADSTACK_AMQP_URL": amqp_url})
    assert remaining(run_id, config, shared_queues=["demo.orders"])["rabbitmq"]["messages"] > 0
    assert redis.Redis.from_url("redis://127.0.0.1:6379/0").exists(ended_key(run_id))
    assert_clean(run_id)


def test_branch_counts_follow_weights_and_skips_are_counted(tmp_path: Path) -> None:
    profile = chain_profile(
        tmp_path, "branching", [{"path": str(CHAINS / "checkout_branching.yml")}], run_time="20s"
    )
    run_id = "chain-branching"
    out = loadstack("run", "--profile", str(profile), "--run-id", run_id, "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    doc = summary(tmp_path, run_id)
    section = doc["chains"]["checkout"]
    n = section["count"]
    assert n >= 100, n
    follow = section["branches"]["follow_up"]
    assert n <= follow["payments_page"] + follow["orders_page"] <= n + 6  # + chains in flight at the stop
    share = follow["payments_page"] / n
    assert abs(share - 0.75) < 0.12, follow  # weights 3:1
    pay = section["branches"]["pay"]
    assert n <= pay["sepa"] + pay["card"] <= n + 6 and pay["sepa"] > 0 and pay["card"] > 0
    rows = rows_by_name(doc)
    bonus = rows.get(("REDIS", "checkout/loyalty_bonus"), {"count": 0})["count"]
    ran_or_skipped = section["skipped"]["loyalty_bonus"] + bonus
    assert n <= ran_or_skipped <= n + 6, "every run either skipped or ran the bonus step"
    assert section["skipped"]["loyalty_bonus"] > bonus, "most customers are not enterprise"
    assert_clean(run_id)


def test_seed_only_then_reuse_run_id_then_teardown(tmp_path: Path) -> None:
    profile = chain_profile(
        tmp_path, "seeded", [{"path": str(CHAINS / "order_pipeline.yml")}], users=2, run_time="5s"
    )
    run_id = "chain-seed-reuse"
    args = ["run", "--profile", str(profile), "--run-id", run_id, "--results-dir", str(tmp_path)]
    first = loadstack(*args, "--scenario", "seed-only")
    assert first.returncode == 0 and "seed: 40 created, 0 already there" in first.stdout, (
        first.stdout + first.stderr
    )
    again = loadstack(*args, "--scenario", "seed-only")
    assert again.returncode == 0 and "seed: 0 created, 40 already there" in again.stdout, again.stdout
    with psycopg2.connect("postgresql://postgres@127.0.0.1:5432/test") as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM demo_users WHERE run_id = %s", (run_id,))
        assert cur.fetchone()[0] == 40, "seeding twice with one run id creates the accounts once"
    conn.close()
    run = loadstack(*args, "--skip-seed")
    assert run.returncode == 0, run.stdout + run.stderr
    assert rows_by_name(summary(tmp_path, run_id))[("CHAIN", "order_pipeline")]["failures"] == 0
    assert_clean(run_id)
    assert_no_orphans(run_id)


def test_python_api_runs_the_flagship_with_the_same_stat_names(tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path / "python.yml",
        locustfile=str(ROOT / "load-testing/locustfiles/chain_python_users.py"),
        users=3,
        spawn_rate=3,
        run_time="8s",
        seed={"customers": 20},
        user_classes={"OrderPipelineUser": 1},
        wait_time={"min": 0.05, "max": 0.2},
    )
    run_id = "chain-python"
    out = loadstack("run", "--profile", str(profile), "--run-id", run_id, "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    doc = summary(tmp_path, run_id)
    names = {(r["type"], r["name"]) for r in doc["requests"] if r["name"].startswith("order_pipeline")}
    expected = (
        {("CHAIN", "order_pipeline")}
        | {
            (k, f"order_pipeline/{s}")
            for s, k in zip(FLAGSHIP_STEPS, ["HTTP", "HTTP", "SQL", "AMQP", "AWAIT", "HTTP"], strict=True)
        }
        | {("AMQP", "order_pipeline/event_published/tap")}
    )
    assert names == expected
    assert doc["totals"]["failures"] == 0
    assert_clean(run_id)
