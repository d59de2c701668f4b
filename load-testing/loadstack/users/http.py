"""HTTP users: Locust's ``FastHttpUser`` with loadstack's run context.

Every request carries the run id (``X-Loadstack-Run-Id`` header, so the system
under test can tag what it writes), the run's credentials when an auth mode is
set (``Authorization``, unless the request sets its own), and reports its user
class in the request event context (so gates and stats can be broken down per
user class).
"""

from __future__ import annotations

from typing import Any

from locust.contrib.fasthttp import FastHttpSession, FastHttpUser

from loadstack import auth, runcontext
from loadstack.users.base import user_context

RUN_ID_HEADER = "X-Loadstack-Run-Id"


class AuthorizedSession(FastHttpSession):
    """A ``FastHttpSession`` that presents the auth mode's token (see :mod:`loadstack.auth`)."""

    def request(self, method: str, url: str, *args: Any, headers: dict | None = None, **kwargs: Any) -> Any:
        return super().request(
            method, url, *args, headers=auth.with_credentials(headers, self.request_event), **kwargs
        )


class HttpUser(FastHttpUser):
    """Base class for loadstack HTTP users (abstract: subclass it with tasks)."""

    abstract = True

    def __init__(self, *args, **kwargs) -> None:
        # FastHttpUser hands default_headers to its connection pool when it builds the client.
        self.default_headers = {**(type(self).default_headers or {}), **self.base_headers()}
        super().__init__(*args, **kwargs)
        # FastHttpUser builds its session itself and has no hook for the class; ours adds no state.
        self.client.__class__ = AuthorizedSession
        self._context = user_context(self)

    def base_headers(self) -> dict[str, str]:
        return {RUN_ID_HEADER: runcontext.current().run_id}

    def context(self) -> dict:
        return self._context
