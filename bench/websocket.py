"""WebSocket connections one worker holds: 0 failures and per-frame p99 < 50 ms at 50/200/500/1000.

One Locust runner in this process (a worker's worth: one process, one core) holds N users of
loadstack's ``WebSocketUser`` against the demo platform's ``/ws/stream`` (in-memory store,
pinned to the other core).  Each user connects once, asks for ``--rate`` data frames per
second and receives them; a frame's latency is its receive time minus the server's timestamp.
Each round visits every level, in ascending then descending order; at each level the users
connect, settle, and one window is measured after a stats reset: frames, the generator's CPU
per frame, the frames' p99 latency and failures (connects included).  A level is held when
every round had 0 failures and the p99's whole min–max is under 50 ms; the knee is the
highest level held.
"""

from __future__ import annotations

import logging
import resource

import gevent
import locust  # noqa: F401  (gevent monkey-patching first)
from locust import constant, task
from locust.env import Environment

from bench.common import arguments, pin_url_server, pinned
from bench.harness import (
    OK,
    Meter,
    Rest,
    RestMeter,
    Sample,
    Spread,
    Target,
    alternating,
    cost,
    print_figure,
    record,
    verdict,
)
from loadstack.users.websocket import WebSocketUser
from loadstack_demo.process import demo_platform

P99_TARGET = Target(50, at_least=False)
DISTURBED = 0.5  # cores other processes may use during a window before it is measured again
RETRIES = 2
RATE_HZ = 2.0


def is_data(frame: dict) -> bool:
    return frame.get("type") == "data"


class HoldingUser(WebSocketUser):
    """Connect once, start the stream, then receive frames for as long as the user lives."""

    wait_time = constant(0)
    timeout = 30.0

    def on_start(self) -> None:
        self.client.connect("/ws/stream", name="connect")
        self.client.request("start", {"cmd": "start", "rate": RATE_HZ, "channels": 2}, until=is_data)

    @task
    def frames(self) -> None:
        self.client.receive("frame", 5, timeout=10)


def one_level(host: str, server_pid: int | None, users: int, args) -> tuple[Sample, float, int, Rest]:
    """(generator sample per frame, frame p99 ms, failures, what the rest of the machine did)
    with ``users`` connections held.

    A latency is the whole machine's doing, not only this process's: a window during which other
    processes used more than ``DISTURBED`` of a core is measured again (up to ``RETRIES`` times)."""
    env = Environment(user_classes=[HoldingUser], host=host)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=args.spawn_rate)
    deadline = gevent.get_hub().loop.now() + users / args.spawn_rate + 30
    connected = ("start", "WS")
    while gevent.get_hub().loop.now() < deadline:
        gevent.sleep(0.2)
        entry = env.stats.entries.get(connected)
        done = entry.num_requests if entry else 0
        if done + env.stats.total.num_failures >= users:
            break
    gevent.sleep(args.settle)
    failures = 0
    for attempt in range(RETRIES + 1):
        failures += env.stats.total.num_failures  # connecting and settling, or a window measured again
        env.stats.reset_all()
        rest_meter = RestMeter([server_pid] if server_pid else []).start()
        meter = Meter().start()
        gevent.sleep(args.duration)
        frames = env.stats.entries.get(("frame", "WS"))
        n = frames.num_requests if frames else 0
        sample = meter.stop(n)
        rest = rest_meter.stop()
        if rest.others <= DISTURBED or attempt == RETRIES:
            break
        print(f"    {users} connections: window measured again, {rest.text()}", flush=True)
    p99 = frames.get_response_time_percentile(0.99) if frames and n else float("inf")
    failures += env.stats.total.num_failures
    runner.quit()
    return sample, float(p99), failures, rest


def main(argv: list[str] | None = None) -> dict:
    global RATE_HZ

    def extra(parser) -> None:
        parser.add_argument("--levels", default="50,200,500,1000", help="connection counts to try")
        parser.add_argument("--rate", type=float, default=RATE_HZ, help="frames per second per connection")
        parser.add_argument("--spawn-rate", type=float, default=250, help="connections opened per second")
        parser.add_argument("--settle", type=float, default=1.0, help="seconds after connecting")

    args = arguments(__doc__, argv, duration=3.0, rounds=5, extra=extra)
    # Connecting fast is the point here: Locust's warning about it would repeat at every level.
    logging.getLogger("locust.runners").addFilter(
        lambda record: "spawn rate is very high" not in record.getMessage()
    )
    RATE_HZ = args.rate
    levels = [int(x) for x in args.levels.split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < max(levels) + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(levels) * 2 + 256), hard))
    print(
        f"websocket: levels {levels}, {args.rate:g} frames/s per connection, {args.duration:g}s windows, "
        f"{args.rounds} rounds (levels ascending, then descending)"
    )
    samples: dict[int, list[Sample]] = {n: [] for n in levels}
    p99s: dict[int, list[float]] = {n: [] for n in levels}
    failures: dict[int, list[int]] = {n: [] for n in levels}
    rests: dict[int, list[Rest]] = {n: [] for n in levels}
    with pinned(not args.no_pin) as pinning, demo_platform(store="memory") as host:
        server_pid = pin_url_server(pinning, "demo platform (in-memory store)", host)
        pinning.report("websocket")
        for order in alternating(args.rounds, levels):
            for n in order:
                sample, p99, failed, rest = one_level(host, server_pid, n, args)
                samples[n].append(sample)
                p99s[n].append(p99)
                failures[n].append(failed)
                rests[n].append(rest)
                if p99 >= P99_TARGET.value:
                    print(f"    {n} connections: p99 {p99:.0f} ms in this round; {rest.text()}", flush=True)
    knee = None
    for n in levels:
        print(
            f"  {n} connections: {Spread.of(s.rate for s in samples[n]).median:,.0f} frames/s, "
            f"CPU {cost(samples[n]).format('.1f', ' µs/frame')}, failures per round {failures[n]}; "
            f"rest of the machine {Spread.of(r.others for r in rests[n]).format('.2f')} cores, "
            f"steal {Spread.of(r.steal for r in rests[n]).format('.2f')}"
        )
        record("websocket", f"{n} connections CPU µs/frame", cost(samples[n]))
        p99 = Spread.of(p99s[n])
        held = print_figure(
            "websocket", f"{n} connections frame p99", p99, P99_TARGET, spec=".0f", unit=" ms"
        )
        if held == OK and not any(failures[n]):
            knee = n
        elif any(failures[n]):
            print(
                f"    {n} connections: failures in {sum(1 for f in failures[n] if f)} of {args.rounds} rounds"
            )
    print(f"  -> one worker holds {knee or 'none of the levels'}" + (" connections" if knee else ""))
    record("websocket", "knee (connections held)", Spread.of([knee or 0]))
    return {
        "knee": knee,
        "p99": {n: Spread.of(p99s[n]) for n in levels},
        "verdicts": {n: verdict(Spread.of(p99s[n]), P99_TARGET) for n in levels},
    }


if __name__ == "__main__":
    main()
