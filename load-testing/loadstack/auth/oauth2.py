"""OAuth2 client credentials (RFC 6749 §4.4): a service account's token from the provider.

Plain ``urllib`` on purpose: it works unpatched in the runner (the start-up
check) and cooperatively inside Locust processes, whose sockets gevent patches.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from loadstack import safety
from loadstack.auth.config import CLIENT_SECRET_ENV, AuthConfigError, secret
from loadstack.auth.tokens import AuthError, Token
from loadstack.masking import mask_patterns

TIMEOUT_S = 10.0
DEFAULT_LIFETIME_S = 3600.0  # when the provider does not say (expires_in is only RECOMMENDED)


def check_settings(settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> None:
    missing = [k for k in ("token_url", "client_id") if not settings.get(k)]
    if missing:
        raise AuthConfigError(
            "auth oauth2: "
            + ", ".join(f"{k} missing (LOADSTACK_OAUTH_{k.upper()} or auth.{k})" for k in missing)
        )
    if not secret(CLIENT_SECRET_ENV, env):
        raise AuthConfigError(f"auth oauth2: {CLIENT_SECRET_ENV} is not set (the client secret)")


def fetch(
    settings: Mapping[str, Any], env: Mapping[str, str] | None = None, *, allow_remote: bool = False
) -> Token:
    """One token request; :class:`AuthError` with the provider's own reason on failure."""
    client_id = str(settings["client_id"])
    client_secret = secret(CLIENT_SECRET_ENV, env) or ""
    form = {"grant_type": "client_credentials"}
    for key in ("scope", "audience"):
        if settings.get(key):
            form[key] = str(settings[key])
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    if settings.get("client_auth", "basic") == "post":
        form.update(client_id=client_id, client_secret=client_secret)
    else:
        pair = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    request = urllib.request.Request(
        str(settings["token_url"]), data=urllib.parse.urlencode(form).encode(), headers=headers, method="POST"
    )
    try:
        with safety.urlopen(request, allow_remote=allow_remote, timeout=TIMEOUT_S) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raise AuthError(f"token endpoint answered {exc.code}{_reason(exc)}") from None
    except safety.RemoteTargetError as exc:
        raise AuthError(str(exc)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AuthError(f"token endpoint unreachable: {mask_patterns(str(reason))}") from None
    try:
        body = json.loads(raw)
        value = body["access_token"]
    except (ValueError, KeyError, TypeError):
        raise AuthError("token endpoint answered without a JSON access_token") from None
    if str(body.get("token_type", "bearer")).lower() != "bearer":
        raise AuthError(f"token endpoint issued a {body.get('token_type')!r} token, not a bearer token")
    lifetime = float(body.get("expires_in") or DEFAULT_LIFETIME_S)
    return Token(value=str(value), expires_at=time.monotonic() + lifetime, lifetime=lifetime, size=len(raw))


def _reason(exc: urllib.error.HTTPError) -> str:
    """The RFC 6749 ``error`` / ``error_description`` of a failed token request, if any."""
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        return ""
    if not isinstance(body, dict) or "error" not in body:
        return ""
    detail = f" ({body['error']}"
    if body.get("error_description"):
        detail += f": {body['error_description']}"
    return mask_patterns(detail[:200] + ")")
