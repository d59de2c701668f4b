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
from locust import task

from bench.common import (
    Gate,
    arguments,
    interleaved_rounds,
    locust_side,
    pin_services,
    pin_url_server,
    pinned,
    plan_text,
)
from bench.harness import Target, print_comparison
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
    chains = [three_steps]


class HandWrittenUser(HttpUser):
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
MARKERS = {"engine": ("bench", "CHAIN"), "hand-written": ("hand/cache", "REDIS")}


def main(argv: list[str] | None = None) -> dict:
    args = arguments(__doc__, argv, users=4, duration=2.0, rounds=8, ops=300)
    redis_lib.Redis.from_url("redis://127.0.0.1:6379/0").set(KEY, "x" * 64)
    print(f"chains: {plan_text(args, op='iteration')}")
    with pinned(not args.no_pin) as pinning, demo_platform() as host:
        pin_url_server(pinning, "demo platform", host)
        pin_services(pinning, ["PostgreSQL", "Redis"])
        pinning.report("chains")
        gate = Gate(["hand-written", "engine"])
        envs = {
            "hand-written": locust_side(gate, "hand-written", HandWrittenUser, host, args.users),
            "engine": locust_side(gate, "engine", EngineUser, host, args.users),
        }

        def counter(side: str):
            env = envs[side][0]
            return lambda: (
                env.stats.entries[MARKERS[side]].num_requests if MARKERS[side] in env.stats.entries else 0
            )

        gevent.sleep(1.0)  # spawn, connect
        try:
            samples, _ = interleaved_rounds(
                args.rounds,
                gate,
                {side: counter(side) for side in envs},
                slices=args.slices,
                slice_s=args.duration / args.slices,
                ops=args.window_ops,
            )
        finally:
            for _env, runner in envs.values():
                runner.quit()
        failures = {side: env.stats.total.num_failures for side, (env, _) in envs.items()}
        if any(failures.values()):
            raise RuntimeError(f"chains bench: failures {failures}; see the demo platform")
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
