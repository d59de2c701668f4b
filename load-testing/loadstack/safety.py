"""Target safety: loadstack aims at local systems unless told otherwise.

A load tool pointed at the wrong host is an outage, so every target (HTTP
host, DSN, broker and Redis URL) passes :func:`check_target` before any load
starts.  Loopback addresses and the service names of loadstack's own compose
stack are allowed; anything else needs ``--allow-remote``.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from loadstack.masking import mask_url

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


class RemoteTargetError(ValueError):
    """A target outside the local allowlist without ``--allow-remote``."""


def host_of(url: str) -> str:
    """The hostname of a URL or DSN (``postgresql://u@h:5432/db`` → ``h``)."""
    if "://" not in url:
        url = "//" + url
    host = urlsplit(url).hostname
    if not host:
        raise ValueError(f"cannot find a host in {mask_url(url)!r}")
    return host


def is_local_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOCAL_NAMES or host in COMPOSE_SERVICES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target(url: str, *, allow_remote: bool, what: str = "host") -> None:
    """Raise :class:`RemoteTargetError` unless ``url`` is local or remote targets are allowed."""
    host = host_of(url)
    if allow_remote or is_local_host(host):
        return
    raise RemoteTargetError(
        f"refusing to send load to {what} {mask_url(url)!r}: {host!r} is not a loopback address or a "
        "loadstack compose service. Pass --allow-remote (or LOADSTACK_ALLOW_REMOTE=1) if you really mean it."
    )
