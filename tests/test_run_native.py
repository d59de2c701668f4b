"""End-to-end native runs: real demo platform, real Locust master and workers."""

from __future__ import annotations

import csv
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import (
    assert_no_orphans,
    loadstack,
    rows_by_name,
    start_loadstack,
    summary,
    write_profile,
)

pytestmark = pytest.mark.slow

HTTP_ENDPOINTS = {
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/orders"),
    ("GET", "/api/v1/orders"),
    ("POST", "/api/v1/payments"),
    ("GET", "/api/v1/payments"),
    ("GET", "/api/oscilloscope/snapshot"),
}
WS_STEPS = {"stream/connect", "stream/start", "stream/receive", "stream/configure", "stream/stop"}


def test_smoke_run_master_and_two_workers(tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path / "smoke-fast.yml",
        users=5,
        spawn_rate=5,
        run_time="15s",
        wait_time={"min": 0.1, "max": 0.4},
        user_classes={
            "AuthUser": 1,
            "OrderUser": 1,
            "PaymentUser": 1,
            "OscilloscopeUser": 1,
            "StreamUser": 1,
        },
    )
    run_id = "smoke-e2e"
    result = loadstack(
        "run", "--profile", str(profile), "--workers", "2", "--run-id", run_id, "--results-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / run_id
    doc = summary(tmp_path, run_id)
    rows = rows_by_name(doc)
    for key in HTTP_ENDPOINTS:
        assert key in rows and rows[key]["count"] > 0, f"{key} missing from summary: {sorted(rows)}"
    for step in WS_STEPS:
        assert rows[("WS", step)]["count"] > 0
    assert all(r["failures"] == 0 for r in doc["requests"]), doc["errors"]
    assert doc["totals"]["count"] == sum(r["count"] for r in doc["requests"])
    assert doc["workers"] == 2
    assert doc["profile"] == "smoke-fast" and doc["run_id"] == run_id
    assert {"loadstack", "locust"} <= set(doc["versions"])
    for row in doc["requests"]:
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= max(row["max_ms"], row["p99_ms"])
        assert sum(row["histogram"].values()) == row["count"]
    for name in (
        "results_stats.csv",
        "results_stats_history.csv",
        "results_failures.csv",
        "results_exceptions.csv",
    ):
        assert (run_dir / name).is_file(), name
    assert "<html" in (run_dir / "report.html").read_text()[:2000].lower()
    assert (run_dir / "run-metadata.json").is_file()
    latest = tmp_path / "latest"
    assert latest.is_symlink() and latest.resolve() == run_dir.resolve()
    assert "stream/receive" in result.stdout and "users=5" in result.stdout, (
        "progress and summary table shown"
    )
    assert_no_orphans(run_id)


def test_stage_profile_users_follow_stages(tmp_path: Path) -> None:
    stages = [
        {"duration": "6s", "users": 2, "spawn_rate": 10},
        {"duration": "6s", "users": 6, "spawn_rate": 10},
        {"duration": "6s", "users": 3, "spawn_rate": 10},
    ]
    profile = write_profile(
        tmp_path / "staged.yml",
        users=6,
        run_time="60s",
        stages=stages,
        user_classes={"OscilloscopeUser": 1},
        wait_time={"min": 0.2, "max": 0.5},
    )
    run_id = "stages-e2e"
    result = loadstack(
        "run", "--profile", str(profile), "--workers", "2", "--run-id", run_id, "--results-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp_path / run_id / "results_stats_history.csv") as fh:
        counts = [int(row["User Count"]) for row in csv.DictReader(fh) if row["Name"] == "Aggregated"]
    # Collapse consecutive duplicates: the run must go 2 -> 6 -> 3 (ramp values in between are fine).
    plateaus = [c for i, c in enumerate(counts) if i == 0 or c != counts[i - 1]]
    assert 6 in plateaus and max(counts) == 6, counts
    i6 = plateaus.index(6)
    assert 2 in plateaus[:i6], counts
    assert 3 in plateaus[i6:], counts
    assert counts.count(6) >= 4, f"6 users held for most of the middle stage: {counts}"
    doc = summary(tmp_path, run_id)
    assert doc["end_reason"] == "shape completed"
    assert doc["duration_s"] >= 16  # the three stages ran; a busy machine only adds to it
    assert_no_orphans(run_id)


def test_remote_host_refused_without_allow_remote(tmp_path: Path) -> None:
    result = loadstack(
        "run", "--profile", "smoke", "--host", "http://203.0.113.7:8080", "--results-dir", str(tmp_path)
    )
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr
    assert not any(tmp_path.iterdir()), "a refused run writes nothing"


def test_secrets_never_written_or_printed(tmp_path: Path) -> None:
    secrets = {
        "LOADSTACK_POSTGRES_DSN": "postgresql://loader:Pg-S3cret-991@127.0.0.1:5432/test",
        "LOADSTACK_API_TOKEN": "tok-7f3a9c2e5b1d",
        "LOADSTACK_OAUTH_CLIENT_SECRET": "cs-0a1b2c3d4e5f",
    }
    profile = write_profile(tmp_path / "secret.yml", run_time="4s", user_classes={"AuthUser": 1})
    run_id = "secrets-e2e"
    result = loadstack(
        "run", "--profile", str(profile), "--run-id", run_id, "--results-dir", str(tmp_path), env=secrets
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / run_id
    metadata = (run_dir / "run-metadata.json").read_text()
    for name in secrets:
        assert name in metadata, "the variable is recorded (masked), so masking is what keeps it out"
    values = ["Pg-S3cret-991", "tok-7f3a9c2e5b1d", "cs-0a1b2c3d4e5f"]
    written = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(written) >= 8
    for path in written:
        text = path.read_text(errors="replace")
        for value in values:
            assert value not in text, f"{value} leaked into {path}"
    for value in values:
        assert value not in result.stdout + result.stderr
    assert "postgresql://loader:***@127.0.0.1:5432/test" in metadata


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_run_writes_results_and_leaves_no_orphans(tmp_path: Path, sig: signal.Signals) -> None:
    profile = write_profile(
        tmp_path / "long.yml", users=4, run_time="120s", wait_time={"min": 0.1, "max": 0.3}
    )
    run_id = f"signal-{sig.name.lower()}"
    proc = start_loadstack(
        "run", "--profile", str(profile), "--workers", "2", "--run-id", run_id, "--results-dir", str(tmp_path),
        env={"LOADSTACK_PROGRESS_INTERVAL": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 240  # readiness, however slow the machine
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "requests=" in line and "requests=0 " not in line:
            break
        assert time.monotonic() < deadline, "".join(seen)
    time.sleep(2)
    proc.send_signal(sig)
    output = "".join(seen) + proc.stdout.read()
    code = proc.wait(60)
    assert code == 130, output
    run_dir = tmp_path / run_id
    doc = summary(tmp_path, run_id)
    assert doc["totals"]["count"] > 0
    assert doc["end_reason"] == "interrupted"
    assert (run_dir / "report.html").is_file() and (run_dir / "results_stats.csv").is_file()
    assert_no_orphans(run_id)
