"""Teardown after a run: delete what the run wrote, tagged with its run id, and nothing else.

What carries a run id, and how it is found:

* PostgreSQL: only the tables declared for the run (the profile's ``teardown: tables``, the
  target's :attr:`~loadstack.targets.Target.run_tables`, a user class's ``teardown_tables``),
  recorded in ``run-metadata.json`` when the run starts (:class:`Plan`).  A table nobody
  declared is never touched, whatever columns it has.  A declared table's ``run_id`` column must
  hold text (run ids are text): any other type, a missing column or a view is an error that
  leaves the table alone and fails the run (exit status 5), never a silent skip.  Rows are
  deleted with ``WHERE run_id = <run id>``, tables referencing others first.
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

Every part is idempotent.  What could not be removed is :attr:`TeardownReport.left` (the run's
exit status is 5 and the console names it).  A backend that did not answer when the run started
either cannot hold anything of the run: it is only *skipped*.

:func:`teardown_for_run_id` is the entry point for whoever tears a run down after the fact (a
launcher whose master died): it reads the run's recorded plan from its results directory.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import amqp
import psycopg2
import redis

from loadstack import profiles, safety, settings
from loadstack.inspect.rabbitmq import InspectError, QueueInspector
from loadstack.masking import mask_patterns

RUN_ID_HEADER = "x-loadstack-run-id"


# A declared table: the profile's own rule (plain identifiers, optionally schema-qualified), matched
# as a whole string (fullmatch: its `$` would also match before a trailing newline).
TABLE_NAME = re.compile(profiles.TABLE_NAME)
# Column types that hold loadstack's run ids as they are (text); citext compares the same way.
TEXT_TYPES = ("text", "varchar", "bpchar", "citext")
BACKENDS = ("postgres", "redis", "rabbitmq")


@dataclass
class TeardownReport:
    deleted: dict[str, int] = field(default_factory=dict)
    # Not attempted, and nothing of the run can be there (refused by the guard, or the backend
    # did not answer at the start either).
    skipped: dict[str, str] = field(default_factory=dict)
    # What teardown could not remove (or could not check): the run fails with exit status 5.
    left: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.left

    def line(self) -> str:
        parts = [f"{k} {v}" for k, v in self.deleted.items() if v]
        text = ", ".join(parts) or "nothing to delete"
        if self.skipped:
            text += "; skipped: " + "; ".join(f"{k} ({v})" for k, v in self.skipped.items())
        if self.left:
            text += "; NOT FINISHED, left: " + "; ".join(f"{k} ({v})" for k, v in self.left.items())
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "skipped": self.skipped, "left": self.left}


@dataclass
class Plan:
    """What teardown may touch, decided when the run starts and recorded in ``run-metadata.json``.

    ``answered``: which backends answered at the start (None: not known, e.g. a launcher tearing
    down after its master died, then every failure counts as data left behind).
    """

    postgres_tables: list[str] = field(default_factory=list)
    answered: dict[str, bool] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"postgres_tables": self.postgres_tables, "answered": self.answered}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        tables = [str(t) for t in data.get("postgres_tables") or [] if TABLE_NAME.fullmatch(str(t))]
        answered = data.get("answered")
        return cls(
            tables, {str(k): bool(v) for k, v in answered.items()} if isinstance(answered, dict) else None
        )


def declared_tables(run_tables: Iterable[str], user_classes: Iterable[type]) -> tuple[list[str], list[str]]:
    """The run's declared tables (run settings first, then ``teardown_tables`` of the user classes
    that run), and what is wrong with them (bad input, exit 2 before anything starts)."""
    tables: list[str] = list(run_tables)
    problems: list[str] = []
    for cls in user_classes:
        declared = getattr(cls, "teardown_tables", ()) or ()
        if isinstance(declared, str):
            declared = (declared,)
        for name in declared:
            if not isinstance(name, str) or not TABLE_NAME.fullmatch(name):
                problems.append(
                    f"{cls.__module__}.{cls.__name__}.teardown_tables: {name!r} is not a table name "
                    "(letters, digits, _ and $, optionally schema.table)"
                )
            else:
                tables.append(name)
    return list(dict.fromkeys(tables)), problems


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return mask_patterns(f"{type(exc).__name__}: {text}")


# -- PostgreSQL ---------------------------------------------------------------------------------
def _resolve(cur: Any, name: str) -> tuple[str | None, str | None]:
    """(schema-qualified name, problem) of a declared table; (None, None) when it does not exist
    (the target never created it, e.g. the demo on its in-memory store: nothing can be there)."""
    cur.execute(
        """SELECT format('%%I.%%I', n.nspname, c.relname), c.relkind, t.typname, format_type(a.atttypid, a.atttypmod)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'run_id' AND NOT a.attisdropped
           LEFT JOIN pg_type t ON t.oid = a.atttypid
           WHERE c.oid = to_regclass(%s)""",
        (name,),
    )
    row = cur.fetchone()
    if row is None:
        return None, None
    qualified, kind, typname, shown = row
    if kind not in ("r", "p"):
        return None, f"{qualified} is not a table (relkind {kind}): not touched"
    if typname is None:
        return None, f"{qualified} has no run_id column: not touched"
    if typname not in TEXT_TYPES:
        return None, (
            f"{qualified}.run_id is {shown}, not text: it cannot hold this run's id, so it is not "
            "loadstack's to delete from; not touched (declare only tables whose run_id holds run ids)"
        )
    return qualified, None


def postgres_teardown(
    dsn: str, run_id: str, tables: Sequence[str], *, allow_remote: bool = False
) -> tuple[dict[str, int], dict[str, str]]:
    """Delete the run's rows from the declared ``tables`` only: (rows deleted per table, what was left)."""
    deleted: dict[str, int] = {}
    left: dict[str, str] = {}
    with contextlib.closing(
        psycopg2.connect(safety.guarded_dsn(dsn, allow_remote=allow_remote), connect_timeout=3)
    ) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            pending: list[str] = []
            for name in tables:
                qualified, problem = _resolve(cur, name)
                if problem:
                    left[f"postgres {name}"] = problem
                elif qualified and qualified not in pending:
                    pending.append(qualified)
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
                    except psycopg2.Error as exc:
                        left[f"postgres {table}"] = _why(exc)
                if failed and len(failed) == len(pending):
                    for table in failed:
                        left[f"postgres {table}"] = (
                            "rows of other tables refer to the run's rows (foreign keys)"
                        )
                    break
                pending = failed
    return deleted, left


def postgres_remaining(dsn: str, run_id: str, tables: Sequence[str] | None = None) -> dict[str, int]:
    """Rows still tagged with ``run_id``: in ``tables``, or (None) in every table with a ``run_id``
    column, compared as text (read-only: for checks and tests, whatever the column's type)."""
    left: dict[str, int] = {}
    with (
        contextlib.closing(
            psycopg2.connect(safety.guarded_dsn(dsn, allow_remote=False), connect_timeout=3)
        ) as conn,
        conn.cursor() as cur,
    ):
        conn.autocommit = True  # a table dropped meanwhile fails its own count, not the others'
        if tables is None:
            cur.execute(
                """SELECT format('%I.%I', c.table_schema, c.table_name)
                   FROM information_schema.columns c JOIN information_schema.tables t
                     ON t.table_schema = c.table_schema AND t.table_name = c.table_name
                   WHERE c.column_name = 'run_id' AND t.table_type = 'BASE TABLE'
                     AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
                   ORDER BY 1"""
            )
            names = [r[0] for r in cur.fetchall()]
        else:
            names = [q for q in (_resolve(cur, t)[0] for t in tables) if q]
        for table in names:
            try:
                cur.execute(f"SELECT count(*) FROM {table} WHERE run_id::text = %s", (run_id,))
            except psycopg2.errors.UndefinedTable:
                continue  # dropped since it was listed (another application's table): nothing of ours
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


def redis_teardown(url: str, run_id: str, *, allow_remote: bool = False) -> int:
    client = redis.Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=3,
        **safety.redis_options(url, allow_remote=allow_remote),
    )
    keys = sorted(_redis_keys(client, run_id))
    deleted = 0
    for i in range(0, len(keys), 500):
        deleted += client.delete(*keys[i : i + 500])
    return deleted


def redis_remaining(url: str, run_id: str) -> int:
    client = redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=3, **safety.redis_options(url, allow_remote=False)
    )
    return sum(1 for k in _redis_keys(client, run_id) if client.exists(k))


# -- RabbitMQ ------------------------------------------------------------------------------------
def _run_queues(inspector: QueueInspector, run_id: str) -> list[str] | None:
    listed = inspector.list_queues()
    if listed is None:
        return None
    return [q["name"] for q in listed if q["name"].startswith(f"loadtest.{run_id}.")]


def rabbitmq_teardown(url: str, run_id: str, *, allow_remote: bool = False) -> dict[str, int]:
    """Delete the run's own queues; the management API is guarded like the broker (no switch turns it off)."""
    counts = {"queues": 0}
    with QueueInspector(url, allow_remote=allow_remote, queue_type="classic") as inspector:
        names = _run_queues(inspector, run_id) or []
        conn = inspector.connection() if names else None
        for name in names:
            assert conn is not None
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
    with QueueInspector(url, queue_type="classic") as inspector:
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


def mark_ended(url: str, run_id: str, *, allow_remote: bool = False) -> None:
    client = redis.Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=3,
        **safety.redis_options(url, allow_remote=allow_remote),
    )
    client.set(ended_key(run_id), "1", ex=ENDED_TTL_S)


def reopen(run_id: str, config: settings.Settings | None = None, *, allow_remote: bool = False) -> bool:
    """A run id used again (``--run-id``, a seed-only run reused) is live again: its messages count.

    Best effort: a platform without Redis has no marker to clear.  True when one was cleared."""
    config = config or settings.current()
    try:
        safety.check_target(config.redis_url, allow_remote=allow_remote, what="redis", environ=config.environ)
        client = redis.Redis.from_url(
            config.redis_url,
            socket_timeout=2,
            socket_connect_timeout=1,
            **safety.redis_options(config.redis_url, allow_remote=allow_remote),
        )
        return bool(client.delete(ended_key(run_id)))
    except (safety.RemoteTargetError, OSError, redis.RedisError):
        return False


# -- all together ----------------------------------------------------------------------------------
def _targets(config: settings.Settings) -> dict[str, str]:
    return {"postgres": config.postgres_dsn, "redis": config.redis_url, "rabbitmq": config.amqp_url}


def plan(
    tables: Sequence[str], config: settings.Settings | None = None, *, allow_remote: bool = False
) -> Plan:
    """The run's plan at its start: the declared tables, and which backends answer now (a backend
    that does not answer at the start cannot receive anything of the run through loadstack)."""
    config = config or settings.current()
    answered: dict[str, bool] = {}
    for what, url in _targets(config).items():
        if what == "postgres" and not tables:
            continue
        try:
            safety.check_target(url, allow_remote=allow_remote, what=what, environ=config.environ)
        except safety.RemoteTargetError:
            continue  # teardown will not go there either
        try:
            if what == "postgres":
                guarded = safety.guarded_dsn(url, allow_remote=allow_remote, environ=config.environ)
                psycopg2.connect(guarded, connect_timeout=3).close()
            elif what == "redis":
                options = safety.redis_options(url, allow_remote=allow_remote)
                redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3, **options).ping()
            else:
                # The guard stays on (an AMQP connection only: no management API call here).
                with QueueInspector(url, allow_remote=allow_remote, queue_type="classic") as inspector:
                    inspector.connection()
            answered[what] = True
        except (
            OSError,
            psycopg2.Error,
            redis.RedisError,
            amqp.exceptions.AMQPError,
            InspectError,
            safety.RemoteTargetError,
        ):
            answered[what] = False
    return Plan(list(tables), answered)


def teardown(
    run_id: str,
    config: settings.Settings | None = None,
    *,
    allow_remote: bool = False,
    plan: Plan | None = None,
) -> TeardownReport:
    """Delete what ``run_id`` wrote where ``plan`` allows, and mark the run ended (module docstring).

    Without a plan, no PostgreSQL table is touched (none was declared).  A backend that fails is
    *left* (the run fails), unless the plan says it did not answer at the start either.
    """
    config = config or settings.current()
    plan = plan or Plan()
    report = TeardownReport()
    dsn, amqp_url, redis_url = config.postgres_dsn, config.amqp_url, config.redis_url
    for what, url in _targets(config).items():
        if what == "postgres" and not plan.postgres_tables:
            continue  # nothing declared: nothing of ours to delete there
        try:
            safety.check_target(url, allow_remote=allow_remote, what=what, environ=config.environ)
        except safety.RemoteTargetError as exc:
            report.skipped[what] = str(exc)
            continue
        try:
            if what == "postgres":
                deleted, left = postgres_teardown(
                    dsn, run_id, plan.postgres_tables, allow_remote=allow_remote
                )
                for table, n in deleted.items():
                    report.deleted[f"{table} rows"] = n
                report.left.update(left)
            elif what == "redis":
                report.deleted["redis keys"] = redis_teardown(redis_url, run_id, allow_remote=allow_remote)
                mark_ended(redis_url, run_id, allow_remote=allow_remote)
            else:
                report.deleted["rabbitmq queues"] = rabbitmq_teardown(
                    amqp_url, run_id, allow_remote=allow_remote
                )["queues"]
        except (
            OSError,
            psycopg2.Error,
            redis.RedisError,
            amqp.exceptions.AMQPError,
            InspectError,
            RuntimeError,
            safety.RemoteTargetError,  # refused where it was dialled (the name resolved elsewhere by then)
        ) as exc:
            if plan.answered is not None and plan.answered.get(what) is False:
                report.skipped[what] = f"{_why(exc)} (it did not answer at the start either)"
            else:
                scope = f" (tables {', '.join(plan.postgres_tables)})" if what == "postgres" else ""
                report.left[what] = f"{_why(exc)}{scope}"
    return report


def teardown_for_run_id(
    run_id: str,
    run_dir: Path | None = None,
    config: settings.Settings | None = None,
    *,
    allow_remote: bool = False,
    tables: Sequence[str] | None = None,
) -> TeardownReport:
    """Tear down ``run_id`` from outside its master (e.g. a launcher whose master died).

    The plan is the one the master recorded in ``run_dir/run-metadata.json`` (``teardown``); pass
    ``tables`` (the run settings' declared tables) when there is no such file.  Without a recorded
    plan, every backend that fails counts as data left behind.
    """
    recorded: Plan | None = None
    if run_dir is not None:
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            data = json.loads((run_dir / "run-metadata.json").read_text(encoding="utf-8"))
            recorded = Plan.from_dict(data["teardown"]) if isinstance(data.get("teardown"), dict) else None
    if recorded is None:
        recorded = Plan(list(tables or []))
    elif tables:
        recorded.postgres_tables = list(dict.fromkeys([*recorded.postgres_tables, *tables]))
    return teardown(run_id, config, allow_remote=allow_remote, plan=recorded)


def remaining(
    run_id: str, config: settings.Settings | None = None, shared_queues: Sequence[str] = ()
) -> dict[str, Any]:
    """What still carries ``run_id`` anywhere (empty dicts/zeros after a successful teardown).

    PostgreSQL is counted in every table with a ``run_id`` column (read-only), declared or not."""
    config = config or settings.current()
    dsn, amqp_url, redis_url = config.postgres_dsn, config.amqp_url, config.redis_url
    return {
        "postgres": postgres_remaining(dsn, run_id),
        "redis_keys": redis_remaining(redis_url, run_id),
        "rabbitmq": rabbitmq_remaining(amqp_url, run_id, shared_queues),
    }
