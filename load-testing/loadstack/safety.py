"""Target safety: loadstack aims at local systems unless told otherwise.

A load tool pointed at the wrong host is an outage, so every address loadstack
or its client libraries will contact passes :func:`check_target`, and it is
checked the way the library will read it: a PostgreSQL DSN through libpq's own
parser (every ``host``/``hostaddr`` of a multi-host list, and ``PGHOST``/
``PGHOSTADDR`` when the DSN names none), an AMQP URL with every ``;``
failover alternate, a Redis URL through redis-py's parser (query arguments
included), HTTP URLs as the HTTP client joins them (:func:`check_request`),
and every redirect hop (:func:`urlopen`).  Loopback addresses and the service
names of loadstack's own compose stack are allowed; anything else needs
``--allow-remote``.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

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


def is_local_host(host: str) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    if host in LOCAL_NAMES or host in COMPOSE_SERVICES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse(what: str, shown: str, host: str) -> RemoteTargetError:
    return RemoteTargetError(
        f"refusing to send load to {what} {shown!r}: {host!r} is not a loopback address or a "
        "loadstack compose service. Pass --allow-remote (or LOADSTACK_ALLOW_REMOTE=1) if you really mean it."
    )


def check_host(host: str, *, allow_remote: bool, what: str, shown: str) -> None:
    """One host name or address, as a client library resolved it from ``shown`` (a URL, masked here)."""
    if not allow_remote and not is_local_host(host):
        raise _refuse(what, mask_dsn(shown), host)


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


def postgres_hosts(dsn: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every address libpq will try for ``dsn``: its ``host``/``hostaddr`` lists, else ``PGHOST``/``PGHOSTADDR``.

    A Unix-socket directory (a host starting with ``/``) counts as ``localhost``.
    """
    import psycopg2.extensions

    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError as exc:
        raise RemoteTargetError(f"not a PostgreSQL DSN: {mask_dsn(dsn)!r} ({str(exc).strip()})") from None
    env = environ or {}
    if "service" in params or env.get("PGSERVICE"):
        raise RemoteTargetError(
            f"{mask_dsn(dsn)!r}: a libpq service (service=/PGSERVICE) hides the host from loadstack's check; "
            "give host= instead, or pass --allow-remote"
        )
    hosts = [h.strip() for h in (params.get("host") or env.get("PGHOST") or "").split(",")]
    addrs = [a.strip() for a in (params.get("hostaddr") or env.get("PGHOSTADDR") or "").split(",")]
    found = ["localhost" if not h or h.startswith("/") or h.startswith("@") else h for h in hosts]
    return found + [a for a in addrs if a]


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
    if origin(built) != origin(base_url):
        check_target(built, allow_remote=allow_remote, what="request URL")
    return built


def origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return "", url, None


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
    opener = urllib.request.build_opener(_GuardedRedirects(allow_remote))
    return opener.open(request, timeout=timeout)
