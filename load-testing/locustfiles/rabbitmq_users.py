"""RabbitMQ users — a plain Locust file to copy and adapt.

``OrderEventsUser`` publishes order events with publisher confirms to a
shared work queue, takes events off it (``basic.get`` + ack) and measures the
broker round trip on a queue of its own.  Queue names carry the run id; the
round-trip queues expire by themselves a minute after their user stops.
"""

from __future__ import annotations

import json
import random
import uuid

from locust import between, task

from loadstack.users.rabbitmq import RabbitMQUser, run_queue_name


class OrderEventsUser(RabbitMQUser):
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        self.work_queue = run_queue_name("orders")
        self.rt_queue = run_queue_name(f"rt.{uuid.uuid4().hex[:8]}")
        self.client.declare_queue(self.work_queue, **{"x-expires": 300_000})
        self.client.declare_queue(self.rt_queue, **{"x-expires": 60_000})

    @task(5)
    def publish_order_created(self) -> None:
        event = {
            "type": "order.created",
            "order_id": random.randint(1, 10**9),
            "amount": round(random.uniform(5, 500), 2),
        }
        self.client.declare_queue(self.work_queue, **{"x-expires": 300_000})
        self.client.publish(
            "publish order.created",
            json.dumps(event),
            routing_key=self.work_queue,
            content_type="application/json",
        )

    @task(3)
    def consume_order(self) -> None:
        self.client.declare_queue(self.work_queue, **{"x-expires": 300_000})
        self.client.get("get order.created", self.work_queue)

    @task(2)
    def round_trip(self) -> None:
        self.client.declare_queue(self.rt_queue, **{"x-expires": 60_000})
        self.client.round_trip("round trip", self.rt_queue, b'{"ping": true}')
