"""Where a run's results and its live dashboard are (``loadstack report`` without building anything)."""

from __future__ import annotations

from pathlib import Path

from loadstack.metrics.dashboard import UID
from loadstack.settings import current


def grafana_url(run_id: str | None = None) -> str:
    """The provisioned dashboard in the compose stack's Grafana (127.0.0.1 only)."""
    config = current()
    base = config.grafana_url or f"http://127.0.0.1:{config.grafana_port}"
    url = f"{base}/d/{UID}/load-testing-loadstack"
    return f"{url}?var-run_id={run_id}" if run_id else url


def describe_run(run_dir: Path) -> list[str]:
    lines = [f"run {run_dir.name}:"]
    for name, what in (
        ("report.html", "Locust HTML report"),
        ("summary.json", "summary"),
        ("junit.xml", "gates for CI"),
        ("workload.svg", "users and rate"),
        ("metrics.prom", "final metrics"),
    ):
        path = run_dir / name
        if path.exists():
            lines.append(f"  {what:<18} {path}")
    return lines
