"""Target safety: loadstack aims at local systems unless told otherwise.

A load tool pointed at the wrong host is an outage, so every address loadstack
or its client libraries will contact passes :func:`check_target`, and it is
checked the way the library will read it: a PostgreSQL DSN through libpq's own
parser (every ``host``/``hostaddr`` of a multi-host list, and ``PGHOST``/
``PGHOSTADDR`` when the DSN names none), an AMQP URL with every ``;``
failover alternate, a Redis URL through redis-py's parser (query arguments
included), HTTP URLs as the HTTP client joins them (:func:`check_request`),
and every redirect hop (:func:`urlopen`).  Loopback addresses are allowed, and
``localhost`` and the service names of loadstack's own stack when they
resolve to loopback or into that stack's network (``LOADSTACK_STACK_SUBNET``,
which docker-compose.yml and the with-backends Kubernetes overlay set): a
hosts entry or a DNS search domain cannot turn ``target`` into another
machine.  Anything else needs ``--allow-remote``.

This module is also loadstack's one egress point for HTTP and WebSocket: its
:func:`urlopen` (seed, auth, OpenAPI, management API) and :func:`connect`
(WebSocket handshakes) check the address really dialled, after name
resolution, and never use a proxy from the environment; only the proxy
``--allow-proxy``/``LOADSTACK_ALLOW_PROXY`` names, itself guarded.  The
HTTP users' connection pool checks its dialled addresses with
:func:`check_address` (:mod:`loadstack.users.http`).  The backends' client
libraries resolve names themselves when they connect, so they get checked
addresses too: libpq through :func:`guarded_dsn` (``hostaddr=``), redis-py
through :func:`redis_options` and py-amqp/kombu through :func:`amqp_connection`
and :func:`kombu_connection` (their sockets are dialled by :func:`connect`).
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from loadstack import settings
from loadstack.masking import mask_dsn

# Service names of docker-compose.yml; inside that network they are local.
COMPOSE_SERVICES = frozenset(
    {
        "target",
        "consumer",
        "master",
        "worker",
        "postgres",
        "rabbitmq",
        "redis",
        "prometheus",
        "grafana",
        "alloy",
    }
)
LOCAL_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})
POSTGRES_SCHEMES = ("postgres://", "postgresql://")


class RemoteTargetError(ValueError):
    """A target outside the local allowlist without ``--allow-remote`` (or one that cannot be checked)."""


class TargetRefused(ConnectionRefusedError):
    """An HTTP request the guard stopped before it was sent (a failure in Locust's stats, not a crash)."""


def host_of(url: str) -> str:
    """The hostname of a URL (``http://u@h:8000/x`` → ``h``)."""
    if "://" not in url:
        url = "//" + url
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host:
        raise RemoteTargetError(f"cannot find a host in {mask_dsn(url)!r}")
    return host


def _stack_network() -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    subnet = settings.current().stack_subnet
    return ipaddress.ip_network(subnet, strict=False) if subnet else None


def is_local_address(address: str) -> bool:
    """An IP address loadstack may dial without ``--allow-remote``: loopback, or its own stack's network."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return is_local_address(str(ip.ipv4_mapped))
    network = _stack_network()
    return network is not None and ip.version == network.version and ip in network


def resolve(host: str, port: int | None = None) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` for a TCP connection (what a client library would dial), [] if the name does not resolve."""
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []


def is_local_host(host: str) -> bool:
    """A host name or address the guard allows without ``--allow-remote``.

    ``localhost`` and a stack service name count only when every address they resolve to is
    local (:func:`is_local_address`): the name alone says nothing about where the resolver
    sends it.  A name that resolves nowhere here reaches nothing from here (the host-side
    check of a compose run sees ``target`` so); wherever it is dialled, the address is checked
    again (:func:`connect`, the users' pool) and the stack's own master checks it where it resolves.
    """
    host = host.strip("[]").lower().rstrip(".")
    if host in LOCAL_NAMES or host in COMPOSE_SERVICES:
        return all(is_local_address(info[4][0]) for info in resolve(host))
    return is_local_address(host)


def _refuse(what: str, shown: str, host: str) -> RemoteTargetError:
    return RemoteTargetError(
        f"refusing to send load to {what} {shown!r}: {host!r} is not a loopback address or a "
        "loadstack compose service on its own network. Pass --allow-remote (or LOADSTACK_ALLOW_REMOTE=1) "
        "if you really mean it."
    )


def check_host(host: str, *, allow_remote: bool, what: str, shown: str) -> None:
    """One host name or address, as a client library resolved it from ``shown`` (a URL, masked here)."""
    if not allow_remote and not is_local_host(host):
        raise _refuse(what, mask_dsn(shown), host)


def check_address(address: str, *, allow_remote: bool, what: str, shown: str) -> None:
    """The IP address a socket is about to connect to (after name resolution): the last word."""
    if not allow_remote and not is_local_address(address):
        raise _refuse(what, mask_dsn(shown), address)


def _check_hosts(hosts: Iterable[str], *, allow_remote: bool, what: str, shown: str) -> None:
    for host in hosts:
        check_host(host, allow_remote=allow_remote, what=what, shown=shown)


def check_target(
    url: str, *, allow_remote: bool, what: str = "host", environ: Mapping[str, str] | None = None
) -> None:
    """Raise :class:`RemoteTargetError` unless every host ``url`` will reach is local (or remote is allowed).

    ``environ`` is the environment a PostgreSQL client would see (``PGHOST`` and friends).
    """
    if url.startswith(POSTGRES_SCHEMES) or ("://" not in url and "=" in url):
        check_postgres(url, allow_remote=allow_remote, what=what, environ=environ)
    elif url.startswith(("amqp://", "amqps://", "pyamqp://")):
        check_amqp(url, allow_remote=allow_remote, what=what)
    elif url.startswith(("redis://", "rediss://", "unix://")):
        check_redis(url, allow_remote=allow_remote, what=what)
    else:
        _check_hosts([host_of(url)], allow_remote=allow_remote, what=what, shown=mask_dsn(url))


def _postgres_params(dsn: str, environ: Mapping[str, str] | None) -> dict[str, str]:
    """``dsn`` as libpq parses it; a libpq service (``service=``/``PGSERVICE``) is refused."""
    import psycopg2.extensions

    try:
        params: dict[str, str] = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError as exc:
        raise RemoteTargetError(f"not a PostgreSQL DSN: {mask_dsn(dsn)!r} ({str(exc).strip()})") from None
    if "service" in params or (environ or {}).get("PGSERVICE"):
        raise RemoteTargetError(
            f"{mask_dsn(dsn)!r}: a libpq service (service=/PGSERVICE) hides the host from loadstack's check; "
            "give host= instead, or pass --allow-remote"
        )
    return params


def _comma_list(value: str | None) -> list[str]:
    return [item.strip() for item in value.split(",")] if value else []


def postgres_hosts(dsn: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every address libpq will try for ``dsn``: its ``host``/``hostaddr`` lists, else ``PGHOST``/``PGHOSTADDR``.

    A Unix-socket directory (a host starting with ``/``) counts as ``localhost``.
    """
    params = _postgres_params(dsn, environ)
    env = environ or {}
    hosts = [h.strip() for h in (params.get("host") or env.get("PGHOST") or "").split(",")]
    addrs = [a.strip() for a in (params.get("hostaddr") or env.get("PGHOSTADDR") or "").split(",")]
    found = ["localhost" if not h or h.startswith("/") or h.startswith("@") else h for h in hosts]
    return found + [a for a in addrs if a]


def guarded_dsn(
    dsn: str, *, allow_remote: bool, environ: Mapping[str, str] | None = None, what: str = "PostgreSQL"
) -> str:
    """``dsn`` with every TCP host pinned to a checked address (``hostaddr=``): what libpq may dial.

    libpq resolves a ``host`` name itself, at connect time, wherever the resolver sends it then;
    a name checked earlier (or one that resolved nowhere) proves nothing about that moment.  So
    each host of the list (``PGHOST``/``PGHOSTADDR``/``PGPORT`` when the DSN names none) is
    resolved here, every address is checked, and libpq gets the addresses as ``hostaddr``: it
    dials exactly those and keeps ``host`` for TLS (SNI, ``verify-full``) and its messages.  A
    name with several addresses becomes several entries, so libpq still tries each in turn.
    Unix sockets (empty host, ``/dir``, ``@abstract``) stay as they are; an explicit
    ``hostaddr`` is checked as given.  Called once per connection (or pool), never per query.
    With ``allow_remote`` the DSN is returned unchanged.  ``environ`` defaults to this process's
    environment, the one libpq reads: the pinned ``host``/``hostaddr`` override its ``PGHOST``.
    """
    if allow_remote:
        return dsn
    import psycopg2
    import psycopg2.extensions

    env = settings.raw_environment() if environ is None else environ
    params, shown = _postgres_params(dsn, env), mask_dsn(dsn)
    hosts = _comma_list(params.get("host") or env.get("PGHOST"))
    addrs = _comma_list(params.get("hostaddr") or env.get("PGHOSTADDR"))
    ports = _comma_list(params.get("port") or env.get("PGPORT"))
    count = max(len(hosts), len(addrs), 1)
    if len(hosts) not in (0, count) or len(addrs) not in (0, count) or len(ports) not in (0, 1, count):
        raise RemoteTargetError(f"{shown!r}: the host, hostaddr and port lists differ in length")
    entries: list[tuple[str, str, str]] = []
    for i in range(count):
        host = hosts[i] if hosts else ""
        addr = addrs[i] if addrs else ""
        port = ports[i] if len(ports) == count else (ports[0] if ports else "")
        if addr:
            check_address(addr, allow_remote=False, what=what, shown=shown)
            entries.append((host, addr, port))
        elif not host or host.startswith(("/", "@")):
            entries.append((host, "", port))  # a Unix socket: local, as the check has it
        else:
            found = resolve(host, int(port) if port.isdigit() else 5432)
            if not found:  # what libpq itself would say; it is never asked to try
                raise psycopg2.OperationalError(f'could not translate host name "{host}" to address')
            for address in dict.fromkeys(str(info[4][0]) for info in found):
                check_address(address, allow_remote=False, what=what, shown=shown)
                entries.append((host, address, port))
    pinned = {"host": ",".join(e[0] for e in entries), "hostaddr": ",".join(e[1] for e in entries)}
    if len(ports) > 1:
        pinned["port"] = ",".join(e[2] for e in entries)
    return psycopg2.extensions.make_dsn(dsn, **pinned)


def check_postgres(
    dsn: str, *, allow_remote: bool, what: str = "PostgreSQL", environ: Mapping[str, str] | None = None
) -> None:
    hosts = postgres_hosts(dsn, environ)
    _check_hosts(hosts, allow_remote=allow_remote, what=what, shown=mask_dsn(dsn))


def check_amqp(url: str, *, allow_remote: bool, what: str = "RabbitMQ") -> None:
    """Every ``;``-separated failover alternate, parsed as kombu parses it."""
    from kombu.utils.url import parse_url

    for alternate in url.split(";"):
        try:
            host = parse_url(alternate.strip()).get("hostname")
        except (ValueError, TypeError) as exc:
            raise RemoteTargetError(f"not an AMQP URL: {mask_dsn(alternate)!r} ({exc})") from None
        _check_hosts([host or "localhost"], allow_remote=allow_remote, what=what, shown=mask_dsn(url))


def check_redis(url: str, *, allow_remote: bool, what: str = "Redis") -> None:
    """The host redis-py will connect to (its own URL parser, so ``?host=`` counts too)."""
    from redis.connection import parse_url

    if url.startswith("unix://"):
        return
    try:
        kwargs = parse_url(url)
    except (ValueError, TypeError) as exc:
        raise RemoteTargetError(f"not a Redis URL: {mask_dsn(url)!r} ({exc})") from None
    _check_hosts(
        [str(kwargs.get("host") or "localhost")], allow_remote=allow_remote, what=what, shown=mask_dsn(url)
    )


def check_request(base_url: str, path: str, *, allow_remote: bool) -> str:
    """The URL an HTTP request for ``path`` on ``base_url`` really goes to, if it may go there.

    Locust's HTTP clients prepend the host to a relative path by string concatenation,
    so ``@evil.example/x`` or ``.evil.example`` change the host; an absolute URL names
    its own.  Raises :class:`RemoteTargetError` when the result leaves the target's
    origin for a host that is not local.
    """
    built = path if "://" in path[:12] else f"{base_url}{path}"
    try:
        urlsplit(built).port  # noqa: B018 -- a mangled port (`:8000.other.host`) is no URL at all
    except ValueError:
        raise RemoteTargetError(f"{mask_dsn(built)!r} is not a valid URL (from path {path!r})") from None
    if origin(built) != origin(base_url):
        check_target(built, allow_remote=allow_remote, what="request URL")
    return built


def origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return "", url, None


def check_otlp_endpoint(url: str, *, allowed: str | None) -> None:
    """The OTLP receiver spans are exported to: a telemetry sink, not a load target.

    A local receiver (loopback, the stack's own network) is fine; anything else must be the
    endpoint ``LOADSTACK_ALLOW_OTLP`` names (its scheme, host and port), explicitly:
    ``--allow-remote`` lets load go to a remote target, it does not send the run's traces there.
    """
    host = host_of(url)
    if is_local_host(host):
        return
    if allowed and origin(allowed) == origin(url if "://" in url else "http://" + url):
        return
    raise RemoteTargetError(
        f"refusing to export telemetry to {mask_dsn(url)!r}: {host!r} is not local. Name it in "
        "LOADSTACK_ALLOW_OTLP (scheme://host:port) if it is your telemetry receiver."
    )


# -- the egress point: dialling, proxies, redirects -----------------------------------------------------
def proxy() -> tuple[str, int] | None:
    """The proxy ``--allow-proxy``/``LOADSTACK_ALLOW_PROXY`` names (never one from ``http_proxy`` & co)."""
    url = settings.current().allow_proxy
    if not url:
        return None
    parts = urlsplit(url)
    assert parts.hostname and parts.port  # validated by settings
    return parts.hostname, parts.port


def connect(
    host: str,
    port: int,
    *,
    timeout: float | None,
    allow_remote: bool,
    what: str,
    shown: str,
    family: int = 0,
    configure: Callable[[socket.socket], None] | None = None,
) -> socket.socket:
    """A TCP connection to ``host:port``, each resolved address checked before it is dialled.

    ``socket.create_connection`` without the trust: the check sees the address the resolver
    really returned (a hosts entry or search domain included), not the name.  ``family``
    narrows the addresses as a client's own ``getaddrinfo`` would; ``configure`` sets a
    client's socket options before the dial (redis-py's keepalive and ``TCP_NODELAY``).
    """
    found = [info for info in resolve(host, port) if not family or info[0] == family]
    if not found:
        raise OSError(f"cannot resolve {host!r}")
    error: OSError | None = None
    for family_of, kind, proto, _, address in found:
        check_address(address[0], allow_remote=allow_remote, what=what, shown=shown)
        sock = socket.socket(family_of, kind, proto)
        try:
            if configure is not None:
                configure(sock)
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    assert error is not None
    raise error


def redis_options(url: str, *, allow_remote: bool) -> dict[str, Any]:
    """redis-py options that make every socket of a client for ``url`` dial through :func:`connect`.

    ``Redis.from_url(url, **redis_options(url, allow_remote=...))`` (or a pool's ``from_url``):
    redis-py resolves the host itself whenever it opens a connection, so the address it dials is
    checked there, once per new connection, never per command.  ``rediss://`` keeps its TLS (the
    server name is still the URL's host).  A ``unix://`` socket is local and stays redis-py's own;
    with ``allow_remote`` nothing changes.
    """
    if allow_remote or url.startswith("unix://"):
        return {}
    plain, tls = _redis_classes()
    return {"connection_class": tls if url.startswith("rediss://") else plain}


@functools.cache
def _redis_classes() -> tuple[type, type]:
    import redis

    class GuardedRedisConnection(redis.Connection):
        """redis-py's TCP connection with :func:`connect` as its dial (same socket options)."""

        def _connect(self) -> socket.socket:
            def configure(sock: socket.socket) -> None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.socket_keepalive:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                    for option, value in self.socket_keepalive_options.items():
                        sock.setsockopt(socket.IPPROTO_TCP, option, value)

            sock = connect(
                self.host,
                self.port,
                timeout=self.socket_connect_timeout,
                allow_remote=False,
                what="Redis",
                shown=f"{self.host}:{self.port}",
                family=self.socket_type,
                configure=configure,
            )
            sock.settimeout(self.socket_timeout)
            return sock

    class GuardedRedisSSLConnection(redis.SSLConnection, GuardedRedisConnection):
        """``rediss://``: redis-py wraps the socket :class:`GuardedRedisConnection` dialled."""

    return GuardedRedisConnection, GuardedRedisSSLConnection


def amqp_connection(*, allow_remote: bool, **kwargs: Any) -> Any:
    """``amqp.Connection(**kwargs)`` whose socket is dialled by :func:`connect` (TLS kept)."""
    import amqp

    cls = amqp.Connection if allow_remote else _amqp_classes()[0]
    return cls(**kwargs)


def kombu_connection(url: str, *, allow_remote: bool, **kwargs: Any) -> Any:
    """``kombu.Connection(url, **kwargs)`` whose py-amqp transport dials through :func:`connect`.

    Every ``;`` failover alternate too: kombu re-reads the transport from each alternate's
    scheme when it switches, so the guarded connection picks the transport class itself.
    """
    import kombu

    cls = kombu.Connection if allow_remote else _amqp_classes()[1]
    return cls(url, **kwargs)


@functools.cache
def _amqp_classes() -> tuple[type, type]:
    import amqp
    import amqp.transport
    import kombu
    from kombu.transport import pyamqp

    class GuardedDial:
        """py-amqp's ``_connect``: the broker's host resolved and checked by :func:`connect`."""

        sock: socket.socket | None

        def _connect(self, host: str, port: int, timeout: float | None) -> None:
            self.sock = connect(
                host, port, timeout=timeout, allow_remote=False, what="RabbitMQ", shown=f"{host}:{port}"
            )

    class GuardedTCPTransport(GuardedDial, amqp.transport.TCPTransport):
        pass

    class GuardedSSLTransport(GuardedDial, amqp.transport.SSLTransport):
        pass

    def transport(
        self: Any,
        host: str,
        connect_timeout: float | None,
        ssl: Any = False,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """``amqp.Connection.Transport`` (its signature), with the guarded transport classes."""
        cls = GuardedSSLTransport if ssl else GuardedTCPTransport
        return cls(
            host,
            connect_timeout=connect_timeout,
            ssl=ssl,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            **kwargs,
        )

    class GuardedAMQPConnection(amqp.Connection):
        Transport = transport

    class GuardedKombuAMQPConnection(pyamqp.Connection):
        Transport = transport

    class GuardedKombuTransport(pyamqp.Transport):
        Connection = GuardedKombuAMQPConnection

    class GuardedKombuSSLTransport(pyamqp.SSLTransport):
        Connection = GuardedKombuAMQPConnection

    class GuardedKombuConnection(kombu.Connection):
        def get_transport_cls(self) -> type:
            cls = super().get_transport_cls()
            if issubclass(cls, pyamqp.SSLTransport):
                return GuardedKombuSSLTransport
            if issubclass(cls, pyamqp.Transport):
                return GuardedKombuTransport
            raise RemoteTargetError(
                f"kombu transport {cls.__name__} does not dial through loadstack's guard; use amqp:// or "
                "amqps://, or pass --allow-remote"
            )

    return GuardedAMQPConnection, GuardedKombuConnection


def _connection_class(base: type[http.client.HTTPConnection], allow_remote: bool) -> type:
    """An ``http.client`` connection class that dials through :func:`connect`."""

    class Guarded(base):  # type: ignore[valid-type,misc]
        def connect(self) -> None:
            shown = f"{self.host}:{self.port}"
            what = "proxy" if self._tunnel_host else "URL"
            self.sock = connect(
                self.host, self.port, timeout=self.timeout, allow_remote=allow_remote, what=what, shown=shown
            )
            if self._tunnel_host:
                self._tunnel()
            if isinstance(self, http.client.HTTPSConnection):
                host = self._tunnel_host or self.host
                self.sock = self._context.wrap_socket(self.sock, server_hostname=host)

    return Guarded


class _GuardedHTTP(urllib.request.HTTPHandler):
    def __init__(self, allow_remote: bool) -> None:
        super().__init__()
        self._class = _connection_class(http.client.HTTPConnection, allow_remote)

    def http_open(self, req: Any) -> Any:
        return self.do_open(self._class, req)


class _GuardedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, allow_remote: bool) -> None:
        super().__init__()
        self._class = _connection_class(http.client.HTTPSConnection, allow_remote)

    def https_open(self, req: Any) -> Any:
        return self.do_open(self._class, req, context=self._context)


def _proxy_handler(allow_remote: bool) -> urllib.request.ProxyHandler:
    """No proxy, or the one named by ``--allow-proxy`` (checked as a target itself)."""
    named = proxy()
    if named is None:
        return urllib.request.ProxyHandler({})  # {}: not the environment's http_proxy/https_proxy/all_proxy
    url = f"http://{named[0]}:{named[1]}"
    check_target(url, allow_remote=allow_remote, what="proxy")
    return urllib.request.ProxyHandler({"http": url, "https": url})


class _GuardedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a host the guard allows; never carry credentials to another origin."""

    def __init__(self, allow_remote: bool) -> None:
        self.allow_remote = allow_remote

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        target = urljoin(req.full_url, newurl)
        check_target(target, allow_remote=self.allow_remote, what="redirect target")
        new = super().redirect_request(req, fp, code, msg, headers, target)
        if new is not None and origin(target) != origin(req.full_url):
            for name in ("Authorization", "Cookie"):
                new.remove_header(name)
        return new


def urlopen(request: urllib.request.Request | str, *, allow_remote: bool, timeout: float) -> Any:
    """``urllib.request.urlopen`` for loadstack's own calls (seed, token, probe, fetch): every hop guarded."""
    url = request.full_url if isinstance(request, urllib.request.Request) else request
    check_target(url, allow_remote=allow_remote, what="URL")
    opener = urllib.request.build_opener(
        _proxy_handler(allow_remote),
        _GuardedHTTP(allow_remote),
        _GuardedHTTPS(allow_remote),
        _GuardedRedirects(allow_remote),
    )
    return opener.open(request, timeout=timeout)


def sink_session(url: str) -> Any:
    """A ``requests`` session for the OTLP exporters of loadstack's processes (the telemetry sink).

    The OTLP endpoint is the user's own telemetry sink, not a load target, so it has its own
    rule (:func:`check_otlp_endpoint`: local, or named by ``LOADSTACK_ALLOW_OTLP``; a
    ``RemoteTargetError``, a ``ValueError``, otherwise).  What this adds is loadstack's egress
    rule: no proxy from the environment sees the telemetry, and only http(s) URLs are dialled.
    """
    import requests

    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ValueError(f"OTLP endpoint {mask_dsn(url)!r}: expected an http:// or https:// URL")
    check_otlp_endpoint(url, allowed=settings.current().allow_otlp)
    session = requests.Session()
    session.trust_env = False  # no http_proxy/https_proxy, no .netrc credentials
    return session
