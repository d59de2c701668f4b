"""Read-only Redis inspection: walk keys with SCAN and show type, TTL, size and a bounded preview.

Non-destructive by construction: :class:`ReadOnlyRedis` refuses any command
outside a read-only allowlist *before* sending it, pipelines are disabled,
lists and streams used as queues are previewed with ``LRANGE``/``XRANGE``
(never popped), and ``KEYS`` is never sent (``SCAN`` only).

Not even a key's LRU/LFU data changes.  ``SCAN``, ``TYPE``, ``PTTL``,
``OBJECT ENCODING`` and ``MEMORY USAGE`` look keys up without touching them
(Redis passes ``LOOKUP_NOTOUCH`` for them), so they are always used.  Reading a
value (``GETRANGE``, ``LRANGE``, ``HSCAN``, ``STRLEN``, …) does touch it, unless
the connection is in ``CLIENT NO-TOUCH`` mode, which Redis has from 7.2.  On an
older server (or an ACL without ``client|no-touch``) the inspector therefore
shows type, TTL, encoding and memory size but no value preview, and says why;
``allow_touch`` (``--allow-touch``) previews anyway, knowing that each preview
resets the key's idle time and bumps its LFU counter.  A test measures
``OBJECT IDLETIME`` and ``OBJECT FREQ`` before and after.

Values and key names are shown masked (secrets, and whole values of keys whose
names say they hold one) and with control characters escaped, so a key name
cannot send escape sequences to the terminal.  For defence in depth, run it as
an ACL user limited to reads:

    ACL SETUSER loadstack-inspector on >CHANGE-ME ~* +@read -keys

(see docs/inspection.md).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import redis

from loadstack import masking, safety, settings
from loadstack.masking import MASK, mask_url, printable

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
    memory_bytes: int | None = None
    note: str | None = None

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


NO_TOUCH_MISSING = (
    "no value preview: this Redis has no CLIENT NO-TOUCH (7.2+), so reading a value would reset its "
    "idle time and LFU counter; pass --allow-touch to preview anyway"
)
# Keys (and hash or stream fields) whose names say they hold a secret: their values are never read or
# shown, whatever the flags (--allow-touch only decides whether other values may be read).  Sessions
# in all their spellings (PHPSESSID, sess:, sid), JWTs, CSRF/XSRF tokens, cookies and bearer tokens too.
SECRET_KEY = re.compile(
    r"(token|secret|passw|pwd|sess|(^|[^a-z])sid([^a-z]|$)|api[_-]?key|credential|auth|jwt|csrf|xsrf|cookie"
    r"|bearer|private|signature|otp|nonce)",
    re.I,
)


class RedisInspector:
    def __init__(
        self,
        url: str | None = None,
        *,
        allow_remote: bool = False,
        timeout: float = 5.0,
        allow_touch: bool = False,
    ) -> None:
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
                **safety.redis_options(self.url, allow_remote=allow_remote),
            )
        except (ValueError, safety.RemoteTargetError) as exc:
            raise InspectError(str(exc)) from None
        self.allow_touch = allow_touch
        self.no_touch: bool | None = None  # known after the first scan

    def _prepare(self) -> None:
        if self.no_touch is not None:
            return
        try:
            self.client.dbsize()  # a @read command, so a read-only ACL user may send it (PING may not)
        except (redis.RedisError, safety.RemoteTargetError) as exc:
            raise InspectError(f"cannot reach {mask_url(self.url)}: {exc}") from None
        try:
            self.client.execute_command("CLIENT", "NO-TOUCH", "ON")
            self.no_touch = True
        except redis.RedisError:  # Redis < 7.2, or an ACL without client|no-touch
            self.no_touch = False

    @property
    def previews(self) -> bool:
        """Whether values may be read: without touching them, or because the user accepted it."""
        return bool(self.no_touch) or self.allow_touch

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
        try:
            memory = c.memory_usage(key)
        except redis.RedisError:
            memory = None
        if SECRET_KEY.search(str(_text(key))):  # not even read: a secret's preview is always the mask
            return KeyReport(_text(key), kind, ttl, None, encoding, MASK, False, memory)
        if not self.previews:
            return KeyReport(_text(key), kind, ttl, None, encoding, None, False, memory, NO_TOUCH_MISSING)
        size, preview, truncated = self._value(key, kind)
        preview = _hide_secret_fields(preview)
        return KeyReport(
            _text(key), kind, ttl, size, encoding, masking.current().mask_obj(preview), truncated, memory
        )

    def _value(self, key: bytes | str, kind: str) -> tuple[int | None, Any, bool]:
        """Size and a bounded preview (these reads touch the key unless CLIENT NO-TOUCH is on)."""
        c = self.client
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
        return size, preview, truncated

    def close(self) -> None:
        self.client.close()


def _hide_secret_fields(preview: Any) -> Any:
    """A hash's (or a stream entry's) fields named like secrets, their values masked."""
    if isinstance(preview, dict):
        return {k: MASK if SECRET_KEY.search(str(k)) else _hide_secret_fields(v) for k, v in preview.items()}
    if isinstance(preview, list):
        return [_hide_secret_fields(v) for v in preview]
    return preview


def format_reports(reports: list[KeyReport], width: int = 80) -> str:
    if not reports:
        return "(no keys matched)"
    lines = [f"{'KEY':<48} {'TYPE':<7} {'TTL':>9} {'SIZE':>7} {'MEMORY':>8}  PREVIEW"]
    for r in reports:
        ttl = "-" if r.ttl_ms is None else f"{r.ttl_ms / 1000:.0f}s"
        text = printable(str(r.preview) if r.note is None else "-")
        if len(text) > width:
            text = text[: width - 1] + "…"
        key = printable(r.key)
        key = key if len(key) <= 48 else key[:47] + "…"
        size = r.size if r.size is not None else "-"
        memory = r.memory_bytes if r.memory_bytes is not None else "-"
        lines.append(f"{key:<48} {r.type:<7} {ttl:>9} {size:>7} {memory:>8}  {text}")
    notes = sorted({r.note for r in reports if r.note})
    return "\n".join(masking.current()(line) for line in lines + notes)
