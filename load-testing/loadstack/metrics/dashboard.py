"""The Grafana dashboard, generated (``loadstack dashboard``) so queries and layout stay consistent.

A small builder of our own rather than grafana-foundation-sdk: the SDK's PyPI
releases are republished per Grafana version under timestamp epochs (hundreds of
builds), which makes a stable pin awkward, and this dashboard needs four panel
types.  The generated JSON is committed at ``infra/grafana/dashboards/load-testing.json``;
a test fails when it is stale, and tests/test_dashboard_grafana.py parses it with the SDK's
typed model (a test extra) and runs every query as Grafana expands it.

Every ``rate()`` window is ``$__rate_interval``: Grafana makes it at least four scrape
intervals of the data source (``timeInterval``), so a panel never asks for a window holding
fewer than two samples, at any zoom and whether Prometheus scrapes the master itself or Alloy
pushes the samples. The heatmap plots per-second rates too, so overlapping windows do not
count an observation twice.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from loadstack import paths

DATASOURCE = {"type": "prometheus", "uid": "loadstack-prometheus"}
UID = "loadstack-load-testing"
RUN = 'run_id=~"$run_id"'
RUN_METHOD = 'run_id=~"$run_id", method=~"$method"'
METHODS = ["GET", "POST", "PUT", "DELETE", "HTTP", "WS", "SQL", "AMQP", "REDIS", "AWAIT", "CHAIN"]


def target(
    expr: str,
    legend: str = "",
    ref: str = "A",
    *,
    instant: bool = False,
    fmt: str = "time_series",
    exemplar: bool = False,
) -> dict:
    """One Prometheus query; ``exemplar`` asks for the trace ids of the latency buckets too (once per
    panel: every quantile of a histogram would show the same exemplars again)."""
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        "instant": instant,
        "range": not instant,
        "format": fmt,
        **({"exemplar": True} if exemplar else {}),
    }


class Layout:
    """Places panels left to right on a 24-column grid, wrapping rows."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def panel(self, kind: str, title: str, targets: list[dict], w: int, h: int, **extra: Any) -> dict:
        panel = {
            "id": self.next_id,
            "type": kind,
            "title": title,
            "datasource": DATASOURCE,
            "gridPos": self.place(w, h),
            "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
            **extra,
        }
        self.next_id += 1
        return panel


def _unit(unit: str, **defaults: Any) -> dict:
    return {"fieldConfig": {"defaults": {"unit": unit, **defaults}, "overrides": []}}


def error_rate(by: str = "") -> str:
    group = f" by ({by})" if by else ""
    return (
        f'100 * sum{group} (rate(locust_requests_total{{{RUN_METHOD}, status="failure"}}[$__rate_interval]))'
        f" / sum{group} (rate(locust_requests_total{{{RUN_METHOD}}}[$__rate_interval]))"
    )


def quantile(q: float, metric: str, selector: str, by: str = "le") -> str:
    return f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket{{{selector}}}[$__rate_interval])))"


def panels() -> list[dict]:
    g = Layout()
    stat_opts = {
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "graphMode": "area", "colorMode": "value"}
    }
    out = [
        g.panel(
            "stat",
            "Total RPS",
            [target(f"sum(locust_requests_per_second{{{RUN}}})", "RPS")],
            6,
            4,
            **_unit("reqps"),
            **stat_opts,
        ),
        g.panel(
            "stat",
            "Error rate",
            [target(error_rate(), "errors")],
            6,
            4,
            **_unit(
                "percent",
                thresholds={
                    "mode": "absolute",
                    "steps": [
                        {"color": "green", "value": None},
                        {"color": "orange", "value": 1},
                        {"color": "red", "value": 5},
                    ],
                },
            ),
            **stat_opts,
        ),
        g.panel(
            "stat",
            "Active users",
            [target(f"sum(locust_users_active{{{RUN}}})", "users")],
            6,
            4,
            **_unit("short"),
            **stat_opts,
        ),
        g.panel(
            "stat",
            "Workers",
            [target(f"sum by (state) (locust_workers{{{RUN}}})", "{{state}}")],
            6,
            4,
            **_unit("short"),
            **stat_opts,
        ),
        g.panel(
            "timeseries",
            "Request rate by endpoint",
            [
                target(
                    f"sum by (method, name) (rate(locust_requests_total{{{RUN_METHOD}}}[$__rate_interval]))",
                    "{{method}} {{name}}",
                )
            ],
            12,
            8,
            **_unit("reqps"),
        ),
        g.panel(
            "timeseries",
            "Error rate by endpoint",
            [target(error_rate("method, name"), "{{method}} {{name}}")],
            12,
            8,
            **_unit("percent"),
        ),
        g.panel(
            "timeseries",
            "Response time p50 / p95 / p99",
            [
                target(
                    quantile(q, "locust_request_duration_seconds", RUN_METHOD),
                    f"p{int(q * 100)}",
                    exemplar=q == 0.99,  # a slow bucket's exemplar opens the trace behind it
                )
                for q in (0.5, 0.95, 0.99)
            ],
            12,
            8,
            **_unit("s"),
        ),
        g.panel(
            "timeseries",
            "Active users",
            [
                target(f"sum(locust_users_active{{{RUN}}})", "all"),
                target(f"sum by (user_class) (locust_users_active_per_class{{{RUN}}})", "{{user_class}}"),
            ],
            12,
            8,
            **_unit("short"),
        ),
        g.panel(
            "heatmap",
            "Request duration heatmap",
            [
                target(
                    f"sum by (le) (rate(locust_request_duration_seconds_bucket{{{RUN_METHOD}}}[$__rate_interval]))",
                    "{{le}}",
                    fmt="heatmap",
                    exemplar=True,
                )
            ],
            12,
            9,
            options={"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1},
        ),
        g.panel(
            "table",
            "Errors by exception",
            [
                target(
                    f"sum by (method, name, exception) (locust_errors_total{{{RUN_METHOD}}})",
                    "",
                    instant=True,
                    fmt="table",
                )
            ],
            12,
            9,
            transformations=[
                {
                    "id": "organize",
                    "options": {"excludeByName": {"Time": True}, "renameByName": {"Value": "errors"}},
                }
            ],
        ),
        g.panel(
            "timeseries",
            "Chain end-to-end p95",
            [
                target(
                    quantile(0.95, "loadstack_chain_duration_seconds", RUN, "le, chain"),
                    "{{chain}}",
                    exemplar=True,
                )
            ],
            12,
            8,
            **_unit("s"),
        ),
        g.panel(
            "timeseries",
            "Chain step p95 (await = asynchronous hop)",
            [
                target(
                    quantile(0.95, "loadstack_chain_step_duration_seconds", RUN, "le, chain, step"),
                    "{{chain}}/{{step}}",
                    exemplar=True,
                )
            ],
            12,
            8,
            **_unit("s"),
        ),
        g.panel(
            "timeseries",
            "Queue depth",
            [target(f"sum by (queue) (loadstack_queue_messages{{{RUN}}})", "{{queue}}")],
            12,
            7,
            **_unit("short"),
        ),
        g.panel(
            "timeseries",
            "Queue consumers",
            [target(f"sum by (queue) (loadstack_queue_consumers{{{RUN}}})", "{{queue}}")],
            12,
            7,
            **_unit("short"),
        ),
        g.panel(
            "timeseries",
            "Generator health: loop lag p99 and CPU per process",
            [
                target(
                    f"max by (process) (loadstack_generator_loop_lag_seconds{{{RUN}}})", "lag {{process}}"
                ),
                target(f"max by (process) (loadstack_generator_cpu_share{{{RUN}}})", "CPU {{process}}"),
            ],
            24,
            8,
            description=(
                "How late each Locust process's event loop woke (p99 of its last second of 100 ms"
                " wake-ups, left axis) and the CPU it used (1 = one core, right axis). Above 100 ms or"
                " 90 % for more than a quarter of the run, the run is marked generator_saturated."
            ),
            fieldConfig={
                "defaults": {"unit": "s"},
                "overrides": [
                    {
                        "matcher": {"id": "byFrameRefID", "options": "B"},
                        "properties": [
                            {"id": "unit", "value": "percentunit"},
                            {"id": "custom.axisPlacement", "value": "right"},
                        ],
                    }
                ],
            },
        ),
    ]
    return out


def variables() -> list[dict]:
    return [
        {
            "name": "run_id",
            "label": "Run",
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": "label_values(loadstack_run_info, run_id)", "refId": "run_id"},
            "refresh": 2,
            "sort": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"text": "All", "value": "$__all"},
        },
        {
            "name": "method",
            "label": "Type",
            "type": "custom",
            "query": ",".join(METHODS),
            "options": [{"text": m, "value": m, "selected": False} for m in METHODS],
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"text": "All", "value": "$__all"},
        },
    ]


def dashboard() -> dict:
    return {
        "uid": UID,
        "title": "Load testing (loadstack)",
        "description": "Requests, latency, errors, users, chains and queues of loadstack runs. Generated by `loadstack dashboard`.",
        "tags": ["loadstack", "locust", "load-testing"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "5s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {"list": variables()},
        "annotations": {"list": []},
        "panels": panels(),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


def default_path() -> Path:
    return paths.project_root() / "infra" / "grafana" / "dashboards" / "load-testing.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="loadstack dashboard", description="write (or --check) the Grafana dashboard"
    )
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed JSON is not what the builder makes"
    )
    args = parser.parse_args(argv)
    path = args.output or default_path()
    text = render()
    if args.check:
        current = path.read_text() if path.exists() else ""
        if current != text:
            print(f"{path} is stale: run `loadstack dashboard`")
            return 1
        print(f"{path} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
    return 0
