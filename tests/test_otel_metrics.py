"""OTLP metrics and exemplars of a real distributed run (issue 24, items 5 and 6).

One ``loadstack run`` with 2 workers and OpenTelemetry on (Locust's own switch), exporting to a
local OTLP receiver that decodes with the official protobuf messages, while the test scrapes the
:9646 exporter in the OpenMetrics format.  Then:

* the master's last OTLP export agrees with ``summary.json``: counts and failures exactly, per
  request and per user class; percentiles within the histogram's resolution;
* and with the exporter's own snapshot of the same run (``metrics.prom``): counts and every
  bucket exactly;
* the OpenMetrics exposition carries exemplars on the latency buckets whose trace ids are traces
  the run exported (the locustfile's spans around its requests).
"""

from __future__ import annotations

import threading
import urllib.request
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from loadstack.processes import free_port
from tests.helpers import ROOT, loadstack, summary, write_profile
from tests.masked_run import headless_run, new_canary, target
from tests.otlp_sink import OtlpSink

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# loadstack.metrics.aggregate.BUCKETS (not imported: that would import Locust, which gevent-patches).
BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]


@contextmanager
def scraping_openmetrics(url: str) -> Iterator[list[str]]:
    """Scrape ``url`` as Prometheus does with exemplar storage on (OpenMetrics), bounded in count."""
    scraped: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        for _ in range(600):
            if stop.wait(0.5):
                return
            try:
                request = urllib.request.Request(url, headers={"Accept": OPENMETRICS})
                with urllib.request.urlopen(request, timeout=2) as resp:  # 127.0.0.1 only
                    if resp.headers["Content-Type"].startswith("application/openmetrics-text"):
                        text = resp.read().decode()
                        if "locust_request_duration_seconds_bucket" in text:
                            scraped.append(text)
            except OSError:
                continue

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield scraped
    finally:
        stop.set()
        thread.join(5)


def _bucket_index(seconds: float) -> int:
    return bisect_left(BUCKETS, seconds)


def _rank_bucket(buckets: list[int], q: float) -> int:
    """The bucket holding the q-quantile's observation."""
    rank, seen = q * sum(buckets), 0
    for index, count in enumerate(buckets):
        seen += count
        if seen >= rank:
            return index
    return len(buckets) - 1


@pytest.mark.slow
def test_otlp_metrics_agree_with_summary_and_exporter_and_exemplars_name_exported_traces(
    tmp_path: Path,
) -> None:
    port = free_port()
    run_id = "otel-metrics"
    profile = write_profile(
        tmp_path / "traced.yml",
        locustfile=str(ROOT / "tests/locustfiles/traced_users.py"),
        users=6,
        spawn_rate=6,
        run_time="10s",
    )
    with OtlpSink() as sink, scraping_openmetrics(f"http://127.0.0.1:{port}/metrics") as scraped:
        env = {
            "LOCUST_ENABLE_OPENTELEMETRY": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "LOADSTACK_METRICS_PORT": str(port),
        }
        out = loadstack(
            "run", "--profile", str(profile), "--workers", "2", "--run-id", run_id,
            "--results-dir", str(tmp_path), env=env,
        )  # fmt: skip
        assert out.returncode == 1, out.stdout + out.stderr  # /does-not-exist fails by design
        spans = sink.spans()
        points = list(sink.metric_points())

    # -- the master's OTLP metrics: its last export is the final state ---------------------------
    ours = [(r, m, p) for r, m, p in points if m.name.startswith("loadstack.")]
    assert ours, f"no loadstack metrics received; names: {sorted({m.name for _, m, _ in points})}"
    assert {r["loadstack.run_id"] for r, _, _ in ours} == {run_id}
    last_time = max(p.time_unix_nano for _, _, p in ours)
    final = [(m, p) for _, m, p in ours if p.time_unix_nano == last_time]
    counts: dict[tuple[str, str, str, str], int] = {}
    histograms: dict[tuple[str, str, str], tuple[list[int], float]] = {}
    otlp_exemplars: set[str] = set()
    for metric, point in final:
        a = {kv.key: kv.value.string_value for kv in point.attributes}
        key = (a["loadstack.request.type"], a["loadstack.request.name"], a["loadstack.user_class"])
        if metric.name == "loadstack.requests":
            assert metric.sum.is_monotonic and metric.sum.aggregation_temporality == 2  # CUMULATIVE
            counts[(*key, a["loadstack.outcome"])] = point.as_int
        elif metric.name == "loadstack.request.duration":
            assert metric.unit == "s" and list(point.explicit_bounds) == list(BUCKETS)
            assert point.count == sum(point.bucket_counts)
            histograms[key] = (list(point.bucket_counts), point.sum)
            otlp_exemplars |= {e.trace_id.hex() for e in point.exemplars}
    assert {c for _, _, c in histograms} == {"BrowsingUser", "StatusUser"}

    # -- against summary.json: per request and per user class, exactly -------------------------
    doc = summary(tmp_path, run_id)
    per_request: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    merged: dict[tuple[str, str], list[int]] = {}
    for (method, name, user_class, outcome), n in counts.items():
        per_request[(method, name)][0] += n
        per_class[user_class][0] += n
        if outcome == "failure":
            per_request[(method, name)][1] += n
            per_class[user_class][1] += n
    for (method, name, _), (buckets, _) in histograms.items():
        merged[(method, name)] = [
            a + b for a, b in zip(merged.get((method, name), [0] * len(buckets)), buckets, strict=True)
        ]
    rows = {(r["type"], r["name"]): r for r in doc["requests"]}
    assert set(rows) == set(per_request)
    for key, row in rows.items():
        assert per_request[key] == [row["count"], row["failures"]], key
        assert sum(merged[key]) == row["count"], key
        for q, fraction in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            # Locust rounds response times (to whole ms below 100 ms): one bucket of slack.
            assert abs(_bucket_index(row[q] / 1000.0) - _rank_bucket(merged[key], fraction)) <= 1, (key, q)
    classes = {r["user_class"]: r for r in doc["user_classes"]}
    assert {c: v for c, v in per_class.items()} == {
        c: [r["count"], r["failures"]] for c, r in classes.items()
    }

    # -- against the :9646 exporter's snapshot of the same run: counts and buckets exactly ------
    fam = {
        f.name: f for f in text_string_to_metric_families((tmp_path / run_id / "metrics.prom").read_text())
    }
    prom_counts = {
        (s.labels["method"], s.labels["name"], s.labels["status"]): s.value
        for s in fam["locust_requests"].samples
    }
    for (method, name), (total, failed) in per_request.items():
        assert prom_counts[(method, name, "success")] == total - failed
        assert prom_counts[(method, name, "failure")] == failed
    prom_buckets: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for s in fam["locust_request_duration_seconds"].samples:
        if s.name.endswith("_bucket"):
            prom_buckets[(s.labels["method"], s.labels["name"])][s.labels["le"]] = s.value
    for key, buckets in merged.items():
        cumulative = [sum(buckets[: i + 1]) for i in range(len(buckets))]
        assert [prom_buckets[key][repr(b)] for b in BUCKETS] + [prom_buckets[key]["+Inf"]] == cumulative, key

    # -- exemplars: in the OpenMetrics exposition, naming traces the run exported --------------
    assert scraped, "the exporter answered in OpenMetrics during the run"
    exported_traces = {s.trace_id for s in spans if s.name in ("browse", "missing", "status")}
    assert exported_traces, "the locustfile's spans were exported"
    exemplars = set()
    for family in openmetrics_families(scraped[-1]):
        for sample in family.samples:
            if sample.exemplar is not None:
                assert sample.name == "locust_request_duration_seconds_bucket", sample
                assert float(sample.labels["le"]) >= sample.exemplar.value
                exemplars.add(sample.exemplar.labels["trace_id"])
    assert exemplars, "latency buckets carry exemplars"
    assert exemplars <= exported_traces, exemplars - exported_traces
    assert otlp_exemplars and otlp_exemplars <= exported_traces


@pytest.mark.slow
def test_otlp_metrics_carry_no_secret_of_request_names(tmp_path: Path) -> None:
    """Request names with secrets in every form the masker knows (tests/locustfiles/leaky_names.py)
    reach the OTLP metrics masked, like every other output: the canary is in no byte the master
    exported, and the masked names are there."""
    canary = new_canary()
    with OtlpSink() as sink, target() as host:
        run = headless_run(
            tmp_path,
            "otel-canary",
            canary,
            host,
            env={
                "LOCUST_ENABLE_OPENTELEMETRY": "true",
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_TRACES_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
                "LOADSTACK_METRICS_PORT": str(free_port()),
            },
        )
        requests = list(sink.metrics)
    assert run.returncode in (0, 1), run.output
    ours = [
        r
        for r in requests
        if any(
            m.name.startswith("loadstack.")
            for rm in r.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
    ]
    assert ours, "the master exported its metrics"
    names = {
        kv.value.string_value
        for r in ours
        for rm in r.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "loadstack.request.duration"
        for p in m.histogram.data_points
        for kv in p.attributes
        if kv.key == "loadstack.request.name"
    }
    assert any("apikey=" in n for n in names), names  # the names are there, their secrets are not
    assert not any(canary.encode() in r.SerializeToString() for r in ours)
