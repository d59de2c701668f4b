"""Every setting loadstack takes from the environment, typed, defined once.

This module is the only place that reads ``os.environ`` (a test scans the
tree for any other reader).  :class:`Settings` maps each ``LOADSTACK_*``,
``LOCUST_*`` and ``AUTH_*`` variable to a typed field with its default, so
``LOADSTACK_ALLOW_REMOTE`` is parsed once and the default AMQP URL is written
once.  A launcher hands its settings to the Locust processes with
:meth:`Settings.child_environment`, and they read them back here as the same
types.  A bad value is a :class:`SettingsError` naming the variable (exit 2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from loadstack import limits
from loadstack.config_errors import ConfigError, ConfigIssue

DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_METRICS_PORT = 9646


# What urllib, websocket-client and requests would read as a proxy (any case).
PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy", "grpc_proxy"})

MAX_LATENCY_MS = 600_000  # the demo's injected latency: ten minutes is already no answer at all
_CONTROL = "".join(map(chr, [*range(32), 127]))


def parse_slow_rule(rule: str) -> tuple[str, float]:
    """``GLOB=MS`` of the demo's fault injection (``--slow``, ``LOADSTACK_DEMO_SLOW``); ``ValueError``."""
    glob, sep, ms = rule.rpartition("=")
    if not sep or not glob:
        raise ValueError(f"expected GLOB=MILLISECONDS, got {rule[:60]!r}")
    try:
        return glob, limits.bounded_float(ms.strip(), 0, MAX_LATENCY_MS)
    except ValueError as exc:
        raise ValueError(f"{rule[:60]!r}: milliseconds {exc}") from None


MAX_STALL_S = 3600.0  # the demo's stall window: an hour is already no platform at all


def parse_stall(spec: str) -> tuple[float, float]:
    """``AT_S:DURATION_S`` of the demo's stall (``--stall``, ``LOADSTACK_DEMO_STALL``); ``ValueError``."""
    at, sep, duration = spec.partition(":")
    if not sep:
        raise ValueError(f"expected AT_SECONDS:DURATION_SECONDS, got {spec[:60]!r}")
    try:
        return limits.bounded_float(at.strip(), 0, MAX_STALL_S), limits.bounded_float(
            duration.strip(), 0, MAX_STALL_S
        )
    except ValueError as exc:
        raise ValueError(f"{spec[:60]!r}: seconds {exc}") from None


def check_queue_name(name: str) -> str:
    """A queue name as AMQP takes it: at most 255 bytes, no control characters (NUL included)."""
    if any(c in _CONTROL for c in name):
        raise ValueError(f"queue name {name[:60]!r} has a control character")
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        raise ValueError(f"queue name {name[:60]!r}… is longer than 255 bytes")
    return name


def _env(*names: str) -> Any:
    """The variable(s) a field is read from; the first one set wins."""
    return AliasChoices(*names) if len(names) > 1 else names[0]


class SettingsError(ConfigError):
    """An environment variable with a value loadstack cannot use."""


class Settings(BaseModel):
    """The environment, as loadstack understands it (empty values count as unset)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, allow_inf_nan=False)

    # -- where things are ------------------------------------------------------------------
    home: Path | None = Field(
        None,
        validation_alias=_env("LOADSTACK_HOME"),
        description="the loadstack checkout (default: the nearest parent with profiles/)",
    )
    profiles_dir: Path | None = Field(
        None,
        validation_alias=_env("LOADSTACK_PROFILES_DIR"),
        description="an extra directory searched for profiles by name",
    )
    results_dir: Path | None = Field(
        None,
        validation_alias=_env("LOADSTACK_RESULTS_DIR"),
        description="where results/<run_id>/ go (default: ./results of the checkout)",
    )
    state_dir: Path | None = Field(
        None,
        validation_alias=_env("LOADSTACK_STATE_DIR"),
        description="state of the background web UI stack (default: .loadstack/)",
    )

    # -- the run ---------------------------------------------------------------------------
    profile: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_PROFILE"),
        description="the profile a master or worker started without `loadstack run` resolves (name or path)",
    )
    run_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",  # runcontext.RUN_ID_PATTERN (pydantic: $ ends the text)
        validation_alias=_env("LOADSTACK_RUN_ID"),
        description="the run's id (default: generated; workers take their master's)",
    )
    run_settings: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_RUN_SETTINGS"),
        description="a launcher's resolved run, as JSON (set by loadstack, not by hand)",
    )
    users: int | None = Field(
        None,
        ge=1,
        le=limits.MAX_USERS,
        validation_alias=_env("LOADSTACK_USERS", "LOCUST_USERS"),
        description="peak concurrent users (overrides the profile)",
    )
    spawn_rate: float | None = Field(
        None,
        gt=0,
        le=limits.MAX_SPAWN_RATE,
        validation_alias=_env("LOADSTACK_SPAWN_RATE", "LOCUST_SPAWN_RATE"),
        description="users started per second (overrides the profile)",
    )
    run_time: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_RUN_TIME", "LOCUST_RUN_TIME"),
        description="run time such as 30s or 5m (overrides the profile)",
    )
    workers: int | None = Field(
        None,
        ge=1,
        le=limits.MAX_WORKERS,
        validation_alias=_env("LOADSTACK_WORKERS"),
        description="Locust worker processes / containers (default: the profile's, else one per CPU)",
    )
    host: str | None = Field(
        None,
        validation_alias=_env("LOCUST_HOST"),
        description="the system under test (Locust's own variable)",
    )
    allow_remote: bool = Field(
        False,
        validation_alias=_env("LOADSTACK_ALLOW_REMOTE"),
        description="1: permit targets that are not loopback or compose services",
    )
    allow_proxy: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_ALLOW_PROXY"),
        description="`http://host:port`: the one proxy loadstack's own HTTP calls and WebSocket handshakes "
        "use (--allow-proxy); the target guard checks it too. `http_proxy`/`https_proxy`/`all_proxy` are "
        "never used",
    )
    stack_subnet: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_STACK_SUBNET"),
        description="the network of loadstack's own stack: docker-compose.yml sets its compose network, the "
        "with-backends Kubernetes overlay the cluster's Service CIDR. Its service names (target, redis, …) "
        "must resolve into it, or to loopback",
    )
    target_wait: float = Field(
        0.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        validation_alias=_env("LOADSTACK_TARGET_WAIT"),
        description="seconds the master waits for the target's health path before any load (0: no wait; "
        "the Kubernetes manifests set 300). Exit 2 if it never answers",
    )
    generator_saturated: Literal["fail", "warn"] = Field(
        "fail",
        validation_alias=_env("LOADSTACK_GENERATOR_SATURATED"),
        description="fail: a run whose load generator was the bottleneck exits 7 (docs/results.md); warn: it "
        "is reported the same way but the exit status is the one the run would have had (for a runner you "
        "know is shared); compare never judges such a run either way",
    )
    gc_freeze: bool = Field(
        True,
        validation_alias=_env("LOADSTACK_GC_FREEZE"),
        description="0: keep the users' objects under Python's cyclic collector once spawned (by default a "
        "worker freezes them: its full collections no longer stall every user; docs/performance.md)",
    )
    target_health_path: str = Field(
        "/health",
        pattern=r"^/[^\s?#]*$",
        validation_alias=_env("LOADSTACK_TARGET_HEALTH_PATH"),
        description="the path that wait asks for; any answer below 500 counts (a 404 is a server that is up)",
    )
    skip_seed: bool = Field(
        False,
        validation_alias=_env("LOADSTACK_SKIP_SEED"),
        description="1: do not create the profile's seed data",
    )
    skip_teardown: bool = Field(
        False, validation_alias=_env("LOADSTACK_SKIP_TEARDOWN"), description="1: keep what the run created"
    )
    sut_version: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_SUT_VERSION"),
        description="version of the system under test, recorded in history.jsonl",
    )
    chains: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_CHAINS"),
        description="chain files to run, `a.yml,b.yml:3` (weight after the colon), instead of the profile's",
    )
    sample_queues: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_SAMPLE_QUEUES"),
        description="more queues to sample during the run, comma separated",
    )
    allow_many_workers: bool = Field(
        False,
        validation_alias=_env("LOADSTACK_ALLOW_MANY_WORKERS"),
        description="1: start more than 4 Locust workers per CPU on this machine (--allow-many-workers)",
    )
    max_input_mb: float = Field(
        5.0,
        gt=0,
        le=1024,
        allow_inf_nan=False,
        validation_alias=_env("LOADSTACK_MAX_INPUT_MB"),
        description="size cap of profile, chain and SLO files in MB (--max-input-mb)",
    )
    progress_interval: float = Field(
        5.0,
        gt=0,
        le=86_400,
        validation_alias=_env("LOADSTACK_PROGRESS_INTERVAL"),
        description="seconds between progress lines",
    )

    # -- how a run is started ----------------------------------------------------------------
    run_mode: Literal["auto", "native", "docker"] = Field(
        "auto",
        validation_alias=_env("LOADSTACK_RUN_MODE"),
        description="how `loadstack run` starts a run: auto, native or docker",
    )
    container_mode: Literal["ui", "headless"] = Field(
        "ui",
        validation_alias=_env("LOADSTACK_MODE"),
        description="`loadstack master` in a container: ui (web UI) or headless",
    )
    launcher: str = Field(
        "locust",
        validation_alias=_env("LOADSTACK_LAUNCHER"),
        description="who started Locust, recorded in run-metadata.json (set by loadstack)",
    )
    compose_offline: bool = Field(
        False,
        validation_alias=_env("LOADSTACK_COMPOSE_OFFLINE"),
        description="1: use the locally built images (docker-compose.offline.yml)",
    )
    image: str = Field(
        "loadstack:dev",
        validation_alias=_env("LOADSTACK_IMAGE"),
        description="the loadstack image of the compose stack",
    )
    postgres_image: str = Field(
        "postgres:16.4-bookworm",
        validation_alias=_env("LOADSTACK_POSTGRES_IMAGE"),
        description="the PostgreSQL image of the compose stack (its absence means offline images)",
    )
    web_port: int = Field(
        8089,
        ge=1,
        le=65535,
        validation_alias=_env("LOADSTACK_WEB_PORT"),
        description="host port of Locust's web UI in the compose stack",
    )

    # -- backends --------------------------------------------------------------------------
    postgres_dsn: str = Field(
        DEFAULT_POSTGRES_DSN,
        validation_alias=_env("LOADSTACK_POSTGRES_DSN"),
        description="PostgreSQL for users, chains, teardown and the demo",
    )
    amqp_url: str = Field(
        DEFAULT_AMQP_URL,
        validation_alias=_env("LOADSTACK_AMQP_URL"),
        description="RabbitMQ for users, chains, teardown, sampling and the demo",
    )
    redis_url: str = Field(
        DEFAULT_REDIS_URL,
        validation_alias=_env("LOADSTACK_REDIS_URL"),
        description="Redis for users, chains, teardown and the demo",
    )
    rabbitmq_management_url: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_RABBITMQ_MANAGEMENT_URL"),
        description="RabbitMQ management API (default: the AMQP host, port 15672)",
    )
    pg_pool_size: int = Field(
        5,
        ge=1,
        le=1000,
        validation_alias=_env("LOADSTACK_PG_POOL_SIZE"),
        description="connections of the shared pool in postgres_users.py",
    )

    # -- the exporter ----------------------------------------------------------------------
    metrics_export: bool = Field(
        False,
        validation_alias=_env("LOCUST_METRICS_EXPORT"),
        description="1: serve the Prometheus exporter on the master (loadstack run sets it)",
    )
    metrics_bind: str = Field(
        "127.0.0.1", validation_alias=_env("LOADSTACK_METRICS_BIND"), description="the exporter's address"
    )
    metrics_port: int = Field(
        DEFAULT_METRICS_PORT,
        ge=1,
        le=65535,
        validation_alias=_env("LOADSTACK_METRICS_PORT"),
        description="the exporter's port",
    )
    grafana_url: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_GRAFANA_URL"),
        description="Grafana's address for `loadstack report`",
    )
    grafana_port: int = Field(
        3000,
        ge=1,
        le=65535,
        validation_alias=_env("LOADSTACK_GRAFANA_PORT"),
        description="Grafana's port on 127.0.0.1 when no URL is given",
    )

    # -- auth (non-secret settings; see loadstack.auth.config) ---------------------------------
    auth_mode: str | None = Field(
        None,
        validation_alias=_env("AUTH_MODE", "LOADSTACK_AUTH_MODE"),
        description="none, oauth2 or local (overrides the profile's auth:)",
    )
    oauth_token_url: str | None = Field(
        None, validation_alias=_env("LOADSTACK_OAUTH_TOKEN_URL"), description="oauth2: the token endpoint"
    )
    oauth_client_id: str | None = Field(
        None, validation_alias=_env("LOADSTACK_OAUTH_CLIENT_ID"), description="oauth2: the client id"
    )
    oauth_scope: str | None = Field(
        None, validation_alias=_env("LOADSTACK_OAUTH_SCOPE"), description="oauth2: scope to ask for"
    )
    oauth_audience: str | None = Field(
        None, validation_alias=_env("LOADSTACK_OAUTH_AUDIENCE"), description="oauth2: audience to ask for"
    )
    oauth_client_auth: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_OAUTH_CLIENT_AUTH"),
        description="oauth2: basic (HTTP Basic) or post (form fields)",
    )
    jwt_algorithm: str | None = Field(
        None, validation_alias=_env("LOADSTACK_JWT_ALGORITHM"), description="local: HS256 or RS256"
    )
    jwt_key_file: str | None = Field(
        None, validation_alias=_env("LOADSTACK_JWT_KEY_FILE"), description="local RS256: PEM private key"
    )
    jwt_issuer: str | None = Field(
        None, validation_alias=_env("LOADSTACK_JWT_ISSUER"), description="local: the iss claim"
    )
    jwt_subject: str | None = Field(
        None, validation_alias=_env("LOADSTACK_JWT_SUBJECT"), description="local: the sub claim"
    )
    jwt_claims: str | None = Field(
        None, validation_alias=_env("LOADSTACK_JWT_CLAIMS"), description="local: more claims, a JSON object"
    )
    jwt_ttl: str | None = Field(
        None, validation_alias=_env("LOADSTACK_JWT_TTL"), description="local: lifetime of each token, e.g. 5m"
    )
    auth_probe: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_AUTH_PROBE"),
        description="an endpoint that needs a token, checked once before the load",
    )
    # Secrets: read when used, never copied into run settings or results.
    oauth_client_secret: SecretStr | None = Field(
        None,
        validation_alias=_env("LOADSTACK_OAUTH_CLIENT_SECRET"),
        description="oauth2: the client secret (secret: never written)",
    )
    jwt_secret: SecretStr | None = Field(
        None,
        validation_alias=_env("LOADSTACK_JWT_SECRET"),
        description="local HS256: the signing secret (secret: never written)",
    )

    # -- knobs of the shipped locustfiles ----------------------------------------------------
    ws_frames: int = Field(
        20,
        ge=1,
        le=100_000,
        validation_alias=_env("LOADSTACK_WS_FRAMES"),
        description="websocket_users.py: frames per receive step",
    )
    ws_rate: float = Field(
        20.0,
        gt=0,
        le=100_000,
        validation_alias=_env("LOADSTACK_WS_RATE"),
        description="websocket_users.py: frames per second",
    )
    ws_keep_open: bool = Field(
        False,
        validation_alias=_env("LOADSTACK_WS_KEEP_OPEN"),
        description="websocket_users.py: 1 keeps one connection per user",
    )
    http_weight: float | None = Field(
        None,
        ge=0,
        le=limits.MAX_WEIGHT,
        validation_alias=_env("LOADSTACK_HTTP_WEIGHT"),
        description="mixed_users.py: the HTTP share (default 70); wins over the profile",
    )
    ws_weight: float | None = Field(
        None,
        ge=0,
        le=limits.MAX_WEIGHT,
        validation_alias=_env("LOADSTACK_WS_WEIGHT"),
        description="mixed_users.py: the WebSocket share (default 30); wins over the profile",
    )

    # -- OpenTelemetry: the master's OTLP metrics and the demo platform's spans ------------------
    otel_metric_export_interval: int = Field(
        60_000,
        ge=100,
        le=3_600_000,
        validation_alias=_env("OTEL_METRIC_EXPORT_INTERVAL"),
        description="milliseconds between two OTLP metric exports of the master",
    )
    demo_otlp_endpoint: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_DEMO_OTLP_ENDPOINT"),
        description="the demo platform's OTLP sink (default: `OTEL_EXPORTER_OTLP_ENDPOINT`); unset: no spans",
    )
    # -- the demo platform ------------------------------------------------------------------
    demo_store: Literal["auto", "memory", "backend"] = Field(
        "auto",
        validation_alias=_env("LOADSTACK_DEMO_STORE"),
        description="demo platform storage: auto, memory or backend",
    )
    demo_slow: str = Field(
        "",
        validation_alias=_env("LOADSTACK_DEMO_SLOW"),
        description="demo fault injection: `GLOB=MS;GLOB=MS` extra latency per path",
    )
    demo_stall: str = Field(
        "",
        validation_alias=_env("LOADSTACK_DEMO_STALL"),
        description="demo fault injection: `AT_S:DURATION_S`, the whole platform stops answering once",
    )
    demo_latency_ms: float = Field(
        0.0,
        ge=0,
        le=600_000,
        validation_alias=_env("LOADSTACK_DEMO_LATENCY_MS"),
        description="demo fault injection: extra latency on every request",
    )
    demo_startup_wait: float = Field(
        30.0,
        ge=0,
        le=3600,
        validation_alias=_env("LOADSTACK_DEMO_STARTUP_WAIT"),
        description="seconds the demo waits for its backends (backend store)",
    )
    demo_consumer: bool = Field(
        True,
        validation_alias=_env("LOADSTACK_DEMO_CONSUMER"),
        description="0: `loadstack run` starts no pipeline consumer",
    )
    demo_secret: SecretStr | None = Field(
        None,
        validation_alias=_env("LOADSTACK_DEMO_SECRET"),
        description="the demo's own token signing secret (default: random)",
    )
    demo_oauth_client_id: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_DEMO_OAUTH_CLIENT_ID"),
        description="the client the demo's token endpoint accepts",
    )
    demo_oauth_client_secret: SecretStr | None = Field(
        None, validation_alias=_env("LOADSTACK_DEMO_OAUTH_CLIENT_SECRET"), description="that client's secret"
    )
    demo_oauth_token_ttl: float | None = Field(
        None,
        gt=0,
        le=30 * 86_400,
        validation_alias=_env("LOADSTACK_DEMO_OAUTH_TOKEN_TTL"),
        description="lifetime of the demo's tokens (seconds)",
    )
    demo_oauth_fail_after: int | None = Field(
        None,
        ge=0,
        le=limits.MAX_ITERATIONS,
        validation_alias=_env("LOADSTACK_DEMO_OAUTH_FAIL_AFTER"),
        description="the demo's token endpoint fails after N tokens (outage simulation)",
    )
    demo_local_jwt_issuer: str = Field(
        "loadstack-local",
        validation_alias=_env("LOADSTACK_DEMO_LOCAL_JWT_ISSUER"),
        description="the issuer the demo accepts for locally signed tokens",
    )
    demo_local_jwt_key_file: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_DEMO_LOCAL_JWT_KEY_FILE"),
        description="the key the demo verifies RS256 tokens with",
    )
    demo_local_jwt_secret: SecretStr | None = Field(
        None,
        validation_alias=_env("LOADSTACK_DEMO_LOCAL_JWT_SECRET"),
        description="the secret the demo verifies HS256 tokens with",
    )

    # -- OpenTelemetry (docs/observability.md; the SDK reads the same OTEL_* variables) ------
    otel: bool = Field(
        False,
        validation_alias=_env("LOCUST_ENABLE_OPENTELEMETRY"),
        description="1: trace the run with OpenTelemetry (Locust's own switch, as `--otel`)",
    )
    otel_traces_exporter: str = Field(
        "otlp",
        validation_alias=_env("OTEL_TRACES_EXPORTER"),
        description="`otlp`, `console` or `none` (comma-separated): where spans go",
    )
    otel_endpoint: str | None = Field(
        None,
        validation_alias=_env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="the OTLP receiver (default: localhost, port 4317 for grpc, 4318 for http/protobuf)",
    )
    otel_metrics_endpoint: str | None = Field(
        None,
        validation_alias=_env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="the OTLP receiver of metrics",
    )
    otel_logs_endpoint: str | None = Field(
        None,
        validation_alias=_env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="the OTLP receiver of log records (Locust's OTel logging bridge)",
    )
    otel_metrics_exporter: str = Field(
        "otlp",
        validation_alias=_env("OTEL_METRICS_EXPORTER"),
        description="`otlp` or `none`: whether the master sends the run's merged metrics over OTLP "
        "(Locust's own per-process OTel metrics are replaced by them)",
    )
    otel_logs_exporter: str = Field(
        "otlp",
        validation_alias=_env("OTEL_LOGS_EXPORTER"),
        description="`otlp`, `console` or `none`: where Locust's OTel log records go",
    )
    otel_protocol: Literal["grpc", "http/protobuf", "http"] = Field(
        "grpc",
        validation_alias=_env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
        description="OTLP transport: `grpc` or `http/protobuf` (Locust's default: grpc)",
    )
    otel_sampler: str | None = Field(
        None,
        validation_alias=_env("OTEL_TRACES_SAMPLER"),
        description="the SDK's sampler (`parentbased_traceidratio` with OTEL_TRACES_SAMPLER_ARG, …)",
    )
    otel_resource_attributes: str | None = Field(
        None,
        validation_alias=_env("OTEL_RESOURCE_ATTRIBUTES"),
        description="`key=value,...` added to every span's resource (the run id is added by loadstack)",
    )
    otel_sqlcommenter: bool = Field(
        False,
        validation_alias=_env("LOADSTACK_OTEL_SQLCOMMENTER"),
        description="1: append the trace context to SQL statements as a sqlcommenter comment (changes "
        "statement text, so off by default)",
    )
    allow_otlp: str | None = Field(
        None,
        validation_alias=_env("LOADSTACK_ALLOW_OTLP"),
        description="`scheme://host:port`: the one non-local OTLP endpoint telemetry may be sent to "
        "(a telemetry sink, not a load target: --allow-remote does not allow it)",
    )

    # The whole environment this was read from: secret discovery (masking) and child processes.
    environ: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    @field_validator("allow_proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if value is not None:
            from urllib.parse import urlsplit

            try:
                parts = urlsplit(value)
                port = parts.port
            except ValueError:
                raise ValueError("not a URL") from None
            if parts.scheme != "http" or not parts.hostname or port is None or parts.path not in ("", "/"):
                raise ValueError("give the proxy as http://host:port")
        return value

    @field_validator("stack_subnet")
    @classmethod
    def _subnet(cls, value: str | None) -> str | None:
        if value is not None:
            import ipaddress

            network = ipaddress.ip_network(value, strict=False)  # a ValueError names the problem
            # Every address in it passes the target guard without --allow-remote: a public range
            # (or 0.0.0.0/0) would be a second switch that turns the guard off.
            if not network.is_private:
                raise ValueError(f"{network} is not a private network; the stack's own network is one")
        return value

    @field_validator("demo_slow")
    @classmethod
    def _slow_rules(cls, value: str) -> str:
        for rule in value.split(";"):
            if rule.strip():
                parse_slow_rule(rule.strip())
        return value

    @field_validator("demo_stall")
    @classmethod
    def _stall(cls, value: str) -> str:
        if value.strip():
            parse_stall(value.strip())
        return value

    @field_validator("sample_queues")
    @classmethod
    def _queue_names(cls, value: str | None) -> str | None:
        for name in (value or "").split(","):
            check_queue_name(name.strip())
        return value

    @field_validator("run_time")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            from loadstack.durations import parse_duration

            parse_duration(value)
        return value

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default: this process's environment)."""
        raw = dict(os.environ if environ is None else environ)
        present = {k: v for k, v in raw.items() if v != ""}
        try:
            return cls.model_validate({**present, "environ": raw})
        except ValidationError as exc:
            issues = []
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else ""
                variable = variable_of(field, present) or field
                value = present.get(variable, "")
                shown = value if len(value) <= 60 else value[:57] + "..."
                message = err["msg"].removeprefix("Value error, ")
                issues.append(ConfigIssue(variable, None, "", f"invalid value {shown!r}: {message}"))
            raise SettingsError(issues) from None

    def source_of(self, field: str) -> str | None:
        """The variable that set ``field`` (``LOADSTACK_USERS`` or ``LOCUST_USERS``), or None."""
        return variable_of(field, self.environ)

    def otlp_url(self, signal: str, base: str | None = None) -> str | None:
        """The OTLP/HTTP URL of ``traces`` or ``metrics``: ``base`` (a flag's base URL) or
        ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/<signal>``, else the signal's own variable as is
        (the specification's rule), else None: nothing is exported."""
        field = "otel_metrics_endpoint" if signal == "metrics" else "otel_endpoint"
        value = getattr(self, field)
        if not base and value and self.source_of(field) == "OTEL_EXPORTER_OTLP_ENDPOINT":
            base = value
        if base:
            return f"{base.rstrip('/')}/v1/{signal}"
        return value

    def metrics_by_default(self) -> bool:
        """Launchers export metrics unless LOCUST_METRICS_EXPORT says no (plain Locust: only when it says yes)."""
        return self.metrics_export if self.source_of("metrics_export") else True

    def environment_proxies(self) -> list[str]:
        """Proxy variables set in the environment (``http_proxy``, …): loadstack never uses them."""
        return sorted(k for k, v in self.environ.items() if v and k.lower() in PROXY_VARIABLES)

    def secret(self, field: str) -> str | None:
        value = getattr(self, field)
        return value.get_secret_value() if value is not None else None

    # -- handing settings to other processes ----------------------------------------------------
    def child_environment(self, overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
        """The environment for a child process: this one, plus ``overrides`` (``None`` removes)."""
        env = dict(self.environ)
        for name, value in (overrides or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env


def variable_of(field: str, environ: Mapping[str, str]) -> str | None:
    info = Settings.model_fields.get(field)
    if info is None or info.validation_alias is None:
        return None
    alias = info.validation_alias
    names = alias.choices if isinstance(alias, AliasChoices) else [alias]
    for name in names:
        if isinstance(name, str) and environ.get(name):
            return name
    return None


def variable(field: str) -> str:
    """The (first) environment variable of a field: what a launcher sets to pass it on."""
    alias = Settings.model_fields[field].validation_alias
    first = alias.choices[0] if isinstance(alias, AliasChoices) else alias
    assert isinstance(first, str)
    return first


def environment_of(values: Mapping[str, Any]) -> dict[str, str]:
    """``{field: value}`` as environment variables, the way :class:`Settings` reads them back."""
    out: dict[str, str] = {}
    for field, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "1" if value else "0"
        out[variable(field)] = str(value)
    return out


def set_allow_proxy(url: str) -> Settings:
    """``--allow-proxy URL``: the same as ``LOADSTACK_ALLOW_PROXY``, for this process and its children."""
    os.environ["LOADSTACK_ALLOW_PROXY"] = url
    return refresh()


def raw_environment() -> dict[str, str]:
    """This process's environment as it is, valid or not (the masker needs it even when settings are bad)."""
    return dict(os.environ)


@cache
def current() -> Settings:
    """This process's settings (read once: a Locust process's environment does not change mid-run)."""
    return Settings.load()


def hand_otel_to_locust(config: Settings) -> None:
    """Trim what Locust's OTel setup reads next from this process's environment (``config`` holds
    the user's values already): its exporters would take proxies from it, and its per-process
    metric labels requests by their raw names.  The master's merged metrics
    (:mod:`loadstack.metrics.otlp`) are sent, masked, instead."""
    for name in config.environment_proxies():
        os.environ.pop(name, None)
    os.environ["OTEL_METRICS_EXPORTER"] = "none"


def refresh() -> Settings:
    """Forget the cached settings (for code that changed its own environment, e.g. tests)."""
    current.cache_clear()
    return current()


def reference() -> str:
    """A Markdown table of every variable: what docs/configuration.md shows (and a test compares)."""
    rows = ["| variable | default | what |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        if name == "environ":
            continue
        alias = info.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [alias]
        default = "" if info.default in (None, "") else f"`{info.default}`"
        shown = ", ".join(f"`{n}`" for n in names)
        rows.append(f"| {shown} | {default} | {info.description} |")
    return "\n".join(rows)
