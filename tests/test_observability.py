"""The Prometheus exporter, the Prometheus/Alloy/Grafana configuration and the dashboard, proven on real runs."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
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
        run_time="10s",
        warmup="3s",
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
    assert names == {"interval", "method", "run_id"}
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


def test_alloy_config_structure() -> None:
    text = (ROOT / "infra/alloy/config.alloy").read_text()
    code = "\n".join(line.split("//")[0] for line in text.splitlines())
    scrape = re.search(r'prometheus\.scrape\s+"locust"\s*\{(.*?)\n\}', code, re.S)
    assert scrape, 'a prometheus.scrape "locust" block'
    body = scrape[1]
    assert re.search(r'job_name\s*=\s*"locust"', body)
    assert re.search(r'"__address__"\s*=\s*"master:9646"', body), "targets the compose master's exporter"
    interval = _duration(re.search(r'scrape_interval\s*=\s*"([^"]+)"', body)[1])
    timeout_match = re.search(r'scrape_timeout\s*=\s*"([^"]+)"', body)
    if interval < 10:
        assert timeout_match, "an interval under 10s needs an explicit scrape_timeout"
    timeout = _duration(timeout_match[1]) if timeout_match else 10.0
    assert timeout <= interval
    forward = re.search(r"forward_to\s*=\s*\[\s*prometheus\.remote_write\.(\w+)\.receiver\s*\]", body)
    assert forward, "forwards to a remote_write component"
    write = re.search(rf'prometheus\.remote_write\s+"{forward[1]}"\s*\{{(.*?)\n\}}', code, re.S)
    assert write and re.search(r'url\s*=\s*sys\.env\("[A-Z_]+"\)', write[1]), (
        "the remote-write URL comes from the environment"
    )
    alloy = shutil.which("alloy")
    if alloy:
        fmt = subprocess.run(
            [alloy, "fmt", str(ROOT / "infra/alloy/config.alloy")], capture_output=True, text=True
        )
        assert fmt.returncode == 0, fmt.stderr


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


FLAKY_CHAIN = """
name: flaky
steps:
  - name: ok
    http: {path: /health}
  - name: sometimes_missing
    when: "user.index % 2 == 0"
    http: {path: /not-there}
    on_failure: continue
"""


@pytest.mark.slow
def test_every_dashboard_panel_returns_data_from_prometheus(tmp_path: Path) -> None:
    metrics_port, prom_port = free_port(), free_port()
    config = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "locust")
    job["static_configs"][0]["targets"] = [
        f"127.0.0.1:{metrics_port}"
    ]  # the repo's config, aimed at loopback
    job["scrape_interval"] = job["scrape_timeout"] = "1s"
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(yaml.safe_dump(config))
    prometheus = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={prom_config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--web.enable-remote-write-receiver",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        deadline = time.monotonic() + 30
        while not _port_open(prom_port):
            assert time.monotonic() < deadline and prometheus.poll() is None, "prometheus did not start"
            time.sleep(0.2)
        (tmp_path / "flaky.yml").write_text(FLAKY_CHAIN)
        profile = write_profile(
            tmp_path / "obs.yml",
            locustfile=str(ROOT / "load-testing/locustfiles/platform_users.py"),
            users=10,
            spawn_rate=10,
            run_time="30s",
            seed={"customers": 30},
            chains=[
                {"path": str(ROOT / "load-testing/chains/order_pipeline.yml"), "weight": 2},
                {"path": str(tmp_path / "flaky.yml"), "weight": 1},
            ],
            user_classes={
                "OrderUser": 1,
                "StreamUser": 1,
                "CacheUser": 1,
                "ShopDatabaseUser": 1,
                "OrderEventsUser": 2,
                "ConfiguredChainUser": 4,
            },
            sample_queues=["demo.orders", "loadtest.{run_id}.orders"],
            sample_interval="1s",
            wait_time={"min": 0.1, "max": 0.3},
        )
        run_id = "observability"
        out = loadstack(
            "run",
            "--profile",
            str(profile),
            "--workers",
            "2",
            "--run-id",
            run_id,
            "--results-dir",
            str(tmp_path),
            env={"LOADSTACK_METRICS_PORT": str(metrics_port)},
        )
        assert out.returncode == 1, out.stdout + out.stderr  # the flaky chain's tolerated 404s
        doc = summary(tmp_path, run_id)
        end = time.time()
        at = end - 4  # well inside the run, after at least 15s of samples
        board = json.loads(DASHBOARD.read_text())
        empty = []
        for panel in board["panels"]:
            for t in panel["targets"]:
                expr = (
                    t["expr"].replace("$run_id", run_id).replace("$method", ".*").replace("$interval", "15s")
                )
                url = f"{api}/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
                with urllib.request.urlopen(url, timeout=10) as resp:
                    data = json.load(resp)["data"]["result"]
                values = [float(r["value"][1]) for r in data]
                if not any(v != 0 and v == v for v in values):
                    empty.append(f"{panel['title']} [{t['refId']}]: {expr} -> {values}")
        assert not empty, "panels without data:\n" + "\n".join(empty) + f"\nrun: {doc['totals']}"
    finally:
        prometheus.terminate()
        prometheus.wait(15)
