"""A run's results: ``summary.json`` built from Locust's stats, the console table, ``results/latest``.

Layout of ``results/<run_id>/``::

    results_stats.csv, results_stats_history.csv,   Locust's CSVs
    results_failures.csv, results_exceptions.csv
    report.html                                      Locust's HTML report
    summary.json                                     this module (see docs/results.md)
    run-metadata.json                                resolved profile, command, masked environment
    logs/                                            master, worker and demo platform logs
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # locust is imported only inside Locust processes (it gevent-patches on import)
    from locust.stats import RequestStats, StatsEntry

    from loadstack.gates import GateTarget

SCHEMA_VERSION = 1
PERCENTILES = {"p50_ms": 0.50, "p90_ms": 0.90, "p95_ms": 0.95, "p99_ms": 0.99}


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def versions() -> dict[str, str]:
    def v(pkg: str) -> str:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "unknown"

    return {"loadstack": v("loadstack"), "locust": v("locust"), "python": platform.python_version()}


def entry_figures(entry: StatsEntry, *, histogram: bool = True) -> dict[str, Any]:
    """The key figures of one Locust stats entry (all times in ms)."""
    count = entry.num_requests
    out: dict[str, Any] = {
        "count": count,
        "failures": entry.num_failures,
        "failure_rate": round(entry.num_failures / count, 6) if count else 0.0,
        "rps": round(entry.total_rps, 3),
        "avg_ms": round(entry.avg_response_time, 3),
        "min_ms": round(entry.min_response_time or 0, 3),
        "max_ms": round(entry.max_response_time, 3),
    }
    for key, q in PERCENTILES.items():
        out[key] = entry.get_response_time_percentile(q) if count else 0
    out["avg_bytes"] = round(entry.avg_content_length, 1) if count else 0
    if histogram:
        # Locust's rounded-ms histogram: what compare/report need to redo percentiles or tests.
        out["histogram"] = {str(k): v for k, v in sorted(entry.response_times.items())}
    return out


def request_rows(stats: RequestStats) -> list[dict[str, Any]]:
    rows = []
    for (name, method), entry in sorted(stats.entries.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if entry.num_requests == 0 and entry.num_failures == 0:
            continue
        rows.append({"type": method, "name": name, **entry_figures(entry)})
    return rows


def error_rows(stats: RequestStats) -> list[dict[str, Any]]:
    rows = [
        {"type": e.method, "name": e.name, "error": str(e.error), "occurrences": e.occurrences}
        for e in stats.errors.values()
    ]
    return sorted(rows, key=lambda r: -r["occurrences"])


def build_summary(
    stats: RequestStats,
    *,
    run_id: str,
    profile: str,
    host: str | None,
    started: float,
    measured_from: float,
    ended: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``summary.json`` document for a finished run."""
    totals = entry_figures(stats.total, histogram=False)
    summary: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "profile": profile,
        "host": host,
        "start": iso(started),
        "end": iso(ended),
        "duration_s": round(ended - started, 3),
        "measured_from": iso(measured_from),
        "measured_s": round(ended - measured_from, 3),
        "versions": versions(),
        "totals": totals,
        "requests": request_rows(stats),
        "errors": error_rows(stats),
    }
    summary.update(extra or {})
    return summary


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a reader never sees half a file, a crash never leaves one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def update_latest(results_root: Path, run_id: str) -> None:
    """Point ``results/latest`` at the newest run (a relative symlink, replaced atomically)."""
    link = results_root / "latest"
    tmp = results_root / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_id)
    os.replace(tmp, link)


def run_dir(results_root: Path, run_id: str) -> Path:
    """A run's directory; ``latest`` resolves to the newest run."""
    path = results_root / run_id
    if run_id == "latest" and path.is_symlink():
        return results_root / os.readlink(path)
    return path


def _fmt_ms(v: float) -> str:
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def format_table(summary: dict[str, Any], *, max_rows: int = 40) -> str:
    """A compact console table: one line per request, then totals."""
    head = f"{'Type':<8} {'Name':<44} {'Reqs':>8} {'Fails':>7} {'RPS':>8} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>7}"
    lines = [head, "-" * len(head)]
    rows: Iterable[dict[str, Any]] = summary.get("requests", [])
    rows = list(rows)
    for r in rows[:max_rows]:
        name = r["name"] if len(r["name"]) <= 44 else r["name"][:43] + "…"
        lines.append(
            f"{r['type'][:8]:<8} {name:<44} {r['count']:>8} {r['failures']:>7} {r['rps']:>8.2f} "
            f"{_fmt_ms(r['p50_ms']):>6} {_fmt_ms(r['p95_ms']):>6} {_fmt_ms(r['p99_ms']):>6} {_fmt_ms(r['max_ms']):>7}"
        )
    if len(rows) > max_rows:
        lines.append(f"… {len(rows) - max_rows} more rows in summary.json")
    t = summary["totals"]
    lines.append("-" * len(head))
    lines.append(
        f"{'':<8} {'Total':<44} {t['count']:>8} {t['failures']:>7} {t['rps']:>8.2f} "
        f"{_fmt_ms(t['p50_ms']):>6} {_fmt_ms(t['p95_ms']):>6} {_fmt_ms(t['p99_ms']):>6} {_fmt_ms(t['max_ms']):>7}"
    )
    errors = summary.get("errors") or []
    if errors:
        lines.append("")
        lines.append("Top failures:")
        for e in errors[:5]:
            lines.append(f"  {e['occurrences']:>6}×  {e['type']} {e['name']}: {e['error'][:120]}")
    return "\n".join(lines)


CSV_COLUMNS = [
    "type", "name", "count", "failures", "failure_rate", "rps", "avg_ms", "min_ms", "max_ms",
    "p50_ms", "p90_ms", "p95_ms", "p99_ms", "avg_bytes", "gate",
]  # fmt: skip


def row_gate_results(row: dict[str, Any], summary: dict[str, Any], targets: list[GateTarget]) -> str:
    """``pass``/``fail`` of the gates whose target covers this row ("" when none does)."""
    from loadstack.gates import covers

    statuses = []
    for result in summary.get("gates") or []:
        if result["gate"] >= len(targets):
            continue
        target = targets[result["gate"]]
        if target.total:
            covered = row["type"] == "" and row["name"] == "Aggregated"
        elif target.chain:
            covered = row["type"] == "CHAIN" and row["name"] == target.chain
        elif target.user_class:
            covered = False
        else:
            covered = covers(target, row)
        if covered:
            statuses.append(result["status"])
    if not statuses:
        return ""
    return "fail" if any(s != "pass" for s in statuses) else "pass"


def write_summary_csv(summary: dict[str, Any], path: Path, gate_targets: list[GateTarget]) -> None:
    """``summary.csv``: one row per request name/type with the key figures and its gate result, then totals."""
    import csv

    rows = [*summary["requests"], {"type": "", "name": "Aggregated", **summary["totals"]}]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "gate": row_gate_results(row, summary, gate_targets)})


def print_table(summary: dict[str, Any]) -> None:
    sys.stdout.write(format_table(summary) + "\n")
