"""The start-up check of an auth mode: get one token and show it to the target once.

Without it, a service that does not trust the token turns a whole run into
401s; with it, the run stops before any load with a sentence saying why.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from loadstack import safety
from loadstack.auth import Credentials, check_settings
from loadstack.auth.config import AuthConfigError
from loadstack.auth.tokens import AuthError

TIMEOUT_S = 10.0


def check(
    settings: Mapping[str, Any],
    host: str,
    env: Mapping[str, str] | None = None,
    *,
    allow_remote: bool = False,
) -> str:
    """A line for the console when the mode works; :class:`AuthConfigError` when it cannot."""
    mode = settings.get("mode", "none")
    if mode == "none":
        return "auth: none"
    check_settings(settings, env)
    try:
        authorization = Credentials(settings, env, allow_remote=allow_remote).authorization()
    except AuthError as exc:
        raise AuthConfigError(f"auth oauth2: no token from {settings.get('token_url')}: {exc}") from None
    probe = settings.get("probe")
    if not probe:
        return f"auth: {mode} token ready (no probe configured)"
    try:
        url = safety.check_request(host.rstrip("/"), "/" + str(probe).lstrip("/"), allow_remote=allow_remote)
    except safety.RemoteTargetError as exc:
        raise AuthConfigError(f"auth.probe: {exc}") from None
    request = urllib.request.Request(
        url, headers={"Authorization": authorization, "Accept": "application/json"}
    )
    try:
        with safety.urlopen(request, allow_remote=allow_remote, timeout=TIMEOUT_S) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return (
            f"auth: {mode} token ready; probe GET {probe} failed ({getattr(exc, 'reason', exc)}), not checked"
        )
    if status in (401, 403):
        if mode == "local":
            why = (
                f"the service at {host} does not accept locally signed tokens "
                f"({settings.get('algorithm')}, issuer {settings.get('issuer')}): GET {probe} answered {status}. "
                "Configure it to trust the local secret/key, or use --auth-mode oauth2 or none"
            )
        else:
            why = (
                f"the service at {host} rejects tokens from {settings.get('token_url')}: GET {probe} answered "
                f"{status}. Check the client's scope/audience, or use another auth mode"
            )
        raise AuthConfigError(why)
    if 200 <= status < 300:
        return f"auth: {mode} accepted by the target (GET {probe} answered {status})"
    return f"auth: {mode} token ready; probe GET {probe} answered {status}, acceptance not confirmed (set auth.probe)"
