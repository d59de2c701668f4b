"""The schema of chain files (``load-testing/chains/*.yml``), validated before any load starts.

A step is a mapping with a ``name`` and exactly one *kind* key (``http``,
``ws``, ``sql``, ``amqp_publish``, ``amqp_expect``, ``redis``, ``await``,
``sleep``, ``think``, ``branch``) plus optional ``when``, ``save``,
``expect``, ``check``, ``repeat`` and ``on_failure``.  The same models are
built by the Python API (``loadstack.chains.steps``), so a chain written in
Python and one written in YAML run through the same engine.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import Strict as StrictType

from loadstack.durations import PositiveSeconds, Seconds
from loadstack.limits import MAX_WEIGHT

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
StepName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
HttpStatus = Annotated[int, StrictType(), Field(ge=1, le=999)]
MAX_STEPS = 1000  # steps in one sequence
KINDS = ("http", "ws", "sql", "amqp_publish", "amqp_expect", "redis", "await_", "sleep", "think", "branch")
# Redis commands a chain may send: the usual read and write data commands, nothing administrative.
REDIS_COMMANDS = frozenset(
    [
        "GET",
        "SET",
        "SETEX",
        "GETDEL",
        "MGET",
        "MSET",
        "INCR",
        "INCRBY",
        "DECR",
        "DEL",
        "EXISTS",
        "EXPIRE",
        "PEXPIRE",
        "TTL",
        "PTTL",
        "TYPE",
        "HGET",
        "HSET",
        "HGETALL",
        "HDEL",
        "HINCRBY",
        "HEXISTS",
        "HLEN",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "LRANGE",
        "LLEN",
        "SADD",
        "SREM",
        "SMEMBERS",
        "SISMEMBER",
        "SCARD",
        "ZADD",
        "ZREM",
        "ZRANGE",
        "ZSCORE",
        "ZCARD",
        "ZINCRBY",
        "XADD",
        "XRANGE",
        "XREVRANGE",
        "XLEN",
        "XREAD",
        "PUBLISH",
    ]
)


class Strict(BaseModel):
    # No .inf/.nan where a number is expected (weights, timeouts, backoff).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


# A form or multipart field value as written (templated when a string); a list repeats the field.
FieldValue = str | int | float | bool
FormFields = dict[str, FieldValue | list[FieldValue]]
OCTET_STREAM = "application/octet-stream"


class FilePart(Strict):
    """One file of a multipart body; ``path`` is relative to the chain file's directory."""

    field: str = Field(min_length=1)
    path: str = Field(min_length=1)
    filename: str | None = Field(default=None, description="default: the file's own name")
    content_type: str = OCTET_STREAM


class MultipartSpec(Strict):
    fields: FormFields = Field(default_factory=dict)
    files: list[FilePart] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> MultipartSpec:
        if not self.fields and not self.files:
            raise ValueError("give fields, files or both")
        return self


class BodyFileSpec(Strict):
    """A raw body read from a file, sent as is (never templated)."""

    path: str = Field(min_length=1)
    content_type: str = OCTET_STREAM


BODY_KINDS = ("json", "body", "form", "multipart", "body_file")


class HttpSpec(Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    path: str = Field(min_length=1)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = Field(default=None, description="a text body (templated)")
    form: FormFields | None = Field(
        default=None, description="application/x-www-form-urlencoded; names and values as decoded text"
    )
    multipart: MultipartSpec | None = None
    body_file: BodyFileSpec | None = None
    headers: dict[str, str] | None = None
    timeout: PositiveSeconds | None = None

    @model_validator(mode="after")
    def _one_body(self) -> HttpSpec:
        given = [k for k in BODY_KINDS if self.body_of(k) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one body ({' | '.join(BODY_KINDS)}); found {', '.join(given)}")
        return self

    def body_of(self, kind: str) -> Any:
        return self.json_body if kind == "json" else getattr(self, kind)

    def files(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(location under this spec, path) of every file the request sends."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if self.multipart is not None:
            out += [(("multipart", "files", i, "path"), f.path) for i, f in enumerate(self.multipart.files)]
        if self.body_file is not None:
            out.append((("body_file", "path"), self.body_file.path))
        return out


class WsSpec(Strict):
    path: str = "/ws/stream"
    send: Any
    expect: str = Field(
        default="true", description="expression over `message`: the frame that completes the step"
    )
    timeout: PositiveSeconds = 10


class SqlSpec(Strict):
    query: str = Field(min_length=1)
    params: dict[str, Any] | list[Any] | None = None


class AmqpPublishSpec(Strict):
    exchange: str = ""
    routing_key: str
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    headers: dict[str, Any] | None = None


class AmqpExpectSpec(Strict):
    """Wait for a matching message: from a ``queue`` (consumed), or tapped from an ``exchange`` (a private copy)."""

    queue: str | None = None
    exchange: str | None = None
    routing_key: str = "#"
    match: str = "true"
    timeout: PositiveSeconds = 5

    @model_validator(mode="after")
    def _source(self) -> AmqpExpectSpec:
        if (self.queue is None) == (self.exchange is None):
            raise ValueError("give exactly one of queue (consume from it) or exchange (tap it)")
        return self


class RedisSpec(Strict):
    command: str
    args: list[Any] = Field(default_factory=list)

    @model_validator(mode="after")
    def _allowed(self) -> RedisSpec:
        self.command = self.command.upper()
        if self.command not in REDIS_COMMANDS:
            raise ValueError(
                f"command {self.command} is not allowed in chains (allowed: {', '.join(sorted(REDIS_COMMANDS))})"
            )
        return self


class AwaitSpec(Strict):
    """Poll a probe until ``until`` holds; the recorded latency is the time until it held."""

    sql: SqlSpec | None = None
    redis: RedisSpec | None = None
    http: HttpSpec | None = None
    until: str | None = None
    timeout: PositiveSeconds = 10
    interval: PositiveSeconds = 0.01
    max_interval: PositiveSeconds = 0.5
    backoff: float = Field(default=1.5, ge=1, le=100)
    since: str | None = Field(default=None, description="measure from the end of this earlier step")

    @model_validator(mode="after")
    def _one_probe(self) -> AwaitSpec:
        if sum(p is not None for p in (self.sql, self.redis, self.http)) != 1:
            raise ValueError("give exactly one probe: sql, redis or http")
        return self


class ThinkSpec(Strict):
    min: Seconds
    max: Seconds

    @model_validator(mode="after")
    def _ordered(self) -> ThinkSpec:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


class RepeatSpec(Strict):
    times: int | None = Field(default=None, ge=1, le=10_000)
    until: str | None = None
    while_: str | None = Field(default=None, alias="while")
    max: int | None = Field(default=None, ge=1, le=10_000)

    @model_validator(mode="after")
    def _bounded(self) -> RepeatSpec:
        conditional = self.until is not None or self.while_ is not None
        if self.until is not None and self.while_ is not None:
            raise ValueError("give until or while, not both")
        if self.times is None and not conditional:
            raise ValueError("give times, or until/while with max")
        if conditional and self.max is None:
            raise ValueError("a conditional repeat needs max (repeats must be bounded)")
        if self.times is not None and conditional:
            raise ValueError("give times, or until/while with max, not both")
        return self


class SaveSpec(Strict):
    """Where a saved variable comes from; exactly one source."""

    json_path: str | None = Field(default=None, alias="json")
    header: str | None = None
    column: str | None = None
    row: int = Field(default=0, ge=0, le=1_000_000)
    field: str | None = None
    expr: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SaveSpec:
        if sum(v is not None for v in (self.json_path, self.header, self.column, self.field, self.expr)) != 1:
            raise ValueError("give exactly one of json, header, column, field, expr")
        return self


class ExpectSpec(Strict):
    status: HttpStatus | list[HttpStatus] | None = None
    json_values: dict[str, Any] | None = Field(default=None, alias="json")
    contains: str | None = None
    rows: int | None = Field(default=None, ge=0)
    min_rows: int | None = Field(default=None, ge=0)


class GotoSpec(Strict):
    goto: StepName
    max: int | None = Field(default=None, ge=1, le=10_000)


class BranchPath(Strict):
    name: StepName
    when: str | None = None
    weight: float | None = Field(default=None, gt=0, le=MAX_WEIGHT)
    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS)


class BranchSpec(Strict):
    paths: list[BranchPath] = Field(min_length=2)

    @model_validator(mode="after")
    def _consistent(self) -> BranchSpec:
        weighted = [p.weight is not None for p in self.paths]
        if any(weighted) and not all(weighted):
            raise ValueError(
                "either every path has a weight (random choice) or none (first `when` that holds)"
            )
        if any(weighted) and any(p.when for p in self.paths):
            raise ValueError("weighted paths cannot also have `when`")
        if not any(weighted):
            defaults = [i for i, p in enumerate(self.paths) if p.when is None]
            if defaults and defaults != [len(self.paths) - 1]:
                raise ValueError("only the last path may omit `when` (it is the default)")
        return self


class StepSpec(Strict):
    name: StepName
    when: str | None = None
    on_failure: Literal["stop", "continue"] | GotoSpec = "stop"
    repeat: RepeatSpec | None = None
    save: dict[str, SaveSpec | str] | None = None
    expect: ExpectSpec | None = None
    check: str | None = None

    http: HttpSpec | None = None
    ws: WsSpec | None = None
    sql: SqlSpec | None = None
    amqp_publish: AmqpPublishSpec | None = None
    amqp_expect: AmqpExpectSpec | None = None
    redis: RedisSpec | None = None
    await_: AwaitSpec | None = Field(default=None, alias="await")
    sleep: PositiveSeconds | None = None
    think: ThinkSpec | PositiveSeconds | None = None
    branch: BranchSpec | None = None
    python: Any = Field(default=None, exclude=True, description="Python API only: a callable(run) -> value")

    @model_validator(mode="after")
    def _one_kind(self) -> StepSpec:
        kinds = [k for k in (*KINDS, "python") if getattr(self, k) is not None]
        if len(kinds) != 1:
            shown = ", ".join(k.rstrip("_") for k in KINDS)
            raise ValueError(
                f"a step needs exactly one kind ({shown}); found {', '.join(k.rstrip('_') for k in kinds) or 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in (*KINDS, "python") if getattr(self, k) is not None).rstrip("_")


class ChainSpec(Strict):
    name: StepName
    description: str = ""
    vars: dict[str, Any] | None = None
    seed: Literal["customers"] | None = Field(
        default=None, description="draw a seeded customer per iteration"
    )
    weight: float = Field(default=1, gt=0, le=MAX_WEIGHT)
    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS)


BranchPath.model_rebuild()
