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
    """A ``FastHttpSession`` that presents the auth mode's token (see :mod:`loadstack.auth`).

    The token goes through the slot Locust itself fills with a URL's basic credentials
    (``auth_header``), set before each request: that costs no extra header dict per request
    (this runs on every request).  A request that sets its own ``Authorization`` keeps it, and
    basic credentials in the host URL win, as Locust does it.
    """

    _url_auth_header: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._url_auth_header = self.auth_header

    @classmethod
    def adopt(cls, session: FastHttpSession) -> AuthorizedSession:
        """Turn the session ``FastHttpUser`` built into this class (it has no hook for the class)."""
        session.__class__ = cls
        session._url_auth_header = session.auth_header  # type: ignore[attr-defined]
        return session  # type: ignore[return-value]

    def request(self, method: str, url: str, *args: Any, headers: dict | None = None, **kwargs: Any) -> Any:
        if self._url_auth_header is None:
            credentials = auth.current(self.request_event)
            if credentials is None or (headers and auth.has_authorization(headers)):
                self.auth_header = None
            else:
                try:
                    self.auth_header = credentials.authorization()
                except auth.AuthError:
                    self.auth_header = None  # no token now: the request goes out without one
        return super().request(method, url, *args, headers=headers, **kwargs)


class HttpUser(FastHttpUser):
    """Base class for loadstack HTTP users (abstract: subclass it with tasks)."""

    abstract = True

    def __init__(self, *args, **kwargs) -> None:
        # FastHttpUser hands default_headers to its connection pool when it builds the client.
        self.default_headers = {**(type(self).default_headers or {}), **self.base_headers()}
        super().__init__(*args, **kwargs)
        self.client = AuthorizedSession.adopt(self.client)
        self._context = user_context(self)

    def base_headers(self) -> dict[str, str]:
        return {RUN_ID_HEADER: runcontext.current().run_id}

    def context(self) -> dict:
        return self._context
