"""WebSocket users: a JSON-over-WebSocket client that reports every protocol step to Locust.

Client library: ``websocket-client``.  It is a plain synchronous client on the
``socket`` module, which Locust's gevent monkey-patching makes cooperative, so
each user gets a real socket without threads or an asyncio loop per greenlet.
The ``websockets`` library's sync client runs a background thread per
connection, which is heavier under gevent for no gain here.

Each step (connect, request/ack, receive, close) is a Locust request with
``request_type="WS"``.  A dropped connection is a failure; the next step that
needs the socket reconnects.

The handshake goes through loadstack's egress point (:func:`open_websocket`):
loadstack dials the socket itself (:func:`loadstack.safety.connect`, every
resolved address checked) and follows redirects itself, each hop through the
guard, with ``Authorization`` and ``Cookie`` only for the first URL's origin.
websocket-client would otherwise follow up to three redirects unchecked and
use ``http_proxy``/``https_proxy`` from the environment.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import websocket
from locust import User
from locust.env import Environment
from websocket._handshake import SUPPORTED_REDIRECT_STATUSES

from loadstack import auth, runcontext, safety
from loadstack.users.base import RequestFailure, TimedClient, user_context

Frame = dict[str, Any]
Predicate = Callable[[Frame], bool]


def ws_url(host: str, path: str) -> str:
    """``http://h:1/x`` + ``/ws`` → ``ws://h:1/ws`` (``https`` → ``wss``)."""
    parts = urlsplit(host if "://" in host else f"http://{host}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, path, "", ""))


MAX_REDIRECTS = 3  # as many as websocket-client would follow
# Sent to the first URL's origin only (a redirect elsewhere gets none): credentials and trace context.
_CREDENTIAL_HEADERS = ("authorization", "cookie", "traceparent", "tracestate")


def _tunnel(sock: socket.socket, host: str, port: int) -> None:
    """HTTP CONNECT through the proxy ``--allow-proxy`` named (the socket is already dialled to it)."""
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(4096)
        if not chunk or len(reply) > 65536:
            raise websocket.WebSocketProxyException("the proxy closed the connection during CONNECT")
        reply += chunk
    status = reply.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        raise websocket.WebSocketProxyException(f"the proxy refused CONNECT: {status[1:2]}")


def _dial(url: str, timeout: float, allow_remote: bool) -> socket.socket:
    """The handshake's socket: dialled through the guard (to the target, or to the allowed proxy)."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host, port = parts.hostname or "", parts.port or (443 if secure else 80)
    proxy = safety.proxy()
    if proxy is None:
        sock = safety.connect(
            host, port, timeout=timeout, allow_remote=allow_remote, what="WebSocket URL", shown=url
        )
    else:
        sock = safety.connect(*proxy, timeout=timeout, allow_remote=allow_remote, what="proxy", shown=url)
        try:
            _tunnel(sock, host, port)
        except BaseException:
            sock.close()
            raise
    if secure:
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    return sock


def open_websocket(
    url: str, *, headers: Mapping[str, str], timeout: float, allow_remote: bool
) -> websocket.WebSocket:
    """A WebSocket connection whose every hop (the first URL and each redirect) passes the guard.

    Credentials (``Authorization``, ``Cookie``) go only to the first URL's origin.
    """
    first = safety.origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        safety.check_target(url, allow_remote=allow_remote, what="WebSocket URL")
        same = safety.origin(url) == first
        header = [f"{k}: {v}" for k, v in headers.items() if same or k.lower() not in _CREDENTIAL_HEADERS]
        ws = websocket.WebSocket()
        sock = _dial(url, timeout, allow_remote)
        try:
            ws.connect(url, timeout=timeout, header=header, socket=sock, redirect_limit=0)
            return ws
        except websocket.WebSocketException:
            response = ws.handshake_response
            location = response.headers.get("location") if response is not None else None
            if response is None or response.status not in SUPPORTED_REDIRECT_STATUSES or not location:
                raise
        finally:
            if not ws.connected:
                sock.close()
        url = urljoin(url, location)
        scheme = urlsplit(url).scheme
        url = url.replace(scheme, {"http": "ws", "https": "wss"}.get(scheme, scheme), 1)
    raise websocket.WebSocketException(f"more than {MAX_REDIRECTS} redirects")


def ack_for(cmd: str) -> Predicate:
    """Predicate for the server's acknowledgement of ``cmd``."""
    return lambda frame: frame.get("type") == "ack" and frame.get("cmd") == cmd


def server_latency_ms(frame: Frame, received_at: float) -> float | None:
    """Per-frame latency from a ``ts`` (unix seconds) the server stamped on the frame."""
    ts = frame.get("ts")
    return (received_at - ts) * 1000.0 if isinstance(ts, int | float) else None


class WebSocketClient(TimedClient):
    """A JSON WebSocket connection whose steps are timed Locust requests."""

    request_type = "WS"

    def __init__(
        self,
        environment: Environment,
        base_url: str,
        *,
        user: User | None = None,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(environment, user=user)
        self.base_url = base_url
        self.timeout = timeout
        self.headers = headers or {}
        self.ws: websocket.WebSocket | None = None

    @property
    def connected(self) -> bool:
        return self.ws is not None and self.ws.connected

    def connect(self, path: str, *, name: str = "connect") -> None:
        """Open the socket (closing a stale one first)."""
        self._drop()
        url = ws_url(self.base_url, path)
        with self.measure(name, span=self.ws_span("connect", name, url)):
            headers = auth.with_credentials(self.headers, self.environment.events.request) or {}
            if self._tracing is not None:  # trace context to the target's origin only, like credentials
                headers = self._tracing.inject_headers(dict(headers))
            self.ws = open_websocket(
                url,
                headers=headers,
                timeout=self.timeout,
                allow_remote=runcontext.current().settings.allow_remote,
            )

    def send_json(self, payload: Any) -> None:
        self._socket().send(json.dumps(payload, separators=(",", ":")))

    def recv_json(self, timeout: float | None = None) -> tuple[Frame, int]:
        """Next frame as JSON plus its size; raises on timeout or a closed socket."""
        ws = self._socket()
        ws.settimeout(timeout or self.timeout)
        raw = ws.recv()
        if not raw:
            raise websocket.WebSocketConnectionClosedException("connection closed by server")
        frame = json.loads(raw)
        if not isinstance(frame, dict):
            raise ValueError(f"expected a JSON object frame, got {type(frame).__name__}")
        return frame, len(raw)

    def request(self, name: str, payload: Any, until: Predicate, *, timeout: float | None = None) -> Frame:
        """Send ``payload``; time until a frame matching ``until`` arrives.

        Frames that do not match (e.g. data still in flight) are skipped; an
        ``error`` frame from the server fails the step with its message.
        """
        with self.measure(name, span=self.ws_span("send", name)) as timing:
            self.send_json(payload)
            deadline = time.monotonic() + (timeout or self.timeout)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching reply within {timeout or self.timeout:.1f}s")
                frame, size = self.recv_json(remaining)
                if until(frame):
                    timing.response_length = size
                    return frame
                if frame.get("type") == "error":
                    raise RequestFailure(f"server error: {frame.get('error')}")

    def receive(
        self,
        name: str,
        count: int,
        *,
        accept: Predicate = lambda f: f.get("type") == "data",
        latency: Callable[[Frame, float], float | None] = server_latency_ms,
        sequence_key: str | None = "seq",
        timeout: float | None = None,
    ) -> list[Frame]:
        """Receive ``count`` accepted frames, one stat entry sample per frame.

        A frame's recorded time is ``latency(frame, received_at)`` (by default
        receive time minus the server's ``ts``).  A gap in ``sequence_key``
        numbering is recorded as a failure of that frame.
        """
        if self._tracing is None:
            return self._receive(name, count, accept, latency, sequence_key, timeout)
        span_name, attributes = self.ws_span("receive", name) or (name, {})
        with self._tracing.request(span_name, {**attributes, "loadstack.ws.frames": count}):
            return self._receive(name, count, accept, latency, sequence_key, timeout)

    def _receive(
        self,
        name: str,
        count: int,
        accept: Predicate,
        latency: Callable[[Frame, float], float | None],
        sequence_key: str | None,
        timeout: float | None,
    ) -> list[Frame]:
        frames: list[Frame] = []
        expected: int | None = None
        while len(frames) < count:
            start = time.perf_counter()
            try:
                frame, size = self.recv_json(timeout)
            except Exception as exc:
                self.report(name, (time.perf_counter() - start) * 1000.0, error=exc)
                self._drop()
                raise RequestFailure(
                    f"{name}: {type(exc).__name__} after {len(frames)}/{count} frames"
                ) from exc
            if not accept(frame):
                continue
            received_at = time.time()
            measured = latency(frame, received_at)
            elapsed = measured if measured is not None else (time.perf_counter() - start) * 1000.0
            error = None
            if sequence_key is not None and isinstance(seq := frame.get(sequence_key), int):
                if expected is not None and seq != expected:
                    error = f"sequence gap: expected {expected}, got {seq}"
                expected = seq + 1
            self.report(name, max(elapsed, 0.0), response_length=size, error=error)
            frames.append(frame)
        return frames

    def ws_span(self, operation: str, name: str, url: str | None = None) -> tuple[str, dict[str, Any]] | None:
        """A WebSocket span (HTTP client conventions for the handshake), or None when not traced."""
        if self._tracing is None:
            return None
        url = url or ws_url(self.base_url, "/")
        parts = urlsplit(url)
        attributes: dict[str, Any] = {
            "url.full": self._tracing.url(url) if operation == "connect" else None,
            "server.address": parts.hostname,
            "server.port": parts.port or (443 if parts.scheme == "wss" else 80),
            "network.protocol.name": "websocket",
            "loadstack.ws.operation": operation,
            "loadstack.request.name": name,
        }
        if operation == "connect":
            attributes["http.request.method"] = "GET"
            return "GET", attributes
        return f"WS {operation}", attributes

    def close(self, *, name: str = "disconnect") -> None:
        if self.ws is None:
            return
        with self.measure(name):
            ws, self.ws = self.ws, None
            ws.close(timeout=self.timeout)

    def on_error(self, exc: BaseException) -> None:
        if isinstance(exc, websocket.WebSocketException | OSError):
            self._drop()

    def _socket(self) -> websocket.WebSocket:
        if self.ws is None or not self.ws.connected:
            raise websocket.WebSocketConnectionClosedException("not connected")
        return self.ws

    def _drop(self) -> None:
        if self.ws is not None:
            ws, self.ws = self.ws, None
            try:
                ws.abort()
                ws.shutdown()
            except Exception:  # an already broken socket is what we are discarding
                pass


class WebSocketUser(User):
    """A Locust user holding one :class:`WebSocketClient` as ``self.client``."""

    abstract = True
    timeout: float = 10.0
    headers: dict[str, str] = {}
    disconnect_name: str = "disconnect"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        if not self.host:
            raise ValueError(f"{type(self).__name__}: no host; pass --host or set host on the class")
        self.client = WebSocketClient(
            environment, self.host, user=self, timeout=self.timeout, headers=dict(self.headers)
        )

    def context(self) -> dict:
        return user_context(self)

    def on_stop(self) -> None:
        if self.client.connected:
            with contextlib.suppress(RequestFailure):
                self.client.close(name=self.disconnect_name)
