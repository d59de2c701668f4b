"""Soak memory (opt-in, long): a ``platform`` run of 30 minutes, master/worker RSS every 10 s.

``just bench soak`` starts ``loadstack run --profile platform`` (native: the demo platform and
its consumer, a master and workers; needs PostgreSQL, RabbitMQ and Redis) for ``--minutes``
(30) and samples the resident memory of the Locust master and every worker every
``--interval`` seconds (anonymous RSS: heap and stacks, see :func:`rss_mib`).  Target:
growth < 1 % between minute 5 and minute 30 for every process (the master's per-second stats
and chart history are bounded by :mod:`loadstack.retention`).

Following the benches' method, the growth is stated with its spread: the samples of the minute
around minute 5 (minute 5 of 30 scales with ``--minutes``: the sixth of the run) and of the
last minute give a median growth and a min–max (lowest late sample over highest early sample,
and the reverse); a verdict only when the whole interval is on one side of 1 %.

The run's directory gets ``soak-rss.json``, ``soak-rss.svg`` (the curve) and ``soak.html``
(the curve and the table); the paths are printed.  ``--minutes 3`` is a quick check of the
bench itself, not a soak.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench.common import ROOT, locust_children
from bench.harness import Spread, Target, print_figure, record

TARGET = Target(1.0, at_least=False)
SVG_STYLE = (
    "<style>svg{font-family:Helvetica,Arial,sans-serif;background:#fafafa}"
    ".title{font-size:13px;font-weight:600;fill:#1d2330}.axis,.legend{font-size:11px;fill:#4b5563}"
    ".grid{stroke:#e5e7eb;stroke-width:1}</style>"
)


def roles(root: int) -> dict[str, int]:
    """``{"master": pid, "worker 1": pid, ...}`` among the descendants of the runner."""
    master, workers = locust_children(root)
    found = {"master": master} if master is not None else {}
    found.update({f"worker {i + 1}": pid for i, pid in enumerate(workers)})
    return found


def rss_mib(pid: int) -> float | None:
    """Anonymous resident memory (``RssAnon``: heap, stacks): what a leak grows.

    Plain RSS also counts the shared libraries' file pages, which the kernel drops and reloads
    under page-cache pressure; a first 30-minute run saw every process's RSS fall 20 % at once
    that way, which says nothing about the processes themselves."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


def growth(samples: list[tuple[float, float]], minutes: float) -> Spread | None:
    """Growth in % from the window around the sixth of the run to the last minute."""
    early_at = minutes * 60 / 6
    span = min(60.0, minutes * 60 / 6)  # one minute, or less on a short check
    early = [v for t, v in samples if abs(t - early_at) <= span / 2]
    # Not after the planned end: the master then builds its reports (one sample read 210 MiB).
    late = [v for t, v in samples if minutes * 60 - span <= t <= minutes * 60]
    if not early or not late:
        return None
    mid = (statistics.median(late) / statistics.median(early) - 1) * 100
    return Spread(mid, (min(late) / max(early) - 1) * 100, (max(late) / min(early) - 1) * 100, len(late))


def write_report(
    run_dir: Path, minutes: float, curves: dict[str, list[tuple[float, float]]], rows: list
) -> None:
    from loadstack.report import html, svg

    times = sorted({round(t) for pts in curves.values() for t, _ in pts})
    by_time = {name: dict((round(t), v) for t, v in pts) for name, pts in curves.items()}
    chart = svg.line_chart(
        f"RSS of the Locust processes over a {minutes:g}-minute platform run",
        [f"{t / 60:.1f}m" for t in times],
        {name: [by_time[name].get(t) for t in times] for name in curves},
        unit=" MiB",
        width=760,
        height=300,
    )
    standalone = chart.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    standalone = standalone.replace(">", ">" + SVG_STYLE, 1)
    (run_dir / "soak-rss.svg").write_text(standalone, encoding="utf-8")
    (run_dir / "soak-rss.json").write_text(
        json.dumps({"minutes": minutes, "rss_mib": curves, "growth": rows}, indent=1), encoding="utf-8"
    )
    table = "<table><thead><tr><th class='l'>process</th><th>growth %</th><th>min</th><th>max</th><th>verdict</th></tr></thead><tbody>"
    for row in rows:
        table += (
            f"<tr><td class='l'>{row['process']}</td><td>{row['median']:+.2f}</td><td>{row['low']:+.2f}</td>"
            f"<td>{row['high']:+.2f}</td><td>{row['verdict']}</td></tr>"
        )
    table += "</tbody></table>"
    (run_dir / "soak.html").write_text(
        html.page(f"Soak memory, {minutes:g} minutes", [f"<div class='charts'>{chart}</div>", table]),
        encoding="utf-8",
    )


def main(argv: list[str] | None = None) -> dict:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="run length (default 30)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--profile", default="platform")
    parser.add_argument("--results-dir", help="where the run's directory goes (default: ./results)")
    args = parser.parse_args(argv)
    if args.minutes < 1 or args.interval <= 0:
        parser.error("--minutes must be >= 1 and --interval > 0")
    run_id = time.strftime("soak-%Y%m%dT%H%M%SZ", time.gmtime())
    results = Path(args.results_dir or ROOT / "results")
    cmd = [
        sys.executable, "-m", "loadstack", "run", "--native", "--profile", args.profile,
        "--run-time", f"{int(args.minutes * 60)}s", "--run-id", run_id, "--results-dir", str(results),
    ]  # fmt: skip
    print(
        f"soak: {args.profile} profile for {args.minutes:g} min, RSS every {args.interval:g}s "
        f"(run {run_id}); pinning: none (memory is the figure, not CPU)",
        flush=True,
    )
    from loadstack.processes import free_port

    env = {**os.environ, "LOADSTACK_METRICS_PORT": str(free_port()), "LOADSTACK_RUN_MODE": "native"}
    results.mkdir(parents=True, exist_ok=True)
    log = open(results / f"{run_id}.soak.log", "w")  # noqa: SIM115  (closed when the run is over)
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    curves: dict[str, list[tuple[float, float]]] = {}
    started = time.monotonic()
    try:
        deadline = started + args.minutes * 60 + 120
        next_at = started
        while proc.poll() is None and time.monotonic() < deadline:
            now = time.monotonic()
            for name, pid in roles(proc.pid).items():
                mib = rss_mib(pid)
                if mib is not None:
                    curves.setdefault(name, []).append((now - started, mib))
            if curves and int(now - started) % 60 < args.interval:
                print(
                    f"  {(now - started) / 60:5.1f} min  "
                    + "  ".join(f"{n} {pts[-1][1]:.0f} MiB" for n, pts in sorted(curves.items())),
                    flush=True,
                )
            next_at += args.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    print(f"soak: run exited with {proc.returncode} (its output: {log.name})")
    rows = []
    for name, pts in sorted(curves.items()):
        spread = growth(pts, args.minutes)
        if spread is None:
            print(f"    {name}: too few samples for a growth figure")
            continue
        result = print_figure("soak", f"{name} RSS growth", spread, TARGET, spec="+.2f", unit=" %")
        rows.append({"process": name, **spread.__dict__, "verdict": result})
    run_dir = results / run_id
    if run_dir.is_dir() and curves:
        write_report(run_dir, args.minutes, curves, rows)
        print(f"soak: curve {run_dir / 'soak-rss.svg'}, report {run_dir / 'soak.html'}")
    record("soak", "worst RSS growth %", Spread.of([r["median"] for r in rows] or [0.0]))
    return {"rows": rows, "run_dir": str(run_dir)}


if __name__ == "__main__":
    main()
