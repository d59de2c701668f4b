"""Bearer tokens for the demo platform: short-lived HS256 JWTs signed with a process secret.

Stateless tokens keep the platform's auth path cheap and let several server
processes (or a restarted one with the same secret) accept each other's tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from typing import Any

import jwt

ISSUER = "loadstack-demo"
TOKEN_TTL_S = 3600


class TokenError(Exception):
    """Missing, malformed, expired or foreign token: always a 401."""


class TokenIssuer:
    def __init__(self, secret: str | None = None) -> None:
        self._secret = secret or os.environ.get("LOADSTACK_DEMO_SECRET") or secrets.token_urlsafe(32)

    def issue(self, user_id: int, email: str) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": str(user_id), "email": email, "iat": now, "exp": now + TOKEN_TTL_S}
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        return {"access_token": token, "token_type": "bearer", "expires_in": TOKEN_TTL_S}

    def verify(self, authorization: str | None) -> dict[str, Any]:
        if not authorization:
            raise TokenError("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise TokenError("expected 'Authorization: Bearer <token>'")
        try:
            return jwt.decode(
                token, self._secret, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp"]}
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None


def hash_password(password: str, salt: str | None = None) -> str:
    """Salted SHA-256: deliberately cheap, this is a load-test target, not a real identity store."""
    salt = salt or secrets.token_hex(8)
    digest = hashlib.sha256((salt + password).encode()).hexdigest()
    return f"{salt}${digest}"


def check_password(password: str, stored: str) -> bool:
    salt, _, _ = stored.partition("$")
    return hmac.compare_digest(hash_password(password, salt), stored)
