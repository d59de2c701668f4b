"""Backend connections dial only addresses the guard checked (issue 27, "What to build" item 1).

libpq, redis-py and py-amqp resolve a host name themselves, when they connect.  A name the
guard checked a moment earlier (or one that resolved nowhere then, which the guard allows: it
reaches nothing from here) can resolve elsewhere by then: DNS rebinding, a round-robin or
TTL-0 answer, a changed hosts file.  So loadstack resolves the name when it connects, checks
every address, and has the library dial exactly those (libpq ``hostaddr=``, redis-py and
py-amqp through :func:`loadstack.safety.connect`).

The slow tests run loadstack inside a network namespace (test_target_guard's ``elsewhere``)
whose resolver is a small DNS server of the test's own: its answers for a name alternate
between "no such name" and the "elsewhere" listener's address, so the guard's check sees the
first and the library's own lookup the second.  No byte may reach the listener, and the
command says why.  The positive controls connect to this machine's real servers by name
(``localhost``) and by IP through the same code.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
import redis

from loadstack import safety
from loadstack.data import teardown
from loadstack.inspect.rabbitmq import QueueInspector
from loadstack.inspect.redis import RedisInspector
from tests.test_target_guard import ELSEWHERE, PORT, Elsewhere, _NoDial, _resolving_to, elsewhere  # noqa: F401

REFUSAL = "refusing to send load"

# -- fast: the helpers' contract, on crafted resolver answers --------------------------------------------


def _pinned(dsn: str) -> dict[str, str]:
    return psycopg2.extensions.parse_dsn(dsn)


def test_a_postgres_name_is_pinned_to_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving_to(monkeypatch, "127.0.0.1")
    pinned = _pinned(safety.guarded_dsn("postgresql://u@postgres:5433/db", allow_remote=False, environ={}))
    assert (pinned["host"], pinned["hostaddr"], pinned["port"]) == ("postgres", "127.0.0.1", "5433")


@pytest.mark.parametrize(
    ("dsn", "environ"),
    [
        ("postgresql://u@postgres/db", {}),
        ("host=127.0.0.1,postgres port=5432,5433 dbname=db", {}),
        ("dbname=db", {"PGHOST": "postgres"}),
    ],
)
def test_a_postgres_name_resolved_elsewhere_when_connecting_is_refused(
    dsn: str, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _resolving_to(monkeypatch, ELSEWHERE)
    with pytest.raises(safety.RemoteTargetError, match=f"{REFUSAL}.*{ELSEWHERE}"):
        safety.guarded_dsn(dsn, allow_remote=False, environ=environ)
    assert safety.guarded_dsn(dsn, allow_remote=True, environ=environ) == dsn  # the opt-in changes nothing


def test_a_postgres_name_that_resolves_nowhere_is_never_handed_to_libpq(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The check lets such a name pass (it reaches nothing from here); libpq must not resolve it later.
    _resolving_to(monkeypatch, None)
    safety.check_target("postgresql://u@postgres/db", allow_remote=False, environ={})
    with pytest.raises(psycopg2.OperationalError, match="could not translate"):
        safety.guarded_dsn("postgresql://u@postgres/db", allow_remote=False, environ={})


def test_postgres_sockets_and_explicit_addresses_keep_their_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving_to(monkeypatch, ELSEWHERE)  # nothing below may need the resolver
    pinned = _pinned(safety.guarded_dsn("host=/var/run/postgresql dbname=db", allow_remote=False, environ={}))
    assert (pinned["host"], pinned["hostaddr"]) == ("/var/run/postgresql", "")
    # PGHOSTADDR counts like hostaddr=, and the pinned value overrides the environment's.
    with pytest.raises(safety.RemoteTargetError):
        safety.guarded_dsn("host=/tmp dbname=db", allow_remote=False, environ={"PGHOSTADDR": ELSEWHERE})
    pinned = _pinned(
        safety.guarded_dsn("host=db.example hostaddr=127.0.0.1 dbname=db", allow_remote=False, environ={})
    )
    assert (pinned["host"], pinned["hostaddr"]) == ("db.example", "127.0.0.1")
    with pytest.raises(safety.RemoteTargetError, match="differ in length"):
        safety.guarded_dsn("host=a,b port=1,2,3 dbname=db", allow_remote=False, environ={})


def test_redis_dials_only_a_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving_to(monkeypatch, ELSEWHERE)
    monkeypatch.setattr(safety.socket, "socket", _NoDial)
    url = "redis://localhost:6379/0"
    client = redis.Redis.from_url(
        url, socket_connect_timeout=1, **safety.redis_options(url, allow_remote=False)
    )
    with pytest.raises(safety.RemoteTargetError, match=ELSEWHERE):
        client.ping()
    assert safety.redis_options("unix:///tmp/redis.sock", allow_remote=False) == {}


@pytest.mark.parametrize(
    "url", ["amqp://guest:guest@localhost:5672//", "amqps://guest:guest@localhost:5671//"]
)
def test_amqp_dials_only_a_checked_address(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving_to(monkeypatch, ELSEWHERE)
    monkeypatch.setattr(safety.socket, "socket", _NoDial)
    with pytest.raises(safety.RemoteTargetError, match=ELSEWHERE):
        safety.kombu_connection(url, allow_remote=False, connect_timeout=1).connect()
    with pytest.raises(safety.RemoteTargetError, match=ELSEWHERE):
        safety.amqp_connection(allow_remote=False, host="localhost:5672", connect_timeout=1).connect()


def test_every_amqp_failover_alternate_dials_through_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    # kombu re-reads the transport from each alternate's URL when it fails over.
    conn = safety.kombu_connection(
        "amqp://guest:guest@127.0.0.1:1//;amqp://guest:guest@localhost:5672//", allow_remote=False
    )
    conn.switch("amqp://guest:guest@localhost:5672//")
    assert conn.transport.Connection.__name__ == "GuardedKombuAMQPConnection"


# -- positive controls: the real local servers, by name and by IP ------------------------------------------
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_the_guarded_dials_reach_the_local_servers(host: str) -> None:
    run_id = f"dial-{uuid.uuid4().hex[:8]}"
    for dsn in (
        f"postgresql://postgres@{host}:5432/test",
        f"host={host},127.0.0.1 user=postgres dbname=test",
    ):
        assert "hostaddr=" in safety.guarded_dsn(dsn, allow_remote=False, environ={})
        assert teardown.postgres_remaining(dsn, run_id) == {}
    assert teardown.redis_remaining(f"redis://{host}:6379/0", run_id) == 0
    inspector = RedisInspector(f"redis://{host}:6379/0")
    inspector.scan("loadtest:no-such-run:*", limit=1)
    inspector.close()
    with QueueInspector(f"amqp://guest:guest@{host}:5672//", queue_type="classic") as queues:
        assert queues.connection().connected
    with safety.kombu_connection(
        f"amqp://guest:guest@{host}:5672//", allow_remote=False, heartbeat=0
    ) as conn:
        conn.connect()
        assert conn.connected


# -- slow: real commands in a namespace whose resolver changes its answer ----------------------------------
# Answers A queries for a name of the plan ``{name: [first, then]}`` from ``first`` in turn, then from
# ``then`` over and over: "nx" is "no such name", anything else an address.  AAAA queries get no
# address; names not in the plan do not exist.
RESOLVER = textwrap.dedent(
    """
    import json, socket, struct, sys
    plan, log = json.loads(sys.argv[1]), sys.argv[2]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    asked = {}
    open(log, "a").close()
    while True:
        data, peer = sock.recvfrom(4096)
        i, labels = 12, []
        while data[i]:
            labels.append(data[i + 1 : i + 1 + data[i]].decode().lower())
            i += 1 + data[i]
        qtype = struct.unpack(">H", data[i + 1 : i + 3])[0]
        question, name = data[12 : i + 5], ".".join(labels)
        rcode, answers = 3, []
        if name in plan:
            rcode = 0
            if qtype == 1:
                n = asked.get(name, 0)
                asked[name] = n + 1
                first, then = plan[name]
                answer = first[n] if n < len(first) else then[(n - len(first)) % len(then)]
                with open(log, "a") as out:
                    out.write(f"{name} {answer}\\n")
                if answer == "nx":
                    rcode = 3
                else:
                    answers.append(b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + socket.inet_aton(answer))
        header = struct.pack(">HHHHHH", struct.unpack(">H", data[:2])[0], 0x8180 | rcode, 1, len(answers), 0, 0)
        sock.sendto(header + question + b"".join(answers), peer)
    """
)


@contextlib.contextmanager
def _resolver(box: Elsewhere, plan: dict[str, list[str]]) -> Iterator[Path]:
    """The namespace's resolver: the DNS server above (``ip netns exec`` mounts /etc/netns/NS/*)."""
    folder = Path("/etc/netns") / box.ns
    folder.mkdir(parents=True)
    log = box.tmp / "resolver.log"
    server = None
    try:
        (folder / "hosts").write_text("127.0.0.1 localhost\n")
        (folder / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n")
        server = subprocess.Popen(
            ["ip", "netns", "exec", box.ns, sys.executable, "-c", RESOLVER, json.dumps(plan), str(log)]
        )
        deadline = time.monotonic() + 20
        while not log.exists():
            assert time.monotonic() < deadline and server.poll() is None, "the resolver did not start"
            time.sleep(0.05)
        yield log
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
        for name in ("hosts", "resolv.conf"):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        folder.rmdir()
        with contextlib.suppress(OSError):  # another test's namespace may still have its folder
            folder.parent.rmdir()


# The guard's check sees "no such name" (allowed: it reaches nothing), the library's own lookup next sees
# the listener elsewhere.  A run resolves each name three times (its checks) before any user connects,
# so its plan starts with three of them: the run must start, and its users meet the refusal.
REBINDING = {name: [[], ["nx", ELSEWHERE]] for name in ("postgres", "redis", "rabbitmq")}
REBINDING_RUN = {name: [["nx"] * 3, ["nx", ELSEWHERE]] for name in ("postgres", "redis", "rabbitmq")}


def _tail(result: subprocess.CompletedProcess) -> str:
    return result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow
def test_commands_dial_only_what_the_guard_checked(elsewhere: Elsewhere) -> None:  # noqa: F811
    with _resolver(elsewhere, REBINDING) as log:
        redis_cmd = elsewhere.loadstack("inspect", "redis", "--url", f"redis://redis:{PORT}/0", timeout=120)
        amqp_cmd = elsewhere.loadstack(
            "inspect", "rabbitmq", "q", "--queue-type", "classic", "--url", f"amqp://guest:guest@rabbitmq:{PORT}//",
            env={"LOADSTACK_RABBITMQ_MANAGEMENT_URL": "http://127.0.0.1:9"}, timeout=120,
        )  # fmt: skip
        # The demo platform's backend store: loadstack's guard decides where it connects too.
        demo = elsewhere.loadstack(
            "demo", "serve", "--store", "backend", "--port", "8131",
            env={"LOADSTACK_POSTGRES_DSN": f"postgresql://u@postgres:{PORT}/db", "LOADSTACK_DEMO_STARTUP_WAIT": "0"},
            timeout=120,
        )  # fmt: skip
        asked = log.read_text()
    assert elsewhere.connections() == 0, f"a connection went where the name resolved at connect time\n{asked}"
    # The resolver answered "elsewhere" to each library's own lookup; the guard refused it there.
    for name in ("redis", "rabbitmq", "postgres"):
        assert f"{name} {ELSEWHERE}" in asked, asked
    for result in (redis_cmd, amqp_cmd):
        assert result.returncode == 2, _tail(result)
        assert REFUSAL in result.stderr and ELSEWHERE in result.stderr, _tail(result)
        assert "Traceback" not in result.stderr, _tail(result)
    assert demo.returncode != 0 and REFUSAL in demo.stderr and ELSEWHERE in demo.stderr, _tail(demo)


@pytest.mark.slow
def test_a_run_dials_only_what_the_guard_checked(elsewhere: Elsewhere) -> None:  # noqa: F811
    env = {
        "LOADSTACK_POSTGRES_DSN": f"postgresql://u@postgres:{PORT}/db",
        "LOADSTACK_REDIS_URL": f"redis://redis:{PORT}/0",
        "LOADSTACK_AMQP_URL": f"amqp://guest:guest@rabbitmq:{PORT}//",
        "LOADSTACK_RABBITMQ_MANAGEMENT_URL": "http://127.0.0.1:9",
        "LOADSTACK_DEMO_STORE": "memory",
    }
    run = (
        "run",
        "--profile",
        "backends",
        "--users",
        "3",
        "--spawn-rate",
        "3",
        "--run-time",
        "8s",
        "--workers",
        "1",
    )
    with _resolver(elsewhere, REBINDING_RUN) as log:
        result = elsewhere.loadstack(*run, "--run-id", "rebind", env=env)
        asked = log.read_text()
    assert elsewhere.connections() == 0, f"a backend connection went elsewhere\n{asked}"
    assert result.returncode == 1, _tail(result)
    errors = json.loads((elsewhere.tmp / "results" / "rebind" / "summary.json").read_text())["errors"]
    refused = {e["type"] for e in errors if REFUSAL in e["error"] and ELSEWHERE in e["error"]}
    assert {"SQL", "REDIS", "AMQP"} <= refused, errors

    # The control: with the opt-in the same run does reach the listener, so the zero above means something.
    with _resolver(elsewhere, REBINDING_RUN):
        elsewhere.loadstack(*run, "--run-id", "rebind-allowed", "--allow-remote", env=env)
    assert elsewhere.connections() > 0
