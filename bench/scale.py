"""Worker scaling: ``loadstack run`` with 1 vs 2 worker processes against the same static endpoint.

Each round starts a real native run (master + N workers, exporter on) of the bench profile
(``bench/profiles/static.yml``: one loadstack HTTP user class, no think time), waits for the
load to settle, and measures one window: requests served (counted by the server), the workers'
CPU and the master's CPU.  Variants alternate between rounds.

* Primary figure: worker CPU per request with 1 and with 2 workers.  Their ratio is the scaling
  efficiency; 2 x efficiency is the speed-up 2 workers give when each has a core to itself.
  Target: 2 x efficiency >= 1.8.
* Secondary: the measured throughput ratio, which on a 2-core machine is bounded by the cores
  the server and the master need too (printed with their CPU shares).
* The master's CPU share of one core during the window; target < 50 % (the seeds ask it at smoke
  load; this is a saturating load, the harder case).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

from bench.common import BENCH_PROFILE, ROOT, arguments, locust_children, pinned, server_stats, static_server
from bench.harness import (
    Meter,
    Sample,
    Spread,
    Target,
    cores_text,
    print_comparison,
    print_figure,
    record,
    run_rounds,
)

SPEEDUP_TARGET = Target(1.8)
MASTER_TARGET = Target(0.5, at_least=False)


def one_round(
    workers: int, url: str, server_pid: int, args, pinning, results: str
) -> tuple[Sample, Sample, Sample]:
    """(workers' sample, master's sample, server's sample) of one window with ``workers`` workers."""
    from loadstack.processes import free_port

    users = args.users
    cmd = [
        sys.executable, "-m", "loadstack", "run", "--native", "--profile", str(BENCH_PROFILE), "--host", url,
        "--workers", str(workers), "--users", str(users), "--spawn-rate", str(users),
        "--run-time", f"{int(args.duration + args.settle + 30)}s", "--results-dir", results,
        "--skip-seed", "--skip-teardown",
    ]  # fmt: skip
    env = {**os.environ, "LOADSTACK_METRICS_PORT": str(free_port()), "LOADSTACK_RUN_MODE": "native"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            master, worker_pids = locust_children(proc.pid)
            if master and len(worker_pids) == workers and server_stats(url)["count"] > 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"scale: the run with {workers} worker(s) did not start (exit {proc.returncode})"
                )
            time.sleep(0.1)
        if pinning.plan is not None:
            cores = sorted(pinning.plan[0] | pinning.plan[1], reverse=True)  # generator core first
            for i, pid in enumerate(worker_pids):
                pinning.pin(f"worker {i + 1}", pid, {cores[i % len(cores)]})
            pinning.pin("master", master, pinning.sut)
        time.sleep(args.settle)
        count0 = server_stats(url)["count"]
        worker_meter, master_meter, server_meter = (
            Meter(worker_pids).start(),
            Meter([master]).start(),
            Meter([server_pid]).start(),
        )
        time.sleep(args.duration)
        ops = server_stats(url)["count"] - count0  # the stats requests themselves are not counted
        return worker_meter.stop(ops), master_meter.stop(ops), server_meter.stop(ops)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str] | None = None) -> dict:
    def extra(parser) -> None:
        parser.add_argument("--settle", type=float, default=2.0, help="seconds after start before measuring")

    args = arguments(__doc__, argv, users=16, duration=5.0, rounds=5, extra=extra)
    print(
        f"scale: {args.users} users in total, {args.duration:g}s windows after {args.settle:g}s settling, "
        f"{args.rounds} rounds (1 and 2 workers once per round, order alternating)"
    )
    masters: dict[str, list[Sample]] = {"1 worker": [], "2 workers": []}
    servers: dict[str, list[Sample]] = {"1 worker": [], "2 workers": []}
    with (
        pinned(not args.no_pin) as pinning,
        static_server() as (url, server_pid),
        tempfile.TemporaryDirectory(prefix="bench-scale-") as results,
    ):
        pinning.pin("static server", server_pid, pinning.sut)
        if pinning.plan is not None:
            cores = sorted(pinning.plan[0] | pinning.plan[1], reverse=True)
            pinning.note(
                f"master -> {cores_text(pinning.sut)}; worker 1 -> cpu {cores[0]}, worker 2 -> cpu {cores[1 % len(cores)]}"
            )
        pinning.report("scale")

        def one(variant: str) -> Sample:
            n = 1 if variant == "1 worker" else 2
            sample, master, server = one_round(n, url, server_pid, args, pinning, results)
            masters[variant].append(master)
            servers[variant].append(server)
            return sample

        samples = run_rounds(args.rounds, list(masters), one, warmup=0)
    comparisons = print_comparison(
        "scale", "workers' CPU per request", samples, "1 worker", ["2 workers"], unit="req"
    )
    efficiency = comparisons["2 workers"].ratio
    speedup = Spread(2 * efficiency.median, 2 * efficiency.low, 2 * efficiency.high, efficiency.n)
    print_figure(
        "scale", "CPU-bound speed-up with 2 workers (2 x efficiency)", speedup, SPEEDUP_TARGET, spec=".2f"
    )
    pairs = list(zip(samples["1 worker"], samples["2 workers"], strict=True))
    measured = Spread.of(two.rate / one.rate for one, two in pairs)
    print_figure("scale", "measured throughput ratio 2 / 1 workers", measured, None, spec=".2f")
    for variant in masters:
        workers_share = Spread.of(s.cpu_share for s in samples[variant])
        server_share = Spread.of(s.cpu_share for s in servers[variant])
        print(
            f"      {variant}: workers {workers_share.median:.0%} of a core in total, "
            f"server {server_share.median:.0%}, {samples[variant][0].rate:,.0f} req/s in round 1"
        )
        record("scale", f"{variant} workers CPU share", workers_share)
        record("scale", f"{variant} server CPU share", server_share)
        print_figure(
            "scale", f"master CPU share of one core, {variant}", Spread.of(s.cpu_share for s in masters[variant]),
            MASTER_TARGET, spec=".3f",
        )  # fmt: skip
    return comparisons


if __name__ == "__main__":
    main()
