"""Regression detection between two runs, per request name, on latency distributions.

A difference is a regression only when it is both **large enough** (above a
tolerance) and **significant**:

* p95 latency: the relative change exceeds ``p95_tolerance`` (default +10 %) and
  the absolute change exceeds ``p95_min_ms`` (default 5 ms: below that, a change is
  timer resolution and scheduling jitter), and the 95 % bootstrap confidence
  interval of the p95 difference lies above zero.  The bootstrap resamples each
  run's latency histogram: the p95 of a resample of N requests is the k-th order
  statistic, i.e. the empirical quantile function at U ~ Beta(k, N−k+1), so each
  replicate costs one beta draw instead of N draws.
* noise: the low end of that interval also exceeds the window-to-window p95 spread the two runs
  themselves show (the larger of their q90 − q10 of per-report-window p95s, see
  :mod:`loadstack.window_spread`).  Load beside the generator comes in bursts, so slow
  requests cluster in time and the per-request bootstrap (which assumes independent
  requests) is too sure of itself: two runs of the same build on a busy machine moved
  p95 by +57..150 % with a bootstrap interval above zero.  A difference inside what each
  run's own windows vary by is reported (``within_noise``), not called a regression.
  Runs without window figures (a local runner, older summaries) are judged without it.
* error rate: the increase exceeds ``error_tolerance_pp`` percentage points
  (default 1) and a one-sided two-proportion z-test gives p < ``alpha``.

* the generator: when either run's load generator was saturated (summary.json's
  ``generator``, :mod:`loadstack.generator_health`), its latencies include the generator's own
  delays; no regression is called and the comparison is *inconclusive* (exit status 7).

A Mann–Whitney U test (computed from the histograms, midranks for ties) is
reported for the whole distribution as information.  Throughput changes are
reported, not judged: they follow the load profile more than the system.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from dataclasses import asdict, dataclass, field
from typing import Any

from loadstack.gates import percentile
from loadstack.generator_health import BOTTLENECK
from loadstack.window_spread import noise_ms


@dataclass
class Settings:
    p95_tolerance: float = 0.10
    p95_min_ms: float = 5.0
    error_tolerance_pp: float = 1.0
    alpha: float = 0.05
    resamples: int = 2000
    min_requests: int = 20
    seed: int = 0
    # Judge p95 against the runs' own window-to-window spread (False: the bootstrap alone).
    window_noise: bool = True


@dataclass
class EndpointResult:
    type: str
    name: str
    baseline: dict[str, float]
    current: dict[str, float]
    change: dict[str, dict[str, float | None]]
    p95_ci_ms: tuple[float, float] | None
    mann_whitney_p: float | None
    error_p: float | None
    regression: bool
    reasons: list[str] = field(default_factory=list)
    note: str = ""
    # The larger of the two runs' window p95 spreads (ms), None without enough windows.
    p95_noise_ms: float | None = None
    # The p95 rise passed tolerance and bootstrap but not the runs' own noise: not a regression.
    within_noise: str = ""


@dataclass
class Comparison:
    baseline_run: str
    current_run: str
    settings: Settings
    endpoints: list[EndpointResult]
    only_in_baseline: list[str]
    only_in_current: list[str]
    # Why no regression can be called (a run whose generator was saturated); "" when judged.
    inconclusive: str = ""

    @property
    def regressions(self) -> list[EndpointResult]:
        return [e for e in self.endpoints if e.regression]

    def as_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline_run,
            "current": self.current_run,
            "settings": asdict(self.settings),
            "regression": bool(self.regressions),
            "inconclusive": self.inconclusive or None,
            "endpoints": [asdict(e) for e in self.endpoints],
            "only_in_baseline": self.only_in_baseline,
            "only_in_current": self.only_in_current,
        }


# -- statistics on rounded-ms histograms ----------------------------------------------------------
def _sorted(histogram: dict[str, int]) -> tuple[list[float], list[int]]:
    pairs = sorted((float(k), v) for k, v in histogram.items() if v)
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def bootstrap_p95(
    histogram: dict[str, int], resamples: int, rng: random.Random, q: float = 0.95
) -> list[float]:
    """p95 of ``resamples`` bootstrap resamples of the histogram's requests."""
    values, counts = _sorted(histogram)
    n = sum(counts)
    cumulative, total = [], 0
    for c in counts:
        total += c
        cumulative.append(total / n)
    k = max(1, math.ceil(q * n))
    out = []
    for _ in range(resamples):
        u = rng.betavariate(k, n - k + 1)
        out.append(values[min(bisect_left(cumulative, u), len(values) - 1)])
    return out


def mann_whitney_p(base: dict[str, int], cur: dict[str, int]) -> float | None:
    """One-sided p-value that ``cur`` is stochastically larger than ``base`` (normal approximation, ties corrected)."""
    b_vals, b_counts = _sorted(base)
    c_vals, c_counts = _sorted(cur)
    n1, n2 = sum(b_counts), sum(c_counts)
    if not n1 or not n2:
        return None
    b = dict(zip(b_vals, b_counts, strict=True))
    c = dict(zip(c_vals, c_counts, strict=True))
    rank, rank_sum_cur, ties = 0, 0.0, 0.0
    for v in sorted(set(b) | set(c)):
        t = b.get(v, 0) + c.get(v, 0)
        midrank = rank + (t + 1) / 2
        rank_sum_cur += c.get(v, 0) * midrank
        ties += t**3 - t
        rank += t
    n = n1 + n2
    u = rank_sum_cur - n2 * (n2 + 1) / 2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    return 1 - _phi((u - n1 * n2 / 2) / math.sqrt(variance))


def error_increase_p(f1: int, n1: int, f2: int, n2: int) -> float | None:
    """One-sided p-value of a higher failure proportion in the second sample."""
    if not n1 or not n2:
        return None
    pooled = (f1 + f2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    return 1 - _phi((f2 / n2 - f1 / n1) / se)


def _figures(row: dict[str, Any]) -> dict[str, float]:
    return {
        "count": row["count"],
        "p50_ms": row["p50_ms"],
        "p95_ms": row["p95_ms"],
        "p99_ms": row["p99_ms"],
        "error_rate": row["failure_rate"],
        "rps": row["rps"],
    }


def _change(b: float, c: float) -> dict[str, float | None]:
    return {"abs": round(c - b, 6), "rel": round((c - b) / b, 6) if b else None}


def _run_noise(baseline: dict[str, Any], current: dict[str, Any], key: tuple[str, str]) -> float | None:
    """The larger window p95 spread of the two runs, or None when either run has no such figure."""
    spreads = [noise_ms(run, *key) for run in (baseline, current)]
    return None if None in spreads else round(max(s for s in spreads if s is not None), 3)


def compare(
    baseline: dict[str, Any], current: dict[str, Any], settings: Settings | None = None
) -> Comparison:
    settings = settings or Settings()
    rng = random.Random(settings.seed)
    base_rows = {(r["type"], r["name"]): r for r in baseline["requests"]}
    cur_rows = {(r["type"], r["name"]): r for r in current["requests"]}
    results = []
    for key in sorted(base_rows.keys() & cur_rows.keys()):
        b, c = base_rows[key], cur_rows[key]
        fb, fc = _figures(b), _figures(c)
        change = {k: _change(fb[k], fc[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "error_rate", "rps")}
        result = EndpointResult(key[0], key[1], fb, fc, change, None, None, None, False)
        if b["count"] < settings.min_requests or c["count"] < settings.min_requests:
            result.note = f"fewer than {settings.min_requests} requests on a side: not judged"
            results.append(result)
            continue
        hb, hc = b.get("histogram") or {}, c.get("histogram") or {}
        if any(hb.values()) and any(hc.values()):
            p95_b, p95_c = percentile(hb, b["count"], 0.95), percentile(hc, c["count"], 0.95)
            diffs = sorted(
                x - y
                for x, y in zip(
                    bootstrap_p95(hc, settings.resamples, rng),
                    bootstrap_p95(hb, settings.resamples, rng),
                    strict=True,
                )
            )
            lo = diffs[int(0.025 * len(diffs))]
            hi = diffs[min(len(diffs) - 1, int(0.975 * len(diffs)))]
            result.p95_ci_ms = (lo, hi)
            result.mann_whitney_p = mann_whitney_p(hb, hc)
            delta = p95_c - p95_b
            result.p95_noise_ms = _run_noise(baseline, current, key) if settings.window_noise else None
            noise = result.p95_noise_ms
            if p95_b and delta / p95_b > settings.p95_tolerance and delta > settings.p95_min_ms and lo > 0:
                rise = f"p95 {p95_b:g} → {p95_c:g} ms (+{delta / p95_b:.0%}"
                # Beyond the noise with 95 % confidence: the interval's low end, not the point
                # estimate (a p95 of a hundred requests moves by more than its windows do).
                if noise is not None and lo <= noise:
                    result.within_noise = (
                        f"{rise}, 95% CI from {lo:+g} ms: within the {noise:g} ms its windows vary by"
                        " in these runs)"
                    )
                else:
                    beyond = f", beyond the runs' {noise:g} ms window spread" if noise is not None else ""
                    result.regression = True
                    result.reasons.append(f"{rise}, 95% CI of the difference {lo:+g}…{hi:+g} ms{beyond})")
        result.error_p = error_increase_p(b["failures"], b["count"], c["failures"], c["count"])
        increase_pp = 100 * (fc["error_rate"] - fb["error_rate"])
        if (
            increase_pp > settings.error_tolerance_pp
            and result.error_p is not None
            and result.error_p < settings.alpha
        ):
            result.regression = True
            result.reasons.append(
                f"error rate {fb['error_rate']:.2%} → {fc['error_rate']:.2%} (+{increase_pp:.1f} pp, p={result.error_p:.2g})"
            )
        results.append(result)
    label = lambda k: f"{k[0]} {k[1]}"  # noqa: E731
    inconclusive = _generator_bottleneck(baseline, current)
    if inconclusive:
        for result in results:
            if result.regression:  # what it would have called, kept as a note
                result.regression = False
                result.note = "not judged (generator saturated): " + "; ".join(result.reasons)
                result.reasons = []
    return Comparison(
        baseline["run_id"],
        current["run_id"],
        settings,
        results,
        [label(k) for k in sorted(base_rows.keys() - cur_rows.keys())],
        [label(k) for k in sorted(cur_rows.keys() - base_rows.keys())],
        inconclusive,
    )


def _generator_bottleneck(baseline: dict[str, Any], current: dict[str, Any]) -> str:
    """ "inconclusive: ..." naming the run(s) whose generator was saturated, or ""."""
    runs = [
        f"{side} run {run['run_id']}"
        + (f" ({run['generator']['reason']})" if run["generator"].get("reason") else "")
        for side, run in (("baseline", baseline), ("current", current))
        if isinstance(run.get("generator"), dict) and run["generator"].get("saturated")
    ]
    return f"{BOTTLENECK} in the {' and the '.join(runs)}" if runs else ""


def format_table(comparison: Comparison) -> str:
    head = f"{'':2}{'Type':<7} {'Name':<40} {'p95 base':>9} {'p95 now':>9} {'Δp95':>7} {'err base':>8} {'err now':>8} {'rps Δ':>7}"
    lines = [
        f"compare {comparison.current_run} against baseline {comparison.baseline_run}",
        head,
        "-" * len(head),
    ]
    for e in comparison.endpoints:
        mark = "✗" if e.regression else " "
        rel = e.change["p95_ms"]["rel"]
        rps = e.change["rps"]["rel"]
        name = e.name if len(e.name) <= 40 else e.name[:39] + "…"
        lines.append(
            f"{mark:<2}{e.type[:7]:<7} {name:<40} {e.baseline['p95_ms']:>9g} {e.current['p95_ms']:>9g} "
            f"{(f'{rel:+.0%}' if rel is not None else '-'):>7} {e.baseline['error_rate']:>8.2%} {e.current['error_rate']:>8.2%} "
            f"{(f'{rps:+.0%}' if rps is not None else '-'):>7}"
        )
    regressions = comparison.regressions
    lines.append("")
    if comparison.inconclusive:
        lines.append(comparison.inconclusive)
        lines.append("no regression is called: compare a run whose generator kept up")
        lines.extend(
            f"  {e.type} {e.name}: {e.note}"
            for e in comparison.endpoints
            if e.note.startswith("not judged (generator")
        )
    elif regressions:
        lines.append(f"REGRESSION in {len(regressions)} of {len(comparison.endpoints)} endpoints:")
        for e in regressions:
            lines.append(f"  {e.type} {e.name}: " + "; ".join(e.reasons))
    else:
        lines.append(f"no regression ({len(comparison.endpoints)} endpoints compared)")
    noisy = [e for e in comparison.endpoints if e.within_noise]
    if noisy:
        lines.append("within the runs' own noise (not called a regression):")
        lines.extend(f"  {e.type} {e.name}: {e.within_noise}" for e in noisy)
    for label, names in (
        ("only in baseline", comparison.only_in_baseline),
        ("only in current", comparison.only_in_current),
    ):
        if names:
            lines.append(f"{label}: {', '.join(names)}")
    return "\n".join(lines)
