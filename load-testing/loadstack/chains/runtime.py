"""What a chain runs with: one user's protocol clients, identity and random sources.

Clients are created on first use, so a chain that never touches RabbitMQ
never opens an AMQP connection.  ``await`` probes poll through separate
*quiet* clients whose calls are not reported: only the await's own result
(the hop latency) becomes a stat entry.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from faker import Faker
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

from loadstack import runcontext
from loadstack.data import draw
from loadstack.users.base import TimedClient
from loadstack.users.http import AuthorizedSession
from loadstack.users.postgres import PostgresClient
from loadstack.users.rabbitmq import RabbitMQClient
from loadstack.users.redis import RedisClient
from loadstack.users.websocket import WebSocketClient

_user_sequence = itertools.count()


class ChainRuntime:
    """Per-user state shared by every chain run of that user."""

    def __init__(self, user: Any) -> None:
        self.user = user
        self.environment = user.environment
        runner = self.environment.runner
        worker_index = int(getattr(runner, "worker_index", 0) or 0)
        self.worker_index = worker_index
        # Unique per user within the run: workers interleave (worker w gets w, w+1024, ...).
        self.index = next(_user_sequence) * 1024 + worker_index
        ctx = runcontext.current()
        self.run_id = ctx.run_id
        base_seed = ctx.settings.seed.seed if ctx.settings.seed else 1234
        self.rng = random.Random(base_seed * 7919 + self.index)
        self.faker = Faker()
        self.faker.seed_instance(base_seed * 7919 + self.index)
        self.timed = TimedClient(self.environment, user=user)
        self.tracing = self.timed._tracing  # None unless OTel is on: one trace per chain iteration
        self.iterations = 0
        self._clients: dict[str, Any] = {}
        self.taps: dict[str, str] = {}

    @property
    def identity(self) -> dict[str, Any]:
        return {"index": self.index, "class": type(self.user).__name__, "worker": self.worker_index}

    # -- reporting clients ---------------------------------------------------------------
    @property
    def http(self) -> FastHttpSession:
        return self.user.client

    def _lazy(self, key: str, factory: Any) -> Any:
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = factory()
        return client

    @property
    def sql(self) -> PostgresClient:
        return self._lazy("sql", lambda: PostgresClient(self.environment, user=self.user))

    @property
    def redis(self) -> RedisClient:
        return self._lazy("redis", lambda: RedisClient(self.environment, user=self.user))

    @property
    def amqp(self) -> RabbitMQClient:
        return self._lazy("amqp", lambda: RabbitMQClient(self.environment, user=self.user))

    @property
    def ws(self) -> WebSocketClient:
        return self._lazy("ws", lambda: WebSocketClient(self.environment, self.user.host, user=self.user))

    # -- quiet clients for await probes -------------------------------------------------------
    @property
    def quiet_http(self) -> FastHttpSession:
        return self._lazy(
            "quiet_http", lambda: AuthorizedSession(self.user.host, request_event=EventHook(), user=None)
        )

    @property
    def quiet_sql(self) -> PostgresClient:
        def make() -> PostgresClient:
            client = PostgresClient(self.environment, user=self.user)
            client._fire = lambda **_: None
            client.report = lambda *a, **k: None  # type: ignore[method-assign]
            return client

        return self._lazy("quiet_sql", make)

    @property
    def quiet_redis(self) -> RedisClient:
        def make() -> RedisClient:
            client = RedisClient(self.environment, user=self.user)
            client._fire = lambda **_: None
            client.report = lambda *a, **k: None  # type: ignore[method-assign]
            return client

        return self._lazy("quiet_redis", make)

    # -- seeded data ---------------------------------------------------------------------------
    def draw_seed(self) -> dict[str, Any]:
        return draw.pool(self.worker_index).draw(self.rng)

    def close(self) -> None:
        for key, client in self._clients.items():
            close = getattr(client, "close", None)
            if close is not None and key != "quiet_http":
                try:
                    close()
                except Exception:  # closing on user stop is best effort
                    pass
