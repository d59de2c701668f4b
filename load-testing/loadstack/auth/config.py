"""How a run authenticates: the profile's ``auth:`` block, ``AUTH_MODE`` and ``--auth-mode``.

Only non-secret settings live here, because the resolved settings are written to
``run-metadata.json`` and passed to every Locust process.  Client secrets and
signing keys are read from the environment at the moment they are used
(:func:`secret`), never copied into settings, profiles or results.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loadstack.durations import PositiveSeconds, to_seconds
from loadstack.settings import Settings, current

MODES = ("none", "oauth2", "local")
# Environment variables holding secrets, by what they unlock.
CLIENT_SECRET_ENV = "LOADSTACK_OAUTH_CLIENT_SECRET"
JWT_SECRET_ENV = "LOADSTACK_JWT_SECRET"
_SECRET_KEYS = {"client_secret", "secret", "private_key", "key", "token", "password"}
# Non-secret settings that the environment may override: auth field -> settings field.
ENV_FIELDS = {
    "token_url": "oauth_token_url",
    "client_id": "oauth_client_id",
    "scope": "oauth_scope",
    "audience": "oauth_audience",
    "client_auth": "oauth_client_auth",
    "algorithm": "jwt_algorithm",
    "key_file": "jwt_key_file",
    "issuer": "jwt_issuer",
    "subject": "jwt_subject",
    "claims": "jwt_claims",
    "ttl": "jwt_ttl",
    "probe": "auth_probe",
}


class AuthSpec(BaseModel):
    """The ``auth:`` block of a profile."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["none", "oauth2", "local"] = "none"
    # oauth2 (client credentials)
    token_url: str | None = None
    client_id: str | None = None
    scope: str | None = None
    audience: str | None = None
    client_auth: Literal["basic", "post"] = Field(
        default="basic", description="client_secret_basic (HTTP Basic) or client_secret_post (form fields)"
    )
    refresh_margin: PositiveSeconds = Field(default=30, description="refresh this long before expiry")
    # local (a JWT signed here)
    algorithm: Literal["HS256", "RS256"] = "HS256"
    key_file: str | None = Field(default=None, description="RS256: PEM private key")
    issuer: str = "loadstack-local"
    subject: str = "loadstack"
    claims: dict[str, Any] = Field(default_factory=dict)
    ttl: PositiveSeconds = Field(default=300, description="lifetime of each signed token")
    # both
    probe: str = Field(
        default="/api/v1/auth/me",
        pattern=r"^/([^/\s][^\s]*)?$",
        description="an endpoint that needs a token, checked once at start (a path on the target)",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            found = sorted(_SECRET_KEYS & set(data))
            if found:
                raise ValueError(
                    f"secrets do not belong in profiles (found {' and '.join(found)}); set {CLIENT_SECRET_ENV} "
                    f"(oauth2) or {JWT_SECRET_ENV} / LOADSTACK_JWT_KEY_FILE (local) in the environment"
                )
        return data


class AuthConfigError(ValueError):
    """Auth settings that cannot work; the run stops before it starts (exit 2).

    ``variable``: the environment variable whose value is wrong, when it is one (a message about
    ``LOADSTACK_JWT_ALGORITHM`` must not send the reader to the profile's ``auth:`` line).
    """

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


def resolve(
    spec: AuthSpec | None, flag: str | None = None, env: Mapping[str, str] | Settings | None = None
) -> AuthSpec:
    """Profile ``auth:`` < environment < ``--auth-mode``: the non-secret settings."""
    config = env if isinstance(env, Settings) else (Settings.load(env) if env is not None else current())
    data = (spec or AuthSpec()).model_dump()
    mode = flag or config.auth_mode or data["mode"]
    if mode not in MODES:
        source = (
            "--auth-mode" if flag else (config.source_of("auth_mode") if config.auth_mode else "auth.mode")
        )
        variable = source if source not in ("--auth-mode", "auth.mode") else None
        raise AuthConfigError(f"{source}: auth mode {mode!r} is not one of {', '.join(MODES)}", variable)
    data["mode"] = mode
    for name, field in ENV_FIELDS.items():
        raw = getattr(config, field)
        if not raw:
            continue
        var = config.source_of(field)
        if name == "claims":
            try:
                value: Any = json.loads(raw)
            except ValueError as exc:
                raise AuthConfigError(f"{var}: not a JSON object: {exc}", var) from None
            if not isinstance(value, dict):
                raise AuthConfigError(f"{var}: expected a JSON object of claims", var)
        elif name == "ttl":
            try:
                value = to_seconds(raw)
            except ValueError as exc:
                raise AuthConfigError(f"{var}: {exc}", var) from None
        else:
            value = raw
        data[name] = value
    try:
        return AuthSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        top = str(first["loc"][0]) if first["loc"] else ""
        variable = config.source_of(ENV_FIELDS[top]) if top in ENV_FIELDS else None
        if variable:
            shown = str(first.get("input", ""))[:60]
            raise AuthConfigError(f"{variable}: invalid value {shown!r}: {first['msg']}", variable) from None
        raise AuthConfigError(f"auth.{where}: {first['msg']}") from None


def secret(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """A secret from the environment, read when needed and never stored in settings."""
    value = (current().environ if env is None else env).get(name)
    return value or None


def describe(settings: Mapping[str, Any]) -> str:
    """One line for the console: what the run authenticates with (never the secret)."""
    mode = settings.get("mode", "none")
    if mode == "oauth2":
        return f"auth: oauth2 client credentials, client {settings.get('client_id')} at {settings.get('token_url')}"
    if mode == "local":
        return f"auth: locally signed {settings.get('algorithm')} JWT (sub {settings.get('subject')}, {settings.get('ttl'):.0f}s)"
    return "auth: none"
