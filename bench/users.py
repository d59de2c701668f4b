"""Users per worker and memory per user: how many concurrent users one worker process holds.

``just bench users`` runs, for each kind of user, one worker's worth of Locust (a local runner in
a child process of its own, pinned to the generator core) against local servers only:

* ``http``: loadstack's ``HttpUser`` with ``constant_pacing`` (one ``GET`` per ``--pacing``
  seconds) on the benches' static server;
* ``http-gc``: the same users with their objects left under Python's cyclic collector
  (``LOADSTACK_GC_FREEZE=0``); every other kind is frozen once spawned, as a worker does
  (:mod:`loadstack.heap`), so the last table gives what the freeze changes, side by side;
* ``websocket``: loadstack's ``WebSocketUser``, one connection held open per user, a ``ping``
  per ``--pacing`` seconds, on the demo platform's ``/ws/stream`` (``loadstack demo serve``);
* ``chain``: a ``ChainUser`` whose chain is an HTTP step and a ``think`` step (think time of
  ``--pacing`` seconds on average) on the static server.

The child raises its users level by level (``--levels``, default 1,000, 5,000, 10,000) and, at
each level once every user has started (and connected), measures one window: the gevent loop's
lag (a greenlet asks to wake every 100 ms and records how late it woke: p50, p99, max), the
achieved request rate against the intended one, the worker's CPU share and failures; then
anonymous resident memory (``RssAnon`` in ``/proc/PID/status``: heap and stacks, not the shared
libraries' pages).  A window whose lag p99 is over ``--lag-limit`` (50 ms) is measured again up
to ``--retries`` (2) times and the best one counts: other processes on the core cause spikes
that do not repeat, a saturated worker's lag does.  The "rest" column is every other process's
CPU over the window (servers included).  The ceiling is the highest level whose best window is
under the limit.  The child stops raising once the worker is saturated by its own work: lag over
the limit while it uses >= 80 % of a core.  A worker that lags while nearly idle was kept off its
core by other processes, so the next levels are still measured (for memory, at least).  The
last column projects the users one core holds at 100 % CPU from the CPU the top level used.

Memory per user is the slope of ``RssAnon`` over the users (least squares, from one warm user up
to the last level measured), so the interpreter and imports, paid once per worker, are not
spread over the users.  Each kind runs ``--rounds`` times (a fresh process each round, kinds in
alternating order); every figure is the median with its min–max over the rounds.  Targets: at
most 100 KB per idle HTTP user, and at least 5,000 HTTP users per worker with lag p99 < 50 ms.

The last table sets the figures beside k6's published memory per virtual user: 0.36 MB/VU on a
large machine and 0.79 MB/VU on 2 vCPUs (grafana/k6-benchmarks, v0.42.0), 1–5 MB in k6's docs.

Each user holds a socket, so the open-files limit is raised to its hard limit (in this process,
inherited by the servers and the workers); levels above what it allows are skipped and said so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from typing import Any

from bench.harness import Spread, Target, print_figure, record

KINDS = ("http", "http-gc", "websocket", "chain")
HTTP_KB_TARGET = Target(100, at_least=False)
USERS_TARGET = Target(5000)
BUSY_SHARE = 0.8  # of a core: a worker this busy whose loop lags is saturated by its own work
LAG_INTERVAL_S = 0.1  # the lag greenlet asks to wake this often
FDS_PER_USER = {"http": 1, "http-gc": 1, "websocket": 1, "chain": 1}
FD_RESERVE = 256  # files the worker needs besides its users' sockets
# k6's published memory per virtual user (MB), for the comparison table.
K6 = [
    ("k6 v0.42.0, large machine (grafana/k6-benchmarks)", 0.36, 0.36),
    ("k6 v0.42.0, 2 vCPUs (grafana/k6-benchmarks)", 0.79, 0.79),
    ("k6 docs (rule of thumb)", 1.0, 5.0),
]


# -- pure figures (unit-tested without Locust) ---------------------------------------------------
def rss_anon_kib(pid: int | str = "self") -> int:
    """Anonymous resident memory of ``pid`` in KiB (``RssAnon``: what users' heaps and stacks grow)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise RuntimeError(f"no RssAnon in /proc/{pid}/status")


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (``points`` of (x, y), at least two distinct x)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        raise ValueError("a slope needs two distinct x")
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def lag_figures(lags_ms: list[float]) -> dict[str, float]:
    """p50, p99 and max of the loop-lag samples (ms); nearest-rank percentiles."""
    if not lags_ms:
        return {"lag_p50_ms": math.inf, "lag_p99_ms": math.inf, "lag_max_ms": math.inf}
    ordered = sorted(lags_ms)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"lag_p50_ms": rank(0.50), "lag_p99_ms": rank(0.99), "lag_max_ms": ordered[-1]}


def ceiling(points: list[dict[str, Any]], lag_limit_ms: float) -> int:
    """The highest level whose lag p99 stayed under the limit with every user started (0: none)."""
    held = [p["users"] for p in points if p["lag_p99_ms"] < lag_limit_ms and p["started"] >= p["users"]]
    return max(held, default=0)


def saturated(point: dict[str, Any], lag_limit_ms: float) -> bool:
    """The worker itself is the bottleneck: its loop lags past the limit *and* it is busy.

    A loop that lags while the worker uses little CPU was kept off the core by other processes
    (the "rest" column says how much): the next level is still worth measuring for memory."""
    return point["lag_p99_ms"] >= lag_limit_ms and point["cpu_share"] >= BUSY_SHARE


def projected_per_core(point: dict[str, Any]) -> float | None:
    """Users one core would hold at 100 % CPU, from the CPU ``point``'s users used (a projection:
    the lag may reach its limit first)."""
    return point["users"] / point["cpu_share"] if point["cpu_share"] > 0 else None


def raise_open_files(wanted: int) -> int:
    """Raise the soft open-files limit toward ``wanted`` (never past the hard limit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# -- the worker (child process) ----------------------------------------------------------------
def user_class(kind: str, pacing: float) -> type:
    """The user class of ``kind``, pacing one request (or chain iteration) per ``pacing`` seconds."""
    from locust import constant, constant_pacing, task

    if kind in ("http", "http-gc"):
        from loadstack.users.http import HttpUser

        class PacedHttpUser(HttpUser):
            wait_time = constant_pacing(pacing)

            @task
            def get(self) -> None:
                self.client.get("/static", name="static")

        return PacedHttpUser
    if kind == "websocket":
        from loadstack.users.websocket import WebSocketUser

        class HeldWebSocketUser(WebSocketUser):
            wait_time = constant_pacing(pacing)
            timeout = 60.0

            def on_start(self) -> None:
                self.client.connect("/ws/stream", name="connect")

            @task
            def ping(self) -> None:
                self.client.request("ping", {"cmd": "ping"}, until=lambda f: f.get("type") == "pong")

        return HeldWebSocketUser
    if kind == "chain":
        from loadstack.chains import ChainUser, from_python
        from loadstack.chains import steps as s

        think = from_python(
            "hold", [s.http("get", "GET", "/static"), s.think("think", pacing * 0.5, pacing * 1.5)]
        )

        class ThinkingChainUser(ChainUser):
            wait_time = constant(0)
            chains = [think]

        return ThinkingChainUser
    raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


def worker(kind: str, host: str, levels: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Run in the child: raise the users level by level, measure each; the points as a dict."""
    import gc
    import logging

    import gevent
    import locust  # noqa: F401  (gevent monkey-patching first)
    from locust.env import Environment

    from bench.harness import Meter, RestMeter
    from loadstack.heap import FrozenUsers

    logging.getLogger("locust.runners").addFilter(lambda r: "spawn rate is very high" not in r.getMessage())
    env = Environment(user_classes=[user_class(kind, args.pacing)], host=host)
    runner = env.create_local_runner()
    if kind != "http-gc":  # what loadstack's plugin does where users run (LOADSTACK_GC_FREEZE=1)
        FrozenUsers().attach(env)
    lags: list[float] = []
    recording = [False]

    def watch_lag() -> None:
        """Ask to wake every 100 ms; how late each wake-up came is the loop's lag."""
        while True:
            asked = time.perf_counter()
            gevent.sleep(LAG_INTERVAL_S)
            late = (time.perf_counter() - asked - LAG_INTERVAL_S) * 1000
            if recording[0]:
                lags.append(max(0.0, late))

    watcher = gevent.spawn(watch_lag)

    connects = [0]

    def count_connect(request_type: str = "", name: str = "", **_: Any) -> None:
        if request_type == "WS" and name == "connect":
            connects[0] += 1  # answered or failed: the user is done starting either way

    env.events.request.add_listener(count_connect)

    def started() -> int:
        return runner.user_count if kind != "websocket" else min(runner.user_count, connects[0])

    def window() -> dict[str, Any]:
        """One measured window at the current level: lag, rate, CPU, what the rest of the machine did."""
        env.stats.reset_all()
        lags.clear()
        recording[0] = True
        meter = Meter().start(settle=False)
        rest = RestMeter([]).start()
        gevent.sleep(args.duration)
        others = rest.stop().others
        # The kind's own requests: a chain's CHAIN entries are its iterations, not extra traffic.
        requests = sum(e.num_requests for (_, method), e in env.stats.entries.items() if method != "CHAIN")
        sample = meter.stop(requests)
        recording[0] = False
        return {
            "rate": requests / sample.wall_s,
            "cpu_share": sample.cpu_share,
            "failures": env.stats.total.num_failures,
            "others_cores": others,
            **lag_figures(list(lags)),
        }

    def measure(users: int) -> dict[str, Any]:
        runner.start(users, spawn_rate=args.spawn_rate)
        deadline = time.monotonic() + users / args.spawn_rate + args.start_limit
        while time.monotonic() < deadline and (runner.user_count < users or started() < users):
            gevent.sleep(0.2)
        gevent.sleep(args.settle)
        # A lag spike can be the neighbours' doing (other processes on this core), which does not
        # repeat window after window; a saturated worker's lag does.  So a window over the limit
        # is measured again (up to --retries times) and the best window counts; failures add up.
        best, failures, windows = window(), 0, 1
        failures += best["failures"]
        while best["lag_p99_ms"] >= args.lag_limit and windows <= args.retries:
            again = window()
            windows += 1
            failures += again["failures"]
            if again["lag_p99_ms"] < best["lag_p99_ms"]:
                best = again
        gc.collect()
        return {
            "users": users,
            "started": started(),
            "rss_kib": rss_anon_kib(),
            "intended": users / args.pacing,
            "windows": windows,
            **best,
            "failures": failures,
        }

    warm = measure(1)
    points = []
    for users in levels:
        point = measure(users)
        points.append(point)
        # Each level as it is measured: a parent that runs out of time still has the levels done.
        print(json.dumps({"kind": kind, "warm": warm, "points": points, "partial": True}), flush=True)
        if saturated(point, args.lag_limit) or point["started"] < users:
            break  # the worker is the bottleneck from here on
    watcher.kill()
    runner.quit()
    return {"kind": kind, "warm": warm, "points": points}


# -- the bench (parent process) -------------------------------------------------------------------
def run_worker(kind: str, host: str, levels: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """One round of ``kind`` in a fresh child process; its JSON result."""
    cmd = [
        sys.executable, "-m", "bench.users", "--child", kind, "--host", host,
        "--levels", ",".join(map(str, levels)), "--pacing", str(args.pacing), "--duration", str(args.duration),
        "--settle", str(args.settle), "--spawn-rate", str(args.spawn_rate), "--lag-limit", str(args.lag_limit),
        "--start-limit", str(args.start_limit), "--retries", str(args.retries),
    ]  # fmt: skip
    limit = (
        sum(levels) / args.spawn_rate
        + len(levels) * (args.start_limit + args.settle + args.duration + 30)
        + 60
    )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
        stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:  # the levels measured so far still count
        stdout, stderr, code = _text(exc.stdout), _text(exc.stderr), None
        print(
            f"  {kind}: the worker took over {limit:.0f}s; stopped, keeping the levels it measured",
            flush=True,
        )
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines or (code not in (0, None) and not json.loads(lines[-1]).get("points")):
        tail = "\n".join(stderr.splitlines()[-15:])
        raise RuntimeError(f"users: the {kind} worker failed (exit {code}):\n{tail}")
    return json.loads(lines[-1])


def _text(out: str | bytes | None) -> str:
    return out.decode(errors="replace") if isinstance(out, bytes) else (out or "")


def fmt(values: list[float], spec: str) -> str:
    """Median (min–max) of ``values``, or one value when there is one."""
    s = Spread.of(values)
    if s.n == 1 or s.low == s.high:
        return f"{s.median:{spec}}"
    return f"{s.median:{spec}} ({s.low:{spec}}–{s.high:{spec}})"


def kib_per_user(result: dict[str, Any]) -> float | None:
    """The slope of RssAnon (KiB) over users, from the warm user to the last level measured."""
    pts = [(1, result["warm"]["rss_kib"])] + [(p["users"], p["rss_kib"]) for p in result["points"]]
    return slope(pts) if len({x for x, _ in pts}) > 1 else None


def print_tables(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, cores: float) -> None:
    print("  per level (median, min–max over rounds; rest: every other process's CPU, servers included):")
    print(
        f"    {'kind':<9} {'users':>7} {'RssAnon MiB':>20} {'lag p50 ms':>16} {'lag p99 ms':>18} {'lag max ms':>18}"
        f" {'req/s (intended)':>24} {'CPU % core':>14} {'rest, cores':>14} {'windows':>8} {'failures':>9}"
    )
    for kind, rounds in results.items():
        levels = sorted({p["users"] for r in rounds for p in r["points"]})
        for users in levels:
            pts = [p for r in rounds for p in r["points"] if p["users"] == users]
            print(
                f"    {kind:<9} {users:>7,} {fmt([p['rss_kib'] / 1024 for p in pts], '.1f'):>20}"
                f" {fmt([p['lag_p50_ms'] for p in pts], '.1f'):>16} {fmt([p['lag_p99_ms'] for p in pts], '.1f'):>18}"
                f" {fmt([p['lag_max_ms'] for p in pts], '.0f'):>18}"
                f" {fmt([p['rate'] for p in pts], ',.0f') + ' (' + format(pts[0]['intended'], ',.0f') + ')':>24}"
                f" {fmt([p['cpu_share'] * 100 for p in pts], '.0f'):>14}"
                f" {fmt([p['others_cores'] for p in pts], '.1f'):>14}"
                f" {sum(p['windows'] for p in pts):>8} {sum(p['failures'] for p in pts):>9}"
                + ("" if len(pts) == len(rounds) else f"  (reached in {len(pts)} of {len(rounds)} rounds)")
            )
    print(f"  per worker (lag limit: p99 < {args.lag_limit:g} ms; {cores:g} cores here):")
    print(
        f"    {'kind':<9} {'KB per user':>20} {'ceiling per worker = per core':>30} {'CPU % core there':>18} {'lag p99 ms there':>18} {'at 100 % CPU (projected)':>26}"
    )
    summary: dict[str, dict[str, Spread]] = {}
    for kind, rounds in results.items():
        kibs = [k for k in (kib_per_user(r) for r in rounds) if k is not None]
        ceilings = [ceiling(r["points"], args.lag_limit) for r in rounds]
        # A worker is one process on one core (Locust's model: one worker per core), so its
        # ceiling is also the ceiling per core; the CPU it used there says how much headroom is left.
        projected = [
            x for x in (projected_per_core(r["points"][-1]) for r in rounds if r["points"]) if x is not None
        ]
        cpu_at, lag_at = [], []
        for r, c in zip(rounds, ceilings, strict=True):
            at = next((p for p in r["points"] if p["users"] == c), None)
            if at is not None:
                cpu_at.append(at["cpu_share"] * 100)
                lag_at.append(at["lag_p99_ms"])
        top = max(p["users"] for r in rounds for p in r["points"])
        reached = all(c == top for c in ceilings) and top == max(args.level_list)
        kb = Spread.of([k * 1.024 for k in kibs]) if kibs else None  # KiB -> kB
        summary[kind] = {"kb": kb, "ceiling": Spread.of(ceilings)}
        print(
            f"    {kind:<9} {fmt([k * 1.024 for k in kibs], '.1f') if kibs else 'n/a':>20}"
            f" {fmt(ceilings, ',.0f') + ('+' if reached else ''):>30}"
            f" {fmt(cpu_at, '.0f') if cpu_at else 'n/a':>18} {fmt(lag_at, '.1f') if lag_at else 'n/a':>18}"
            f" {fmt(projected, ',.0f') if projected else 'n/a':>26}"
        )
        if kb is not None:
            target = HTTP_KB_TARGET if kind == "http" else None
            print_figure("users", f"{kind}: KB per user (RssAnon slope)", kb, target, spec=".1f", unit=" KB")
        target = USERS_TARGET if kind == "http" and max(args.level_list) >= USERS_TARGET.value else None
        print_figure(
            "users", f"{kind}: users per worker with lag p99 < {args.lag_limit:g} ms", Spread.of(ceilings),
            target, spec=",.0f",
        )  # fmt: skip
        if cpu_at:
            record("users", f"{kind}: CPU % of a core at the ceiling", Spread.of(cpu_at))
        if projected:
            record("users", f"{kind}: users per core at 100 % CPU (projected)", Spread.of(projected))
    if any(entry["ceiling"].low == max(args.level_list) for entry in summary.values()):
        print(f"    ('+': every level up to {max(args.level_list):,} held; the ceiling is higher)")
    print("  memory per user against k6's published figures:")
    print(f"    {'generator':<52} {'MB per user':>18} {'k6 / this (0.79 MB/VU, 2 vCPUs)':>34}")
    for kind in results:
        kb = summary[kind]["kb"]
        if kb is None:
            continue
        mb = [kb.median / 1000, kb.low / 1000, kb.high / 1000]
        ratio = 0.79 / mb[0] if mb[0] > 0 else math.inf
        print(
            f"    {'loadstack ' + kind + ' user (this machine, gevent)':<52} {fmt(mb, '.3f'):>18} {ratio:>33.0f}x"
        )
    for name, low, high in K6:
        print(f"    {name:<52} {(f'{low:.2f}' if low == high else f'{low:g}–{high:g}'):>18} {'':>34}")
    if "http" in results and "http-gc" in results:
        print_freeze_effect(results["http"], results["http-gc"])


def print_freeze_effect(frozen: list[dict[str, Any]], scanned: list[dict[str, Any]]) -> None:
    """Loop lag p99 of the same HTTP users with and without the freeze, level by level."""
    print("  the users' objects frozen once spawned (http) against left under the collector (http-gc):")
    print(
        f"    {'users':>7} {'lag p99 ms, frozen':>22} {'lag p99 ms, collected':>24} {'collected / frozen':>20}"
    )
    for users in sorted({p["users"] for r in frozen for p in r["points"]}):
        lags = [
            [p["lag_p99_ms"] for r in rounds for p in r["points"] if p["users"] == users]
            for rounds in (frozen, scanned)
        ]
        if not all(lags):
            continue
        ratio = Spread.of(lags[1]).median / max(Spread.of(lags[0]).median, 0.001)
        print(f"    {users:>7,} {fmt(lags[0], '.1f'):>22} {fmt(lags[1], '.1f'):>24} {ratio:>19.1f}x")
        record("users", f"lag p99 at {users:,} users, collected / frozen", Spread.of([ratio]))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--levels", default="1000,5000,10000", help="concurrent users to try, ascending")
    parser.add_argument("--users", type=int, help="one level only (a quick check), instead of --levels")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"which users ({', '.join(KINDS)})")
    parser.add_argument(
        "--rounds", type=int, default=3, help="fresh worker processes per kind (min–max over them)"
    )
    parser.add_argument("--pacing", type=float, default=10.0, help="seconds between a user's requests")
    parser.add_argument(
        "--duration",
        type=float,
        help="seconds per measured window (default: one --pacing period, so every user sends)",
    )
    parser.add_argument(
        "--settle", type=float, help="seconds after the users have started (default: one --pacing period)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="windows measured again at a level whose lag p99 is over the limit",
    )
    parser.add_argument("--spawn-rate", type=float, default=1000.0, help="users started per second")
    parser.add_argument(
        "--start-limit", type=float, default=60.0, help="extra seconds the users may take to start"
    )
    parser.add_argument(
        "--lag-limit", type=float, default=50.0, help="loop-lag p99 (ms) past which a worker is saturated"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the worker and the servers to separate cores"
    )
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.level_list = [args.users] if args.users else sorted(int(x) for x in args.levels.split(","))
    except ValueError:
        parser.error("--levels: comma-separated whole numbers, e.g. 1000,5000,10000")
    if args.duration is None:
        args.duration = args.pacing
    if args.settle is None:
        args.settle = args.pacing
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if any(k not in KINDS for k in kinds) or not kinds:
        parser.error(f"--kinds: some of {', '.join(KINDS)}")
    if (
        args.rounds < 1
        or min(args.level_list) < 1
        or args.pacing <= 0
        or args.duration <= 0
        or args.spawn_rate <= 0
    ):
        parser.error("--rounds and the levels must be >= 1; --pacing, --duration and --spawn-rate > 0")
    if args.child:
        print(json.dumps(worker(args.child, args.host, args.level_list, args)), flush=True)
        return {}
    return bench(args, kinds)


def bench(args: argparse.Namespace, kinds: list[str]) -> dict:
    from bench.common import pin_url_server, pinned, static_server

    wanted = max(args.level_list) + FD_RESERVE
    soft = raise_open_files(wanted)
    usable = [n for n in args.level_list if n + FD_RESERVE <= soft]
    if len(usable) < len(args.level_list):
        print(f"users: open-files limit {soft}: levels above {soft - FD_RESERVE:,} skipped", flush=True)
    args.level_list = usable or [max(1, soft - FD_RESERVE)]
    print(
        f"users: kinds {', '.join(kinds)}; levels {', '.join(f'{n:,}' for n in args.level_list)}; one request per "
        f"{args.pacing:g}s per user; {args.duration:g}s windows after {args.settle:g}s settling; {args.rounds} "
        f"round(s), a fresh worker process per kind and round; open-files limit {soft} (hard limit "
        f"{resource.getrlimit(resource.RLIMIT_NOFILE)[1]})",
        flush=True,
    )
    from contextlib import ExitStack

    results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    with ExitStack() as stack:
        pinning = stack.enter_context(pinned(not args.no_pin))
        url, server_pid = stack.enter_context(static_server())
        pinning.pin("static server", server_pid, pinning.sut)
        hosts = {"http": url, "http-gc": url, "chain": url}
        if "websocket" in kinds:
            from loadstack_demo.process import demo_platform

            hosts["websocket"] = stack.enter_context(demo_platform())
            pin_url_server(pinning, "demo platform", hosts["websocket"])
        pinning.note("workers -> the generator core (inherited)")
        pinning.report("users")
        for i in range(args.rounds):
            for kind in kinds if i % 2 == 0 else list(reversed(kinds)):
                started = time.monotonic()
                result = run_worker(kind, hosts[kind], args.level_list, args)
                results[kind].append(result)
                last = result["points"][-1] if result["points"] else result["warm"]
                print(
                    f"  round {i + 1} {kind}: up to {last['users']:,} users, lag p99 {last['lag_p99_ms']:.1f} ms,"
                    f" RssAnon {last['rss_kib'] / 1024:.0f} MiB ({time.monotonic() - started:.0f}s)",
                    flush=True,
                )
    print_tables(results, args, float(len(os.sched_getaffinity(0))))
    return results


if __name__ == "__main__":
    main()
