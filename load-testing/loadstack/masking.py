"""Secret masking for everything loadstack prints or writes.

Two layers: patterns catch secrets we have never seen (a password inside a URL,
an ``Authorization`` header, a JWT), and a :class:`Masker` built from the
environment also replaces the exact values of secret-looking variables, so a
token that leaks into an exception message is still hidden.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# Environment variable names whose values are secrets in full.
SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTHORIZATION|COOKIE|CLAIMS|SESSION)",
    re.I,
)
# Names whose values are URLs/DSNs that may carry a password.
URL_NAME = re.compile(r"(DSN|URL|URI|HOST)$", re.I)

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I)
_AUTH_HEADER = re.compile(
    r"(?P<k>authorization['\"]?\s*[:=]\s*['\"]?)(?P<scheme>bearer|basic|token)?\s*[^\s'\",}]+", re.I
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b")
_KV_SECRET = re.compile(
    r"(?P<k>\b(?:password|passwd|client_secret|secret|token|access_token|api_key)\b['\"]?\s*[:=]\s*)"
    r"(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s'\",&}]+)",
    re.I,
)

# Names that match SECRET_NAME but hold settings, not secrets (LOADSTACK_JWT_KEY_FILE). A client id is
# not a secret either: masking the default client id `loadstack` would garble every path.
_NOT_SECRET = (
    "_MODE",
    "_FILE",
    "_PATH",
    "_ALGORITHM",
    "_TTL",
    "_PROBE",
    "_ISSUER",
    "_SUBJECT",
    "_CLIENT_AUTH",
    "_CLIENT_ID",
)

# Short values would mask ordinary words; real secrets are longer.
_MIN_LITERAL = 4


def mask_url(url: str) -> str:
    """Replace the password of ``scheme://user:password@host`` with ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{netloc}"))


def mask_dsn(dsn: str) -> str:
    """A URL or a libpq keyword DSN (``host=h password=p``) with its password masked."""
    return mask_patterns(mask_url(dsn))


def mask_patterns(text: str) -> str:
    """Mask secrets recognisable by shape alone."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['k']}{(m['scheme'] + ' ') if m['scheme'] else ''}{MASK}", text)
    text = _KV_SECRET.sub(lambda m: f"{m['k']}{MASK}", text)
    return _JWT.sub(MASK, text)


def secret_values_from_env(environ: Mapping[str, str]) -> set[str]:
    """Literal secret values found in an environment."""
    values: set[str] = set()
    for name, value in environ.items():
        if not value:
            continue
        if SECRET_NAME.search(name) and not name.endswith((*_NOT_SECRET, "_URL")):
            values.add(value)
        if "://" in value:
            try:
                parts = urlsplit(value)
                password, username = parts.password, parts.username
            except ValueError:
                password = username = None
            # user == password is a local dev default (e.g. loadstack:loadstack); masking that word
            # everywhere would garble every log line, and inside URLs the pattern masks it anyway.
            if password and password != username:
                values.add(password)
    return {v for v in values if len(v) >= _MIN_LITERAL}


class Masker:
    """Masks known secret values and secret-shaped text.

    Built once per process from the environment (plus any extra values, such
    as a token fetched at run time) and applied to every line and file.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = {s for s in secrets if s and len(s) >= _MIN_LITERAL}
        self._literal: re.Pattern[str] | None = None
        self._compile()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Masker:
        if environ is None:
            from loadstack.settings import current

            environ = current().environ
        return cls(secret_values_from_env(environ))

    def add(self, *secrets: str) -> None:
        new = {s for s in secrets if s and len(s) >= _MIN_LITERAL} - self._secrets
        if new:
            self._secrets |= new
            self._compile()

    def _compile(self) -> None:
        if self._secrets:
            # Longest first so a secret containing another is masked whole.
            alternatives = sorted(self._secrets, key=len, reverse=True)
            self._literal = re.compile("|".join(re.escape(s) for s in alternatives))
        else:
            self._literal = None

    def __call__(self, text: str) -> str:
        if self._literal is not None:
            text = self._literal.sub(MASK, text)
        return mask_patterns(text)

    def mask_obj(self, obj: Any) -> Any:
        """Mask every string inside a JSON-like structure."""
        if isinstance(obj, str):
            return self(obj)
        if isinstance(obj, Mapping):
            return {k: self.mask_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.mask_obj(v) for v in obj]
        return obj

    def mask_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """An environment fit for writing to disk: secret variables fully masked."""
        out: dict[str, str] = {}
        for name, value in environ.items():
            if (
                SECRET_NAME.search(name)
                and not URL_NAME.search(name)
                and not name.endswith(_NOT_SECRET)
                and value
            ):
                out[name] = MASK
            else:
                out[name] = self(value)
        return out
