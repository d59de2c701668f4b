"""Read-only Redis inspection: walk keys with SCAN and show type, TTL, size and a bounded preview.

Non-destructive by construction: :class:`ReadOnlyRedis` refuses any command
outside a read-only allowlist *before* sending it, pipelines are disabled,
lists and streams used as queues are previewed with ``LRANGE``/``XRANGE``
(never popped), and ``KEYS`` is never sent (``SCAN`` only).  ``TYPE``, ``PTTL``,
``OBJECT`` and ``MEMORY USAGE`` do not touch a key's LRU/LFU data; on Redis
>= 7.2 the inspector also switches on ``CLIENT NO-TOUCH`` so previews leave
it alone too.  For defence in depth, run it as an ACL user limited to reads:

    ACL SETUSER loadstack-inspector on >CHANGE-ME ~* +@read -keys

(see docs/inspection.md).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass
from typing import Any

import redis

from loadstack import safety, settings
from loadstack.masking import mask_url

# Command -> allowed first arguments (subcommands), or None for "any arguments".
READ_ONLY_COMMANDS: dict[str, frozenset[str] | None] = {
    "SCAN": None,
    "TYPE": None,
    "TTL": None,
    "PTTL": None,
    "EXISTS": None,
    "STRLEN": None,
    "GETRANGE": None,
    "HLEN": None,
    "HSCAN": None,
    "LLEN": None,
    "LRANGE": None,
    "SCARD": None,
    "SSCAN": None,
    "ZCARD": None,
    "ZRANGE": None,
    "XLEN": None,
    "XRANGE": None,
    "DBSIZE": None,
    "PING": None,
    "OBJECT": frozenset({"ENCODING", "IDLETIME", "FREQ", "REFCOUNT"}),
    "MEMORY": frozenset({"USAGE"}),
    "CLIENT": frozenset({"NO-TOUCH"}),
}
PREVIEW_ITEMS = 10
PREVIEW_BYTES = 256


class ReadOnlyViolation(Exception):
    """A command outside the allowlist was attempted; it was not sent."""


class InspectError(Exception):
    """Bad input (pattern, URL, limit) or an unreachable server: one line, exit status 2."""


class ReadOnlyRedis(redis.Redis):
    """A redis-py client that can only send allowlisted read commands."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        check_read_only(args)
        return super().execute_command(*args, **options)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        raise ReadOnlyViolation("pipelines are disabled on the read-only inspector client")

    def transaction(self, *args: Any, **kwargs: Any) -> Any:
        raise ReadOnlyViolation("transactions are disabled on the read-only inspector client")


def check_read_only(args: tuple[Any, ...]) -> None:
    if not args:
        raise ReadOnlyViolation("empty command")
    words = str(args[0]).upper().split()
    command = words[0]
    if command not in READ_ONLY_COMMANDS:
        raise ReadOnlyViolation(f"{command} is not in the inspector's read-only allowlist; not sent")
    allowed = READ_ONLY_COMMANDS[command]
    if allowed is not None:
        sub = words[1] if len(words) > 1 else (str(args[1]).upper() if len(args) > 1 else "")
        if sub not in allowed:
            raise ReadOnlyViolation(
                f"{command} {sub} is not in the inspector's read-only allowlist; not sent"
            )


_BAD_PATTERN = re.compile(r"[\s\x00-\x1f]")


def check_pattern(pattern: str) -> str:
    """Reject patterns Redis would misread: empty, whitespace/control chars, unclosed ``[``, trailing ``\\``."""
    if not pattern:
        raise InspectError("empty key pattern; use '*' to match everything")
    if _BAD_PATTERN.search(pattern):
        raise InspectError(f"key pattern {pattern!r} contains whitespace or control characters")
    depth, i = 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i == len(pattern) - 1:
                raise InspectError(f"key pattern {pattern!r} ends with an escape character")
            i += 2
            continue
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        i += 1
    if depth:
        raise InspectError(f"key pattern {pattern!r} has an unclosed '['")
    return pattern


@dataclass
class KeyReport:
    key: str
    type: str
    ttl_ms: int | None
    size: int | None
    encoding: str | None
    preview: Any
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return repr(value)
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    return value


class RedisInspector:
    def __init__(self, url: str | None = None, *, allow_remote: bool = False, timeout: float = 5.0) -> None:
        self.url = url or settings.current().redis_url
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise InspectError(
                f"not a Redis URL: {mask_url(self.url)!r} (expected redis://[user:pass@]host:6379/0)"
            )
        try:
            if not self.url.startswith("unix://"):
                safety.check_target(self.url, allow_remote=allow_remote, what="Redis")
            self.client: ReadOnlyRedis = ReadOnlyRedis.from_url(
                self.url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
        except (ValueError, safety.RemoteTargetError) as exc:
            raise InspectError(str(exc)) from None
        self._no_touch_tried = False

    def _prepare(self) -> None:
        if self._no_touch_tried:
            return
        self._no_touch_tried = True
        try:
            self.client.dbsize()  # a @read command, so a read-only ACL user may send it (PING may not)
        except redis.RedisError as exc:
            raise InspectError(f"cannot reach {mask_url(self.url)}: {exc}") from None
        with contextlib.suppress(
            redis.RedisError
        ):  # Redis < 7.2 or an ACL without client|no-touch: previews may update LRU
            self.client.execute_command("CLIENT", "NO-TOUCH", "ON")

    def scan(self, pattern: str = "*", *, limit: int = 100) -> list[KeyReport]:
        """Up to ``limit`` keys matching ``pattern`` (SCAN order)."""
        check_pattern(pattern)
        if limit < 1:
            raise InspectError("--limit must be >= 1")
        self._prepare()
        reports: list[KeyReport] = []
        try:
            for key in self.client.scan_iter(match=pattern, count=200):
                reports.append(self.describe(key))
                if len(reports) >= limit:
                    break
        except redis.RedisError as exc:
            raise InspectError(f"{type(exc).__name__}: {exc}") from None
        return reports

    def describe(self, key: bytes | str) -> KeyReport:
        c = self.client
        kind = _text(c.type(key))
        pttl = c.pttl(key)
        ttl = None if pttl is None or pttl < 0 else int(pttl)
        try:
            encoding = _text(c.object("ENCODING", key))
        except redis.RedisError:
            encoding = None
        size: int | None
        preview: Any
        truncated = False
        if kind == "string":
            size = c.strlen(key)
            preview = _text(c.getrange(key, 0, PREVIEW_BYTES - 1))
            truncated = size > PREVIEW_BYTES
        elif kind == "hash":
            size = c.hlen(key)
            _, page = c.hscan(key, 0, count=PREVIEW_ITEMS)
            preview = dict(list(_text(page).items())[:PREVIEW_ITEMS])
            truncated = size > len(preview)
        elif kind == "list":
            size = c.llen(key)
            preview = _text(c.lrange(key, 0, PREVIEW_ITEMS - 1))
            truncated = size > PREVIEW_ITEMS
        elif kind == "set":
            size = c.scard(key)
            _, members = c.sscan(key, 0, count=PREVIEW_ITEMS)
            preview = sorted(_text(members))[:PREVIEW_ITEMS]
            truncated = size > len(preview)
        elif kind == "zset":
            size = c.zcard(key)
            preview = [[_text(m), s] for m, s in c.zrange(key, 0, PREVIEW_ITEMS - 1, withscores=True)]
            truncated = size > PREVIEW_ITEMS
        elif kind == "stream":
            size = c.xlen(key)
            preview = [[_text(i), _text(f)] for i, f in c.xrange(key, count=PREVIEW_ITEMS)]
            truncated = size > PREVIEW_ITEMS
        else:
            size, preview = None, None
        return KeyReport(_text(key), kind, ttl, size, encoding, preview, truncated)

    def close(self) -> None:
        self.client.close()


def format_reports(reports: list[KeyReport], width: int = 80) -> str:
    if not reports:
        return "(no keys matched)"
    lines = [f"{'KEY':<48} {'TYPE':<7} {'TTL':>9} {'SIZE':>7}  PREVIEW"]
    for r in reports:
        ttl = "-" if r.ttl_ms is None else f"{r.ttl_ms / 1000:.0f}s"
        text = str(r.preview)
        if len(text) > width:
            text = text[: width - 1] + "…"
        key = r.key if len(r.key) <= 48 else r.key[:47] + "…"
        lines.append(f"{key:<48} {r.type:<7} {ttl:>9} {r.size if r.size is not None else '-':>7}  {text}")
    return "\n".join(lines)
