"""Locally signed JWTs for development services that trust a shared secret or a known key.

No identity provider involved: loadstack signs its own short-lived token
(HS256 with ``LOADSTACK_JWT_SECRET``, or RS256 with the PEM private key in
``LOADSTACK_JWT_KEY_FILE``) and re-signs it before it expires.
"""

from __future__ import annotations

import secrets as _secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt

from loadstack.auth.config import JWT_SECRET_ENV, AuthConfigError, secret
from loadstack.auth.tokens import Token

# Claims the profile may not override: they are what makes the token short-lived.
_RESERVED = {"iat", "nbf", "exp", "jti"}


def check_settings(settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> None:
    if settings.get("algorithm") == "RS256":
        key_file = settings.get("key_file")
        if not key_file:
            raise AuthConfigError("auth local RS256: set LOADSTACK_JWT_KEY_FILE (a PEM private key)")
        if not Path(key_file).is_file():
            raise AuthConfigError(f"auth local RS256: key file {key_file} not found")
        _private_key(key_file)
    elif not secret(JWT_SECRET_ENV, env):
        raise AuthConfigError(f"auth local HS256: {JWT_SECRET_ENV} is not set (the shared signing secret)")
    reserved = sorted(_RESERVED & set(settings.get("claims") or {}))
    if reserved:
        raise AuthConfigError(f"auth.claims: {', '.join(reserved)} are set by loadstack on every signing")


def _private_key(key_file: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise AuthConfigError(
            f"auth local RS256: {key_file} is not an unencrypted PEM private key ({type(exc).__name__})"
        ) from None


def sign(settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Token:
    now = int(time.time())
    lifetime = float(settings.get("ttl") or 300)
    claims: dict[str, Any] = {
        "iss": settings.get("issuer") or "loadstack-local",
        "sub": settings.get("subject") or "loadstack",
        **(settings.get("claims") or {}),
        "iat": now,
        "nbf": now - 5,  # small clock skew between load generator and service
        "exp": now + int(lifetime),
        "jti": _secrets.token_hex(8),
    }
    if settings.get("audience") and "aud" not in claims:
        claims["aud"] = settings["audience"]
    if settings.get("algorithm") == "RS256":
        key: Any = _private_key(str(settings["key_file"]))
        value = jwt.encode(claims, key, algorithm="RS256")
    else:
        value = jwt.encode(claims, secret(JWT_SECRET_ENV, env) or "", algorithm="HS256")
    return Token(value=value, expires_at=time.monotonic() + lifetime, lifetime=lifetime)
