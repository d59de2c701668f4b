"""PostgreSQL users on psycopg2, made gevent-cooperative with psycogreen.

Each user owns its connection (never shared between greenlets), opened on
first use and reopened after a failure with backoff, so a database that is
down at start or restarted mid-run shows up as failures, not dead users.
For connection-pool behaviour, :class:`SharedPool` hands out connections from
psycopg2's own ``ThreadedConnectionPool`` with a bounded wait that is timed as
its own stat entry (``pool/acquire``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import gevent.lock
import psycopg2
import psycopg2.extensions
import psycopg2.pool
from locust import User
from locust.env import Environment
from psycogreen.gevent import patch_psycopg

from loadstack import runcontext, safety, settings
from loadstack.masking import mask_url
from loadstack.users.base import Backoff, RequestFailure, TimedClient, user_context

# Must run before any connection exists: psycopg2 then waits on sockets through gevent.
patch_psycopg()

_now = time.perf_counter


def default_dsn() -> str:
    return settings.current().postgres_dsn


def allow_remote() -> bool:
    return runcontext.current().settings.allow_remote


def connect(dsn: str, *, connect_timeout: float = 5.0) -> psycopg2.extensions.connection:
    """An autocommit connection tagged with the run id (``application_name``) so it can be found."""
    safety.check_target(
        dsn, allow_remote=allow_remote(), what="PostgreSQL", environ=settings.current().environ
    )
    conn = psycopg2.connect(
        safety.guarded_dsn(dsn, allow_remote=allow_remote(), environ=settings.current().environ),
        connect_timeout=max(1, int(connect_timeout)),
        application_name=f"loadstack-{runcontext.current().run_id}"[:63],
    )
    conn.autocommit = True
    return conn


class SharedPool:
    """A process-wide pool (psycopg2's ``ThreadedConnectionPool``) with a bounded, timed wait.

    psycopg2's pool raises at once when it is empty; real applications queue
    for a connection.  The gevent semaphore makes users queue, and the wait is
    what a saturation test wants to see.
    """

    def __init__(self, dsn: str, maxconn: int, *, acquire_timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.maxconn = maxconn
        self.acquire_timeout = acquire_timeout
        self._slots = gevent.lock.BoundedSemaphore(maxconn)
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        # Creating the pool checks and resolves the DSN's hosts, which yields to other greenlets:
        # without the lock, users spawned together each made a pool, and a connection taken from
        # one was put back into another ("trying to put unkeyed connection").
        self._creating = gevent.lock.Semaphore()

    def _ensure(self) -> psycopg2.pool.ThreadedConnectionPool:
        if self._pool is not None:
            return self._pool
        with self._creating:
            if self._pool is not None:
                return self._pool
            safety.check_target(
                self.dsn, allow_remote=allow_remote(), what="PostgreSQL", environ=settings.current().environ
            )
            dsn = safety.guarded_dsn(
                self.dsn, allow_remote=allow_remote(), environ=settings.current().environ
            )
            self._pool = psycopg2.pool.ThreadedConnectionPool(
                0, self.maxconn, dsn, application_name=f"loadstack-{runcontext.current().run_id}"[:63]
            )
        return self._pool

    def acquire(self) -> psycopg2.extensions.connection:
        if not self._slots.acquire(timeout=self.acquire_timeout):
            raise TimeoutError(f"pool exhausted: no connection free within {self.acquire_timeout:.1f}s")
        try:
            conn = self._ensure().getconn()
            conn.autocommit = True
            return conn
        except Exception:
            self._slots.release()
            raise

    def release(self, conn: psycopg2.extensions.connection, *, broken: bool = False) -> None:
        try:
            if self._pool is not None:
                self._pool.putconn(conn, close=broken or conn.closed != 0)
        finally:
            self._slots.release()


class PostgresClient(TimedClient):
    """Timed SQL for one user: ``execute``, ``fetchone``, ``fetchall`` and ``transaction``."""

    request_type = "SQL"

    def __init__(
        self,
        environment: Environment,
        dsn: str | None = None,
        *,
        user: User | None = None,
        pool: SharedPool | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        super().__init__(environment, user=user)
        self.dsn = dsn or default_dsn()
        self.pool = pool
        self.connect_timeout = connect_timeout
        self.conn: psycopg2.extensions.connection | None = None
        self.backoff = Backoff()
        self._in_transaction = False

    # -- connection ------------------------------------------------------------
    def _connection(self) -> psycopg2.extensions.connection:
        if self.conn is not None and not self.conn.closed:
            return self.conn
        self.conn = None
        self.backoff.wait()
        if self.pool is not None:
            with self.measure("pool/acquire"):
                self.conn = self.pool.acquire()
            return self.conn
        try:
            with self.measure("connect"):
                self.conn = connect(self.dsn, connect_timeout=self.connect_timeout)
        except RequestFailure:
            self.backoff.failed()
            raise
        self.backoff.succeeded()
        return self.conn

    def _release(self, broken: bool = False) -> None:
        if self.pool is not None and self.conn is not None and not self._in_transaction:
            conn, self.conn = self.conn, None
            self.pool.release(conn, broken=broken)

    def on_error(self, exc: BaseException) -> None:
        if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
            conn, self.conn = self.conn, None
            if conn is not None:
                if self.pool is not None:
                    self.pool.release(conn, broken=True)
                else:
                    with contextlib.suppress(Exception):  # already broken; nothing left to close cleanly
                        conn.close()

    def close(self) -> None:
        if self.conn is not None:
            if self.pool is not None:
                self._release()
            else:
                self.conn.close()
                self.conn = None

    # -- statements ------------------------------------------------------------
    def _run_traced(self, name: str, sql: str, params: Any, fetch: str | None, check: Any) -> Any:
        """:meth:`_run` inside its span, the statement with its sqlcommenter comment (if on)."""
        assert self._tracing is not None
        span_name, attributes = self.span_for(name, None, (sql,), {})
        with self._tracing.request(span_name, attributes):
            return self._run(name, self._tracing.sql_comment(sql), params, fetch, check, traced=True)

    def span_for(self, name: str, fn: Any, args: Any, kwargs: Any) -> tuple[str, dict[str, Any]]:
        """``db.system.name=postgresql`` and the statement's operation, never its text or parameters."""
        from loadstack.telemetry.spans import sql_operation

        operation = sql_operation(args[0]) if args and isinstance(args[0], str) else name
        server = self._span_server
        if server is None:
            try:
                dsn = psycopg2.extensions.parse_dsn(self.dsn)
            except psycopg2.ProgrammingError:
                dsn = {}
            host = dsn.get("host")
            server = self._span_server = {
                "db.system.name": "postgresql",
                "db.namespace": dsn.get("dbname"),
                "server.address": host if host and not host.startswith("/") else None,
                "server.port": int(dsn["port"]) if str(dsn.get("port", "")).isdigit() else None,
            }
        return operation, {**server, "db.operation.name": operation, "loadstack.request.name": name}

    _span_server: dict[str, Any] | None = None  # the attributes every span of this client shares

    def _run(
        self, name: str, sql: str, params: Any, fetch: str | None, check: Any = None, *, traced: bool = False
    ) -> Any:
        # Timed inline rather than through call(): this is every SQL request's path, and a
        # closure plus one more call level per statement is measurable against a local SELECT 1.
        if self._tracing is not None and not traced:
            return self._run_traced(name, sql, params, fetch, check)
        conn = self._connection()
        start = _now()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                if fetch == "one":
                    result = cur.fetchone()
                elif fetch == "all":
                    result = cur.fetchall()
                elif fetch == "dicts":
                    columns = [d.name for d in cur.description or ()]
                    result = [
                        {
                            c: float(v) if isinstance(v, Decimal) else v
                            for c, v in zip(columns, row, strict=True)
                        }
                        for row in cur.fetchall()
                    ]
                else:
                    result = cur.rowcount
            if check is not None:
                check(result)  # inside the timed call: a failed check is this request's failure
            elapsed_ms = (_now() - start) * 1000.0
        except Exception as exc:
            raise self.failed(name, start, exc) from exc
        finally:
            if self.conn is not None:
                self._release()
        self._fire(
            request_type=self.request_type,
            name=name,
            response_time=elapsed_ms,
            response_length=len(result) if isinstance(result, list) else 0,
            exception=None,
            context=self.context,
        )
        return result

    def execute(self, name: str, sql: str, params: Any = None) -> int:
        """Run a statement; the affected row count."""
        return self._run(name, sql, params, None)

    def fetchone(self, name: str, sql: str, params: Any = None) -> tuple | None:
        return self._run(name, sql, params, "one")

    def fetchall(self, name: str, sql: str, params: Any = None) -> list[tuple]:
        return self._run(name, sql, params, "all")

    def query(self, name: str, sql: str, params: Any = None, *, check: Any = None) -> list[dict[str, Any]]:
        """Rows as dicts (numerics as float); ``check(rows)`` may raise to fail the request."""
        return self._run(name, sql, params, "dicts", check)

    @contextmanager
    def transaction(self, name: str) -> Iterator[PostgresClient]:
        """One timed request for the whole transaction (statements inside are timed too).

        Commits on success; rolls back and records a failure if anything inside raises.
        """
        conn = self._connection()
        self._in_transaction = True
        start = time.perf_counter()
        try:
            with conn.cursor() as cur:
                cur.execute("BEGIN")
            yield self
            with conn.cursor() as cur:
                cur.execute("COMMIT")
        except BaseException as exc:
            self._rollback(conn)
            if isinstance(exc, Exception):
                self.report(name, (time.perf_counter() - start) * 1000.0, request_type="SQL", error=exc)
                if not isinstance(exc, RequestFailure):
                    self.on_error(exc)
                    raise RequestFailure(f"transaction {name} rolled back: {exc}", exc) from exc
            raise
        else:
            self.report(name, (time.perf_counter() - start) * 1000.0, request_type="SQL")
        finally:
            self._in_transaction = False
            if self.conn is not None:
                self._release()

    def _rollback(self, conn: psycopg2.extensions.connection) -> None:
        if conn.closed:
            return
        try:
            with conn.cursor() as cur:
                cur.execute("ROLLBACK")
        except psycopg2.Error:
            self.on_error(psycopg2.InterfaceError("rollback failed"))

    def length_of(self, result: Any) -> int:
        return len(result) if isinstance(result, list) else 0


class PostgresUser(User):
    """A Locust user with a :class:`PostgresClient` as ``self.client``.

    Set ``dsn`` on a subclass to override ``$LOADSTACK_POSTGRES_DSN``; set
    ``pool`` to a :class:`SharedPool` to share a bounded pool between users.
    """

    abstract = True
    dsn: str | None = None
    pool: SharedPool | None = None

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.client = PostgresClient(environment, self.dsn, user=self, pool=self.pool)

    def context(self) -> dict:
        return user_context(self)

    def on_stop(self) -> None:
        self.client.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {mask_url(self.client.dsn)}>"
