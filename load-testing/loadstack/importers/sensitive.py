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

from loadstack.importers.model import Env, snake

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


def env_name(base: str) -> str:
    """``X-API-Key`` → ``HAR_X_API_KEY`` (a valid, upper-case environment variable name)."""
    name = snake(base).upper()[:56] or "VALUE"
    return PREFIX + name


class Secrets:
    """The environment variables a scenario reads; the same recorded value always maps to one variable."""

    def __init__(self) -> None:
        self.by_value: dict[str, str] = {}
        self.described: dict[str, str] = {}  # variable -> what it stands for (for the summary)

    def env(self, value: str, base: str, what: str) -> Env:
        name = self.by_value.get(value)
        if name is None:
            name, n = env_name(base), 2
            stem = name
            while name in self.described:
                name, n = f"{stem}_{n}", n + 1
            self.by_value[value] = name
            self.described[name] = what
        return Env(name)
