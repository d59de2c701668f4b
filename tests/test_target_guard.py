"""Target safety: every bypass class is refused, on the address the client library would really use.

The fast tests feed the guard crafted inputs.  The slow tests run loadstack for real inside a
network namespace this test creates, where a listener on a non-loopback address (198.18.0.0/15,
only inside that namespace) stands in for "elsewhere": every bypass must leave it at zero
connections, and a control run with ``--allow-remote`` shows the listener does count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loadstack import safety
from tests.helpers import ROOT, loadstack, one_chain_profile, write_profile

ELSEWHERE = "198.18.200.2"
PORT = 7000
AWAY = f"{ELSEWHERE}:{PORT}"

REFUSED = {
    "http host": f"http://{AWAY}/",
    "decimal host": "http://3323068418/",
    "userinfo trick": f"http://127.0.0.1@{AWAY}/",
    "pg uri": f"postgresql://u@{AWAY}/db",
    "pg uri ?host=": "postgresql://u@127.0.0.1/db?host=" + ELSEWHERE,
    "pg uri ?hostaddr=": "postgresql:///db?hostaddr=" + ELSEWHERE,
    "pg multi-host uri": f"postgresql://u@127.0.0.1:5432,{AWAY}/db",
    "pg keyword hostaddr": f"host=localhost hostaddr={ELSEWHERE} dbname=x",
    "pg keyword multi-host": f"host=127.0.0.1,{ELSEWHERE} dbname=x",
    "pg keyword @ in user": f"user=a@127.0.0.1 host={ELSEWHERE} dbname=x",
    "pg service": "service=prod dbname=x",
    "amqp alternate": f"amqp://guest:guest@127.0.0.1:5672//;amqp://guest:guest@{AWAY}//",
    "redis ?host=": f"redis:///0?host={ELSEWHERE}&port={PORT}",
    "redis host": f"redis://{AWAY}/0",
}
ALLOWED = [
    "http://127.0.0.1:8000/",
    "http://localhost/",
    "http://[::1]:8000/",
    "postgresql://postgres@127.0.0.1:5432/test",
    "host=127.0.0.1 dbname=test",
    "host=/var/run/postgresql dbname=test",
    "dbname=test",
    "amqp://guest:guest@127.0.0.1:5672//;amqp://guest:guest@localhost:5672//",
    "redis://127.0.0.1:6379/0",
]
# Service names of the compose stack: allowed only where the resolver sends them (see below).
COMPOSE_NAMED = [
    "http://target:8000/",
    "amqp://guest:guest@127.0.0.1:5672//;amqp://guest:guest@rabbitmq:5672//",
    "redis://redis:6379/0?socket_timeout=3",
    "postgresql://u@postgres:5432/db",
]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_guard_refuses_what_the_client_would_send_elsewhere(name: str) -> None:
    with pytest.raises(safety.RemoteTargetError) as refused:
        safety.check_target(REFUSED[name], allow_remote=False, environ={})
    assert "Pg-" not in str(refused.value)
    if name != "pg service":
        safety.check_target(REFUSED[name], allow_remote=True, environ={})  # the opt-in works


@pytest.mark.parametrize("url", ALLOWED)
def test_guard_allows_local_targets(url: str) -> None:
    safety.check_target(url, allow_remote=False, environ={})


@pytest.fixture
def stack_subnet(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process's settings with the compose network of docker-compose.yml recorded."""
    from loadstack import settings

    monkeypatch.setenv("LOADSTACK_STACK_SUBNET", "10.213.77.0/24")
    settings.refresh()
    yield "10.213.77.0/24"
    monkeypatch.delenv("LOADSTACK_STACK_SUBNET")
    settings.refresh()


def _resolving_to(monkeypatch: pytest.MonkeyPatch, address: str | None) -> None:
    import socket

    found = [] if address is None else [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0))]
    monkeypatch.setattr(safety, "resolve", lambda host, port=None: found)


@pytest.mark.parametrize("url", COMPOSE_NAMED)
@pytest.mark.parametrize("address", ["127.0.0.1", "10.213.77.5", None])
def test_a_compose_service_name_is_allowed_where_it_resolves_into_the_stack(
    url: str, address: str, stack_subnet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None: the name resolves nowhere here (the host side of a compose run), so nothing can reach it
    # from here; where it is dialled, the resolved address is checked (the tests below).
    _resolving_to(monkeypatch, address)
    safety.check_target(url, allow_remote=False, environ={})


@pytest.mark.parametrize("url", COMPOSE_NAMED)
@pytest.mark.parametrize("address", [ELSEWHERE, "10.213.78.5"])
def test_a_compose_service_name_resolved_elsewhere_is_refused(
    url: str, address: str | None, stack_subnet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hosts entry or a DNS search domain decides where `target` goes, not the name.
    _resolving_to(monkeypatch, address)
    with pytest.raises(safety.RemoteTargetError, match="refusing to send load"):
        safety.check_target(url, allow_remote=False, environ={})


def test_without_a_compose_network_only_loopback_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving_to(monkeypatch, "10.213.77.5")
    with pytest.raises(safety.RemoteTargetError):
        safety.check_target("http://target:8000/", allow_remote=False)
    _resolving_to(monkeypatch, "127.0.0.1")
    safety.check_target("http://target:8000/", allow_remote=False)


@pytest.mark.parametrize("subnet", ["0.0.0.0/0", "8.8.0.0/16", "::/0"])
def test_a_public_stack_subnet_is_bad_input(subnet: str) -> None:
    """Every address of the stack's network passes the guard: a public one would turn it off."""
    out = loadstack("profile", "show", "smoke", env={"LOADSTACK_STACK_SUBNET": subnet})
    assert out.returncode == 2 and "LOADSTACK_STACK_SUBNET" in out.stderr, out.stdout + out.stderr
    assert "not a private network" in out.stderr and "Traceback" not in out.stderr


class _NoDial:
    """A socket that fails the test if anything connects it."""

    def __init__(self, *args: object) -> None:
        pass

    def settimeout(self, timeout: object) -> None:
        pass

    def connect(self, address: object) -> None:
        raise AssertionError(f"dialled {address}")

    def close(self) -> None:
        pass


def test_the_egress_point_checks_the_resolved_address_before_dialling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A name the guard allows (here `localhost`) but the resolver sends elsewhere at dial time.
    _resolving_to(monkeypatch, ELSEWHERE)
    monkeypatch.setattr(safety.socket, "socket", _NoDial)
    with pytest.raises(safety.RemoteTargetError, match=ELSEWHERE):
        safety.connect("localhost", 80, timeout=1, allow_remote=False, what="URL", shown="http://localhost/")


def test_the_users_connection_pool_checks_the_address_it_dials() -> None:
    from geventhttpclient.connectionpool import ConnectionPool

    import loadstack.users.http  # noqa: F401  (installs the pool's check)

    pool = ConnectionPool("localhost", 80, "localhost", 80)
    with pytest.raises(safety.TargetRefused, match=ELSEWHERE):
        pool._connect_socket(_NoDial(), (ELSEWHERE, 80))


def test_a_named_proxy_is_checked_before_a_websocket_dials_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from loadstack import settings
    from loadstack.users.websocket import open_websocket

    monkeypatch.setenv("LOADSTACK_ALLOW_PROXY", f"http://{AWAY}")
    settings.refresh()
    monkeypatch.setattr(safety.socket, "socket", _NoDial)
    try:
        with pytest.raises(safety.RemoteTargetError, match="proxy"):
            open_websocket("ws://127.0.0.1:9/ws", headers={}, timeout=1, allow_remote=False)
    finally:
        monkeypatch.delenv("LOADSTACK_ALLOW_PROXY")
        settings.refresh()


@pytest.mark.parametrize("variable", ["PGHOST", "PGHOSTADDR"])
def test_guard_reads_the_libpq_environment(variable: str) -> None:
    with pytest.raises(safety.RemoteTargetError):
        safety.check_target("dbname=test", allow_remote=False, environ={variable: ELSEWHERE})
    safety.check_target("host=127.0.0.1 dbname=test", allow_remote=False, environ={"PGHOST": ELSEWHERE})


@pytest.mark.parametrize("base", ["http://127.0.0.1:8000", "http://localhost"])
@pytest.mark.parametrize("path", [f"@{AWAY}/x", f".{ELSEWHERE}/x", f"http://{AWAY}/x", f"//{AWAY}/x"])
def test_a_request_path_cannot_change_the_host(base: str, path: str) -> None:
    if path.startswith("//"):
        # `//host` appended to a host stays on the target (it is a path there).
        assert safety.check_request(base, path, allow_remote=False).startswith(f"{base}//")
        return
    with pytest.raises(safety.RemoteTargetError):
        safety.check_request(base, path, allow_remote=False)


def test_a_redis_user_with_a_refused_url_records_failures_instead_of_dying() -> None:
    # The refusal happens before any socket exists: nothing is sent anywhere.
    from locust.env import Environment

    from loadstack.users.base import RequestFailure
    from loadstack.users.redis import RedisClient

    env = Environment()
    failures: list[BaseException] = []
    env.events.request.add_listener(lambda exception=None, **_: failures.append(exception))
    client = RedisClient(env, REFUSED["redis host"])
    for _ in range(2):
        with pytest.raises(RequestFailure, match="refusing to send load"):
            client.get("k")
    assert len(failures) == 2 and all(isinstance(f, RequestFailure) for f in failures)
    with pytest.raises(safety.RemoteTargetError):
        client.redis  # noqa: B018  (raw access raises the refusal too)


def test_a_refused_dsn_is_echoed_masked() -> None:
    with pytest.raises(safety.RemoteTargetError) as refused:
        safety.check_target(
            f"host={ELSEWHERE} user=app password='Pg-Canary 42' dbname=x", allow_remote=False, environ={}
        )
    assert "Pg-Canary" not in str(refused.value) and "password=***" in str(refused.value)


# -- real processes: a namespace with a listener that stands in for "elsewhere" -------------------------
LISTENER = textwrap.dedent(
    """
    import socket, sys, time
    host, port, out, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    server = socket.create_server((host, port))
    server.settimeout(0.2)
    count, deadline = 0, time.monotonic() + seconds
    open(out, "w").write("0")
    while time.monotonic() < deadline:
        try:
            conn, _ = server.accept()
        except OSError:
            continue
        count += 1
        open(out, "w").write(str(count))
        conn.settimeout(0.5)
        try:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok")
        except OSError:
            pass
        conn.close()
    """
)


@dataclass
class Elsewhere:
    ns: str
    counter: Path
    tmp: Path

    def connections(self) -> int:
        return int(self.counter.read_text() or 0)

    def loadstack(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180):
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "loadstack", *args],
            capture_output=True, text=True, timeout=timeout, cwd=ROOT,
            env={**os.environ, "LOADSTACK_RESULTS_DIR": str(self.tmp / "results"), **(env or {})},
        )  # fmt: skip


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Elsewhere]:
    ns = f"lsguard{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", ns)
    if made.returncode != 0:
        pytest.skip(f"the kernel refuses network namespaces here: {made.stderr.strip()}")
    listener = None
    try:
        for args in (
            ("-n", ns, "link", "set", "lo", "up"),
            # Both ends of a veth pair inside the namespace: an address that is local to it, not loopback.
            ("-n", ns, "link", "add", "ext0", "type", "veth", "peer", "name", "ext1"),
            ("-n", ns, "addr", "add", f"{ELSEWHERE}/24", "dev", "ext0"),
            ("-n", ns, "link", "set", "ext0", "up"),
            ("-n", ns, "link", "set", "ext1", "up"),
        ):
            done = _ip(*args)
            if done.returncode != 0:
                pytest.skip(f"the kernel refuses `ip {' '.join(args)}`: {done.stderr.strip()}")
        counter = tmp_path / "connections"
        listener = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                "-c",
                LISTENER,
                ELSEWHERE,
                str(PORT),
                str(counter),
                "600",
            ]
        )
        deadline = time.monotonic() + 120  # readiness, however slow the machine
        while not counter.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert counter.exists(), "the stand-in listener did not start"
        yield Elsewhere(ns, counter, tmp_path)
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(10)
        _ip("netns", "del", ns)


def _bad(elsewhere: Elsewhere, result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert needle in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert elsewhere.connections() == 0


@pytest.mark.slow
def test_every_configured_target_is_refused_before_anything_is_sent(elsewhere: Elsewhere) -> None:
    refusal = "refusing to send load"
    cases: list[tuple[list[str], dict[str, str]]] = [
        (["run", "--profile", "smoke", "--host", f"http://{AWAY}"], {}),
        (["run", "--profile", "backends"], {"LOADSTACK_POSTGRES_DSN": REFUSED["pg uri ?host="]}),
        (["run", "--profile", "backends"], {"LOADSTACK_POSTGRES_DSN": REFUSED["pg uri ?hostaddr="]}),
        (["run", "--profile", "backends"], {"LOADSTACK_POSTGRES_DSN": REFUSED["pg multi-host uri"]}),
        (["run", "--profile", "backends"], {"LOADSTACK_POSTGRES_DSN": REFUSED["pg keyword @ in user"]}),
        (["run", "--profile", "backends"], {"LOADSTACK_POSTGRES_DSN": "dbname=test", "PGHOST": ELSEWHERE}),
        (
            ["run", "--profile", "backends"],
            {"LOADSTACK_POSTGRES_DSN": "dbname=test", "PGHOSTADDR": ELSEWHERE},
        ),
        (["run", "--profile", "backends"], {"LOADSTACK_AMQP_URL": REFUSED["amqp alternate"]}),
        (["run", "--profile", "backends"], {"LOADSTACK_REDIS_URL": REFUSED["redis ?host="]}),
        (["run", "--profile", "smoke"], {"LOADSTACK_RABBITMQ_MANAGEMENT_URL": f"http://{AWAY}"}),
        (
            ["run", "--profile", "smoke", "--auth-mode", "oauth2"],
            {
                "LOADSTACK_OAUTH_TOKEN_URL": f"http://{AWAY}/token",
                "LOADSTACK_OAUTH_CLIENT_ID": "c",
                "LOADSTACK_OAUTH_CLIENT_SECRET": "s3cret-value",
            },
        ),
        (["inspect", "rabbitmq", "q"], {"LOADSTACK_RABBITMQ_MANAGEMENT_URL": f"http://{AWAY}"}),
        (["inspect", "redis", "--url", REFUSED["redis ?host="]], {}),
        (["import", "openapi", f"http://{AWAY}/openapi.json"], {}),
        (
            ["auth", "check", "--auth-mode", "local", "--host", f"http://{AWAY}"],
            {"LOADSTACK_JWT_SECRET": "x" * 32},
        ),
    ]
    for args, env in cases:
        _bad(elsewhere, elsewhere.loadstack(*args, env=env), refusal)
    # A seed or probe path that would change the host is not a path: refused by the schema.
    seeded = write_profile(
        elsewhere.tmp / "seeded.yml", seed={"customers": 1, "register": f"@{AWAY}/register"}
    )
    _bad(elsewhere, elsewhere.loadstack("run", "--profile", str(seeded)), "seed.register")
    probed = write_profile(elsewhere.tmp / "probed.yml", auth={"mode": "local", "probe": f"@{AWAY}/me"})
    _bad(elsewhere, elsewhere.loadstack("run", "--profile", str(probed)), "auth.probe")


CHAIN = """
name: escape
vars:
  absolute: "http://{away}/absolute"
  userinfo: "@{away}/userinfo"
steps:
  - name: absolute
    http: {{path: "{{{{ vars.absolute }}}}"}}
    on_failure: continue
  - name: userinfo
    http: {{path: "{{{{ vars.userinfo }}}}"}}
    on_failure: continue
  - name: echo
    http: {{method: POST, path: /api/v1/forms/echo, form: {{next: "http://{away}/captured"}}}}
    save: {{next: $.fields.next}}
  - name: captured
    http: {{path: "{{{{ vars.next }}}}"}}
    on_failure: continue
  - name: redirected
    http: {{path: "/api/v1/redirect?to=http://{away}/redirected"}}
    on_failure: continue
"""


@pytest.mark.slow
def test_paths_captures_and_redirects_cannot_send_load_elsewhere(elsewhere: Elsewhere) -> None:
    chain = elsewhere.tmp / "escape.yml"
    chain.write_text(CHAIN.format(away=AWAY))
    profile = one_chain_profile(elsewhere.tmp / "escape-profile.yml", chain)
    guarded = elsewhere.loadstack("run", "--profile", str(profile), "--run-id", "escape", "--workers", "1")
    assert guarded.returncode == 1, guarded.stdout[-3000:] + guarded.stderr[-2000:]
    assert elsewhere.connections() == 0, "a request left the target"
    doc = json.loads((elsewhere.tmp / "results" / "escape" / "summary.json").read_text())
    refused = {e["name"] for e in doc["errors"] if "refusing to send load" in e["error"]}
    assert {"escape/absolute", "escape/userinfo", "escape/captured", "escape/redirected"} <= refused, doc[
        "errors"
    ]

    # The control: with the opt-in the same chain does reach the listener, so the zero above means something.
    allowed = elsewhere.loadstack(
        "run", "--profile", str(profile), "--run-id", "escape-allowed", "--workers", "1", "--allow-remote"
    )
    assert allowed.returncode in (0, 1), allowed.stdout[-3000:] + allowed.stderr[-2000:]
    assert elsewhere.connections() > 0
