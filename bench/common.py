"""What the benchmarks share beyond the harness: options, pinning set-up, gevent loops, servers' pids."""

from __future__ import annotations

import argparse
import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import psutil

from bench.harness import MIN_ROUNDS, Meter, Pinning, Sample, listening_pid

if TYPE_CHECKING:
    from locust.runners import Runner

ROOT = Path(__file__).resolve().parents[1]
# The benches' own profile and locustfile: one loadstack HTTP user on the static endpoint.
BENCH_PROFILE = ROOT / "bench" / "profiles" / "static.yml"
BENCH_LOCUSTFILE = ROOT / "bench" / "locustfiles" / "static_users.py"
# Shared local services and the ports they listen on (pinned to the system-under-test cores).
SERVICES = {"PostgreSQL": 5432, "Redis": 6379, "RabbitMQ": 5672}
# Under --count instructions: operations per side and round, and the pause after a side's gate
# opens (the previous side's operations in flight, ~50x slower under valgrind, land first).
COUNTED_OPS = 1000
COUNTED_SETTLE_S = 0.3
COUNTED_WINDOW_LIMIT_S = 300.0  # a window that takes longer has stalled
# How often a counted window looks whether its operations are done.  Each look is counted too,
# so a window that took longer in wall time (a server busy on the shared core) would cost more
# per operation the more often it looked; the few extra operations a coarse look lets in are
# counted like the others.
COUNTED_POLL_S = 0.25


def arguments(
    description: str | None,
    argv: list[str] | None,
    *,
    users: int = 4,
    duration: float = 1.0,
    rounds: int = 8,
    ops: int = COUNTED_OPS,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The options every side-by-side benchmark has; ``extra`` adds its own.  ``ops`` is the
    window under ``--count instructions`` (sized so that a pass takes a minute or two)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--users",
        type=int,
        default=None,
        help=f"concurrent users (greenlets); default {users}, 1 with --count instructions",
    )
    parser.add_argument("--duration", type=float, default=duration, help="seconds per measured window")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"rounds; each measures every variant once, order alternating (ABBA); >= {MIN_ROUNDS}\n"
        f"(default {rounds}; {MIN_ROUNDS} with --count instructions, whose counts repeat)",
    )
    parser.add_argument(
        "--slices",
        type=int,
        default=4,
        help="each side's window is cut into this many slices, sides alternating slice by slice",
    )
    parser.add_argument(
        "--count",
        choices=["cpu", "instructions"],
        default="cpu",
        help="what an operation costs: CPU time (default) or instructions counted by callgrind\n"
        "(repeatable whatever else the machine does; runs the bench under valgrind, about 50x slower)",
    )
    parser.add_argument(
        "--ops",
        type=int,
        default=ops,
        help="with --count instructions: each side's window is this many operations (not seconds)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the generator and the system under test to separate cores",
    )
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.count == "instructions":
        from bench.instructions import counter

        if counter() is None:
            parser.error("--count instructions: start it as `python -m bench NAME --count instructions`")
        # Counts need no slicing against drift; a window of a fixed number of operations makes
        # whatever a window costs once (a scrape, the gate) the same share of every round.
        args.slices = 1
        args.window_ops = args.ops
    else:
        args.window_ops = None
    if args.rounds is None:
        args.rounds = MIN_ROUNDS if args.count == "instructions" else rounds
    if args.users is None:
        # Counting, one user per side: every operation then takes the same path (send, wait,
        # wake), where concurrent users' replies find the socket ready or not by timing.
        args.users = 1 if args.count == "instructions" else users
    if args.rounds < MIN_ROUNDS:
        parser.error(f"--rounds must be at least {MIN_ROUNDS} (a median with min–max needs them)")
    if args.users < 1 or args.duration <= 0 or args.slices < 1:
        parser.error("--users and --slices must be >= 1 and --duration > 0")
    return args


def plan_text(args: argparse.Namespace, side: str = "side", op: str = "operation") -> str:
    """How a side-by-side bench will measure, for its first line."""
    users = f"{args.users} user{'s' if args.users != 1 else ''} per {side}"
    if args.window_ops is not None:
        return (
            f"{users}, {args.rounds} rounds of {args.window_ops:,} {op}s per {side}; "
            f"instructions per {op}, counted by callgrind"
        )
    return (
        f"{users}, {args.rounds} rounds of {args.duration:g}s per {side} in {args.slices} slices "
        f"({side}s alternating slice by slice); generator CPU per {op}"
    )


@contextlib.contextmanager
def pinned(enabled: bool = True) -> Iterator[Pinning]:
    """This process on the generator core; whatever else gets pinned is put back afterwards."""
    from bench.harness import INSTRUCTIONS, cost_unit

    pinning = Pinning()
    if not enabled:
        pinning.plan = None
        pinning.note("off (--no-pin)")
    else:
        if pinning.plan is not None and cost_unit() is INSTRUCTIONS:
            # Counting, the servers share the generator's core: they run only while it waits,
            # so a reply is never already there when it first looks (a count that repeats).
            pinning.plan = (pinning.generator, pinning.generator)
            pinning.note("counting: system under test on the generator's core")
        pinning.pin_self()
    # SIGTERM (timeout, kill) must still give the shared services their cores back.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield pinning
    finally:
        pinning.restore()
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


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


# -- interleaved sides -------------------------------------------------------------------------
class Gate:
    """Which side of a benchmark may run: the others' users wait here while one side is measured.

    All sides live in one process at once (their users spawned, their connections open), so a
    round can switch sides every fraction of a second: the machine's drift then hits every side
    alike, which is what makes per-round ratios comparable on a busy machine.
    """

    def __init__(self, sides: list[str]) -> None:
        from gevent.event import Event

        self.events = {side: Event() for side in sides}
        self.greenlets: list = []

    def open(self, side: str | None) -> None:
        for name, event in self.events.items():
            if name != side:
                event.clear()
        if side is not None:
            self.events[side].set()

    def stop(self) -> None:
        """Kill the loops started by :func:`op_loops`."""
        import gevent

        gevent.killall(self.greenlets)
        self.greenlets.clear()

    def waiter(self, side: str) -> Callable[..., float]:
        """A Locust ``wait_time`` for a user class of ``side``: no think time, but the gate."""
        event = self.events[side]

        def wait_time(_user: object = None) -> float:
            event.wait()
            return 0.0

        return wait_time


def interleaved_rounds(
    rounds: int,
    gate: Gate,
    counters: dict[str, Callable[[], int]],
    *,
    slices: int,
    slice_s: float,
    also: list[int] | None = None,
    warmup: int = 1,
    settle_s: float | None = None,
    on_open: Callable[[str], None] | None = None,
    ops: int | None = None,
) -> tuple[dict[str, list[Sample]], dict[str, list[Sample]]]:
    """Per round, every side runs ``slices`` times for ``slice_s`` (order alternating within and
    across rounds); its slices add up to one :class:`Sample` of this process's CPU per operation.

    ``counters[side]()`` is the side's completed operations so far.  ``also`` are pids (the
    server) measured over the same slices: the second dict, per side.  ``on_open(side)`` runs
    as each slice's measurement begins (e.g. to trigger a scrape that belongs to that side).  With ``ops``, a
    slice lasts until the side has done that many operations instead of ``slice_s``.
    """
    import gevent

    from bench.harness import INSTRUCTIONS, alternating, cost_unit, settle_heap

    if settle_s is None:
        settle_s = COUNTED_SETTLE_S if cost_unit() is INSTRUCTIONS else 0.005
    sides = list(counters)
    samples: dict[str, list[Sample]] = {s: [] for s in sides}
    others: dict[str, list[Sample]] = {s: [] for s in sides}
    for index, order in enumerate(alternating(warmup + rounds, sides)):
        settle_heap()
        acc = {s: [0, 0.0, 0.0] for s in sides}
        acc_also = {s: [0, 0.0, 0.0] for s in sides}
        for k in range(slices):
            for side in order if k % 2 == 0 else list(reversed(order)):
                gate.open(side)
                gevent.sleep(settle_s)  # the previous side's requests in flight land outside the slice
                before = counters[side]()
                other = Meter(also).start(settle=False) if also else None
                meter = Meter().start(settle=False)
                if on_open is not None:
                    on_open(side)  # inside the slice: what it triggers is this side's cost
                if ops is None:
                    gevent.sleep(slice_s)
                else:
                    deadline = time.monotonic() + COUNTED_WINDOW_LIMIT_S
                    while counters[side]() - before < ops:
                        if time.monotonic() > deadline:
                            raise RuntimeError(
                                f"{side}: {counters[side]() - before} of {ops} operations in "
                                f"{COUNTED_WINDOW_LIMIT_S:.0f}s (a server stopped answering?); try a smaller --ops"
                            )
                        gevent.sleep(COUNTED_POLL_S)
                done = counters[side]() - before
                sample = meter.stop(done)
                gate.open(None)
                for total, part in (
                    (acc[side], sample),
                    (acc_also[side], other.stop(done) if other else None),
                ):
                    if part is not None:
                        total[0] += part.ops
                        total[1] += part.cost
                        total[2] += part.wall_s
        if index < warmup:
            continue
        for side in sides:
            samples[side].append(Sample(*acc[side]))
            if also:
                others[side].append(Sample(*acc_also[side]))
    return samples, others


def locust_side(gate: Gate, side: str, user_class: type, host: str, users: int, setup=None):
    """A Locust environment for ``side``: its users spawned, waiting at the gate between tasks.

    Returns (environment, runner).  ``setup(env)`` runs before the users start (listeners)."""
    from locust.env import Environment

    user_class.wait_time = gate.waiter(side)
    env = Environment(user_classes=[user_class], host=host)
    runner = without_monitor(env.create_local_runner())
    if setup is not None:
        setup(env)
    runner.start(users, spawn_rate=users)
    return env, runner


def without_monitor(runner: Runner) -> Runner:
    """``runner`` with its CPU monitor stopped: a 10-second timer whose work would land in
    whichever side's window is open (under callgrind, a 50x larger share of one round's count).
    Call before ``runner.start``: the monitor is then the only greenlet in the runner's group."""
    runner.greenlet.kill(block=True)
    return runner


def op_loops(
    gate: Gate, side: str, workers: int, make_op: Callable[[], Callable[[], object]]
) -> Callable[[], int]:
    """``workers`` greenlets looping on their own ``make_op()`` while ``side``'s gate is open;
    returns the side's operation counter."""
    import gevent

    ops = [make_op() for _ in range(workers)]
    for op in ops:
        op()  # connect / warm up (lazy clients connect on first use)
    count = [0]
    event = gate.events[side]

    def loop(op: Callable[[], object]) -> None:
        while True:
            event.wait()
            op()
            count[0] += 1

    gate.greenlets += [gevent.spawn(loop, op) for op in ops]
    return lambda: count[0]


def locust_children(root: int) -> tuple[int | None, list[int]]:
    """(master pid, worker pids) among the descendants of the ``loadstack run`` process."""
    master, workers = None, []
    for proc in psutil.Process(root).children(recursive=True):
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if "locust" in cmd and "--master" in cmd:
            master = proc.pid
        elif "locust" in cmd and "--worker" in cmd:
            workers.append(proc.pid)
    return master, sorted(workers)
