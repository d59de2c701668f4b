"""Who is calling the demo platform: its own user tokens, OAuth2 client tokens, local JWTs.

Three kinds of bearer token are accepted, so every loadstack auth mode is tested
for real over HTTP:

- user tokens from ``POST /api/v1/auth/login`` (HS256, issuer ``loadstack-demo``);
- client-credentials tokens from ``POST /oauth/token`` (same signer, ``sub`` = ``client:<id>``),
  for the client configured by ``LOADSTACK_DEMO_OAUTH_CLIENT_ID`` / ``_SECRET``;
- locally signed JWTs when the platform is told to trust them:
  ``LOADSTACK_DEMO_LOCAL_JWT_SECRET`` (HS256) or ``LOADSTACK_DEMO_LOCAL_JWT_KEY_FILE`` (RS256,
  a PEM public or private key), issuer ``LOADSTACK_DEMO_LOCAL_JWT_ISSUER`` (``loadstack-local``).

Stateless tokens keep the auth path cheap and let several server processes (or a restarted one
with the same ``LOADSTACK_DEMO_SECRET``) accept each other's tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from loadstack.settings import current

ISSUER = "loadstack-demo"
TOKEN_TTL_S = 3600


class TokenError(Exception):
    """Missing, malformed, expired or foreign token: always a 401."""


class OAuthError(Exception):
    """A refused token request, in RFC 6749 §5.2 terms."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


@dataclass(frozen=True)
class Principal:
    """The caller: a registered user (``user_id``) or a service identity (``sub``)."""

    sub: str
    kind: str  # user | client | local
    user_id: int | None = None


@dataclass(frozen=True)
class LocalTrust:
    """The key that locally signed JWTs must verify against."""

    algorithm: str
    key: Any
    issuer: str

    @classmethod
    def from_env(cls) -> LocalTrust | None:
        config = current()
        if config.demo_local_jwt_key_file:
            key = _public_key(Path(config.demo_local_jwt_key_file).read_bytes())
            return cls("RS256", key, config.demo_local_jwt_issuer)
        secret = config.secret("demo_local_jwt_secret")
        return cls("HS256", secret, config.demo_local_jwt_issuer) if secret else None


def _public_key(pem: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    if b"PRIVATE KEY" in pem:
        return serialization.load_pem_private_key(pem, password=None).public_key()
    return serialization.load_pem_public_key(pem)


class OAuthClients:
    """The client-credentials grant for one configured client, with an optional failure switch."""

    def __init__(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        ttl_s: int | None = None,
        fail_after: int | None = None,
    ) -> None:
        config = current()
        self.client_id = client_id or config.demo_oauth_client_id or "loadstack"
        self._secret = client_secret or config.secret("demo_oauth_client_secret") or ""
        self.ttl_s = int(ttl_s or config.demo_oauth_token_ttl or 300)
        # Simulates a provider outage: after N tokens every request gets 503 (tests a mid-run failure).
        self.fail_after = fail_after if fail_after is not None else config.demo_oauth_fail_after
        self.issued = 0
        self._lock = threading.Lock()

    def authenticate(self, form: dict[str, str], authorization: str | None) -> str:
        """The client id, after checking its secret (HTTP Basic or form fields)."""
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization and authorization.lower().startswith("basic "):
            try:
                pair = base64.b64decode(authorization[6:]).decode()
            except (ValueError, UnicodeDecodeError):
                raise OAuthError(401, "invalid_client", "malformed Basic credentials") from None
            user, _, password = pair.partition(":")
            client_id, client_secret = urllib.parse.unquote(user), urllib.parse.unquote(password)
        if not self._secret:
            raise OAuthError(
                401, "invalid_client", "no client registered (LOADSTACK_DEMO_OAUTH_CLIENT_SECRET)"
            )
        if client_id != self.client_id or not hmac.compare_digest(client_secret, self._secret):
            raise OAuthError(401, "invalid_client", "unknown client or wrong secret")
        return client_id

    def grant(self, form: dict[str, str], authorization: str | None, issuer: TokenIssuer) -> dict[str, Any]:
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "only client_credentials is supported")
        client_id = self.authenticate(form, authorization)
        with self._lock:
            if self.fail_after is not None and self.issued >= self.fail_after:
                raise OAuthError(503, "temporarily_unavailable", "token service is down (simulated)")
            self.issued += 1
        return issuer.issue_client(client_id, self.ttl_s, form.get("scope"))


class TokenIssuer:
    def __init__(self, secret: str | None = None, local: LocalTrust | None = None) -> None:
        self._secret = secret or current().secret("demo_secret") or secrets.token_urlsafe(32)
        self.local = local

    def _sign(self, claims: dict[str, Any], ttl: int) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": ISSUER, "iat": now, "exp": now + ttl, **claims}
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        return {"access_token": token, "token_type": "bearer", "expires_in": ttl}

    def issue(self, user_id: int, email: str) -> dict[str, Any]:
        return self._sign({"sub": str(user_id), "email": email, "typ": "user"}, TOKEN_TTL_S)

    def issue_client(self, client_id: str, ttl: int, scope: str | None) -> dict[str, Any]:
        answer = self._sign({"sub": f"client:{client_id}", "typ": "client", "scope": scope or ""}, ttl)
        return {**answer, "scope": scope or ""}

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise TokenError("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise TokenError("expected 'Authorization: Bearer <token>'")
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        try:
            if issuer == ISSUER:
                claims = jwt.decode(
                    token, self._secret, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp"]}
                )
                if claims.get("typ") == "client":
                    return Principal(claims["sub"], "client")
                return Principal(claims["sub"], "user", int(claims["sub"]))
            if self.local is not None and issuer == self.local.issuer:
                claims = jwt.decode(
                    token,
                    self.local.key,
                    algorithms=[self.local.algorithm],
                    issuer=self.local.issuer,
                    options={"require": ["exp", "sub"], "verify_aud": False},
                )
                return Principal(f"local:{claims['sub']}", "local")
        except (jwt.PyJWTError, ValueError, KeyError) as exc:
            raise TokenError(f"invalid token: {exc}") from None
        raise TokenError(f"untrusted token issuer {issuer!r}")


def principal_email(sub: str) -> str:
    """The demo user record that stands for a service identity (orders need an owner)."""
    slug = "".join(c if c.isalnum() else "-" for c in sub.lower()).strip("-")[:40]
    return f"{slug}-{hashlib.sha256(sub.encode()).hexdigest()[:8]}@principals.demo.test"


def parse_form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}


def hash_password(password: str, salt: str | None = None) -> str:
    """Salted SHA-256: deliberately cheap, this is a load-test target, not a real identity store."""
    salt = salt or secrets.token_hex(8)
    digest = hashlib.sha256((salt + password).encode()).hexdigest()
    return f"{salt}${digest}"


def check_password(password: str, stored: str) -> bool:
    salt, _, _ = stored.partition("$")
    return hmac.compare_digest(hash_password(password, salt), stored)
