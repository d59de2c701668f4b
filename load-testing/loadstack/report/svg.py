"""Inline SVG charts for the HTML reports: no JavaScript, no external resources."""

from __future__ import annotations

import math
from html import escape

PALETTE = [
    "#2f6fdf",
    "#e4572e",
    "#17a398",
    "#f3a712",
    "#8e44ad",
    "#4c5b61",
    "#d81159",
    "#3a7d44",
    "#ff7f11",
    "#1b998b",
]
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 32, 48


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _frame(
    title: str, width: int, height: int, y_max: float, y_unit: str, kind: str, total_height: int | None = None
) -> list[str]:
    """The chart's outline: plot area of ``height``, drawn in an image of ``total_height`` (legend rows)."""
    total = total_height or height
    parts = [
        f'<svg class="chart {kind}" width="{width}" height="{total}" '
        f'viewBox="0 0 {width} {total}" role="img" aria-label="{escape(title)}">',
        f'<text x="{PAD_L}" y="18" class="title">{escape(title)}</text>',
    ]
    plot_h = height - PAD_T - PAD_B
    for i in range(5):
        y = PAD_T + plot_h - plot_h * i / 4
        value = y_max * i / 4
        label = f"{value:g}" if value < 1000 else f"{value / 1000:g}k"
        parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{width - PAD_R}" y2="{y:.1f}" class="grid"/>')
        parts.append(
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{label}{escape(y_unit)}</text>'
        )
    return parts


LEGEND_ROW = 16


def _legend_rows(names: list[str], width: int) -> list[list[tuple[int, str, int]]]:
    """Legend entries ``(series index, label, x)`` in rows that fit the width: every series is named."""
    rows: list[list[tuple[int, str, int]]] = [[]]
    x = PAD_L
    for i, name in enumerate(names):
        short = name if len(name) <= 34 else name[:33] + "…"
        size = 24 + 7 * len(short)
        if rows[-1] and x + size > width - PAD_R:
            rows.append([])
            x = PAD_L
        rows[-1].append((i, short, x))
        x += size
    return rows


def _legend_height(names: list[str], width: int) -> int:
    """Height the legend adds below the one row the chart's bottom margin already holds."""
    return LEGEND_ROW * (len(_legend_rows(names, width)) - 1)


def _legend(names: list[str], width: int, height: int) -> list[str]:
    parts = []
    rows = _legend_rows(names, width)
    for r, row in enumerate(rows):
        y = height - LEGEND_ROW * (len(rows) - r)
        for i, short, x in row:
            color = PALETTE[i % len(PALETTE)]
            parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{color}"/>')
            parts.append(f'<text x="{x + 14}" y="{y + 9}" class="legend">{escape(short)}</text>')
    return parts


def _seconds(value: float) -> str:
    """An axis label in seconds, as exact as its position (2.4 s is not "2s")."""
    return f"{value:.1f}".rstrip("0").rstrip(".") + "s"


def line_chart(
    title: str,
    x_labels: list[str],
    series: dict[str, list[float | None]],
    *,
    unit: str = "ms",
    width: int = 760,
    height: int = 280,
) -> str:
    """One line per series over categorical x (e.g. runs); ``None`` leaves a gap."""
    values = [v for ys in series.values() for v in ys if v is not None]
    y_max = _nice_max(max(values, default=1.0) * 1.05)
    total = height + _legend_height(list(series), width)
    parts = _frame(title, width, height, y_max, unit, "line", total)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    n = max(len(x_labels), 1)
    xs = [PAD_L + (plot_w * (i + 0.5) / n) for i in range(len(x_labels))]
    step = max(1, len(x_labels) // 10)
    for i, label in enumerate(x_labels):
        if i % step == 0:
            short = label if len(label) <= 18 else label[:17] + "…"
            parts.append(
                f'<text x="{xs[i]:.1f}" y="{height - PAD_B + 16}" class="axis" text-anchor="middle">{escape(short)}</text>'
            )
    for i, (name, ys) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        points = [(xs[j], PAD_T + plot_h - plot_h * y / y_max) for j, y in enumerate(ys) if y is not None]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(
                f'<polyline class="series" points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        for x, y in points:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{escape(name)}</title></circle>'
            )
    parts += _legend(list(series), width, total)
    parts.append("</svg>")
    return "\n".join(parts)


def cdf_points(histogram: dict[str, int]) -> list[tuple[float, float]]:
    pairs = sorted((float(k), v) for k, v in histogram.items() if v)
    total = sum(v for _, v in pairs) or 1
    out, seen = [], 0
    for value, count in pairs:
        seen += count
        out.append((value, seen / total))
    return out


def cdf_chart(title: str, curves: dict[str, dict[str, int]], *, width: int = 380, height: int = 240) -> str:
    """Cumulative latency distributions overlaid (x: ms up to the largest p99.5, y: share of requests)."""
    points = {name: cdf_points(h) for name, h in curves.items()}
    cutoffs = [next((v for v, f in pts if f >= 0.995), pts[-1][0]) for pts in points.values() if pts]
    x_max = _nice_max(max(cutoffs, default=1.0))
    total = height + _legend_height(list(points), width)
    parts = _frame(title, width, height, 100.0, "%", "cdf", total)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    for i in range(5):
        x = PAD_L + plot_w * i / 4
        parts.append(
            f'<text x="{x:.1f}" y="{height - PAD_B + 16}" class="axis" text-anchor="middle">{x_max * i / 4:g}ms</text>'
        )
    for i, pts in enumerate(points.values()):
        color = PALETTE[i % len(PALETTE)]
        xy, last = [], (PAD_L, PAD_T + plot_h)
        for value, frac in pts:
            x = PAD_L + plot_w * min(value, x_max) / x_max
            y = PAD_T + plot_h - plot_h * frac
            xy += [(x, last[1]), (x, y)]  # steps
            last = (x, y)
        if xy:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            parts.append(
                f'<polyline class="series" points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
    parts += _legend(list(points), width, total)
    parts.append("</svg>")
    return "\n".join(parts)


def time_chart(
    title: str,
    seconds: list[float],
    series: dict[str, list[float | None]],
    *,
    unit: str = "",
    width: int = 760,
    height: int = 280,
    dashed: tuple[str, ...] = (),
) -> str:
    """Lines over time (x: seconds since the start); ``dashed`` names series drawn as dashes (targets)."""
    values = [v for ys in series.values() for v in ys if v is not None]
    y_max = _nice_max(max(values, default=1.0) * 1.05)
    total = height + _legend_height(list(series), width)
    parts = _frame(title, width, height, y_max, unit, "time", total)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    t_max = max(seconds[-1] if seconds else 1.0, 1.0)
    for i in range(6):
        x = PAD_L + plot_w * i / 5
        parts.append(
            f'<text x="{x:.1f}" y="{height - PAD_B + 16}" class="axis" text-anchor="middle">{_seconds(t_max * i / 5)}</text>'
        )
    for i, (name, ys) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        points = [
            (PAD_L + plot_w * t / t_max, PAD_T + plot_h - plot_h * y / y_max)
            for t, y in zip(seconds, ys, strict=False)
            if y is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            dash = ' stroke-dasharray="6 4"' if name in dashed else ""
            parts.append(
                f'<polyline class="series" points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}>'
                f"<title>{escape(name)}</title></polyline>"
            )
    parts += _legend(list(series), width, total)
    parts.append("</svg>")
    return "\n".join(parts)


def workload_chart(summary: dict) -> str | None:
    """Users and arrival rate against time, from ``summary.json`` → ``workload.timeline``."""
    rows = ((summary.get("workload") or {}).get("timeline")) or []
    if len(rows) < 2:
        return None
    seconds = [float(r["t"]) for r in rows]
    series: dict[str, list[float | None]] = {}
    if any("target" in r for r in rows):
        series["target rate"] = [r.get("target") for r in rows]
    series["started/s"] = [float(r["started"]) for r in rows]
    if any(r["dropped"] for r in rows):
        series["dropped/s"] = [float(r["dropped"]) for r in rows]
    series["users"] = [float(r["users"]) for r in rows]
    series["busy users"] = [float(r["busy"]) for r in rows]
    title = f"{summary.get('profile', 'run')}: users and arrival rate (iterations/s) against time"
    css = (
        "<style>.title{font:600 13px sans-serif;fill:#1d2330}.axis,.legend{font:11px sans-serif;fill:#4b5563}"
        ".grid{stroke:#e5e7eb;stroke-width:1}</style>"
    )
    chart = time_chart(title, seconds, series, dashed=("target rate",))
    # Standalone file: the namespace and the styles the HTML report otherwise provides.
    return chart.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1).replace(">", ">" + css, 1)
