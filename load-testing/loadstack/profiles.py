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

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic import Strict as StrictType

from loadstack import configfile, limits, masking, paths
from loadstack.auth.config import AuthConfigError, AuthSpec
from loadstack.auth.config import resolve as resolve_auth
from loadstack.durations import PositiveSeconds, Seconds, to_seconds
from loadstack.gates import Gate, load_slo, with_sources
from loadstack.limits import (
    MAX_ITEMS,
    Iterations,
    Name,
    SpawnRate,
    Users,
    UsersOrZero,
    Weight,
    WeightOrZero,
    Workers,
)
from loadstack.settings import Settings
from loadstack.workload.rates import PositiveRate, Rate, Schedule

RunMode = Literal["auto", "native", "docker"]
# A path on the target: one leading slash, no scheme, no host (`//host`, `@host`) of its own.
RELATIVE_PATH = r"^/([^/\s][^\s]*)?$"
QueueName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"  # an environment variable's name (pydantic's regex: $ is the end)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, allow_inf_nan=False)


class Section(Strict):
    """A profile section that older code and tests also read like a mapping (``stage["users"]``)."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


class Stage(Section):
    """One segment of a staged run, ``duration`` long.

    Closed model: hold ``users`` after ramping at ``spawn_rate``.  Open model: start
    iterations at ``rate`` (``ramp: true`` goes there linearly from the previous stage's rate).
    """

    duration: PositiveSeconds
    users: UsersOrZero | None = None
    spawn_rate: SpawnRate | None = None
    rate: Rate | None = Field(default=None, description="iterations started per second (open model)")
    ramp: Annotated[bool, StrictType()] = Field(
        default=False, description="rate stages: ramp from the previous stage's rate"
    )

    @model_validator(mode="after")
    def _one_model(self) -> Stage:
        if self.rate is not None:
            if self.users is not None or self.spawn_rate is not None:
                raise ValueError(
                    "a stage has users and spawn_rate (closed model) or rate (open model), not both"
                )
        elif self.users is None or self.spawn_rate is None:
            raise ValueError("give users and spawn_rate (closed model) or rate (open model)")
        elif self.ramp:
            raise ValueError("ramp: only rate stages ramp (users stages ramp at spawn_rate)")
        return self

    @property
    def open(self) -> bool:
        return self.rate is not None


class StopWhen(Section):
    error_rate_max: limits.Rate | None = None
    p95_ms_max: limits.Millis | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> StopWhen:
        if self.error_rate_max is None and self.p95_ms_max is None:
            raise ValueError("give at least one of error_rate_max, p95_ms_max")
        return self


MAX_BREAKPOINT_STEPS = 10_000


class Breakpoint(Section):
    """Step load until ``stop_when`` holds.

    Open model (rate): start at ``start_rate`` and add ``step_rate`` every ``step_duration`` up
    to ``max_rate``, served by the profile's ``max_users``.  Closed model: add ``step_users``
    every ``step_duration`` up to ``max_users``.
    """

    start_rate: PositiveRate | None = None
    step_rate: PositiveRate | None = None
    max_rate: PositiveRate | None = None
    start_users: Users | None = None
    step_users: Users | None = None
    max_users: Users | None = None
    spawn_rate: SpawnRate | None = None
    step_duration: PositiveSeconds
    stop_when: StopWhen

    @model_validator(mode="after")
    def _one_model(self) -> Breakpoint:
        rate = (self.start_rate, self.step_rate, self.max_rate)
        users = (self.start_users, self.step_users, self.max_users, self.spawn_rate)
        if any(v is not None for v in rate):
            if None in rate:
                raise ValueError("a rate breakpoint needs start_rate, step_rate and max_rate")
            if any(v is not None for v in users):
                raise ValueError(
                    "give start_rate/step_rate/max_rate (open model) or start_users/step_users/"
                    "max_users/spawn_rate (closed model), not both; the rate's pool is the profile's max_users"
                )
        elif None in users:
            raise ValueError(
                "give start_rate, step_rate and max_rate (open model) "
                "or start_users, step_users, max_users and spawn_rate (closed model)"
            )
        first, last = (self.start_rate, self.max_rate) if self.open else (self.start_users, self.max_users)
        assert first is not None and last is not None
        if last < first:
            which = "max_rate is below start_rate" if self.open else "max_users is below start_users"
            raise ValueError(f"{which}: a breakpoint climbs")
        if self.steps > MAX_BREAKPOINT_STEPS:
            raise ValueError(
                f"{self.steps:,} steps; at most {MAX_BREAKPOINT_STEPS:,} (take larger steps or a lower maximum)"
            )
        return self

    @property
    def open(self) -> bool:
        return self.start_rate is not None

    @property
    def steps(self) -> int:
        if self.open:
            assert self.start_rate is not None and self.step_rate is not None and self.max_rate is not None
            return int((self.max_rate - self.start_rate) / self.step_rate + 1e-9) + 1
        assert self.start_users is not None and self.step_users is not None and self.max_users is not None
        return (self.max_users - self.start_users) // self.step_users + 1


class WaitTime(Section):
    min: Seconds
    max: Seconds

    @model_validator(mode="after")
    def _ordered(self) -> WaitTime:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


class ChainRef(Section):
    path: Annotated[str, Field(min_length=1, max_length=4096)]
    weight: Weight = 1
    rate: PositiveRate | None = Field(default=None, description="this chain's own arrival rate")
    iterations: Iterations | None = Field(default=None, description="run this chain exactly N times")


class ClassWorkload(Section):
    """A user class in ``user_classes``: a weight, or its own arrival rate, pool and budget."""

    weight: WeightOrZero = 1
    rate: PositiveRate | None = Field(default=None, description="iterations started per second")
    max_users: Users | None = Field(default=None, description="the pool serving `rate`")
    iterations: Iterations | None = Field(default=None, description="exactly N iterations, then stop")

    @model_validator(mode="after")
    def _pool(self) -> ClassWorkload:
        if self.rate is not None and self.max_users is None:
            raise ValueError("rate needs max_users: the pool of users that start this class's iterations")
        if self.max_users is not None and self.rate is None:
            raise ValueError("max_users is the pool of an arrival rate: give rate too")
        return self


def _class_entry(value: Any) -> Any:
    """``OrderUser: 3`` is shorthand for ``OrderUser: {weight: 3}``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"weight": value}
    return value


class DataSource(Section):
    """A data feeder: rows of a CSV file or a SQL query, each held by one user at a time."""

    csv: str | None = Field(
        default=None, min_length=1, max_length=4096, description="a CSV file with a header row"
    )
    sql: str | None = Field(
        default=None,
        min_length=1,
        max_length=65_536,
        description="a query on LOADSTACK_POSTGRES_DSN, run once by the master",
    )
    mode: Literal["unique", "cycle", "random"] = "cycle"
    on_exhausted: Literal["stop", "recycle"] = Field(
        default="stop", description="unique: stop the run when every row was used, or start over"
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if (self.csv is None) == (self.sql is None):
            raise ValueError("give exactly one of csv (a file) or sql (a query)")
        return self


class SeedSpec(Section):
    """Synthetic customers created on the target before the run (see loadstack.data)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    customers: Annotated[int, StrictType(), Field(ge=1, le=100_000)]
    seed: Annotated[int, StrictType(), Field(ge=0, le=2**63 - 1)] = 1234
    register_path: str | None = Field(
        default="/api/v1/auth/register",
        alias="register",
        pattern=RELATIVE_PATH,
        description="a path on the target",
    )


# A PostgreSQL table, optionally schema-qualified (``orders`` or ``shop.orders``): plain identifiers.
TABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$"


class TeardownSpec(Section):
    """What teardown may touch: only tables declared here (and by the target and the user classes).

    Teardown deletes ``WHERE run_id = <the run id>`` from these tables and from no other: a table
    loadstack was not told about is never changed, whatever columns it has (docs/chains.md).
    """

    tables: Annotated[
        list[Annotated[str, Field(pattern=TABLE_NAME, max_length=127)]], Field(max_length=MAX_ITEMS)
    ] = Field(default_factory=list, description="tables whose run_id column holds the run id")


class Profile(Strict):
    """A ``profiles/*.yml`` file."""

    name: str = Field(min_length=1, max_length=limits.MAX_NAME, pattern=r"^[A-Za-z0-9_.-]+$")
    description: Annotated[str, Field(max_length=10_000)]
    locustfile: Annotated[str, Field(min_length=1, max_length=4096)]
    users: Users | None = Field(default=None, description="concurrent users (closed model)")
    spawn_rate: SpawnRate
    run_time: PositiveSeconds
    warmup: Seconds = 0
    rate: PositiveRate | None = Field(default=None, description="iterations started per second (open model)")
    max_users: Users | None = Field(default=None, description="the pool of users serving `rate`")
    iterations: Iterations | None = Field(
        default=None, description="exactly N iterations in total, then stop"
    )
    stages: list[Stage] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)
    breakpoint: Breakpoint | None = None
    user_classes: (
        Annotated[
            dict[Name, Annotated[ClassWorkload, BeforeValidator(_class_entry)]], Field(max_length=MAX_ITEMS)
        ]
        | None
    ) = None
    data: (
        Annotated[
            dict[
                Annotated[str, Field(max_length=limits.MAX_NAME, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")],
                DataSource,
            ],
            Field(max_length=MAX_ITEMS),
        ]
        | None
    ) = None
    wait_time: WaitTime | None = None
    workers: Workers | None = None
    host: Annotated[str, Field(max_length=2048)] | None = None
    tags: Annotated[list[Name], Field(max_length=MAX_ITEMS)] | None = None
    exclude_tags: Annotated[list[Name], Field(max_length=MAX_ITEMS)] | None = None
    # Keys are variable names and values hold no NUL: the operating system refuses anything else when
    # the run's processes start (a traceback then, a field error now).
    env: (
        Annotated[
            dict[
                Annotated[str, Field(max_length=limits.MAX_NAME, pattern=ENV_NAME)],
                Annotated[str, Field(max_length=65_536, pattern=r"^[^\x00]*$")],
            ],
            Field(max_length=MAX_ITEMS),
        ]
        | None
    ) = None
    sample_queues: Annotated[list[QueueName], Field(max_length=MAX_ITEMS)] | None = None
    sample_interval: PositiveSeconds = 5
    chains: list[ChainRef] | None = Field(default=None, max_length=MAX_ITEMS)
    seed: SeedSpec | None = None
    teardown: TeardownSpec | None = None
    thresholds: list[Gate] | None = Field(default=None, max_length=MAX_ITEMS)
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
        if self.user_classes is not None and not any(c.weight for c in self.user_classes.values()):
            raise ValueError("user_classes: at least one weight must be > 0")
        stages = self.stages or []
        if stages and len({s.open for s in stages}) > 1:
            raise ValueError("stages: all users stages (closed model) or all rate stages (open model)")
        open_shape = bool(stages and stages[0].open) or bool(self.breakpoint and self.breakpoint.open)
        if open_shape and self.rate is not None:
            raise ValueError("rate: the rate stages (or the rate breakpoint) set the rate; drop `rate`")
        chain_rates = [c.rate is not None for c in self.chains or []]
        if (open_shape or self.rate is not None or any(chain_rates)) and self.pool is None:
            raise ValueError("an arrival rate needs max_users: the pool of users that start iterations")
        class_rates = any(c.rate for c in (self.user_classes or {}).values())
        if class_rates and (open_shape or self.rate is not None):
            raise ValueError("user_classes: a class rate and a profile-wide rate do not mix; use one")
        if self.max_users is not None and not (open_shape or self.rate is not None or any(chain_rates)):
            raise ValueError("max_users is the pool of an arrival rate: give rate (or rate stages) too")
        if any(chain_rates) and not all(chain_rates) and self.rate is None:
            raise ValueError("chains: give every chain a rate, or the profile a rate for the others")
        if self.users is None and not (
            open_shape or self.rate is not None or class_rates or any(chain_rates)
        ):
            raise ValueError("users: required (concurrent users of a closed-model run)")
        return self

    @property
    def open(self) -> bool:
        """Whether the whole run is an open model (a profile-wide rate, rate stages or a rate breakpoint)."""
        return self.rate is not None or bool(
            (self.stages and self.stages[0].open) or (self.breakpoint and self.breakpoint.open)
        )

    @property
    def pool(self) -> int | None:
        return self.max_users or self.users


class RunSettings(BaseModel):
    """A profile with environment and command-line overrides applied, plus the run's own options.

    This is what crosses from a launcher to the Locust processes (``LOADSTACK_RUN_SETTINGS``,
    see :mod:`loadstack.runcontext`) and is read back there as the same type.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    profile: str = "adhoc"
    profile_file: str | None = None
    description: str = ""
    locustfile: str | None = None
    users: Users = 1
    spawn_rate: SpawnRate = 1
    run_time: PositiveSeconds | None = Field(default=None, description="seconds; None: until stopped")
    warmup: Seconds = 0
    workers: Workers = 1
    host: str | None = None
    stages: list[Stage] | None = None
    breakpoint: Breakpoint | None = None
    user_classes: dict[str, float] | None = None
    # The workload model (see loadstack.workload): arrival rates, pools, budgets, data.
    rate: float | None = None
    max_users: int | None = None
    iterations: int | None = None
    class_workloads: dict[str, ClassWorkload] | None = None
    data: dict[str, DataSource] | None = None
    wait_time: WaitTime | None = None
    tags: list[str] | None = None
    exclude_tags: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    sample_queues: list[str] | None = None
    sample_interval: float = 5
    chains: list[ChainRef] | None = None
    seed: SeedSpec | None = None
    teardown: TeardownSpec | None = None
    gates: list[Gate] = Field(default_factory=list)
    auth: AuthSpec = Field(default_factory=AuthSpec)
    mode: RunMode | None = None
    overrides: dict[str, str] = Field(default_factory=dict)
    # The run's options (command line or environment), not the profile file's.
    allow_remote: bool = False
    skip_seed: bool = False
    skip_teardown: bool = False
    sut_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @property
    def shaped(self) -> bool:
        return bool(self.stages or self.breakpoint)

    @property
    def open(self) -> bool:
        """A profile-wide arrival rate: a constant ``rate``, rate stages or a rate breakpoint."""
        return self.rate is not None or bool(
            (self.stages and self.stages[0].open) or (self.breakpoint and self.breakpoint.open)
        )

    def schedule(self) -> Schedule | None:
        """The profile-wide target rate against time (None: no profile-wide rate)."""
        if self.stages and self.stages[0].open:
            return Schedule.stages([(s.duration, s.rate or 0.0, s.ramp) for s in self.stages])
        bp = self.breakpoint
        if bp and bp.open:
            assert bp.start_rate and bp.step_rate and bp.max_rate
            return Schedule.steps(bp.start_rate, bp.step_rate, bp.step_duration, bp.max_rate)
        return Schedule.constant(self.rate) if self.rate is not None else None

    @property
    def planned_duration(self) -> float:
        """How long a run lasts at most; for stages/breakpoint the profile's run_time is a cap."""
        cap = self.run_time or float("inf")
        if self.stages:
            return min(cap, sum(s.duration for s in self.stages))
        bp = self.breakpoint
        if bp:
            return min(cap, bp.steps * bp.step_duration)
        return cap

    def secrets(self) -> set[str]:
        """Values of this run that are secrets: its `env:` block's, and the JWT claims it signs."""
        from loadstack.masking import secret_values_from_env

        claims = {str(v) for v in self.auth.claims.values() if isinstance(v, str | int) and len(str(v)) >= 4}
        return secret_values_from_env(self.env) | claims

    def user_class_names(self) -> list[str]:
        """The user classes this run starts (``user_classes`` with weight > 0 or a rate); empty means all."""
        workloads = self.class_workloads or {}
        return [
            name
            for name, weight in (self.user_classes or {}).items()
            if weight > 0 or (name in workloads and workloads[name].rate)
        ]

    def chain_files(self) -> list[str]:
        return [c.path for c in self.chains or []]

    def teardown_tables(self) -> list[str]:
        """Tables the profile (and the target, see ``targets.Target.settle``) declared for teardown."""
        return list(self.teardown.tables) if self.teardown else []

    def with_teardown_tables(self, tables: list[str]) -> RunSettings:
        """This run with ``tables`` declared too (a target that knows where it stores the run's rows)."""
        merged = list(dict.fromkeys([*self.teardown_tables(), *tables]))
        return self.model_copy(update={"teardown": TeardownSpec(tables=merged)})


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
    """Relative paths in a profile (locustfiles, chains, keys) are relative to it, like compose files.

    Made absolute without resolving symlinks: the master sends the chain paths to its workers, and
    in a Kubernetes ConfigMap volume every file is a symlink into a folder named after the moment
    the kubelet wrote it (``..2026_12_07_15_07_43.302…``), different in every pod.  The resolved
    path existed only in the master's pod; the workers failed with "file not found".
    """
    p = Path(value)
    return p if p.is_absolute() else Path(os.path.abspath(profile_path.parent / p))


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
    max_workers: int | None = None,
) -> RunSettings:
    """Profile file < environment < flags.

    Every value is bounded wherever it comes from (:mod:`loadstack.limits`); ``max_workers`` is
    the most worker processes this machine may start (``None``: not checked, the workers run
    elsewhere, e.g. in Kubernetes).
    """
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

    def users_count(v: Any) -> int:
        return limits.bounded_int(v, 1, limits.MAX_USERS)

    def workers_count(v: Any) -> int:
        return limits.bounded_int(v, 1, limits.MAX_WORKERS)

    def rate(v: Any) -> float:
        return limits.bounded_float(v, 0, limits.MAX_SPAWN_RATE, lo_open=True)

    def duration(v: Any) -> float:
        s = float(to_seconds(v))
        if s <= 0:
            raise ValueError("must be > 0")
        return s

    def flag(field_name: str, value: Any, convert: Any) -> Any:
        """A flag's value, checked like the profile's (a caller other than argparse may pass anything)."""
        if value is None:
            return None
        try:
            return convert(value)
        except ValueError as exc:
            raise configfile.ConfigError(
                [configfile.ConfigIssue("command line", None, field_name, str(exc))]
            ) from None

    users = flag("users", users, users_count)
    spawn_rate = flag("spawn_rate", spawn_rate, rate)
    run_time = flag("run_time", run_time, duration)
    workers = flag("workers", workers, workers_count)
    run_seconds = pick("run_time", run_time, config.run_time, profile.run_time, duration)
    classes = profile.user_classes or {}
    class_pools = sum(c.max_users or 0 for c in classes.values())
    if profile.open or any(c.rate for c in profile.chains or []):
        default_users = profile.pool  # the pool is the run's users; -u / LOCUST_USERS resize it
    elif class_pools:  # open classes get their pools on top of the closed-model users
        default_users = (profile.users or 0) + class_pools
    else:
        default_users = profile.users or profile.max_users
    warmup = profile.warmup
    if warmup >= run_seconds:
        warmup = 0
        overrides["warmup"] = "dropped: run_time override is shorter than the profile's warmup"
    worker_count = pick(
        "workers", workers, config.workers, profile.workers or limits.cpu_count(), workers_count
    )
    if max_workers is not None and worker_count > max_workers:
        source = overrides.get("workers")
        where = (
            configfile.ConfigIssue(str(config.source_of("workers")), None, "workers", "")
            if source and source.startswith("environment")
            else configfile.ConfigIssue("command line", None, "workers", "")
            if source
            else configfile.ConfigIssue(str(path), configfile.line_of(node, ("workers",)), "workers", "")
        )
        where.message = limits.too_many_workers(worker_count, allowed=False) or ""
        raise configfile.ConfigError([where])
    auth_spec = profile.auth
    if auth_spec and auth_spec.key_file:  # a key next to the profile travels with it
        auth_spec = auth_spec.model_copy(
            update={"key_file": str(resolve_locustfile(auth_spec.key_file, path))}
        )
    try:
        auth = resolve_auth(auth_spec, auth_mode, config)
    except AuthConfigError as exc:
        if exc.variable:  # the environment's value, not the file's: blame the variable
            message = str(exc).removeprefix(f"{exc.variable}: ")
            raise configfile.ConfigError([configfile.ConfigIssue(exc.variable, None, "", message)]) from None
        line = configfile.line_of(node, ("auth",))
        raise configfile.ConfigError([configfile.ConfigIssue(str(path), line, "auth", str(exc))]) from None
    run = RunSettings(
        profile=profile.name,
        profile_file=str(path),
        description=profile.description,
        locustfile=str(resolve_locustfile(profile.locustfile, path)),
        users=pick("users", users, config.users, default_users, users_count),
        spawn_rate=pick("spawn_rate", spawn_rate, config.spawn_rate, profile.spawn_rate, rate),
        run_time=run_seconds,
        warmup=warmup,
        workers=worker_count,
        host=pick("host", host, config.host, profile.host, str),
        stages=profile.stages,
        breakpoint=profile.breakpoint,
        user_classes={k: c.weight for k, c in classes.items()} or None,
        rate=profile.rate,
        max_users=profile.max_users,
        iterations=profile.iterations,
        class_workloads={k: c for k, c in classes.items() if c.rate or c.iterations} or None,
        data={
            name: source.model_copy(update={"csv": str(resolve_locustfile(source.csv, path))})
            if source.csv
            else source
            for name, source in profile.data.items()
        }
        if profile.data
        else None,
        wait_time=profile.wait_time,
        tags=profile.tags,
        exclude_tags=profile.exclude_tags,
        env=profile_env,
        sample_queues=profile.sample_queues,
        sample_interval=profile.sample_interval,
        chains=[c.model_copy(update={"path": str(resolve_locustfile(c.path, path))}) for c in profile.chains]
        if profile.chains
        else None,
        seed=profile.seed,
        teardown=profile.teardown,
        gates=gates_of(profile, path, node),
        auth=auth,
        mode=profile.mode,
        overrides=overrides,
        allow_remote=allow_remote or config.allow_remote,
        skip_seed=skip_seed or config.skip_seed,
        skip_teardown=skip_teardown or config.skip_teardown,
        sut_version=sut_version or config.sut_version,
    )
    masking.current().add(*run.secrets())
    return run


def _current() -> Settings:
    from loadstack import settings

    return settings.current()
