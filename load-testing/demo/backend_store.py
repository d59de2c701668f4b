"""The demo platform's storage on real services: orders go PostgreSQL → RabbitMQ → (consumer) → Redis.

``create_order`` writes the row and publishes ``order.created`` (confirmed);
``loadstack demo consumer`` enriches it and writes ``order:{id}`` to Redis;
``get_order`` reads Redis first and falls back to PostgreSQL, so a chain can
watch an order become visible in the cache.  Every row, message and key
carries the caller's run id so a load test's data can be torn down.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import psycopg2.pool
import redis

from loadstack import safety
from loadstack.settings import current
from loadstack_demo.events import EventPublisher
from loadstack_demo.store import Order, Payment, UserRecord
from loadstack_demo.tracing import CLIENT, OFF, Tracing, postgres_server, sql_attributes, url_server

SCHEMA = """
CREATE TABLE IF NOT EXISTS demo_users (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    run_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS demo_orders (
    id bigserial PRIMARY KEY,
    owner_id bigint NOT NULL,
    sku text NOT NULL,
    quantity integer NOT NULL,
    amount numeric(12, 2) NOT NULL,
    currency text NOT NULL,
    status text NOT NULL DEFAULT 'created',
    run_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS demo_orders_owner_idx ON demo_orders (owner_id, id DESC);
CREATE INDEX IF NOT EXISTS demo_orders_run_idx ON demo_orders (run_id);
CREATE TABLE IF NOT EXISTS demo_payments (
    id bigserial PRIMARY KEY,
    owner_id bigint NOT NULL,
    order_id bigint,
    amount numeric(12, 2) NOT NULL,
    currency text NOT NULL,
    method text NOT NULL,
    status text NOT NULL DEFAULT 'captured',
    run_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS demo_payments_owner_idx ON demo_payments (owner_id, id DESC);
CREATE INDEX IF NOT EXISTS demo_payments_run_idx ON demo_payments (run_id);
CREATE INDEX IF NOT EXISTS demo_users_run_idx ON demo_users (run_id);
"""


def order_key(order_id: int) -> str:
    return f"order:{order_id}"


def run_index_key(run_id: str) -> str:
    """A set of the Redis keys written for a run (teardown deletes its members)."""
    return f"loadtest:{run_id}:keys"


def _num(value: Any) -> float:
    return float(value) if isinstance(value, Decimal) else value


class BackendStore:
    kind = "backend"
    # What a backend that is down raises: the platform answers 503 (see Platform.run).
    unavailable: tuple[type[BaseException], ...] = (
        psycopg2.OperationalError,
        psycopg2.InterfaceError,
        psycopg2.pool.PoolError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
    )

    def __init__(
        self,
        dsn: str,
        amqp_url: str,
        redis_url: str,
        *,
        max_connections: int = 20,
        tracing: Tracing = OFF,
    ) -> None:
        allow_remote = current().allow_remote  # dialled addresses pass loadstack's guard, as its checks did
        guarded = safety.guarded_dsn(dsn, allow_remote=allow_remote)
        self.tracing = tracing
        self._pg_server = postgres_server(psycopg2.extensions.parse_dsn(guarded)) if tracing.enabled else {}
        self._redis_server = {"db.system.name": "redis", **url_server(redis_url)}
        self.pool = psycopg2.pool.ThreadedConnectionPool(1, max_connections, guarded, connect_timeout=3)
        with self._cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(742002)")
            cur.execute(SCHEMA)
            cur.execute("SELECT pg_advisory_unlock(742002)")
        self.redis = redis.Redis.from_url(
            redis_url,
            socket_timeout=3,
            socket_connect_timeout=3,
            **safety.redis_options(redis_url, allow_remote=allow_remote),
        )
        self.redis.ping()
        self.events = EventPublisher(amqp_url, tracing)
        self.events._producer()  # fail now, at start, if the broker is unreachable
        self._created = {"users": 0, "orders": 0, "payments": 0}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        conn = self.pool.getconn()
        broken = False
        try:
            conn.autocommit = True
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                yield cur
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True
            raise
        finally:
            self.pool.putconn(conn, close=broken)

    def _sql(self, operation: str, table: str) -> contextlib.AbstractContextManager[Any]:
        """A PostgreSQL client span around one statement (nothing when tracing is off)."""
        return self.tracing.span(
            f"{operation} {table}", CLIENT, sql_attributes(operation, table, self._pg_server)
        )

    def _count(self, what: str) -> None:
        with self._lock:
            self._created[what] += 1

    def create_user(self, email: str, name: str, password_hash: str, run_id: str | None) -> UserRecord | None:
        with self._sql("INSERT", "demo_users"), self._cursor() as cur:
            cur.execute(
                """INSERT INTO demo_users (email, name, password_hash, run_id) VALUES (%s, %s, %s, %s)
                   ON CONFLICT (email) DO NOTHING RETURNING id""",
                (email, name, password_hash, run_id),
            )
            row = cur.fetchone()
        if row is None:
            return None
        self._count("users")
        return UserRecord(row["id"], email, name, password_hash, run_id)

    def get_user_by_email(self, email: str) -> UserRecord | None:
        with self._sql("SELECT", "demo_users"), self._cursor() as cur:
            cur.execute(
                "SELECT id, email, name, password_hash, run_id FROM demo_users WHERE email = %s", (email,)
            )
            row = cur.fetchone()
        return UserRecord(**row) if row else None

    def _order(self, row: dict[str, Any]) -> Order:
        return Order(
            row["id"],
            row["owner_id"],
            row["sku"],
            row["quantity"],
            _num(row["amount"]),
            row["currency"],
            row["status"],
            row["run_id"],
            row["created_at"].timestamp(),
        )

    def create_order(
        self, owner_id: int, sku: str, quantity: int, amount: float, currency: str, run_id: str | None
    ) -> Order:
        with self._sql("INSERT", "demo_orders"), self._cursor() as cur:
            cur.execute(
                """INSERT INTO demo_orders (owner_id, sku, quantity, amount, currency, run_id)
                   VALUES (%s, %s, %s, %s, %s, %s) RETURNING *""",
                (owner_id, sku, quantity, amount, currency, run_id),
            )
            order = self._order(cur.fetchone())
        self.events.publish("order.created", {**order.public(), "owner_id": owner_id}, run_id)
        self._count("orders")
        return order

    def list_orders(self, owner_id: int, limit: int) -> list[Order]:
        with self._sql("SELECT", "demo_orders"), self._cursor() as cur:
            cur.execute(
                "SELECT * FROM demo_orders WHERE owner_id = %s ORDER BY id DESC LIMIT %s", (owner_id, limit)
            )
            return [self._order(r) for r in cur.fetchall()]

    def get_order(self, owner_id: int, order_id: int) -> Order | None:
        """Redis first (what the consumer wrote), PostgreSQL when the cache does not have it (yet)."""
        with self.tracing.span("HGETALL", CLIENT, {**self._redis_server, "db.operation.name": "HGETALL"}):
            cached = self.redis.hgetall(order_key(order_id))
        if cached:
            data = {k.decode(): v.decode() for k, v in cached.items()}
            if int(data.get("owner_id", -1)) == owner_id:
                return Order(
                    order_id,
                    owner_id,
                    data["sku"],
                    int(data["quantity"]),
                    float(data["amount"]),
                    data["currency"],
                    data["status"],
                    data.get("run_id") or None,
                    float(data["created_at"]),
                )
        with self._sql("SELECT", "demo_orders"), self._cursor() as cur:
            cur.execute("SELECT * FROM demo_orders WHERE id = %s AND owner_id = %s", (order_id, owner_id))
            row = cur.fetchone()
        return self._order(row) if row else None

    def create_payment(
        self,
        owner_id: int,
        order_id: int | None,
        amount: float,
        currency: str,
        method: str,
        run_id: str | None,
    ) -> Payment:
        with self._sql("INSERT", "demo_payments"), self._cursor() as cur:
            cur.execute(
                """INSERT INTO demo_payments (owner_id, order_id, amount, currency, method, run_id)
                   VALUES (%s, %s, %s, %s, %s, %s) RETURNING *""",
                (owner_id, order_id, amount, currency, method, run_id),
            )
            row = cur.fetchone()
        self._count("payments")
        return Payment(
            row["id"],
            owner_id,
            order_id,
            _num(row["amount"]),
            currency,
            method,
            row["status"],
            run_id,
            row["created_at"].timestamp(),
        )

    def list_payments(self, owner_id: int, limit: int) -> list[Payment]:
        with self._sql("SELECT", "demo_payments"), self._cursor() as cur:
            cur.execute(
                "SELECT * FROM demo_payments WHERE owner_id = %s ORDER BY id DESC LIMIT %s", (owner_id, limit)
            )
            rows = cur.fetchall()
        return [
            Payment(
                r["id"],
                owner_id,
                r["order_id"],
                _num(r["amount"]),
                r["currency"],
                r["method"],
                r["status"],
                r["run_id"],
                r["created_at"].timestamp(),
            )
            for r in rows
        ]

    def counts(self) -> dict[str, int]:
        """Created by this process since it started (no table scans on a hot status endpoint)."""
        with self._lock:
            return dict(self._created)

    def close(self) -> None:
        self.pool.closeall()
        self.redis.close()
        self.events.reset()
