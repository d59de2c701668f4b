"""SLO gates: thresholds per request name (glob), request type, user class, chain or the total.

Declared in a profile (``thresholds:``) or an SLO file it references (``slo:``).
Evaluated on the post-warm-up figures of ``summary.json`` at the end of a run
and, for gates with ``abort_on_breach``, while it runs (after ``grace``),
stopping it early with the breach named.  Plain Python: the master evaluates
them live, the runner turns the result into the exit status (0 pass, 3 fail,
2 a gate that matches nothing).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from loadstack import configfile
from loadstack.durations import Seconds

# threshold field -> (figure, comparison)
METRICS: dict[str, tuple[str, str]] = {
    "success_rate_min": ("success_rate", ">="),
    "error_rate_max": ("error_rate", "<="),
    "p50_ms_max": ("p50_ms", "<="),
    "p95_ms_max": ("p95_ms", "<="),
    "p99_ms_max": ("p99_ms", "<="),
    "avg_ms_max": ("avg_ms", "<="),
    "rps_min": ("rps", ">="),
    "chain_success_rate_min": ("success_rate", ">="),
}
Rate = Field(default=None, ge=0, le=1)
Millis = Field(default=None, gt=0)


class GateTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, min_length=1, description="glob over request names, e.g. /api/v1/auth/*"
    )
    request_type: str | None = Field(default=None, min_length=1)
    user_class: str | None = Field(default=None, min_length=1)
    chain: str | None = Field(default=None, min_length=1)
    total: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> GateTarget:
        kinds = [bool(self.name or self.request_type), bool(self.user_class), bool(self.chain), self.total]
        if sum(kinds) != 1:
            raise ValueError(
                "give one target: name and/or request_type, or user_class, or chain, or total: true"
            )
        return self

    def label(self) -> str:
        if self.total:
            return "total"
        if self.user_class:
            return f"user_class={self.user_class}"
        if self.chain:
            return f"chain={self.chain}"
        parts = [f"name={self.name}"] if self.name else []
        return " ".join([*parts, f"type={self.request_type}"] if self.request_type else parts)


class GateSource(BaseModel):
    """Where a gate was written, for messages that point at the line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    line: int | None = None
    field: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line if self.line is not None else '?'}: {self.field}"


class Gate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: GateTarget
    success_rate_min: float | None = Rate
    error_rate_max: float | None = Rate
    p50_ms_max: float | None = Millis
    p95_ms_max: float | None = Millis
    p99_ms_max: float | None = Millis
    avg_ms_max: float | None = Millis
    rps_min: float | None = Field(default=None, ge=0)
    chain_success_rate_min: float | None = Rate
    abort_on_breach: bool = False
    grace: Seconds = 0
    source: GateSource | None = Field(default=None, description="set by loadstack, not in files")

    @model_validator(mode="before")
    @classmethod
    def _total_shorthand(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict):
            if info.context and info.context.get("file") and "source" in data:
                raise ValueError("source: unknown field (check the spelling; see the documented fields)")
            if data.get("target") == "total":
                return {**data, "target": {"total": True}}
        return data

    @model_validator(mode="after")
    def _has_threshold(self) -> Gate:
        if not self.thresholds():
            raise ValueError(f"give at least one threshold: {', '.join(METRICS)}")
        if self.chain_success_rate_min is not None and not self.target.chain:
            raise ValueError("chain_success_rate_min needs a chain target")
        return self

    def thresholds(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in METRICS if getattr(self, k) is not None}


class SloFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    thresholds: list[Gate] = Field(min_length=1)


def load_slo(path: Path) -> list[Gate]:
    """Gates of an SLO file, each with its source (file, line, field) for later messages."""
    data, node = configfile.read_document(path)
    slo = configfile.validate(SloFile, data, node, path)
    return with_sources(slo.thresholds, path, node, "thresholds")


def with_sources(gates: list[Gate], path: Path, node: Any, field: str) -> list[Gate]:
    out = []
    for i, gate in enumerate(gates):
        loc = (field, i)
        source = GateSource(
            file=str(path), line=configfile.line_of(node, loc), field=configfile.field_path(loc)
        )
        out.append(gate.model_copy(update={"source": source}))
    return out


# -- evaluation (on summary.json documents) -------------------------------------------------------
def percentile(histogram: dict[Any, int], count: int, q: float) -> float:
    """Locust's percentile over a rounded-ms histogram (the same numbers Locust reports)."""
    if not count:
        return 0
    wanted = int(count * q)
    seen = 0
    for bucket, n in sorted(((float(k), v) for k, v in histogram.items()), reverse=True):
        seen += n
        if count - seen <= wanted:
            return bucket
    return 0


def merge_rows(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Combined figures of several request rows (histograms added, percentiles recomputed)."""
    if not rows:
        return None
    count = sum(r["count"] for r in rows)
    failures = sum(r["failures"] for r in rows)
    histogram: dict[str, int] = {}
    for r in rows:
        for k, v in (r.get("histogram") or {}).items():
            histogram[k] = histogram.get(k, 0) + v
    figures = {
        "count": count,
        "failures": failures,
        "rps": sum(r["rps"] for r in rows),
        "avg_ms": sum(r["avg_ms"] * r["count"] for r in rows) / count if count else 0.0,
    }
    for key, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        figures[key] = percentile(histogram, count, q) if histogram else max(r[key] for r in rows)
    return figures


def covers(target: GateTarget, row: dict[str, Any]) -> bool:
    """Whether a request row of summary.json (``type``, ``name``) is one a name/type target means."""
    return (not target.name or fnmatch.fnmatchcase(row["name"], target.name)) and (
        not target.request_type or row["type"] == target.request_type
    )


def select(target: GateTarget, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The figures a target refers to, or None when it matches nothing."""
    if target.total:
        figures = dict(summary["totals"])
    elif target.user_class:
        rows = [r for r in summary.get("user_classes", []) if r["user_class"] == target.user_class]
        figures = dict(rows[0]) if rows else None
    elif target.chain:
        rows = [r for r in summary["requests"] if r["type"] == "CHAIN" and r["name"] == target.chain]
        figures = dict(rows[0]) if rows else None
    else:
        figures = merge_rows([r for r in summary["requests"] if covers(target, r)])
    if figures is None or not figures.get("count"):
        return None
    figures["error_rate"] = figures["failures"] / figures["count"]
    figures["success_rate"] = 1 - figures["error_rate"]
    return figures


def evaluate(gates: list[Gate], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One result per gate threshold: target, metric, threshold, actual, status (pass/fail/error)."""
    results = []
    for index, gate in enumerate(gates):
        label = gate.target.label()
        figures = select(gate.target, summary)
        for metric, threshold in gate.thresholds().items():
            row: dict[str, Any] = {"gate": index, "target": label, "metric": metric, "threshold": threshold}
            if figures is None:
                where = str(gate.source) if gate.source else "?:?: "
                row.update(
                    status="error",
                    actual=None,
                    message=f"{where}.target: {label} matches no request of this run",
                )
            else:
                figure, op = METRICS[metric]
                actual = figures[figure]
                passed = actual >= threshold if op == ">=" else actual <= threshold
                row.update(status="pass" if passed else "fail", actual=round(actual, 6), figure=figure, op=op)
            results.append(row)
    return results


def verdict(results: list[dict[str, Any]]) -> str:
    statuses = {r["status"] for r in results}
    if "error" in statuses:
        return "error"
    return "fail" if "fail" in statuses else "pass"


def format_table(results: list[dict[str, Any]]) -> str:
    lines = ["SLO gates:"]
    for r in results:
        mark = {"pass": "✓", "fail": "✗", "error": "!"}[r["status"]]
        if r["status"] == "error":
            lines.append(f"  {mark} {r['message']}")
            continue
        actual, threshold = r["actual"], r["threshold"]
        unit = " ms" if r["metric"].endswith("_ms_max") else ""
        shown = f"{actual:.4g}{unit} {r['op']} {threshold:g}{unit}"
        lines.append(f"  {mark} {r['target']:<40} {r['metric']:<24} {shown}")
    return "\n".join(lines)
