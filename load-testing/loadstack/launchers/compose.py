"""Runs on the docker-compose stack: ``loadstack run --docker``, ``ui``, ``stop``, ``status``, ``stack``.

The stack is this checkout's compose project, the same one a user's own
``docker compose up`` in the checkout starts (same project directory, same
project name), so the two share containers instead of colliding on ports.
A headless run brings up the target's services, then the master
(``LOADSTACK_MODE=headless``) and N workers (``--scale worker=N``), follows the
master's output, waits for its exit status, copies ``results/<run_id>`` out of
its container, then removes the load generators (the backends stay unless
``--down``).

Works with ``docker compose`` (v2) and Debian's ``docker-compose`` 1.29.  The
offline override (``docker-compose.offline.yml``) is used when asked for
(``--offline`` / ``LOADSTACK_COMPOSE_OFFLINE=1``) or when the official images are
absent and the locally built ones exist.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

from loadstack import exitcodes, masking, paths, settings
from loadstack.launchers.base import Prepared, RunError, say
from loadstack.processes import STARTUP_LIMIT_S
from loadstack.profiles import RunSettings
from loadstack.report import history
from loadstack.results import read_json, update_latest
from loadstack.targets import Target

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


def require_engine() -> None:
    if not engine_answers():
        raise RunError(
            "--docker: no Docker engine (and docker compose) answers; start one "
            "(infra/offline/start-dockerd.sh) or run with --native",
            exitcodes.BAD_INPUT,
        )


def auto_mode() -> tuple[str, str]:
    """``docker`` when an engine answers and the stack's images are built, else ``native``; and why."""
    if not engine_answers():
        return "native", "no Docker engine answers"
    if not images_ready():
        # An engine without built images would mean a long (or, air-gapped, failing) build
        # behind a plain `loadstack run`: say so and stay native.
        say(
            "a Docker engine answers but the stack's images are not built; running natively "
            "(build them with infra/offline/build-images.sh, or force with --docker)"
        )
        return "native", "the stack's images are not built"
    return "docker", "a Docker engine answers and the stack's images are built"


def images_ready() -> bool:
    """The loadstack image and one complete set of backend images (official or offline) exist."""
    config = settings.current()
    if not _image_exists(config.image):
        return False
    return _image_exists(config.postgres_image) or all(_image_exists(i) for i in OFFLINE_IMAGES)


def _image_exists(image: str) -> bool:
    probe = _quiet(["docker", "image", "inspect", image])
    return probe is not None and probe.returncode == 0


def offline_wanted(flag: bool = False) -> bool:
    config = settings.current()
    if flag or config.compose_offline:
        return True
    return not _image_exists(config.postgres_image) and all(_image_exists(i) for i in OFFLINE_IMAGES)


def project_name(env: dict[str, str]) -> str:
    """The project name docker compose gives this checkout: COMPOSE_PROJECT_NAME, else the folder's name."""
    name = env.get("COMPOSE_PROJECT_NAME") or paths.project_root().name
    return re.sub(r"[^-_a-z0-9]", "", name.lower())


def labelled(kind: str, project: str) -> set[str]:
    """Full ids of the project's containers (stopped ones too) or networks, by compose's own label."""
    listing = ["ps", "-aq"] if kind == "container" else ["network", "ls", "-q"]
    probe = _quiet(
        ["docker", *listing, "--no-trunc", "--filter", f"label=com.docker.compose.project={project}"],
        timeout=60,
    )
    return set(probe.stdout.split()) if probe is not None and probe.returncode == 0 else set()


class Compose:
    """The compose project of this checkout."""

    def __init__(self, *, offline: bool = False, env: dict[str, str] | None = None) -> None:
        command = compose_command()
        if command is None:
            raise RunError(
                "docker compose is not installed (Debian: apt-get install docker-compose)",
                exitcodes.BAD_INPUT,
            )
        root = paths.project_root()
        files = ["-f", str(root / "docker-compose.yml")]
        if offline:
            files += ["-f", str(root / "docker-compose.offline.yml"), "--profile", "offline"]
        self.base = [*command, "--project-directory", str(root), *files]
        self.offline = offline
        self.env = settings.current().child_environment(env)

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
        ids: list[str] = []
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
            missing = [i for i in [settings.current().image, *OFFLINE_IMAGES] if not _image_exists(i)]
            if missing:
                raise RunError(
                    f"offline images missing ({', '.join(missing)}): run infra/offline/build-images.sh",
                    exitcodes.BAD_INPUT,
                )
        else:
            self.run("build", "master")


def container_profile(profile_file: str | None) -> str:
    """The profile's path inside the containers (profiles/ is mounted at /app/profiles)."""
    path = Path(profile_file or "").resolve()
    profiles_dir = (paths.project_root() / "profiles").resolve()
    try:
        return f"/app/profiles/{path.relative_to(profiles_dir)}"
    except ValueError:
        raise RunError(
            f"--docker runs profiles from {profiles_dir}/ (mounted into the containers); {path} is elsewhere",
            exitcodes.BAD_INPUT,
        ) from None


class ComposeLauncher:
    """A headless run on the compose stack; the master container's exit status is the run's."""

    name = "docker"

    def __init__(self, *, offline: bool = False, down: bool = False) -> None:
        self.offline = offline_wanted(offline)
        self.down = down
        self.compose: Compose | None = None
        self.master: str | None = None
        self.masker = masking.current()
        self.follower: threading.Thread | None = None

    def check_inputs(self, prepared: Prepared) -> None:
        container_profile(prepared.run.profile_file)

    def target_url(self, target: Target) -> str:
        """Inside the compose network: the target service, or the given host (reachable from containers)."""
        return target.compose_url or str(target.host)

    def start_target(self, target: Target, prepared: Prepared) -> None:
        request, run = prepared.request, prepared.run
        self.masker.add(*target.shared_env.values())
        env = {
            **target.shared_env,
            **settings.environment_of(
                {
                    "container_mode": "headless",
                    "profile": container_profile(run.profile_file),
                    "run_id": prepared.run_id,
                    "workers": run.workers,
                    "skip_seed": run.skip_seed,
                    "skip_teardown": run.skip_teardown,
                    "sut_version": run.sut_version,
                    "auth_mode": request.auth_mode,
                    "users": request.users,
                    "spawn_rate": request.spawn_rate,
                    "run_time": request.run_time,
                    "allow_remote": run.allow_remote or None,
                }
            ),
        }
        if target.host:
            env["LOADSTACK_TARGET_URL"] = target.host  # must be reachable from the containers
        self.compose = Compose(offline=self.offline, env=env)
        images = "offline images" if self.offline else "official images"
        say(f"run {prepared.run_id} on the compose stack ({images}), {run.workers} workers")
        self.compose.ensure_images()
        services = [*target.compose_services, *(["prometheus"] if self.offline else [])]
        if services:
            say(f"starting {', '.join(services)} and the backends …")
            # Offline mode has no Alloy: Prometheus scrapes the master itself (infra/prometheus/prometheus.yml).
            self.compose.run("up", "-d", *services, capture=True)
        if target.compose_services:
            self.compose.wait_healthy(target.compose_services[0], timeout=STARTUP_LIMIT_S)

    def start_locust(self, run: RunSettings, prepared: Prepared) -> None:
        assert self.compose is not None
        say(f"starting the master and {run.workers} workers …")
        self.compose.run(
            "up", "-d", "--no-deps", "--force-recreate", "--scale", f"worker={run.workers}", "master", "worker",
            capture=True,
        )  # fmt: skip
        master = self.compose.containers("master")
        if not master:
            raise RunError("the master container did not start")
        self.master = master[0]
        self.follower = threading.Thread(target=self._follow, daemon=True)
        self.follower.start()

    def _follow(self) -> None:
        proc = subprocess.Popen(
            ["docker", "logs", "-f", str(self.master)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            say("  " + self.masker(line.rstrip("\n")))

    def interrupt(self) -> None:
        if self.master:
            subprocess.run(["docker", "kill", "--signal", "SIGINT", self.master], capture_output=True)

    def wait(self) -> int:
        waited = subprocess.run(["docker", "wait", str(self.master)], capture_output=True, text=True)
        if self.follower is not None:
            self.follower.join(5)
        return int((waited.stdout or "1").strip() or 1)

    def collect(self, prepared: Prepared) -> None:
        """Copy ``results/<run_id>`` out of the master container and add its line to the history here."""
        run_dir = prepared.run_dir
        if not self._copied(run_dir, prepared.run_id):
            return
        update_latest(run_dir.parent, prepared.run_id)
        summary = read_json(run_dir / "summary.json")
        history.append(
            run_dir.parent, history.entry(summary, run_dir=run_dir, sut_version=prepared.run.sut_version)
        )
        say(f"results copied from the master container to {run_dir}/")

    def _copied(self, run_dir: Path, run_id: str) -> bool:
        if not self.master:
            return False
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=run_dir.parent) as tmp:
            target = Path(tmp) / run_id
            proc = subprocess.run(
                ["docker", "cp", f"{self.master}:{CONTAINER_RESULTS}/{run_id}", str(target)],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0 or not (target / "summary.json").exists():
                return False
            if run_dir.exists():
                shutil.rmtree(run_dir)
            target.rename(run_dir)
        return True

    def stop(self) -> None:
        if self.compose is None:
            return
        if self.down:
            say("removing the whole stack (--down) …")
            self.compose.run("down", "-v", "--remove-orphans", capture=True)
        else:
            self.compose.run("rm", "-s", "-f", "master", "worker", capture=True)
            say("load generators removed; backends stay up (`just stack down` or --down removes them)")


def stop_session(session: dict[str, Any]) -> None:
    """Remove the containers and networks a compose ``ui`` session created, and nothing else."""
    containers = [c for c in session.get("containers") or [] if isinstance(c, str)]
    if containers:
        say(
            f"stopping the {len(containers)} containers this session started (project {session.get('project')}) …"
        )
        _quiet(["docker", "stop", "--time", "30", *containers], timeout=600)
        _quiet(["docker", "rm", *containers], timeout=300)
    for network in session.get("networks") or []:
        # Refused while a container of someone else's uses it: then it stays, as it should.
        _quiet(["docker", "network", "rm", str(network)], timeout=60)


def session_running(session: dict[str, Any]) -> bool:
    """Any container the compose session started still runs."""
    containers = [c for c in session.get("containers") or [] if isinstance(c, str)]
    if not containers:
        return False
    probe = _quiet(["docker", "inspect", "-f", "{{.State.Running}}", *containers], timeout=60)
    return probe is not None and "true" in probe.stdout.split()


def running(offline: bool = False) -> list[str]:
    if not engine_answers():
        return []
    return Compose(offline=offline_wanted(offline)).run("ps", "-q", capture=True, check=False).stdout.split()


def stack(action: str, *, offline: bool = False, workers: int | None = None, follow: bool = False) -> int:
    compose = Compose(offline=offline_wanted(offline))
    if action == "up":
        compose.ensure_images()
        compose.run("up", "-d", *(["--scale", f"worker={workers}"] if workers else []))
        compose.run("ps")
    elif action == "down":
        compose.run("down", "-v", "--remove-orphans")
    elif action == "logs":
        compose.run(*(["logs", "-f"] if follow else ["logs", "--tail", "200"]), timeout=None)
    elif action == "ps":
        compose.run("ps")
    else:
        print(f"unknown stack action {action!r}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    return exitcodes.OK
