"""One loadstack HTTP user class on the benches' static endpoint (``GET /static``), no think time.

Used by the ``scale`` and ``startup`` benchmarks, under ``loadstack run`` and plain ``locust``.
"""

from __future__ import annotations

from locust import constant, task

from loadstack.users.http import HttpUser


class StaticUser(HttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get("/static")
