"""The background web UI stack: ``loadstack ui`` starts it, ``status`` shows it, ``stop`` ends it.

``loadstack ui`` starts a supervisor (``loadstack ui --foreground``) in its own
session and returns once Locust's web UI answers.  The supervisor runs the
ordinary run lifecycle with the web UI on and records its processes in a
state file, so ``stop`` and ``status`` can find them.  ``stop`` signals only
processes that are still the ones recorded (same pid *and* start time), never
a pid that was reused since.

``stop`` ends only what its session started.  A native session's state names
its processes; a compose session's (:func:`compose_ui`) names the
containers and networks it created in the checkout's compose project.  The
rest of that project (a user's own ``docker compose up``) is not the
session's and is never touched: ``just stack down`` is how to remove it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loadstack import exitcodes, lifecycle, limits, paths, results, settings
from loadstack.launchers import compose
from loadstack.launchers.base import Launcher, Prepared, RunError, RunRequest, say, worker_cap
from loadstack.launchers.native import NativeLauncher
from loadstack.processes import STARTUP_LIMIT_S, port_open, wait_until
from loadstack.profiles import RunSettings


def _state_file() -> Path:
    return paths.state_dir() / "ui.json"


def read_state() -> dict[str, Any] | None:
    try:
        state = results.read_json(_state_file())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    if state.get("mode") == "docker":
        return state if isinstance(state.get("containers"), list) else None
    return state if isinstance(state.get("supervisor"), dict) else None


def running(state: dict[str, Any]) -> bool:
    """The session the state describes still runs (its supervisor, or one of its containers)."""
    if state.get("mode") == "docker":
        return compose.session_running(state)
    return alive(state["supervisor"])


def record_compose_session(project: str, containers: list[str], networks: list[str], web_url: str) -> None:
    """A compose ``ui`` session's state: what it created, so that ``stop`` removes that and no more."""
    results.write_json(
        _state_file(),
        {
            "mode": "docker",
            "project": project,
            "containers": containers,
            "networks": networks,
            "web_url": web_url,
            "started": results.iso(time.time()),
        },
    )


def started_at(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (``/proc/PID/stat`` field 22), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _process(pid: int) -> dict[str, Any]:
    return {"pid": pid, "started": started_at(pid)}


def alive(process: dict[str, Any]) -> bool:
    """The recorded process is still running (not merely some process with a reused pid)."""
    pid, started = process.get("pid"), process.get("started")
    return isinstance(pid, int) and pid > 0 and started is not None and started_at(pid) == started


def compose_ui(request: RunRequest) -> int:
    """The web UI stack on compose: everything up, the master with Locust's web UI.

    The stack is the checkout's project, which a user's own ``docker compose up`` shares.  So
    the session creates only what is missing (``--no-recreate``, never fewer workers than are
    up), and records the containers and networks it created in its session state: ``loadstack
    stop`` removes those and nothing else.
    """
    state = read_state()
    if state and running(state):
        say(f"already running: {state['web_url']} (loadstack stop to end it)")
        return exitcodes.OK
    workers = request.workers or os.cpu_count() or 1
    refused = limits.too_many_workers(workers, worker_cap(request) is None)
    if refused:
        raise RunError(f"--workers: {refused}", exitcodes.BAD_INPUT)
    profile = request.profile if "/" in request.profile else f"/app/profiles/{request.profile}.yml"
    env = settings.environment_of({"container_mode": "ui", "profile": profile, "web_port": request.web_port})
    stack = compose.Compose(offline=compose.offline_wanted(request.offline), env=env)
    stack.ensure_images()
    project = compose.project_name(stack.env)
    before = {kind: compose.labelled(kind, project) for kind in ("container", "network")}
    scale = max(workers, len(stack.containers("worker")))  # a user's workers are not scaled down
    config = settings.current()
    web_url = f"http://127.0.0.1:{request.web_port}"
    try:
        stack.run("up", "-d", "--no-recreate", "--scale", f"worker={scale}", capture=True)
    finally:
        created = {kind: sorted(compose.labelled(kind, project) - ids) for kind, ids in before.items()}
        record_compose_session(project, created["container"], created["network"], web_url)
    shared = len(before["container"])
    say(
        f"Locust web UI: {web_url}   ({scale} workers; metrics on "
        f"http://127.0.0.1:{config.metrics_port}/metrics)"
    )
    if shared:
        say(
            f"compose project {project} was already up: this session started {len(created['container'])} "
            "containers of its own; `loadstack stop` removes only those"
        )
    say("stop with: just load-test stop   (or just stack down)")
    return exitcodes.OK


def foreground(request: RunRequest) -> int:
    """Supervise a web-UI stack until SIGTERM/SIGINT (what ``loadstack ui`` runs in the background)."""
    request.web_ui = True
    request.mode = "native"  # the compose UI stack needs no supervisor (see compose_ui)
    if port_open("127.0.0.1", request.web_port):
        raise RunError(f"port {request.web_port} is in use; pass --web-port", exitcodes.BAD_INPUT)
    state_path = _state_file()

    def ready(launcher: Launcher, run: RunSettings, prepared: Prepared) -> None:
        assert isinstance(launcher, NativeLauncher)
        wait_until(lambda: port_open("127.0.0.1", request.web_port), timeout=STARTUP_LIMIT_S)
        children = launcher.children()
        state = {
            "mode": "native",
            "supervisor": _process(os.getpid()),
            "run_id": prepared.run_id,
            "run_dir": str(prepared.run_dir),
            "web_url": f"http://127.0.0.1:{request.web_port}",
            "host": run.host,
            "profile": run.profile,
            "processes": {c.name: _process(c.pid) for c in children},
            "started": results.iso(time.time()),
        }
        results.write_json(state_path, state)

    try:
        lifecycle.run(request, on_ready=ready)
    finally:
        state_path.unlink(missing_ok=True)
    return exitcodes.OK


def start(request: RunRequest, extra_args: list[str]) -> int:
    """Start the web-UI stack in the background and return once the UI answers."""
    state = read_state()
    if state and running(state):
        say(f"already running: {state['web_url']} (loadstack stop to end it)")
        return exitcodes.OK
    lifecycle.prepare(request)  # bad input is reported here, in the foreground
    log_path = paths.state_dir() / "ui-supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "loadstack", "ui", "--foreground", *extra_args]
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    ok = wait_until(
        lambda: (
            ((read_state() or {}).get("supervisor") or {}).get("pid") == proc.pid or proc.poll() is not None
        ),
        STARTUP_LIMIT_S,
    )
    state = read_state()
    if not ok or proc.poll() is not None or not state:
        say(f"the web UI stack did not come up; see {log_path}:")
        say("\n".join(log_path.read_text(errors="replace").splitlines()[-15:]))
        return exitcodes.FAILURES
    say(f"Locust web UI: {state['web_url']}   (target: {state['host']})")
    say(f"results of this session: {state['run_dir']}/   stop with: just load-test stop")
    return exitcodes.OK


def stop() -> int:
    """End this checkout's UI session: only the processes or containers it recorded."""
    state = read_state()
    if state and state.get("mode") == "docker":
        compose.stop_session(state)
        _state_file().unlink(missing_ok=True)
        say(
            f"stopped the compose web UI session (project {state.get('project')}'s other containers untouched)"
        )
        return exitcodes.OK
    if not state or not alive(state["supervisor"]):
        say("nothing running")
        _state_file().unlink(missing_ok=True)
        return exitcodes.OK
    supervisor = state["supervisor"]
    os.kill(supervisor["pid"], signal.SIGTERM)
    if not wait_until(lambda: not alive(supervisor), 90):
        for process in [supervisor, *state.get("processes", {}).values()]:
            if alive(process):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process["pid"], signal.SIGKILL)
    say(f"stopped; results in {state['run_dir']}/")
    return exitcodes.OK


def status() -> int:
    state = read_state()
    if state and state.get("mode") == "docker":
        say(f"compose web UI session (project {state.get('project')}) since {state.get('started')}")
        say(f"  web UI:  {state.get('web_url')}   containers it started: {len(state['containers'])}")
        return exitcodes.OK
    if not state or not alive(state["supervisor"]):
        say("nothing running")
        return exitcodes.OK
    say(f"web UI stack (run {state['run_id']}, profile {state['profile']}) since {state['started']}")
    say(f"  web UI:  {state['web_url']}")
    say(f"  target:  {state['host']}")
    for name, process in state.get("processes", {}).items():
        say(f"  {name:<10} pid {process.get('pid')!s:<8} {'running' if alive(process) else 'exited'}")
    return exitcodes.OK
