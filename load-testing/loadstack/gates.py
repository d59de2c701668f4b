"""SLO gates: thresholds per request name (glob), request type, user class, chain or the total.

Declared in a profile (``thresholds:``) or an SLO file it references (``slo:``).
Evaluated on the post-warm-up figures of ``summary.json`` at the end of a run
and, for gates with ``abort_on_breach``, while it runs (after ``grace``),
stopping it early with the breach named.  Plain Python: the master evaluates
them live, the runner turns the result into the exit status (0 pass, 3 fail,
2 a gate that matches nothing).

Any percentile: ``percentiles_ms_max: {p75: 120, p99.9: 800}``.  A gate with
``for: 10s`` is *sustained*: it fails only when its threshold is breached in every
second of a 10 s stretch (second by second, see :mod:`loadstack.windows`), so a
short spike does not fail it and a lasting breach does.

``corrected: {p99_ms_max: 500}`` judges an open-model run's latency from the
intended start (``summary.json`` → ``corrected``, :mod:`loadstack.workload.intended`):
of the class's iterations (``user_class``), the chain's ``CHAIN`` entry (``chain``),
every class's iterations (``total``), or the first requests of iterations (name/type).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationInfo, model_validator

from loadstack import configfile, limits
from loadstack.durations import PositiveSeconds, Seconds

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
    "dropped_iterations_max": ("dropped_iterations", "<="),
}
PERCENTILE_KEY = r"^p(100|\d{1,2}(\.\d+)?)$"
Rate = limits.Rate | None
Millis = limits.Millis | None
Throughput = Annotated[float, Strict(), Field(ge=0, le=1e9, allow_inf_nan=False)]


class GateTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=limits.MAX_NAME,
        description="glob over request names, e.g. /api/v1/auth/*",
    )
    request_type: limits.Name | None = None
    user_class: limits.Name | None = None
    chain: limits.Name | None = None
    total: Annotated[bool, Strict()] = False

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


class CorrectedThresholds(BaseModel):
    """``corrected:``: bounds on latency from the scheduled start (open-model runs only)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    p50_ms_max: Millis = None
    p95_ms_max: Millis = None
    p99_ms_max: Millis = None
    max_ms_max: Millis = None
    percentiles_ms_max: (
        Annotated[dict[Annotated[str, Field(pattern=PERCENTILE_KEY)], limits.Millis], Field(max_length=100)]
        | None
    ) = Field(default=None, description="any percentile: {p99.9: 800}")

    @model_validator(mode="after")
    def _has_threshold(self) -> CorrectedThresholds:
        if not self.thresholds():
            raise ValueError("corrected: give at least one of p50_ms_max, p95_ms_max, p99_ms_max, max_ms_max")
        return self

    def thresholds(self) -> dict[str, float]:
        """``corrected.<figure>_max`` -> bound, as gate results name them."""
        out = {
            f"{CORRECTED}{k}": getattr(self, k)
            for k in ("p50_ms_max", "p95_ms_max", "p99_ms_max", "max_ms_max")
            if getattr(self, k) is not None
        }
        for key, ms in (self.percentiles_ms_max or {}).items():
            out[f"{CORRECTED}{key}_ms_max"] = ms
        return out


CORRECTED = "corrected."


class GateSource(BaseModel):
    """Where a gate was written, for messages that point at the line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    line: int | None = None
    field: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line if self.line is not None else '?'}: {self.field}"


class Gate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    target: GateTarget
    success_rate_min: Rate = None
    error_rate_max: Rate = None
    p50_ms_max: Millis = None
    p95_ms_max: Millis = None
    p99_ms_max: Millis = None
    avg_ms_max: Millis = None
    rps_min: Throughput | None = None
    chain_success_rate_min: Rate = None
    dropped_iterations_max: Annotated[int, Strict(), Field(ge=0, le=limits.MAX_ITERATIONS)] | None = None
    percentiles_ms_max: (
        Annotated[dict[Annotated[str, Field(pattern=PERCENTILE_KEY)], limits.Millis], Field(max_length=100)]
        | None
    ) = Field(default=None, description="any percentile: {p75: 120, p99.9: 800}")
    corrected: CorrectedThresholds | None = Field(
        default=None, description="latency from the intended start (open model): {p99_ms_max: 500}"
    )
    sustained: PositiveSeconds | None = Field(
        default=None, alias="for", description="fail only when the breach holds this long, second by second"
    )
    abort_on_breach: Annotated[bool, Strict()] = False
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
            raise ValueError(f"give at least one threshold: {', '.join(METRICS)}, corrected")
        if self.corrected is not None and self.sustained is not None:
            raise ValueError("corrected: figures are over the whole run: put them in a gate without `for:`")
        if self.chain_success_rate_min is not None and not self.target.chain:
            raise ValueError("chain_success_rate_min needs a chain target")
        if self.dropped_iterations_max is not None:
            # Iterations belong to the run, a class or a chain; a request name has none to drop.
            if self.target.name or self.target.request_type:
                raise ValueError(
                    "dropped_iterations_max needs a total, user_class or chain target "
                    "(requests are not iterations)"
                )
            if self.sustained is not None:
                raise ValueError(
                    "dropped_iterations_max is a count over the whole run: put it in a gate without `for:`"
                )
        return self

    def thresholds(self) -> dict[str, float]:
        out = {k: getattr(self, k) for k in METRICS if getattr(self, k) is not None}
        for key, ms in (self.percentiles_ms_max or {}).items():
            out[f"{key}_ms_max"] = ms
        if self.corrected is not None:
            out.update(self.corrected.thresholds())
        return out


def metric_of(name: str) -> tuple[str, str, float | None]:
    """(figure, comparison, quantile) of a threshold name; quantile for ``pNN_ms_max`` figures."""
    if name.startswith(CORRECTED):
        figure, op, q = metric_of(name.removeprefix(CORRECTED))
        return CORRECTED + figure, op, (1.0 if figure == "max_ms" else q)
    if name in METRICS:
        figure, op = METRICS[name]
        q = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}.get(figure)
        return figure, op, q
    pct = name.removesuffix("_ms_max")
    return f"{pct}_ms", "<=", float(pct[1:]) / 100


class SloFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    thresholds: list[Gate] = Field(min_length=1, max_length=limits.MAX_ITEMS)


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


def rows_of(target: GateTarget, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The request rows of summary.json a target covers (for histograms)."""
    if target.total:
        return list(summary["requests"])
    if target.chain:
        return [r for r in summary["requests"] if r["type"] == "CHAIN" and r["name"] == target.chain]
    if target.user_class:
        return []  # per-class histograms are in user_classes rows
    return [r for r in summary["requests"] if covers(target, r)]


def dropped_of(target: GateTarget, summary: dict[str, Any]) -> int:
    """Dropped iterations (open model) of the scenarios a target covers."""
    workload = summary.get("workload") or {}
    scenarios = workload.get("scenarios") or {}
    if target.total:
        return int(summary.get("dropped_iterations") or 0)
    if target.user_class:
        return sum(
            s.get("dropped", 0) for s in scenarios.values() if s.get("user_class") == target.user_class
        )
    if target.chain:
        return sum(s.get("dropped", 0) for s in scenarios.values() if s.get("chain") == target.chain)
    return 0


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
    figures["dropped_iterations"] = dropped_of(target, summary)
    return figures


def figure(figures: dict[str, Any], name: str, target: GateTarget, summary: dict[str, Any]) -> float:
    """One figure; a percentile that summary.json does not list is computed from the histograms."""
    if name in figures:
        return figures[name]
    q = float(name.removeprefix("p").removesuffix("_ms")) / 100
    if figures.get("histogram"):
        return percentile(figures["histogram"], figures["count"], q)
    histogram: dict[str, int] = {}
    for row in rows_of(target, summary):
        for k, v in (row.get("histogram") or {}).items():
            histogram[k] = histogram.get(k, 0) + v
    if target.user_class:
        for row in summary.get("user_classes", []):
            if row["user_class"] == target.user_class:
                histogram = row.get("histogram") or {}
    return percentile(histogram, sum(histogram.values()), q)


def evaluate(
    gates: list[Gate], summary: dict[str, Any], indexes: list[int] | None = None
) -> list[dict[str, Any]]:
    """One result per gate threshold: target, metric, threshold, actual, status (pass/fail/error).

    A sustained gate (``for``) is judged on the longest stretch of seconds its threshold was
    breached (``summary["sustained"]``, kept by :mod:`loadstack.windows`): ``actual`` is the
    figure over that stretch, ``sustained_s`` its length.  ``indexes`` are the gates' positions in
    the run's list (default: their order here).
    """
    results = []
    for position, gate in enumerate(gates):
        index = indexes[position] if indexes else position
        label = gate.target.label()
        figures = select(gate.target, summary)
        for metric, threshold in gate.thresholds().items():
            row: dict[str, Any] = {"gate": index, "target": label, "metric": metric, "threshold": threshold}
            name, op, q = metric_of(metric)
            if metric.startswith(CORRECTED):
                row.update(_corrected(gate, summary, name, op, q, threshold))
            elif figures is None:
                where = str(gate.source) if gate.source else "?:?: "
                row.update(
                    status="error",
                    actual=None,
                    message=f"{where}.target: {label} matches no request of this run",
                )
            elif gate.sustained:
                held = (summary.get("sustained") or {}).get(f"{index}:{metric}") or {}
                longest = float(held.get("longest_s", 0))
                failed = longest >= gate.sustained
                # Failed: the figure over the breach; passed: over the whole run.
                actual = held.get("actual") if failed else None
                if actual is None:
                    actual = figure(figures, name, gate.target, summary)
                row.update(
                    status="fail" if failed else "pass",
                    actual=round(actual, 6),
                    figure=name,
                    op=op,
                    sustained_s=longest,
                    window_s=gate.sustained,
                )
                if held.get("from_s") is not None:
                    row["breach_from_s"] = held["from_s"]
            else:
                actual = figure(figures, name, gate.target, summary)
                passed = actual >= threshold if op == ">=" else actual <= threshold
                row.update(status="pass" if passed else "fail", actual=round(actual, 6), figure=name, op=op)
            results.append(row)
    return results


def _corrected(
    gate: Gate, summary: dict[str, Any], name: str, op: str, q: float | None, threshold: float
) -> dict[str, Any]:
    """A ``corrected.*`` threshold, judged on the histograms of ``summary.json`` → ``corrected``."""
    from loadstack.workload import intended

    rows = intended.entries_of(gate.target, summary.get("corrected"))
    if not rows:
        where = str(gate.source) if gate.source else "?:?: "
        return {
            "status": "error",
            "actual": None,
            "message": f"{where}.target: {gate.target.label()} has no latency from the intended start: "
            "only open-model iterations (rate:, rate stages, breakpoint) have one",
        }
    actual = intended.percentile_ms(rows, q if q is not None else 1.0)
    return {
        "status": "pass" if actual <= threshold else "fail",
        "actual": round(actual, 6),
        "figure": name,
        "op": op,
    }


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
        lines.append(f"  {mark} {r['target']:<40} {r['metric']:<24} {describe(r)}")
    return "\n".join(lines)


def describe(result: dict[str, Any]) -> str:
    """``812 ms <= 500 ms`` — the measured value against the threshold (and how long, when sustained)."""
    actual, threshold = result["actual"], result["threshold"]
    unit = " ms" if result["metric"].endswith("_ms_max") else ""
    shown = f"{actual:.4g}{unit} {result['op']} {threshold:g}{unit}"
    if "window_s" in result:
        held = result.get("sustained_s", 0)
        if result["status"] == "fail":
            shown += f" for {held:g}s"
            if result.get("breach_from_s") is not None:
                shown += f" from {result['breach_from_s']:g}s"
            shown += f" (fails at {result['window_s']:g}s)"
        else:
            shown += f" (longest breach {held:g}s of the {result['window_s']:g}s that fail)"
    return shown
