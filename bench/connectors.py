"""Connector overhead: each loadstack client vs a bare client loop, same gevent process, same concurrency.

One client per greenlet on both sides (as users have), the same operation
and the same message (the AMQP run-id header included).  Three variants:

* ``bare``: the client library alone;
* ``loadstack``: through ``TimedClient.call`` with ``events.request`` fired and
  loadstack's own per-request listener attached — loadstack's cost (target >= 0.90);
* ``+locust stats``: also Locust's own stats listener, i.e. everything a request
  costs on a worker.  Reported for information: that part is Locust's.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import uuid

import amqp
import kombu
import locust  # noqa: F401  (gevent monkey-patching, as in a Locust worker)
import psycopg2
import redis
from locust.env import Environment

from bench.common import throughput
from loadstack.plugin import UserClassStats
from loadstack.users.postgres import PostgresClient
from loadstack.users.rabbitmq import RUN_ID_HEADER, RabbitMQClient
from loadstack.users.redis import RedisClient

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
REDIS_URL = "redis://127.0.0.1:6379/0"
CONTEXT = {"user_class": "BenchUser"}


def environment(with_locust_stats: bool) -> Environment:
    env = Environment()
    if with_locust_stats:
        env.create_local_runner()  # registers Locust's stats listener on events.request
    UserClassStats(env, "local")
    return env


def measure(name, bare, wrapped, args) -> dict:
    """Alternate the three variants ``rounds`` times (drift hits all) and compare medians."""
    envs = {"loadstack": environment(False), "+locust stats": environment(True)}
    samples: dict[str, list[float]] = {"bare": [], "loadstack": [], "+locust stats": []}
    for _ in range(args.rounds):
        samples["bare"].append(throughput(args.workers, args.duration, bare))
        for label, env in envs.items():
            samples[label].append(throughput(args.workers, args.duration, lambda env=env: wrapped(env)))
    med = {k: statistics.median(v) for k, v in samples.items()}
    row = {
        "name": name,
        **med,
        "ratio": med["loadstack"] / med["bare"],
        "ratio_full": med["+locust stats"] / med["bare"],
    }
    print(
        f"{name:<26} bare {med['bare']:>8.0f}/s  loadstack {med['loadstack']:>8.0f}/s (ratio {row['ratio']:.3f})  "
        f"+locust stats {med['+locust stats']:>8.0f}/s (ratio {row['ratio_full']:.3f})",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=8, help="greenlets (concurrent users)")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument(
        "--rounds",
        type=int,
        default=15,
        help="alternating rounds per variant (short rounds, so VM noise hits all variants alike)",
    )
    args = parser.parse_args(argv)
    print(
        f"connectors: {args.workers} greenlets, {args.duration:.0f}s x {args.rounds} rounds per variant (median)"
    )

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

    rows = [
        measure("redis GET", bare_redis, loadstack_redis, args),
        measure("SQL SELECT 1", bare_sql, loadstack_sql, args),
        measure("AMQP publish (confirmed)", bare_amqp, loadstack_amqp, args),
    ]
    with contextlib.suppress(amqp.exceptions.AMQPError):
        setup.channel().queue_delete(queue)
    worst = min(row["ratio"] for row in rows)
    print(
        f"connectors: worst loadstack ratio {worst:.3f} (target >= 0.90) -> {'OK' if worst >= 0.90 else 'BELOW TARGET'}"
    )
    return rows


if __name__ == "__main__":
    main()
