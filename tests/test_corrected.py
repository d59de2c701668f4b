"""Latency from the intended start (coordinated omission): real open-model runs, and exact merges.

A 2 s stall of the demo platform holds every user of a small pool: the iterations due during it
are dropped by the pacer, Locust's figures (timed from the actual start) barely move, and only
the corrected figures (``summary.json`` → ``corrected``) show the stall; a gate on them fails.
"""

from __future__ import annotations

import random
import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from loadstack import gates
from loadstack.processes import free_port
from loadstack.report import html
from loadstack.workload import intended
from loadstack_demo.process import demo_platform
from tests.helpers import LOCUSTFILES, ROOT, loadstack, scraping, summary, write_profile

USERS = str(ROOT / "tests" / "locustfiles" / "intended_users.py")
GATE = {"target": "total", "corrected": {"p99_ms_max": 500}}


def run(
    tmp_path: Path, host: str, workers: int, metrics_port: int | None = None, **fields: Any
) -> tuple[Any, dict[str, Any], str]:
    run_id = f"intended-{uuid.uuid4().hex[:8]}"
    profile = write_profile(tmp_path / f"{run_id}.yml", **{"locustfile": USERS, "spawn_rate": 100, **fields})
    out = loadstack(
        "run", "--profile", str(profile), "--run-id", run_id, "--results-dir", str(tmp_path),
        "--host", host, "--workers", str(workers), "--skip-teardown",
        *([] if metrics_port else ["--no-metrics"]),
        env={"LOADSTACK_METRICS_PORT": str(metrics_port)} if metrics_port else None,
    )  # fmt: skip
    assert (tmp_path / run_id / "summary.json").exists(), out.stdout + out.stderr
    return out, summary(tmp_path, run_id), run_id


@pytest.mark.slow
def test_a_stall_shows_in_the_corrected_p99_only_and_fails_its_gate(tmp_path: Path) -> None:
    with demo_platform({"LOADSTACK_DEMO_STALL": "8:2"}) as url:
        out, doc, run_id = run(tmp_path, url, 1, rate="20/s", max_users=4, run_time="30s", thresholds=[GATE])
    text = out.stdout + out.stderr
    assert out.returncode == 3, text
    corrected = doc["corrected"]["total"]
    service_p99 = corrected["service"]["p99_ms"]
    response_p99 = corrected["response"]["p99_ms"]
    locust_p99 = doc["totals"]["p99_ms"]
    print(f"stall: corrected p99 {response_p99} ms, service p99 {service_p99} ms, Locust p99 {locust_p99} ms")
    assert response_p99 >= 1500, doc["corrected"]
    # The histograms in summary.json are the figures' own (they survive the masker intact).
    assert abs(intended.percentile_ms([corrected], 0.99) - response_p99) < 0.001
    # The stall held 4 users: 4 of ~600 iterations, under 1 %: p99 from the actual start misses it.
    assert service_p99 * 3 < response_p99 and locust_p99 * 3 < response_p99, (service_p99, locust_p99)
    assert doc["dropped_iterations"] > 0  # the starts the stall swallowed ...
    assert corrected["count"] == corrected["service_count"] + doc["dropped_iterations"]  # ... all counted
    gate = doc["gates"][0]
    assert gate["metric"] == "corrected.p99_ms_max" and gate["status"] == "fail", gate
    assert gate["actual"] >= 1500
    assert "Latency from the intended start" in text and "corrected" in text
    props = {
        p.get("name"): p.get("value")
        for p in ET.parse(tmp_path / run_id / "junit.xml").getroot().iter("property")
    }
    assert float(props["corrected_p99_ms"]) >= 1500
    # The first request of each iteration that ran (a dropped iteration sent none).
    first = doc["corrected"]["first_requests"][0]
    assert (first["type"], first["name"]) == ("GET", "status")
    # (an iteration the run's end cut short may have sent none either)
    assert corrected["service_count"] - 4 <= first["count"] <= corrected["service_count"]
    assert first["response"]["max_ms"] >= 1500 and first["response"]["p50_ms"] >= first["service"]["p50_ms"]


CHAIN = """
name: status_chain
description: two reads, one chain run per iteration
steps:
  - name: status
    http: {method: GET, path: /api/status}
    expect: {status: 200}
  - name: health
    http: {method: GET, path: /health}
    expect: {status: 200}
"""


@pytest.mark.slow
def test_two_workers_corrected_count_is_the_iteration_count(tmp_path: Path) -> None:
    chain = tmp_path / "status_chain.yml"
    chain.write_text(CHAIN)
    port = free_port()
    with demo_platform() as url, scraping(f"http://127.0.0.1:{port}/metrics", every=1) as scraped:
        out, doc, _ = run(
            tmp_path, url, 2, port,
            locustfile=str(LOCUSTFILES / "chain_users.py"), user_classes={"ConfiguredChainUser": 1},
            chains=[{"path": str(chain)}], rate="20/s", max_users=20, run_time="8s",
        )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert doc["workers"] == 2
    scenario = doc["workload"]["scenarios"]["ConfiguredChainUser"]
    section = doc["corrected"]
    total = section["total"]
    # Every scheduled start of both workers, once: those that ran and those dropped.
    assert total["count"] == scenario["finished"] + scenario["dropped"] > 0, (total, scenario)
    assert section["user_classes"]["ConfiguredChainUser"]["count"] == total["count"]
    chain_row = next(r for r in doc["requests"] if r["type"] == "CHAIN")
    # The CHAIN entry: one per chain run Locust counted (the run's end may cut a few iterations short).
    assert section["chains"]["status_chain"]["service_count"] == chain_row["count"]
    assert scenario["finished"] - 20 <= chain_row["count"] <= scenario["finished"]
    firsts = {(r["type"], r["name"]): r for r in section["first_requests"]}
    assert list(firsts) == [("HTTP", "status_chain/status")], firsts  # the chain's first step only
    assert chain_row["count"] <= firsts[("HTTP", "status_chain/status")]["count"] <= scenario["finished"]
    for e in (total, section["chains"]["status_chain"]):
        assert e["response"]["p50_ms"] >= e["service"]["p50_ms"] > 0
    # The exporter shows both figures while the run goes on.
    gauges = [
        line
        for text in scraped
        for line in text.splitlines()
        if line.startswith("loadstack_corrected_latency_seconds{")
        and 'scope="chain"' in line
        and 'name="status_chain"' in line
        and 'quantile="0.99"' in line
    ]
    assert any('measure="response"' in g and float(g.rsplit(" ", 1)[1]) > 0 for g in gauges), scraped[-1:]
    assert any('measure="service"' in g for g in gauges)


def test_merged_worker_histograms_equal_the_histogram_of_the_union() -> None:
    rng = random.Random(23)
    workers = [intended.IntendedLatency(), intended.IntendedLatency()]
    union = intended.IntendedLatency()
    master = intended.IntendedLatency()
    key = ("user_class", "", "U")
    for _ in range(5000):
        service = rng.lognormvariate(3, 1)
        response = service + rng.choice([0.0, rng.uniform(0, 2000)])
        rng.choice(workers).record(key, service, response)
        union.record(key, service, response)
    for _ in range(3):  # several report rounds, as Locust's worker reports come
        for w in workers:
            master.merge(w.drain())
    union.merge(union.drain())
    got, want = master.merged[key], union.merged[key]
    assert got.count == want.count == 5000
    for measure in ("service", "response"):
        a, b = getattr(got, measure), getattr(want, measure)
        assert a.encode() == b.encode()
        assert [a.get_count_at_index(i) for i in range(a.counts_len)] == [
            b.get_count_at_index(i) for i in range(b.counts_len)
        ]
        assert intended.figures(a) == intended.figures(b)


def test_a_dropped_iteration_waits_until_a_user_is_free() -> None:
    latency = intended.IntendedLatency()
    latency.owe("U", [(None, 100.0), ("c", 100.5)])
    latency.settle("U", 102.0)
    latency.merge(latency.drain())
    pair = latency.merged[("user_class", "", "U")]
    assert pair.count == 2 and pair.service.get_total_count() == 0
    assert abs(pair.response.get_max_value() / 1000 - 2000) <= 2
    assert latency.merged[("chain", "CHAIN", "c")].count == 1


def test_corrected_gates_read_as_written_and_refuse_what_cannot_be() -> None:
    gate = gates.Gate.model_validate({"target": "total", "corrected": {"p99_ms_max": 500}})
    assert gate.thresholds() == {"corrected.p99_ms_max": 500}
    gate = gates.Gate.model_validate(
        {"target": {"chain": "c"}, "corrected": {"percentiles_ms_max": {"p99.9": 900}, "max_ms_max": 2000}}
    )
    assert gate.thresholds() == {"corrected.max_ms_max": 2000, "corrected.p99.9_ms_max": 900}
    for bad, says in (
        ({"target": "total", "corrected": {}}, "corrected: give at least one"),
        ({"target": "total", "corrected": {"p99_ms_max": -1}}, "greater than 0"),
        ({"target": "total", "corrected": {"p98_ms": 1}}, "Extra inputs"),
        ({"target": "total", "for": "10s", "corrected": {"p99_ms_max": 5}}, "without `for:`"),
    ):
        with pytest.raises(ValueError, match=re.escape(says)):
            gates.Gate.model_validate(bad)


def test_a_corrected_gate_on_a_closed_model_run_is_an_error_not_a_pass() -> None:
    gate = gates.Gate.model_validate({"target": "total", "corrected": {"p99_ms_max": 500}})
    closed = {"totals": {"count": 10, "failures": 0}, "requests": []}
    (result,) = gates.evaluate([gate], closed)
    assert result["status"] == "error" and "only open-model iterations" in result["message"]


def test_a_bad_corrected_gate_in_a_profile_is_exit_2_naming_its_line(tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path / "badcorrected.yml", rate="5/s", max_users=2,
        thresholds=[{"target": "total", "corrected": {"p99_ms_max": "soon"}}],
    )  # fmt: skip
    out = loadstack("profile", "validate", str(profile))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "badcorrected.yml:" in out.stderr + out.stdout and "Traceback" not in out.stderr
    assert "corrected" in out.stderr + out.stdout


def test_the_html_report_shows_both_figures() -> None:
    latency = intended.IntendedLatency()
    for ms in (5.0, 6.0, 7.0):
        latency.record(("user_class", "", "U"), ms, ms + 1000.0)
    latency.merge(latency.drain())
    summary_doc = {
        "run_id": "r1", "profile": "p", "start": "", "requests": [], "corrected": latency.section(),
        "totals": {"count": 3, "failures": 0, "failure_rate": 0.0, "rps": 1.0, "p50_ms": 6, "p95_ms": 7, "p99_ms": 7},
    }  # fmt: skip
    page = html.runs_report([summary_doc], {})
    assert "Latency from the intended start" in page and "class U" in page and "1007" in page
    lines = "\n".join(intended.format_table(summary_doc))
    assert "class U" in lines and "corrected" in lines and "service" in lines


@pytest.mark.parametrize("spec", ["8", "x:2", "8:-1", "8:nan", "1e9:2"])
def test_a_bad_stall_is_exit_2_without_a_traceback(spec: str) -> None:
    out = loadstack("demo", "serve", "--port", str(free_port()), "--stall", spec, timeout=60)
    assert out.returncode == 2 and "--stall" in out.stderr and "Traceback" not in out.stderr, out.stderr
    out = loadstack(
        "demo", "serve", "--port", str(free_port()), env={"LOADSTACK_DEMO_STALL": spec}, timeout=60
    )
    assert out.returncode == 2 and "LOADSTACK_DEMO_STALL" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_a_pool_stuck_for_long_keeps_a_bounded_debt() -> None:
    latency = intended.IntendedLatency()
    latency.owe("U", [(None, 0.0)] * (intended.MAX_OWED + 1))
    assert not latency._owed.get("U")  # settled at once, as waiting until now
    latency.merge(latency.drain())
    assert latency.merged[("user_class", "", "U")].count == intended.MAX_OWED + 1
