"""Chains written in Python — the flagship order pipeline, plus a user that mixes a chain with plain tasks.

``order_pipeline`` below is the same flow as ``load-testing/chains/order_pipeline.yml``
and reports the same stat names.  Steps are built with ``loadstack.chains.steps``
(``http``, ``sql``, ``amqp_expect``, ``await_redis``, ``python`` …); templates and
expressions are the same Jinja expressions a chain file uses.
"""

from __future__ import annotations

from locust import between, task

from loadstack.chains import ChainUser, from_python
from loadstack.chains import steps as s

AUTH = {"Authorization": "Bearer {{ vars.token }}"}

order_pipeline = from_python(
    "order_pipeline",
    [
        s.http(
            "login",
            "POST",
            "/api/v1/auth/login",
            json={"email": "{{ seed.email }}", "password": "{{ seed.password }}"},
            expect={"status": 200},
            save={"token": "$.access_token"},
        ),
        s.http(
            "create_order",
            "POST",
            "/api/v1/orders",
            headers=AUTH,
            json={
                "sku": "{{ seed.favourite_sku }}",
                "quantity": 1,
                "amount": "{{ seed.amount }}",
                "currency": "{{ seed.currency }}",
            },
            expect={"status": 201, "json": {"$.status": "created"}},
            save={"order_id": "$.id", "amount": "$.amount"},
        ),
        s.sql(
            "row_in_db",
            "SELECT status, amount, run_id FROM demo_orders WHERE id = %(id)s",
            {"id": "{{ vars.order_id }}"},
            expect={"rows": 1},
            check="last.rows[0].amount == vars.amount and last.rows[0].run_id == run_id",
            save={"db_amount": {"column": "amount"}},
        ),
        s.amqp_expect(
            "event_published",
            exchange="loadstack.demo",
            routing_key="order.created",
            match="message.json.id == vars.order_id",
        ),
        s.await_redis(
            "visible_in_redis",
            "HGETALL",
            "order:{{ vars.order_id }}",
            until="last.value.status == 'processed'",
            since="create_order",
            check="last.value.amount | float == vars.db_amount and last.value.run_id == run_id",
        ),
        s.http(
            "read_back",
            "GET",
            "/api/v1/orders/{{ vars.order_id }}",
            headers=AUTH,
            expect={"status": 200, "json": {"$.status": "processed"}},
            check="last.json.amount == vars.db_amount",
        ),
    ],
    seed="customers",
)


class OrderPipelineUser(ChainUser):
    """Runs the Python-defined flagship chain."""

    chains = [order_pipeline]


class ShopperUser(ChainUser):
    """Ordinary tasks and a chain in one user: browse a little, sometimes run the whole order pipeline."""

    wait_time = between(0.5, 1.5)
    chains = []  # no automatic chain task; the chain runs from `checkout` below

    @task(3)
    def browse(self) -> None:
        self.client.get("/api/oscilloscope/snapshot")

    @task(1)
    def checkout(self) -> None:
        self.run_chain(order_pipeline)
