"""HTTP users for the demo platform — a plain Locust file to copy and adapt.

Run it alone with Locust (``locust -f http_users.py -H http://127.0.0.1:8000``)
or through loadstack (``loadstack run --profile smoke``).  Each class is one
area of the API with seed-style task weights; responses are validated with
``catch_response`` and ids are grouped under one name (``/api/v1/orders/[id]``).
"""

from __future__ import annotations

import random
import uuid

from locust import between, task

from loadstack import auth, runcontext
from loadstack.users.http import HttpUser

SKUS = ["sensor-kit", "probe-x1", "scope-200", "cable-bnc", "logger-pro"]


class PlatformUser(HttpUser):
    """Shared helpers: a throw-away account per simulated user."""

    abstract = True
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.email = f"lt-{runcontext.current().run_id}-{uuid.uuid4().hex[:12]}@example.test"
        self.password = uuid.uuid4().hex
        self.token: str | None = None

    def register(self) -> bool:
        with self.client.post(
            "/api/v1/auth/register",
            json={"email": self.email, "password": self.password, "name": "Load Test"},
            catch_response=True,
        ) as resp:
            if resp.status_code != 201:
                resp.failure(f"register: expected 201, got {resp.status_code}")
                return False
            return True

    def login(self) -> bool:
        with self.client.post(
            "/api/v1/auth/login", json={"email": self.email, "password": self.password}, catch_response=True
        ) as resp:
            token = resp.json().get("access_token") if resp.status_code == 200 else None
            if not token:
                resp.failure(f"login: expected 200 with access_token, got {resp.status_code}")
                return False
            self.token = token
            return True

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def sign_in(self) -> None:
        if auth.current() is not None:
            return  # the run's auth mode (--auth-mode) authenticates every request
        if self.register():
            self.login()


class AuthUser(PlatformUser):
    """Authentication API: register 30 / login 50 / health 20 (its own account, whatever the auth mode)."""

    def on_start(self) -> None:
        super().on_start()
        if self.register():
            self.login()

    @task(30)
    def register_new_account(self) -> None:
        self.email = f"lt-{runcontext.current().run_id}-{uuid.uuid4().hex[:12]}@example.test"
        self.register()

    @task(50)
    def login_existing(self) -> None:
        self.login()

    @task(20)
    def health(self) -> None:
        with self.client.get("/health", catch_response=True) as resp:
            if resp.status_code != 200 or resp.json().get("status") != "ok":
                resp.failure(f"health: {resp.status_code}")


class OrderUser(PlatformUser):
    """Orders API (the seed's "generation" user): create 70 / list 30 / get by id 20."""

    def on_start(self) -> None:
        super().on_start()
        self.order_ids: list[int] = []
        self.sign_in()

    @task(70)
    def create_order(self) -> None:
        body = {
            "sku": random.choice(SKUS),
            "quantity": random.randint(1, 5),
            "amount": round(random.uniform(5, 500), 2),
        }
        with self.client.post("/api/v1/orders", json=body, headers=self.auth, catch_response=True) as resp:
            if resp.status_code != 201:
                resp.failure(f"create order: expected 201, got {resp.status_code}")
                return
            order = resp.json()
            if order.get("sku") != body["sku"] or not isinstance(order.get("id"), int):
                resp.failure("create order: response does not echo the order")
                return
            self.order_ids.append(order["id"])
            del self.order_ids[:-50]

    @task(30)
    def list_orders(self) -> None:
        with self.client.get(
            "/api/v1/orders?limit=20", headers=self.auth, name="/api/v1/orders", catch_response=True
        ) as resp:
            if resp.status_code != 200 or "items" not in resp.json():
                resp.failure(f"list orders: {resp.status_code}")

    @task(20)
    def get_order(self) -> None:
        if not self.order_ids:
            return
        order_id = random.choice(self.order_ids)
        with self.client.get(
            f"/api/v1/orders/{order_id}", headers=self.auth, name="/api/v1/orders/[id]", catch_response=True
        ) as resp:
            if resp.status_code != 200 or resp.json().get("id") != order_id:
                resp.failure(f"get order: {resp.status_code}")


class PaymentUser(PlatformUser):
    """Payments API: create 60 / list 40."""

    def on_start(self) -> None:
        super().on_start()
        self.sign_in()

    @task(60)
    def create_payment(self) -> None:
        body = {
            "amount": round(random.uniform(1, 300), 2),
            "method": random.choice(["card", "sepa", "paypal"]),
        }
        with self.client.post("/api/v1/payments", json=body, headers=self.auth, catch_response=True) as resp:
            if resp.status_code != 201 or resp.json().get("status") != "captured":
                resp.failure(f"create payment: {resp.status_code}")

    @task(40)
    def list_payments(self) -> None:
        with self.client.get("/api/v1/payments", headers=self.auth, catch_response=True) as resp:
            if resp.status_code != 200 or "items" not in resp.json():
                resp.failure(f"list payments: {resp.status_code}")


class OscilloscopeUser(PlatformUser):
    """The instrument API: mostly snapshots and status, occasional reconfiguration."""

    @task(10)
    def snapshot(self) -> None:
        with self.client.get("/api/oscilloscope/snapshot", catch_response=True) as resp:
            if resp.status_code != 200 or not resp.json().get("traces"):
                resp.failure(f"snapshot: {resp.status_code}")

    @task(5)
    def status(self) -> None:
        self.client.get("/api/status")

    @task(3)
    def get_config(self) -> None:
        self.client.get("/api/oscilloscope/config")

    @task(2)
    def reconfigure(self) -> None:
        config = {
            "rate_hz": random.choice([500, 1000, 5000]),
            "channels": random.randint(1, 4),
            "timebase_ms": 10,
        }
        with self.client.put("/api/oscilloscope/config", json=config, catch_response=True) as resp:
            if resp.status_code != 200 or resp.json().get("channels") != config["channels"]:
                resp.failure(f"put config: {resp.status_code}")

    @task(1)
    def start_stop(self) -> None:
        self.client.post("/api/oscilloscope/start")
        self.client.post("/api/oscilloscope/stop")
