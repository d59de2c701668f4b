"""One egress point: every address loadstack dials passes the guard, hop by hop (issue 27, findings 1-5).

Each test runs loadstack for real inside a network namespace of its own (the ``elsewhere``
fixture of test_target_guard.py), where a listener on a non-loopback address stands in for
"elsewhere" and counts connections. Helpers inside the same namespace play the target's part:
a server that answers every request with a redirect (and logs what it was sent), a hosts file
that sends a compose service name elsewhere, a proxy from the environment. Each case must leave
the listener at zero connections; a control with the opt-in shows the listener does count.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import LOCUSTFILES, ROOT, one_chain_profile, write_profile
from tests.test_target_guard import AWAY, ELSEWHERE, PORT, Elsewhere, elsewhere  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

REFUSAL = "refusing to send load"

# Answers everything with a redirect to argv[2]; logs "<method> <path> <Authorization>" per request.
REDIRECTOR = textwrap.dedent(
    """
    import http.server, sys
    port, location, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]

    class Redirect(http.server.BaseHTTPRequestHandler):
        def answer(self):
            with open(log, "a") as out:
                out.write(f"{self.command} {self.path} {self.headers.get('Authorization')}\\n")
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_HEAD = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Redirect)
    open(log, "a").close()
    server.serve_forever()
    """
)


class Helpers:
    """Processes started inside the namespace (or bridging into it), stopped at the end of the test."""

    def __init__(self, box: Elsewhere) -> None:
        self.box = box
        self.procs: list[subprocess.Popen] = []

    def _wait_for(self, path: Path) -> None:
        deadline = time.monotonic() + 20
        while not path.exists():
            assert time.monotonic() < deadline, f"{path.name} did not appear"
            time.sleep(0.05)

    def redirector(self, port: int, location: str) -> Path:
        """A server on 127.0.0.1:``port`` inside the namespace that redirects to ``location``; its log."""
        log = self.box.tmp / f"redirector-{port}.log"
        self.procs.append(
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.box.ns,
                    sys.executable,
                    "-c",
                    REDIRECTOR,
                    str(port),
                    location,
                    str(log),
                ]
            )
        )
        self._wait_for(log)
        return log

    def amqp_bridge(self) -> None:
        """The machine's RabbitMQ on 127.0.0.1:5672 inside the namespace (a Unix socket crosses it)."""
        sock = self.box.tmp / "amqp.sock"
        self.procs.append(
            subprocess.Popen(
                ["socat", f"UNIX-LISTEN:{sock},fork", "TCP:127.0.0.1:5672"], stderr=subprocess.DEVNULL
            )
        )
        self._wait_for(sock)
        self.procs.append(
            subprocess.Popen(
                ["ip", "netns", "exec", self.box.ns, "socat",
                 "TCP-LISTEN:5672,bind=127.0.0.1,fork,reuseaddr", f"UNIX-CONNECT:{sock}"],
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        probe = "import socket,sys; socket.create_connection(('127.0.0.1', 5672), timeout=1).close()"
        deadline = time.monotonic() + 20
        while subprocess.run(["ip", "netns", "exec", self.box.ns, sys.executable, "-c", probe]).returncode:
            assert time.monotonic() < deadline, "the AMQP bridge did not come up"
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def helpers(elsewhere: Elsewhere) -> Iterator[Helpers]:  # noqa: F811
    made = Helpers(elsewhere)
    try:
        yield made
    finally:
        made.stop()


def _errors(box: Elsewhere, run_id: str) -> list[dict]:
    return json.loads((box.tmp / "results" / run_id / "summary.json").read_text())["errors"]


def _tail(result: subprocess.CompletedProcess) -> str:
    return result.stdout[-3000:] + result.stderr[-3000:]


# -- finding 1: await probes -------------------------------------------------------------------------
AWAIT_CHAIN = """
name: probes
vars:
  absolute: "http://{away}/absolute"
  userinfo: "@{away}/userinfo"
steps:
  - name: absolute
    await: {{http: {{path: "{{{{ vars.absolute }}}}"}}, timeout: 0.5, interval: 0.1}}
    on_failure: continue
  - name: userinfo
    await: {{http: {{path: "{{{{ vars.userinfo }}}}"}}, timeout: 0.5, interval: 0.1}}
    on_failure: continue
  - name: echo
    http: {{method: POST, path: /api/v1/forms/echo, form: {{next: "http://{away}/captured"}}}}
    save: {{next: $.fields.next}}
  - name: captured
    await: {{http: {{path: "{{{{ vars.next }}}}"}}, timeout: 0.5, interval: 0.1}}
    on_failure: continue
  - name: redirected
    await: {{http: {{path: "/api/v1/redirect?to=http://{away}/redirected"}}, timeout: 0.5, interval: 0.1}}
    on_failure: continue
"""


def test_await_probes_pass_the_guard_like_http_steps(elsewhere: Elsewhere) -> None:  # noqa: F811
    chain = elsewhere.tmp / "probes.yml"
    chain.write_text(AWAIT_CHAIN.format(away=AWAY))
    profile = one_chain_profile(elsewhere.tmp / "probes-profile.yml", chain)
    guarded = elsewhere.loadstack("run", "--profile", str(profile), "--run-id", "probes", "--workers", "1")
    assert elsewhere.connections() == 0, "an await probe left the target"
    assert guarded.returncode == 1, _tail(guarded)
    refused = {e["name"] for e in _errors(elsewhere, "probes") if REFUSAL in e["error"]}
    assert {"probes/absolute", "probes/userinfo", "probes/captured", "probes/redirected"} <= refused, _errors(
        elsewhere, "probes"
    )

    allowed = elsewhere.loadstack(
        "run", "--profile", str(profile), "--run-id", "probes-allowed", "--workers", "1", "--allow-remote"
    )
    assert allowed.returncode in (0, 1), _tail(allowed)
    assert elsewhere.connections() > 0


# -- finding 2: WebSocket redirects ----------------------------------------------------------------------
def _ws_profile(box: Elsewhere) -> Path:
    return write_profile(
        box.tmp / "ws-profile.yml",
        locustfile=str(LOCUSTFILES / "websocket_users.py"),
        users=1,
        run_time="4s",
    )


def test_websocket_redirects_are_guarded_hop_by_hop(elsewhere: Elsewhere, helpers: Helpers) -> None:  # noqa: F811
    helpers.redirector(8124, f"ws://{AWAY}/ws")
    env = {"LOADSTACK_JWT_SECRET": "w" * 32}
    run = (
        "run",
        "--profile",
        str(_ws_profile(elsewhere)),
        "--host",
        "http://127.0.0.1:8124",
        "--workers",
        "1",
    )
    guarded = elsewhere.loadstack(*run, "--run-id", "ws-redirect", "--auth-mode", "local", env=env)
    assert elsewhere.connections() == 0, "a WebSocket handshake followed a redirect elsewhere"
    assert guarded.returncode == 1, _tail(guarded)
    assert any(REFUSAL in e["error"] for e in _errors(elsewhere, "ws-redirect")), _errors(
        elsewhere, "ws-redirect"
    )

    allowed = elsewhere.loadstack(*run, "--run-id", "ws-redirect-allowed", "--allow-remote")
    assert allowed.returncode in (0, 1), _tail(allowed)
    assert elsewhere.connections() > 0


def test_websocket_credentials_stay_with_the_first_origin(elsewhere: Elsewhere, helpers: Helpers) -> None:  # noqa: F811
    # Another local origin (a different port) stands for "another origin": the hop is allowed,
    # the run's bearer token is not sent to it.
    first = helpers.redirector(8124, "ws://127.0.0.1:8125/ws")
    second = helpers.redirector(8125, "ws://127.0.0.1:8125/again")
    result = elsewhere.loadstack(
        "run", "--profile", str(_ws_profile(elsewhere)), "--host", "http://127.0.0.1:8124", "--workers", "1",
        "--run-id", "ws-origin", "--auth-mode", "local", env={"LOADSTACK_JWT_SECRET": "w" * 32},
    )  # fmt: skip
    assert result.returncode == 1, _tail(result)
    sent_first = first.read_text().splitlines()
    sent_second = second.read_text().splitlines()
    assert sent_first and not any(line.endswith(" None") for line in sent_first), sent_first
    assert sent_second and all(line.endswith(" None") for line in sent_second), sent_second


# -- finding 3: proxies from the environment ----------------------------------------------------------------
PROXIES = {
    "http_proxy": f"http://{AWAY}",
    "https_proxy": f"http://{AWAY}",
    "all_proxy": f"http://{AWAY}",
    "HTTP_PROXY": f"http://{AWAY}",
    "HTTPS_PROXY": f"http://{AWAY}",
}


def test_environment_proxies_are_never_used(elsewhere: Elsewhere) -> None:  # noqa: F811
    # The OAuth token request (client secret in its Basic header), the OpenAPI fetch: nothing on port 9.
    oauth = {
        **PROXIES,
        "LOADSTACK_OAUTH_TOKEN_URL": "http://127.0.0.1:9/token",
        "LOADSTACK_OAUTH_CLIENT_ID": "c",
        "LOADSTACK_OAUTH_CLIENT_SECRET": "proxy-canary-secret",
    }
    token = elsewhere.loadstack(
        "auth", "check", "--auth-mode", "oauth2", "--host", "http://127.0.0.1:9", env=oauth
    )
    assert token.returncode != 0 and "proxy-canary-secret" not in _tail(token)
    assert "not using" in token.stderr and "http_proxy" in token.stderr, token.stderr
    fetched = elsewhere.loadstack("import", "openapi", "http://127.0.0.1:9/openapi.json", env=PROXIES)
    assert fetched.returncode == 2, _tail(fetched)
    assert elsewhere.connections() == 0, "a request went to the environment's proxy"

    # A whole run (HTTP, seed, WebSocket users of the smoke profile) with proxies in the environment.
    run = elsewhere.loadstack(
        "run", "--profile", str(_smoke_without_gates(elsewhere.tmp)), "--run-id", "proxied", "--run-time", "4s",
        env=PROXIES,
    )  # fmt: skip
    assert run.returncode == 0, _tail(run)
    assert elsewhere.connections() == 0, "a run's connection went to the environment's proxy"


def _smoke_without_gates(tmp: Path) -> Path:
    """The smoke profile's users without its SLO file: which requests a run of a few seconds sends is
    chance, and a gate that matched none would make the exit status about that, not about egress."""
    profile = yaml.safe_load((ROOT / "profiles" / "smoke.yml").read_text())
    del profile["slo"]
    profile["locustfile"] = str((ROOT / "profiles" / profile["locustfile"]).resolve())
    path = tmp / "smoke-without-gates.yml"
    path.write_text(yaml.safe_dump(profile))
    return path


def test_a_named_proxy_is_guarded_itself(elsewhere: Elsewhere) -> None:  # noqa: F811
    named = ("--allow-proxy", f"http://{AWAY}", "import", "openapi", "http://127.0.0.1:9/openapi.json")
    refused = elsewhere.loadstack(*named)
    assert refused.returncode == 2 and REFUSAL in refused.stderr and "proxy" in refused.stderr, _tail(refused)
    assert elsewhere.connections() == 0
    bad = elsewhere.loadstack("--allow-proxy", "socks5://127.0.0.1:1080", "profile", "show", "smoke")
    assert bad.returncode == 2 and "--allow-proxy" in bad.stderr, _tail(bad)
    # The control: with --allow-remote the named proxy is really used.
    elsewhere.loadstack(*named, "--allow-remote")
    assert elsewhere.connections() > 0


# -- finding 4: compose service names ----------------------------------------------------------------------
@contextlib.contextmanager
def _hosts(box: Elsewhere, text: str) -> Iterator[None]:
    """The namespace's /etc/hosts (``ip netns exec`` mounts /etc/netns/NS/hosts over it)."""
    folder = Path("/etc/netns") / box.ns
    folder.mkdir(parents=True)
    try:
        (folder / "hosts").write_text(text)
        yield
    finally:
        (folder / "hosts").unlink()
        folder.rmdir()
        with contextlib.suppress(OSError):  # another test's namespace may still have its folder
            folder.parent.rmdir()


@pytest.fixture
def hosts_file(elsewhere: Elsewhere) -> Iterator[None]:  # noqa: F811
    """Inside the namespace, compose service names resolve elsewhere."""
    with _hosts(elsewhere, f"127.0.0.1 localhost\n{ELSEWHERE} target redis rabbitmq postgres\n"):
        yield


def test_a_compose_service_name_resolved_elsewhere_is_refused(elsewhere: Elsewhere, hosts_file: None) -> None:  # noqa: F811
    cases = [
        (["run", "--profile", "smoke", "--host", f"http://target:{PORT}"], {}),
        (["run", "--profile", "backends"], {"LOADSTACK_REDIS_URL": f"redis://redis:{PORT}/0"}),
        (["run", "--profile", "backends"], {"LOADSTACK_AMQP_URL": f"amqp://guest:guest@rabbitmq:{PORT}//"}),
        (["run", "--profile", "backends"], {"LOADSTACK_POSTGRES_DSN": f"postgresql://u@postgres:{PORT}/db"}),
        (["import", "openapi", f"http://target:{PORT}/openapi.json"], {}),
    ]
    for args, env in cases:
        result = elsewhere.loadstack(*args, env=env)
        assert result.returncode == 2, _tail(result)
        assert REFUSAL in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert elsewhere.connections() == 0, args

    # In loadstack's compose network (LOADSTACK_STACK_SUBNET, as docker-compose.yml sets it) the name is local.
    inside = elsewhere.loadstack(
        "import",
        "openapi",
        f"http://target:{PORT}/openapi.json",
        env={"LOADSTACK_STACK_SUBNET": f"{ELSEWHERE}/32"},
    )
    assert REFUSAL not in inside.stderr, _tail(inside)
    assert elsewhere.connections() > 0


def test_localhost_is_local_only_where_it_resolves(elsewhere: Elsewhere) -> None:  # noqa: F811
    with _hosts(elsewhere, f"{ELSEWHERE} localhost\n"):
        for args in (
            ["run", "--profile", "smoke", "--host", f"http://localhost:{PORT}"],
            ["import", "openapi", f"http://localhost:{PORT}/openapi.json"],
        ):
            result = elsewhere.loadstack(*args)
            assert result.returncode == 2, _tail(result)
            assert REFUSAL in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert elsewhere.connections() == 0


# -- finding 5: teardown's management API, the demo consumer ------------------------------------------------
def test_teardown_management_api_does_not_follow_a_redirect_elsewhere(
    elsewhere: Elsewhere,  # noqa: F811
    helpers: Helpers,
) -> None:
    helpers.amqp_bridge()  # the real broker, so teardown gets as far as listing the run's queues
    helpers.redirector(8126, f"http://{AWAY}/api/queues")
    env = {"LOADSTACK_RABBITMQ_MANAGEMENT_URL": "http://127.0.0.1:8126"}
    smoke = str(_smoke_without_gates(elsewhere.tmp))
    result = elsewhere.loadstack("run", "--profile", smoke, "--run-id", "mgmt", "--run-time", "3s", env=env)
    assert result.returncode == 0, _tail(result)
    assert (elsewhere.tmp / "redirector-8126.log").read_text(), "teardown never asked the management API"
    assert elsewhere.connections() == 0, "teardown followed the management API's redirect elsewhere"


def test_demo_consumer_refuses_what_demo_serve_refuses(elsewhere: Elsewhere) -> None:  # noqa: F811
    for env in (
        {"LOADSTACK_AMQP_URL": f"amqp://guest:guest@{AWAY}//"},
        {"LOADSTACK_REDIS_URL": f"redis://{AWAY}/0"},
    ):
        result = elsewhere.loadstack("demo", "consumer", env=env, timeout=60)
        assert result.returncode == 2, _tail(result)
        assert REFUSAL in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert elsewhere.connections() == 0
