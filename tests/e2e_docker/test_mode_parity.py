"""Mode parity: native and docker runs of the same profile give the same verdict and summary shape.

And the stack `loadstack run --docker` starts is the checkout's own compose project, so a user's
`docker compose up` next to it shares containers instead of colliding on host ports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadstack.processes import free_port
from tests.helpers import ROOT

PORT_VARIABLES = (
    "LOADSTACK_WEB_PORT", "LOADSTACK_METRICS_PORT", "LOADSTACK_TARGET_PORT", "LOADSTACK_POSTGRES_PORT",
    "LOADSTACK_RABBITMQ_PORT", "LOADSTACK_RABBITMQ_MANAGEMENT_PORT", "LOADSTACK_REDIS_PORT",
    "LOADSTACK_PROMETHEUS_PORT", "LOADSTACK_GRAFANA_PORT",
)  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COMPOSE_PROJECT_NAME"}
    return {**env, **{name: str(free_port()) for name in PORT_VARIABLES}, **extra}


def _loadstack(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadstack", *args], capture_output=True, text=True, timeout=timeout, env=env,
        cwd=ROOT,
    )  # fmt: skip


@pytest.fixture
def quick_profile() -> Iterator[str]:
    """A smoke-like profile inside profiles/ (docker mode mounts that directory) with short waits."""
    name = f"parity-{uuid.uuid4().hex[:8]}"
    path = ROOT / "profiles" / f"{name}.yml"
    path.write_text(
        (ROOT / "profiles" / "smoke.yml").read_text().replace("name: smoke", f"name: {name}")
        + "wait_time: {min: 0.05, max: 0.2}\n"
    )
    try:
        yield name
    finally:
        path.unlink()


@pytest.fixture(scope="module")
def stack_down() -> Iterator[dict[str, str]]:
    """One compose stack (the checkout's project, on free ports) for every test here, down at the end.

    A docker run leaves the backends up, so the next run reuses them instead of starting them
    again (compose recreates a container whose settings differ, e.g. the demo's auth mode): one
    stack start and one ``down`` for the module rather than one per test.
    """
    env = _env(LOADSTACK_RUN_MODE="docker")
    try:
        yield env
    finally:
        down = _loadstack("stack", "down", "--offline", env=env, timeout=300)
        assert down.returncode == 0, down.stderr


def _names(results: Path, run_id: str) -> set[tuple[str, str]]:
    doc = json.loads((results / run_id / "summary.json").read_text())
    assert doc["outcome"]["exit_code"] == 0 and doc["verdict"] == "pass"
    return {(r["type"], r["name"]) for r in doc["requests"]}


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("auth_mode", ["none", "oauth2", "local"])
def test_native_and_docker_runs_agree_for_every_auth_mode(
    engine_and_images: None, quick_profile: str, stack_down: dict[str, str], tmp_path: Path, auth_mode: str
) -> None:
    common = ["--profile", quick_profile, "--auth-mode", auth_mode, "--run-time", "20s", "--workers", "2",
              "--results-dir", str(tmp_path)]  # fmt: skip
    native = _loadstack("run", "--native", *common, "--run-id", f"native-{auth_mode}", env=stack_down)
    assert native.returncode == 0, native.stdout[-4000:] + native.stderr
    assert "mode: native (--native)" in native.stdout
    docker = _loadstack(
        "run", "--docker", "--offline", *common, "--run-id", f"docker-{auth_mode}", env=stack_down
    )
    assert docker.returncode == 0, docker.stdout[-4000:] + docker.stderr
    assert "mode: docker (--docker)" in docker.stdout
    assert _names(tmp_path, f"native-{auth_mode}") == _names(tmp_path, f"docker-{auth_mode}")


@pytest.mark.docker
@pytest.mark.slow
def test_docker_run_and_a_users_compose_up_share_one_project(
    engine_and_images: None, stack_down: dict[str, str], tmp_path: Path
) -> None:
    run = _loadstack(
        "run", "--docker", "--offline", "--profile", "smoke", "--run-time", "10s", "--run-id", "shared",
        "--results-dir", str(tmp_path), env=stack_down,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    files = ["-f", "docker-compose.yml", "-f", "docker-compose.offline.yml", "--profile", "offline"]
    up = subprocess.run(
        ["docker-compose", *files, "up", "-d", "--scale", "worker=2"], capture_output=True, text=True,
        timeout=300, env=stack_down, cwd=ROOT,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr[-3000:]
    assert "port is already allocated" not in up.stderr
    ps = subprocess.run(
        ["docker-compose", *files, "ps", "-q"], capture_output=True, text=True, env=stack_down, cwd=ROOT
    )
    labels = subprocess.run(
        ["docker", "inspect", "-f", '{{index .Config.Labels "com.docker.compose.project"}}', *ps.stdout.split()],
        capture_output=True, text=True,
    )  # fmt: skip
    assert len(ps.stdout.split()) >= 6 and len(set(labels.stdout.split())) == 1, labels.stdout
