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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadstack import (
    checks,
    exitcodes,
    masking,
    paths,
    processes,
    profiles,
    results,
    runcontext,
    settings,
    stopping,
    targets,
)
from loadstack.configfile import ConfigError
from loadstack.data import seed
from loadstack.launchers import compose, locust
from loadstack.launchers.base import Launcher, Prepared, RunError, RunRequest, say, worker_cap
from loadstack.launchers.native import NativeLauncher
from loadstack.profiles import RunSettings


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


def choose_mode(prepared: Prepared) -> tuple[str, str]:
    """``--docker``/``--native``, else the profile's ``mode:``, else ``LOADSTACK_RUN_MODE``, else auto;
    with the reason, for the first line a run prints.  ``run`` and ``ui`` both decide here."""
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
    """``loadstack run`` (and, with ``request.web_ui``, the web UI stack): returns the exit status.

    A SIGINT/SIGTERM is caught from the process's first line (:mod:`loadstack.stopping`); before
    the master starts it stops the run at the next step, after it the master is told to stop.
    Whenever the master wrote no summary, the launcher writes one marked ``incomplete``
    (:func:`summary_without_master`) and, if a master was started, runs teardown for the run id.
    """
    with Stops() as stops:
        prepared = prepare(request)
        if stops.received is not None:
            return summary_without_master(prepared, stops, master_started=False)
        launcher = choose_launcher(prepared)
        target = targets.for_run(prepared.run)
        target.prepare(prepared.run, settings.current())
        masking.current().add(*target.shared_env.values())  # secrets made up for this run
        run = target.settle(prepared.run, launcher.target_url(target))
        check_inputs(run, prepared, target.shared_env)
        launcher.check_inputs(prepared)
        if stops.received is not None:
            return summary_without_master(prepared, stops, master_started=False)
        _announce(prepared)
        code: int | None = None
        try:
            launcher.start_target(target, prepared)
            if request.scenario == "seed-only":
                return _seed_only(run, prepared)
            if stops.received is not None:
                return summary_without_master(prepared, stops, master_started=False)
            launcher.start_locust(run, prepared)
            stops.attach(launcher)  # from here a signal tells the master, which writes the results
            if on_ready is not None:
                on_ready(launcher, run, prepared)
            code = launcher.wait()
            launcher.collect(prepared)
        finally:
            launcher.stop()
        if not (prepared.run_dir / "summary.json").exists():
            if code == exitcodes.BAD_INPUT:  # the master refused the run before it seeded anything
                say("the master wrote no summary")
                return exitcodes.BAD_INPUT
            master_env = {**master_environment(run, prepared, launcher.name), **target.shared_env}
            return summary_without_master(
                prepared, stops, master_started=True, master_code=code, master_env=master_env
            )
    if stops.received is not None:
        return exitcodes.INTERRUPTED
    return exitcodes.FAILURES if code is None else code


def master_environment(run: RunSettings, prepared: Prepared, launcher: str) -> dict[str, str]:
    """The environment the run's master had (its settings decide where teardown looks)."""

    return locust.environment(run, prepared.run_id, prepared.results_root, launcher=launcher)


def summary_without_master(
    prepared: Prepared,
    stops: Stops,
    *,
    master_started: bool,
    master_code: int | None = None,
    master_env: dict[str, str] | None = None,
) -> int:
    """The launcher's fallback when no master wrote ``summary.json`` (issue 27, findings 18-19).

    This is the one exception to "the master decides what a run means": a master that was killed
    (SIGKILL, OOM) or that never started cannot write its summary or tear down its seed data, so
    the launcher writes what it knows (run id, profile, what it started, the last figures the
    master's CSV writer left, the reason) into a summary marked ``incomplete`` and, when a master
    was started, runs teardown for the run id.  Returns the exit status: 130 after SIGINT/SIGTERM,
    else :data:`~loadstack.exitcodes.MASTER_LOST`.
    """
    interrupted = stops.received is not None
    code = exitcodes.INTERRUPTED if interrupted else exitcodes.MASTER_LOST
    if not master_started:
        reason = f"{signal.Signals(stops.received or signal.SIGTERM).name} before the Locust master started"
    elif master_code is not None and master_code < 0:
        reason = f"the Locust master was killed by {signal.Signals(-master_code).name}"
    else:
        reason = f"the Locust master exited with status {master_code} without writing its summary"
    if interrupted and master_started:
        reason += f" (after {signal.Signals(stops.received or signal.SIGTERM).name})"
    run_dir = prepared.run_dir
    doc: dict[str, Any] = {
        "schema": results.SCHEMA_VERSION,
        "run_id": prepared.run_id,
        "profile": prepared.run.profile,
        "host": prepared.run.host,
        "incomplete": {"reason": reason, "written_by": "launcher", "master_started": master_started},
        "start": _metadata_started(run_dir) or results.iso(stops.since),
        "end": results.iso(time.time()),
        "end_reason": "interrupted" if interrupted and not master_started else "incomplete",
        "versions": results.versions(),
    }
    if last := _last_figures(run_dir):
        doc["last_known"] = last
    run = prepared.run
    if master_started and not run.skip_teardown:
        config = settings.Settings.load(master_env) if master_env is not None else settings.current()
        report = teardown_run(prepared, config)
        doc["teardown"] = report.as_dict()
        say(f"teardown: {report.line()}")
    doc["outcome"] = {"verdict": "incomplete", "exit_code": code}
    results.write_json(run_dir / "summary.json", masking.current().mask_obj(doc))
    say(f"{reason}: wrote an incomplete summary to {run_dir}/summary.json   exit status: {code}")
    return code


def teardown_run(prepared: Prepared, config: settings.Settings) -> Any:
    """The launcher's only teardown call: the run's data when its master could not remove it.

    It follows the plan the master recorded at its start (``run-metadata.json``), falling back to
    the run's declared tables, so it touches only what the run declared, as the master would.
    """
    from loadstack.data import teardown

    run = prepared.run
    return teardown.teardown_for_run_id(
        prepared.run_id,
        prepared.run_dir,
        config,
        allow_remote=run.allow_remote,
        tables=run.teardown_tables(),
    )


def _metadata_started(run_dir: Path) -> str | None:
    try:
        started = results.read_json(run_dir / "run-metadata.json").get("started")
    except (OSError, ValueError, AttributeError):
        return None
    return started if isinstance(started, str) else None


def _last_figures(run_dir: Path) -> dict[str, Any] | None:
    """The last aggregated row Locust's CSV writer left in ``results_stats_history.csv``."""
    import csv

    try:
        with open(run_dir / "results_stats_history.csv", encoding="utf-8", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("Name") == "Aggregated"]
    except (OSError, csv.Error):
        return None
    if not rows:
        return None
    last = rows[-1]
    try:
        return {
            "at": results.iso(float(last["Timestamp"])),
            "users": int(last["User Count"]),
            "requests": int(last["Total Request Count"]),
            "failures": int(last["Total Failure Count"]),
        }
    except (KeyError, ValueError):
        return None


def check_inputs(run: RunSettings, prepared: Prepared, shared_env: dict[str, str]) -> None:
    """The master's own input checks, in a short-lived process (Locust gevent-patches its importer).

    Bad input stops the run here with exit status 2, before the target or any container starts.
    """

    env = locust.environment(run, prepared.run_id, prepared.results_root, launcher="check")
    proc = subprocess.run(
        [sys.executable, "-m", "loadstack", "check"], env={**env, **shared_env}, capture_output=True, text=True,
        timeout=180, preexec_fn=processes.die_with_parent(),
    )  # fmt: skip
    if proc.returncode != 0 and stopping.received is not None:
        return  # a terminal's Ctrl-C reached the check too; the run stops at its next step
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
    except seed.SeedRefused as exc:
        raise RunError(str(exc), exitcodes.BAD_INPUT) from None
    except seed.SeedError as exc:
        raise RunError(str(exc)) from None
    return exitcodes.OK


class Stops:
    """SIGINT/SIGTERM during a run: recorded from the start, the master told once it runs.

    The handler itself is :mod:`loadstack.stopping`'s, installed by ``loadstack/__main__.py``
    before anything else (or here, when the lifecycle runs in-process); a signal that came
    before the master started makes :func:`run` stop at its next step, one that comes after
    tells the master (it writes its results and exits 130).
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.since = time.time()
        self.launcher: Launcher | None = None
        self._told = False
        self._owned = False

    def __enter__(self) -> Stops:
        if threading.current_thread() is threading.main_thread():
            self._owned = not stopping.installed()
            self.received = stopping.on_signal(self._handle)
            if self.received is not None:
                say(f"\n{signal.Signals(self.received).name}: stopping before the run starts …")
        return self

    def _handle(self, signum: int) -> None:
        if self.received is None:
            self.received = signum
            say(f"\n{signal.Signals(signum).name}: stopping the run (results are still written) …")
        self._tell()

    def attach(self, launcher: Launcher) -> None:
        """The master runs: a signal from now on (or one already received) goes to it."""
        self.launcher = launcher
        if self.received is not None:
            self._tell()

    def _tell(self) -> None:
        if self.launcher is not None and not self._told:
            self._told = True
            threading.Thread(target=self.launcher.interrupt, daemon=True).start()

    def __exit__(self, *exc: Any) -> None:
        if self._owned:
            stopping.uninstall()
        else:
            stopping.on_signal(None)
