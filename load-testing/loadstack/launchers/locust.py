"""The Locust command lines of a run's master and workers: the same for processes, containers and pods.

Locust is started exactly as a user would start it (``python -m locust -f ...
--master`` / ``--worker``); what makes it a loadstack run is the plugin inside
(:mod:`loadstack.master`) and the run handed over in the environment
(:func:`environment`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from loadstack import configfile, paths, settings
from loadstack.processes import STARTUP_LIMIT_S
from loadstack.profiles import RunSettings

MASTER_PORT = 5557
# Workers start as fast as the machine lets them: wait for readiness, not a short deadline.
EXPECT_WORKERS_MAX_WAIT_S = round(STARTUP_LIMIT_S)


def locustfiles(run: RunSettings) -> str:
    """loadstack's hooks file first (for locustfiles without loadstack users), then the profile's."""
    files = [paths.hooks_locustfile()]
    if run.locustfile:
        files.append(Path(run.locustfile))
    return ",".join(str(f) for f in files)


def master_argv(
    run: RunSettings,
    *,
    headless: bool,
    expect_workers: int,
    bind_host: str = "127.0.0.1",
    bind_port: int = MASTER_PORT,
    web_host: str = "127.0.0.1",
    web_port: int = 8089,
) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", locustfiles(run), "--master"]
    cmd += ["--master-bind-host", bind_host, "--master-bind-port", str(bind_port)]
    cmd += [
        "--expect-workers",
        str(expect_workers),
        "--expect-workers-max-wait",
        str(EXPECT_WORKERS_MAX_WAIT_S),
    ]
    if run.host:
        cmd += ["--host", run.host]
    cmd += ["-u", str(run.users), "-r", str(run.spawn_rate)]
    if headless:
        cmd += ["--headless", "--only-summary"]
        if not run.shaped and run.run_time:
            cmd += ["-t", f"{max(1, round(run.run_time))}s"]
    else:
        cmd += ["--web-host", web_host, "--web-port", str(web_port)]
    return cmd


def worker_argv(run: RunSettings, *, master_host: str, master_port: int = MASTER_PORT) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", locustfiles(run), "--worker"]
    return [*cmd, "--master-host", master_host, "--master-port", str(master_port)]


def environment(
    run: RunSettings, run_id: str, results_root: Path, *, launcher: str, metrics: bool = True
) -> dict[str, str]:
    """The environment of a run's Locust processes: this one, plus the run itself."""
    overrides: dict[str, str | None] = {
        **settings.environment_of(
            {
                "run_settings": run.model_dump_json(),
                "run_id": run_id,
                "results_dir": str(results_root.resolve()),
                "launcher": launcher,
                "metrics_export": metrics,
                # --max-input-mb: the master reads the chain files again
                "max_input_mb": configfile.overridden_max_input_mb(),
            }
        ),
        **run.env,
        "PYTHONUNBUFFERED": "1",
    }
    return settings.current().child_environment(overrides)
