"""The Prometheus exporter, the Prometheus/Alloy/Grafana configuration and the dashboard, proven on real runs."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from loadstack.processes import free_port
from tests import alloy_config
from tests.helpers import ROOT, loadstack, scraping, summary, write_profile

DASHBOARD = ROOT / "infra" / "grafana" / "dashboards" / "load-testing.json"
BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def tool(name: str) -> str:
    """A Prometheus binary: PATH or Debian's location; CI installs the package (.ci/run)."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not found:
        pytest.fail(f"{name} not found: install Debian's `prometheus` package (apt-get install prometheus)")
    return found


@pytest.mark.slow
def test_master_histogram_is_the_exact_merge_of_worker_observations(tmp_path: Path) -> None:
    record_dir = tmp_path / "records"
    record_dir.mkdir()
    port = free_port()
    profile = write_profile(
        tmp_path / "spread.yml",
        locustfile=str(ROOT / "tests/locustfiles/recording_users.py"),
        users=6,
        spawn_rate=6,
        run_time="12s",
        # Two of Locust's 3 s worker reports: the master's reset at the warm-up's end drops what
        # workers reported before it (with 3 s, a busy machine's first report came after it).
        warmup="6s",
    )
    env = {"LOADSTACK_TEST_RECORD_DIR": str(record_dir), "LOADSTACK_METRICS_PORT": str(port)}
    out = loadstack(
        "run",
        "--profile",
        str(profile),
        "--workers",
        "2",
        "--run-id",
        "exporter",
        "--results-dir",
        str(tmp_path),
        env=env,
    )
    assert out.returncode == 1, out.stdout + out.stderr  # /does-not-exist fails by design
    files = list(record_dir.glob("*.jsonl"))
    assert len(files) == 2, "one record per worker"
    observed: dict[tuple[str, str], list[tuple[float, bool]]] = defaultdict(list)
    for f in files:
        for line in f.read_text().splitlines():
            method, name, ms, failed = json.loads(line)
            observed[(method, name)].append((ms, failed))

    fam = _families((tmp_path / "exporter" / "metrics.prom").read_text())
    counts = {
        (s.labels["method"], s.labels["name"], s.labels["status"]): s.value
        for s in fam["locust_requests"].samples
    }
    buckets: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    totals, sums = {}, {}
    for s in fam["locust_request_duration_seconds"].samples:
        key = (s.labels["method"], s.labels["name"])
        if s.name.endswith("_bucket"):
            buckets[key][s.labels["le"]] = s.value
        elif s.name.endswith("_count"):
            totals[key] = s.value
        elif s.name.endswith("_sum"):
            sums[key] = s.value
    assert set(totals) == set(observed)
    for key, seen in observed.items():
        assert totals[key] == len(seen), key
        assert counts[(*key, "success")] == sum(1 for _, f in seen if not f)
        assert counts[(*key, "failure")] == sum(1 for _, f in seen if f)
        for bound in BOUNDS:
            expected = sum(1 for ms, _ in seen if ms / 1000.0 <= bound)
            assert buckets[key][repr(bound)] == expected, (key, bound)
        assert buckets[key]["+Inf"] == len(seen)
        assert abs(sums[key] - sum(ms for ms, _ in seen) / 1000.0) < 1e-6 * len(seen) + 1e-9
    assert len({b for key in buckets for b, v in buckets[key].items() if 0 < v < totals[key]}) >= 4, (
        "latencies spread"
    )
    # Independent of Locust's reset: the warm-up reset Locust's stats, not the exporter's counters.
    doc = summary(tmp_path, "exporter")
    assert doc["totals"]["count"] < sum(totals.values())
    assert sum(totals.values()) == sum(len(v) for v in observed.values())


@pytest.mark.slow
def test_live_scrape_passes_promtool_and_disabled_exporter_binds_nothing(tmp_path: Path) -> None:
    port = free_port()
    profile = write_profile(tmp_path / "p.yml", run_time="10s", users=3, wait_time={"min": 0.05, "max": 0.2})
    with scraping(f"http://127.0.0.1:{port}/metrics", every=1, keep=3) as scraped:
        out = loadstack(
            "run",
            "--profile",
            str(profile),
            "--run-id",
            "scrape",
            "--results-dir",
            str(tmp_path),
            env={"LOADSTACK_METRICS_PORT": str(port)},
        )
    assert out.returncode == 0, out.stdout + out.stderr
    assert scraped, "the exporter answered during the run"
    check = subprocess.run(
        [tool("promtool"), "check", "metrics"], input=scraped[-1], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    fam = _families(scraped[-1])
    for name in (
        "locust_requests",
        "locust_request_duration_seconds",
        "locust_errors",
        "locust_users_active",
        "locust_users_active_per_class",
        "locust_requests_per_second",
        "locust_workers",
        "loadstack_run_info",
    ):
        assert name in fam, name
    run_labels = {(s.labels.get("run_id"), s.labels.get("profile")) for f in fam.values() for s in f.samples}
    assert run_labels == {("scrape", "p")}, "every series carries run_id and profile"

    # Disabled: no port, no listener, no snapshot.
    port2 = free_port()
    seen_open: list[bool] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            seen_open.append(_port_open(port2))
            time.sleep(0.5)

    prober = threading.Thread(target=probe)
    prober.start()
    out = loadstack(
        "run",
        "--profile",
        str(profile),
        "--no-metrics",
        "--run-id",
        "nometrics",
        "--results-dir",
        str(tmp_path),
        env={"LOADSTACK_METRICS_PORT": str(port2)},
    )
    stop.set()
    prober.join()
    assert out.returncode == 0
    assert len(seen_open) >= 10 and not any(seen_open)
    assert not (tmp_path / "nometrics" / "metrics.prom").exists()


def test_dashboard_json_is_generated_and_consistent() -> None:
    check = loadstack("dashboard", "--check")
    assert check.returncode == 0, check.stdout
    board = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load((ROOT / "infra/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    names = {v["name"] for v in board["templating"]["list"]}
    assert names == {"method", "run_id"}
    method = next(v for v in board["templating"]["list"] if v["name"] == "method")
    assert {"GET", "POST", "PUT", "DELETE", "WS", "SQL", "AMQP", "REDIS", "CHAIN"} <= set(
        method["query"].split(",")
    )
    titles = {p["title"] for p in board["panels"]}
    for wanted in (
        "Request rate by endpoint",
        "Error rate",
        "Response time p50 / p95 / p99",
        "Active users",
        "Total RPS",
        "Errors by exception",
        "Request duration heatmap",
        "Chain end-to-end p95",
        "Queue depth",
    ):
        assert wanted in titles, wanted
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == uid
        for t in panel["targets"]:
            assert "${" not in json.dumps(t), "no ${DS_...} inputs"
    provider = yaml.safe_load((ROOT / "infra/grafana/provisioning/dashboards/loadstack.yml").read_text())
    assert provider["providers"][0]["type"] == "file"


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    assert match, text
    return float(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


ALLOY = ROOT / "infra/alloy/config.alloy"


def test_alloy_scrapes_and_writes_what_the_tested_prometheus_config_does() -> None:
    """Alloy is not run here: its file is read strictly and compared with what the tests run.

    tests/test_dashboard_grafana.py runs infra/prometheus/prometheus.yml against a real run; Alloy
    must scrape the same targets (with the same labels), under the same job name, at the same
    interval and timeout, so that the dashboard sees the same series whichever path a user takes.
    """
    blocks = alloy_config.parse(ALLOY.read_text())
    assert sorted((b.name, b.label) for b in blocks) == [
        ("prometheus.remote_write", "default"),
        ("prometheus.scrape", "locust"),
    ], "a new Alloy component: compare it with the Prometheus config here first"
    prom = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    scrapes = [b for b in blocks if b.name == "prometheus.scrape"]
    assert {b.attributes["job_name"] for b in scrapes} == {j["job_name"] for j in prom["scrape_configs"]}
    for scrape in scrapes:
        assert set(scrape.attributes) == {
            "job_name",
            "targets",
            "scrape_interval",
            "scrape_timeout",
            "forward_to",
        }
        assert not scrape.blocks, "an inner block of prometheus.scrape that nothing compares"
        job = next(j for j in prom["scrape_configs"] if j["job_name"] == scrape.attributes["job_name"])
        assert set(job) == {"job_name", "scrape_interval", "scrape_timeout", "static_configs"}
        alloy_targets = {
            (t["__address__"], frozenset((k, v) for k, v in t.items() if k != "__address__"))
            for t in scrape.attributes["targets"]
        }
        prom_targets = {
            (target, frozenset((sc.get("labels") or {}).items()))
            for sc in job["static_configs"]
            for target in sc["targets"]
        }
        assert alloy_targets == prom_targets
        for key in ("scrape_interval", "scrape_timeout"):
            assert _duration(scrape.attributes[key]) == _duration(job[key]), key
        assert _duration(scrape.attributes["scrape_timeout"]) <= _duration(
            scrape.attributes["scrape_interval"]
        )
        # The dashboard's $__rate_interval assumes this interval (the data source's Scrape interval).
        datasource = yaml.safe_load(
            (ROOT / "infra/grafana/provisioning/datasources/prometheus.yml").read_text()
        )
        assert _duration(datasource["datasources"][0]["jsonData"]["timeInterval"]) == _duration(
            job["scrape_interval"]
        )
        forward = scrape.attributes["forward_to"]
        writes = {b.label: b for b in blocks if b.name == "prometheus.remote_write"}
        assert [r.path for r in forward] == [f"prometheus.remote_write.{label}.receiver" for label in writes]

    write = next(b for b in blocks if b.name == "prometheus.remote_write")
    assert write.attributes == {}
    assert [(b.name, b.label) for b in write.blocks] == [("endpoint", None)]
    url = write.blocks[0].attributes
    assert url == {"url": alloy_config.Call("sys.env", ("LOADSTACK_REMOTE_WRITE_URL",))}

    # Where the URL points by default: the compose Prometheus, with its remote-write receiver on,
    # and a config of its own that does not scrape the master too (series would arrive twice).
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "./infra/alloy/config.alloy:/etc/alloy/config.alloy:ro" in compose["alloy"]["volumes"]
    default = re.fullmatch(
        r"\$\{LOADSTACK_REMOTE_WRITE_URL:-([^}]+)\}",
        compose["alloy"]["environment"]["LOADSTACK_REMOTE_WRITE_URL"],
    )
    assert default, compose["alloy"]["environment"]
    parsed = urllib.parse.urlsplit(default[1])
    assert (parsed.scheme, parsed.hostname, parsed.port, parsed.path) == (
        "http",
        "prometheus",
        9090,
        alloy_config.REMOTE_WRITE_PATH,
    )
    assert "--web.enable-remote-write-receiver" in compose["prometheus"]["command"]
    mounted = next(
        v for v in compose["prometheus"]["volumes"] if v.endswith(":/etc/loadstack/prometheus.yml:ro")
    )
    receiver = yaml.safe_load((ROOT / mounted.split(":")[0]).read_text())
    assert all(
        j["job_name"] not in {s.attributes["job_name"] for s in scrapes} for j in receiver["scrape_configs"]
    )
    alloy = shutil.which("alloy")
    if alloy:  # where Alloy is installed, its own formatter must accept the file as well
        fmt = subprocess.run([alloy, "fmt", str(ALLOY)], capture_output=True, text=True)
        assert fmt.returncode == 0, fmt.stderr


@pytest.mark.parametrize(
    "drift",
    [
        ('scrape_interval = "5s"', 'scrape_interval = "15s"'),
        ('"master:9646"', '"master:9647"'),
        ('"service" = "loadstack"', '"service" = "other"'),
        ('job_name        = "locust"', 'job_name        = "locust2"'),
        ("forward_to", "honor_labels    = true\n  forward_to"),
        ('sys.env("LOADSTACK_REMOTE_WRITE_URL")', '"http://elsewhere:9090/api/v1/write"'),
        (
            'prometheus.remote_write "default" {',
            'prometheus.relabel "x" {\n}\nprometheus.remote_write "default" {',
        ),
    ],
)
def test_alloy_drift_fails_the_comparison(
    drift: tuple[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text = ALLOY.read_text()
    assert drift[0] in text, drift[0]
    changed = tmp_path / "config.alloy"
    changed.write_text(text.replace(drift[0], drift[1], 1))
    monkeypatch.setattr(sys.modules[__name__], "ALLOY", changed)
    with pytest.raises(AssertionError):
        test_alloy_scrapes_and_writes_what_the_tested_prometheus_config_does()


def test_prometheus_config_is_valid_and_scrapes_the_master() -> None:
    path = ROOT / "infra/prometheus/prometheus.yml"
    check = subprocess.run([tool("promtool"), "check", "config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    config = yaml.safe_load(path.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "locust")
    assert "master:9646" in job["static_configs"][0]["targets"]
    assert _duration(job["scrape_timeout"]) <= _duration(job["scrape_interval"])


def test_report_prints_dashboard_url_and_paths(tmp_path: Path) -> None:
    run = tmp_path / "r1"
    run.mkdir()
    (run / "report.html").write_text("<html></html>")
    (run / "summary.json").write_text("{}")
    incomplete = loadstack("report", "r1", "--results-dir", str(tmp_path))
    assert incomplete.returncode == 2 and "run_id: required field is missing" in incomplete.stderr
    totals = {
        "count": 10,
        "failures": 0,
        "rps": 1.0,
        "avg_ms": 6,
        "p50_ms": 5,
        "p95_ms": 9,
        "p99_ms": 10,
        "failure_rate": 0.0,
    }
    (run / "summary.json").write_text(
        json.dumps({"run_id": "r1", "profile": "smoke", "totals": totals, "requests": []})
    )
    out = loadstack("report", "r1", "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert str(run / "report.html") in out.stdout and str(run / "summary.json") in out.stdout
    assert "http://127.0.0.1:3000/d/loadstack-load-testing" in out.stdout and "var-run_id=r1" in out.stdout
    missing = loadstack("report", "nope", "--results-dir", str(tmp_path))
    assert missing.returncode == 2
