"""`loadstack stop` after a native UI session leaves a user's compose stack running (issue 28, item 3).

The user's stack is a tiny compose file in the checkout's compose project (the same project name),
one of its services named like one of the checkout's (``redis``): exactly what `loadstack stop` used
to list and bring down.  Its image is built here with no registry: ``/usr/bin/sleep`` and the
libraries it loads, imported as an image (a few MB, seconds).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from loadstack.processes import free_port
from tests.helpers import ROOT, loadstack

IMAGE = "loadstack-test/sleep:1"


def _docker(*args: str, timeout: float = 120, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=stdin)


def _sleep_rootfs() -> bytes:
    """A root filesystem with /usr/bin/sleep and the shared libraries ``ldd`` names for it."""
    ldd = subprocess.run(["ldd", "/usr/bin/sleep"], capture_output=True, text=True, check=True).stdout
    files = {"/usr/bin/sleep"}
    for line in ldd.splitlines():
        path = next((word for word in line.split() if word.startswith("/")), None)
        if path:
            files.add(path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(files):
            tar.add(os.path.realpath(path), arcname=path.lstrip("/"))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sleep_image() -> str:
    """A Docker engine (started if none answers) and a tiny image that only sleeps."""
    started = subprocess.run([str(ROOT / "infra/offline/start-dockerd.sh")], capture_output=True, text=True)
    assert started.returncode == 0, f"no Docker engine could be started: {started.stderr}"
    if _docker("image", "inspect", IMAGE).returncode != 0:
        imported = _docker(
            "import",
            "-c",
            'CMD ["/usr/bin/sleep", "infinity"]',
            "-",
            IMAGE,
            stdin=_sleep_rootfs(),
            timeout=300,
        )
        assert imported.returncode == 0, imported.stderr.decode()
    return IMAGE


@pytest.mark.docker
@pytest.mark.slow
def test_stopping_a_native_ui_session_leaves_the_users_compose_stack_running(
    sleep_image: str, tmp_path: Path
) -> None:
    project = f"loadstack-stop-{uuid.uuid4().hex[:8]}"
    user_file = tmp_path / "docker-compose.yml"
    user_file.write_text(
        "services:\n"
        + "".join(
            f"  {name}:\n    image: {sleep_image}\n    init: true\n"
            for name in ("redis", "sidecar", "worker")
        )
    )
    compose_env = {**os.environ, "COMPOSE_PROJECT_NAME": project}
    user_compose = ["docker-compose", "-f", str(user_file), "--project-directory", str(tmp_path)]
    env = {
        "COMPOSE_PROJECT_NAME": project,  # the checkout's project is the user's
        "LOADSTACK_STATE_DIR": str(tmp_path / "state"),
        "LOADSTACK_RUN_MODE": "auto",
    }
    try:
        up = subprocess.run(
            [*user_compose, "up", "-d", "--scale", "worker=2"], capture_output=True, text=True, timeout=300,
            env=compose_env,
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
        label = f"label=com.docker.compose.project={project}"
        users = _docker("ps", "-q", "--no-trunc", "--filter", label).stdout.decode().split()
        assert len(users) == 4, users

        started = loadstack(
            "ui", "--native", "--profile", "smoke", "--workers", "1", "--web-port", str(free_port()),
            "--run-id", "ui-beside-a-user-stack", "--results-dir", str(tmp_path / "results"), env=env, timeout=600,
        )  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        stopped = loadstack("stop", env=env, timeout=600)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "compose" not in stopped.stdout, stopped.stdout
        assert "nothing running" in loadstack("status", env={**env, "LOADSTACK_RUN_MODE": "native"}).stdout

        running = _docker("inspect", "-f", "{{.State.Running}}", *users).stdout.decode().split()
        assert running == ["true"] * len(users), "every container of the user's stack still runs"
        assert sorted(_docker("ps", "-q", "--no-trunc", "--filter", label).stdout.decode().split()) == sorted(
            users
        )
    finally:
        loadstack("stop", env=env, timeout=600)
        down = subprocess.run(
            [*user_compose, "down", "-t", "1", "--remove-orphans"], capture_output=True, text=True, timeout=300,
            env=compose_env,
        )  # fmt: skip
    assert down.returncode == 0, down.stderr
