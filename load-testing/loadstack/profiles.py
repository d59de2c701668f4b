"""Load profiles: the schema of ``profiles/*.yml`` and how a run's settings are resolved.

Precedence, lowest to highest: the profile file, ``LOCUST_*`` / ``LOADSTACK_*``
environment variables, command-line flags.  The result is a
:class:`RunSettings` that the runner and ``loadstack profile show`` share, so
what is shown is exactly what runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from loadstack import configfile, paths
from loadstack.auth.config import AuthConfigError, AuthSpec
from loadstack.auth.config import resolve as resolve_auth
from loadstack.durations import PositiveSeconds, Seconds, to_seconds
from loadstack.gates import Gate, load_slo, with_sources


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class Stage(Strict):
    """One segment of a staged run: hold ``users`` for ``duration`` after ramping at ``spawn_rate``."""

    duration: PositiveSeconds
    users: int = Field(ge=0)
    spawn_rate: float = Field(gt=0)


class StopWhen(Strict):
    error_rate_max: float | None = Field(default=None, ge=0, le=1)
    p95_ms_max: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_condition(self) -> StopWhen:
        if self.error_rate_max is None and self.p95_ms_max is None:
            raise ValueError("give at least one of error_rate_max, p95_ms_max")
        return self


class Breakpoint(Strict):
    """Step load: add ``step_users`` every ``step_duration`` until ``stop_when`` holds or ``max_users``."""

    start_users: int = Field(ge=1)
    step_users: int = Field(ge=1)
    step_duration: PositiveSeconds
    max_users: int = Field(ge=1)
    spawn_rate: float = Field(gt=0)
    stop_when: StopWhen


class WaitTime(Strict):
    min: float = Field(ge=0)
    max: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> WaitTime:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


class ChainRef(Strict):
    path: str = Field(min_length=1)
    weight: float = Field(default=1, gt=0)


class SeedSpec(Strict):
    """Synthetic customers created on the target before the run (see loadstack.data)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    customers: int = Field(ge=1, le=100_000)
    seed: int = 1234
    register_path: str | None = Field(default="/api/v1/auth/register", alias="register")


class Profile(Strict):
    """A ``profiles/*.yml`` file."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str
    locustfile: str = Field(min_length=1)
    users: int = Field(ge=1)
    spawn_rate: float = Field(gt=0)
    run_time: PositiveSeconds
    warmup: Seconds = 0
    stages: list[Stage] | None = Field(default=None, min_length=1)
    breakpoint: Breakpoint | None = None
    user_classes: dict[str, Annotated[float, Field(ge=0)]] | None = None
    wait_time: WaitTime | None = None
    workers: int | None = Field(default=None, ge=1)
    host: str | None = None
    tags: list[str] | None = None
    exclude_tags: list[str] | None = None
    env: dict[str, str] | None = None
    sample_queues: list[Annotated[str, Field(min_length=1)]] | None = None
    sample_interval: PositiveSeconds = 5
    chains: list[ChainRef] | None = None
    seed: SeedSpec | None = None
    thresholds: list[Gate] | None = None
    slo: str | None = Field(
        default=None, description="an SLO file with more thresholds (relative to this file)"
    )
    auth: AuthSpec | None = None

    @model_validator(mode="after")
    def _shape(self) -> Profile:
        if self.stages and self.breakpoint:
            raise ValueError("use either stages or breakpoint, not both")
        if self.warmup >= self.run_time:
            raise ValueError("warmup must be shorter than run_time")
        if self.user_classes is not None and not any(self.user_classes.values()):
            raise ValueError("user_classes: at least one weight must be > 0")
        return self


@dataclass
class RunSettings:
    """A profile with environment and command-line overrides applied."""

    profile: str
    profile_file: str
    description: str
    locustfile: str
    users: int
    spawn_rate: float
    run_time: float
    warmup: float
    workers: int
    host: str | None
    stages: list[dict[str, Any]] | None = None
    breakpoint: dict[str, Any] | None = None
    user_classes: dict[str, float] | None = None
    wait_time: dict[str, float] | None = None
    tags: list[str] | None = None
    exclude_tags: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    sample_queues: list[str] | None = None
    sample_interval: float = 5
    chains: list[dict[str, Any]] | None = None
    seed: dict[str, Any] | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    auth: dict[str, Any] = field(default_factory=lambda: {"mode": "none"})
    overrides: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def shaped(self) -> bool:
        return bool(self.stages or self.breakpoint)

    @property
    def planned_duration(self) -> float:
        return planned_duration(self.to_dict())


def planned_duration(settings: dict[str, Any]) -> float:
    """How long a run lasts at most; for stages/breakpoint the profile's run_time is a cap."""
    cap = float(settings.get("run_time") or 0) or float("inf")
    if settings.get("stages"):
        return min(cap, sum(float(s["duration"]) for s in settings["stages"]))
    bp = settings.get("breakpoint")
    if bp:
        steps = (bp["max_users"] - bp["start_users"]) // bp["step_users"] + 1
        return min(cap, steps * float(bp["step_duration"]))
    return cap


def find_profile(name_or_path: str) -> Path:
    """A profile by name (``soak`` → ``profiles/soak.yml``) or by path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yml", ".yaml", ".json") or os.sep in name_or_path:
        return candidate
    for directory in paths.profile_dirs():
        for suffix in (".yml", ".yaml", ".json"):
            found = directory / f"{name_or_path}{suffix}"
            if found.is_file():
                return found
    searched = ", ".join(str(d) for d in paths.profile_dirs())
    raise configfile.ConfigError(
        [configfile.ConfigIssue(name_or_path, None, "", f"no profile of that name (looked in {searched})")]
    )


def load_profile(name_or_path: str) -> tuple[Profile, Path]:
    """Load and fully check a profile, its SLO file included."""
    profile, path, node = _load(name_or_path)
    gates_of(profile, path, node)
    return profile, path


def _load(name_or_path: str) -> tuple[Profile, Path, Any]:
    path = find_profile(name_or_path)
    data, node = configfile.read_document(path)
    profile = configfile.validate(Profile, data, node, path)
    locustfile = resolve_locustfile(profile.locustfile, path)
    if not locustfile.exists():
        line = configfile.line_of(node, ("locustfile",))
        raise configfile.ConfigError(
            [configfile.ConfigIssue(str(path), line, "locustfile", f"file not found: {locustfile}")]
        )
    return profile, path, node


def gates_of(profile: Profile, path: Path, node: Any) -> list[dict[str, Any]]:
    """The profile's SLO file gates, then its own ``thresholds``; each remembers its file and line."""
    gates: list[dict[str, Any]] = []
    if profile.slo:
        slo_path = resolve_locustfile(profile.slo, path)
        if not slo_path.exists():
            raise configfile.ConfigError(
                [
                    configfile.ConfigIssue(
                        str(path), configfile.line_of(node, ("slo",)), "slo", f"file not found: {slo_path}"
                    )
                ]
            )
        gates += load_slo(slo_path)
    if profile.thresholds:
        gates += with_sources(profile.thresholds, path, node, "thresholds")
    return gates


def resolve_locustfile(value: str, profile_path: Path) -> Path:
    """Relative paths in a profile (locustfiles, chains, keys) are relative to it, like compose files."""
    p = Path(value)
    return p if p.is_absolute() else (profile_path.parent / p).resolve()


def _env_override(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    for n in names:
        if env.get(n):
            return n, env[n]
    return None


def resolve(
    name_or_path: str,
    *,
    users: int | None = None,
    spawn_rate: float | None = None,
    run_time: str | None = None,
    host: str | None = None,
    workers: int | None = None,
    auth_mode: str | None = None,
    env: Mapping[str, str] | None = None,
) -> RunSettings:
    """Profile file < environment < flags."""
    env = os.environ if env is None else env
    profile, path, node = _load(name_or_path)
    overrides: dict[str, str] = {}

    def pick(field_name: str, flag: Any, env_names: tuple[str, ...], default: Any, convert: Any) -> Any:
        if flag is not None:
            overrides[field_name] = "command line"
            return convert(flag)
        found = _env_override(env, env_names)
        if found:
            overrides[field_name] = f"environment {found[0]}"
            try:
                return convert(found[1])
            except ValueError as exc:
                raise configfile.ConfigError(
                    [configfile.ConfigIssue(found[0], None, field_name, f"invalid value {found[1]!r}: {exc}")]
                ) from None
        return default

    def positive_int(v: Any) -> int:
        n = int(v)
        if n < 1:
            raise ValueError("must be >= 1")
        return n

    def positive_float(v: Any) -> float:
        x = float(v)
        if x <= 0:
            raise ValueError("must be > 0")
        return x

    def duration(v: Any) -> float:
        s = float(to_seconds(v))
        if s <= 0:
            raise ValueError("must be > 0")
        return s

    settings = RunSettings(
        profile=profile.name,
        profile_file=str(path),
        description=profile.description,
        locustfile=str(resolve_locustfile(profile.locustfile, path)),
        users=pick("users", users, ("LOADSTACK_USERS", "LOCUST_USERS"), profile.users, positive_int),
        spawn_rate=pick(
            "spawn_rate",
            spawn_rate,
            ("LOADSTACK_SPAWN_RATE", "LOCUST_SPAWN_RATE"),
            profile.spawn_rate,
            positive_float,
        ),
        run_time=pick(
            "run_time", run_time, ("LOADSTACK_RUN_TIME", "LOCUST_RUN_TIME"), profile.run_time, duration
        ),
        warmup=profile.warmup,
        workers=pick(
            "workers", workers, ("LOADSTACK_WORKERS",), profile.workers or (os.cpu_count() or 1), positive_int
        ),
        host=pick("host", host, ("LOCUST_HOST",), profile.host, str),
        stages=[s.model_dump() for s in profile.stages] if profile.stages else None,
        breakpoint=profile.breakpoint.model_dump() if profile.breakpoint else None,
        user_classes=dict(profile.user_classes) if profile.user_classes else None,
        wait_time=profile.wait_time.model_dump() if profile.wait_time else None,
        tags=profile.tags,
        exclude_tags=profile.exclude_tags,
        env=dict(profile.env or {}),
        sample_queues=profile.sample_queues,
        sample_interval=profile.sample_interval,
        chains=[{"path": str(resolve_locustfile(c.path, path)), "weight": c.weight} for c in profile.chains]
        if profile.chains
        else None,
        seed=profile.seed.model_dump() if profile.seed else None,
        gates=gates_of(profile, path, node),
        overrides=overrides,
    )
    auth_spec = profile.auth
    if auth_spec and auth_spec.key_file:  # a key next to the profile travels with it
        auth_spec = auth_spec.model_copy(
            update={"key_file": str(resolve_locustfile(auth_spec.key_file, path))}
        )
    try:
        settings.auth = resolve_auth(auth_spec, auth_mode, {**env, **settings.env})
    except AuthConfigError as exc:
        line = configfile.line_of(node, ("auth",))
        raise configfile.ConfigError([configfile.ConfigIssue(str(path), line, "auth", str(exc))]) from None
    if settings.warmup >= settings.run_time:
        settings.warmup = 0
        overrides["warmup"] = "dropped: run_time override is shorter than the profile's warmup"
    return settings
