"""The scenario an importer produces and a writer renders: HTTP calls plus the data flowing between them.

Values inside a call (path segments, query, headers, bodies) are plain JSON
values, :class:`Ref` (a variable captured earlier or generated per iteration),
:class:`Env` (a recorded secret, read from an environment variable at run time
so it is never written into generated files) or :class:`Text` (a string built
from literal parts and refs, such as ``Bearer {access_token}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Ref:
    """The current value of a scenario variable."""

    var: str


@dataclass(frozen=True)
class Env:
    """A value the run reads from the environment variable ``name`` (a recorded secret, never copied)."""

    name: str


Part = str | Ref | Env


@dataclass(frozen=True)
class Text:
    """A string made of literal parts, variable references and environment values."""

    parts: tuple[Part, ...]

    @classmethod
    def of(cls, *parts: Part) -> Text | str | Ref | Env:
        """The simplest equivalent: a plain string or a lone ref when possible."""
        merged: list[Part] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            elif part != "":
                merged.append(part)
        if not merged:
            return ""
        if len(merged) == 1:
            return merged[0]
        return cls(tuple(merged))


@dataclass(frozen=True)
class Generated:
    """A value made fresh for every iteration, so a replay does not collide with earlier data."""

    kind: str  # email | username | secret | uuid
    note: str = ""


@dataclass(frozen=True)
class Capture:
    """Save a response value into ``var``: from the JSON body, a header, a cookie or an HTML form field."""

    var: str
    json: JsonPath | None = None
    header: str | None = None
    cookie: str | None = None  # a Set-Cookie of the response
    html_input: str | None = None  # <input name=…> or <meta name=…> of an HTML response

    @property
    def json_path(self) -> str:
        """JSONPath as the chain engine reads it: ``$.items[0].id``, ``$['a key']``."""
        path = json_path(self.json or ())
        if path is None:
            raise ValueError(f"no JSON path for {self.json!r}")
        return path


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def json_path(keys: JsonPath) -> str | None:
    """The chain engine's JSON path for ``keys``; None when a key has both kinds of quote in it."""
    out = "$"
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
        elif _PLAIN_KEY.fullmatch(key):
            out += f".{key}"
        elif "'" not in key:
            out += f"['{key}']"
        elif '"' not in key:
            out += f'["{key}"]'
        else:
            return None
    return out


@dataclass
class FilePart:
    """A file of a multipart body; ``path`` (``files/…``) is where the writer puts ``data``."""

    field: str
    filename: str
    content_type: str
    data: bytes
    lossy: bool = False  # the recording replaced bytes it could not show as text
    path: str = ""


@dataclass
class Multipart:
    fields: list[tuple[str, Any]]
    files: list[FilePart]


@dataclass
class BodyFile:
    """A body sent as raw bytes from a file: binary, large, or missing from the recording."""

    data: bytes
    content_type: str
    recorded: bool = True  # False: the recording left the body out; the file is a placeholder
    size: int = 0  # the recorded size when not recorded
    path: str = ""


@dataclass
class Call:
    method: str
    path: list[str | Ref | Env]  # segments, without the query
    name: str  # the stat entry, ids grouped: /api/v1/orders/[id]
    step: str  # a unique step name: post_orders
    query: list[tuple[str, Any]] = field(default_factory=list)
    headers: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    form: list[tuple[str, Any]] | None = None  # application/x-www-form-urlencoded fields, decoded
    multipart: Multipart | None = None
    body: str | Text | Env | None = None  # any other text body, verbatim but for its secrets
    body_file: BodyFile | None = None
    content_type: str | None = None  # of ``body``
    trailing_slash: bool = False
    expect_status: list[int] = field(default_factory=list)
    captures: list[Capture] = field(default_factory=list)
    think_before: float = 0.0
    weight: int = 1

    def refs(self) -> set[str]:
        """The variables this call reads."""
        fields = self.multipart.fields if self.multipart else None
        return refs_in([self.path, self.query, self.headers, self.json, self.form, fields])

    def envs(self) -> set[str]:
        """The environment variables this call reads."""
        fields = self.multipart.fields if self.multipart else None
        return envs_in([self.path, self.query, self.headers, self.json, self.form, fields, self.body])


@dataclass
class Scenario:
    name: str
    description: str
    calls: list[Call]
    generated: dict[str, Generated] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # environment variable -> what it stands for

    def refs(self) -> set[str]:
        return set().union(set(), *(call.refs() for call in self.calls))

    def secrets_to_set(self) -> list[str]:
        """What both writers print first: the environment variables the recorded secrets became."""
        if not self.secrets:
            return []
        return [
            "Recorded secrets are read from environment variables at run time; set:",
            *(f"  {name}: {what}" for name, what in sorted(self.secrets.items())),
        ]

    def keeps_recorded_login(self) -> bool:
        return bool({"HAR_USERNAME", "HAR_PASSWORD"} & set(self.secrets))

    def files(self) -> list[FilePart | BodyFile]:
        """Every file the calls send, in order."""
        out: list[FilePart | BodyFile] = []
        for call in self.calls:
            if call.multipart:
                out += call.multipart.files
            if call.body_file:
                out.append(call.body_file)
        return out


def envs_in(value: Any) -> set[str]:
    if isinstance(value, Env):
        return {value.name}
    if isinstance(value, Text):
        return {p.name for p in value.parts if isinstance(p, Env)}
    if isinstance(value, dict):
        return set().union(set(), *(envs_in(v) for v in value.values()))
    if isinstance(value, list | tuple):
        return set().union(set(), *(envs_in(v) for v in value))
    return set()


def refs_in(value: Any) -> set[str]:
    if isinstance(value, Ref):
        return {value.var}
    if isinstance(value, Text):
        return {p.var for p in value.parts if isinstance(p, Ref)}
    if isinstance(value, dict):
        return set().union(set(), *(refs_in(v) for v in value.values()))
    if isinstance(value, list | tuple):
        return set().union(set(), *(refs_in(v) for v in value))
    return set()


_ID_SEGMENT = re.compile(
    r"^(\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}|(?=.*\d)[A-Za-z0-9_-]{20,})$",
    re.I,
)
_VERSION = re.compile(r"^v\d+$")


def looks_like_id(segment: str) -> bool:
    return bool(_ID_SEGMENT.fullmatch(segment))


def stat_name(path: list[str | Ref | Env]) -> str:
    """``/api/v1/orders/42`` and ``/api/v1/orders/{order_id}`` both become ``/api/v1/orders/[id]``."""
    return "/" + "/".join(
        "[secret]" if isinstance(s, Env) else "[id]" if isinstance(s, Ref) or looks_like_id(s) else s
        for s in path
    )


class Names(set[str]):
    """Names taken so far; :meth:`unique` hands out ``base``, ``base_2``, … in constant time each."""

    def __init__(self) -> None:
        super().__init__()
        self._next: dict[str, int] = {}

    def unique(self, base: str) -> str:
        candidate, n = base, self._next.get(base, 2)
        while candidate in self:
            candidate, n = f"{base}_{n}", n + 1
        self._next[base] = n
        self.add(candidate)
        return candidate


def step_name(method: str, name: str, taken: Names) -> str:
    """``post_orders``, ``get_orders_id``: readable, unique, valid as a chain step name (<= 64)."""
    words = [
        "id" if s == "[id]" else re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()
        for s in name.split("/")
        if s and s != "api" and not _VERSION.fullmatch(s)
    ]
    base = "_".join([method.lower(), *[w for w in words if w]])[:56] or method.lower()
    return taken.unique(base)


def singular(word: str) -> str:
    word = word.lower()
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def snake(name: str) -> str:
    """``orderId`` / ``X-CSRF-Token`` → ``order_id`` / ``x_csrf_token``."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "value"


def unique_var(base: str, taken: Names) -> str:
    return taken.unique(re.sub(r"^(\d)", r"v_\1", snake(base))[:56])
