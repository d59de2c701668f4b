"""What imported scenarios use at run time: recorded secrets from the environment, values from pages.

``loadstack import har`` never writes a recorded secret (an API key, a session
cookie, a password) into what it generates.  It writes a reference to an
environment variable instead, ``{{ env.HAR_X_API_KEY }}`` in a chain and
``secret("HAR_X_API_KEY")`` in a locustfile, and the import summary names each
variable to set.  Both read the variable through :func:`secret`, which fails
with a message naming the variable when it is not set.

Values a server hands out in HTML rather than JSON, such as the CSRF token in a
hidden form field or a ``<meta name="csrf-token">``, and values in
``Set-Cookie`` headers, are read with :func:`html_input` and :func:`cookie`.
Chains use them as the template filters ``last | html_input("csrf_token")`` and
``last | cookie("XSRF-TOKEN")``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from html.parser import HTMLParser
from http.cookies import CookieError, SimpleCookie
from typing import Any

from loadstack.settings import current

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class MissingSecret(ValueError):
    """An environment variable an imported scenario reads is not set."""


def _environment_value(name: str) -> str | None:
    return current().environ.get(name)


def secret(name: str) -> str:
    """The value of environment variable ``name``; :class:`MissingSecret` saying what to set."""
    if not ENV_NAME.fullmatch(name):
        raise MissingSecret(f"{name!r} is not an environment variable name")
    value = _environment_value(name)
    if value is None:
        raise MissingSecret(
            f"environment variable {name} is not set (the import summary says what it stands for)"
        )
    return value


class EnvValues(Mapping[str, str]):
    """``env`` in chain templates: ``{{ env.HAR_X_API_KEY }}`` reads the variable when rendered."""

    def __getitem__(self, name: str) -> str:
        return secret(name)

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return secret(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())  # not enumerable: a template names what it reads

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<environment variables>"


ENV = EnvValues()


class _FormFields(HTMLParser):
    """``<input name value>`` and ``<meta name content>`` of a page, first occurrence of each name."""

    def __init__(self, hidden_only: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden_only = hidden_only
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v or "" for k, v in attrs}
        if tag == "input" and a.get("name"):
            if self.hidden_only and a.get("type", "").lower() != "hidden":
                return
            self.values.setdefault(a["name"], a.get("value", ""))
        elif tag == "meta" and a.get("name") and "content" in a and _TOKENISH.search(a["name"]):
            self.values.setdefault(a["name"], a["content"])

    handle_startendtag = handle_starttag


_TOKENISH = re.compile(r"(csrf|xsrf|token|nonce|authenticity)", re.I)


def form_values(html: str, *, hidden_only: bool = True) -> dict[str, str]:
    """Hidden form fields and token ``<meta>`` tags of an HTML page, by name."""
    parser = _FormFields(hidden_only)
    try:
        parser.feed(html)
        parser.close()
    except (ValueError, AssertionError):
        pass  # what was read before the broken markup still counts
    return parser.values


def _wrapped(response: Any) -> Any:
    """Locust's response inside a chain HTTP step's ``last`` (which keeps only 4 KB of text itself)."""
    return getattr(response, "_resp", None) or response


def _text_of(response: Any) -> str:
    if isinstance(response, str):
        return response
    response = _wrapped(response)
    if isinstance(response, Mapping):
        return str(response.get("text") or "")
    return str(getattr(response, "text", "") or "")


def html_input(response: Any, name: str) -> str:
    """The value of form field (or token ``<meta>``) ``name`` in an HTML response or text."""
    values = form_values(_text_of(response), hidden_only=False)
    if name not in values:
        raise LookupError(f"no <input name={name!r}> or <meta name={name!r}> in the response")
    return values[name]


def _set_cookie_lines(response: Any) -> list[str]:
    response = _wrapped(response)
    headers = response.get("headers") if isinstance(response, Mapping) else getattr(response, "headers", None)
    getlist = getattr(headers, "getlist", None) or getattr(headers, "get_all", None)
    if callable(getlist):  # every Set-Cookie line, not only the last
        return list(getlist("set-cookie") or [])
    if isinstance(headers, Mapping):
        value = headers.get("set-cookie") or headers.get("Set-Cookie")
        return [value] if isinstance(value, str) else list(value or [])
    return []


def cookie(response: Any, name: str) -> str:
    """The value a response's ``Set-Cookie`` gave cookie ``name``."""
    for line in _set_cookie_lines(response):
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(line)
        except CookieError:
            key, sep, rest = line.partition("=")
            if sep and key.strip() == name:
                return rest.split(";", 1)[0].strip()
            continue
        if name in jar:
            return jar[name].value
    raise LookupError(f"the response set no cookie {name!r}")


FILTERS = {"html_input": html_input, "cookie": cookie}
