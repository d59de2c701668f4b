"""Server-rendered pages for browser recordings: a sign-in form and an upload form.

This is what recordings of real web applications look like, and what
``loadstack import har`` has to handle beyond JSON APIs.

The sign-in (:func:`add_form_login`): the CSRF token comes from the page's
HTML (``<input type="hidden" name="csrf_token">``) and must match a cookie the
page set (double-submit), the credentials are form fields, success is a
``303`` to the account page with a session cookie.

- ``GET /forms/login``: the form; sets ``demo_csrf``.
- ``POST /forms/login``: ``csrf_token``, ``username`` (an e-mail registered via
  ``/api/v1/auth/register``), ``password``; 403 on a wrong token, 401 on wrong
  credentials, else ``303 → /forms/account`` with ``demo_session``.
- ``GET /forms/account``: who is signed in, and the form field names the login
  received (so a replay can prove it sent the same fields).

The upload (:func:`add_upload_page`): ``GET /forms/upload`` is a
``multipart/form-data`` form with a text field and a file input that posts to
the echo endpoint ``POST /api/v1/uploads``, which answers with the field
names, file names, content types and sizes it received.
"""

from __future__ import annotations

import html
import secrets
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from loadstack_demo.auth import check_password

CSRF_COOKIE = "demo_csrf"
SESSION_COOKIE = "demo_session"
MAX_SESSIONS = 10_000

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>{body}</body></html>
"""
_FORM = """<form method="post" action="/forms/login">
<input type="hidden" name="csrf_token" value="{token}">
<label>E-mail <input name="username" autocomplete="username"></label>
<label>Password <input type="password" name="password" autocomplete="current-password"></label>
<button type="submit" id="sign-in">Sign in</button>
</form>"""


@dataclass
class FormSessions:
    """Signed-in browser sessions (bounded: the oldest are forgotten first)."""

    sessions: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)

    def start(self, email: str, fields: list[str]) -> str:
        sid = secrets.token_urlsafe(24)
        self.sessions[sid] = {"email": email, "fields": fields}
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        return sid


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status)


def add_form_login(app: FastAPI) -> None:
    """The three routes, on ``app`` (which has ``state.platform``); not part of the OpenAPI document."""
    sessions = FormSessions()

    @app.get("/forms/login", include_in_schema=False)
    async def login_page() -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        response = _page("Sign in", _FORM.format(token=token))
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="lax", path="/forms")
        return response

    @app.post("/forms/login", include_in_schema=False)
    async def login_submit(request: Request) -> Any:
        pairs = urllib.parse.parse_qsl(
            (await request.body()).decode("utf-8", "replace"), keep_blank_values=True
        )
        form = dict(pairs)
        token, cookie = form.get("csrf_token", ""), request.cookies.get(CSRF_COOKIE, "")
        if not token or not cookie or not secrets.compare_digest(token, cookie):
            return _page("Forbidden", "<p>CSRF token missing or wrong.</p>", 403)
        platform = request.app.state.platform
        email = form.get("username", "").lower()
        user = await platform.run(platform.store.get_user_by_email, email)
        if user is None or not check_password(form.get("password", ""), user.password_hash):
            return _page("Sign in", "<p>Wrong e-mail or password.</p>", 401)
        sid = sessions.start(user.email, sorted({name for name, _ in pairs}))
        response = RedirectResponse("/forms/account", status_code=303)
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="lax", path="/forms")
        return response

    @app.get("/forms/account", include_in_schema=False)
    async def account(request: Request) -> HTMLResponse:
        session = sessions.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is None:
            return _page("Sign in", '<p>Not signed in. <a href="/forms/login">Sign in</a></p>', 401)
        body = (
            f'<p id="who">Signed in as {html.escape(session["email"])}</p>'
            f'<p id="fields">login fields: {html.escape(", ".join(session["fields"]))}</p>'
        )
        return _page("Account", body)


_UPLOAD = """<form method="post" action="/api/v1/uploads" enctype="multipart/form-data">
<label>Title <input name="title"></label>
<label>Attachment <input type="file" name="attachment" id="attachment"></label>
<button type="submit" id="upload">Upload</button>
</form>"""


def add_upload_page(app: FastAPI) -> None:
    """``GET /forms/upload``: a multipart form (the echo endpoint it posts to is in loadstack_demo.echo)."""

    @app.get("/forms/upload", include_in_schema=False)
    async def upload_page() -> HTMLResponse:
        return _page("Upload", _UPLOAD)
