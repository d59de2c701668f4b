"""Test locustfile: every request a worker reports is also written to ``$LOADSTACK_TEST_RECORD_DIR``.

The exporter test compares those raw observations with the master's merged histogram.
"""

import json
import os
import random

import gevent
from locust import constant, events, task

from loadstack.users.base import TimedClient
from loadstack.users.http import HttpUser


@events.init.add_listener
def record_worker_requests(environment, runner=None, **_kwargs):
    if type(runner).__name__ == "MasterRunner":
        return
    out = open(os.path.join(os.environ["LOADSTACK_TEST_RECORD_DIR"], f"{os.getpid()}.jsonl"), "a")  # noqa: SIM115

    def on_request(request_type, name, response_time, exception=None, **_):
        out.write(json.dumps([request_type, name, response_time, exception is not None]) + "\n")

    environment.events.request.add_listener(on_request)
    environment.events.quitting.add_listener(lambda **_: out.close())


class SpreadUser(HttpUser):
    """Requests whose latencies land in many different buckets, some of them failures."""

    wait_time = constant(0.01)

    def on_start(self):
        self.timed = TimedClient(self.environment, user=self)

    @task(3)
    def health(self):
        self.client.get("/health")

    @task(2)
    def sleepy(self):
        self.timed.call("sleepy", gevent.sleep, random.choice([0, 0.002, 0.007, 0.02, 0.06, 0.15]))

    @task(1)
    def missing(self):
        self.client.get("/does-not-exist")
