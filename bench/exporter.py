"""Exporter overhead: request throughput with the Prometheus exporter on vs off, same process, same target.

"On" is everything the exporter adds to a run: the per-request listener that
fills the histograms, the collector, the gevent WSGI server, and a scrape of
``/metrics`` every second (as Prometheus would; the scraping client is a separate
process, as Prometheus is).  Primary figure: the generator's CPU per request on each
side.  Target: loss <= 2 %, i.e. CPU per request off / on >= 0.98.  Counting instructions, a
window is ``SCRAPE_EVERY`` requests with one scrape in it: the same share as natively.
"""

from __future__ import annotations

import os
import subprocess
import sys

import gevent
import locust  # noqa: F401  (gevent monkey-patching first)
from locust import task

from bench.common import Gate, arguments, interleaved_rounds, locust_side, pin_url_server, pinned, plan_text
from bench.harness import Target, print_comparison
from loadstack import settings
from loadstack.metrics import server as metrics_server
from loadstack.processes import free_port
from loadstack.users.http import HttpUser
from loadstack_demo.process import demo_platform

TARGET = Target(0.98)
# Requests per scrape under --count instructions: natively the bench does about 4,900 req/s
# and scrapes once a second, so one scrape per 5,000 requests is the same share.
SCRAPE_EVERY = 5000
# A Prometheus stand-in in its own process: GET /metrics for every line it reads (bounded).
SCRAPER = """
import sys, urllib.request
url = sys.argv[1]
for n, _ in enumerate(sys.stdin):
    if n >= 10000:
        break
    try:
        urllib.request.urlopen(url, timeout=5).read()
    except OSError:
        pass
"""


class HealthUser(HttpUser):
    @task
    def health(self) -> None:
        self.client.get("/health")


class HealthUserOn(HealthUser):
    pass


def main(argv: list[str] | None = None) -> dict:
    args = arguments(__doc__, argv, users=4, duration=2.0, rounds=8, ops=SCRAPE_EVERY)
    scrapes = "one scrape per window" if args.window_ops else "one scrape per second of exporter-on time"
    print(f"exporter: {plan_text(args, op='request')}; {scrapes}")
    port = free_port()
    os.environ.update(LOCUST_METRICS_EXPORT="1", LOADSTACK_METRICS_PORT=str(port))
    settings.refresh()  # the exporter reads its port from the settings
    with pinned(not args.no_pin) as pinning, demo_platform(store="memory") as host:
        pin_url_server(pinning, "demo platform (in-memory store)", host)
        scraper = subprocess.Popen(
            [sys.executable, "-c", SCRAPER, f"http://127.0.0.1:{port}/metrics"],
            stdin=subprocess.PIPE,
            text=True,
        )
        if pinning.plan is not None:
            pinning.pin("scraper", scraper.pid, pinning.sut)
        pinning.report("exporter")
        gate = Gate(["off", "on"])
        envs = {
            "off": locust_side(gate, "off", HealthUser, host, args.users),
            "on": locust_side(
                gate,
                "on",
                HealthUserOn,
                host,
                args.users,
                setup=lambda env: metrics_server.install(env, "local"),
            ),
        }
        on_time = [0.0]
        slice_s = args.duration / args.slices

        def scrape_when_due(side: str) -> None:
            # One scrape per second of exporter-on time; counting instructions, one per window
            # (--ops requests, by default SCRAPE_EVERY).
            if side == "on":
                on_time[0] += 1.0 if args.window_ops is not None else slice_s
                if on_time[0] >= 1.0:
                    on_time[0] -= 1.0
                    assert scraper.stdin is not None
                    scraper.stdin.write("scrape\n")
                    scraper.stdin.flush()

        gevent.sleep(1.0)  # spawn, connect
        try:
            samples, _ = interleaved_rounds(
                args.rounds,
                gate,
                {side: (lambda env=env: env.stats.total.num_requests) for side, (env, _) in envs.items()},
                slices=args.slices,
                slice_s=slice_s,
                ops=args.window_ops,
                on_open=scrape_when_due,
            )
        finally:
            for env, runner in envs.values():
                runner.quit()
                env.events.quitting.fire(environment=env)  # stops the exporter's server
            scraper.kill()
            scraper.wait()
    return print_comparison(
        "exporter", "HTTP GET /health", samples, "off", ["on"], target=TARGET, judged="on", unit="req"
    )


if __name__ == "__main__":
    main()
