"""Input checks of a run, before any load: what can be known wrong from the files alone.

The Locust master runs them at ``init`` (a failure is exit status 2 there, however
the master was started); ``loadstack run`` also runs them in a short-lived
subprocess (``loadstack check``) so that bad input stops a run before the
demo platform or any container starts.
"""

from __future__ import annotations

from loadstack import auth, safety
from loadstack.configfile import ConfigError
from loadstack.profiles import RunSettings
from loadstack.settings import Settings


def problems(run: RunSettings, config: Settings, available: list[str], host: str | None) -> list[str]:
    """Everything wrong with this run's inputs, as messages naming file, line and field."""
    found: list[str] = []
    missing = [c for c in run.user_class_names() if c not in available]
    if missing:
        found.append(
            f"{run.profile_file}: user_classes: {', '.join(missing)} not found in "
            f"{run.locustfile} (available: {', '.join(available) or 'none'})"
        )
    chain_names, chain_problems = _chains(run)
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


def _chains(run: RunSettings) -> tuple[set[str], list[str]]:
    """Names of the run's chains, and what is wrong with its chain files (seeding included)."""
    files = run.chain_files()
    if not files:
        return set(), []
    from loadstack.chains.loader import load_all  # imports Locust: only in Locust processes

    try:
        chains = load_all([(c.path, c.weight) for c in run.chains or []])
    except ConfigError as exc:
        return set(), [str(issue) for issue in exc.issues]
    found = []
    if not run.seed:
        for chain in chains:
            if chain.seed:
                found.append(
                    f"{run.profile_file}: seed: missing — chain {chain.source} draws seeded customers "
                    f"(seed: {chain.seed}); add e.g. `seed: {{customers: 200}}` to the profile"
                )
    return {c.name for c in chains}, found
