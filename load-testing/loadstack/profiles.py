"""Load profiles: the schema of ``profiles/*.yml`` and how a run's settings are resolved.

Precedence, lowest to highest: the profile file, ``LOCUST_*`` / ``LOADSTACK_*``
environment variables (read by :mod:`loadstack.settings`), command-line flags.
The result is a :class:`RunSettings` that launchers, the Locust processes and
``loadstack profile show`` share, so what is shown is exactly what runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from loadstack import configfile, paths
from loadstack.auth.config import AuthConfigError, AuthSpec
from loadstack.auth.config import resolve as resolve_auth
from loadstack.durations import PositiveSeconds, Seconds, to_seconds
from loadstack.gates import Gate, load_slo, with_sources
from loadstack.settings import Settings

RunMode = Literal["auto", "native", "docker"]
# A path on the target: one leading slash, no scheme, no host (`//host`, `@host`) of its own.
RELATIVE_PATH = r"^/([^/\s][^\s]*)?$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class Section(Strict):
    """A profile section that older code and tests also read like a mapping (``stage["users"]``)."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


class Stage(Section):
    """One segment of a staged run: hold ``users`` for ``duration`` after ramping at ``spawn_rate``."""

    duration: PositiveSeconds
    users: int = Field(ge=0)
    spawn_rate: float = Field(gt=0)


class StopWhen(Section):
    error_rate_max: float | None = Field(default=None, ge=0, le=1)
    p95_ms_max: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_condition(self) -> StopWhen:
        if self.error_rate_max is None and self.p95_ms_max is None:
            raise ValueError("give at least one of error_rate_max, p95_ms_max")
        return self


class Breakpoint(Section):
    """Step load: add ``step_users`` every ``step_duration`` until ``stop_when`` holds or ``max_users``."""

    start_users: int = Field(ge=1)
    step_users: int = Field(ge=1)
    step_duration: PositiveSeconds
    max_users: int = Field(ge=1)
    spawn_rate: float = Field(gt=0)
    stop_when: StopWhen


class WaitTime(Section):
    min: float = Field(ge=0)
    max: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> WaitTime:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


class ChainRef(Section):
    path: str = Field(min_length=1)
    weight: float = Field(default=1, gt=0)


class SeedSpec(Section):
    """Synthetic customers created on the target before the run (see loadstack.data)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    customers: int = Field(ge=1, le=100_000)
    seed: int = 1234
    register_path: str | None = Field(
        default="/api/v1/auth/register",
        alias="register",
        pattern=RELATIVE_PATH,
        description="a path on the target",
    )


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
    mode: RunMode | None = Field(
        default=None, description="how `loadstack run` starts it: native processes, docker, or auto"
    )

    @model_validator(mode="after")
    def _shape(self) -> Profile:
        if self.stages and self.breakpoint:
            raise ValueError("use either stages or breakpoint, not both")
        if self.warmup >= self.run_time:
            raise ValueError("warmup must be shorter than run_time")
        if self.user_classes is not None and not any(self.user_classes.values()):
            raise ValueError("user_classes: at least one weight must be > 0")
        return self


class RunSettings(BaseModel):
    """A profile with environment and command-line overrides applied, plus the run's own options.

    This is what crosses from a launcher to the Locust processes (``LOADSTACK_RUN_SETTINGS``,
    see :mod:`loadstack.runcontext`) and is read back there as the same type.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str = "adhoc"
    profile_file: str | None = None
    description: str = ""
    locustfile: str | None = None
    users: int = Field(default=1, ge=1)
    spawn_rate: float = Field(default=1, gt=0)
    run_time: float | None = Field(default=None, description="seconds; None: until stopped")
    warmup: float = 0
    workers: int = Field(default=1, ge=1)
    host: str | None = None
    stages: list[Stage] | None = None
    breakpoint: Breakpoint | None = None
    user_classes: dict[str, float] | None = None
    wait_time: WaitTime | None = None
    tags: list[str] | None = None
    exclude_tags: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    sample_queues: list[str] | None = None
    sample_interval: float = 5
    chains: list[ChainRef] | None = None
    seed: SeedSpec | None = None
    gates: list[Gate] = Field(default_factory=list)
    auth: AuthSpec = Field(default_factory=AuthSpec)
    mode: RunMode | None = None
    overrides: dict[str, str] = Field(default_factory=dict)
    # The run's options (command line or environment), not the profile file's.
    allow_remote: bool = False
    skip_seed: bool = False
    skip_teardown: bool = False
    sut_version: str | None = None
    teardown_queues: list[str] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @property
    def shaped(self) -> bool:
        return bool(self.stages or self.breakpoint)

    @property
    def planned_duration(self) -> float:
        """How long a run lasts at most; for stages/breakpoint the profile's run_time is a cap."""
        cap = self.run_time or float("inf")
        if self.stages:
            return min(cap, sum(s.duration for s in self.stages))
        bp = self.breakpoint
        if bp:
            steps = (bp.max_users - bp.start_users) // bp.step_users + 1
            return min(cap, steps * bp.step_duration)
        return cap

    def user_class_names(self) -> list[str]:
        """The user classes this run starts (``user_classes`` with weight > 0); empty means all."""
        return [name for name, weight in (self.user_classes or {}).items() if weight > 0]

    def chain_files(self) -> list[str]:
        return [c.path for c in self.chains or []]


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


def gates_of(profile: Profile, path: Path, node: Any) -> list[Gate]:
    """The profile's SLO file gates, then its own ``thresholds``; each remembers its file and line."""
    gates: list[Gate] = []
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


def resolve(
    name_or_path: str,
    *,
    users: int | None = None,
    spawn_rate: float | None = None,
    run_time: str | None = None,
    host: str | None = None,
    workers: int | None = None,
    auth_mode: str | None = None,
    allow_remote: bool = False,
    skip_seed: bool = False,
    skip_teardown: bool = False,
    sut_version: str | None = None,
    env: Mapping[str, str] | Settings | None = None,
) -> RunSettings:
    """Profile file < environment < flags."""
    base = env if isinstance(env, Settings) else (Settings.load(env) if env is not None else _current())
    profile, path, node = _load(name_or_path)
    # A profile's `env:` block counts as environment (it is what its Locust processes get).
    profile_env = dict(profile.env or {})
    config = Settings.load({**base.environ, **profile_env}) if profile_env else base
    overrides: dict[str, str] = {}

    def pick(field_name: str, flag: Any, from_env: Any, default: Any, convert: Any) -> Any:
        if flag is not None:
            overrides[field_name] = "command line"
            return convert(flag)
        if from_env is not None:
            variable = config.source_of(field_name)
            overrides[field_name] = f"environment {variable}"
            try:
                return convert(from_env)
            except ValueError as exc:
                raise configfile.ConfigError(
                    [
                        configfile.ConfigIssue(
                            str(variable), None, field_name, f"invalid value {from_env!r}: {exc}"
                        )
                    ]
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

    run_seconds = pick("run_time", run_time, config.run_time, profile.run_time, duration)
    warmup = profile.warmup
    if warmup >= run_seconds:
        warmup = 0
        overrides["warmup"] = "dropped: run_time override is shorter than the profile's warmup"
    auth_spec = profile.auth
    if auth_spec and auth_spec.key_file:  # a key next to the profile travels with it
        auth_spec = auth_spec.model_copy(
            update={"key_file": str(resolve_locustfile(auth_spec.key_file, path))}
        )
    try:
        auth = resolve_auth(auth_spec, auth_mode, config)
    except AuthConfigError as exc:
        line = configfile.line_of(node, ("auth",))
        raise configfile.ConfigError([configfile.ConfigIssue(str(path), line, "auth", str(exc))]) from None
    return RunSettings(
        profile=profile.name,
        profile_file=str(path),
        description=profile.description,
        locustfile=str(resolve_locustfile(profile.locustfile, path)),
        users=pick("users", users, config.users, profile.users, positive_int),
        spawn_rate=pick("spawn_rate", spawn_rate, config.spawn_rate, profile.spawn_rate, positive_float),
        run_time=run_seconds,
        warmup=warmup,
        workers=pick(
            "workers", workers, config.workers, profile.workers or (os.cpu_count() or 1), positive_int
        ),
        host=pick("host", host, config.host, profile.host, str),
        stages=profile.stages,
        breakpoint=profile.breakpoint,
        user_classes=dict(profile.user_classes) if profile.user_classes else None,
        wait_time=profile.wait_time,
        tags=profile.tags,
        exclude_tags=profile.exclude_tags,
        env=profile_env,
        sample_queues=profile.sample_queues,
        sample_interval=profile.sample_interval,
        chains=[ChainRef(path=str(resolve_locustfile(c.path, path)), weight=c.weight) for c in profile.chains]
        if profile.chains
        else None,
        seed=profile.seed,
        gates=gates_of(profile, path, node),
        auth=auth,
        mode=profile.mode,
        overrides=overrides,
        allow_remote=allow_remote or config.allow_remote,
        skip_seed=skip_seed or config.skip_seed,
        skip_teardown=skip_teardown or config.skip_teardown,
        sut_version=sut_version or config.sut_version,
        teardown_queues=_split(config.teardown_queues),
    )


def _current() -> Settings:
    from loadstack import settings

    return settings.current()


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]
