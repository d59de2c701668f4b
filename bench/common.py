"""What the benchmarks share beyond the harness: options, pinning set-up, gevent loops, servers' pids."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from bench.harness import MIN_ROUNDS, Meter, Pinning, Sample, listening_pid

ROOT = Path(__file__).resolve().parents[1]
# The benches' own profile and locustfile: one loadstack HTTP user on the static endpoint.
BENCH_PROFILE = ROOT / "bench" / "profiles" / "static.yml"
BENCH_LOCUSTFILE = ROOT / "bench" / "locustfiles" / "static_users.py"
# Shared local services and the ports they listen on (pinned to the system-under-test cores).
SERVICES = {"PostgreSQL": 5432, "Redis": 6379, "RabbitMQ": 5672}


def arguments(
    description: str | None,
    argv: list[str] | None,
    *,
    users: int = 4,
    duration: float = 1.0,
    rounds: int = 8,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The options every side-by-side benchmark has; ``extra`` adds its own."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--users", type=int, default=users, help="concurrent users (greenlets)")
    parser.add_argument("--duration", type=float, default=duration, help="seconds per measured window")
    parser.add_argument(
        "--rounds",
        type=int,
        default=rounds,
        help=f"rounds; each measures every variant once, order alternating (ABBA); >= {MIN_ROUNDS}",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the generator and the system under test to separate cores",
    )
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.rounds < MIN_ROUNDS:
        parser.error(f"--rounds must be at least {MIN_ROUNDS} (a median with min–max needs them)")
    if args.users < 1 or args.duration <= 0:
        parser.error("--users must be >= 1 and --duration > 0")
    return args


@contextlib.contextmanager
def pinned(enabled: bool = True) -> Iterator[Pinning]:
    """This process on the generator core; whatever else gets pinned is put back afterwards."""
    pinning = Pinning()
    if not enabled:
        pinning.plan = None
        pinning.note("off (--no-pin)")
    else:
        pinning.pin_self()
    try:
        yield pinning
    finally:
        pinning.restore()


def pin_services(pinning: Pinning, names: list[str]) -> None:
    """Pin the shared local services (and their children) to the system-under-test cores."""
    if pinning.plan is None:
        return
    for name in names:
        pid = listening_pid(SERVICES[name])
        if pid is None:
            pinning.note(f"{name}: not found, not pinned")
        else:
            pinning.pin(name, pid, pinning.sut, tree=True)


def pin_url_server(pinning: Pinning, label: str, url: str) -> int | None:
    """Pin the process serving ``url`` (a server this bench started) to the system-under-test cores."""
    port = urlsplit(url).port
    pid = listening_pid(port) if port else None
    if pid is None:
        pinning.note(f"{label}: pid not found, not pinned")
    elif pinning.plan is not None:
        pinning.pin(label, pid, pinning.sut, tree=True)
    return pid


def throughput(workers: int, duration: float, make_op: Callable[[], Callable[[], object]]) -> Sample:
    """``workers`` greenlets, each looping on its own ``make_op()`` for ``duration``: ops and CPU."""
    import gevent

    ops = [make_op() for _ in range(workers)]
    for op in ops:
        op()  # connect / warm up outside the measured window (lazy clients connect on first use)
    counts = [0] * workers

    def loop(i: int) -> None:
        op, n = ops[i], 0
        while time.perf_counter() < deadline:
            op()
            n += 1
        counts[i] = n

    meter = Meter().start()
    deadline = time.perf_counter() + duration
    gevent.joinall([gevent.spawn(loop, i) for i in range(workers)])
    return meter.stop(sum(counts))


@contextlib.contextmanager
def static_server() -> Iterator[tuple[str, int]]:
    """Start :mod:`bench.static_server` on a free local port; yield (URL, pid) once it answers."""
    import json
    import subprocess
    import sys
    import urllib.request

    from loadstack.processes import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.static_server", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{url}/__bench", timeout=1) as resp:
                    json.load(resp)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"static server did not start on {url}") from None
                time.sleep(0.05)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_stats(url: str) -> dict:
    """``{"count": requests served, "first": unix time of the first}`` from the static server."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"{url}/__bench", timeout=5) as resp:
        return json.load(resp)
