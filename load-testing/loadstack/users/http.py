"""HTTP users: Locust's ``FastHttpUser`` with loadstack's run context.

Every request carries the run id (``X-Loadstack-Run-Id`` header, so the system
under test can tag what it writes), the run's credentials when an auth mode is
set (``Authorization``, unless the request sets its own), and reports its user
class in the request event context (so gates and stats can be broken down per
user class).

Every request and every redirect hop passes loadstack's target guard on the
address geventhttpclient really connects to: a path such as ``@other.host/x``,
an absolute URL or a ``Location`` header cannot send load (or the run's token)
to a host that is not local.  A refused request is a failure in Locust's stats
and is never sent; the bearer token only goes to the target's own origin.

Two checks, both off the per-request path: the host of each hop (remembered
while it stays the same), and the IP address of each new connection, after
name resolution (:func:`_guarded_connect_socket`, once per pooled socket), so a
name the guard allowed cannot be resolved somewhere else.  Every
:class:`AuthorizedSession`, the users' and the ``await`` probes' alike, has
the guarded user agent.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from geventhttpclient.connectionpool import ConnectionPool
from locust.contrib.fasthttp import FastHttpSession, FastHttpUser, FastRequest, LocustUserAgent

from loadstack import auth, runcontext, safety
from loadstack.telemetry import tracing_of
from loadstack.users.base import user_context

RUN_ID_HEADER = "X-Loadstack-Run-Id"
_connect_socket = ConnectionPool._connect_socket


def _guarded_connect_socket(self: ConnectionPool, sock: Any, address: Any) -> Any:
    """geventhttpclient's dial, refused when the resolved address is not allowed (once per new socket)."""
    if isinstance(address, tuple):
        try:
            safety.check_address(
                address[0],
                allow_remote=runcontext.current().settings.allow_remote,
                what="proxy" if self._use_proxy else "request URL",
                shown=f"{self._connection_host}:{self._connection_port}",
            )
        except safety.RemoteTargetError as exc:
            raise safety.TargetRefused(str(exc)) from None
    return _connect_socket(self, sock, address)


# Every geventhttpclient pool in a loadstack process (SSL pools call this one too): FastHttpUser
# subclasses that bypass loadstack's HttpUser still dial through the guard.
ConnectionPool._connect_socket = _guarded_connect_socket  # type: ignore[method-assign]


class GuardedRequest(FastRequest):
    """A request whose redirect to another origin drops the trace context, as it drops ``Authorization``.

    Trace context goes to the target's origin only: a redirect elsewhere must not tell a third
    party which load-test iteration it is part of.
    """

    def redirect(self, code: int, location: str) -> None:
        super().redirect(code, location)
        if not self._is_same_origin():
            self.headers.discard("traceparent")
            self.headers.discard("tracestate")


class GuardedUserAgent(LocustUserAgent):
    """Locust's user agent, refusing any hop (the first request or a redirect) to a host not allowed.

    The check depends on the host only (a stack service name or ``localhost`` is resolved once,
    here), so the last host that passed is remembered: a user's requests to its one target cost a
    string comparison, not a check (let alone a name lookup).  Where the name really leads is
    checked again on each new connection (:func:`_guarded_connect_socket`).
    """

    _passed_host: str | None = None
    request_type = GuardedRequest

    def _urlopen(self, request: Any) -> Any:
        url = request.url_split
        if url.host != self._passed_host:
            try:
                safety.check_host(
                    url.host,
                    allow_remote=runcontext.current().settings.allow_remote,
                    what="request URL",
                    shown=str(url),
                )
            except safety.RemoteTargetError as exc:
                raise safety.TargetRefused(str(exc)) from None
            self._passed_host = url.host
        return super()._urlopen(request)


class AuthorizedSession(FastHttpSession):
    """A ``FastHttpSession`` that presents the auth mode's token (see :mod:`loadstack.auth`) to its target only.

    The token goes through the slot Locust itself fills with a URL's basic credentials
    (``auth_header``), set before each request: no extra header dict per request (this runs
    on every request).  A request that sets its own ``Authorization`` keeps it, basic
    credentials in the host URL win (as in Locust), and a request to another origin gets none.
    """

    _url_auth_header: str | None = None
    _origin: tuple[str, str, int | None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._url_auth_header = self.auth_header
        self.client.__class__ = GuardedUserAgent  # every session's hops pass the guard (await probes too)

    @classmethod
    def adopt(cls, session: FastHttpSession) -> AuthorizedSession:
        """Turn the session ``FastHttpUser`` built into this class (it has no hook for the class)."""
        session.__class__ = cls
        session._url_auth_header = session.auth_header  # type: ignore[attr-defined]
        session.client.__class__ = GuardedUserAgent
        return session  # type: ignore[return-value]

    def same_origin(self, url: str) -> bool:
        # A path starting with "/" is appended to base_url and keeps its authority: no parsing
        # (the common case, on every request); anything else ("@host/x", absolute URLs) is parsed.
        if url[:1] == "/":
            return True
        if self._origin is None:
            self._origin = safety.origin(self.base_url)
        return safety.origin(self._build_url(url)) == self._origin

    def request(self, method: str, url: str, *args: Any, headers: dict | None = None, **kwargs: Any) -> Any:
        if self._url_auth_header is None:
            credentials = auth.current(self.request_event)
            if (
                credentials is None
                or (headers and auth.has_authorization(headers))
                or not self.same_origin(url)
            ):
                self.auth_header = None
            else:
                try:
                    self.auth_header = credentials.authorization()
                except auth.AuthError:
                    self.auth_header = None  # no token now: the request goes out without one
        tracing = self._tracing
        if tracing is None:
            return super().request(method, url, *args, headers=headers, **kwargs)
        return self._traced(tracing, method, url, args, headers, kwargs)

    _tracing: Any = None  # loadstack.telemetry.spans.Tracing when OTel is on (set by HttpUser)

    def _traced(
        self, tracing: Any, method: str, url: str, args: Any, headers: dict | None, kwargs: Any
    ) -> Any:
        """The request inside an HTTP client span; trace context only to the target's origin."""
        full = self._build_url(url)
        parts = urlsplit(full)
        attributes = {
            "http.request.method": method.upper(),
            "url.full": tracing.url(full),
            "server.address": parts.hostname,
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
            "loadstack.request.name": kwargs.get("name") or url,
        }
        with tracing.request(method.upper(), attributes) as span:
            if self.same_origin(url):
                headers = tracing.inject_headers(dict(headers or {}))
            response = super().request(method, url, *args, headers=headers, **kwargs)
            status = getattr(response, "status_code", None)
            if status:
                span.set_attribute("http.response.status_code", int(status))
                if int(status) >= 400 and span.status.is_unset:
                    tracing.fail(span, f"HTTP {status}", str(status))
            return response


class HttpUser(FastHttpUser):
    """Base class for loadstack HTTP users (abstract: subclass it with tasks)."""

    abstract = True

    def __init__(self, *args, **kwargs) -> None:
        # FastHttpUser hands default_headers to its connection pool when it builds the client.
        self.default_headers = {**(type(self).default_headers or {}), **self.base_headers()}
        super().__init__(*args, **kwargs)
        self.client = AuthorizedSession.adopt(self.client)
        self.client._tracing = tracing_of(self.environment)
        self._context = user_context(self)

    def base_headers(self) -> dict[str, str]:
        return {RUN_ID_HEADER: runcontext.current().run_id}

    def context(self) -> dict:
        return self._context
