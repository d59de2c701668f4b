"""Correlation: turn a recording's stale values into data that flows from response to request.

A replayed ``GET /orders/8812`` fails on a fresh system: order 8812 was created
by the recorded session, not by the test.  For every value a later request
uses (in its URL, headers, form fields, multipart fields or JSON body), this
module looks for an earlier response that returned it: in a JSON body, a
response header, a ``Set-Cookie`` or an HTML page's hidden form field or token
``<meta>`` (CSRF tokens), and replaces the literal with a variable saved from
that response.

What is left are values the *recording* supplied.  Secrets among them (API
keys, tokens, session cookies, passwords) are read from environment variables
(:mod:`loadstack.importers.sensitive`); e-mail addresses and sign-up
credentials the recording invented become fresh per-iteration values, so a
replay never collides with data that already exists.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loadstack.importers.har import Recorded
from loadstack.importers.model import (
    Call,
    Capture,
    Env,
    Generated,
    JsonPath,
    Multipart,
    Names,
    Ref,
    Scenario,
    Text,
    json_path,
    looks_like_id,
    singular,
    snake,
    stat_name,
    step_name,
    unique_var,
)
from loadstack.importers.sensitive import (
    PASSWORD_FIELD,
    SECRET_FIELD,
    SECRET_HEADER,
    SESSION_COOKIE,
    SIGNUP_PATH,
    USERNAME_FIELD,
    Secrets,
)

_ID_KEY = re.compile(r"(^id$|_id$|Id$|^uuid$|_uuid$|^guid$|_ref$|^ref$|number$)", re.I)
_TOKEN_KEY = re.compile(r"(token|csrf|xsrf|nonce|session|ticket|cursor|etag|authenticity)", re.I)
_TOKEN_HEADER = re.compile(r"(csrf|xsrf|token|session|request-id|etag)", re.I)
_SHAPED = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}|eyJ[\w-]+\.[\w-]+\.[\w-]+)$",
    re.I,
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PATH_SAFE = "!$&'()*+,;=:@%-._~"
_MAX_DEPTH = 8
_MAX_ITEMS = 50


@dataclass
class Producer:
    """Where a value came from: call ``call`` returned it at ``capture`` (a provisional var name)."""

    pid: int
    call: int
    capture: Capture
    used: bool = False

    @property
    def placeholder(self) -> str:
        # Refs point at their producer until every variable gets its final, unique name.
        return f"@{self.pid}"


def _walk(value: Any, path: JsonPath = (), depth: int = 0) -> Iterator[tuple[JsonPath, Any]]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, (*path, str(k)), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value[:_MAX_ITEMS]):
            yield from _walk(v, (*path, i), depth + 1)
    else:
        yield path, value


def _containers(value: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every object inside a JSON value (where a user name and a password sit side by side)."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _containers(v, depth + 1)
    elif isinstance(value, list):
        for v in value[:_MAX_ITEMS]:
            yield from _containers(v, depth + 1)


def _candidate(key: str, value: Any) -> bool:
    """Is a response value distinctive enough that seeing it again in a request is no coincidence?"""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int):
        return bool(_ID_KEY.search(key)) and abs(value) >= 1
    if isinstance(value, str):
        if len(value) < 4 or len(value) > 4096:
            return False
        return bool(_ID_KEY.search(key) or _TOKEN_KEY.search(key) or _SHAPED.fullmatch(value))
    return False


def _var_name(path: JsonPath, rec: Recorded) -> str:
    key = str(path[-1]) if path else "value"
    if key.lower() == "id":
        # The parent object's key ("user": {"id": …}) or else the resource the call created.
        parents = [p for p in path[:-1] if isinstance(p, str)]
        if parents:
            return f"{singular(parents[-1])}_id"
        words = [s for s in rec.path.split("/") if s and not looks_like_id(s)]
        return f"{singular(words[-1])}_id" if words else "id"
    return key


def _credential_pairs(rec: Recorded) -> Iterator[tuple[str | None, str | None, str, str]]:
    """(user key, user value, password key, password value) of each login-like group in a request."""
    groups: list[dict[str, Any]] = []
    body = rec.body
    if body.has_json:
        groups += list(_containers(body.json))
    if body.form is not None:
        groups.append(dict(body.form))
    if body.multipart is not None:
        groups.append(dict(body.multipart.fields))
    for group in groups:
        passwords = [
            (k, v) for k, v in group.items() if PASSWORD_FIELD.search(str(k)) and isinstance(v, str) and v
        ]
        if not passwords:
            continue
        user = next(
            ((k, v) for k, v in group.items() if USERNAME_FIELD.match(str(k)) and isinstance(v, str) and v),
            (None, None),
        )
        for key, value in passwords:
            yield user[0], user[1], str(key), value


class Correlator:
    def __init__(self, calls: list[Recorded], *, min_think: float, max_think: float) -> None:
        self.recorded = calls
        self.min_think, self.max_think = min_think, max_think
        self.producers: dict[str, list[Producer]] = {}  # str(value) -> every response that returned it
        self.all_producers: list[Producer] = []
        self.generated_by_value: dict[str, str] = {}
        self.generated: dict[str, Generated] = {}
        self.credentials: dict[str, Ref | Env] = {}  # recorded user name / password -> what replaces it
        self.secrets = Secrets()
        self.vars = Names()
        self.steps = Names()
        self.calls: list[Call] = []
        self.jar: set[str] = set()  # cookies the replay's client holds by now (set by earlier responses)
        self.dropped_auth = 0
        self.dropped_cookies: set[str] = set()
        self.pairs: dict[str, str] = {}  # "kept"/"generated" -> example, for the summary
        self.masked_files: list[str] = []  # calls whose file bodies held a secret (masked in files/)

    # -- credentials -------------------------------------------------------------------------
    def _plan_credentials(self) -> None:
        """Decide per recorded credential pair: generated (the recording signed up) or kept from env."""
        for rec in self.recorded:
            signup = rec.method == "POST" and bool(SIGNUP_PATH.search(rec.path))
            for user_key, user, pw_key, password in _credential_pairs(rec):
                if password in self.credentials:
                    continue  # decided by the call that sent it first (the sign-up before the login)
                if signup:
                    if user is not None and user not in self.credentials:
                        kind = "email" if _EMAIL.fullmatch(user) else "username"
                        self.credentials[user] = self._generated(
                            "email" if kind == "email" else user_key or "username", kind, user
                        )
                    self.credentials[password] = self._generated(pw_key, "secret", password)
                    self.pairs.setdefault("generated", rec.where)
                else:
                    login = f"the recorded login's {{}} (field {{}} of {rec.method} {rec.path})"
                    if user is not None and user not in self.credentials:
                        self.credentials[user] = self.secrets.env(
                            user, "username", login.format("user name", user_key)
                        )
                    self.credentials[password] = self.secrets.env(
                        password, "password", login.format("password", pw_key)
                    )
                    self.pairs.setdefault("kept", rec.where)

    def _generated(self, key: str, kind: str, value: str) -> Ref:
        var = self.generated_by_value.get(value)
        if var is None:
            var = unique_var(key, self.vars)
            self.generated_by_value[value] = var
            self.generated[var] = Generated(kind, note=f"recorded value replaced ({kind})")
        return Ref(var)

    # -- values in requests ----------------------------------------------------------------
    def _ref(self, value: Any, key: str | None = None, hint: str | None = None) -> Ref | None:
        """A ref to the response that returned ``value``.

        With a ``key`` (a body or query field), small numbers and short strings only match under an
        id-like key ("quantity": 2 is not order 2).  When several responses returned the value (user 1
        and order 1 on a fresh system), the one whose variable is named like ``hint`` (``order_id``
        for ``/orders/1`` or an ``order_id`` field) wins, the earliest of those; else the latest.
        """
        if isinstance(value, bool) or not isinstance(value, int | str):
            return None
        candidates = self.producers.get(str(value))
        if not candidates:
            return None
        loose_key = key is not None and not _ID_KEY.search(key) and not _TOKEN_KEY.search(key)
        if loose_key and (isinstance(value, int) or len(value) < 8):
            return None
        hint = hint or (key if key and key.lower() != "id" and _ID_KEY.search(key) else None)
        named = [p for p in candidates if hint and p.capture.var == snake(hint)]
        producer = named[0] if named else candidates[-1]
        producer.used = True
        return Ref(producer.placeholder)

    def _email(self, value: Any) -> Ref | None:
        """An e-mail address the recording typed in: fresh per iteration (a sign-up can run again)."""
        if not isinstance(value, str) or not _EMAIL.fullmatch(value):
            return None
        return self._generated("email", "email", value)

    def _field(self, key: str, value: Any, where: str) -> Any:
        """A query/form/JSON/multipart value: correlated, a credential, a secret, fresh, or as recorded."""
        if isinstance(value, dict):
            return {k: self._field(str(k), v, where) for k, v in value.items()}
        if isinstance(value, list):
            return [self._field(key, v, where) for v in value]
        ref = self._ref(value, key)
        if ref is not None:
            return ref
        if isinstance(value, str) and value in self.credentials:
            return self.credentials[value]
        if isinstance(value, str) and value and SECRET_FIELD.search(key):
            return self.secrets.env(value, key, f"{key} of {where}")
        if isinstance(value, str):
            return self._email(value) or self.secrets.scrub(
                value, key or "value", f"a secret in {key or 'a value'} of {where}"
            )
        return value

    def _header(self, name: str, value: str, where: str) -> Any:
        if name.lower() == "authorization":
            scheme, _, credential = value.partition(" ")
            ref = self._ref(credential) if credential else None
            if ref is not None:
                return Text.of(scheme + " ", ref)
            if scheme.lower() == "bearer":
                # A token the recording did not obtain itself: the run's auth mode supplies one.
                self.dropped_auth += 1
                return None
            return self.secrets.env(value, "authorization", f"the Authorization header of {where}")
        ref = self._ref(value, name)
        if ref is not None:
            return ref
        if SECRET_HEADER.search(name) and value:
            return self.secrets.env(value, name, f"header {name} of {where}")
        return self.secrets.scrub(value, name, f"a secret in header {name} of {where}")

    def _cookie_header(self, rec: Recorded) -> Text | str | Ref | Env | None:
        """Cookies the browser had before the recording started; the client's jar keeps the rest."""
        parts: list[str | Ref | Env] = []
        for name, value in rec.cookies:
            if name in self.jar:
                continue
            if not SESSION_COOKIE.search(name) or len(value) < 8:
                # Real session ids are long; short values are preferences or placeholders.
                self.dropped_cookies.add(name)
                continue
            ref = self._ref(value, name)
            secret = ref or self.secrets.env(value, f"cookie_{name}", f"cookie {name} sent by {rec.where}")
            parts += ["; " if parts else "", f"{name}=", secret]
        return Text.of(*parts) if parts else None

    # -- the scenario -----------------------------------------------------------------------
    def call_for(self, i: int, rec: Recorded) -> Call:
        where = f"{rec.method} {rec.path}"
        path: list[str | Ref] = []
        for segment in (s for s in rec.path.split("/") if s):
            previous = next((p for p in reversed(path) if isinstance(p, str) and not looks_like_id(p)), "")
            ref = self._ref(segment, hint=f"{singular(previous)}_id" if previous else None)
            scrubbed = self.secrets.scrub(segment, "path_secret", f"a secret in the path of {where}")
            if ref is None and scrubbed != segment:
                ref = self.secrets.env(segment, "path_secret", f"a secret in the path of {where}")
            path.append(ref or urllib.parse.quote(segment, safe=_PATH_SAFE))
        headers: dict[str, Any] = {}
        for name, value in rec.headers.items():
            converted = self._header(name, value, where)
            if converted is not None:
                headers[name] = converted
        cookies = self._cookie_header(rec)
        if cookies is not None:
            headers["Cookie"] = cookies
        body = rec.body
        multipart = None
        if body.multipart is not None:
            fields = [(k, self._field(k, v, where)) for k, v in body.multipart.fields]
            multipart = Multipart(fields=fields, files=body.multipart.files)
        for item in [*(multipart.files if multipart else []), *([body.file] if body.file else [])]:
            masked = self.secrets.scrub_bytes(item.data)
            if masked is not None:
                item.data = masked
                self.masked_files.append(where)
        call = Call(
            method=rec.method,
            path=path,
            name="",
            step="",
            query=[(k, self._field(k, v, where)) for k, v in rec.query],
            headers=headers,
            json=self._field("", body.json, where) if body.has_json else None,
            form=[(k, self._field(k, v, where)) for k, v in body.form] if body.form is not None else None,
            multipart=multipart,
            body=self.secrets.scrub(body.text, "body", f"a secret in the body of {where}")
            if body.text is not None
            else None,
            body_file=body.file,
            content_type=body.content_type,
            expect_status=[rec.status] if rec.status else [],
            trailing_slash=rec.path.endswith("/") and rec.path.strip("/") != "",
        )
        call.name = stat_name(path)
        call.step = step_name(rec.method, call.name, self.steps)
        if i > 0:
            previous_rec = self.recorded[i - 1]
            gap = rec.started - (previous_rec.started + previous_rec.duration)
            if gap >= self.min_think:
                call.think_before = round(min(gap, self.max_think), 1)
        return call

    def learn(self, i: int, rec: Recorded) -> None:
        """Remember what this response returned, for the calls after it."""
        taken_here: dict[str, Capture] = {}
        for path, value in _walk(rec.response_json):
            key = str(path[-1]) if path else ""
            if not _candidate(key, value) or json_path(path) is None:
                continue
            if str(value) in taken_here:
                continue
            taken_here[str(value)] = Capture(var=_var_name(path, rec), json=path)
        for name, value in rec.page_values.items():
            if 4 <= len(value) <= 4096 and value not in taken_here:
                taken_here[value] = Capture(var=name, html_input=name)
        for name, value in rec.response_headers.items():
            if name == "set-cookie":
                continue
            if _TOKEN_HEADER.search(name) and 4 <= len(value) <= 4096 and value not in taken_here:
                taken_here[value] = Capture(var=name, header=name)
        self.jar |= rec.jar_cookies
        for name, value in rec.set_cookies:
            if 4 <= len(value) <= 4096 and value not in taken_here:
                taken_here[value] = Capture(var=name, cookie=name)
        for value, capture in taken_here.items():
            known = self.producers.setdefault(value, [])
            if any(p.capture.var == capture.var for p in known):
                continue  # the same thing again (GET /orders/1 returns order 1): keep the first source
            producer = Producer(len(self.all_producers), i, capture)
            known.append(producer)
            self.all_producers.append(producer)

    def build(self, name: str, description: str) -> Scenario:
        self._plan_credentials()
        for i, rec in enumerate(self.recorded):
            self.calls.append(self.call_for(i, rec))
            self.learn(i, rec)
        self._name_captures()
        notes = []
        if self.dropped_auth:
            notes.append(
                f"{self.dropped_auth} bearer Authorization header(s) not obtained in the recording were "
                "dropped: the run's auth mode (--auth-mode) supplies them"
            )
        if self.dropped_cookies:
            shown = ", ".join(sorted(repr(c[:30]) for c in self.dropped_cookies)[:8])
            notes.append(
                f"cookies the browser had before the recording and no session needs were left out: {shown}"
            )
        if self.masked_files:
            notes.append(
                "secrets in file bodies were masked (a file cannot read the environment): put the real "
                f"values back in the files under files/ of {', '.join(sorted(set(self.masked_files))[:5])}"
            )
        if "kept" in self.pairs:
            notes.append(
                f"login credentials kept from the recording ({self.pairs['kept']}): set HAR_USERNAME and "
                "HAR_PASSWORD to an account that exists; the chain's header says how to use fresh users instead"
            )
        return Scenario(name, description, self.calls, self.generated, notes, dict(self.secrets.described))

    def _name_captures(self) -> None:
        """Give every used capture its final, unique variable name and attach it to its call."""
        final: dict[str, str] = {}
        for producer in self.all_producers:
            if producer.used:
                name = unique_var(producer.capture.var, self.vars)
                final[producer.placeholder] = name
                cap = producer.capture
                self.calls[producer.call].captures.append(
                    Capture(
                        var=name,
                        json=cap.json,
                        header=cap.header,
                        cookie=cap.cookie,
                        html_input=cap.html_input,
                    )
                )
        for call in self.calls:
            call.path = [_rename(s, final) for s in call.path]
            call.query = [(k, _rename(v, final)) for k, v in call.query]
            call.headers = {k: _rename(v, final) for k, v in call.headers.items()}
            call.json = _rename(call.json, final)
            if call.form is not None:
                call.form = [(k, _rename(v, final)) for k, v in call.form]
            if call.multipart is not None:
                call.multipart.fields = [(k, _rename(v, final)) for k, v in call.multipart.fields]


def _rename(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, Ref):
        return Ref(names.get(value.var, value.var))
    if isinstance(value, Text):
        return Text(tuple(Ref(names.get(p.var, p.var)) if isinstance(p, Ref) else p for p in value.parts))
    if isinstance(value, dict):
        return {k: _rename(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename(v, names) for v in value]
    return value


def scenario_from(
    calls: list[Recorded], *, name: str, description: str, min_think: float = 0.1, max_think: float = 5.0
) -> Scenario:
    return Correlator(calls, min_think=min_think, max_think=max_think).build(name, description)
