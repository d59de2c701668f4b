"""PostgreSQL users — a plain Locust file to copy and adapt.

``ShopDatabaseUser`` runs a small shop workload on tables it creates
(``lt_customers``, ``lt_orders``, ``lt_payments``): indexed lookups, order
placement in a transaction, recent-order lists and a revenue report.
``PoolSaturationUser`` shares a deliberately small connection pool
(``LOADSTACK_PG_POOL_SIZE``, default 5) between all users of a worker; with
more users than connections, ``pool/acquire`` shows how long requests queue
for a connection and when the pool gives up (seed 001's "connection pool
saturation").  Every row carries the run id, and ``teardown_tables`` tells teardown
which tables those are: it deletes the run's rows there and touches no other table.
"""

from __future__ import annotations

import random
import uuid

import psycopg2
from locust import between, events, task

from loadstack import runcontext, safety
from loadstack.settings import current
from loadstack.users.postgres import PostgresUser, SharedPool, connect, default_dsn

SCHEMA = """
CREATE TABLE IF NOT EXISTS lt_customers (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL,
    email text NOT NULL UNIQUE,
    segment text NOT NULL,
    last_order_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS lt_orders (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL,
    customer_id bigint NOT NULL REFERENCES lt_customers(id) ON DELETE CASCADE,
    amount numeric(10, 2) NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS lt_payments (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL,
    order_id bigint NOT NULL REFERENCES lt_orders(id) ON DELETE CASCADE,
    amount numeric(10, 2) NOT NULL,
    method text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS lt_orders_customer_idx ON lt_orders (customer_id, created_at DESC);
CREATE INDEX IF NOT EXISTS lt_orders_run_idx ON lt_orders (run_id);
CREATE INDEX IF NOT EXISTS lt_customers_run_idx ON lt_customers (run_id);
CREATE INDEX IF NOT EXISTS lt_payments_run_idx ON lt_payments (run_id);
"""
SEGMENTS = ["consumer", "smb", "enterprise"]


@events.test_start.add_listener
def create_schema(environment, **_kwargs) -> None:
    """Create the tables once per worker; an advisory lock serialises workers doing it at once."""
    if environment.runner is not None and type(environment.runner).__name__ == "MasterRunner":
        return
    try:
        conn = connect(default_dsn())
    except (psycopg2.Error, safety.RemoteTargetError):
        return  # the users will report the connection failures (and refusals) themselves
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(742001)")
            cur.execute(SCHEMA)
            cur.execute("SELECT pg_advisory_unlock(742001)")
    finally:
        conn.close()


class ShopDatabaseUser(PostgresUser):
    wait_time = between(0.5, 2)
    # The tables this user writes (with the run id in run_id): teardown deletes the run's rows here.
    teardown_tables = ("lt_customers", "lt_orders", "lt_payments")

    def on_start(self) -> None:
        self.run_id = runcontext.current().run_id
        self.customer_id = None
        row = self.client.fetchone(
            "insert customer",
            "INSERT INTO lt_customers (run_id, email, segment) VALUES (%s, %s, %s) RETURNING id",
            (self.run_id, f"{uuid.uuid4().hex}@example.test", random.choice(SEGMENTS)),
        )
        self.customer_id = row[0] if row else None
        self.order_ids: list[int] = []

    @task(5)
    def lookup_customer(self) -> None:
        if self.customer_id:
            self.client.fetchone(
                "customer by id", "SELECT * FROM lt_customers WHERE id = %s", (self.customer_id,)
            )

    @task(4)
    def place_order(self) -> None:
        if not self.customer_id:
            return
        amount = round(random.lognormvariate(3.5, 0.8), 2)
        with self.client.transaction("place order"):
            order_id = self.client.fetchone(
                "insert order",
                "INSERT INTO lt_orders (run_id, customer_id, amount, status) VALUES (%s, %s, %s, 'paid') RETURNING id",
                (self.run_id, self.customer_id, amount),
            )[0]
            self.client.execute(
                "insert payment",
                "INSERT INTO lt_payments (run_id, order_id, amount, method) VALUES (%s, %s, %s, %s)",
                (self.run_id, order_id, amount, random.choice(["card", "sepa"])),
            )
            self.client.execute(
                "touch customer",
                "UPDATE lt_customers SET last_order_at = now() WHERE id = %s",
                (self.customer_id,),
            )
        self.order_ids.append(order_id)

    @task(3)
    def recent_orders(self) -> None:
        if self.customer_id:
            self.client.fetchall(
                "recent orders",
                "SELECT id, amount, status FROM lt_orders WHERE customer_id = %s ORDER BY created_at DESC LIMIT 10",
                (self.customer_id,),
            )

    @task(1)
    def revenue_report(self) -> None:
        self.client.fetchall(
            "revenue report",
            """SELECT c.segment, count(o.id), coalesce(sum(o.amount), 0)
               FROM lt_customers c LEFT JOIN lt_orders o ON o.customer_id = c.id
               WHERE c.run_id = %s GROUP BY c.segment ORDER BY c.segment""",
            (self.run_id,),
        )


class PoolSaturationUser(PostgresUser):
    """Many users, few connections: watch ``pool/acquire`` climb as the pool saturates."""

    wait_time = between(0.01, 0.05)
    pool = SharedPool(default_dsn(), current().pg_pool_size, acquire_timeout=2.0)

    @task
    def hold_connection(self) -> None:
        self.client.execute("slow query", "SELECT pg_sleep(0.05)")
