"""The workload model's arithmetic and schemas, without Locust: rates, schedules, pacing, plans, gates."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import loadstack.runcontext  # before loadstack.profiles: the two import each other
from loadstack import gates, junit, profiles
from loadstack.workload.pacing import GRACE_S, Arrivals, Pacer
from loadstack.workload.rates import Schedule, parse_rate
from tests.helpers import LOCUSTFILES, junit_schema, loadstack, write_profile


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("10/s", 10.0), ("600/m", 10.0), ("600/min", 10.0), ("36000/h", 10.0), ("2.5", 2.5), (7, 7.0)],
)
def test_rates_as_written(text: object, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["10/d", "fast", "", "-3/s", True])
def test_bad_rates_say_how_to_write_one(text: object) -> None:
    with pytest.raises(ValueError, match="10/s"):
        parse_rate(text)


def test_schedule_counts_and_inverts_holds_and_ramps() -> None:
    s = Schedule.stages([(10, 5, False), (10, 25, True), (10, 25, False)])
    assert s.count(10) == pytest.approx(50)
    assert s.count(20) == pytest.approx(50 + 150)  # ramp 5 -> 25 over 10 s
    assert s.count(30) == pytest.approx(450) == s.total
    assert s.rate_at(15) == pytest.approx(15)
    for n in (1, 49.5, 50, 120, 449):
        assert s.count(s.time_of(n)) == pytest.approx(n)
    assert math.isinf(s.time_of(451))
    steps = Schedule.steps(10, 10, 30, 35)
    assert [seg.r0 for seg in steps.segments] == [10, 20, 30]
    assert steps.duration == 90


def _simulate(pacers: list[Pacer], start: float, end: float, users: int) -> tuple[list[float], int]:
    """Claim every start as soon as it is due (idle users); returns start times and drops."""
    starts: list[float] = []
    drops = 0
    t = start
    while t < end:
        for p in pacers:
            drops += sum(p.update(users, t).values())
            while True:
                claim = p.claim(t)
                if claim is None or claim[0] > t:
                    if claim is not None:  # put it back: not due yet (a user would sleep until then)
                        lane = next(a for a in p.lanes if a.name == claim[1])
                        lane.next_j -= 1
                    break
                starts.append(claim[0])
        t += 0.01
    return starts, drops


def test_pacing_splits_a_rate_between_processes_by_their_users() -> None:
    rate = Schedule.constant(20)
    # Two workers with 10 users each of a pool of 20: each starts half of the iterations.
    a = Pacer([Arrivals("c", rate, phase=0.5)], pool=20)
    b = Pacer([Arrivals("c", rate, phase=0.0)], pool=20)
    starts, drops = _simulate([a, b], 0.0, 10.0, users=10)
    assert drops == 0
    assert len(starts) == pytest.approx(200, abs=2)
    per_second = [sum(1 for s in starts if i <= s < i + 1) for i in range(1, 9)]
    assert all(19 <= n <= 21 for n in per_second), per_second


def test_starts_nobody_claims_are_dropped_not_made_up() -> None:
    p = Pacer([Arrivals("c", Schedule.constant(10), phase=0.5)], pool=10)
    p.update(10, 0.0)
    dropped = sum(p.update(10, 3.0).values())  # three seconds with every user busy
    assert dropped == pytest.approx(30 - 1, abs=1)  # the last one is still within the grace
    due, lane, _ = p.claim(3.0)
    assert lane == "c" and 3.0 - GRACE_S <= due <= 3.1


def test_share_change_moves_the_rate_without_a_burst() -> None:
    p = Pacer([Arrivals("c", Schedule.constant(10), phase=0.5)], pool=10)
    starts, _ = _simulate([p], 0.0, 2.0, users=5)  # half the pool here: 5/s
    assert len(starts) == pytest.approx(10, abs=1)
    more, drops = _simulate([p], 2.0, 4.0, users=10)  # the other worker left, its users came here: 10/s
    assert drops == 0
    assert len(more) == pytest.approx(20, abs=1)
    assert max(sum(1 for s in more if i / 4 <= s - 2.0 < (i + 1) / 4) for i in range(8)) <= 4  # no burst


def test_profile_schema_for_open_models(tmp_path: Path) -> None:
    path = write_profile(
        tmp_path / "open.yml",
        users=None,
        rate="10/s",
        max_users=8,
        stages=None,
    )
    run = profiles.resolve(str(path), env={})
    assert run.open and run.users == 8 and run.rate == 10
    path = write_profile(
        tmp_path / "stages.yml",
        max_users=8,
        run_time="30s",
        stages=[{"duration": "10s", "rate": "5/s"}, {"duration": "10s", "rate": "600/m", "ramp": True}],
    )
    run = profiles.resolve(str(path), env={})
    assert run.planned_duration == 20 and run.schedule().rate_at(15) == pytest.approx(7.5)
    path = write_profile(
        tmp_path / "classes.yml",
        users=3,
        user_classes={"OrderUser": {"rate": "2/s", "max_users": 4, "iterations": 50}, "AuthUser": 1},
    )
    run = profiles.resolve(str(path), env={})
    assert run.users == 3 + 4
    assert run.class_workloads["OrderUser"].iterations == 50
    assert run.user_classes == {"OrderUser": 1, "AuthUser": 1}


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"rate": "10/s", "users": None}, "", "needs max_users"),
        ({"rate": "ten"}, "rate", "use e.g. 10/s"),
        ({"max_users": 5}, "", "give rate"),
        ({"stages": [{"duration": "5s", "rate": "5/s", "users": 2}]}, "stages[0]", "not both"),
        ({"user_classes": {"OrderUser": {"rate": "1/s"}}}, "user_classes.OrderUser", "needs max_users"),
        ({"data": {"accounts": {"csv": "a.csv", "sql": "SELECT 1"}}}, "data.accounts", "exactly one"),
        ({"data": {"accounts": {"csv": "a.csv", "mode": "once"}}}, "data.accounts.mode", "unique"),
        ({"iterations": 0}, "iterations", "greater than or equal to 1"),
    ],
)
def test_bad_workload_fields_exit_2_with_file_line_and_field(
    tmp_path: Path, fields: dict, field: str, fragment: str
) -> None:
    path = write_profile(tmp_path / "bad.yml", **fields)
    out = loadstack("profile", "validate", str(path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{path}:" in out.stderr and fragment in out.stderr, out.stderr
    if field:
        assert f": {field}: " in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_gate_schema_percentiles_sustained_and_dropped() -> None:
    gate = gates.Gate.model_validate(
        {"target": "total", "percentiles_ms_max": {"p75": 100, "p99.9": 900}, "for": "10s"},
        context={"file": True},
    )
    assert gate.sustained == 10
    assert gate.thresholds() == {"p75_ms_max": 100, "p99.9_ms_max": 900}
    with pytest.raises(ValueError, match=r"should match pattern"):
        gates.Gate.model_validate({"target": "total", "percentiles_ms_max": {"q75": 100}})
    again = gates.Gate.model_validate_json(gate.model_dump_json())  # as it crosses to the workers
    assert again.sustained == 10
    # Gates that could never fail are refused rather than passing silently.
    with pytest.raises(ValueError, match="requests are not iterations"):
        gates.Gate.model_validate({"target": {"name": "/a"}, "dropped_iterations_max": 0})
    with pytest.raises(ValueError, match="without `for:`"):
        gates.Gate.model_validate({"target": "total", "dropped_iterations_max": 0, "for": "10s"})


def test_sustained_windows_start_after_the_warmup() -> None:
    from loadstack import windows

    gate = gates.Gate.model_validate({"target": "total", "p95_ms_max": 100, "for": "3s"})
    stats = windows.SecondStats()
    stats.sync = lambda: None  # seconds are fed by hand below
    judge = windows.Sustained([gate], stats, warmup=5)
    judge.started = 1000.0
    slow = windows.Tally(count=10, failures=0, total_ms=5000)
    slow.histogram[500] = 10
    for second in range(1000, 1009):  # slow for 9 s: the 5 s of warm-up do not count
        stats.seconds[second] = {("GET", "/a", "U"): slow}
    judge.advance(1009)
    assert judge.streaks[(0, "p95_ms_max")].longest == 4
    assert not stats.seconds, "judged seconds are let go: a long run does not keep them all"


def test_per_second_counts_listen_to_requests_only_for_a_sustained_gate() -> None:
    from locust.env import Environment

    from loadstack import windows

    for enabled in (False, True):
        stats = windows.SecondStats()
        stats.enabled = enabled
        env = Environment()
        stats.attach(env, "local")
        assert (stats.observe in env.events.request._handlers) is enabled
        env.events.request.fire(
            request_type="GET", name="/a", response_time=5.0, response_length=1, context={}
        )
        assert len(stats._pending) == int(enabled)


def _summary() -> dict:
    hist = {"10": 50, "100": 40, "900": 10}
    row = {"type": "GET", "name": "/a", "count": 100, "failures": 0, "rps": 10, "avg_ms": 130}
    row |= {"p50_ms": 10, "p95_ms": 900, "p99_ms": 900, "histogram": hist}
    return {
        "profile": "demo",
        "run_id": "r1",
        "duration_s": 12.5,
        "start": "2026-01-01T00:00:00+00:00",
        "totals": {k: v for k, v in row.items() if k != "histogram"},
        "requests": [row],
        "dropped_iterations": 7,
        "workload": {"scenarios": {"U": {"user_class": "U", "dropped": 7}}},
        "sustained": {"2:p95_ms_max": {"longest_s": 12, "actual": 900.0, "from_s": 3}},
    }


def test_any_percentile_dropped_iterations_and_sustained_results() -> None:
    run_gates = [
        gates.Gate.model_validate({"target": "total", "percentiles_ms_max": {"p80": 50, "p50": 20}}),
        gates.Gate.model_validate({"target": {"user_class": "U"}, "dropped_iterations_max": 0}),
        gates.Gate.model_validate({"target": {"name": "/a"}, "p95_ms_max": 500, "for": "10s"}),
        gates.Gate.model_validate({"target": {"name": "/nothing"}, "p95_ms_max": 500}),
    ]
    summary = _summary()
    summary["user_classes"] = [{"user_class": "U", "count": 100, "failures": 0, "histogram": {"10": 100}}]
    results = gates.evaluate(run_gates, summary)
    by = {(r["gate"], r["metric"]): r for r in results}
    assert by[(0, "p80_ms_max")]["actual"] == 100 and by[(0, "p80_ms_max")]["status"] == "fail"
    assert by[(0, "p50_ms_max")]["status"] == "pass"
    assert (
        by[(1, "dropped_iterations_max")]["actual"] == 7
        and by[(1, "dropped_iterations_max")]["status"] == "fail"
    )
    sustained = by[(2, "p95_ms_max")]
    assert sustained["status"] == "fail" and sustained["sustained_s"] == 12 and sustained["actual"] == 900
    assert "for 12s" in gates.describe(sustained)
    summary["sustained"]["2:p95_ms_max"]["longest_s"] = 2  # a spike: shorter than the window
    assert gates.evaluate(run_gates, summary)[3]["status"] == "pass"

    summary["gates"] = results
    tree = junit.build(summary, run_gates)
    root = tree.getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 4 and suite.get("tests") == "4"
    assert suite.get("failures") == "3" and suite.get("errors") == "1"
    failure = cases[1].find("failure")
    assert failure is not None and "dropped_iterations_max: 7 <= 0" in failure.get("message")
    assert cases[3].find("error") is not None
    ET.fromstring(ET.tostring(root))  # well-formed


def test_junit_file_reads_back_with_a_junit_parser(tmp_path: Path) -> None:
    """The file CI systems get parses with junitparser (pinned in the test extras) as the same results."""
    from junitparser import Error, Failure, JUnitXml

    run_gates = [
        gates.Gate.model_validate({"target": "total", "p95_ms_max": 100}),
        gates.Gate.model_validate({"target": "total", "success_rate_min": 0.5}),
    ]
    summary = _summary()
    summary["gates"] = gates.evaluate(run_gates, summary)
    junit.write(tmp_path / "junit.xml", summary, run_gates)
    junit_schema().validate(str(tmp_path / "junit.xml"))  # the schema Jenkins' xunit plugin checks
    suites = list(JUnitXml.fromfile(str(tmp_path / "junit.xml")))
    assert len(suites) == 1 and suites[0].tests == 2 and suites[0].failures == 1
    cases = list(suites[0])
    assert isinstance(cases[0].result[0], Failure) and "900 ms <= 100 ms" in cases[0].result[0].message
    assert cases[1].is_passed and not any(isinstance(r, Error) for r in cases[1].result)


def test_locustfile_for_these_tests_exists() -> None:
    assert (LOCUSTFILES.parent.parent / "tests" / "locustfiles" / "workload_users.py").is_file()


def test_a_feeder_larger_than_its_cap_is_an_error_not_a_shorter_feeder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loadstack.workload import feeders

    monkeypatch.setattr(feeders, "MAX_ROWS", 3)
    path = tmp_path / "rows.csv"
    path.write_text("id\n1\n2\n3\n")
    assert [r["id"] for r in feeders._csv("rows", path)] == ["1", "2", "3"]
    path.write_text("id\n1\n2\n3\n4\n")
    with pytest.raises(feeders.FeederError, match=r"data.rows.csv: .*more than 3 rows"):
        feeders._csv("rows", path)


def test_exported_iteration_counters_never_go_down_at_the_end_of_the_warmup() -> None:
    from loadstack.workload.counters import IterationCounters

    counters = IterationCounters()
    counters.merge({"totals": {"U": {"started": 5, "dropped": 2}}})
    counters.reset()  # the warm-up is over: the summary counts from here
    counters.merge({"totals": {"U": {"started": 3}}})
    assert counters.totals["U"] == {"started": 3}
    assert counters.lifetime["U"] == {"started": 8, "dropped": 2}


def test_csv_feeder_files_that_are_not_usable_are_named(tmp_path: Path) -> None:
    from loadstack.workload import feeders

    ragged = tmp_path / "ragged.csv"
    ragged.write_text("id,name\n1,a\n2\n")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"id,name\n1,caf\xe9\n")
    cases = [
        (ragged, r"ragged.csv:3: 1 fields where the header has 2"),
        (latin, r"not UTF-8 text \(byte offset 13"),
        (Path("/dev/zero"), r"not a regular file"),  # would otherwise be read until memory runs out
        (tmp_path / "missing.csv", r"file not found"),
    ]
    for path, message in cases:
        with pytest.raises(feeders.FeederError, match=message):
            feeders._csv("rows", path)


def test_sql_feeder_reads_and_changes_nothing_within_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the real PostgreSQL: a feeder's query is read-only and timed."""
    import psycopg2

    from loadstack.workload import feeders

    conn = psycopg2.connect("postgresql://127.0.0.1:5432/test")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS feeder_probe (id int)")
            cur.execute("DELETE FROM feeder_probe")
            cur.execute("INSERT INTO feeder_probe VALUES (1), (2)")
        assert feeders._sql("p", "SELECT id FROM feeder_probe ORDER BY id") == [{"id": 1}, {"id": 2}]
        with pytest.raises(feeders.FeederError, match="reads rows with a SELECT"):
            feeders._sql("p", "DELETE FROM feeder_probe")
        with pytest.raises(feeders.FeederError, match="read-only transaction"):
            feeders._sql("p", "SELECT 1; DELETE FROM feeder_probe")
        monkeypatch.setattr(feeders, "SQL_TIMEOUT_S", 1)
        with pytest.raises(feeders.FeederError, match="statement timeout"):
            feeders._sql("p", "SELECT pg_sleep(5)")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM feeder_probe")
            assert cur.fetchone() == (2,), "the feeder changed nothing"
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS feeder_probe")
        conn.close()


def test_junit_file_stays_readable_with_control_characters_in_names(tmp_path: Path) -> None:
    run_gates = [gates.Gate.model_validate({"target": {"name": "/a\x01b\x1b[31m"}, "p95_ms_max": 100})]
    summary = _summary()
    summary["host"] = "http://127.0.0.1\x07"
    summary["gates"] = gates.evaluate(run_gates, summary)
    junit.write(tmp_path / "junit.xml", summary, run_gates)
    junit_schema().validate(str(tmp_path / "junit.xml"))
    text = (tmp_path / "junit.xml").read_text()
    assert "\x01" not in text and "\\x01" in text and "\\x07" in text


def test_breakpoints_climb_in_a_bounded_number_of_steps() -> None:
    base = {"step_duration": "1s", "stop_when": {"error_rate_max": 0.1}}
    with pytest.raises(ValueError, match="1,000,000,000,000 steps; at most 10,000"):
        profiles.Breakpoint.model_validate({**base, "start_rate": 1e-6, "step_rate": 1e-6, "max_rate": 1e6})
    with pytest.raises(ValueError, match="max_rate is below start_rate"):
        profiles.Breakpoint.model_validate({**base, "start_rate": 10, "step_rate": 1, "max_rate": 5})
    with pytest.raises(ValueError, match="max_users is below start_users"):
        profiles.Breakpoint.model_validate(
            {**base, "start_users": 10, "step_users": 1, "max_users": 5, "spawn_rate": 1}
        )
    ok = profiles.Breakpoint.model_validate({**base, "start_rate": 10, "step_rate": 10, "max_rate": 300})
    assert ok.steps == 30


def test_permits_and_rows_granted_after_a_timed_out_ask_are_kept() -> None:
    """A master slow to answer must not lose permits or rows: a late reply still lands."""
    from types import SimpleNamespace

    from loadstack.workload import budgets, feeders
    from loadstack.workload.channel import REPLY, Client

    class Channel:  # Locust's register_message/send_message, with the master's replies held back
        def __init__(self) -> None:
            self.handlers: dict[str, Any] = {}
            self.sent: list[dict[str, Any]] = []

        def register_message(self, kind: str, handler: Any) -> None:
            self.handlers[kind] = handler

        def send_message(self, kind: str, data: dict[str, Any], client_id: str | None = None) -> None:
            self.sent.append(data)

        def reply(self, request_id: int, reply: dict[str, Any]) -> None:
            self.handlers[REPLY](None, SimpleNamespace(data={"id": request_id, "reply": reply}))

    channel = Channel()
    client = Client(SimpleNamespace(runner=channel))
    permits = budgets.Permits(client, ["run"])
    rows = feeders.Feeders(client, {"accounts": None})  # type: ignore[dict-item]
    with pytest.raises(TimeoutError):
        client.ask(budgets.KIND_TAKE, {"scope": "run"}, timeout=0.01)
    with pytest.raises(TimeoutError):
        client.ask(feeders.KIND_LEASE, {"feeder": "accounts"}, timeout=0.01)
    first, second = (m["id"] for m in channel.sent)
    channel.reply(first, {"granted": 3, "exhausted": False, "scope": "run"})
    channel.reply(second, {"rows": [[7, {"id": "a7"}]], "exhausted": False, "feeder": "accounts"})
    assert permits.stock["run"].permits == 3
    assert list(rows.stock["accounts"].rows) == [(7, {"id": "a7"})]
    channel.reply(first, {"granted": 3, "exhausted": False, "scope": "run"})  # a duplicate is ignored
    assert permits.stock["run"].permits == 3
