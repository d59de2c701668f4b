"""Secret masking for everything loadstack prints or writes.

Two layers: patterns catch secrets we have never seen (a password inside a URL,
an ``Authorization`` header, a JWT), and a :class:`Masker` built from the
environment also replaces the exact values of secret-looking variables, so a
token that leaks into an exception message is still hidden.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Control characters (terminal escape sequences included) as visible ``\\xNN`` escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


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
            from loadstack.settings import raw_environment

            environ = raw_environment()
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
            return {(self(k) if isinstance(k, str) else k): self.mask_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.mask_obj(v) for v in obj]
        return obj

    def mask_file(self, path: Path) -> None:
        """Rewrite a file another program wrote (Locust's report.html and CSVs) with secrets masked."""
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            return
        masked = self(text)
        if masked != text:
            path.write_text(masked, encoding="utf-8", errors="surrogateescape")

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


_process: Masker | None = None


def current() -> Masker:
    """This process's masker: its environment's secrets, plus every one learned since (:meth:`Masker.add`).

    Everything loadstack prints or writes passes it (the console, logs, results, reports, metrics
    labels, generated files), so a secret made up at run time is masked everywhere once added.
    """
    global _process
    if _process is None:
        _process = Masker.from_env()
    return _process


class MaskingStream:
    """A text stream that masks each complete line before it reaches the wrapped one.

    Installed as ``sys.stdout``/``sys.stderr`` of loadstack's CLI and of every Locust process
    that loads loadstack (:func:`mask_standard_streams`), so nothing printed escapes the masker,
    whoever prints it.  Lines are buffered so a secret split across two writes is still whole.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            complete, self._pending = self._pending.rsplit("\n", 1)
            self._stream.write(current()(complete) + "\n")
        return len(text)

    def flush(self) -> None:
        if getattr(self._stream, "closed", False):
            return  # at exit, after a host (pytest, an embedding program) closed the stream it lent us
        if self._pending:
            self._stream.write(current()(self._pending))
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def mask_standard_streams() -> None:
    """Route ``sys.stdout`` and ``sys.stderr`` through the masker (idempotent)."""
    import atexit
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, MaskingStream):
            wrapped = MaskingStream(stream)
            setattr(sys, name, wrapped)
            atexit.register(wrapped.flush)
