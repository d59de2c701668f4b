"""The Python API for chain steps: ``http()``, ``sql()``, ``await_redis()``, ``python()`` …

Each helper builds the same spec model a chain file produces (see
:mod:`loadstack.chains.schema`), so a chain written in Python and one written in
YAML run through the same engine and report the same stats::

    from loadstack.chains import from_python
    from loadstack.chains import steps as s

    chain = from_python("orders", [s.http("list", "GET", "/api/v1/orders", expect={"status": 200})])

Every helper takes the common step options as keywords: ``when``, ``on_failure``,
``repeat``, ``save``, ``expect``, ``check`` (dicts as in a chain file).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from loadstack.chains.schema import (
    AmqpExpectSpec,
    AmqpExpectStepSpec,
    AmqpPublishSpec,
    AmqpPublishStepSpec,
    AwaitSpec,
    AwaitStepSpec,
    BranchPath,
    BranchSpec,
    BranchStepSpec,
    HttpSpec,
    HttpStepSpec,
    PythonStepSpec,
    RedisSpec,
    RedisStepSpec,
    SqlSpec,
    SqlStepSpec,
    StepSpec,
    ThinkSpec,
    ThinkStepSpec,
    WsSpec,
    WsStepSpec,
)

_OPTIONS = frozenset({"when", "on_failure", "repeat", "save", "expect", "check"})


def _common(name: str, **options: Any) -> dict[str, Any]:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise TypeError(f"unknown step option(s): {', '.join(sorted(unknown))}")
    return {"name": name, **options}


def http(
    name: str,
    method: str,
    path: str,
    *,
    json: Any = None,
    headers: dict | None = None,
    body: str | None = None,
    form: dict[str, Any] | None = None,
    multipart: dict[str, Any] | None = None,
    body_file: dict[str, Any] | str | None = None,
    **options: Any,
) -> HttpStepSpec:
    """An HTTP step; at most one body: ``json``, ``body`` (text), ``form``, ``multipart`` or ``body_file``.

    ``multipart``: ``{"fields": {...}, "files": [{"field", "path", "filename", "content_type"}]}``;
    ``body_file``: a path or ``{"path", "content_type"}``.  File paths are absolute or relative to
    the current directory, and are read once when the chain is built.
    """
    spec = HttpSpec.model_validate(
        {
            "method": method,
            "path": path,
            "json": json,
            "headers": headers,
            "body": body,
            "form": form,
            "multipart": multipart,
            "body_file": {"path": body_file} if isinstance(body_file, str) else body_file,
        }
    )
    return HttpStepSpec(http=spec, **_common(name, **options))


def sql(name: str, query: str, params: Any = None, **options: Any) -> SqlStepSpec:
    return SqlStepSpec(sql=SqlSpec(query=query, params=params), **_common(name, **options))


def redis(name: str, command: str, *args: Any, **options: Any) -> RedisStepSpec:
    return RedisStepSpec(redis=RedisSpec(command=command, args=list(args)), **_common(name, **options))


def amqp_publish(
    name: str, routing_key: str, *, exchange: str = "", json: Any = None, **options: Any
) -> AmqpPublishStepSpec:
    return AmqpPublishStepSpec(
        amqp_publish=AmqpPublishSpec(exchange=exchange, routing_key=routing_key, json=json),
        **_common(name, **options),
    )


def amqp_expect(
    name: str,
    *,
    match: str,
    exchange: str | None = None,
    routing_key: str = "#",
    queue: str | None = None,
    timeout: float = 5,
    **options: Any,
) -> AmqpExpectStepSpec:
    spec = AmqpExpectSpec(
        queue=queue, exchange=exchange, routing_key=routing_key, match=match, timeout=timeout
    )
    return AmqpExpectStepSpec(amqp_expect=spec, **_common(name, **options))


def await_redis(
    name: str,
    command: str,
    *args: Any,
    until: str | None = None,
    timeout: float = 10,
    since: str | None = None,
    **options: Any,
) -> AwaitStepSpec:
    spec = AwaitSpec(
        redis=RedisSpec(command=command, args=list(args)), until=until, timeout=timeout, since=since
    )
    return AwaitStepSpec.model_validate({"await": spec, **_common(name, **options)})


def await_sql(
    name: str,
    query: str,
    params: Any = None,
    *,
    until: str | None = None,
    timeout: float = 10,
    since: str | None = None,
    **options: Any,
) -> AwaitStepSpec:
    spec = AwaitSpec(sql=SqlSpec(query=query, params=params), until=until, timeout=timeout, since=since)
    return AwaitStepSpec.model_validate({"await": spec, **_common(name, **options)})


def ws(name: str, send: Any, *, expect: str = "true", path: str = "/ws/stream", **options: Any) -> WsStepSpec:
    return WsStepSpec(ws=WsSpec(path=path, send=send, expect=expect), **_common(name, **options))


def think(name: str, minimum: float, maximum: float) -> ThinkStepSpec:
    return ThinkStepSpec(name=name, think=ThinkSpec(min=minimum, max=maximum))


def branch(
    name: str, paths: Sequence[tuple[str, dict[str, Any], Sequence[StepSpec]]], **options: Any
) -> BranchStepSpec:
    """``paths``: ``(name, {"when": expr} or {"weight": n}, steps)`` tuples."""
    built = [BranchPath(name=n, steps=list(s), **opts) for n, opts, s in paths]
    return BranchStepSpec(branch=BranchSpec(paths=built), **_common(name, **options))


def python(name: str, fn: Callable[[Any], Any], **options: Any) -> PythonStepSpec:
    return PythonStepSpec(python=fn, **_common(name, **options))
