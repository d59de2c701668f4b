"""Arrival-rate accuracy: achieved / target iteration rate of an open-model run, at 1 and 2 workers.

Each round is a real ``loadstack run`` (a Locust master and N worker processes) of a
``rate:`` profile against the demo platform with 20 ms of injected latency, so iterations
overlap and the pool has to share the work.  One iteration is one ``GET /health``.  The
achieved rate is the mean of iterations started per second over the whole seconds of the run
(``summary.json`` → ``workload.scenarios.*.achieved_rate``); dropped iterations are printed
too: a pool that cannot keep up drops, it does not slow down.  Target: ratio >= 0.98 while
the load generator has headroom.

As in every bench, each figure is a median over ``--rounds`` (>= 5) with its min–max, the
worker counts alternating round by round (ABBA), and a verdict only when the whole interval
is on one side of the target.

    python -m bench arrival [--rate 100] [--seconds 20] [--workers 1,2] [--pool 40] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from locust import task

from loadstack.users.http import HttpUser
from loadstack_demo.process import demo_platform

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve()  # this file is also the rounds' locustfile (ArrivalUser)
TARGET = 0.98


class ArrivalUser(HttpUser):
    """One ``GET /health`` per iteration."""

    @task
    def health(self) -> None:
        self.client.get("/health", name="health")


def one_round(host: str, rate: float, seconds: int, workers: int, pool: int, out: Path, n: int) -> dict:
    run_id = f"arrival-{workers}w-{n}"
    profile = out / f"{run_id}.json"
    profile.write_text(
        json.dumps(
            {
                "name": run_id,
                "description": "bench arrival",
                "locustfile": str(LOCUSTFILE),
                "rate": rate,
                "max_users": pool,
                "spawn_rate": pool,
                "run_time": f"{seconds}s",
            }
        )
    )
    env = {**os.environ, "LOADSTACK_RUN_MODE": "native", "LOCUST_METRICS_EXPORT": "0"}
    cmd = [sys.executable, "-m", "loadstack", "run", "--profile", str(profile), "--run-id", run_id]
    cmd += ["--results-dir", str(out), "--workers", str(workers), "--host", host, "--skip-teardown"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, env=env, cwd=ROOT)
    summary_file = out / run_id / "summary.json"
    if not summary_file.exists():
        raise RuntimeError(f"round with {workers} worker(s) wrote no summary:\n{proc.stdout}\n{proc.stderr}")
    summary = json.loads(summary_file.read_text())
    scenario = next(iter(summary["workload"]["scenarios"].values()))
    if scenario.get("achieved_rate") is None:  # fewer than three whole seconds with starts
        raise RuntimeError(f"round with {workers} worker(s) started too few iterations to measure a rate")
    return {
        "workers": workers,
        "achieved": scenario["achieved_rate"],
        "ratio": scenario["achieved_rate"] / rate,
        "dropped": scenario["dropped"],
        "failures": summary["totals"]["failures"],
        "p95_ms": summary["totals"]["p95_ms"],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    # The harness only here: this file is also the rounds' locustfile, loaded by Locust processes.
    from bench.harness import MIN_ROUNDS, Spread, Target, alternating, print_figure, record

    parser = argparse.ArgumentParser(prog="bench arrival", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="target iterations per second")
    parser.add_argument("--seconds", type=int, default=20, help="length of each run")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, comma separated")
    parser.add_argument("--pool", type=int, default=40, help="max_users: the pool serving the rate")
    parser.add_argument(
        "--rounds", type=int, default=MIN_ROUNDS, help=f"runs per worker count (>= {MIN_ROUNDS})"
    )
    args = parser.parse_args(argv)
    if args.rounds < MIN_ROUNDS:
        parser.error(f"--rounds must be at least {MIN_ROUNDS} (a median with min–max needs them)")
    counts = [w.strip() for w in args.workers.split(",") if w.strip()]
    print(
        f"arrival: rate {args.rate:g}/s, pool {args.pool}, {args.seconds}s per run, workers {counts}, "
        f"{args.rounds} rounds (order alternating)",
        flush=True,
    )
    rows: dict[str, list[dict]] = {w: [] for w in counts}
    with demo_platform({"LOADSTACK_DEMO_LATENCY_MS": "20"}) as host, tempfile.TemporaryDirectory() as tmp:
        for n, order in enumerate(alternating(args.rounds, counts)):
            for workers in order:
                row = one_round(host, args.rate, args.seconds, int(workers), args.pool, Path(tmp), n)
                rows[workers].append(row)
                print(
                    f"    round {n + 1}, {workers} worker(s): {row['achieved']:.2f}/s, "
                    f"dropped {row['dropped']}, failures {row['failures']}, p95 {row['p95_ms']} ms",
                    flush=True,
                )
    for workers, runs in rows.items():
        print(f"  {workers} worker(s)")
        print_figure(
            "arrival",
            f"{workers} worker(s): achieved/target",
            Spread.of(r["ratio"] for r in runs),
            Target(TARGET),
            spec=".3f",
        )
        dropped = Spread.of(r["dropped"] for r in runs)
        record("arrival", f"{workers} worker(s): dropped iterations", dropped)
        print(
            f"    dropped iterations per run: {dropped.format('.0f')}; failures: {sum(r['failures'] for r in runs)}"
        )
    return [r for runs in rows.values() for r in runs]


if __name__ == "__main__":
    main()
