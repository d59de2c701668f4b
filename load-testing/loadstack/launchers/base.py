"""What every launcher shares with the run's sequence: the request, the prepared run, how to fail
and how to speak.

:mod:`loadstack.lifecycle` drives a run through a :class:`Launcher`; launchers import only this
module, never the lifecycle, so the seam between them runs one way.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from loadstack import exitcodes, limits, masking, settings
from loadstack.profiles import RunSettings
from loadstack.targets import Target


class RunError(Exception):
    """A run that cannot start or go on; the message is for the user, the code is the exit status."""

    def __init__(self, message: str, exit_code: int = exitcodes.FAILURES) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def say(message: str) -> None:
    """Print for the person running the command; every line passes the masker."""
    sys.stdout.write(masking.current()(message) + "\n")
    sys.stdout.flush()


@dataclass
class RunRequest:
    """What the command line asked for (``loadstack run`` / ``ui``)."""

    profile: str = "smoke"
    users: int | None = None
    spawn_rate: float | None = None
    run_time: str | None = None
    host: str | None = None
    workers: int | None = None
    allow_many_workers: bool = False
    run_id: str | None = None
    results_dir: str | None = None
    allow_remote: bool = False
    web_ui: bool = False
    web_port: int = 8089
    skip_seed: bool = False
    skip_teardown: bool = False
    metrics: bool = True
    sut_version: str | None = None
    scenario: str = "run"  # run | seed-only
    auth_mode: str | None = None
    mode: str | None = None  # native | docker | None: the profile's, LOADSTACK_RUN_MODE, else auto
    offline: bool = False
    down: bool = False


@dataclass(frozen=True)
class Prepared:
    """A request resolved into a run: its settings, its id and where its results go."""

    request: RunRequest
    run: RunSettings
    run_id: str
    results_root: Path

    @property
    def run_dir(self) -> Path:
        return self.results_root / self.run_id

    @property
    def metrics(self) -> bool:
        return self.request.metrics and settings.current().metrics_by_default()


class Launcher(Protocol):
    """How a run's processes are started; nothing about what the run means."""

    name: str

    def check_inputs(self, prepared: Prepared) -> None: ...
    def target_url(self, target: Target) -> str: ...
    def start_target(self, target: Target, prepared: Prepared) -> None: ...
    def start_locust(self, run: RunSettings, prepared: Prepared) -> None: ...
    def interrupt(self) -> None: ...
    def wait(self) -> int: ...
    def collect(self, prepared: Prepared) -> None: ...
    def stop(self) -> None: ...


def worker_cap(request: RunRequest) -> int | None:
    """Most workers this machine starts for ``request`` (:func:`loadstack.limits.worker_cap`)."""
    return limits.worker_cap(request.allow_many_workers or settings.current().allow_many_workers)
