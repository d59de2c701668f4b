"""Generator health: a run knows when the load generator, not the system, was the bottleneck.

The runs are real (demo platform, Locust master and worker, CPU-bound hog processes pinned to the
worker's core); the exit-status and compare rules are also pinned on summaries built here.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadstack import exitcodes, generator_health, master
from loadstack.report import compare, history
from tests.helpers import (
    LOCUSTFILES,
    assert_no_orphans,
    loadstack,
    processes_with_env,
    start_loadstack,
    summary,
    write_profile,
)
from tests.shards import hogging_the_cpu, needing_a_calm_cpu

HOGS = 3  # CPU-bound processes on the worker's core, beside a worker at lower priority
WORKER_NICE = 19
HOG_LIMIT_S = 240  # a hog ends by itself even if the test is killed


# -- the rules, on summaries built here ------------------------------------------------------------
def _summary(saturated: bool, *, failures: int = 0, gate: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "run_id": "r",
        "totals": {"count": 100, "failures": failures},
        "exceptions": {"count": 0, "kinds": []},
        "generator": {"saturated": saturated, "overall": {}},
    }
    if gate:
        doc["gates"] = [{"status": gate}]
        doc["verdict"] = gate
    return doc


def test_saturation_exit_status_yields_to_facts_about_the_system() -> None:
    assert master.exit_code_for(_summary(False)) == exitcodes.OK
    assert master.exit_code_for(_summary(True)) == exitcodes.GENERATOR_SATURATED == 7
    assert history.verdict_of(_summary(True)) == "generator saturated"
    assert master.exit_code_for(_summary(True, gate="pass")) == exitcodes.GENERATOR_SATURATED
    assert master.exit_code_for(_summary(True, gate="fail")) == exitcodes.GATE_FAILED
    assert master.exit_code_for(_summary(True, failures=3)) == exitcodes.FAILURES
    left = {**_summary(True), "teardown": {"left": {"redis": "refused"}}}
    assert master.exit_code_for(left) == exitcodes.TEARDOWN_FAILED


def test_warn_mode_reports_saturation_but_keeps_the_exit_status() -> None:
    warned = _summary(True)
    warned["generator"] |= {"on_saturation": "warn", "reason": "worker w: lag"}
    assert master.exit_code_for(warned) == exitcodes.OK and history.verdict_of(warned) == "pass"
    line = generator_health.report_line(warned)
    assert (
        line is not None and line.startswith("GENERATOR SATURATED") and "=warn: not the exit status" in line
    )
    assert master.exit_code_for({**warned, "totals": {"count": 100, "failures": 2}}) == exitcodes.FAILURES


def test_a_window_is_weighted_by_its_length_and_judged_on_cpu_or_lag() -> None:
    health = generator_health.ProcessHealth("worker")
    health.add(1.0, 0.2, [1.0] * 10)  # healthy second
    health.add(3.0, 0.1, [2900.0])  # one wake-up, three seconds late: three saturated seconds
    health.add(1.0, 0.95, [1.0] * 10)  # a busy second
    figures = health.as_dict()
    assert figures["saturated_s"] == {"cpu": 1.0, "lag": 3.0}
    assert figures["saturated_share"] == 0.8 and figures["saturated"]
    assert figures["lag_ms"]["max"] == 2900.0 and figures["lag_ms"]["p50"] == 1.0
    assert not generator_health.ProcessHealth("master").as_dict()["saturated"]


def test_one_late_second_is_a_hiccup_not_a_saturated_generator() -> None:
    short = generator_health.ProcessHealth("worker")
    short.add(1.0, 0.5, [250.0, 3.0, 2.0])  # a 1-second run whose only window had a 250 ms stall
    assert short.as_dict()["saturated_share"] == 1.0 and not short.as_dict()["saturated"]
    short.add(1.0, 0.5, [250.0])  # two seconds late of two: the generator was the bottleneck
    assert short.as_dict()["saturated"]


def _row() -> dict[str, Any]:
    histogram = {"5": 900, "10": 100}
    return {"type": "GET", "name": "/x", "count": 1000, "failures": 0, "failure_rate": 0.0, "rps": 10.0,
            "p50_ms": 5, "p95_ms": 10, "p99_ms": 10, "histogram": histogram}  # fmt: skip


def test_compare_calls_nothing_when_a_generator_was_saturated() -> None:
    base = {"run_id": "base", "requests": [_row()]}
    slow_row = {**_row(), "p95_ms": 60, "histogram": {"5": 800, "60": 200}}
    current = {"run_id": "now", "requests": [slow_row]}
    assert compare.compare(base, current).regressions, "a regression when both generators kept up"
    current["generator"] = {"saturated": True, "reason": "worker w: lag"}
    result = compare.compare(base, current)
    assert not result.regressions
    assert result.inconclusive.startswith(
        "inconclusive: the generator was the bottleneck in the current run now"
    )
    table = compare.format_table(result)
    assert "inconclusive: the generator was the bottleneck" in table and "REGRESSION" not in table
    assert result.as_dict()["inconclusive"] == result.inconclusive


# -- real runs ---------------------------------------------------------------------------------------
def _profile(path: Path) -> Path:
    return write_profile(
        path,
        locustfile=str(LOCUSTFILES / "http_users.py"),
        user_classes={"AuthUser": 1},
        users=3,
        run_time="16s",
        warmup="4s",
        wait_time={"min": 0.05, "max": 0.15},
    )


@pytest.fixture(scope="module")
def quiet_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, subprocess.CompletedProcess[str]]:
    results = tmp_path_factory.mktemp("generator")
    run_id = f"gen-quiet-{os.getpid()}"
    with needing_a_calm_cpu():
        out = loadstack(
            "run", "--profile", str(_profile(results / "gen.yml")), "--workers", "1",
            "--run-id", run_id, "--results-dir", str(results),
        )  # fmt: skip
    return results, run_id, out


@pytest.mark.slow
def test_a_quiet_run_is_not_marked(quiet_run: tuple[Path, str, subprocess.CompletedProcess[str]]) -> None:
    results, run_id, out = quiet_run
    assert out.returncode == 0, out.stdout + out.stderr
    block = summary(results, run_id)["generator"]
    assert block["saturated"] is False, block
    assert block["on_saturation"] == "warn"  # the suite's setting (tests/conftest.py) reached the master
    workers = [p for p in block["processes"].values() if p["role"] == "worker"]
    assert len(workers) == 1 and workers[0]["wakeups"] > 0 and workers[0]["measured_s"] > 5
    assert "master" in block["processes"]
    assert "generator healthy: loop lag p50" in out.stdout
    prom = (results / run_id / "metrics.prom").read_text()
    assert 'loadstack_generator_loop_lag_seconds{process="worker ' in prom
    assert "loadstack_generator_cpu_share{" in prom


@contextlib.contextmanager
def _hogs(core: int, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    code = (
        "import os, time\n"
        f"os.sched_setaffinity(0, {{{core}}})\n"
        f"end = time.monotonic() + {HOG_LIMIT_S}\n"
        "while time.monotonic() < end:\n    pass\n"
    )
    with hogging_the_cpu():
        procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]
        try:
            yield procs
        finally:
            for proc in procs:
                proc.kill()
                proc.wait(timeout=30)


def _pin(pid: int, core: int, nice: int) -> None:
    """Every thread of the process on one core, at lower priority than the hogs.

    The launcher starts each process in its own session, and with autogroup scheduling
    (``kernel.sched_autogroup_enabled``) a session's processes share one scheduling group whose
    weight only the group's own nice value changes: the worker's group gets the nice value too.
    """
    autogroup = Path(f"/proc/{pid}/autogroup")
    if autogroup.exists():
        autogroup.write_text(str(nice))
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(task.name), {core})
            os.setpriority(os.PRIO_PROCESS, int(task.name), nice)


def _started_worker(results: Path, run_id: str, proc: subprocess.Popen[str], limit_s: float = 240) -> int:
    """The worker's pid once its users run (the warm-up has begun).

    Starved earlier, it would take minutes to start and its blocked loop would miss Locust's
    heartbeats (the master marks it missing after 3 s).
    """
    log = results / run_id / "logs" / "master.log"
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "All users spawned" not in text and "Spawning is complete" not in text:  # Locust's two wordings
            time.sleep(0.05)
            continue
        for pid in processes_with_env("LOADSTACK_RUN_ID", run_id):
            with contextlib.suppress(OSError):
                if b"--worker" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                    return pid
        time.sleep(0.05)
    raise AssertionError(f"no worker process of run {run_id} appeared")


@pytest.mark.slow
def test_a_worker_starved_of_cpu_marks_the_run_and_compare_is_inconclusive(
    quiet_run: tuple[Path, str, subprocess.CompletedProcess[str]],
) -> None:
    results, quiet_id, _ = quiet_run
    run_id = f"gen-hogged-{os.getpid()}"
    core = max(os.sched_getaffinity(0))
    with _hogs(core, HOGS):
        proc = start_loadstack(
            "run", "--profile", str(results / "gen.yml"), "--workers", "1",
            "--run-id", run_id, "--results-dir", str(results),
            env={"LOADSTACK_GENERATOR_SATURATED": "fail"},  # the default, which the suite turns off
        )  # fmt: skip
        try:
            _pin(_started_worker(results, run_id, proc), core, WORKER_NICE)  # within the 4 s warm-up
            out, _ = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    doc = summary(results, run_id)
    block = doc["generator"]
    assert block["saturated"] is True, out
    # The master may be marked too: beside the hogs and another busy shard it shares the other core.
    (worker,) = [name for name in block["saturated_processes"] if name.startswith("worker ")]
    # Marked for more than a quarter of its seconds: the product compares the unrounded share, the
    # summary shows it to 3 places (0.2503 reads 0.25).
    assert block["processes"][worker]["saturated_share"] >= block["thresholds"]["saturated_share"], block
    # Exit 7 is the verdict of a run that would otherwise pass. Starved for seconds on a machine
    # that is busy besides, a request can time out: a failed request is a fact and wins (exit 1).
    if doc["totals"]["failures"]:
        assert doc["outcome"] == {"verdict": "failures", "exit_code": exitcodes.FAILURES}, out
    else:
        assert doc["outcome"] == {"verdict": "generator saturated", "exit_code": 7}, out
    assert proc.returncode == doc["outcome"]["exit_code"], out
    assert "GENERATOR SATURATED" in out and "loop lag p99 above 100 ms" in out
    assert_no_orphans(run_id)

    compared = loadstack("compare", run_id, "--baseline", quiet_id, "--results-dir", str(results))
    assert compared.returncode == exitcodes.GENERATOR_SATURATED, compared.stdout + compared.stderr
    assert f"inconclusive: the generator was the bottleneck in the current run {run_id}" in compared.stdout
    assert "REGRESSION" not in compared.stdout
    page = (results / run_id / f"compare-{quiet_id}.html").read_text()
    assert "inconclusive: the generator was the bottleneck" in page

    report = loadstack("report", quiet_id, run_id, "--results-dir", str(results))
    assert report.returncode == 0, report.stdout + report.stderr
    html = (results / "report.html").read_text()
    assert "GENERATOR SATURATED: the load generator, not the system under test" in html
    assert "generator healthy: loop lag p50" in html


def test_compare_refuses_a_wrongly_typed_generator_block(tmp_path: Path) -> None:
    """A hand-edited ``generator`` is exit 2 naming the field, never a traceback or a guess."""
    for run_id, saturated in (("base", False), ("now", "yes")):
        (tmp_path / run_id).mkdir()
        doc = {
            "run_id": run_id, "profile": "p",
            "totals": {k: v for k, v in _row().items() if k not in ("type", "name", "histogram")},
            "requests": [_row()],
            "generator": {"saturated": saturated, "overall": {"lag_ms": {"p50": 1, "p99": 2, "max": 3},
                                                              "cpu_share": 0.1, "cpu_share_max": 0.2}},
        }  # fmt: skip
        (tmp_path / run_id / "summary.json").write_text(json.dumps(doc))
    out = loadstack("compare", "now", "--baseline", "base", "--results-dir", str(tmp_path))
    assert out.returncode == exitcodes.BAD_INPUT, out.stdout + out.stderr
    assert "generator.saturated" in out.stderr and "Traceback" not in out.stderr
