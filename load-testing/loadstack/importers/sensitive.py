"""Which recorded values are secrets, and which environment variable stands in for each.

A HAR holds everything the browser sent: API keys in headers and query strings,
tokens and passwords in bodies, session cookies.  None of it may end up in a
generated chain or locustfile (those get committed, shared, pasted into
tickets).  Each such value becomes an :class:`~loadstack.importers.model.Env`
reference: the run reads ``HAR_<NAME>`` from its environment (see
:mod:`loadstack.replay`), and the import summary lists every variable to set.

Credentials come in pairs: a login needs the user name that goes with the
password.  A pair is either kept (both read from the environment: the default,
because a generated password cannot sign in to a real account) or, when the
recording itself created the account (a sign-up call sent it first), generated
fresh per iteration (both, so sign-up and login agree).
"""

from __future__ import annotations

import re

from loadstack import masking
from loadstack.importers.model import Env, Text, snake

PREFIX = "HAR_"
# Field names (query, form, JSON, multipart) whose values are secrets.
SECRET_FIELD = re.compile(
    r"(passw|passphrase|secret|token|api[-_]?key|apikey|private[-_]?key|credential|signature"
    r"|session[-_]?id|^sid$|^key$|^auth$|^pin$|^otp$|^pwd$)",
    re.I,
)
# Header names whose values are secrets (Authorization is decided by its scheme, see the correlator).
SECRET_HEADER = re.compile(
    r"(api[-_]?key|apikey|token|secret|signature|session|passw|credential|private|auth|x-amz-security)", re.I
)
# Cookies that carry a session or a credential; others (preferences, tracking) are left out.
SESSION_COOKIE = re.compile(r"(sess|sid|token|auth|jwt|remember|login|identity|csrf|xsrf|user)", re.I)
USERNAME_FIELD = re.compile(
    r"^(user|username|user[-_]?name|login|email|e[-_]?mail|account|identifier|user[-_]?id|userid)$", re.I
)
PASSWORD_FIELD = re.compile(r"(passw|passphrase|^pwd$|^pass$)", re.I)
SIGNUP_PATH = re.compile(
    r"(register|sign[-_]?up|signup|join|create[-_]?account|enrol|/users/?$|/accounts/?$|/members/?$)", re.I
)


# The key a secret follows in text (``password=``, ``"token": "``), to name its variable.
_KEY_BEFORE = re.compile(
    r"([A-Za-z][A-Za-z0-9_-]{0,40})[\"']?\s*[:=]\s*[\"']?(?:bearer\s+|basic\s+)?\Z", re.I
)
_PROBE_KEY = "password="
_PROBE = _PROBE_KEY + "Qz7vK2" * 4  # secret by shape: whatever the masker puts in its place is its token


def masker() -> masking.Masker:
    """The masker's secret detection as every generated file must pass it: the shapes of
    :func:`masking.mask_patterns` and the literal secret values of this environment."""
    from loadstack.settings import raw_environment

    return masking.Masker(masking.secret_values_from_env(raw_environment()))


def _mask_token(mask: masking.Masker) -> str | None:
    """What the masker writes in place of a secret (``***``), learnt from it; None if it cannot be."""
    masked = mask(_PROBE)
    token = masked.removeprefix(_PROBE_KEY)
    if masked == _PROBE or not masked.startswith(_PROBE_KEY) or not token or token in _PROBE:
        return None
    return token


def secret_spans(text: str, mask: masking.Masker, token: str | None) -> list[tuple[int, int]] | None:
    """Where in ``text`` the masker finds secrets: ``[]`` for none, ``None`` when they cannot be located.

    The masker answers with text, not positions: ``text`` with each secret replaced by ``token``.
    The pieces between tokens are matched back into ``text`` in order (each secret at least one
    character, the earliest fit: a secret ends where the masked text goes on).  A fit that leaves
    a masker-visible secret in a literal piece, or that does not fit at all, is ``None``: the caller
    then treats the whole value as the secret.
    """
    masked = mask(text)
    if masked == text:
        return []
    if token is None:
        return None
    pieces = masked.split(token)
    head, tail = pieces[0], pieces[-1]
    if len(pieces) < 2 or not text.startswith(head) or not text.endswith(tail):
        return None
    end = len(text) - len(tail)
    pos = len(head)
    spans: list[tuple[int, int]] = []
    for middle in pieces[1:-1]:
        found = text.find(middle, pos + 1, end)
        if found < 0:
            return None
        spans.append((pos, found))
        pos = found + len(middle)
    if end <= pos:
        return None
    spans.append((pos, end))
    bounds = [0, *(edge for span in spans for edge in span), len(text)]
    literals = [text[bounds[i] : bounds[i + 1]] for i in range(0, len(bounds), 2)]
    if any(mask(piece) != piece for piece in literals):
        return None
    return spans


def env_name(base: str) -> str:
    """``X-API-Key`` → ``HAR_X_API_KEY`` (a valid, upper-case environment variable name)."""
    name = snake(base).upper()[:56] or "VALUE"
    return PREFIX + name


class Secrets:
    """The environment variables a scenario reads; the same recorded value always maps to one variable."""

    def __init__(self) -> None:
        self.by_value: dict[str, str] = {}
        self.described: dict[str, str] = {}  # variable -> what it stands for (for the summary)
        self._mask: masking.Masker | None = None
        self._token: str | None = None

    def _masker(self) -> masking.Masker:
        """Built on first use (from this environment) and kept: one import, one masker."""
        if self._mask is None:
            self._mask = masker()
            self._token = _mask_token(self._mask)
        return self._mask

    def scrub(self, value: str, base: str, what: str) -> str | Text | Env:
        """``value`` with every secret the masker sees in it read from the environment instead.

        A password in a text body or inside a JSON string (a GraphQL query's arguments), a JWT in a
        header the name does not give away: each becomes an :class:`Env` part of a :class:`Text`,
        the text around it kept as recorded.  When the secrets cannot be told apart from the text
        around them, the whole value is the secret.
        """
        if not value:
            return value
        spans = secret_spans(value, self._masker(), self._token)
        if spans == []:
            return value
        if spans is None:
            return self.env(value, f"secret_{base}", what)
        parts: list[str | Env] = []
        last = 0
        for start, end in spans:
            if end - start > 2 and value[start] in "'\"" and value[end - 1] == value[start]:
                start, end = start + 1, end - 1  # a quoted secret: the quotes stay text
            key = _KEY_BEFORE.search(value, max(0, start - 80), start)
            # HAR_SECRET_*: apart from the login's HAR_USERNAME/HAR_PASSWORD pair and field secrets
            name = f"secret_{key[1] if key else base}"
            parts += [value[last:start], self.env(value[start:end], name, what)]
            last = end
        parts.append(value[last:])
        return Text.of(*parts)

    def scrub_bytes(self, data: bytes) -> bytes | None:
        """A file's bytes with the secrets the masker sees in them masked; None when there are none.

        A file is sent as it is (no templates), so a secret in it cannot become a variable: it is
        masked, and the caller says which file needs the real value put back.
        """
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        masked = self._masker()(text)
        return masked.encode("utf-8") if masked != text else None

    def env(self, value: str, base: str, what: str) -> Env:
        name = self.by_value.get(value)
        if name is None:
            name, n = env_name(base), 2
            stem = name
            while name in self.described:
                name, n = f"{stem}_{n}", n + 1
            self.by_value[value] = name
            self.described[name] = self._masker()(what)  # printed and written: it may quote a recorded path
        return Env(name)
