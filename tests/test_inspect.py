"""Non-destructive inspection against the real RabbitMQ and Redis on this machine."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import amqp
import pytest
import redis

from loadstack.inspect.rabbitmq import InspectError, QueueInspector, decode_body
from loadstack.inspect.redis import InspectError as RedisInspectError
from loadstack.inspect.redis import ReadOnlyRedis, ReadOnlyViolation, check_pattern
from loadstack.processes import free_port
from tests.helpers import PrivateRedis, loadstack

AMQP = {"host": "127.0.0.1:5672", "userid": "guest", "password": "guest"}


@pytest.fixture
def channel() -> Iterator[amqp.Channel]:
    conn = amqp.Connection(**AMQP)
    conn.connect()
    ch = conn.channel()
    yield ch
    conn.close()


def _queue(channel: amqp.Channel, kind: str = "classic") -> str:
    name = f"loadtest.test.{kind}.{uuid.uuid4().hex[:8]}"
    args = {"x-queue-type": kind} if kind != "classic" else {}
    channel.queue_declare(name, durable=kind != "classic", auto_delete=False, arguments=args)
    return name


def _publish(channel: amqp.Channel, queue: str, seq: int, *, malformed: bool = False) -> bytes:
    if malformed and seq % 2:
        body, ctype = b'{"seq": ' + str(seq).encode() + b", broken", "application/json"
    elif malformed:
        body, ctype = b"\xff\xfe seq=" + str(seq).encode(), "text/plain"
    else:
        body, ctype = json.dumps({"seq": seq}).encode(), "application/json"
    channel.basic_publish(
        amqp.Message(body, content_type=ctype, application_headers={"seq": seq}), routing_key=queue
    )
    return body


@pytest.mark.slow
def test_peek_is_non_destructive_under_concurrent_publishing(channel: amqp.Channel) -> None:
    queue = _queue(channel)
    published: list[bytes] = []
    for seq in range(500):
        published.append(_publish(channel, queue, seq, malformed=seq % 25 == 0))
    bodies_by_seq = dict(enumerate(published))

    # A second publisher keeps appending while we peek (its own connection; bounded in count and time).
    more: list[bytes] = []
    stop = threading.Event()

    def publisher() -> None:
        conn = amqp.Connection(**AMQP)
        conn.connect()
        ch = conn.channel()
        seq = 500
        deadline = time.monotonic() + 120
        while not stop.is_set() and seq < 1500 and time.monotonic() < deadline:
            more.append(_publish(ch, queue, seq))
            seq += 1
            time.sleep(0.002)
        conn.close()

    thread = threading.Thread(target=publisher)
    thread.start()
    rng = random.Random(7)
    peeks = 0
    with QueueInspector() as inspector:
        while peeks < 1000:
            size = rng.randint(1, 40)
            messages = inspector.peek(queue, size)
            peeks += 1
            assert len(messages) == size, "the head is never consumed, so a full page is always there"
            seqs = [m.headers["seq"] for m in messages]
            assert seqs == list(range(size)), f"peek {peeks}: head moved or reordered: {seqs[:10]}"
            for m in messages:
                assert m.raw == bodies_by_seq[m.headers["seq"]]
                if m.headers["seq"] % 25 == 0:
                    assert m.decode_error, "malformed bodies are flagged"
                    assert isinstance(m.body, bytes) and m.body == m.raw, "and kept as raw bytes"
                else:
                    assert m.decode_error is None and m.body == {"seq": m.headers["seq"]}
    stop.set()
    thread.join(30)

    # Drain: every message exactly once, in publish order, malformed ones included.
    expected = published + more
    received = []
    while (msg := channel.basic_get(queue, no_ack=True)) is not None:
        received.append(msg.body)
    channel.queue_delete(queue)
    assert len(received) == len(expected)
    assert received == expected


def test_empty_and_missing_queues(channel: amqp.Channel) -> None:
    queue = _queue(channel)
    with QueueInspector() as inspector:
        assert inspector.peek(queue, 5) == []
        with pytest.raises(InspectError, match="does not exist"):
            inspector.peek(f"{queue}.missing", 5)
    channel2 = channel.connection.channel()
    with pytest.raises(amqp.exceptions.NotFound):
        channel2.queue_declare(f"{queue}.missing", passive=True)  # the inspector did not create it
    channel.queue_delete(queue)


def _publish_confirmed(channel: amqp.Channel, queue: str, count: int) -> None:
    """Publish ``count`` messages and return once the broker has stored them (publisher confirms),
    instead of sleeping a fixed time that a busy machine could outlast."""
    confirmed = channel.connection.channel()
    confirmed.confirm_select()
    try:
        for seq in range(count):
            _publish(confirmed, queue, seq)
    finally:
        confirmed.close()


# Slow: each `loadstack inspect` starts a Python process and a rabbitmqctl (an Erlang VM).
@pytest.mark.slow
def test_quorum_queue_is_refused_unless_allowed(channel: amqp.Channel) -> None:
    queue = _queue(channel, "quorum")
    _publish_confirmed(channel, queue, 3)
    for _ in range(600):  # the depth a passive declare reports follows the commit: wait for it
        if channel.queue_declare(queue, passive=True).message_count == 3:
            break
        time.sleep(0.1)
    try:
        with QueueInspector() as inspector:
            with pytest.raises(InspectError, match="delivery-limit"):
                inspector.peek(queue, 2)
            assert inspector.info(queue).messages == 3, "refusal happened before any message was touched"
        with QueueInspector(allow_delivery_count=True) as inspector:
            assert len(inspector.peek(queue, 2)) == 2
        cli = loadstack("inspect", "rabbitmq", queue)
        assert cli.returncode == 2 and "--allow-delivery-count" in cli.stderr
    finally:
        channel.queue_delete(queue)


def test_stream_is_read_by_offset_without_consuming(channel: amqp.Channel) -> None:
    queue = _queue(channel, "stream")
    try:
        _publish_confirmed(channel, queue, 6)
        with QueueInspector() as inspector:
            first = inspector.peek(queue, 4)
            again = inspector.peek(queue, 4)
            tail = inspector.peek(queue, 10, offset=4)
        assert [m.headers["seq"] for m in first] == [0, 1, 2, 3]
        assert [m.raw for m in again] == [m.raw for m in first]
        assert [m.headers["seq"] for m in tail] == [4, 5]
    finally:
        channel.queue_delete(queue)


# Slow: each `loadstack inspect` starts a Python process and a rabbitmqctl (an Erlang VM).
@pytest.mark.slow
def test_rabbitmq_cli_output_and_errors(channel: amqp.Channel) -> None:
    queue = _queue(channel)
    _publish(channel, queue, 1)
    _publish(channel, queue, 2, malformed=True)
    try:
        out = loadstack("inspect", "rabbitmq", queue, "--json")
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["queue"]["messages"] == 2 and len(doc["messages"]) == 2
        assert doc["messages"][1]["decode_error"] and doc["messages"][1]["raw"]
        text = loadstack("inspect", "rabbitmq", queue)
        assert "not decodable" in text.stdout
        assert loadstack("inspect", "rabbitmq", f"{queue}.nope").returncode == 2
        bad = loadstack("inspect", "rabbitmq", queue, "--url", "http://127.0.0.1:5672")
        assert bad.returncode == 2 and "not an AMQP URL" in bad.stderr and len(bad.stderr.splitlines()) == 1
    finally:
        channel.queue_delete(queue)


def test_decode_body_never_loses_bytes() -> None:
    assert decode_body(b'{"a": 1}', "application/json", None) == ({"a": 1}, None)
    body, error = decode_body(b"\xff\x00", "text/plain", None)
    assert body == b"\xff\x00" and "UnicodeDecodeError" in error
    body, error = decode_body(b"\x00\x01", "application/octet-stream", None)
    assert body == b"\x00\x01" and error is None


# -- Redis -----------------------------------------------------------------------------------
@pytest.fixture
def keyspace() -> Iterator[tuple[redis.Redis, str]]:
    r = redis.Redis()
    prefix = f"lt-insp-{uuid.uuid4().hex[:8]}"
    r.set(f"{prefix}:str:ttl", "x" * 1000, ex=600)
    r.set(f"{prefix}:str:plain", "hello")
    r.hset(f"{prefix}:hash", mapping={f"f{i}": i for i in range(50)})
    r.expire(f"{prefix}:hash", 900)
    r.rpush(f"{prefix}:queue", *[f"job-{i}" for i in range(30)])
    r.sadd(f"{prefix}:set", *range(40))
    r.zadd(f"{prefix}:zset", {f"m{i}": i for i in range(25)})
    for i in range(15):
        r.xadd(f"{prefix}:stream", {"n": i})
    yield r, prefix
    r.delete(*r.keys(f"{prefix}:*"))


def _snapshot(r: redis.Redis, prefix: str) -> dict[bytes, tuple[bytes, int, int]]:
    return {k: (r.dump(k), r.pttl(k), r.pexpiretime(k)) for k in sorted(r.scan_iter(f"{prefix}:*"))}


def test_redis_inspection_changes_nothing(keyspace: tuple[redis.Redis, str]) -> None:
    r, prefix = keyspace
    # The TTLs may drop by the time between the two snapshots, no more: that time brackets them
    # (plus 1 ms of PTTL rounding), however slow the machine.
    t0 = time.monotonic()
    before = _snapshot(r, prefix)
    # Values are previewed only with --allow-touch on a Redis without CLIENT NO-TOUCH (< 7.2).
    out = loadstack("inspect", "redis", f"{prefix}:*", "--json", "--allow-touch")
    assert out.returncode == 0, out.stderr
    reports = {item["key"]: item for item in json.loads(out.stdout)}
    assert {item["type"] for item in reports.values()} == {"string", "hash", "list", "set", "zset", "stream"}
    assert reports[f"{prefix}:queue"]["preview"] == [f"job-{i}" for i in range(10)]
    assert reports[f"{prefix}:queue"]["size"] == 30 and reports[f"{prefix}:queue"]["truncated"]
    assert 0 < reports[f"{prefix}:str:ttl"]["ttl_ms"] <= 600_000
    assert len(reports[f"{prefix}:str:ttl"]["preview"]) == 256
    after = _snapshot(r, prefix)
    elapsed_ms = (time.monotonic() - t0) * 1000 + 1
    assert after.keys() == before.keys()
    for key, (dump, pttl, expire_at) in before.items():
        dump2, pttl2, expire_at2 = after[key]
        assert dump2 == dump, f"{key!r} changed"
        assert expire_at2 == expire_at, f"{key!r} expiry changed"
        assert pttl == pttl2 == -1 or 0 <= pttl - pttl2 <= elapsed_ms, f"{key!r} TTL moved more than time did"


def test_allowlist_refuses_writes_before_sending() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    client = ReadOnlyRedis(host="127.0.0.1", port=closed, socket_connect_timeout=0.5)
    # Against a closed port, anything sent would be a ConnectionError; the refusal comes first.
    for attempt in (
        lambda: client.set("k", "v"),
        lambda: client.delete("k"),
        lambda: client.rpop("q"),
        lambda: client.flushdb(),
        lambda: client.keys("*"),
        lambda: client.execute_command("OBJECT", "HELP"),
        lambda: client.pipeline(),
    ):
        with pytest.raises(ReadOnlyViolation):
            attempt()


def test_inspector_runs_as_read_only_acl_user(keyspace: tuple[redis.Redis, str]) -> None:
    r, prefix = keyspace
    user, password = f"lt-inspector-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    r.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "+@read", "-keys")
    try:
        url = f"redis://{user}:{password}@127.0.0.1:6379/0"
        out = loadstack("inspect", "redis", f"{prefix}:*", "--url", url, "--json")
        assert out.returncode == 0, out.stderr
        assert len(json.loads(out.stdout)) == 7
        assert password not in out.stdout + out.stderr
        limited = redis.Redis.from_url(url)
        with pytest.raises(redis.exceptions.NoPermissionError):
            limited.set(f"{prefix}:nope", 1)
    finally:
        r.execute_command("ACL", "DELUSER", user)


def test_redis_inspector_bad_input() -> None:
    for pattern in ("", "a b", "foo[bar", "trail\\"):
        with pytest.raises(RedisInspectError):
            check_pattern(pattern)
    for args in (["inspect", "redis", "x[y"], ["inspect", "redis", "--url", "http://127.0.0.1"]):
        out = loadstack(*args)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    out = loadstack("inspect", "redis", "--limit", "0")
    assert out.returncode == 2


def _touch_clock(r: redis.Redis, keys: list[str], lfu: bool) -> dict[str, int]:
    """What a read would change: OBJECT FREQ under an LFU policy, else OBJECT IDLETIME."""
    return {key: r.object("FREQ" if lfu else "IDLETIME", key) for key in keys}


@pytest.mark.parametrize("policy", ["noeviction", "allkeys-lfu"])
def test_redis_inspection_leaves_lru_and_lfu_alone(policy: str) -> None:
    """Idle time and LFU counters are unchanged by a default inspection, on any Redis version."""
    lfu = policy.endswith("lfu")
    # No LFU decay: a counter decays by one each time the minute clock ticks over, so a test
    # window that spans a minute boundary (likelier the slower the machine) would see it drop.
    # Without decay, only an access changes it, and an access always raises it from its start value.
    server = PrivateRedis(free_port(), "--maxmemory-policy", policy, "--lfu-decay-time", "0")
    server.start()
    try:
        r = redis.Redis(port=server.port)
        keys = ["lt-lru:str", "lt-lru:list", "lt-lru:hash"]
        r.set(keys[0], "value")
        r.rpush(keys[1], "a", "b")
        r.hset(keys[2], mapping={"f": "v"})
        time.sleep(0 if lfu else 2.2)  # OBJECT IDLETIME counts whole seconds
        before = _touch_clock(r, keys, lfu)
        url = f"redis://127.0.0.1:{server.port}/0"
        no_touch = tuple(int(p) for p in r.info("server")["redis_version"].split(".")[:2]) >= (7, 2)
        out = loadstack("inspect", "redis", "lt-lru:*", "--url", url, "--json")
        assert out.returncode == 0, out.stderr
        reports = {item["key"]: item for item in json.loads(out.stdout)}
        assert set(reports) == set(keys) and all(item["memory_bytes"] for item in reports.values())
        if not no_touch:
            assert all(
                item["preview"] is None and "--allow-touch" in item["note"] for item in reports.values()
            )
        after = _touch_clock(r, keys, lfu)
        for key in keys:
            if lfu:
                assert after[key] == before[key], (key, before[key], after[key])
            else:
                assert after[key] >= before[key] >= 2, (key, before[key], after[key])
        if not no_touch:
            # The control: a value read that is allowed to touch does change the clock.
            touched = loadstack("inspect", "redis", "lt-lru:*", "--url", url, "--json", "--allow-touch")
            assert touched.returncode == 0
            now = _touch_clock(r, keys, lfu)
            assert (now[keys[0]] > after[keys[0]]) if lfu else (now[keys[0]] < 2), (after, now)
    finally:
        server.stop()


def test_redis_inspection_masks_secrets_and_escapes_key_names(keyspace: tuple[redis.Redis, str]) -> None:
    r, prefix = keyspace
    r.set(f"{prefix}:session:42", "opaque-session-cookie-value")
    r.set(f"{prefix}:dsn", "postgresql://app:Pg-Hidden-77@db.internal/app")
    r.set(f"{prefix}:\x1b]0;pwned\x07", "x")
    out = loadstack("inspect", "redis", f"{prefix}:*", "--allow-touch")
    assert out.returncode == 0, out.stderr
    assert "opaque-session-cookie-value" not in out.stdout and "Pg-Hidden-77" not in out.stdout
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\\x1b]0;pwned\\x07" in out.stdout


@pytest.mark.parametrize("flags", [[], ["--allow-touch"], ["--allow-touch", "--json"]])
def test_redis_inspection_never_shows_secret_keys(flags: list[str]) -> None:
    """jwt:*, csrf:*, cookie:*, PHPSESSID:* (and secret fields of a hash) are masked whatever the flags:
    --allow-touch used to show them (issue 27, finding 10)."""
    r = redis.Redis()
    tag = f"lt-sec-{uuid.uuid4().hex[:8]}"
    values = {
        f"jwt:{tag}": "eyJhbGciOiJub25lIn0-jwt-value-1",
        f"csrf:{tag}": "csrf-value-2-Kq81",
        f"cookie:{tag}": "cookie-value-3-Zp44",
        f"PHPSESSID:{tag}": "phpsessid-value-4-Wy09",
        f"xsrf:{tag}": "xsrf-value-5-Lm27",
    }
    try:
        for key, value in values.items():
            r.set(key, value)
        r.hset(
            f"user:{tag}",
            mapping={"name": "Ada", "password": "hash-value-6-Rt55", "csrf_token": "csrf-value-7"},
        )
        r.set(f"plain:{tag}", "plain-value-visible")
        out = loadstack("inspect", "redis", f"*:{tag}", *flags)
        assert out.returncode == 0, out.stderr
        shown = out.stdout + out.stderr
        for key in values:
            assert key in shown, shown
        for secret in [*values.values(), "hash-value-6-Rt55", "csrf-value-7"]:
            assert secret not in shown, (secret, shown)
        if "--allow-touch" in flags:  # the rest is still previewed: only secrets are hidden
            assert "plain-value-visible" in shown and "Ada" in shown, shown
    finally:
        r.delete(*values, f"user:{tag}", f"plain:{tag}")
