"""Test locustfile for latency from the intended start: one GET /api/status per iteration.

/api/status, not /health: the demo platform's stall clock (``LOADSTACK_DEMO_STALL``) starts at
the first request other than its readiness probe.
"""

from locust import constant, task

from loadstack.users.http import HttpUser


class StatusUser(HttpUser):
    wait_time = constant(1)

    @task
    def status(self):
        self.client.get("/api/status", name="status")
