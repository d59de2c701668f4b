"""Exporter overhead: request throughput with the Prometheus exporter on vs off, same process, same target.

"On" is everything the exporter adds to a run: the per-request listener that
fills the histograms, the collector, the gevent WSGI server, and a scrape of
``/metrics`` every second (as Prometheus would).  Rounds alternate in ABBA order.
Target: loss <= 2 % (ratio >= 0.98).
"""

from __future__ import annotations

import os
import statistics
import urllib.request

import gevent
import locust  # noqa: F401  (gevent monkey-patching first)
from locust import constant, task
from locust.env import Environment

from bench.common import ab_arguments, abba, verdict
from loadstack.metrics import server as metrics_server
from loadstack.processes import free_port
from loadstack.users.http import HttpUser
from loadstack_demo.process import demo_platform


class HealthUser(HttpUser):
    wait_time = constant(0)

    @task
    def health(self) -> None:
        self.client.get("/health")


def requests_per_second(host: str, users: int, duration: float, exporter: bool) -> float:
    env = Environment(user_classes=[HealthUser], host=host)
    runner = env.create_local_runner()
    scraper = None
    if exporter:
        port = free_port()
        os.environ.update(LOCUST_METRICS_EXPORT="1", LOADSTACK_METRICS_PORT=str(port))
        metrics_server.install(env, "local")

        def scrape() -> None:
            while True:
                gevent.sleep(1.0)
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    resp.read()

        scraper = gevent.spawn(scrape)
    runner.start(users, spawn_rate=users)
    gevent.sleep(1.0)
    before = env.stats.total.num_requests
    gevent.sleep(duration)
    done = env.stats.total.num_requests - before
    if scraper is not None:
        scraper.kill()
    runner.quit()
    env.events.quitting.fire(environment=env)  # stops the exporter's server
    return done / duration


def main(argv: list[str] | None = None) -> dict:
    args = ab_arguments(__doc__, argv)
    print(
        f"exporter: {args.users} users, {args.duration:.0f}s rounds, {args.rounds} rounds in ABBA order (median)"
    )
    with demo_platform(store="memory") as host:
        off, on = abba(
            args.rounds, lambda exporter: requests_per_second(host, args.users, args.duration, exporter)
        )
    a, b = statistics.median(off), statistics.median(on)
    ratio = b / a
    print(f"{'HTTP GET /health':<26} exporter off {a:>8.0f} req/s   on {b:>8.0f} req/s   ratio {ratio:.3f}")
    verdict("exporter", "throughput", ratio, 0.98)
    return {"off": a, "on": b, "ratio": ratio}


if __name__ == "__main__":
    main()
