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
"""

from __future__ import annotations

from typing import Any

from locust.contrib.fasthttp import FastHttpSession, FastHttpUser, LocustUserAgent

from loadstack import auth, runcontext, safety
from loadstack.users.base import user_context

RUN_ID_HEADER = "X-Loadstack-Run-Id"


class GuardedUserAgent(LocustUserAgent):
    """Locust's user agent, refusing any hop (the first request or a redirect) to a host not allowed."""

    def _urlopen(self, request: Any) -> Any:
        url = request.url_split
        try:
            safety.check_host(
                url.host,
                allow_remote=runcontext.current().settings.allow_remote,
                what="request URL",
                shown=str(url),
            )
        except safety.RemoteTargetError as exc:
            raise safety.TargetRefused(str(exc)) from None
        return super()._urlopen(request)


class AuthorizedSession(FastHttpSession):
    """A ``FastHttpSession`` that presents the auth mode's token (see :mod:`loadstack.auth`) to its target only."""

    def request(self, method: str, url: str, *args: Any, headers: dict | None = None, **kwargs: Any) -> Any:
        if safety.origin(self._build_url(url)) == safety.origin(self.base_url):
            headers = auth.with_credentials(headers, self.request_event)
        return super().request(method, url, *args, headers=headers, **kwargs)


class HttpUser(FastHttpUser):
    """Base class for loadstack HTTP users (abstract: subclass it with tasks)."""

    abstract = True

    def __init__(self, *args, **kwargs) -> None:
        # FastHttpUser hands default_headers to its connection pool when it builds the client.
        self.default_headers = {**(type(self).default_headers or {}), **self.base_headers()}
        super().__init__(*args, **kwargs)
        # FastHttpUser builds its session itself and has no hook for the class; ours adds no state.
        self.client.__class__ = AuthorizedSession
        self.client.client.__class__ = GuardedUserAgent
        self._context = user_context(self)

    def base_headers(self) -> dict[str, str]:
        return {RUN_ID_HEADER: runcontext.current().run_id}

    def context(self) -> dict:
        return self._context
