"""Runs on the docker-compose stack: ``loadstack run --docker``, ``ui``, ``stop``, ``status``, ``stack``.

A headless run brings up the backends, the demo platform and its consumer,
starts the master with ``LOADSTACK_MODE=headless`` and N workers
(``--scale worker=N``), follows the master's output, waits for it, copies
``results/<run_id>`` out of the master container, then removes the load
generators (the backends stay unless ``--down``).  Inside the master,
``loadstack master`` does what a native run does: checks, seed, run,
teardown, summary.

Works with ``docker compose`` (v2) and Debian's ``docker-compose`` 1.29.  The
offline override (``docker-compose.offline.yml``) is used when asked for
(``--offline`` / ``LOADSTACK_COMPOSE_OFFLINE=1``) or when the official images are
absent and the locally built ones exist.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

from loadstack import paths, results
from loadstack.masking import Masker
from loadstack.report import history
from loadstack.runner import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    RunError,
    RunRequest,
    Stack,
    exit_code_for,
    prepare,
    say,
)

PROJECT = "loadstack"
CONTAINER_RESULTS = "/app/results"
OFFLINE_IMAGES = [
    "loadstack/postgres:15",
    "loadstack/redis:7",
    "loadstack/rabbitmq:3",
    "loadstack/prometheus:2",
]


def _quiet(cmd: list[str], timeout: float = 10) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None


@cache
def compose_command() -> list[str] | None:
    """``docker compose`` when the v2 plugin is there, else ``docker-compose``, else None."""
    probe = _quiet(["docker", "compose", "version"])
    if probe is not None and probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def engine_answers() -> bool:
    probe = _quiet(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=5)
    return probe is not None and probe.returncode == 0 and compose_command() is not None


def use_docker(request_mode: str | None) -> bool:
    """``--docker`` / ``--native`` win; else ``$LOADSTACK_RUN_MODE``; else docker when an engine answers."""
    mode = request_mode or os.environ.get("LOADSTACK_RUN_MODE", "auto")
    if mode == "docker":
        if not engine_answers():
            raise RunError(
                "--docker: no Docker engine (and docker compose) answers; start one "
                "(infra/offline/start-dockerd.sh) or run with --native",
                EXIT_BAD_INPUT,
            )
        return True
    if mode == "native":
        return False
    if not engine_answers():
        return False
    if not images_ready():
        # An engine without built images would mean a long (or, air-gapped, failing) build
        # behind a plain `loadstack run`: say so and stay native.
        say(
            "a Docker engine answers but the stack's images are not built; running natively "
            "(build them with infra/offline/build-images.sh, or force with --docker)"
        )
        return False
    return True


def images_ready() -> bool:
    """The loadstack image and one complete set of backend images (official or offline) exist."""
    if not _image_exists(os.environ.get("LOADSTACK_IMAGE", "loadstack:dev")):
        return False
    official = os.environ.get("LOADSTACK_POSTGRES_IMAGE", "postgres:16.4-bookworm")
    return _image_exists(official) or all(_image_exists(i) for i in OFFLINE_IMAGES)


def _image_exists(image: str) -> bool:
    probe = _quiet(["docker", "image", "inspect", image])
    return probe is not None and probe.returncode == 0


def offline_wanted(flag: bool = False) -> bool:
    if flag or os.environ.get("LOADSTACK_COMPOSE_OFFLINE") == "1":
        return True
    official = os.environ.get("LOADSTACK_POSTGRES_IMAGE", "postgres:16.4-bookworm")
    return not _image_exists(official) and all(_image_exists(i) for i in OFFLINE_IMAGES)


class Compose:
    """The compose project of this checkout."""

    def __init__(self, *, offline: bool = False, env: dict[str, str] | None = None) -> None:
        command = compose_command()
        if command is None:
            raise RunError(
                "docker compose is not installed (Debian: apt-get install docker-compose)", EXIT_BAD_INPUT
            )
        root = paths.project_root()
        files = ["-f", str(root / "docker-compose.yml")]
        if offline:
            files += ["-f", str(root / "docker-compose.offline.yml"), "--profile", "offline"]
        self.base = [*command, "--project-directory", str(root), *files]
        self.offline = offline
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": os.environ.get("COMPOSE_PROJECT_NAME", PROJECT),
            **(env or {}),
        }

    def run(
        self, *args: str, capture: bool = False, check: bool = True, timeout: float | None = 900
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [*self.base, *args], env=self.env, capture_output=capture, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:] if capture else []
            raise RunError(
                f"docker compose {' '.join(args[:2])} failed (exit {proc.returncode})\n" + "\n".join(detail)
            )
        return proc

    def containers(self, service: str) -> list[str]:
        out = self.run("ps", "-q", service, capture=True, check=False)
        return [line for line in out.stdout.split() if line]

    def wait_healthy(self, service: str, timeout: float) -> None:
        """Wait for a service's health check (compose v1 has no ``up --wait``)."""
        deadline = time.monotonic() + timeout
        state = "not started"
        while time.monotonic() < deadline:
            ids = self.containers(service)
            if ids:
                probe = _quiet(
                    [
                        "docker",
                        "inspect",
                        "-f",
                        "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                        ids[0],
                    ]
                )
                state = probe.stdout.strip() if probe is not None else "unknown"
                if state.endswith("healthy") and not state.endswith("unhealthy"):
                    return
                if state.startswith("exited"):
                    break
            time.sleep(1)
        logs = _quiet(["docker", "logs", "--tail", "15", ids[0]]) if ids else None
        tail = ((logs.stdout + logs.stderr) if logs else "").strip()
        raise RunError(f"{service} did not become healthy ({state}):\n{tail}")

    def ensure_images(self) -> None:
        if self.offline:
            missing = [
                i
                for i in [os.environ.get("LOADSTACK_IMAGE", "loadstack:dev"), *OFFLINE_IMAGES]
                if not _image_exists(i)
            ]
            if missing:
                raise RunError(
                    f"offline images missing ({', '.join(missing)}): run infra/offline/build-images.sh",
                    EXIT_BAD_INPUT,
                )
        else:
            self.run("build", "master")


def _container_profile(settings_file: str) -> str:
    """The profile's path inside the containers (profiles/ is mounted at /app/profiles)."""
    path = Path(settings_file).resolve()
    profiles_dir = (paths.project_root() / "profiles").resolve()
    try:
        return f"/app/profiles/{path.relative_to(profiles_dir)}"
    except ValueError:
        raise RunError(
            f"--docker runs profiles from {profiles_dir}/ (mounted into the containers); {path} is elsewhere",
            EXIT_BAD_INPUT,
        ) from None


def run(request: RunRequest, *, offline: bool = False, down: bool = False) -> int:
    """A headless profile run on the compose stack; returns the exit status like a native run."""
    settings, run_id, run_dir = prepare(request)
    # Bad input is exit 2 before any container starts.
    Stack(request, settings, run_id, run_dir).check_inputs()
    workers = request.workers or settings.workers
    # LOADSTACK_* names: Locust itself reads LOCUST_* (see docker-compose.yml).
    overrides = {
        "LOADSTACK_USERS": request.users,
        "LOADSTACK_SPAWN_RATE": request.spawn_rate,
        "LOADSTACK_RUN_TIME": request.run_time,
    }
    env = {
        "LOADSTACK_MODE": "headless",
        "LOADSTACK_PROFILE": _container_profile(settings.profile_file),
        "LOADSTACK_RUN_ID": run_id,
        "LOADSTACK_WORKERS": str(workers),
        "LOADSTACK_SKIP_SEED": "1" if request.skip_seed else "0",
        "LOADSTACK_SKIP_TEARDOWN": "1" if request.skip_teardown else "0",
        "LOADSTACK_SUT_VERSION": request.sut_version or "",
        **({"AUTH_MODE": request.auth_mode} if request.auth_mode else {}),
        **{k: str(v) for k, v in overrides.items() if v is not None},
    }
    compose = Compose(offline=offline_wanted(offline), env=env)
    say(
        f"run {run_id}: profile {settings.profile} on the compose stack ({'offline images' if compose.offline else 'official images'}), {workers} workers"
    )
    compose.ensure_images()
    say("starting PostgreSQL, RabbitMQ, Redis, the demo platform and its consumer …")
    # Offline mode has no Alloy: Prometheus scrapes the master itself (infra/prometheus/prometheus.yml).
    compose.run("up", "-d", "target", "consumer", *(["prometheus"] if compose.offline else []), capture=True)
    compose.wait_healthy("target", timeout=180)
    say(f"starting the master and {workers} workers …")
    compose.run(
        "up",
        "-d",
        "--no-deps",
        "--force-recreate",
        "--scale",
        f"worker={workers}",
        "master",
        "worker",
        capture=True,
    )
    master = compose.containers("master")
    if not master:
        raise RunError("the master container did not start")
    master_id = master[0]
    masker = Masker.from_env()
    interrupted = threading.Event()

    def follow() -> None:
        proc = subprocess.Popen(
            ["docker", "logs", "-f", master_id], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            say("  " + masker(line.rstrip("\n")))

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()

    def on_signal(signum: int, _frame: Any) -> None:
        if not interrupted.is_set():
            interrupted.set()
            say(f"\n{signal.Signals(signum).name}: stopping the master (results are still collected) …")
            subprocess.run(["docker", "kill", "--signal", "SIGINT", master_id], capture_output=True)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        waited = subprocess.run(["docker", "wait", master_id], capture_output=True, text=True)
        code = int((waited.stdout or "1").strip() or 1)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    follower.join(5)
    copied = _copy_results(master_id, run_id, run_dir)
    if down:
        say("removing the whole stack (--down) …")
        compose.run("down", "-v", "--remove-orphans", capture=True)
    else:
        compose.run("rm", "-s", "-f", "master", "worker", capture=True)
        say("load generators removed; backends stay up (`just stack down` or --down removes them)")
    if not copied:
        say("the master wrote no results")
        return EXIT_INTERRUPTED if interrupted.is_set() else (code or 1)
    results.update_latest(run_dir.parent, run_id)
    summary = results.read_json(
        run_dir / "summary.json"
    )  # its table and gates were in the master's output above
    final = EXIT_INTERRUPTED if interrupted.is_set() else exit_code_for(summary)
    entry = history.append(
        run_dir.parent, summary, run_dir=run_dir, exit_code=final,
        verdict=history.verdict_of(summary, interrupted=interrupted.is_set()), sut_version=request.sut_version,
    )  # fmt: skip
    say(f"\nresults: {run_dir}/ (copied from the master container)   verdict: {entry['verdict']}")
    return final


def _copy_results(container: str, run_id: str, run_dir: Path) -> bool:
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=run_dir.parent) as tmp:
        target = Path(tmp) / run_id
        proc = subprocess.run(
            ["docker", "cp", f"{container}:{CONTAINER_RESULTS}/{run_id}", str(target)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not (target / "summary.json").exists():
            return False
        if run_dir.exists():
            shutil.rmtree(run_dir)
        target.rename(run_dir)
    return True


def ui(request: RunRequest, *, offline: bool = False) -> int:
    workers = request.workers or os.cpu_count() or 1
    env = {
        "LOADSTACK_MODE": "ui",
        "LOADSTACK_PROFILE": request.profile
        if "/" in request.profile
        else f"/app/profiles/{request.profile}.yml",
    }
    compose = Compose(offline=offline_wanted(offline), env=env)
    compose.ensure_images()
    compose.run("up", "-d", "--scale", f"worker={workers}", capture=True)
    port = os.environ.get("LOADSTACK_WEB_PORT", "8089")
    say(
        f"Locust web UI: http://127.0.0.1:{port}   ({workers} workers; metrics on http://127.0.0.1:"
        f"{os.environ.get('LOADSTACK_METRICS_PORT', '9646')}/metrics)"
    )
    say("stop with: just load-test stop   (or just stack down)")
    return EXIT_OK


def running(offline: bool = False) -> list[str]:
    if not engine_answers():
        return []
    return Compose(offline=offline_wanted(offline)).run("ps", "-q", capture=True, check=False).stdout.split()


def stack(action: str, *, offline: bool = False, workers: int | None = None, follow: bool = False) -> int:
    compose = Compose(offline=offline_wanted(offline))
    if action == "up":
        compose.ensure_images()
        args = ["up", "-d"] + (["--scale", f"worker={workers}"] if workers else [])
        compose.run(*args)
        compose.run("ps")
    elif action == "down":
        compose.run("down", "-v", "--remove-orphans")
    elif action == "logs":
        compose.run(*(["logs", "-f"] if follow else ["logs", "--tail", "200"]), timeout=None)
    elif action == "ps":
        compose.run("ps")
    else:
        print(f"unknown stack action {action!r}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK
