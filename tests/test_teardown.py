"""Teardown never takes messages off a shared queue: it marks the run ended and the consumer drops them;
and it deletes rows only from the tables declared for the run, never from a table it did not write.

Runs in a RabbitMQ vhost of its own (real broker, real demo consumer process), so the machine's
`demo.orders` and anything else using it are untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kombu
import psycopg2
import pytest
import redis

from loadstack import exitcodes
from loadstack.data.teardown import Plan, ended_key, remaining, reopen, teardown, teardown_for_run_id
from loadstack.processes import free_port
from loadstack.settings import Settings
from loadstack_demo.backend_store import order_key, run_index_key
from loadstack_demo.events import EXCHANGE, ORDERS_QUEUE, RUN_ID_HEADER, declare
from tests.helpers import ROOT, loadstack, private_vhost, summary, write_profile

MESSAGES_PER_RUN = 500


@pytest.fixture
def vhost() -> Iterator[str]:
    with private_vhost("lt-teardown") as name:
        yield name


def _depth(conn: kombu.Connection) -> tuple[int, int]:
    _, messages, consumers = conn.default_channel.queue_declare(ORDERS_QUEUE.name, passive=True)
    return messages, consumers


@pytest.mark.slow
def test_teardown_never_takes_messages_off_a_shared_queue(vhost: str) -> None:
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    ended, live = f"td-ended-{uuid.uuid4().hex[:6]}", f"td-live-{uuid.uuid4().hex[:6]}"
    base_id = 900_000_000 + int(uuid.uuid4().int % 1_000_000) * 1000
    ids = {
        run: [base_id + offset + i for i in range(MESSAGES_PER_RUN)]
        for run, offset in ((ended, 0), (live, 500))
    }
    r = redis.Redis()
    with kombu.Connection(amqp_url, transport_options={"confirm_publish": True}) as conn:
        declare(conn)
        producer = kombu.Producer(conn.default_channel, exchange=EXCHANGE)
        for run, order_ids in ids.items():
            for order_id in order_ids:
                event = {"id": order_id, "sku": "probe-x1", "quantity": 1, "amount": 12.5, "currency": "EUR"}
                producer.publish(
                    json.dumps(event), routing_key="order.created", content_type="application/json",
                    headers={RUN_ID_HEADER: run},
                )  # fmt: skip
        assert _depth(conn) == (2 * MESSAGES_PER_RUN, 0)

        config = Settings.load({**os.environ, "LOADSTACK_AMQP_URL": amqp_url})
        started = time.perf_counter()
        report = teardown(ended, config)
        took_ms = (time.perf_counter() - started) * 1000
        print(f"teardown with {2 * MESSAGES_PER_RUN} messages queued: {took_ms:.0f} ms")
        assert not report.skipped, report.skipped
        assert _depth(conn) == (2 * MESSAGES_PER_RUN, 0), "teardown took nothing off the shared queue"
        assert r.exists(ended_key(ended)) and not r.exists(ended_key(live))

        consumer = subprocess.Popen(
            [sys.executable, "-m", "loadstack", "demo", "consumer"], cwd=ROOT, text=True,
            env={**os.environ, "LOADSTACK_AMQP_URL": amqp_url}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while _depth(conn)[0] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _depth(conn)[0] == 0, "the consumer worked through the queue"
        finally:
            consumer.terminate()
            output, _ = consumer.communicate(timeout=30)
    try:
        assert f"({MESSAGES_PER_RUN} of ended runs dropped)" in output, output
        assert all(r.exists(order_key(i)) for i in ids[live]), "the live run's messages were processed"
        assert not any(r.exists(order_key(i)) for i in ids[ended]), "the ended run's messages were dropped"
        assert not r.exists(run_index_key(ended)), "nothing re-created after teardown"
    finally:
        r.delete(*[order_key(i) for run in ids for i in ids[run]], run_index_key(live), ended_key(ended))


def test_a_reused_run_id_is_live_again() -> None:
    """A run id torn down before and used again: the master clears the marker, so the consumer keeps
    the new run's messages (the flagship test reuses its run id and needs every order processed)."""
    run_id = f"td-reuse-{uuid.uuid4().hex[:6]}"
    config = Settings.load({"LOADSTACK_REDIS_URL": "redis://127.0.0.1:6379/0"})
    r = redis.Redis.from_url(config.redis_url)
    try:
        teardown(run_id, config)
        assert r.exists(ended_key(run_id))
        assert reopen(run_id, config) and not r.exists(ended_key(run_id))
        assert not reopen(run_id, config), "nothing to clear the second time"
    finally:
        r.delete(ended_key(run_id))


# -- teardown owns only what it wrote (issue 27, finding 7) ---------------------------------------
SERVER = "postgresql://postgres@127.0.0.1:5432"
HTTP_USERS = str(ROOT / "load-testing" / "locustfiles" / "http_users.py")
DEMO_TABLES = {"public.demo_users", "public.demo_orders", "public.demo_payments"}


@dataclass
class TargetDatabase:
    """A database of the real PostgreSQL for one test: the demo platform and teardown use it (so
    the tables below never meet other processes' teardowns on the shared `test` database)."""

    dsn: str
    tables: dict[str, str]  # run_id type -> a table loadstack never wrote

    def sql(self, query: str, *args: object) -> list[tuple]:
        return _pg(self.dsn, query, *args)

    def their_rows(self) -> dict[str, int]:
        return {kind: self.sql(f"SELECT count(*) FROM {table}")[0][0] for kind, table in self.tables.items()}


def _pg(dsn: str, query: str, *args: object) -> list[tuple]:
    with contextlib.closing(psycopg2.connect(dsn)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else []


@pytest.fixture
def target_db() -> Iterator[TargetDatabase]:
    """Two tables loadstack never wrote, each with a ``run_id`` column (text, integer).  Their
    names sort before the demo's tables: the old teardown reached them first."""
    name = f"lt_teardown_{uuid.uuid4().hex[:8]}"
    _pg(f"{SERVER}/test", f"CREATE DATABASE {name}")
    db = TargetDatabase(f"{SERVER}/{name}", {"text": "a_unrelated_text", "integer": "a_unrelated_int"})
    try:
        for kind, table in db.tables.items():
            db.sql(f"CREATE TABLE {table} (id serial PRIMARY KEY, run_id {kind} NOT NULL, note text)")
        yield db
    finally:
        _pg(f"{SERVER}/test", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# The seeded runs' own database numbers its orders from 1, as a fresh CI database does: their
# demo pipeline gets a vhost and a Redis database of its own, or its order:{id} keys would be
# another shard's orders (overwritten, then deleted by this run's teardown).
SEEDED_REDIS_URL = "redis://127.0.0.1:6379/11"


def _seeded_run(tmp_path: Path, run_id: str, db: TargetDatabase, vhost: str, **profile: object):
    numeric = run_id.isdigit()
    db.sql(
        f"INSERT INTO {db.tables['text']} (run_id, note) VALUES (%s, 'theirs'), (%s, 'theirs')",
        run_id,
        run_id,
    )
    db.sql(
        f"INSERT INTO {db.tables['integer']} (run_id, note) VALUES (%s, 'theirs')",
        int(run_id) if numeric else 7,
    )
    path = write_profile(
        tmp_path / "seeded.yml",
        locustfile=HTTP_USERS,
        user_classes={"OrderUser": 1},
        wait_time={"min": 0.1, "max": 0.3},
        run_time="3s",
        seed={"customers": 10},
        **profile,
    )
    out = loadstack(
        "run", "--profile", str(path), "--workers", "1", "--run-id", run_id, "--results-dir", str(tmp_path),
        env=_seeded_env(db, vhost), timeout=240,
    )  # fmt: skip
    assert "store: backend" in out.stdout, out.stdout[-3000:] + out.stderr[-2000:]
    return out, summary(tmp_path, run_id)


def _seeded_env(db: TargetDatabase, vhost: str) -> dict[str, str]:
    return {
        "LOADSTACK_POSTGRES_DSN": db.dsn,
        "LOADSTACK_AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "LOADSTACK_REDIS_URL": SEEDED_REDIS_URL,
    }


@pytest.mark.slow
@pytest.mark.parametrize("run_id", ["77001234", "td-owned-run"])
def test_teardown_touches_only_the_tables_the_run_declared(
    tmp_path: Path, target_db: TargetDatabase, vhost: str, run_id: str
) -> None:
    """A numeric run id used to delete the integer table's row (and the text table's); a text run
    id made the integer table's cast fail before the demo's tables were reached, so the seed rows
    stayed while the run exited 0."""
    out, doc = _seeded_run(tmp_path, run_id, target_db, vhost)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert doc["seed"]["created"] == 10
    assert target_db.their_rows() == {"text": 2, "integer": 1}, "rows loadstack never wrote are untouched"
    seeded = target_db.sql("SELECT count(*) FROM demo_users WHERE run_id = %s", run_id)[0][0]
    assert seeded == 0, "the seed rows are gone"
    assert doc["teardown"]["left"] == {} and doc["teardown"]["deleted"]["public.demo_users rows"] >= 10
    assert set(doc["teardown"]["deleted"]) <= {f"{t} rows" for t in DEMO_TABLES} | {
        "redis keys",
        "rabbitmq queues",
    }
    metadata = json.loads((tmp_path / run_id / "run-metadata.json").read_text())
    assert metadata["teardown"]["postgres_tables"] == ["demo_users", "demo_orders", "demo_payments"]
    config = Settings.load({**os.environ, **_seeded_env(target_db, vhost)})
    assert remaining(run_id, config)["postgres"] == {
        f"public.{target_db.tables['text']}": 2,
        **({f"public.{target_db.tables['integer']}": 1} if run_id.isdigit() else {}),
    }


@pytest.mark.slow
def test_a_declared_table_of_the_wrong_type_fails_the_run(
    tmp_path: Path, target_db: TargetDatabase, vhost: str
) -> None:
    """Declared by mistake: an integer run_id is an error naming the table (exit 5), not a skip;
    the table is not touched and the rest of teardown still happens."""
    run_id = "td-wrong-type"
    out, doc = _seeded_run(
        tmp_path, run_id, target_db, vhost, teardown={"tables": [target_db.tables["integer"]]}
    )
    assert out.returncode == exitcodes.TEARDOWN_FAILED, out.stdout[-3000:] + out.stderr[-2000:]
    left = doc["teardown"]["left"]
    assert list(left) == [f"postgres {target_db.tables['integer']}"] and "is integer, not text" in str(left)
    assert doc["outcome"] == {"verdict": "teardown failed", "exit_code": exitcodes.TEARDOWN_FAILED}
    assert "teardown could not finish; left on the target" in out.stdout
    assert target_db.tables["integer"] in out.stdout
    assert target_db.their_rows() == {"text": 2, "integer": 1}
    assert target_db.sql("SELECT count(*) FROM demo_users WHERE run_id = %s", run_id)[0][0] == 0


def test_a_backend_lost_after_the_start_is_data_left(tmp_path: Path) -> None:
    """PostgreSQL answered when the run started and not at teardown: what was declared there is left
    (the run fails); one that never answered could not receive anything and is only skipped."""
    closed = free_port()
    config = Settings.load(
        {**os.environ, "LOADSTACK_POSTGRES_DSN": f"postgresql://postgres@127.0.0.1:{closed}/test"}
    )
    lost = teardown(
        "td-lost", config, plan=Plan(["demo_users"], {"postgres": True, "redis": True, "rabbitmq": True})
    )
    assert not lost.ok and "demo_users" in lost.left["postgres"], lost
    never = teardown(
        "td-lost", config, plan=Plan(["demo_users"], {"postgres": False, "redis": True, "rabbitmq": True})
    )
    assert never.ok and "postgres" in never.skipped, never
    # A launcher tearing down after its master died reads the plan the master recorded.
    (tmp_path / "run-metadata.json").write_text(json.dumps({"teardown": lost_plan_dict()}))
    after = teardown_for_run_id("td-lost", tmp_path, config)
    assert not after.ok and "demo_users" in after.left["postgres"]
    redis.Redis().delete(ended_key("td-lost"))


def lost_plan_dict() -> dict[str, object]:
    return Plan(["demo_users"], {"postgres": True, "redis": True, "rabbitmq": True}).as_dict()


BAD_DECLARATION = """
from locust import User, constant, task


class Writer(User):
    wait_time = constant(1)
    teardown_tables = ("orders; DROP TABLE x",)

    @task
    def nothing(self):
        pass
"""


def test_a_bad_table_declaration_is_bad_input(tmp_path: Path) -> None:
    """A declared name is used in SQL: anything but a plain (schema.)table name stops the run
    before the target starts (exit 2, naming the class)."""
    locustfile = tmp_path / "writer.py"
    locustfile.write_text(BAD_DECLARATION)
    path = write_profile(tmp_path / "p.yml", locustfile=str(locustfile), run_time="2s")
    out = loadstack(
        "run", "--profile", str(path), "--run-id", "td-bad-decl", "--results-dir", str(tmp_path / "r")
    )
    assert out.returncode == exitcodes.BAD_INPUT, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Writer.teardown_tables: 'orders; DROP TABLE x' is not a table name" in out.stderr, out.stderr
    assert "demo platform" not in out.stdout and not (tmp_path / "r" / "td-bad-decl").exists()
