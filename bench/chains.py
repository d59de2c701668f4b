"""Chain engine overhead: a 3-step chain vs the same three calls hand-written in a Locust task.

Both sides are real Locust users run by a ``LocalRunner`` in this process, against the
same demo platform, PostgreSQL and Redis: HTTP ``GET /health``, SQL ``SELECT 1``,
Redis ``GET``.  Rounds alternate between the two user classes.  Primary figure: the
generator's CPU per completed iteration (the chain's ``CHAIN`` entries vs the hand-written
task's last request); target: hand-written cost / engine cost >= 0.95.
"""

from __future__ import annotations

import gevent
import locust  # noqa: F401  (gevent monkey-patching first)
import redis as redis_lib
from locust import constant, task
from locust.env import Environment

from bench.common import arguments, pin_services, pin_url_server, pinned
from bench.harness import Meter, Sample, Target, print_comparison, run_rounds
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


TARGET = Target(0.95)


def one_round(user_class: type, host: str, users: int, duration: float) -> Sample:
    """Completed iterations and the generator's CPU in one measured window."""
    env = Environment(user_classes=[user_class], host=host)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    gevent.sleep(1.0)  # spawn, connect, warm up
    marker = ("bench", "CHAIN") if user_class is EngineUser else ("hand/cache", "REDIS")
    before = env.stats.entries[marker].num_requests if marker in env.stats.entries else 0
    meter = Meter().start()
    gevent.sleep(duration)
    sample = meter.stop(env.stats.entries[marker].num_requests - before)
    failures = env.stats.total.num_failures
    runner.quit()
    if failures:
        raise RuntimeError(f"{user_class.__name__}: {failures} failures; see the demo platform")
    return sample


def main(argv: list[str] | None = None) -> dict:
    args = arguments(__doc__, argv, users=4, duration=2.0, rounds=8)
    redis_lib.Redis.from_url("redis://127.0.0.1:6379/0").set(KEY, "x" * 64)
    print(
        f"chains: {args.users} users, {args.duration:g}s windows, {args.rounds} rounds "
        "(hand-written/engine once per round, order alternating); generator CPU per iteration"
    )
    with pinned(not args.no_pin) as pinning, demo_platform() as host:
        pin_url_server(pinning, "demo platform", host)
        pin_services(pinning, ["PostgreSQL", "Redis"])
        pinning.report("chains")
        samples = run_rounds(
            args.rounds,
            ["hand-written", "engine"],
            lambda variant: one_round(
                EngineUser if variant == "engine" else HandWrittenUser, host, args.users, args.duration
            ),
        )
    return print_comparison(
        "chains",
        "3-step chain",
        samples,
        "hand-written",
        ["engine"],
        target=TARGET,
        judged="engine",
        unit="it",
    )


if __name__ == "__main__":
    main()
