"""Test locustfile for the workload model: one request per iteration, so requests count iterations.

``LOADSTACK_TEST_SLOW_FROM``/``LOADSTACK_TEST_SLOW_UNTIL`` (seconds after the test starts) make
``SpikeUser`` call a path the demo platform slows down (``--slow /api/status=...``) in that window.
"""

import os
import time

from locust import constant, events, task

from loadstack.users.http import HttpUser
from loadstack.workload import data

STARTED = [time.time()]


@events.test_start.add_listener
def remember_start(**_kwargs):
    STARTED[0] = time.time()


class ProbeUser(HttpUser):
    """One GET /health per iteration; closed model: one iteration a second per user."""

    wait_time = constant(1)

    @task
    def probe(self):
        self.client.get("/health", name="probe")


class SpikeUser(HttpUser):
    wait_time = constant(0.1)
    slow = (
        float(os.environ.get("LOADSTACK_TEST_SLOW_FROM", "-1")),
        float(os.environ.get("LOADSTACK_TEST_SLOW_UNTIL", "-1")),
    )

    @task
    def probe(self):
        t = time.time() - STARTED[0]
        path = "/api/status" if self.slow[0] <= t < self.slow[1] else "/health"
        self.client.get(path, name="probe")


class AccountUser(HttpUser):
    """Registers the account of a data row: a row used twice would be a 409."""

    wait_time = constant(0)

    @task
    def register(self):
        with data.row("accounts") as account:
            body = {"email": account["email"], "password": account["password"], "name": "Feeder"}
            with self.client.post("/api/v1/auth/register", json=body, catch_response=True) as resp:
                if resp.status_code != 201:
                    resp.failure(f"register {account['email']}: {resp.status_code}")
