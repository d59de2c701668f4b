"""``redis`` steps: one data command through the user's Redis client; ``last`` is ``{value}`` as text."""

from __future__ import annotations

from typing import Any

from loadstack.chains.engine import ChainRun
from loadstack.chains.kinds.base import Builder, Step
from loadstack.chains.schema import RedisStepSpec
from loadstack.chains.templates import compile_value


def decode(value: Any) -> Any:
    """Redis replies as text: bytes → str, recursively."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {decode(k): decode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [decode(v) for v in value]
    return value


class RedisStep(Step[RedisStepSpec]):
    kind, request_type = "redis", "REDIS"

    def __init__(self, spec: RedisStepSpec, builder: Builder) -> None:
        super().__init__(spec, builder)
        self.command = spec.redis.command
        self.args = compile_value(spec.redis.args)

    def templates(self) -> list[Any]:
        return [self.args]

    def execute(self, run: ChainRun) -> None:
        args = self.render(run, self.args)
        client = run.rt.redis

        def op() -> Any:
            value = decode(client.redis.execute_command(self.command, *args))
            self.finish(run, {"value": value})
            return value

        span = None
        if client._tracing is not None:
            span = client.span_for(
                run.stat_name(self.name), client.redis.execute_command, (self.command,), {}
            )
        self.run_client(run, client, op, span)
