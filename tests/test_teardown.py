"""Teardown never takes messages off a shared queue: it marks the run ended and the consumer drops them.

Runs in a RabbitMQ vhost of its own (real broker, real demo consumer process), so the machine's
`demo.orders` and anything else using it are untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import kombu
import pytest
import redis

from loadstack.data.teardown import ended_key, reopen, teardown
from loadstack.settings import Settings
from loadstack_demo.backend_store import order_key, run_index_key
from loadstack_demo.events import EXCHANGE, ORDERS_QUEUE, RUN_ID_HEADER, declare
from tests.helpers import ROOT

MESSAGES_PER_RUN = 500


@pytest.fixture
def vhost() -> Iterator[str]:
    name = f"lt-teardown-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "add_vhost", name], check=True, capture_output=True, timeout=60)
    subprocess.run(
        ["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    try:
        yield name
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", name], capture_output=True, timeout=60)


def _depth(conn: kombu.Connection) -> tuple[int, int]:
    _, messages, consumers = conn.default_channel.queue_declare(ORDERS_QUEUE.name, passive=True)
    return messages, consumers


@pytest.mark.slow
def test_teardown_never_takes_messages_off_a_shared_queue(vhost: str) -> None:
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    ended, live = f"td-ended-{uuid.uuid4().hex[:6]}", f"td-live-{uuid.uuid4().hex[:6]}"
    base_id = 900_000_000 + int(uuid.uuid4().int % 1_000_000) * 1000
    ids = {
        run: [base_id + offset + i for i in range(MESSAGES_PER_RUN)]
        for run, offset in ((ended, 0), (live, 500))
    }
    r = redis.Redis()
    with kombu.Connection(amqp_url, transport_options={"confirm_publish": True}) as conn:
        declare(conn)
        producer = kombu.Producer(conn.default_channel, exchange=EXCHANGE)
        for run, order_ids in ids.items():
            for order_id in order_ids:
                event = {"id": order_id, "sku": "probe-x1", "quantity": 1, "amount": 12.5, "currency": "EUR"}
                producer.publish(
                    json.dumps(event), routing_key="order.created", content_type="application/json",
                    headers={RUN_ID_HEADER: run},
                )  # fmt: skip
        assert _depth(conn) == (2 * MESSAGES_PER_RUN, 0)

        config = Settings.load({**os.environ, "LOADSTACK_AMQP_URL": amqp_url})
        started = time.perf_counter()
        report = teardown(ended, config)
        took_ms = (time.perf_counter() - started) * 1000
        print(f"teardown with {2 * MESSAGES_PER_RUN} messages queued: {took_ms:.0f} ms")
        assert not report.skipped, report.skipped
        assert _depth(conn) == (2 * MESSAGES_PER_RUN, 0), "teardown took nothing off the shared queue"
        assert r.exists(ended_key(ended)) and not r.exists(ended_key(live))

        consumer = subprocess.Popen(
            [sys.executable, "-m", "loadstack", "demo", "consumer"], cwd=ROOT, text=True,
            env={**os.environ, "LOADSTACK_AMQP_URL": amqp_url}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while _depth(conn)[0] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _depth(conn)[0] == 0, "the consumer worked through the queue"
        finally:
            consumer.terminate()
            output, _ = consumer.communicate(timeout=30)
    try:
        assert f"({MESSAGES_PER_RUN} of ended runs dropped)" in output, output
        assert all(r.exists(order_key(i)) for i in ids[live]), "the live run's messages were processed"
        assert not any(r.exists(order_key(i)) for i in ids[ended]), "the ended run's messages were dropped"
        assert not r.exists(run_index_key(ended)), "nothing re-created after teardown"
    finally:
        r.delete(*[order_key(i) for run in ids for i in ids[run]], run_index_key(live), ended_key(ended))


def test_a_reused_run_id_is_live_again() -> None:
    """A run id torn down before and used again: the master clears the marker, so the consumer keeps
    the new run's messages (the flagship test reuses its run id and needs every order processed)."""
    run_id = f"td-reuse-{uuid.uuid4().hex[:6]}"
    config = Settings.load({"LOADSTACK_REDIS_URL": "redis://127.0.0.1:6379/0"})
    r = redis.Redis.from_url(config.redis_url)
    try:
        teardown(run_id, config)
        assert r.exists(ended_key(run_id))
        assert reopen(run_id, config) and not r.exists(ended_key(run_id))
        assert not reopen(run_id, config), "nothing to clear the second time"
    finally:
        r.delete(ended_key(run_id))
