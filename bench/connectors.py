"""Connector overhead: each loadstack client vs a bare client loop, same gevent process, same concurrency.

One client per greenlet on both sides (as users have), the same operation
and the same message (the AMQP run-id header included).  Three variants:

* ``bare``: the client library alone;
* ``loadstack``: through ``TimedClient.call`` with ``events.request`` fired and
  loadstack's own per-request listener attached — loadstack's cost (target: bare CPU per
  operation / loadstack CPU per operation >= 0.90);
* ``+locust stats``: also Locust's own stats listener, i.e. everything a request
  costs on a worker.  Reported for information: that part is Locust's.
* ``+otel`` (with ``--otel``): the ``loadstack`` side traced, a span per operation exported over
  OTLP (:mod:`bench.otel`).  Reported for information: tracing's cost per operation.
"""

from __future__ import annotations

import contextlib
import uuid

import amqp
import kombu
import locust  # noqa: F401  (gevent monkey-patching, as in a Locust worker)
import psycopg2
import redis
from locust.env import Environment

from bench.common import (
    Gate,
    arguments,
    interleaved_rounds,
    op_loops,
    pin_services,
    pinned,
    plan_text,
    without_monitor,
)
from bench.harness import Target, print_comparison
from loadstack.user_classes import UserClassStats
from loadstack.users.postgres import PostgresClient
from loadstack.users.rabbitmq import RUN_ID_HEADER, RabbitMQClient
from loadstack.users.redis import RedisClient

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
REDIS_URL = "redis://127.0.0.1:6379/0"
CONTEXT = {"user_class": "BenchUser"}
TARGET = Target(0.90)
VARIANTS = ["bare", "loadstack", "+locust stats"]


def environment(with_locust_stats: bool) -> Environment:
    env = Environment()
    if with_locust_stats:
        without_monitor(env.create_local_runner())  # registers Locust's stats listener on events.request
    UserClassStats().attach(env, "local")
    return env


def measure(name, bare, wrapped, args) -> dict:
    """The variants side by side: all connected at once, measured slice by slice."""
    variants = [*VARIANTS, "+otel"] if args.otel else VARIANTS
    envs = {"loadstack": environment(False), "+locust stats": environment(True)}
    if args.otel:
        envs["+otel"] = environment(False)
        args.otel_sink.attach(envs["+otel"])
    gate = Gate(variants)
    counters = {
        "bare": op_loops(gate, "bare", args.users, bare),
        **{v: op_loops(gate, v, args.users, lambda env=envs[v]: wrapped(env)) for v in variants[1:]},
    }
    try:
        samples, _ = interleaved_rounds(
            args.rounds,
            gate,
            counters,
            slices=args.slices,
            slice_s=args.duration / args.slices,
            ops=args.window_ops,
        )
    finally:
        gate.stop()
    return print_comparison(
        "connectors", name, samples, "bare", variants[1:], target=TARGET, judged="loadstack"
    )


def main(argv: list[str] | None = None) -> dict:
    args = arguments(
        __doc__,
        argv,
        users=8,
        duration=1.0,
        rounds=8,
        extra=lambda p: p.add_argument(
            "--otel", action="store_true", help="add a traced side (+otel): tracing's cost per operation"
        ),
    )
    print(f"connectors: {plan_text(args, 'variant')}")
    with pinned(not args.no_pin) as pinning, contextlib.ExitStack() as stack:
        pin_services(pinning, ["Redis", "PostgreSQL", "RabbitMQ"])
        pinning.report("connectors")
        if args.otel:
            from bench import otel

            args.otel_sink = stack.enter_context(otel.sink())
        return run(args)


def run(args) -> dict:
    shared = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=50))
    shared.set("bench:key", "v" * 64)

    def bare_redis():
        return lambda: shared.get("bench:key")

    def loadstack_redis(env):
        client = RedisClient(env, REDIS_URL)
        client.context = CONTEXT
        return lambda: client.get("bench:key")

    def bare_sql():
        conn = psycopg2.connect(PG_DSN)
        conn.autocommit = True

        def op():
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                return cur.fetchone()

        return op

    def loadstack_sql(env):
        client = PostgresClient(env, PG_DSN)
        client.context = CONTEXT
        return lambda: client.fetchone("select 1", "SELECT 1")

    queue = f"loadtest.bench.{uuid.uuid4().hex[:8]}"
    setup = kombu.Connection(AMQP_URL)
    setup.channel().queue_declare(queue, auto_delete=False, arguments={"x-max-length": 10000})
    headers = {RUN_ID_HEADER: "bench"}

    def bare_amqp():
        conn = kombu.Connection(AMQP_URL, heartbeat=0, transport_options={"confirm_publish": True})
        producer = kombu.Producer(conn.channel())
        return lambda: producer.publish(b"x" * 64, routing_key=queue, headers=headers, retry=False)

    def loadstack_amqp(env):
        client = RabbitMQClient(env, AMQP_URL)
        client.context = CONTEXT
        return lambda: client.publish("publish", b"x" * 64, routing_key=queue)

    try:
        return {
            "redis GET": measure("redis GET", bare_redis, loadstack_redis, args),
            "SQL SELECT 1": measure("SQL SELECT 1", bare_sql, loadstack_sql, args),
            "AMQP publish (confirmed)": measure("AMQP publish (confirmed)", bare_amqp, loadstack_amqp, args),
        }
    finally:
        with contextlib.suppress(amqp.exceptions.AMQPError):
            setup.channel().queue_delete(queue)
        setup.release()


if __name__ == "__main__":
    main()
