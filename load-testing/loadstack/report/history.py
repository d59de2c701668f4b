"""``results/history.jsonl``: one line per finished run, the index that reports and comparisons read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIGURES = ("count", "failures", "failure_rate", "rps", "avg_ms", "p50_ms", "p95_ms", "p99_ms")


def verdict_of(summary: dict[str, Any], interrupted: bool = False) -> str:
    """pass | fail (an SLO gate failed) | error (a gate matched nothing) | failures (no gates) | interrupted."""
    if interrupted:
        return "interrupted"
    if summary.get("verdict"):
        return str(summary["verdict"])
    return "failures" if summary["totals"]["failures"] else "pass"


def entry(summary: dict[str, Any], *, run_dir: Path, sut_version: str | None) -> dict[str, Any]:
    """The history line of a finished run: figures and the outcome the master decided."""
    outcome = summary.get("outcome") or {}
    return {
        "run_id": summary["run_id"],
        "profile": summary["profile"],
        "host": summary.get("host"),
        "sut_version": sut_version,
        "start": summary["start"],
        "end": summary["end"],
        "duration_s": summary["duration_s"],
        "totals": {k: summary["totals"][k] for k in FIGURES},
        "verdict": outcome.get("verdict") or verdict_of(summary),
        "exit_code": outcome.get("exit_code"),
        "gates": {
            s: sum(1 for g in summary.get("gates", []) if g["status"] == s) for s in ("pass", "fail", "error")
        },
        "results_dir": str(run_dir),
    }


def append(results_root: Path, line: dict[str, Any]) -> dict[str, Any]:
    """Add one run's line to ``results/history.jsonl``."""
    results_root.mkdir(parents=True, exist_ok=True)
    with open(results_root / "history.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, separators=(",", ":")) + "\n")
    return line


def load(results_root: Path) -> list[dict[str, Any]]:
    path = results_root / "history.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn line (crash mid-write) must not hide the others
    return out
