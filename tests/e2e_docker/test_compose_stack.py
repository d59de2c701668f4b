"""The container stack, for real: offline images, docker compose, 8 worker containers, Prometheus.

Starts a Docker engine when none answers (infra/offline/start-dockerd.sh) and builds the offline
images (cached by content hash).  A machine where no engine can be started fails here with the
reason; CI installs docker.io, docker-compose and debootstrap (.ci/run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from loadstack.processes import free_port
from tests.helpers import ROOT, scraping

PROJECT = "loadstack-e2e"
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent.sock"}


def _compose_config(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker-compose", "--project-directory", str(ROOT), *args, "config"],
        capture_output=True, text=True, env={**os.environ, **NO_ENGINE}, cwd=ROOT,
    )  # fmt: skip


FILES = {
    "base": ["-f", "docker-compose.yml"],
    "observability": ["-f", "docker-compose.yml", "--profile", "observability"],
    "offline": ["-f", "docker-compose.yml", "-f", "docker-compose.offline.yml", "--profile", "offline"],
}


@pytest.mark.parametrize("variant", sorted(FILES))
def test_compose_files_validate_and_publish_on_loopback_only(variant: str) -> None:
    quiet = subprocess.run(
        ["docker-compose", "--project-directory", str(ROOT), *FILES[variant], "config", "-q"],
        capture_output=True, text=True, env={**os.environ, **NO_ENGINE}, cwd=ROOT,
    )  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr
    rendered = yaml.safe_load(_compose_config(*FILES[variant]).stdout)
    published = 0
    for name, service in rendered["services"].items():
        for port in service.get("ports", []):
            text = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            assert text.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
            published += 1
        assert "container_name" not in service or name != "worker"
    assert published >= 6
    worker = rendered["services"]["worker"]
    assert "ports" not in worker and "container_name" not in worker, "workers must scale"
    assert "version" not in yaml.safe_load((ROOT / "docker-compose.yml").read_text()), (
        "Compose spec, no version key"
    )


def test_no_secrets_beyond_documented_local_defaults() -> None:
    documented = {"loadstack", "admin", "loadstack-local-cookie", ""}
    for path in ("docker-compose.yml", "docker-compose.offline.yml", ".env.example"):
        text = (ROOT / path).read_text()
        for line in text.splitlines():
            stripped = line.split("#", 1)[0]
            for key in ("PASSWORD", "PASS", "SECRET", "TOKEN", "KEY"):
                if key not in stripped.upper() or ("=" not in stripped and ":" not in stripped):
                    continue
                sep = (
                    "="
                    if "=" in stripped
                    and stripped.index("=") < (stripped.index(":") if ":" in stripped else 10**6)
                    else ":"
                )
                value = stripped.split(sep, 1)[1].strip().strip('"')
                if value.startswith("${"):
                    value = value.split(":-", 1)[1].rstrip("}") if ":-" in value else ""
                if "://" in value or value.startswith("${"):
                    continue
                assert value in documented, f"{path}: {line.strip()!r} looks like a secret"


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _auto_mode(**env: str) -> subprocess.CompletedProcess:
    code = "from loadstack.launchers import compose; print(compose.auto_mode()[0] == 'docker')"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "LOADSTACK_RUN_MODE": "auto", **env},
    )  # fmt: skip


@pytest.mark.docker
def test_auto_mode_uses_the_stack_only_when_its_images_exist(engine_and_images: None) -> None:
    ready = _auto_mode()
    assert ready.stdout.strip() == "True", ready.stdout + ready.stderr
    missing = _auto_mode(LOADSTACK_IMAGE="loadstack/not-built:none")
    assert missing.stdout.strip().splitlines()[-1] == "False"
    assert "images are not built; running natively" in missing.stdout


@pytest.mark.docker
@pytest.mark.slow
def test_scaled_stack_runs_every_protocol_and_leaves_nothing(engine_and_images: None, tmp_path: Path) -> None:
    ports = {
        name: str(free_port())
        for name in (
            "LOADSTACK_WEB_PORT", "LOADSTACK_METRICS_PORT", "LOADSTACK_TARGET_PORT", "LOADSTACK_POSTGRES_PORT",
            "LOADSTACK_RABBITMQ_PORT", "LOADSTACK_RABBITMQ_MANAGEMENT_PORT", "LOADSTACK_REDIS_PORT",
            "LOADSTACK_PROMETHEUS_PORT", "LOADSTACK_GRAFANA_PORT",
        )
    }  # fmt: skip
    env = {**os.environ, **ports, "COMPOSE_PROJECT_NAME": PROJECT, "LOADSTACK_RUN_MODE": "docker"}
    run_id = "docker-e2e"
    metrics_url = f"http://127.0.0.1:{ports['LOADSTACK_METRICS_PORT']}/metrics"
    try:
        with scraping(metrics_url, every=2) as scraped:
            run = subprocess.run(
                [sys.executable, "-m", "loadstack", "run", "--docker", "--offline", "--profile", "platform",
                 "--workers", "8", "--users", "16", "--spawn-rate", "16", "--run-time", "40s",
                 "--run-id", run_id, "--results-dir", str(tmp_path)],
                capture_output=True, text=True, timeout=900, env=env, cwd=ROOT,
            )  # fmt: skip
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
        summary = json.loads((tmp_path / run_id / "summary.json").read_text())
        assert summary["workers"] == 8, "the master saw 8 workers"
        assert "workers=8" in run.stdout
        by_type: dict[str, list[dict]] = {}
        for row in summary["requests"]:
            by_type.setdefault(row["type"], []).append(row)
        for kind in ("WS", "SQL", "AMQP", "REDIS", "CHAIN"):
            assert sum(r["count"] for r in by_type.get(kind, [])) > 0, f"no {kind} requests"
        assert sum(r["count"] for k in ("GET", "POST", "HTTP") for r in by_type.get(k, [])) > 0, (
            "no HTTP requests"
        )
        assert summary["totals"]["failures"] == 0, summary["errors"]
        assert (tmp_path / run_id / "report.html").exists() and (tmp_path / "latest").is_symlink()
        assert scraped, "the master's exporter answered on 127.0.0.1 during the run"
        for metric in (
            "locust_requests_total",
            "locust_request_duration_seconds_bucket",
            "locust_workers",
            "loadstack_chain_duration_seconds_bucket",
        ):
            assert metric in scraped[-1], metric
        # The master is gone by now, so its series are stale at "now": look back over the run.
        query = urllib.parse.urlencode(
            {"query": f'sum(max_over_time(locust_requests_total{{run_id="{run_id}"}}[10m]))'}
        )
        with urllib.request.urlopen(
            f"http://127.0.0.1:{ports['LOADSTACK_PROMETHEUS_PORT']}/api/v1/query?{query}", timeout=10
        ) as resp:
            result = json.load(resp)["data"]["result"]
        assert result and float(result[0]["value"][1]) > 0, "Prometheus scraped the master"
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "loadstack", "stack", "down", "--offline"],
            capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
        )  # fmt: skip
    assert down.returncode == 0, down.stderr
    label = f"label=com.docker.compose.project={PROJECT}"
    assert _docker("ps", "-aq", "--filter", label).stdout.strip() == "", "containers left behind"
    assert _docker("network", "ls", "-q", "--filter", label).stdout.strip() == "", "networks left behind"
    assert _docker("volume", "ls", "-q", "--filter", label).stdout.strip() == "", "volumes left behind"
