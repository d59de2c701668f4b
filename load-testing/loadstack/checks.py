"""Input checks of a run, before any load: what can be known wrong from the files alone.

The Locust master runs them at ``init`` (a failure is exit status 2 there, however
the master was started); ``loadstack run`` also runs them in a short-lived
subprocess (``loadstack check``) so that bad input stops a run before the
demo platform or any container starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from loadstack import auth, safety
from loadstack.configfile import ConfigError
from loadstack.profiles import RunSettings
from loadstack.settings import Settings


def problems(
    run: RunSettings,
    config: Settings,
    available: list[str],
    host: str | None,
    user_classes: Sequence[type] = (),
) -> list[str]:
    """Everything wrong with this run's inputs, as messages naming file, line and field.

    ``user_classes``: the locustfile's classes, whose Python chains (``ChainUser.chains``) get the
    same checks as chain files."""
    found: list[str] = []
    missing = [c for c in run.user_class_names() if c not in available]
    if missing:
        found.append(
            f"{run.profile_file}: user_classes: {', '.join(missing)} not found in "
            f"{run.locustfile} (available: {', '.join(available) or 'none'})"
        )
    from loadstack.data import teardown

    running = set(run.user_class_names())
    classes = [c for c in user_classes if not running or c.__name__ in running]
    found += teardown.declared_tables(run.teardown_tables(), classes)[1]
    chain_names, chain_problems = _chains(run, config, classes)
    found += chain_problems
    for gate in run.gates:
        where = f"{gate.source}.target" if gate.source else "thresholds.target"
        target = gate.target
        if target.user_class and available and target.user_class not in available:
            found.append(
                f"{where}: user_class {target.user_class!r} is not in the locustfile "
                f"(available: {', '.join(available)})"
            )
        if target.chain and not chain_problems and target.chain not in chain_names:
            found.append(
                f"{where}: chain {target.chain!r} is not one of this run's chains "
                f"({', '.join(sorted(chain_names)) or 'none'})"
            )
    found += aim(run, config, host)
    try:
        auth.check_settings(run.auth.model_dump(), config.environ)
    except auth.AuthConfigError as exc:
        found.append(str(exc))
    return found


def aim(run: RunSettings, config: Settings, host: str | None) -> list[str]:
    """Target safety: every address this run's users will contact is local unless remote is allowed."""
    targets = {
        "host": host,
        "token URL": run.auth.token_url if run.auth.mode == "oauth2" else None,
        "PostgreSQL (LOADSTACK_POSTGRES_DSN)": config.postgres_dsn,
        "RabbitMQ (LOADSTACK_AMQP_URL)": config.amqp_url,
        "Redis (LOADSTACK_REDIS_URL)": config.redis_url,
        "RabbitMQ management API (LOADSTACK_RABBITMQ_MANAGEMENT_URL)": config.rabbitmq_management_url,
    }
    found = []
    for what, url in targets.items():
        if not url:
            continue
        try:
            safety.check_target(url, allow_remote=run.allow_remote, what=what, environ=config.environ)
        except ValueError as exc:
            found.append(str(exc))
    if host and run.seed and run.seed.register_path:
        try:  # exactly as seeding will build it
            safety.check_request(host.rstrip("/"), run.seed.register_path, allow_remote=run.allow_remote)
        except ValueError as exc:
            found.append(f"{run.profile_file}: seed.register: {exc}")
    return found


def _chains(
    run: RunSettings, config: Settings, user_classes: Sequence[type] = ()
) -> tuple[set[str], list[str]]:
    """Names of the run's chains, and what is wrong with them (seeding included).

    Chains from any source get the same checks: the files ``$LOADSTACK_CHAINS`` names (it wins
    over the profile, exactly as for the users that run them), the profile's ``chains`` and the
    Python chains of the locustfile's ``ChainUser`` classes.
    """
    from loadstack.chains import loader  # imports Locust: only in Locust processes

    files, named_by = loader.sources(run, config)
    python = _python_chains(user_classes)
    if not files and not python:
        return set(), []
    found: list[str] = []
    for path, weight in files:
        if not math.isfinite(weight) or weight <= 0:
            found.append(f"{named_by}: {path}: weight {weight:g} must be a number > 0")
    try:
        chains = loader.load_all(files)
    except ConfigError as exc:
        hint = (
            " (named by LOADSTACK_CHAINS: fix the file, or change or unset the variable)"
            if named_by == "LOADSTACK_CHAINS"
            else ""
        )
        return set(), found + [f"{issue}{hint}" for issue in exc.issues]
    for path, _ in files:
        found += _unset_environment(path, config)
    chains = [*chains, *python]
    for chain in python:
        for step in chain.walk():
            for name in loader.env_names(step.references()):
                if name not in config.environ:
                    found.append(
                        f"{chain.source}: step {step.name}: environment variable {name} is not set "
                        f"(env.{name}); set it before the run"
                    )
    for chain in chains:
        for step in chain.walk():
            for url in _absolute_urls(step.spec):
                try:
                    safety.check_target(
                        url, allow_remote=run.allow_remote, what=f"{chain.source}: step {step.name}"
                    )
                except ValueError as exc:
                    found.append(str(exc))
        if chain.data and chain.data not in (run.data or {}):
            found.append(
                f"{chain.source}: data: {chain.data!r} is not a data feeder of the profile "
                f"({run.profile_file}: data: {', '.join(sorted(run.data or {})) or 'none'})"
            )
    if not run.seed:
        for chain in chains:
            if chain.seed:
                found.append(
                    f"{run.profile_file}: seed: missing — chain {chain.source} draws seeded customers "
                    f"(seed: {chain.seed}); add e.g. `seed: {{customers: 200}}` to the profile"
                )
    return {c.name for c in chains}, found


def _python_chains(user_classes: Sequence[type]) -> list[Any]:
    """The chains a locustfile's ``ChainUser`` classes carry in Python (``chains = [...]``)."""
    seen: dict[int, Any] = {}
    for cls in user_classes:
        for chain in getattr(cls, "chains", None) or []:
            if hasattr(chain, "walk") and hasattr(chain, "source"):
                seen.setdefault(id(chain), chain)
    return list(seen.values())


def _unset_environment(path: str, config: Settings) -> list[str]:
    """A chain's ``{{ env.X }}`` with X unset would fail every iteration (``MissingSecret``): say
    so now, with the file, line and field of its first use."""
    from loadstack.chains import loader

    found = []
    for line, field, name in loader.env_references(path):
        if name not in config.environ:
            where = f"{path}:{line}" if line else path
            found.append(
                f"{where}: {field}: environment variable {name} is not set (env.{name}); set it before "
                "the run (for an imported recording, the import summary says what it stands for)"
            )
    return found


def _absolute_urls(spec: object) -> list[str]:
    """Absolute URLs that HTTP specs inside a step spec name (an await probe's included)."""
    from pydantic import BaseModel

    from loadstack.chains.schema import HttpSpec

    if isinstance(spec, HttpSpec):
        url = spec.absolute_url()
        return [url] if url else []
    if isinstance(spec, BaseModel):
        return [u for name in type(spec).model_fields for u in _absolute_urls(getattr(spec, name))]
    return []
