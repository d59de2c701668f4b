"""Correlation: turn a recording's stale values into data that flows from response to request.

A replayed ``GET /orders/8812`` fails on a fresh system: order 8812 was created
by the recorded session, not by the test.  For every value a later request
uses, this module looks for an earlier response that returned it (ids, tokens,
CSRF values, in JSON bodies or headers) and replaces the literal with a
variable saved from that response.  Values the *recording* invented (the email
it signed up with, its password) become fresh per-iteration values instead, so
a replay never collides with data that already exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loadstack.importers.har import Recorded
from loadstack.importers.model import (
    Call,
    Capture,
    Generated,
    JsonPath,
    Ref,
    Scenario,
    Text,
    looks_like_id,
    singular,
    snake,
    stat_name,
    step_name,
    unique_var,
)

_ID_KEY = re.compile(r"(^id$|_id$|Id$|^uuid$|_uuid$|^guid$|_ref$|^ref$|number$)", re.I)
_TOKEN_KEY = re.compile(r"(token|csrf|xsrf|nonce|session|ticket|cursor|etag)", re.I)
_TOKEN_HEADER = re.compile(r"(csrf|xsrf|token|session|request-id|etag)", re.I)
_SHAPED = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}|eyJ[\w-]+\.[\w-]+\.[\w-]+)$",
    re.I,
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SECRET_KEY = re.compile(r"(password|passwd|passphrase|secret|pin|otp)", re.I)
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


def _candidate(key: str, value: Any) -> bool:
    """Is a response value distinctive enough that seeing it again in a request is no coincidence?"""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int):
        return bool(_ID_KEY.search(key)) and abs(value) >= 1
    if isinstance(value, str):
        if len(value) < 4 or len(value) > 4096:
            return False
        return bool(_ID_KEY.search(key) or _TOKEN_KEY.search(key) or _SHAPED.match(value))
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


class Correlator:
    def __init__(self, calls: list[Recorded], *, min_think: float, max_think: float) -> None:
        self.recorded = calls
        self.min_think, self.max_think = min_think, max_think
        self.producers: dict[str, list[Producer]] = {}  # str(value) -> every response that returned it
        self.all_producers: list[Producer] = []
        self.generated_by_value: dict[str, str] = {}
        self.generated: dict[str, Generated] = {}
        self.vars: set[str] = set()
        self.steps: set[str] = set()
        self.calls: list[Call] = []
        self.dropped_auth = 0

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

    def _fresh(self, key: str, value: Any) -> Ref | None:
        """A value the recording made up that must be new on every replay (sign-up email, password)."""
        if not isinstance(value, str) or not value:
            return None
        kind = "email" if _EMAIL.match(value) else "secret" if _SECRET_KEY.search(key) else None
        if kind is None:
            return None
        var = self.generated_by_value.get(value)
        if var is None:
            var = unique_var(key if kind == "secret" else "email", self.vars)
            self.generated_by_value[value] = var
            self.generated[var] = Generated(kind, note=f"recorded value replaced ({kind})")
        return Ref(var)

    def _value(self, key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._value(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(key, v) for v in value]
        return self._ref(value, key) or self._fresh(key, value) or value

    def _header(self, name: str, value: str) -> Any:
        scheme, _, credential = value.partition(" ")
        if name.lower() == "authorization":
            ref = self._ref(credential) if credential else None
            if ref is None:
                # A token the recording did not obtain itself: the run's auth mode supplies one.
                self.dropped_auth += 1
                return None
            return Text.of(scheme + " ", ref)
        return self._ref(value, name) or value

    # -- the scenario -----------------------------------------------------------------------
    def call_for(self, i: int, rec: Recorded) -> Call:
        path: list[str | Ref] = []
        for segment in (s for s in rec.path.split("/") if s):
            previous = next((p for p in reversed(path) if isinstance(p, str) and not looks_like_id(p)), "")
            path.append(self._ref(segment, hint=f"{singular(previous)}_id" if previous else None) or segment)
        headers = {}
        for name, value in rec.headers.items():
            converted = self._header(name, value)
            if converted is not None:
                headers[name] = converted
        call = Call(
            method=rec.method,
            path=path,
            name="",
            step="",
            query=[(k, self._ref(v, k) or v) for k, v in rec.query],
            headers=headers,
            json=self._value("", rec.json) if rec.has_json else None,
            form=[(k, self._value(k, v)) for k, v in rec.form] if rec.form is not None else None,
            body=rec.body,
            content_type=rec.content_type,
            expect_status=[rec.status],
        )
        call.name = stat_name(path)
        call.step = step_name(rec.method, call.name, self.steps)
        if i > 0:
            previous = self.recorded[i - 1]
            gap = rec.started - (previous.started + previous.duration)
            if gap >= self.min_think:
                call.think_before = round(min(gap, self.max_think), 1)
        return call

    def learn(self, i: int, rec: Recorded) -> None:
        """Remember what this response returned, for the calls after it."""
        taken_here: dict[str, Capture] = {}
        for path, value in _walk(rec.response_json):
            key = str(path[-1]) if path else ""
            if not _candidate(key, value):
                continue
            if str(value) in taken_here:
                continue
            taken_here[str(value)] = Capture(var=_var_name(path, rec), json=path)
        for name, value in rec.response_headers.items():
            if _TOKEN_HEADER.search(name) and len(value) >= 4 and value not in taken_here:
                taken_here[value] = Capture(var=name, header=name)
        for value, capture in taken_here.items():
            known = self.producers.setdefault(value, [])
            if any(p.capture.var == capture.var for p in known):
                continue  # the same thing again (GET /orders/1 returns order 1): keep the first source
            producer = Producer(len(self.all_producers), i, capture)
            known.append(producer)
            self.all_producers.append(producer)

    def build(self, name: str, description: str) -> Scenario:
        for i, rec in enumerate(self.recorded):
            self.calls.append(self.call_for(i, rec))
            self.learn(i, rec)
        self._name_captures()
        notes = []
        if self.dropped_auth:
            notes.append(
                f"{self.dropped_auth} Authorization header(s) not obtained in the recording were dropped: "
                "the run's auth mode (--auth-mode) supplies them"
            )
        return Scenario(name, description, self.calls, self.generated, notes)

    def _name_captures(self) -> None:
        """Give every used capture its final, unique variable name and attach it to its call."""
        final: dict[str, str] = {}
        for producer in self.all_producers:
            if producer.used:
                name = unique_var(producer.capture.var, self.vars)
                final[producer.placeholder] = name
                cap = producer.capture
                self.calls[producer.call].captures.append(Capture(var=name, json=cap.json, header=cap.header))
        for call in self.calls:
            call.path = [_rename(s, final) for s in call.path]
            call.query = [(k, _rename(v, final)) for k, v in call.query]
            call.headers = {k: _rename(v, final) for k, v in call.headers.items()}
            call.json = _rename(call.json, final)
            if call.form is not None:
                call.form = [(k, _rename(v, final)) for k, v in call.form]


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
