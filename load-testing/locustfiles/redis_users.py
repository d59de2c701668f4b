"""Redis users — a plain Locust file to copy and adapt.

``CacheUser`` does what a platform does with Redis: session strings with a
TTL, profile hashes, a work list, an event stream, a leaderboard and a
pipelined checkout.  Keys are ``loadtest:{run_id}:…`` so teardown finds them.
"""

from __future__ import annotations

import random
import uuid

from locust import between, task

from loadstack import runcontext
from loadstack.users.redis import RedisUser


class CacheUser(RedisUser):
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        prefix = f"loadtest:{runcontext.current().run_id}"
        me = uuid.uuid4().hex[:10]
        self.session_key = f"{prefix}:session:{me}"
        self.profile_key = f"{prefix}:profile:{me}"
        self.jobs_key = f"{prefix}:jobs"
        self.events_key = f"{prefix}:events"
        self.board_key = f"{prefix}:leaderboard"
        self.me = me

    @task(5)
    def session_roundtrip(self) -> None:
        self.client.set(self.session_key, uuid.uuid4().hex, ex=300, name="SET session")
        self.client.get(self.session_key, name="GET session")

    @task(3)
    def profile_hash(self) -> None:
        self.client.hset(self.profile_key, name="HSET profile", visits=random.randint(1, 100), plan="pro")
        self.client.hget(self.profile_key, "visits", name="HGET profile")
        self.client.expire(self.profile_key, 300, name="EXPIRE profile")

    @task(2)
    def work_list(self) -> None:
        self.client.lpush(self.jobs_key, f"job-{self.me}-{random.randint(1, 10**6)}", name="LPUSH job")
        self.client.rpop(self.jobs_key, name="RPOP job")

    @task(2)
    def event_stream(self) -> None:
        self.client.xadd(self.events_key, {"user": self.me, "kind": "click"}, maxlen=1000, name="XADD event")
        self.client.xread({self.events_key: "0-0"}, count=10, name="XREAD events")

    @task(1)
    def leaderboard(self) -> None:
        self.client.zadd(self.board_key, {self.me: random.randint(0, 1000)}, name="ZADD score")

    @task(1)
    def checkout(self) -> None:
        with self.client.pipeline("PIPELINE checkout") as pipe:
            pipe.incr(f"{self.profile_key}:orders")
            pipe.expire(f"{self.profile_key}:orders", 300)
            pipe.hset(self.profile_key, "last_checkout", random.randint(1, 10**9))
