"""Exporter overhead: request throughput with the Prometheus exporter on vs off, same process, same target.

"On" is everything the exporter adds to a run: the per-request listener that
fills the histograms, the collector, the gevent WSGI server, and a scrape of
``/metrics`` every second (as Prometheus would; the scraping client is a separate
process, as Prometheus is).  Primary figure: the generator's CPU per request on each
side.  Target: loss <= 2 %, i.e. CPU per request off / on >= 0.98.
"""

from __future__ import annotations

import os
import subprocess
import sys

import gevent
import locust  # noqa: F401  (gevent monkey-patching first)
from locust import constant, task
from locust.env import Environment

from bench.common import arguments, pin_url_server, pinned
from bench.harness import Meter, Sample, Target, print_comparison, run_rounds
from loadstack.metrics import server as metrics_server
from loadstack.processes import free_port
from loadstack.users.http import HttpUser
from loadstack_demo.process import demo_platform

TARGET = Target(0.98)
# A Prometheus stand-in: GET /metrics once a second, ``count`` times, in its own process.
SCRAPER = """
import sys, time, urllib.request
url, count = sys.argv[1], int(sys.argv[2])
for _ in range(count):
    time.sleep(1.0)
    try:
        urllib.request.urlopen(url, timeout=5).read()
    except OSError:
        pass
"""


class HealthUser(HttpUser):
    wait_time = constant(0)

    @task
    def health(self) -> None:
        self.client.get("/health")


def one_round(host: str, users: int, duration: float, exporter: bool) -> Sample:
    env = Environment(user_classes=[HealthUser], host=host)
    runner = env.create_local_runner()
    scraper = None
    if exporter:
        port = free_port()
        os.environ.update(LOCUST_METRICS_EXPORT="1", LOADSTACK_METRICS_PORT=str(port))
        metrics_server.install(env, "local")
        scraper = subprocess.Popen(
            [sys.executable, "-c", SCRAPER, f"http://127.0.0.1:{port}/metrics", str(int(duration) + 2)]
        )
    runner.start(users, spawn_rate=users)
    gevent.sleep(1.0)
    before = env.stats.total.num_requests
    meter = Meter().start()
    gevent.sleep(duration)
    sample = meter.stop(env.stats.total.num_requests - before)
    runner.quit()
    env.events.quitting.fire(environment=env)  # stops the exporter's server
    if scraper is not None:
        scraper.kill()
        scraper.wait()
    return sample


def main(argv: list[str] | None = None) -> dict:
    args = arguments(__doc__, argv, users=4, duration=2.0, rounds=8)
    print(
        f"exporter: {args.users} users, {args.duration:g}s windows, {args.rounds} rounds "
        "(off/on once per round, order alternating); generator CPU per request"
    )
    with pinned(not args.no_pin) as pinning, demo_platform(store="memory") as host:
        pin_url_server(pinning, "demo platform (in-memory store)", host)
        pinning.report("exporter")
        samples = run_rounds(
            args.rounds,
            ["off", "on"],
            lambda variant: one_round(host, args.users, args.duration, variant == "on"),
        )
    return print_comparison(
        "exporter", "HTTP GET /health", samples, "off", ["on"], target=TARGET, judged="on", unit="req"
    )


if __name__ == "__main__":
    main()
