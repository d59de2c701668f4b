"""The schema of chain files (``load-testing/chains/*.yml``), validated before any load starts.

A step is a mapping with a ``name`` and exactly one *kind* key (``http``,
``ws``, ``sql``, ``amqp_publish``, ``amqp_expect``, ``redis``, ``await``,
``sleep``, ``think``, ``branch``) plus optional ``when``, ``save``,
``expect``, ``check``, ``repeat`` and ``on_failure``.  Each kind is its own
model (``HttpStepSpec`` …); ``StepSpec`` is their union, told apart by the kind
key that is present.  The same models are built by the Python API
(``loadstack.chains.steps``), so a chain written in Python and one written in
YAML run through the same engine.  ``python`` steps exist in the Python API only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from loadstack.durations import PositiveSeconds, Seconds

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
StepName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
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
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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
    backoff: float = Field(default=1.5, ge=1)
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
    row: int = Field(default=0, ge=0)
    field: str | None = None
    expr: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SaveSpec:
        if sum(v is not None for v in (self.json_path, self.header, self.column, self.field, self.expr)) != 1:
            raise ValueError("give exactly one of json, header, column, field, expr")
        return self


class ExpectSpec(Strict):
    status: int | list[int] | None = None
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
    weight: float | None = Field(default=None, gt=0)
    steps: list[StepSpec] = Field(min_length=1)


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


class StepBase(Strict):
    """What every step may have besides its kind; one subclass per kind adds the kind's own key."""

    kind: ClassVar[str]

    name: StepName
    when: str | None = None
    on_failure: Literal["stop", "continue"] | GotoSpec = "stop"
    repeat: RepeatSpec | None = None
    save: dict[str, SaveSpec | str] | None = None
    expect: ExpectSpec | None = None
    check: str | None = None


class HttpStepSpec(StepBase):
    kind: ClassVar[str] = "http"
    http: HttpSpec


class WsStepSpec(StepBase):
    kind: ClassVar[str] = "ws"
    ws: WsSpec


class SqlStepSpec(StepBase):
    kind: ClassVar[str] = "sql"
    sql: SqlSpec


class AmqpPublishStepSpec(StepBase):
    kind: ClassVar[str] = "amqp_publish"
    amqp_publish: AmqpPublishSpec


class AmqpExpectStepSpec(StepBase):
    kind: ClassVar[str] = "amqp_expect"
    amqp_expect: AmqpExpectSpec


class RedisStepSpec(StepBase):
    kind: ClassVar[str] = "redis"
    redis: RedisSpec


class AwaitStepSpec(StepBase):
    kind: ClassVar[str] = "await"
    await_: AwaitSpec = Field(alias="await")


class SleepStepSpec(StepBase):
    kind: ClassVar[str] = "sleep"
    sleep: PositiveSeconds


class ThinkStepSpec(StepBase):
    kind: ClassVar[str] = "think"
    think: ThinkSpec | PositiveSeconds


class BranchStepSpec(StepBase):
    kind: ClassVar[str] = "branch"
    branch: BranchSpec


class PythonStepSpec(StepBase):
    """Python API only: ``python(run) -> value``; never read from a chain file, never dumped."""

    kind: ClassVar[str] = "python"
    python: Callable[[Any], Any] = Field(exclude=True)


# The kind keys a chain file may use, and the keys every step may have.
FILE_KINDS = (
    "http",
    "ws",
    "sql",
    "amqp_publish",
    "amqp_expect",
    "redis",
    "await",
    "sleep",
    "think",
    "branch",
)
COMMON_KEYS = frozenset(f.alias or name for name, f in StepBase.model_fields.items())


def _kind_of(value: Any) -> str | None:
    """The union tag: the kind key of a mapping, or the ``kind`` of an already-built step model."""
    if isinstance(value, dict):
        return next((k for k in FILE_KINDS if k in value), None)
    return getattr(value, "kind", None)


def _problem(title: str, loc: tuple[str | int, ...], kind: str, message: str, value: Any) -> ValidationError:
    return ValidationError.from_exception_data(
        title, [{"type": PydanticCustomError(kind, message), "loc": loc, "input": value}]
    )


def _one_kind(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Exactly one kind key per step mapping, then the kind's own model.

    Error locations are the data's own: pydantic puts the union tag into them, which is removed
    here so ``steps[1].redis`` reads as written in the file, not ``steps[1].redis.redis``.
    """
    if not isinstance(value, dict | StepBase):
        raise PydanticCustomError("step_type", "a step is a mapping: a name and one kind key (http, sql, …)")
    if isinstance(value, dict):
        if "python" in value:
            raise _problem(
                "python step",
                ("python",),
                "python_in_file",
                "python steps exist only in the Python API (loadstack.chains.steps.python(name, fn) "
                "in a locustfile); a chain file cannot run Python code",
                value["python"],
            )
        kinds = [k for k in FILE_KINDS if k in value]
        unknown = [k for k in value if k not in COMMON_KEYS and k not in FILE_KINDS]
        if not kinds and unknown:
            raise ValidationError.from_exception_data(
                "step", [{"type": "extra_forbidden", "loc": (k,), "input": value[k]} for k in unknown]
            )
        if len(kinds) != 1:
            raise PydanticCustomError(
                "step_kind",
                f"a step needs exactly one kind ({', '.join(FILE_KINDS)}); found {', '.join(kinds) or 'none'}",
            )
    try:
        return handler(value)
    except ValidationError as exc:
        tag = _kind_of(value)
        errors: list[InitErrorDetails] = [
            {
                "type": PydanticCustomError(e["type"], e["msg"]),
                "loc": e["loc"][1:] if e["loc"][:1] == (tag,) else e["loc"],
                "input": e["input"],
            }
            for e in exc.errors()
        ]
        raise ValidationError.from_exception_data(exc.title, errors) from None


StepSpec = Annotated[
    Annotated[HttpStepSpec, Tag("http")]
    | Annotated[WsStepSpec, Tag("ws")]
    | Annotated[SqlStepSpec, Tag("sql")]
    | Annotated[AmqpPublishStepSpec, Tag("amqp_publish")]
    | Annotated[AmqpExpectStepSpec, Tag("amqp_expect")]
    | Annotated[RedisStepSpec, Tag("redis")]
    | Annotated[AwaitStepSpec, Tag("await")]
    | Annotated[SleepStepSpec, Tag("sleep")]
    | Annotated[ThinkStepSpec, Tag("think")]
    | Annotated[BranchStepSpec, Tag("branch")]
    | Annotated[PythonStepSpec, Tag("python")],
    Discriminator(_kind_of),
    WrapValidator(_one_kind),
]


class ChainSpec(Strict):
    name: StepName
    description: str = ""
    vars: dict[str, Any] | None = None
    seed: Literal["customers"] | None = Field(
        default=None, description="draw a seeded customer per iteration"
    )
    weight: float = Field(default=1, gt=0)
    steps: list[StepSpec] = Field(min_length=1)


BranchPath.model_rebuild()
