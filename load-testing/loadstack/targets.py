"""The system under test of a run: an existing platform (``--host``) or the built-in demo platform.

A launcher asks its target three things, and nothing about what it is:
what environment the target and the load generators must share (auth
secrets), which processes or compose services to start, and what the run
looks like once the target answers (its URL, auth endpoints, the tables where it
stores the run's rows, for teardown).  :class:`Target` is an existing platform:
nothing to start.  The demo platform implements the same interface in
``loadstack_demo.target``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from loadstack.profiles import RunSettings
from loadstack.settings import Settings

# The target a run gets when it names no host: the demo platform's own module.
BUILTIN = "loadstack_demo.target:DemoTarget"


@dataclass(frozen=True)
class Process:
    """A process to start natively (the target itself, or a companion such as a consumer)."""

    name: str
    argv: list[str]
    health_url: str | None = None


@dataclass
class Target:
    """An existing platform at ``host``: nothing to start, nothing to share."""

    host: str | None = None
    name: str = "external"
    # What the target and the Locust processes must both see (secrets made up for this run included).
    shared_env: dict[str, str] = field(default_factory=dict)

    def prepare(self, run: RunSettings, config: Settings) -> None:
        """Decide :attr:`shared_env` before anything starts."""

    def processes(self, port: int) -> list[Process]:
        """What to start natively, the target first; its health URL is waited for."""
        return []

    def companions(self, url: str) -> list[Process]:
        """More processes once the target answers (e.g. a pipeline consumer)."""
        return []

    # Compose: the services that are the target, and its URL inside the compose network.
    compose_services: tuple[str, ...] = ()
    compose_url: str | None = None
    # PostgreSQL tables where the target stores the run's rows with the run id in ``run_id``:
    # teardown deletes from these (and the profile's ``teardown: tables``), never from any other.
    run_tables: tuple[str, ...] = ()

    def settle(self, run: RunSettings, url: str) -> RunSettings:
        """The run aimed at the started target (and its declared tables, for teardown)."""
        return self.declare_tables(run).model_copy(update={"host": url})

    def declare_tables(self, run: RunSettings) -> RunSettings:
        return run.with_teardown_tables(list(self.run_tables)) if self.run_tables else run

    def describe(self, url: str) -> str:
        return f"target: {url}"


def for_run(run: RunSettings) -> Target:
    """The run's target: its host, else the built-in one."""
    if run.host:
        return Target(host=run.host)
    module, _, name = BUILTIN.partition(":")
    target_class: Any = getattr(importlib.import_module(module), name)
    return target_class()
