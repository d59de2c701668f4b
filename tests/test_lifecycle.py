"""One run lifecycle: the run's meaning lives in the Locust master, however the master is started.

Plain ``locust --master``/``--worker`` and the ``loadstack master``/``worker`` roles give the same
exit status and the same summary as ``loadstack run``; seed and teardown happen once per run, on
the master; and no module but ``loadstack.settings`` reads the environment.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from loadstack.data.teardown import remaining
from loadstack.processes import free_port
from loadstack_demo.process import demo_platform
from tests.helpers import LOCUSTFILES, ROOT, assert_no_orphans, loadstack, summary, write_profile

HTTP_USERS = str(LOCUSTFILES / "http_users.py")
IMPOSSIBLE = [{"target": "total", "p95_ms_max": 0.001}]
REACHABLE = [{"target": "total", "error_rate_max": 0.5}]
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _profile(tmp_path: Path, name: str, thresholds: list[dict], **fields: object) -> Path:
    # The demo is an existing platform here (--host): it declares where the run's rows go, so
    # teardown removes the accounts the users registered and the shared database stays clean.
    fields.setdefault("teardown", {"tables": ["demo_users", "demo_orders", "demo_payments"]})
    return write_profile(
        tmp_path / f"{name}.yml",
        locustfile=HTTP_USERS,
        user_classes={"AuthUser": 1, "OrderUser": 1},
        wait_time={"min": 0.1, "max": 0.3},
        thresholds=thresholds,
        **fields,
    )


@contextlib.contextmanager
def _processes(*commands: tuple[list[str], dict[str, str]]) -> Iterator[list[subprocess.Popen[str]]]:
    procs = [
        subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for cmd, env in commands
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)


def _plain_locust(tmp_path: Path, url: str, profile: Path, run_id: str) -> tuple[int, str]:
    """Master + 2 workers with Locust's own flags; the profile only through the environment."""
    port = free_port()
    base = {**_env(), "LOADSTACK_PROFILE": str(profile), "LOADSTACK_RESULTS_DIR": str(tmp_path)}
    master = [sys.executable, "-m", "locust", "-f", HTTP_USERS, "--master", "--master-bind-host", "127.0.0.1",
              "--master-bind-port", str(port), "--expect-workers", "2", "--headless", "-u", "5", "-r", "5",
              "-t", "15s", "-H", url]  # fmt: skip
    worker = [sys.executable, "-m", "locust", "-f", HTTP_USERS, "--worker", "--master-port", str(port)]
    # Only the master is told the run id: the workers join the master's run.
    with _processes((master, {**base, "LOADSTACK_RUN_ID": run_id}), (worker, base), (worker, base)) as procs:
        out, _ = procs[0].communicate(timeout=120)
    return procs[0].returncode, out


def _env() -> dict[str, str]:
    """This test process's environment, as a shell would pass it on."""
    return {**os.environ, "LOCUST_METRICS_EXPORT": "0"}


def _shape(doc: dict) -> dict[str, object]:
    return {
        "keys": sorted(doc),
        "request_keys": sorted(doc["requests"][0]),
        "totals": sorted(doc["totals"]),
        "gates": sorted(doc["gates"][0]),
        "outcome": sorted(doc["outcome"]),
    }


@pytest.mark.slow
def test_plain_locust_master_and_workers_judge_the_run_like_loadstack_run(tmp_path: Path) -> None:
    with demo_platform(store="backend") as url:
        failing = _profile(tmp_path, "impossible", IMPOSSIBLE)
        code, out = _plain_locust(tmp_path, url, failing, "plain-fail")
        assert code == 3, out[-3000:]
        failed = summary(tmp_path, "plain-fail")
        assert failed["verdict"] == "fail" and failed["outcome"]["exit_code"] == 3
        assert failed["workers"] == 2

        passing = _profile(tmp_path, "reachable", REACHABLE)
        code, out = _plain_locust(tmp_path, url, passing, "plain-pass")
        assert code == 0, out[-3000:]
        plain = summary(tmp_path, "plain-pass")
        assert plain["totals"]["count"] > 0 and plain["verdict"] == "pass"
        assert (tmp_path / "plain-pass" / "summary.csv").is_file()
        assert (tmp_path / "plain-pass" / "report.html").is_file()
        history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
        assert [(h["run_id"], h["exit_code"]) for h in history] == [("plain-fail", 3), ("plain-pass", 0)]

        launched = loadstack(
            "run", "--profile", str(passing), "--host", url, "--workers", "2", "--run-time", "15s",
            "--users", "5", "--run-id", "launched", "--results-dir", str(tmp_path),
        )  # fmt: skip
        assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr
        assert _shape(summary(tmp_path, "launched")) == _shape(plain)
    for run_id in ("plain-fail", "plain-pass", "launched"):
        assert_no_orphans(run_id)


@pytest.mark.slow
def test_loadstack_master_and_worker_roles_give_the_run_exit_status(tmp_path: Path) -> None:
    profile = _profile(tmp_path, "roles", IMPOSSIBLE)
    port = free_port()
    env = {**_env(), "LOADSTACK_RESULTS_DIR": str(tmp_path)}
    master = [sys.executable, "-m", "loadstack", "master", "--headless", "--profile", str(profile),
              "--expect-workers", "2", "--bind", "127.0.0.1", "--master-port", str(port), "--run-id", "roles",
              "-u", "4", "-r", "4", "-t", "10s"]  # fmt: skip
    worker = [sys.executable, "-m", "loadstack", "worker", "--profile", str(profile), "--master-host",
              "127.0.0.1", "--master-port", str(port)]  # fmt: skip
    with demo_platform() as url:
        master += ["--host", url]
        with _processes((master, env), (worker, env), (worker, env)) as procs:
            out, _ = procs[0].communicate(timeout=120)
    assert procs[0].returncode == 3, out[-3000:]
    doc = summary(tmp_path, "roles")
    assert doc["workers"] == 2 and doc["verdict"] == "fail" and doc["totals"]["count"] > 0
    assert "SLO gates:" in out and "exit status: 3" in out
    assert_no_orphans("roles")


def _count(query: str, *args: object) -> int:
    with contextlib.closing(psycopg2.connect(PG_DSN)) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return int(cur.fetchone()[0])


@pytest.mark.slow
def test_seed_and_teardown_run_once_per_run_on_the_master(tmp_path: Path) -> None:
    run_id = "seed-once"
    # An existing platform (--host) says where it stores the run's rows: teardown touches only those.
    profile = _profile(
        tmp_path,
        "seeded",
        REACHABLE,
        seed={"customers": 30},
        run_time="8s",
        teardown={"tables": ["demo_users", "demo_orders", "demo_payments"]},
    )
    with demo_platform(store="backend") as url:
        kept = loadstack(
            "run", "--profile", str(profile), "--host", url, "--workers", "2", "--run-id", run_id,
            "--results-dir", str(tmp_path), "--skip-teardown",
        )  # fmt: skip
        assert kept.returncode == 0, kept.stdout[-3000:] + kept.stderr
        seeded = _count("SELECT count(*) FROM demo_users WHERE email LIKE %s", f"lt-{run_id}-%@example.test")
        tagged = _count("SELECT count(*) FROM demo_users WHERE run_id = %s", run_id)
        assert summary(tmp_path, run_id)["seed"] == {"customers": 30, "created": 30, "existing": 0}
        logs = tmp_path / run_id / "logs"
        assert (logs / "master.log").read_text().count("seed: creating 30") == 1
        for worker in ("worker-1.log", "worker-2.log"):
            text = (logs / worker).read_text()
            assert "seed:" not in text and "teardown:" not in text, text[-2000:]

        again = loadstack(
            "run", "--profile", str(profile), "--host", url, "--workers", "2", "--run-id", run_id,
            "--results-dir", str(tmp_path),
        )  # fmt: skip
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    assert seeded >= 30 and tagged >= seeded, (seeded, tagged)
    assert (tmp_path / run_id / "logs" / "master.log").read_text().count("teardown: ") == 1
    assert _count("SELECT count(*) FROM demo_users WHERE run_id = %s", run_id) == 0
    assert remaining(run_id)["postgres"] == {}, "nothing tagged with the run id is left"


def _environment_readers(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "environb", "getenv", "getenvb")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: os.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name in ("environ", "environb", "getenv", "getenvb"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from os import {alias.name}")
    return found


def test_only_the_settings_module_reads_the_environment() -> None:
    sources = sorted((ROOT / "load-testing").rglob("*.py"))
    assert len(sources) > 50
    readers = [
        hit
        for path in sources
        if path.relative_to(ROOT).as_posix() != "load-testing/loadstack/settings.py"
        for hit in _environment_readers(path)
    ]
    assert readers == [], "read settings through loadstack.settings:\n" + "\n".join(readers)
    # The scan itself can fail: it sees the one module that does read the environment.
    assert _environment_readers(ROOT / "load-testing/loadstack/settings.py")


def test_configuration_doc_lists_every_setting() -> None:
    from loadstack import settings

    doc = (ROOT / "docs" / "configuration.md").read_text()
    table = doc.split("<!-- settings-reference:start -->\n", 1)[1].split("\n<!-- settings-reference:end -->")[
        0
    ]
    assert table == settings.reference(), (
        "regenerate docs/configuration.md from loadstack.settings.reference()"
    )


def test_a_bad_environment_value_is_exit_2_naming_the_variable() -> None:
    for name, value in (
        ("LOADSTACK_JWT_TTL", "5x"),
        ("LOADSTACK_WORKERS", "many"),
        ("LOADSTACK_ALLOW_REMOTE", "maybe"),
    ):
        result = loadstack("profile", "show", "smoke", env={name: value})
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert name in result.stderr and "Traceback" not in result.stderr, result.stderr
