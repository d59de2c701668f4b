"""Test locustfile: two user classes whose tasks each run in a span of their own (OpenTelemetry on).

The OTel test compares the master's OTLP metrics with summary.json and the :9646 exporter, and
checks that the exporter's exemplars name traces these spans exported.
"""

import random

from locust import constant, task
from opentelemetry import trace

from loadstack.users.http import HttpUser

tracer = trace.get_tracer("loadstack.tests.traced_users")


class BrowsingUser(HttpUser):
    wait_time = constant(0.02)

    @task(3)
    def health(self):
        with tracer.start_as_current_span("browse"):
            self.client.get("/health")

    @task(1)
    def missing(self):
        with tracer.start_as_current_span("missing"):
            self.client.get("/does-not-exist")  # a failure, by design


class StatusUser(HttpUser):
    wait_time = constant(0.02)

    @task
    def status(self):
        with tracer.start_as_current_span("status"):
            self.client.get("/api/status")
            if random.random() < 0.5:
                self.client.get("/health")
