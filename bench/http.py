"""HTTP per core: loadstack's ``HttpUser`` against bare Locust ``FastHttpUser``, and both against ``wrk``.

Same process, same users, same cheap endpoint (:mod:`bench.static_server`, started here and
pinned to the other core).  The loadstack side has everything a run gives it: auth on (mode
``local``, a signed JWT in ``Authorization``), the run-id header, and the per-user-class stats
listener.  A third side, ``bare+headers``, is bare Locust sending the same two headers as fixed
strings: it tells the headers' cost in the HTTP client from loadstack's own.  ``wrk`` (one thread, pinned to the generator's core) on the same endpoint is the
ceiling a C client reaches on this machine.  Primary figure: the generator's CPU per request;
target: bare cost / loadstack cost >= 0.95.  The generator's and the server's CPU share in each
window say which side saturated.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import secrets
import shutil
import subprocess

# The signing secret of auth mode local, for the loadstack side (read when settings load).
os.environ.setdefault("LOADSTACK_JWT_SECRET", secrets.token_urlsafe(32))

import gevent
import locust  # noqa: F401  (gevent monkey-patching first)
from locust import FastHttpUser, constant, task

from bench import otel
from bench.common import Gate, arguments, interleaved_rounds, locust_side, pinned, plan_text, static_server
from bench.harness import (
    Comparison,
    Meter,
    Sample,
    Spread,
    Target,
    cores_text,
    cost_unit,
    print_comparison,
    print_figure,
    record,
)
from loadstack import auth, runcontext
from loadstack.auth.config import AuthSpec
from loadstack.profiles import RunSettings
from loadstack.user_classes import UserClassStats
from loadstack.users.http import RUN_ID_HEADER, HttpUser

TARGET = Target(0.95)
PATH = "/static"


class BareUser(FastHttpUser):
    @task
    def get(self) -> None:
        self.client.get(PATH)


class BareHeadersUser(FastHttpUser):
    """Bare Locust sending the same two headers as the loadstack side, as fixed strings: separates
    what the headers cost in the HTTP client from what loadstack's code costs."""

    wait_time = constant(0)

    def __init__(self, *args, **kwargs) -> None:
        credentials = auth.current()
        assert credentials is not None
        self.default_headers = {
            RUN_ID_HEADER: runcontext.current().run_id,
            "Authorization": credentials.authorization(),
        }
        super().__init__(*args, **kwargs)

    @task
    def get(self) -> None:
        self.client.get(PATH)


class LoadstackUser(HttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get(PATH)


class LoadstackTracedUser(HttpUser):
    """The loadstack side traced (``--otel``): a client span per request, exported over OTLP."""

    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get(PATH)


def wrk_round(
    host: str, users: int, duration: float, cores: set[int] | None, server_pid: int
) -> tuple[Sample, Sample]:
    """One ``wrk`` run (1 thread, ``users`` connections) on the generator's core."""
    cmd = ["wrk", "-t1", f"-c{users}", f"-d{max(1, round(duration))}s", host + PATH]
    if cores:
        cmd = ["taskset", "-c", ",".join(map(str, sorted(cores))), *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = Meter([server_pid]).start()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = re.search(r"(\d+) requests in ([\d.]+)s", out)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    ops = int(match.group(1))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sample = Sample(ops=ops, cost=cpu, wall_s=float(match.group(2)))
    return sample, server.stop(ops)


def main(argv: list[str] | None = None) -> dict:
    args = arguments(
        __doc__,
        argv,
        users=8,
        duration=2.0,
        rounds=6,
        ops=300,
        extra=lambda p: p.add_argument(
            "--otel",
            action="store_true",
            help="add a traced side (loadstack+otel): tracing's cost per request",
        ),
    )
    counting = args.window_ops is not None  # --count instructions: no wall-clock figures
    has_wrk = shutil.which("wrk") is not None and not counting
    traced = ["loadstack+otel"] if args.otel else []
    variants = ["bare", "bare+headers", "loadstack", *traced] + (["wrk"] if has_wrk else [])
    wrk = f"; wrk: {args.users} connections, 1 thread, one run per round" if has_wrk else ""
    print(f"http: {plan_text(args, op='request')}{wrk}")
    # This process is its own run, with auth mode local (a bench has no launcher to say so).
    runcontext.adopt(runcontext.new_run_id(), RunSettings(auth=AuthSpec(mode="local")))
    if auth.current() is None or auth.current().mode != "local":
        raise SystemExit("http bench: auth mode local could not be set up")
    sides = {"bare": BareUser, "bare+headers": BareHeadersUser, "loadstack": LoadstackUser}
    if args.otel:
        sides["loadstack+otel"] = LoadstackTracedUser
    with contextlib.ExitStack() as stack:
        traces = stack.enter_context(otel.sink()) if args.otel else None
        return _measure(args, sides, variants, has_wrk, counting, traces)


def _measure(args, sides, variants, has_wrk, counting, traces) -> dict:
    def setup(side: str):
        if not side.startswith("loadstack"):
            return None

        def attach(env) -> None:
            UserClassStats().attach(env, "local")
            if side == "loadstack+otel":
                traces.attach(env)

        return attach

    with pinned(not args.no_pin) as pinning, static_server() as (host, server_pid):
        if pinning.plan is not None:
            pinning.pin("static server", server_pid, pinning.sut)
            pinning.note(f"wrk -> {cores_text(pinning.generator)}")
        pinning.report("http")
        gate = Gate(list(sides))
        envs = {
            side: locust_side(
                gate,
                side,
                cls,
                host,
                args.users,
                setup=setup(side),
            )
            for side, cls in sides.items()
        }
        gevent.sleep(1.0)  # spawn, connect
        try:
            samples, servers = interleaved_rounds(
                args.rounds,
                gate,
                {side: (lambda env=env: env.stats.total.num_requests) for side, (env, _) in envs.items()},
                slices=args.slices,
                slice_s=args.duration / args.slices,
                ops=args.window_ops,
                also=[server_pid],
            )
        finally:
            for _env, runner in envs.values():
                runner.quit()
        failures = {side: env.stats.total.num_failures for side, (env, _) in envs.items()}
        if any(failures.values()):
            raise RuntimeError(f"http bench: failed requests {failures}")
        if has_wrk:
            samples["wrk"], servers["wrk"] = [], []
            for _ in range(args.rounds):
                sample, server = wrk_round(host, args.users, args.duration, pinning.generator, server_pid)
                samples["wrk"].append(sample)
                servers["wrk"].append(server)
    comparisons = print_comparison(
        "http",
        "HTTP GET (static endpoint)",
        samples,
        "bare",
        ["bare+headers", "loadstack", *(["loadstack+otel"] if args.otel else [])],
        target=TARGET,
        judged="loadstack",
        unit="req",
    )
    own = Comparison(samples["bare+headers"], samples["loadstack"])
    unit = cost_unit()
    print("    loadstack's own code (loadstack vs bare+headers: same bytes on the wire):")
    print_figure(
        "http", f"loadstack extra {unit.short}/req over bare+headers", own.extra, None, spec="+" + unit.spec
    )
    print_figure("http", "loadstack ratio over bare+headers", own.ratio, None, spec=".3f")
    if counting:
        return comparisons
    print("    saturation (CPU share of one core, median: generator / server):")
    for variant in variants:
        gen = Spread.of(s.cpu_share for s in samples[variant])
        srv = Spread.of(s.cpu_share for s in servers[variant])
        if min(gen.median, srv.median) >= 0.9:
            side = "both"
        elif max(gen.median, srv.median) >= 0.9:
            side = "generator" if gen.median > srv.median else "server"
        else:
            side = "neither (their cores went to other processes: the machine was busy)"
        print(
            f"      {variant:<10} generator {gen.median:.0%}  server {srv.median:.0%}  -> saturated: {side}",
        )
        record("http", f"{variant} generator CPU share", gen)
        record("http", f"{variant} server CPU share", srv, saturated=side)
    if has_wrk:
        print("    as a fraction of wrk on the same endpoint (median, min–max over rounds):")
        for variant in ("bare", "loadstack"):
            pairs = list(zip(samples[variant], samples["wrk"], strict=True))
            print_figure(
                "http",
                f"{variant} throughput / wrk",
                Spread.of(s.rate / w.rate for s, w in pairs),
                None,
                spec=".3f",
            )
            print_figure(
                "http",
                f"{variant} CPU per request, wrk / {variant}",
                Spread.of(w.per_op / s.per_op for s, w in pairs),
                None,
                spec=".3f",
            )
    return comparisons


if __name__ == "__main__":
    main()
