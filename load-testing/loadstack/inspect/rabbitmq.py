"""Non-destructive RabbitMQ queue inspection: look at messages without consuming them.

How a peek works, by queue type:

* **classic**: ``basic.get`` up to N messages without acknowledging them, then
  reject them all with ``requeue=True`` and close the channel.  RabbitMQ puts
  requeued messages back at their original position, so the queue's order is
  unchanged even while publishers keep appending.  Side effect: those
  messages now carry ``redelivered=True`` when a real consumer gets them.
* **quorum**: refused unless ``allow_delivery_count`` is set.  A requeue counts
  as a delivery attempt (``x-delivery-count``); RabbitMQ 4.x applies a default
  ``delivery-limit`` of 20, after which the broker dead-letters or drops the
  message, and requeued messages go to the back of the queue (seen on 3.10),
  so peeking a quorum queue can reorder and eventually lose messages.
* **stream**: read from an offset with a consumer; reading a stream never
  removes anything, so it is non-destructive by nature.

The queue must exist: inspection uses a passive declare only and never
creates or alters a queue.  Its type comes from the management API, else
``rabbitmqctl`` (local brokers), else the caller must say (``queue_type``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

import amqp

from loadstack import safety, settings
from loadstack.masking import mask_url, printable
from loadstack.retention import PackedSamples

# Heartbeats on: a broker notices a dead inspector (and frees what it holds) within 2 × this.
HEARTBEAT_S = 30
QUEUE_TYPES = ("classic", "quorum", "stream")


class InspectError(Exception):
    """Bad input or a refused inspection: one line, exit status 2."""


@dataclass
class QueueInfo:
    name: str
    type: str
    messages: int
    consumers: int


@dataclass
class PeekedMessage:
    index: int
    body: Any
    raw: bytes = field(repr=False)
    size: int
    content_type: str | None
    content_encoding: str | None
    headers: dict[str, Any]
    routing_key: str
    exchange: str
    redelivered: bool
    decode_error: str | None = None
    offset: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["raw"] = base64.b64encode(self.raw).decode() if self.decode_error else None
        if isinstance(self.body, bytes):
            data["body"] = None
        data["headers"] = {k: _jsonable(v) for k, v in self.headers.items()}
        return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def decode_body(raw: bytes, content_type: str | None, content_encoding: str | None) -> tuple[Any, str | None]:
    """(decoded body, None) or (raw bytes, reason) — a body that fails to decode is never lost."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    try:
        if ctype == "application/json" or ctype.endswith("+json"):
            return json.loads(raw.decode(content_encoding or "utf-8")), None
        if ctype.startswith("text/") or not ctype:
            text = raw.decode(content_encoding or "utf-8")
            return text, None
    except (UnicodeDecodeError, LookupError, json.JSONDecodeError) as exc:
        return raw, f"{type(exc).__name__}: {exc}"
    return raw, None


def _parse_url(url: str) -> urllib.parse.SplitResult:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number or out of range raises here
    except ValueError as exc:
        raise InspectError(f"not an AMQP URL ({exc}); expected amqp://user:pass@host:5672/vhost") from None
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise InspectError(f"not an AMQP URL: {mask_url(url)!r} (expected amqp://user:pass@host:5672/vhost)")
    return parts


def vhost_of(url: str) -> str:
    path = _parse_url(url).path
    vhost = urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"
    return vhost or "/"


class QueueInspector:
    """Inspect queues on one broker (one AMQP connection, opened on first use)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        management_url: str | None = None,
        queue_type: str | None = None,
        allow_delivery_count: bool = False,
        allow_remote: bool = False,
        timeout: float = 5.0,
    ) -> None:
        self.url = url or settings.current().amqp_url
        parts = _parse_url(self.url)
        try:
            safety.check_target(self.url, allow_remote=allow_remote, what="RabbitMQ")
        except safety.RemoteTargetError as exc:
            raise InspectError(str(exc)) from None
        if queue_type is not None and queue_type not in QUEUE_TYPES:
            raise InspectError(f"--queue-type must be one of {', '.join(QUEUE_TYPES)}")
        self.queue_type = queue_type
        self.allow_delivery_count = allow_delivery_count
        self.timeout = timeout
        self.user = urllib.parse.unquote(parts.username or "guest")
        self.password = urllib.parse.unquote(parts.password or "guest")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5672
        self.vhost = vhost_of(self.url)
        self.management_url = (
            management_url or settings.current().rabbitmq_management_url or f"http://{self.host}:15672"
        )
        self.allow_remote = allow_remote
        try:  # it receives the broker's credentials (HTTP Basic): the same rule as the broker itself
            safety.check_target(
                self.management_url, allow_remote=allow_remote, what="RabbitMQ management API"
            )
        except safety.RemoteTargetError as exc:
            raise InspectError(str(exc)) from None
        self._conn: amqp.Connection | None = None
        self._types: dict[str, str] = {}

    # -- connection ------------------------------------------------------------
    def connection(self) -> amqp.Connection:
        if self._conn is None or not self._conn.connected:
            conn = safety.amqp_connection(
                allow_remote=self.allow_remote,
                host=f"{self.host}:{self.port}",
                userid=self.user,
                password=self.password,
                virtual_host=self.vhost,
                connect_timeout=self.timeout,
                heartbeat=HEARTBEAT_S,
            )
            try:
                conn.connect()
            except (OSError, amqp.exceptions.AMQPError, safety.RemoteTargetError) as exc:
                raise InspectError(f"cannot connect to {mask_url(self.url)}: {exc}") from None
            self._conn = conn
        return self._conn

    def heartbeat(self) -> None:
        """Send/check AMQP heartbeats on a long-lived connection (py-amqp leaves that to its caller)."""
        if self._conn is not None and self._conn.connected:
            try:
                self._conn.heartbeat_tick()
            except (OSError, amqp.exceptions.AMQPError):
                self.close()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a dead connection is best effort
                self._conn.close()
            self._conn = None

    def __enter__(self) -> QueueInspector:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- queue facts -----------------------------------------------------------
    def info(self, queue: str) -> QueueInfo:
        """Depth and consumers from a passive declare; the queue must exist."""
        channel = self.connection().channel()
        try:
            ok = channel.queue_declare(queue, passive=True)
        except amqp.exceptions.NotFound:
            raise InspectError(
                f"queue {queue!r} does not exist in vhost {self.vhost!r} (inspection never creates queues)"
            ) from None
        finally:
            _close_quietly(channel)
        return QueueInfo(queue, self.type_of(queue), ok.message_count, ok.consumer_count)

    def type_of(self, queue: str) -> str:
        if self.queue_type:
            return self.queue_type
        if queue not in self._types:
            listed = {q["name"]: q["type"] for q in self.list_queues() or []}
            if queue not in listed:
                raise InspectError(
                    f"cannot tell whether {queue!r} is a classic, quorum or stream queue: enable the management "
                    "plugin (or run on the broker's host) or pass --queue-type"
                )
            self._types[queue] = listed[queue]
        return self._types[queue]

    def list_queues(self) -> list[dict[str, Any]] | None:
        """Every queue of the vhost (name, type, messages): management API, else ``rabbitmqctl``; None if neither."""
        return self._queues_from_management() or self._queues_from_rabbitmqctl()

    def _queues_from_management(self) -> list[dict[str, Any]] | None:
        url = f"{self.management_url}/api/queues/{urllib.parse.quote(self.vhost, safe='')}?columns=name,type,messages"
        request = urllib.request.Request(url)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with safety.urlopen(request, allow_remote=self.allow_remote, timeout=2) as resp:
                rows = json.load(resp)
        except (urllib.error.URLError, OSError, ValueError):
            return None
        return [
            {"name": r["name"], "type": r.get("type") or "classic", "messages": r.get("messages") or 0}
            for r in rows
        ]

    def _queues_from_rabbitmqctl(self) -> list[dict[str, Any]] | None:
        if not safety.is_local_host(self.host) or shutil.which("rabbitmqctl") is None:
            return None
        try:
            out = subprocess.run(
                [
                    "rabbitmqctl",
                    "list_queues",
                    "-p",
                    self.vhost,
                    "name",
                    "type",
                    "messages",
                    "--formatter",
                    "json",
                    "-q",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            rows = json.loads(out.stdout or "[]")
        except (OSError, subprocess.SubprocessError, ValueError):
            return None
        return [
            {"name": r["name"], "type": r.get("type") or "classic", "messages": r.get("messages") or 0}
            for r in rows
        ]

    # -- peek ------------------------------------------------------------------
    def peek(self, queue: str, count: int = 10, *, offset: str | int = "first") -> list[PeekedMessage]:
        """Up to ``count`` messages from the head of ``queue``, left in the queue in their order."""
        if count < 1:
            raise InspectError("count must be >= 1")
        kind = self.info(queue).type
        if kind == "stream":
            return self._read_stream(queue, count, offset)
        if kind == "quorum" and not self.allow_delivery_count:
            raise InspectError(
                f"{queue!r} is a quorum queue: every peek requeue counts toward its delivery-limit "
                "(RabbitMQ 4.x default 20; then the message is dead-lettered or dropped) and requeued messages "
                "may move to the back. Pass --allow-delivery-count to peek anyway."
            )
        return self._get_and_requeue(queue, count)

    def _get_and_requeue(self, queue: str, count: int) -> list[PeekedMessage]:
        channel = self.connection().channel()
        held: list[amqp.Message] = []
        try:
            for _ in range(count):
                message = channel.basic_get(queue, no_ack=False)
                if message is None:
                    break
                held.append(message)
            return [_peeked(i, m) for i, m in enumerate(held)]
        finally:
            # Requeue everything we hold, newest first, then close the channel (which would requeue
            # anything still unacknowledged anyway).
            for message in reversed(held):
                try:
                    channel.basic_reject(message.delivery_tag, requeue=True)
                except Exception:  # channel gone: the broker requeues unacked messages itself
                    break
            _close_quietly(channel)

    def _read_stream(self, queue: str, count: int, offset: str | int) -> list[PeekedMessage]:
        channel = self.connection().channel()
        received: list[amqp.Message] = []
        try:
            channel.basic_qos(0, min(count, 1000), False)

            def on_message(message: amqp.Message) -> None:
                received.append(message)
                channel.basic_ack(message.delivery_tag)  # flow control only; streams keep every message

            tag = channel.basic_consume(
                queue, no_ack=False, callback=on_message, arguments={"x-stream-offset": offset}
            )
            deadline = time.monotonic() + self.timeout
            while len(received) < count and time.monotonic() < deadline:
                try:
                    self.connection().drain_events(timeout=0.5)
                except TimeoutError:
                    break  # nothing more arrived: the end of the stream
            channel.basic_cancel(tag)
        finally:
            _close_quietly(channel)
        return [_peeked(i, m) for i, m in enumerate(received[:count])]


def _peeked(index: int, message: amqp.Message) -> PeekedMessage:
    raw = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    props = message.properties
    body, error = decode_body(raw, props.get("content_type"), props.get("content_encoding"))
    headers = dict(props.get("application_headers") or {})
    info = message.delivery_info
    return PeekedMessage(
        index=index,
        body=body,
        raw=raw,
        size=len(raw),
        content_type=props.get("content_type"),
        content_encoding=props.get("content_encoding"),
        headers=headers,
        routing_key=info.get("routing_key", ""),
        exchange=info.get("exchange", ""),
        redelivered=bool(info.get("redelivered")),
        decode_error=error,
        offset=headers.get("x-stream-offset"),
    )


def _close_quietly(channel: Any) -> None:
    with contextlib.suppress(Exception):  # already closed by the broker (e.g. after a 404)
        channel.close()


def format_messages(info: QueueInfo, messages: list[PeekedMessage], preview: int = 100) -> str:
    lines = [f"queue {info.name} ({info.type}): {info.messages} messages, {info.consumers} consumers"]
    if not messages:
        lines.append("  (no messages)")
    for m in messages:
        if m.decode_error:
            shown = f"<{m.size} raw bytes, not decodable: {m.decode_error}> {m.raw[:preview]!r}"
        else:
            text = m.body if isinstance(m.body, str) else json.dumps(m.body, default=str)
            shown = text if len(text) <= preview else text[: preview - 1] + "…"
        flag = " redelivered" if m.redelivered else ""
        lines.append(f"  #{m.index:<4} {m.content_type or '-':<18} {m.size:>7}B{flag}  {printable(shown)}")
    return "\n".join(lines)


class QueueSampler:
    """Depth and consumer count of some queues, sampled periodically while a run is active."""

    def __init__(self, url: str, queues: list[str], *, allow_remote: bool = False) -> None:
        self.inspector = QueueInspector(url, allow_remote=allow_remote, queue_type="classic")
        self.queues = queues
        # (time, depth, consumers) per queue, packed: reported whole, so kept whole (retention).
        self.samples: dict[str, PackedSamples] = {q: PackedSamples() for q in queues}
        self.latest: dict[str, tuple[int, int]] = {}
        self.errors: dict[str, str] = {}

    def sample_once(self) -> None:
        now = time.time()
        self.inspector.heartbeat()
        for queue in self.queues:
            try:
                channel = self.inspector.connection().channel()
                try:
                    ok = channel.queue_declare(queue, passive=True)
                finally:
                    _close_quietly(channel)
            except InspectError as exc:
                self.errors[queue] = str(exc)
                self.inspector.close()
                continue
            except amqp.exceptions.NotFound:
                self.errors[queue] = "queue does not exist (yet)"
                continue
            except (OSError, amqp.exceptions.AMQPError) as exc:
                self.errors[queue] = f"{type(exc).__name__}: {exc}"
                self.inspector.close()
                continue
            self.errors.pop(queue, None)
            self.latest[queue] = (ok.message_count, ok.consumer_count)
            self.samples[queue].append(round(now, 3), ok.message_count, ok.consumer_count)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for queue, packed in self.samples.items():
            samples = packed.rows()
            depths = [s[1] for s in samples]
            out[queue] = {
                "samples": samples,
                "max_depth": max(depths) if depths else None,
                "last_depth": depths[-1] if depths else None,
                "max_consumers": max((s[2] for s in samples), default=None),
                "error": self.errors.get(queue),
            }
        return out
