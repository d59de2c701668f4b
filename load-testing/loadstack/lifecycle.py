"""One run, top to bottom, however its processes are started.

    prepare → check inputs → start target → start Locust → wait → collect results → exit status

What the run *means* (SLO gates, summary, seed and teardown, the exit status)
is decided inside the Locust master by :mod:`loadstack.master`, so it is the
same when the master is started by hand or by Kubernetes.  A launcher only
starts and stops processes: :class:`~loadstack.launchers.native.NativeLauncher`
(local processes) or :class:`~loadstack.launchers.compose.ComposeLauncher`
(the docker-compose stack).  The exit status is the master's.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from loadstack import checks, exitcodes, limits, masking, paths, profiles, runcontext, settings, targets
from loadstack.configfile import ConfigError
from loadstack.data import seed
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


def prepare(request: RunRequest) -> Prepared:
    """Resolve settings and check the target; raises before any process starts (exit 2)."""
    try:
        run = profiles.resolve(
            request.profile,
            users=request.users,
            spawn_rate=request.spawn_rate,
            run_time=request.run_time,
            host=request.host,
            workers=request.workers,
            auth_mode=request.auth_mode,
            allow_remote=request.allow_remote,
            skip_seed=request.skip_seed,
            skip_teardown=request.skip_teardown,
            sut_version=request.sut_version,
            max_workers=worker_cap(request),
        )
        run_id = runcontext.check_run_id(request.run_id or runcontext.new_run_id())
    except (ConfigError, ValueError) as exc:
        raise RunError(str(exc), exitcodes.BAD_INPUT) from None
    refused = checks.aim(run, settings.current(), run.host)
    if refused:
        raise RunError("\n".join(refused), exitcodes.BAD_INPUT)
    root = Path(request.results_dir) if request.results_dir else paths.results_root()
    if root.exists() and not root.is_dir():
        raise RunError(f"--results-dir {root}: not a folder", exitcodes.BAD_INPUT)
    return Prepared(request, run, run_id, root)


def worker_cap(request: RunRequest) -> int | None:
    """Most workers this machine starts for ``request``: 4 per CPU, None with ``--allow-many-workers``."""
    if request.allow_many_workers or settings.current().allow_many_workers:
        return None
    return limits.worker_limit()


def too_many_workers(workers: int) -> str:
    return (
        f"{workers} workers is more than {limits.WORKERS_PER_CPU} per CPU on this machine "
        f"({limits.worker_limit()} for {limits.cpu_count()} CPUs); pass --allow-many-workers "
        "(or LOADSTACK_ALLOW_MANY_WORKERS=1) to start them anyway"
    )


def choose_mode(prepared: Prepared) -> tuple[str, str]:
    """``--docker``/``--native``, else the profile's ``mode:``, else ``LOADSTACK_RUN_MODE``, else auto;
    with the reason, for the first line a run prints.  ``run`` and ``ui`` both decide here."""
    from loadstack.launchers import compose

    request = prepared.request
    if request.scenario == "seed-only":
        return "native", "--scenario seed-only seeds from here"
    if request.mode:
        return request.mode, f"--{request.mode}"
    if prepared.run.mode and prepared.run.mode != "auto":
        return prepared.run.mode, f"mode: {prepared.run.mode} in {prepared.run.profile_file}"
    if settings.current().run_mode != "auto":
        return settings.current().run_mode, f"LOADSTACK_RUN_MODE={settings.current().run_mode}"
    return compose.auto_mode()


def choose_launcher(prepared: Prepared) -> Launcher:
    from loadstack.launchers import compose
    from loadstack.launchers.native import NativeLauncher

    request = prepared.request
    mode, why = choose_mode(prepared)
    if mode == "docker":
        compose.require_engine()
        launcher: Launcher = compose.ComposeLauncher(offline=request.offline, down=request.down)
    else:
        launcher = NativeLauncher()
    say(f"mode: {launcher.name} ({why})")
    return launcher


def run(
    request: RunRequest, on_ready: Callable[[Launcher, RunSettings, Prepared], None] | None = None
) -> int:
    """``loadstack run`` (and, with ``request.web_ui``, the web UI stack): returns the exit status."""
    prepared = prepare(request)
    launcher = choose_launcher(prepared)
    target = targets.for_run(prepared.run)
    target.prepare(prepared.run, settings.current())
    masking.current().add(*target.shared_env.values())  # secrets made up for this run
    run = target.settle(prepared.run, launcher.target_url(target))
    check_inputs(run, prepared, target.shared_env)
    launcher.check_inputs(prepared)
    _announce(prepared)
    with _Interrupts(launcher) as interrupts:
        try:
            launcher.start_target(target, prepared)
            if request.scenario == "seed-only":
                return _seed_only(run, prepared)
            if interrupts.received is not None:
                return exitcodes.INTERRUPTED
            launcher.start_locust(run, prepared)
            if on_ready is not None:
                on_ready(launcher, run, prepared)
            code = launcher.wait()
            launcher.collect(prepared)
        finally:
            launcher.stop()
    if not (prepared.run_dir / "summary.json").exists():
        say("the master wrote no summary")
        return exitcodes.INTERRUPTED if interrupts.received is not None else (code or exitcodes.FAILURES)
    return exitcodes.INTERRUPTED if interrupts.received is not None else code


def check_inputs(run: RunSettings, prepared: Prepared, shared_env: dict[str, str]) -> None:
    """The master's own input checks, in a short-lived process (Locust gevent-patches its importer).

    Bad input stops the run here with exit status 2, before the target or any container starts.
    """
    from loadstack.launchers import locust

    env = locust.environment(run, prepared.run_id, prepared.results_root, launcher="check")
    proc = subprocess.run(
        [sys.executable, "-m", "loadstack", "check"], env={**env, **shared_env}, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise RunError(detail, exitcodes.BAD_INPUT)


def _announce(prepared: Prepared) -> None:
    run = prepared.run
    shape = f"shaped, up to {run.planned_duration:.0f}s" if run.shaped else f"{run.run_time or 0:.0f}s"
    seed_only = " (seed only)" if prepared.request.scenario == "seed-only" else ""
    say(
        f"run {prepared.run_id}: profile {run.profile}, {run.users} users, {run.workers} workers, {shape}{seed_only}"
    )


def _seed_only(run: RunSettings, prepared: Prepared) -> int:
    """``--scenario seed-only``: the run's seed data and nothing else (no load, no teardown)."""
    if run.seed is None or not run.seed.register_path or not run.host:
        say("seed-only: the profile has no seed: to create")
        return exitcodes.OK
    try:
        seed.seed_run(run.host, prepared.run_id, run.seed, say, allow_remote=run.allow_remote)
    except seed.SeedError as exc:
        raise RunError(str(exc)) from None
    return exitcodes.OK


class _Interrupts:
    """SIGINT/SIGTERM during a run: tell the master once (it writes its results and exits 130)."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is None:
            self.received = signum
            say(f"\n{signal.Signals(signum).name}: stopping the run (results are still written) …")
            threading.Thread(target=self.launcher.interrupt, daemon=True).start()

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
