"""Redis users on redis-py.

One ``BlockingConnectionPool`` per process and URL is shared by all users of
that process: redis-py pools are safe to share (each command checks a
connection out exclusively), gevent's patched queue makes a user wait for a
free connection instead of failing, and a restarted server is handled by
redis-py dropping broken connections and opening new ones on the next command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from locust import User
from locust.env import Environment

from loadstack import runcontext, safety, settings
from loadstack.users.base import TimedClient, user_context

_pools: dict[str, redis.BlockingConnectionPool] = {}


def default_url() -> str:
    return settings.current().redis_url


def shared_client(url: str, *, max_connections: int = 200, timeout: float = 5.0) -> redis.Redis:
    """The process-wide client for ``url`` (created on first use)."""
    pool = _pools.get(url)
    if pool is None:
        safety.check_target(url, allow_remote=runcontext.current().settings.allow_remote, what="Redis")
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=0,
            **safety.redis_options(url, allow_remote=runcontext.current().settings.allow_remote),
        )
        _pools[url] = pool
    return redis.Redis(connection_pool=pool)


class _Refused:
    """Stands in for a client whose URL was refused: every command raises the refusal."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def refused(*_args: Any, **_kwargs: Any) -> Any:
            raise self.exc

        return refused


class RedisClient(TimedClient):
    """Timed Redis commands; each method takes an optional ``name`` for the stat entry."""

    request_type = "REDIS"

    def __init__(self, environment: Environment, url: str | None = None, *, user: User | None = None) -> None:
        super().__init__(environment, user=user)
        self.url = url or default_url()
        # Commands go straight to the client's bound methods (no dispatch layer: this is every
        # Redis request's path).  A refused URL gives a stand-in whose every command raises the
        # refusal inside the timed call: a recorded failure, not a dead user.
        self._client: redis.Redis | _Refused
        try:
            self._client = shared_client(self.url)
        except Exception as exc:
            self._client = _Refused(exc)

    @property
    def redis(self) -> redis.Redis:
        """The redis-py client, for commands timed elsewhere (raises if the URL was refused)."""
        if isinstance(self._client, _Refused):
            raise self._client.exc
        return self._client

    def execute(self, name: str, *args: Any) -> Any:
        """Any command: ``execute("incr-hits", "INCR", "hits")``."""
        return self.call(name, self._client.execute_command, *args)

    def get(self, key: str, *, name: str = "GET") -> Any:
        return self.call(name, self._client.get, key)

    def set(self, key: str, value: Any, *, name: str = "SET", **kwargs: Any) -> Any:
        return self.call(name, self._client.set, key, value, **kwargs)

    def hget(self, key: str, field: str, *, name: str = "HGET") -> Any:
        return self.call(name, self._client.hget, key, field)

    def hset(self, key: str, *, name: str = "HSET", mapping: dict | None = None, **fields: Any) -> Any:
        return self.call(name, self._client.hset, key, mapping={**(mapping or {}), **fields})

    def hgetall(self, key: str, *, name: str = "HGETALL") -> Any:
        return self.call(name, self._client.hgetall, key)

    def lpush(self, key: str, *values: Any, name: str = "LPUSH") -> Any:
        return self.call(name, self._client.lpush, key, *values)

    def rpop(self, key: str, *, name: str = "RPOP") -> Any:
        return self.call(name, self._client.rpop, key)

    def xadd(self, key: str, fields: dict, *, name: str = "XADD", **kwargs: Any) -> Any:
        return self.call(name, self._client.xadd, key, fields, **kwargs)

    def xread(self, streams: dict, *, name: str = "XREAD", **kwargs: Any) -> Any:
        return self.call(name, self._client.xread, streams, **kwargs)

    def zadd(self, key: str, mapping: dict, *, name: str = "ZADD", **kwargs: Any) -> Any:
        return self.call(name, self._client.zadd, key, mapping, **kwargs)

    def expire(self, key: str, seconds: int, *, name: str = "EXPIRE") -> Any:
        return self.call(name, self._client.expire, key, seconds)

    def delete(self, *keys: str, name: str = "DEL") -> Any:
        return self.call(name, self._client.delete, *keys)

    @contextmanager
    def pipeline(self, name: str, *, transaction: bool = True) -> Iterator[Any]:
        """Queue commands on ``pipe`` inside the block; they are sent and timed as one request on exit."""
        with self.measure(name) as timing:
            pipe = self.redis.pipeline(transaction=transaction)
            yield pipe
            timing.response_length = len(pipe.execute())

    def span_for(self, name: str, fn: Any, args: Any, kwargs: Any) -> tuple[str, dict[str, Any]]:
        """``db.system.name=redis`` and the command (never its arguments)."""
        fn_name = getattr(fn, "__name__", "") if fn is not None else ""
        if fn_name == "execute_command" and args:
            command = str(args[0]).split()[0].upper()
        elif fn_name:
            command = fn_name.upper()
        else:
            command = name
        server = self._span_server
        if server is None:
            kw = getattr(getattr(self._client, "connection_pool", None), "connection_kwargs", {})
            server = self._span_server = {
                "db.system.name": "redis",
                "server.address": kw.get("host"),
                "server.port": kw.get("port"),
                "db.namespace": str(kw["db"]) if "db" in kw else None,
            }
        return command, {**server, "db.operation.name": command, "loadstack.request.name": name}

    _span_server: dict[str, Any] | None = None  # the attributes every span of this client shares

    def length_of(self, result: Any) -> int:
        if isinstance(result, bytes | str):
            return len(result)
        if isinstance(result, list | dict):
            return len(result)
        return 0


class RedisUser(User):
    """A Locust user with a :class:`RedisClient` as ``self.client`` (``url`` overrides the env)."""

    abstract = True
    url: str | None = None

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.client = RedisClient(environment, self.url, user=self)

    def context(self) -> dict:
        return user_context(self)
