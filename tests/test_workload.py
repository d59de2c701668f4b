"""The workload model end to end: real `loadstack run`s (master + workers) against the demo platform.

Arrival rates that hold while latency grows (and the closed model that does not), dropped
iterations and their gate, exact iteration budgets across workers, data feeders that never hand
one row to two users (CSV and PostgreSQL), sustained gates, and the JUnit file CI systems read.
"""

from __future__ import annotations

import csv
import statistics
import uuid
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from loadstack.processes import free_port
from loadstack.settings import DEFAULT_POSTGRES_DSN
from loadstack_demo.process import demo_platform
from tests.helpers import ROOT, junit_schema, loadstack, summary, write_profile
from tests.shards import needing_a_calm_cpu

pytestmark = pytest.mark.slow

WORKLOAD_USERS = str(ROOT / "tests" / "locustfiles" / "workload_users.py")


def run(
    tmp_path: Path, name: str, host: str, workers: int, metrics: bool = False, **fields: Any
) -> tuple[Any, dict[str, Any]]:
    profile = write_profile(tmp_path / f"{name}.yml", locustfile=WORKLOAD_USERS, spawn_rate=100, **fields)
    exporter = {"LOADSTACK_METRICS_PORT": str(free_port())} if metrics else None
    out = loadstack(
        "run", "--profile", str(profile), "--run-id", name, "--results-dir", str(tmp_path),
        "--host", host, "--workers", str(workers), "--skip-teardown", *([] if metrics else ["--no-metrics"]),
        env=exporter,
    )  # fmt: skip
    assert (tmp_path / name / "summary.json").exists(), out.stdout + out.stderr
    return out, summary(tmp_path, name)


def per_second(doc: dict[str, Any], what: str = "started") -> list[int]:
    """Iterations per whole second of the run (the first and last, partial, seconds left out)."""
    rows = doc["workload"]["timeline"]
    active = [r for r in rows if r[what] or r["users"]]
    return [r[what] for r in active[1:-1]]


@pytest.fixture(scope="module")
def demo() -> Any:
    """The demo platform on its in-memory store (60 users registering at once stay fast)."""
    with demo_platform() as url:
        yield url


@pytest.fixture(scope="module")
def slow_demo() -> Any:
    """The demo platform answering every request 200 ms late."""
    with demo_platform({"LOADSTACK_DEMO_LATENCY_MS": "200"}) as url:
        yield url


def test_arrival_rate_holds_under_latency_while_a_closed_model_drops(tmp_path: Path, slow_demo: str) -> None:
    with needing_a_calm_cpu():
        out, doc = run(
            tmp_path, "open", slow_demo, 2,
            rate="20/s", max_users=10, run_time="33s", user_classes={"ProbeUser": 1},
        )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    rates = per_second(doc)
    assert len(rates) >= 30, rates
    assert 18 <= statistics.mean(rates[:30]) <= 22, rates
    assert sum(1 for r in rates if abs(r - 20) <= 2) >= 0.9 * len(rates), rates
    scenario = doc["workload"]["scenarios"]["ProbeUser"]
    assert scenario["model"] == "open" and scenario["dropped"] == 0 and doc["dropped_iterations"] == 0
    assert 18 <= scenario["achieved_rate"] <= 22
    assert doc["totals"]["p50_ms"] >= 200  # the latency was there
    assert (tmp_path / "open" / "workload.svg").read_text().startswith("<svg")

    # The same users as a closed model paced for 20/s without latency (10 users, 0.5 s wait).
    out, closed = run(
        tmp_path, "closed", slow_demo, 2,
        users=10, run_time="20s", user_classes={"ProbeUser": 1}, wait_time={"min": 0.5, "max": 0.5},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert closed["totals"]["rps"] < 17, closed["totals"]  # 10 / (0.5 + 0.2) = 14.3/s: it slows down


def test_a_pool_too_small_drops_iterations_and_fails_its_gate(tmp_path: Path, slow_demo: str) -> None:
    out, doc = run(
        tmp_path, "small", slow_demo, 2, metrics=True,
        rate="20/s", max_users=2, run_time="12s", user_classes={"ProbeUser": 1},
        thresholds=[
            {"target": "total", "dropped_iterations_max": 0},
            {"target": {"name": "probe"}, "p95_ms_max": 5000, "percentiles_ms_max": {"p75": 5000}},
        ],
    )  # fmt: skip
    assert out.returncode == 3, out.stdout + out.stderr
    dropped = doc["dropped_iterations"]
    assert dropped > 50, doc["workload"]  # 2 users x 5 it/s = 10/s of 20/s
    started = doc["workload"]["scenarios"]["ProbeUser"]["started"]
    assert started + dropped == pytest.approx(20 * 12, rel=0.1)  # every start the rate called for
    failed = [g for g in doc["gates"] if g["status"] == "fail"]
    assert [g["metric"] for g in failed] == ["dropped_iterations_max"] and failed[0]["actual"] == dropped
    assert "dropped_iterations_max" in out.stdout and f"dropped iterations: {dropped} (" in out.stdout

    from junitparser import Failure, JUnitXml

    junit_schema().validate(str(tmp_path / "small" / "junit.xml"))  # Jenkins' junit-10.xsd
    suites = list(JUnitXml.fromfile(str(tmp_path / "small" / "junit.xml")))
    cases = list(suites[0])
    assert suites[0].tests == 2 and suites[0].failures == 1 and len(cases) == 2
    failure = cases[0].result[0]
    assert isinstance(failure, Failure) and f"{dropped} <= 0" in failure.message
    assert cases[1].is_passed
    exported = (tmp_path / "small" / "metrics.prom").read_text()
    assert (
        f'loadstack_dropped_iterations_total{{profile="small",run_id="small",scenario="ProbeUser"}} {dropped}.0'
        in exported
    )


@pytest.mark.parametrize("workers", [1, 3])
def test_iteration_budget_is_exact_across_workers(tmp_path: Path, demo: str, workers: int) -> None:
    out, doc = run(
        tmp_path, f"budget{workers}", demo, workers,
        users=12, run_time="60s", iterations=300, user_classes={"ProbeUser": 1},
        wait_time={"min": 0, "max": 0.02},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert doc["end_reason"] == "iterations completed"
    assert doc["duration_s"] < 60, "the run stops once the budget is used up, not at its run time"
    assert doc["totals"]["count"] == 300  # one request per iteration: not 299, not 301
    assert doc["workload"]["budgets"]["run"] == {"budget": 300, "completed": 300}
    assert doc["workload"]["scenarios"]["ProbeUser"]["finished"] == 300


def write_accounts(path: Path, n: int) -> str:
    tag = uuid.uuid4().hex[:8]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "password"])
        for i in range(n):
            writer.writerow([f"feed-{tag}-{i}@example.test", f"password-{i:04d}"])
    return tag


def test_unique_feeder_never_gives_a_row_to_two_users(tmp_path: Path, demo: str) -> None:
    accounts = tmp_path / "accounts.csv"
    write_accounts(accounts, 500)
    out, doc = run(
        tmp_path, "unique", demo, 3,
        users=60, run_time="60s", user_classes={"AccountUser": 1},
        data={"accounts": {"csv": str(accounts), "mode": "unique"}},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert doc["end_reason"] == "data exhausted: accounts"
    assert doc["duration_s"] < 60, "the run stops once the data is used up, not at its run time"
    register = doc["requests"][0]
    # Every row registered its account once: a row used twice would be a 409 failure.
    assert (register["name"], register["count"], register["failures"]) == ("/api/v1/auth/register", 500, 0)
    assert doc["workload"]["data"]["accounts"] == {
        "rows": 500,
        "mode": "unique",
        "handed_out": 500,
        "rounds": 1,
    }


def test_sql_feeder_reads_rows_from_postgres(tmp_path: Path, demo: str) -> None:
    table = f"wl_feed_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(DEFAULT_POSTGRES_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (email text, password text)")
            cur.executemany(
                f"INSERT INTO {table} VALUES (%s, %s)",
                [(f"{table}-{i}@example.test", f"password-{i:04d}") for i in range(80)],
            )
        out, doc = run(
            tmp_path, "sqlfeed", demo, 2,
            users=8, run_time="60s", user_classes={"AccountUser": 1},
            data={"accounts": {"sql": f"SELECT email, password FROM {table} ORDER BY email", "mode": "unique"}},
        )  # fmt: skip
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        conn.close()
    assert out.returncode == 0, out.stdout + out.stderr
    assert doc["end_reason"] == "data exhausted: accounts"
    assert (doc["totals"]["count"], doc["totals"]["failures"]) == (80, 0)


def test_sql_feeder_with_a_bad_query_is_bad_input(tmp_path: Path, demo: str) -> None:
    profile = write_profile(
        tmp_path / "badsql.yml", locustfile=WORKLOAD_USERS, user_classes={"AccountUser": 1},
        data={"accounts": {"sql": "SELECT * FROM no_such_table_here"}}, seed={"customers": 3},
    )  # fmt: skip
    out = loadstack(
        "run", "--profile", str(profile), "--run-id", "badsql", "--results-dir", str(tmp_path),
        "--host", demo, "--workers", "1", "--no-metrics",
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert "data.accounts.sql" in out.stdout + out.stderr and "no_such_table_here" in out.stdout + out.stderr
    # Refused before anything was seeded or written: bad input leaves nothing on the target.
    assert "seed:" not in out.stdout + out.stderr
    written = {p.name for p in (tmp_path / "badsql").iterdir()}
    assert written <= {"logs"}, f"only the processes' logs, no results: {written}"


@pytest.fixture(scope="module")
def spiky_demo() -> Any:
    """The demo platform answering /api/status 600 ms late (SpikeUser calls it in its slow window)."""
    with demo_platform({"LOADSTACK_DEMO_SLOW": "/api/status=600"}) as url:
        yield url


SUSTAINED = {"target": {"name": "probe"}, "p95_ms_max": 300, "for": "10s", "abort_on_breach": True}


def test_sustained_gate_ignores_a_short_spike(tmp_path: Path, spiky_demo: str) -> None:
    out, doc = run(
        tmp_path, "spike", spiky_demo, 2,
        users=5, run_time="20s", user_classes={"SpikeUser": 1}, thresholds=[SUSTAINED],
        env={"LOADSTACK_TEST_SLOW_FROM": "6", "LOADSTACK_TEST_SLOW_UNTIL": "8"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    gate = doc["gates"][0]
    # Breached for the spike's seconds, never for the gate's 10 s (a busy machine may add a second).
    assert gate["status"] == "pass" and 1 <= gate["sustained_s"] < 10, gate
    assert doc["sustained"]["0:p95_ms_max"]["longest_s"] == gate["sustained_s"]
    assert doc["end_reason"] == "completed"
    assert doc["totals"]["max_ms"] >= 600  # the spike happened


def test_sustained_gate_fires_on_a_lasting_breach(tmp_path: Path, spiky_demo: str) -> None:
    out, doc = run(
        tmp_path, "breach", spiky_demo, 2,
        users=5, run_time="45s", user_classes={"SpikeUser": 1}, thresholds=[SUSTAINED],
        env={"LOADSTACK_TEST_SLOW_FROM": "5", "LOADSTACK_TEST_SLOW_UNTIL": "20"},
    )  # fmt: skip
    assert out.returncode == 3, out.stdout + out.stderr
    assert doc["end_reason"] == "aborted: SLO breach name=probe p95_ms_max"
    assert doc["duration_s"] < 45  # stopped once the window was full, not at the run's end
    gate = doc["gates"][0]
    assert gate["status"] == "fail" and gate["sustained_s"] >= 10 and gate["actual"] >= 600, gate
    junit = (tmp_path / "breach" / "junit.xml").read_text()
    assert "<failure" in junit and f"p95_ms_max: {gate['actual']:.4g} ms" in junit
