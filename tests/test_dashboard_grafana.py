"""The dashboard as Grafana reads it: Grafana's typed model, and every query expanded as Grafana does.

Grafana itself cannot run here, so tests/grafana_model.py parses the committed dashboard with the
``grafana-foundation-sdk`` model (strictly) and expands each query with Grafana's documented rules
(variables, ``$__interval``, ``$__rate_interval``, ``$__range``); a real run then answers each
expanded query from a real Prometheus that runs the repository's scrape config.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.models import prometheus as sdk_prometheus

from loadstack.processes import free_port
from tests import alloy_config
from tests import grafana_model as gm
from tests.helpers import ROOT, loadstack, summary, write_profile
from tests.otlp_sink import OtlpSink

DASHBOARD = ROOT / "infra" / "grafana" / "dashboards" / "load-testing.json"
DATASOURCES = ROOT / "infra" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROMETHEUS_CONFIG = ROOT / "infra" / "prometheus" / "prometheus.yml"
# Prometheus opens its TSDB and replays its WAL before it is ready; on a loaded machine that has
# taken more than 30 s. The limit only stops a Prometheus that never gets ready from hanging CI.
READY_LIMIT_S = 600.0
READY_POLL_S = 0.25


def board() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def problems_of(data: dict[str, Any]) -> list[str]:
    return gm.model_problems(data) + gm.datasource_problems(data, gm.provisioned_datasources(DATASOURCES))


def test_dashboard_passes_grafanas_typed_model() -> None:
    data = board()
    assert problems_of(data) == []
    parsed = gm.parse_dashboard(data)
    assert parsed.uid == "loadstack-load-testing"
    assert {p.type_val for p in parsed.panels} == {"stat", "timeseries", "heatmap", "table"}
    for panel in parsed.panels:
        assert panel.targets, panel.title
        # The SDK picks the query model from the datasource type: these are Prometheus queries.
        assert all(isinstance(t, sdk_prometheus.Dataquery) for t in panel.targets), panel.title
    assert {v.name: v.type_val for v in parsed.templating.list_val} == {"run_id": "query", "method": "custom"}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A corruption: set one field, named by a dotted path with list indices."""

    def corrupt(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return corrupt


def _rename_legend(data: dict[str, Any]) -> None:
    t = data["panels"][4]["targets"][0]
    t["legendformat"] = t.pop("legendFormat")


CORRUPTIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown panel type": (_set("panels.4.type", "timeseriez"), "'timeseriez' is not a Grafana panel type"),
    "grid width as text": (_set("panels.4.gridPos.w", "12"), "grid_pos.w: '12' is not an integer"),
    "expression as number": (_set("panels.4.targets.0.expr", 5), "targets[0].expr: 5 is not a string"),
    "threshold as text": (
        _set("panels.1.fieldConfig.defaults.thresholds.steps.1.value", "1"),
        "steps[1].value: '1' is not a number",
    ),
    "enum out of range": (_set("templating.list.0.refresh", 7), "7 is not a VariableRefresh"),
    "query format unknown": (_set("panels.4.targets.0.format", "graph"), "'graph' is not a PromQueryFormat"),
    "misspelled field": (_rename_legend, "legendformat: not a field of Grafana's model"),
    "datasource type unknown": (
        _set("panels.4.datasource", {"type": "prom", "uid": "loadstack-prometheus"}),
        "a query for a data source type the SDK does not know",
    ),
    "panel datasource uid": (_set("panels.4.datasource.uid", "nope"), "'nope'} is not provisioned"),
    "query datasource uid": (_set("panels.2.targets.0.datasource.uid", "prom"), "'prom'} is not provisioned"),
    "variable datasource uid": (_set("templating.list.0.datasource.uid", "x"), "'x'} is not provisioned"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_corrupted_copy_of_the_dashboard_fails_the_model(name: str) -> None:
    corrupt, expected = CORRUPTIONS[name]
    data = copy.deepcopy(board())
    corrupt(data)
    found = problems_of(data)
    assert any(expected in p for p in found), found
    if "datasource uid" not in name:
        with pytest.raises(gm.DashboardModelError) as err:
            gm.parse_dashboard(data)
        assert expected in str(err.value)


def test_interval_rules_follow_grafana() -> None:
    ds = gm.Datasource("p", "prometheus", 5_000)
    wide, narrow = {"gridPos": {"w": 24}}, {"gridPos": {"w": 6}}
    assert gm.panel_width_px(wide) == 1920 and gm.panel_width_px(narrow) == 480
    # 6 h over 1920 px is 11.25 s, which rounds to 10 s; rate = max(10 + 5, 4 × 5) = 20 s.
    assert gm.intervals(wide, ds, 6 * 3_600_000) == gm.Intervals(10_000, 10_000, 20_000)
    # The same range on a quarter-width panel: 45 s rounds to 1 m; rate = 1 m + 5 s.
    assert gm.intervals(narrow, ds, 6 * 3_600_000) == gm.Intervals(60_000, 60_000, 65_000)
    # A short range would give 50 ms; the scrape interval is the floor.
    assert gm.intervals(wide, ds, 90_000) == gm.Intervals(5_000, 5_000, 20_000)
    # A panel's own min interval and maxDataPoints win over the data source's and the width.
    assert gm.intervals({"gridPos": {"w": 24}, "interval": "30s"}, ds, 90_000).interval_ms == 30_000
    assert gm.intervals({"gridPos": {"w": 24}, "maxDataPoints": 100}, ds, 3_600_000).interval_ms == 30_000
    # Thirty days on 1920 px: 22.5 min → 20 m; the 11,000-point limit is not reached.
    assert gm.intervals(wide, ds, 30 * 86_400_000).step_ms == 1_200_000
    assert gm.intervals({"gridPos": {"w": 24}, "maxDataPoints": 100_000}, ds, 86_400_000).step_ms == 10_000
    assert [gm.round_interval(ms) for ms in (9, 14, 1_499, 1_500, 44_999, 45_000)] == [
        1,
        10,
        1_000,
        2_000,
        30_000,
        60_000,
    ]
    assert [gm.short_duration(ms) for ms in (250, 5_000, 60_000, 90_000, 86_400_000)] == [
        "250ms",
        "5s",
        "1m",
        "1m",
        "1d",
    ]
    assert [gm.go_duration(ms) for ms in (20_000, 60_000, 65_000, 3_600_000, 1_500)] == [
        "20s",
        "1m0s",
        "1m5s",
        "1h0m0s",
        "1.5s",
    ]
    assert gm.builtins(gm.Intervals(5_000, 5_000, 20_000), 1_234_567) == {
        "__interval_ms": "5000",
        "__interval": "5s",
        "__rate_interval_ms": "20000",
        "__rate_interval": "20s",
        "__range_ms": "1234567",
        "__range_s": "1235",
        "__range": "1235s",
    }


def test_variable_rules_follow_grafana() -> None:
    multi_all = {"name": "m", "multi": True, "includeAll": True, "allValue": ".*"}
    multi_no_custom_all = {"name": "m", "multi": True, "includeAll": True}
    single = {"name": "s", "multi": False, "includeAll": False}
    opts = ["GET", "a.b", "x|y"]
    assert gm.format_variable(multi_all, gm.ALL, opts) == ".*"
    assert gm.format_variable(multi_no_custom_all, gm.ALL, opts) == r"(GET|a\\.b|x\\|y)"
    assert gm.format_variable(multi_all, ["GET", "POST"], opts) == "(GET|POST)"
    assert gm.format_variable(multi_all, ["a.b"], opts) == r"a\\.b"
    assert gm.format_variable(single, ["it's a.b"], opts) == r"it\\'s a.b"
    with pytest.raises(ValueError, match="no All option"):
        gm.format_variable(single, gm.ALL, opts)
    assert gm.custom_options("GET, POST,a\\,b, Label : value") == ["GET", "POST", "a,b", "value"]
    expr = 'rate(x{run_id=~"$run_id", m=~"${method}"}[$__rate_interval]) / $__range_s'
    values = {**gm.builtins(gm.Intervals(5_000, 5_000, 20_000), 60_000), "run_id": "(a|b)", "method": ".*"}
    assert gm.interpolate(expr, values) == 'rate(x{run_id=~"(a|b)", m=~".*"}[20s]) / 60'
    with pytest.raises(KeyError, match=r"\$interval is neither"):
        gm.interpolate("rate(x[$interval])", values)
    assert gm.legend_labels("{{method}} {{ name }}/p95") == ["method", "name"]


def test_every_query_of_the_dashboard_expands_fully() -> None:
    """Without a run: each variable has a Grafana expansion and each expression is left with none.

    A variable type the helper does not expand (the old ``interval`` type) or a name that is
    neither a variable nor a Grafana global fails here before any run.
    """
    data = board()
    texts = {}
    for var in data["templating"]["list"]:
        opts = gm.custom_options(var["query"]) if var["type"] == "custom" else []
        if var["type"] not in ("custom", "query"):
            pytest.fail(
                f"variable {var['name']}: type {var['type']!r} has no expansion in tests/grafana_model.py"
            )
        texts[var["name"]] = gm.format_variable(var, gm.ALL, opts)
    datasources = gm.provisioned_datasources(DATASOURCES)
    for panel in data["panels"]:
        for target in panel["targets"]:
            q = gm.expand(panel, target, texts, datasources, 0.0, 3600.0)
            assert "$" not in q.expr and "[[" not in q.expr, q.expr


@contextmanager
def running_prometheus(config: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    """Debian's Prometheus on loopback with ``config``; yields the API URL once /-/ready says so."""
    port = free_port()
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("w")
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"  # Debian's package (.ci/run installs it)
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",  # as docker-compose.yml runs it, for Alloy's pushes
            "--enable-feature=exemplar-storage",  # as docker-compose.yml runs it, for the exemplars
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_LIMIT_S
        while True:
            assert proc.poll() is None, "prometheus exited:\n" + (tmp_path / "prometheus.log").read_text()
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"prometheus not ready after {READY_LIMIT_S} s"
            time.sleep(READY_POLL_S)
        yield f"{base}/api/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


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


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.mark.slow
def test_every_panel_as_grafana_expands_it_returns_data_from_prometheus(tmp_path: Path) -> None:
    metrics_port = free_port()
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "locust")
    # The repository's config as it is (interval, timeout, labels), aimed at loopback.
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{metrics_port}"]
    datasources = gm.provisioned_datasources(DATASOURCES)
    assert {ds.scrape_interval_ms for ds in datasources.values()} == {
        gm.duration_ms(job["scrape_interval"])
    }, "the data source's Scrape interval (timeInterval) is the interval Prometheus scrapes at"
    with running_prometheus(config, tmp_path) as api:
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
        run_id = "grafana-view"
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
        # The dashboard's time range: the run, as a person picks it from the run's summary.
        start, end = _epoch(doc["start"]), _epoch(doc["end"])
        data = board()
        gm.parse_dashboard(data)  # what follows reads the JSON that passed Grafana's model
        variables = {v["name"]: v for v in data["templating"]["list"]}
        run_ids = gm.options(variables["run_id"], api, start, end)
        assert run_id in run_ids, f"the Run variable offers {run_ids}"
        methods = gm.options(variables["method"], api, start, end)
        seen = sorted({r["type"] for r in doc["requests"]})
        assert set(seen) <= set(methods), f"the Type variable lacks {set(seen) - set(methods)}"
        failing = sorted({r["type"] for r in doc["requests"] if r.get("failures")})
        assert failing, doc["totals"]

        selections: dict[str, dict[str, Any]] = {
            "All": {"run_id": gm.ALL, "method": gm.ALL},
            "multi": {"run_id": [run_id, "older.run"], "method": seen},
            "single": {"run_id": [run_id], "method": [failing[0]]},
        }
        empty, legends, expanded = [], [], {}
        for mode, chosen in selections.items():
            texts = {
                name: gm.format_variable(var, chosen[name], gm.options(var, api, start, end))
                for name, var in variables.items()
            }
            for panel in data["panels"]:
                for target in panel["targets"]:
                    query = gm.expand(panel, target, texts, datasources, start, end)
                    expanded[(mode, panel["title"], target["refId"])] = query
                    series = gm.run(api, query)
                    if not gm.has_data(series):
                        empty.append(f"{mode}: {query.panel} [{query.ref_id}]: {query.expr} -> {series}")
                    legends += [f"{mode}: {m}" for m in gm.missing_legend_labels(query, series)]
                    if mode == "single" and 'method=~"' in target["expr"]:
                        wrong = {s["metric"].get("method") for s in series} - {None, failing[0]}
                        assert not wrong, f"{query.panel}: the single Type {failing[0]} let through {wrong}"
        # Alloy's path: its remote-write URL (tests/test_observability.py ties it to this receiver)
        # accepts a request in the format Alloy sends, and the sample is then queryable.
        now_ms = int(time.time() * 1000)
        probe = {"__name__": "loadstack_remote_write_probe", "run_id": run_id, "job": "locust"}
        request = urllib.request.Request(
            api.removesuffix("/api/v1") + alloy_config.REMOTE_WRITE_PATH,
            data=alloy_config.remote_write_body(probe, 42.0, now_ms),
            headers={
                "Content-Type": "application/x-protobuf",
                "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.status == 204, resp.status
        pushed = gm.prometheus_get(
            api,
            "/query",
            {"query": f'loadstack_remote_write_probe{{run_id="{run_id}"}}', "time": now_ms / 1000},
        )["result"]
        assert [float(r["value"][1]) for r in pushed] == [42.0], pushed
        assert not empty and not legends, (
            "panels without data:\n"
            + "\n".join(empty)
            + "\nlegends naming absent labels:\n"
            + "\n".join(legends)
            + f"\nrun: {doc['totals']}"
        )

    # What was sent is what Grafana would send: one look at a wide and a narrow panel.
    rps = expanded[("multi", "Request rate by endpoint", "A")]
    assert f'run_id=~"({run_id}|older\\\\.run)"' in rps.expr, rps.expr
    assert "[20s]" in rps.expr and rps.step_s == 5.0  # 5 s scrape: max(5 s + 5 s, 4 × 5 s)
    assert expanded[("All", "Total RPS", "A")].expr == 'sum(locust_requests_per_second{run_id=~".*"})'
    assert f'run_id=~"{run_id}"' in expanded[("single", "Error rate", "A")].expr


@pytest.mark.slow
def test_latency_panels_exemplars_open_traces_the_run_exported(tmp_path: Path) -> None:
    """From a latency bucket to its trace: Prometheus (the repository's config, exemplar storage on)
    scrapes a run with OpenTelemetry on, and each latency panel's query, as Grafana expands it with
    ``exemplar: true``, returns exemplars whose ``trace_id`` is a trace the run exported."""
    metrics_port = free_port()
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "locust")
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{metrics_port}"]
    datasources = gm.provisioned_datasources(DATASOURCES)
    destinations = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["jsonData"]
    assert destinations["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": "loadstack-tempo"}
    ]
    run_id = "grafana-exemplars"
    with running_prometheus(config, tmp_path) as api, OtlpSink() as sink:
        profile = write_profile(
            tmp_path / "traced.yml",
            locustfile=str(ROOT / "tests/locustfiles/traced_users.py"),
            users=4,
            spawn_rate=4,
            run_time="16s",  # three scrapes at the repository's 5 s interval
        )
        env = {
            "LOADSTACK_METRICS_PORT": str(metrics_port),
            "LOCUST_ENABLE_OPENTELEMETRY": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_LOGS_EXPORTER": "none",
        }
        out = loadstack(
            "run", "--profile", str(profile), "--workers", "2", "--run-id", run_id,
            "--results-dir", str(tmp_path), env=env,
        )  # fmt: skip
        assert out.returncode == 1, out.stdout + out.stderr  # /does-not-exist fails by design
        exported = {s.trace_id for s in sink.spans()}
        doc = summary(tmp_path, run_id)
        start, end = _epoch(doc["start"]), _epoch(doc["end"]) + 10
        data = board()
        variables = {v["name"]: v for v in data["templating"]["list"]}
        texts = {
            name: gm.format_variable(
                var, [run_id] if name == "run_id" else gm.ALL, gm.options(var, api, start, end)
            )
            for name, var in variables.items()
        }
        checked = []
        for panel in data["panels"]:
            for target in panel["targets"]:
                if not target.get("exemplar") or "locust_request_duration_seconds" not in target["expr"]:
                    continue
                query = gm.expand(panel, target, texts, datasources, start, end)
                found = gm.prometheus_get(
                    api, "/query_exemplars", {"query": query.expr, "start": start, "end": end}
                )
                trace_ids = {e["labels"]["trace_id"] for series in found for e in series["exemplars"]}
                assert trace_ids, f"{panel['title']}: no exemplars for {query.expr}"
                assert trace_ids <= exported, (panel["title"], trace_ids - exported)
                checked.append(panel["title"])
        assert sorted(checked) == ["Request duration heatmap", "Response time p50 / p95 / p99"]
