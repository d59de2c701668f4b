"""Teardown after a run: delete everything tagged with its run id.

What carries a run id, and how it is found:

* PostgreSQL: every table (outside the system schemas) with a ``run_id``
  column; rows are deleted, tables referencing others first.
* Redis: keys named ``loadtest:{run_id}:…`` (SCAN) and the keys listed in the
  index set ``loadtest:{run_id}:keys`` (keys the platform wrote under other
  names, such as the demo's ``order:{id}``).
* RabbitMQ: queues named ``loadtest.{run_id}.…`` (the run's own queues, listed
  via the management API or ``rabbitmqctl``) are deleted.  Messages the run
  left in the platform's *shared* queues are not touched: taking them off
  would mean getting every message of the queue unacked and requeueing the
  others, which hides them from live consumers meanwhile and counts toward a
  quorum queue's delivery limit.  Instead teardown marks the run as ended
  (``loadtest:ended:{run_id}`` in Redis, see :func:`mark_ended`) and the
  platform's consumer drops a message whose ``x-loadstack-run-id`` names an
  ended run (the demo's consumer does; see docs/chains.md for the contract).

Every part is idempotent; an unreachable backend is skipped and reported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import amqp
import psycopg2
import redis

from loadstack import safety, settings
from loadstack.inspect.rabbitmq import InspectError, QueueInspector
from loadstack.masking import mask_patterns

RUN_ID_HEADER = "x-loadstack-run-id"


@dataclass
class TeardownReport:
    deleted: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        parts = [f"{k} {v}" for k, v in self.deleted.items() if v]
        text = ", ".join(parts) or "nothing to delete"
        if self.skipped:
            text += "; skipped: " + "; ".join(f"{k} ({v})" for k, v in self.skipped.items())
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "skipped": self.skipped}


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return mask_patterns(f"{type(exc).__name__}: {text}")


# -- PostgreSQL ---------------------------------------------------------------------------------
def _run_id_tables(cur: Any) -> list[str]:
    cur.execute(
        """SELECT format('%I.%I', c.table_schema, c.table_name)
           FROM information_schema.columns c JOIN information_schema.tables t
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name
           WHERE c.column_name = 'run_id' AND t.table_type = 'BASE TABLE'
             AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
           ORDER BY 1"""
    )
    return [r[0] for r in cur.fetchall()]


def postgres_teardown(dsn: str, run_id: str) -> dict[str, int]:
    deleted: dict[str, int] = {}
    with contextlib.closing(psycopg2.connect(dsn, connect_timeout=3)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            pending = _run_id_tables(cur)
            # Rows referenced by another table's rows fail with a foreign-key error until the
            # referencing rows are gone: retry until a pass makes no progress.
            while pending:
                failed = []
                for table in pending:
                    try:
                        cur.execute(f"DELETE FROM {table} WHERE run_id = %s", (run_id,))
                        if cur.rowcount:
                            deleted[table] = deleted.get(table, 0) + cur.rowcount
                    except psycopg2.errors.ForeignKeyViolation:
                        failed.append(table)
                if len(failed) == len(pending):
                    raise RuntimeError(f"cannot delete run rows from {', '.join(failed)}: foreign keys")
                pending = failed
    return deleted


def postgres_remaining(dsn: str, run_id: str) -> dict[str, int]:
    left: dict[str, int] = {}
    with contextlib.closing(psycopg2.connect(dsn, connect_timeout=3)) as conn, conn.cursor() as cur:
        for table in _run_id_tables(cur):
            cur.execute(f"SELECT count(*) FROM {table} WHERE run_id = %s", (run_id,))
            if n := cur.fetchone()[0]:
                left[table] = n
    return left


# -- Redis ---------------------------------------------------------------------------------------
def _redis_keys(client: redis.Redis, run_id: str) -> set[bytes]:
    keys = set(client.scan_iter(match=f"loadtest:{run_id}:*", count=500))
    index = f"loadtest:{run_id}:keys".encode()
    if index in keys or client.exists(index):
        keys |= {k for k in client.smembers(index)}
        keys.add(index)
    return keys


def redis_teardown(url: str, run_id: str) -> int:
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)
    keys = sorted(_redis_keys(client, run_id))
    deleted = 0
    for i in range(0, len(keys), 500):
        deleted += client.delete(*keys[i : i + 500])
    return deleted


def redis_remaining(url: str, run_id: str) -> int:
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)
    return sum(1 for k in _redis_keys(client, run_id) if client.exists(k))


# -- RabbitMQ ------------------------------------------------------------------------------------
def _run_queues(inspector: QueueInspector, run_id: str) -> list[str] | None:
    listed = inspector.list_queues()
    if listed is None:
        return None
    return [q["name"] for q in listed if q["name"].startswith(f"loadtest.{run_id}.")]


def rabbitmq_teardown(url: str, run_id: str) -> dict[str, int]:
    counts = {"queues": 0}
    with QueueInspector(url, allow_remote=True, queue_type="classic") as inspector:
        conn = inspector.connection()
        for name in _run_queues(inspector, run_id) or []:
            channel = conn.channel()
            with contextlib.suppress(amqp.exceptions.NotFound):
                channel.queue_delete(name)
                counts["queues"] += 1
            with contextlib.suppress(Exception):
                channel.close()
    return counts


def rabbitmq_remaining(url: str, run_id: str, shared_queues: Sequence[str] = ()) -> dict[str, int]:
    """The run's own queues left, and (for tests) its messages still waiting in ``shared_queues``.

    Counting messages peeks them (get + requeue): fine for a test's own queue, not for a live one.
    """
    left = {"queues": 0, "messages": 0}
    with QueueInspector(url, allow_remote=True, queue_type="classic") as inspector:
        left["queues"] = len(_run_queues(inspector, run_id) or [])
        for queue in shared_queues:
            try:
                depth = inspector.info(queue).messages
                peeked = inspector.peek(queue, depth) if depth else []
            except InspectError:
                continue
            left["messages"] += sum(1 for m in peeked if m.headers.get(RUN_ID_HEADER) == run_id)
    return left


# -- the ended-run marker ----------------------------------------------------------------------------
ENDED_TTL_S = 7 * 24 * 3600


def ended_key(run_id: str) -> str:
    """Set by teardown: messages of this run still in shared queues are the platform's to drop."""
    return f"loadtest:ended:{run_id}"


def mark_ended(url: str, run_id: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)
    client.set(ended_key(run_id), "1", ex=ENDED_TTL_S)


def reopen(run_id: str, config: settings.Settings | None = None, *, allow_remote: bool = False) -> bool:
    """A run id used again (``--run-id``, a seed-only run reused) is live again: its messages count.

    Best effort: a platform without Redis has no marker to clear.  True when one was cleared."""
    config = config or settings.current()
    try:
        safety.check_target(config.redis_url, allow_remote=allow_remote, what="redis", environ=config.environ)
        client = redis.Redis.from_url(config.redis_url, socket_timeout=2, socket_connect_timeout=1)
        return bool(client.delete(ended_key(run_id)))
    except (safety.RemoteTargetError, OSError, redis.RedisError):
        return False


# -- all together ----------------------------------------------------------------------------------
def teardown(
    run_id: str,
    config: settings.Settings | None = None,
    *,
    allow_remote: bool = False,
) -> TeardownReport:
    """Delete what carries ``run_id`` and mark the run ended (see the module docstring)."""
    config = config or settings.current()
    report = TeardownReport()
    dsn, amqp_url, redis_url = config.postgres_dsn, config.amqp_url, config.redis_url
    for what, url in (("postgres", dsn), ("redis", redis_url), ("rabbitmq", amqp_url)):
        try:
            safety.check_target(url, allow_remote=allow_remote, what=what, environ=config.environ)
        except safety.RemoteTargetError as exc:
            report.skipped[what] = str(exc)
            continue
        try:
            if what == "postgres":
                for table, n in postgres_teardown(dsn, run_id).items():
                    report.deleted[f"{table} rows"] = n
            elif what == "redis":
                report.deleted["redis keys"] = redis_teardown(redis_url, run_id)
                mark_ended(redis_url, run_id)
            else:
                report.deleted["rabbitmq queues"] = rabbitmq_teardown(amqp_url, run_id)["queues"]
        except (
            OSError,
            psycopg2.Error,
            redis.RedisError,
            amqp.exceptions.AMQPError,
            InspectError,
            RuntimeError,
        ) as exc:
            report.skipped[what] = _why(exc)
    return report


def remaining(
    run_id: str, config: settings.Settings | None = None, shared_queues: Sequence[str] = ()
) -> dict[str, Any]:
    """What still carries ``run_id`` (empty dicts/zeros after a successful teardown)."""
    config = config or settings.current()
    dsn, amqp_url, redis_url = config.postgres_dsn, config.amqp_url, config.redis_url
    return {
        "postgres": postgres_remaining(dsn, run_id),
        "redis_keys": redis_remaining(redis_url, run_id),
        "rabbitmq": rabbitmq_remaining(amqp_url, run_id, shared_queues),
    }
