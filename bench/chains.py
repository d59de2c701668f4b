"""Chain engine overhead: a 3-step chain vs the same three calls hand-written in a Locust task.

Both sides are real Locust users run by a ``LocalRunner`` in this process, against the
same demo platform, PostgreSQL and Redis: HTTP ``GET /health``, SQL ``SELECT 1``,
Redis ``GET``.  Rounds alternate between the two user classes; throughput is
completed iterations per second (the chain's ``CHAIN`` entries vs the
hand-written task's last request).  Target: ratio >= 0.95.
"""

from __future__ import annotations

import statistics
import time

import gevent
import locust  # noqa: F401  (gevent monkey-patching first)
import redis as redis_lib
from locust import constant, task
from locust.env import Environment

from bench.common import ab_arguments, abba, verdict
from loadstack.chains import ChainUser, from_python
from loadstack.chains import steps as s
from loadstack.users.http import HttpUser
from loadstack.users.postgres import PostgresClient
from loadstack.users.redis import RedisClient
from loadstack_demo.process import demo_platform

KEY = "bench:chain:key"

three_steps = from_python(
    "bench",
    [
        s.http("health", "GET", "/health"),
        s.sql("select", "SELECT 1 AS one"),
        s.redis("cache", "GET", KEY),
    ],
)


class EngineUser(ChainUser):
    wait_time = constant(0)
    chains = [three_steps]


class HandWrittenUser(HttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.sql = PostgresClient(self.environment, user=self)
        self.cache = RedisClient(self.environment, user=self)

    @task
    def three_calls(self) -> None:
        with self.client.get("/health", name="hand/health", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure("status")
        self.sql.query("hand/select", "SELECT 1 AS one")
        self.cache.get(KEY, name="hand/cache")


def iterations_per_second(user_class: type, host: str, users: int, duration: float) -> tuple[float, float]:
    """(completed iterations per second, load-generator CPU share) of one measured round."""
    env = Environment(user_classes=[user_class], host=host)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    gevent.sleep(1.0)  # spawn, connect, warm up
    marker = ("bench", "CHAIN") if user_class is EngineUser else ("hand/cache", "REDIS")
    before, cpu0 = (
        env.stats.entries[marker].num_requests if marker in env.stats.entries else 0,
        time.process_time(),
    )
    gevent.sleep(duration)
    after, cpu1 = env.stats.entries[marker].num_requests, time.process_time()
    failures = env.stats.total.num_failures
    runner.quit()
    if failures:
        raise RuntimeError(f"{user_class.__name__}: {failures} failures; see the demo platform")
    return (after - before) / duration, (cpu1 - cpu0) / duration


def main(argv: list[str] | None = None) -> dict:
    args = ab_arguments(__doc__, argv)
    redis_lib.Redis.from_url("redis://127.0.0.1:6379/0").set(KEY, "x" * 64)
    print(
        f"chains: {args.users} users, {args.duration:.0f}s rounds, {args.rounds} rounds in ABBA order (median)"
    )
    with demo_platform() as host:
        hand, engine = abba(
            args.rounds,
            lambda is_engine: iterations_per_second(
                EngineUser if is_engine else HandWrittenUser, host, args.users, args.duration
            ),
        )
    h, e = statistics.median(r for r, _ in hand), statistics.median(r for r, _ in engine)
    cpu = statistics.median(share for _, share in hand + engine)
    ratio = e / h
    print(
        f"{'3-step chain':<26} hand-written {h:>8.0f} it/s   engine {e:>8.0f} it/s   ratio {ratio:.3f}"
        f"   (load generator CPU {cpu:.0%})"
    )
    verdict("chains", "engine throughput", ratio, 0.95)
    return {"hand": h, "engine": e, "ratio": ratio}


if __name__ == "__main__":
    main()
