"""``await`` steps: poll a probe (SQL, Redis or HTTP) with backoff until ``until`` holds.

The recorded time is the latency until the condition held, measured from the end of step
``since`` when given: in the flagship chain, "HTTP write → visible in Redis".  Probes poll
through quiet clients whose calls are not reported; only the await's own result is a stat entry.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import gevent

from loadstack.chains.engine import ChainRun, Mismatch
from loadstack.chains.kinds.base import Builder, Step, short
from loadstack.chains.kinds.http import HttpRequest, HttpResult
from loadstack.chains.kinds.redis import decode
from loadstack.chains.schema import AwaitStepSpec
from loadstack.chains.templates import Expression, TemplateError, compile_value
from loadstack.users.base import RequestFailure

if TYPE_CHECKING:
    from loadstack.chains.runtime import ChainRuntime


class Probe:
    """What an ``await`` polls: rendered once per run, then polled until the condition holds."""

    def templates(self) -> list[Any]:
        raise NotImplementedError

    def render(self, step: Step[Any], run: ChainRun) -> Any:
        raise NotImplementedError

    def poll(self, rt: ChainRuntime, rendered: Any) -> Any:
        raise NotImplementedError

    def held(self, last: Any) -> bool:
        """The condition when the step has no ``until``."""
        raise NotImplementedError

    def describe(self, rendered: Any) -> str:
        raise NotImplementedError


class SqlProbe(Probe):
    def __init__(self, query: str, params: Any) -> None:
        self.query = query
        self.params = compile_value(params)

    def templates(self) -> list[Any]:
        return [self.params]

    def render(self, step: Step[Any], run: ChainRun) -> Any:
        return step.render(run, self.params)

    def poll(self, rt: ChainRuntime, rendered: Any) -> Any:
        rows = rt.quiet_sql.query("await", self.query, rendered)
        return {"rows": rows, "rowcount": len(rows)}

    def held(self, last: Any) -> bool:
        return bool(last["rows"])

    def describe(self, rendered: Any) -> str:
        return f"SQL {self.query.strip()} with {short(rendered)}"


class RedisProbe(Probe):
    def __init__(self, command: str, args: list[Any]) -> None:
        self.command = command
        self.args = compile_value(args)

    def templates(self) -> list[Any]:
        return [self.args]

    def render(self, step: Step[Any], run: ChainRun) -> Any:
        return step.render(run, self.args)

    def poll(self, rt: ChainRuntime, rendered: Any) -> Any:
        return {"value": decode(rt.quiet_redis.redis.execute_command(self.command, *rendered))}

    def held(self, last: Any) -> bool:
        return last["value"] not in (None, {}, [], "")

    def describe(self, rendered: Any) -> str:
        return f"{self.command} {' '.join(str(a) for a in rendered)}"


class HttpProbe(Probe):
    def __init__(self, request: HttpRequest) -> None:
        self.request = request

    def templates(self) -> list[Any]:
        return self.request.templates()

    def render(self, step: Step[Any], run: ChainRun) -> Any:
        return self.request.render(lambda v: step.render(run, v))

    def poll(self, rt: ChainRuntime, rendered: Any) -> Any:
        resp = rt.quiet_http.request(
            self.request.method,
            rendered["path"],
            headers=rendered["headers"],
            json=rendered["json"],
            data=rendered["data"],
        )
        return HttpResult(resp)

    def held(self, last: Any) -> bool:
        return last["status"] == 200

    def describe(self, rendered: Any) -> str:
        return f"HTTP {self.request.method} {rendered['path']}"


class AwaitStep(Step[AwaitStepSpec]):
    """Poll a probe with backoff until ``until`` holds; record the time until it held."""

    kind, request_type = "await", "AWAIT"

    def __init__(self, spec: AwaitStepSpec, builder: Builder) -> None:
        super().__init__(spec, builder)
        a = spec.await_
        self.a = a
        self.until = Expression(a.until) if a.until else None
        self.probe: Probe
        if a.sql is not None:
            self.probe = SqlProbe(a.sql.query, a.sql.params)
        elif a.redis is not None:
            self.probe = RedisProbe(a.redis.command, a.redis.args)
        else:
            assert a.http is not None  # the schema requires exactly one probe
            self.probe = HttpProbe(HttpRequest(a.http, builder.base_dir))

    def templates(self) -> list[Any]:
        return self.probe.templates()

    def references(self) -> set[str]:
        return super().references() | (self.until.references if self.until else set())

    def held(self, run: ChainRun, last: Any) -> bool:
        if self.until is not None:
            return bool(self.until(run.scope(last=last)))
        return self.probe.held(last)

    def execute(self, run: ChainRun) -> None:
        a = self.a
        rendered = self.probe.render(self, run)
        start = time.perf_counter()
        since = run.done_at.get(a.since) if a.since else None
        deadline = start + a.timeout
        interval, attempts = a.interval, 0
        observed: Any = None
        problem = ""
        while True:
            attempts += 1
            try:
                observed = self.probe.poll(run.rt, rendered)
                if self.held(run, observed):
                    break
                problem = ""
            except (RequestFailure, TemplateError) as exc:
                problem = f"; last error: {exc}"
            now = time.perf_counter()
            if now >= deadline:
                raise self.fail(
                    run,
                    f"`{self.until.source if self.until else 'a result'}` not reached within {a.timeout:.1f}s "
                    f"({attempts} polls of {self.probe.describe(rendered)}); last observed: {short(observed)}{problem}",
                    elapsed_ms=(now - (since or start)) * 1000.0,
                )
            gevent.sleep(min(interval, max(0.0, deadline - now)))
            interval = min(interval * a.backoff, a.max_interval)
        held_at = time.perf_counter()
        hop_ms = (held_at - (since if since is not None else start)) * 1000.0
        try:
            self.finish(run, observed)
        except Mismatch as exc:
            raise self.fail(run, str(exc), elapsed_ms=hop_ms) from None
        run.done_at[self.name] = held_at
        run.rt.timed.report(run.stat_name(self.name), hop_ms, request_type=self.request_type)
