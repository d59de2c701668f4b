"""Start-up: profile and chain load + validation, and ``loadstack run`` to the first request.

1. Every shipped profile (``profiles/*.yml``: parse, schema, locustfile, SLO file) and chain
   (``load-testing/chains/*.yml``: parse, schema, templates, build) is loaded in a fresh
   process once per round: the first call after the imports is what a run pays (cold); a few
   more calls give the warm figure.  Primary figure: CPU ms of the cold call; target < 100 ms.
2. Time from starting ``loadstack run`` (native: master + 1 worker, exporter on) to the first
   request reaching the static endpoint, against plain ``locust --headless`` on the same
   locustfile; rounds alternate the two.  For information: no target.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import BENCH_LOCUSTFILE, BENCH_PROFILE, ROOT, arguments, pinned, server_stats, static_server
from bench.harness import Spread, Target, alternating, print_figure, record

PROFILES = sorted((ROOT / "profiles").glob("*.yml"))
CHAINS = sorted((ROOT / "load-testing" / "chains").glob("*.yml"))
TARGET = Target(100, at_least=False)

PROBE = """
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
kind, path, warm = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "profile":
    from loadstack.profiles import load_profile as load
else:
    from loadstack.chains.loader import load_file as load
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
out = []
for _ in range(1 + warm):
    w0, c0 = time.perf_counter(), cpu()
    load(path)
    out.append([(time.perf_counter() - w0) * 1000, (cpu() - c0) * 1000])
print(json.dumps(out))
"""


def probe(kind: str, path: Path, warm: int = 5) -> tuple[list[float], list[float]]:
    """([wall ms, cpu ms] of the cold call, the same of the warm median) in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, kind, str(path), str(warm)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    ).stdout
    calls = json.loads(out.strip().splitlines()[-1])
    warm_calls = calls[1:]
    return calls[0], [
        sorted(c[0] for c in warm_calls)[len(warm_calls) // 2],
        sorted(c[1] for c in warm_calls)[len(warm_calls) // 2],
    ]


def loading(rounds: int) -> None:
    items = [("profile", p) for p in PROFILES] + [("chain", c) for c in CHAINS]
    cold: dict[str, list[list[float]]] = {str(p): [] for _, p in items}
    warm: dict[str, list[list[float]]] = {str(p): [] for _, p in items}
    labels = [f"{k}:{p}" for k, p in items]
    for order in alternating(rounds, labels):
        for label in order:
            kind, path = label.split(":", 1)
            c, w = probe(kind, Path(path))
            cold[path].append(c)
            warm[path].append(w)
    print("  profile / chain load + validation, fresh process per round (cold call; warm median):")
    for kind, path in items:
        name = f"{kind} {path.relative_to(ROOT)}"
        cpu = Spread.of(c[1] for c in cold[str(path)])
        wall = Spread.of(c[0] for c in cold[str(path)])
        warm_cpu = Spread.of(w[1] for w in warm[str(path)])
        print_figure("startup", f"{name} cold CPU", cpu, TARGET, unit=" ms")
        record("startup", f"{name} cold wall", wall, unit=" ms")
        record("startup", f"{name} warm CPU", warm_cpu, unit=" ms")
        print(f"      wall {wall.format('.1f', ' ms')}; warm CPU {warm_cpu.format('.2f', ' ms')}")


def first_request(variant: str, url: str, results: str) -> float:
    """Seconds from starting ``variant`` to the first request at the static endpoint."""
    from loadstack.processes import free_port

    urllib.request.urlopen(f"{url}/__bench/reset", timeout=5).read()
    env = {**os.environ, "LOADSTACK_METRICS_PORT": str(free_port()), "LOADSTACK_RUN_MODE": "native"}
    if variant == "loadstack run":
        cmd = [
            sys.executable, "-m", "loadstack", "run", "--native", "--profile", str(BENCH_PROFILE),
            "--host", url, "--workers", "1", "--users", "1", "--spawn-rate", "1", "--run-time", "60s",
            "--results-dir", results, "--skip-seed", "--skip-teardown",
        ]  # fmt: skip
        stop = signal.SIGINT
    else:
        cmd = [
            sys.executable, "-m", "locust", "-f", str(BENCH_LOCUSTFILE), "--headless", "-u", "1", "-r", "1",
            "-t", "60s", "-H", url, "--only-summary",
        ]  # fmt: skip
        stop = signal.SIGTERM
    started = time.time()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            first = server_stats(url)["first"]
            if first is not None:
                return first - started
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{variant}: no request within 60 s (exit {proc.returncode})")
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, stop)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    args = arguments(__doc__, argv, rounds=5)
    print(
        f"startup: {len(PROFILES)} profiles and {len(CHAINS)} chains, {args.rounds} rounds; "
        "`loadstack run` vs `locust --headless` to the first request"
    )
    with pinned(not args.no_pin) as pinning, static_server() as (url, server_pid):
        pinning.pin("static server", server_pid, pinning.sut)
        pinning.note("probes, loadstack and locust processes: the generator's cores (inherited)")
        pinning.report("startup")
        loading(args.rounds)
        times: dict[str, list[float]] = {"loadstack run": [], "locust --headless": []}
        with tempfile.TemporaryDirectory(prefix="bench-startup-") as results:
            for order in alternating(args.rounds, list(times)):
                for variant in order:
                    times[variant].append(first_request(variant, url, results))
    print("  start to first request (s):")
    for variant, values in times.items():
        print_figure("startup", f"{variant} to first request", Spread.of(values), None, spec=".2f", unit=" s")
    extra = Spread.of(a - b for a, b in zip(times["loadstack run"], times["locust --headless"], strict=True))
    print_figure("startup", "loadstack run extra time to first request", extra, None, spec="+.2f", unit=" s")


if __name__ == "__main__":
    main()
