"""Auth modes: what loadstack's HTTP and WebSocket users present as ``Authorization``.

``none`` sends nothing; ``oauth2`` fetches a client-credentials token; ``local``
signs a JWT here.  One :class:`Credentials` per process serves every user of
that process.  Locust-free on purpose: the runner uses the same code for its
start-up check without being gevent-patched.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from loadstack import runcontext
from loadstack.auth import local, oauth2
from loadstack.auth.config import (
    CLIENT_SECRET_ENV,
    JWT_SECRET_ENV,
    AuthConfigError,
    AuthSpec,
    describe,
    resolve,
)
from loadstack.auth.tokens import AuthError, Report, Token, TokenCache

__all__ = [
    "CLIENT_SECRET_ENV",
    "JWT_SECRET_ENV",
    "AuthConfigError",
    "AuthError",
    "AuthSpec",
    "Credentials",
    "Token",
    "check_settings",
    "current",
    "describe",
    "resolve",
    "with_credentials",
]

REQUEST_TYPE = "AUTH"


class Credentials:
    """The bearer token of one auth mode, cached and refreshed for the whole process."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        env: Mapping[str, str] | None = None,
        report: Report | None = None,
        *,
        allow_remote: bool = False,
    ) -> None:
        self.mode = settings["mode"]
        if self.mode == "oauth2":
            # A token request is real traffic to the provider: it gets its own AUTH stat entry.
            self.cache = TokenCache(
                lambda: oauth2.fetch(settings, env, allow_remote=allow_remote),
                name="oauth2 token",
                margin=float(settings.get("refresh_margin") or 30),
                report=report,
            )
        elif self.mode == "local":
            self.cache = TokenCache(
                lambda: local.sign(settings, env),
                name="local jwt",
                margin=float(settings.get("ttl") or 300) / 5,
            )
        else:
            raise AuthConfigError(f"no credentials for auth mode {self.mode!r}")

    def bind(self, request_event: Any) -> None:
        """Report token fetches to this Locust ``events.request`` (the first one given wins)."""
        if request_event is not None and self.mode == "oauth2" and self.cache.report is None:
            self.cache.report = _reporter(request_event)

    def authorization(self) -> str:
        """``Bearer <token>``; raises :class:`AuthError` when no token can be had right now."""
        return "Bearer " + self.cache.get()


def check_settings(settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> None:
    """Everything that can be checked without the network; :class:`AuthConfigError` otherwise."""
    if settings.get("mode") == "oauth2":
        oauth2.check_settings(settings, env)
    elif settings.get("mode") == "local":
        local.check_settings(settings, env)


_lock = threading.Lock()
_current: Credentials | None = None
_resolved = False


def current(request_event: Any = None) -> Credentials | None:
    """This process's credentials, or None in mode ``none``.

    Settings come from the run (:mod:`loadstack.runcontext`), however Locust was started.  The first
    caller's ``request_event`` (Locust's ``events.request``) receives the AUTH
    entries.
    """
    global _current, _resolved
    if not _resolved:
        with _lock:
            if not _resolved:
                run = runcontext.current().settings
                settings = run.auth.model_dump()
                if settings["mode"] != "none":
                    check_settings(settings)
                    _current = Credentials(settings, allow_remote=run.allow_remote)
                _resolved = True
    if _current is not None and request_event is not None:
        _current.bind(request_event)
    return _current


def _reporter(request_event: Any) -> Report | None:
    if request_event is None:
        return None

    def report(name: str, ms: float, size: int, exc: BaseException | None) -> None:
        request_event.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=ms,
            response_length=size,
            exception=exc,
            context={},
        )

    return report


def has_authorization(headers: Mapping[str, str] | None) -> bool:
    return bool(headers) and any(k.lower() == "authorization" for k in headers)  # type: ignore[union-attr]


def with_credentials(
    headers: Mapping[str, str] | None, request_event: Any = None
) -> Mapping[str, str] | None:
    """``headers`` plus the auth mode's ``Authorization``, unless the caller set one itself.

    Without a token (the provider is down) the request goes out without one: the
    service's 401 and the failed AUTH entry say what happened.
    """
    credentials = current(request_event)
    if credentials is None or has_authorization(headers):
        return headers
    try:
        value = credentials.authorization()
    except AuthError:
        return headers
    return {**(headers or {}), "Authorization": value}
