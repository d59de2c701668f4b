"""loadstack's HttpUser on its fast path: the token rides Locust's ``auth_header`` slot, the host
guard remembers the host that passed.  What must still hold: the token goes to the target's
origin only, a request's own Authorization wins, and a non-local hop is refused every time.

The user runs in a subprocess (importing Locust gevent-patches the process); the servers that
record what arrived run here, on two loopback addresses.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from loadstack.processes import free_port

SCRIPT = r"""
import json, sys
import gevent
from locust.env import Environment
from loadstack import runcontext
from loadstack.auth.config import AuthSpec
from loadstack.profiles import RunSettings
from loadstack.users.http import HttpUser

runcontext.adopt("credentials-test", RunSettings(auth=AuthSpec(mode="local")))

base, other = sys.argv[1], sys.argv[2]

class U(HttpUser):
    host = base
    def run_once(self):
        out = {}
        self.client.get("/plain")
        self.client.get("/own", headers={"authorization": "Bearer mine"})
        self.client.get(other + "/elsewhere")
        r = self.client.get("@remote.example.com/x")
        out["refused_error"] = type(r.error).__name__ if r.error else None
        self.client.get("@remote.example.com/x")  # a second time: still refused, never sent
        self.client.get("/again")
        return out

env = Environment(user_classes=[U], host=base)
env.create_local_runner()
failures = []
env.events.request.add_listener(lambda exception=None, name=None, **_: exception and failures.append(name))
out = U(env).run_once()
out["failures"] = failures
print(json.dumps(out))
"""


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append(
            (f"{self.server.server_address[0]}{self.path}", self.headers.get("Authorization"))
        )
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[str, str]]:
    Recorder.seen = []
    started = []
    for address in ("127.0.0.1", "127.0.0.2"):
        server = http.server.ThreadingHTTPServer((address, free_port(address)), Recorder)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    yield tuple(f"http://{s.server_address[0]}:{s.server_address[1]}" for s in started)  # type: ignore[misc]
    for server in started:
        server.shutdown()
        server.server_close()


def test_token_only_to_the_target_and_non_local_hops_refused(servers: tuple[str, str]) -> None:
    base, other = servers
    env = {**os.environ, "LOADSTACK_JWT_SECRET": "s" * 40}
    env.pop("LOADSTACK_RUN_SETTINGS", None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, base, other], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    seen = dict(Recorder.seen)
    assert seen["127.0.0.1/plain"] and seen["127.0.0.1/plain"].startswith("Bearer ey")
    assert seen["127.0.0.1/own"] == "Bearer mine"  # the request's own header wins
    assert seen["127.0.0.2/elsewhere"] is None  # another origin: no token
    assert seen["127.0.0.1/again"] == seen["127.0.0.1/plain"]  # and back on the target: the token again
    assert out["refused_error"] == "TargetRefused"
    assert out["failures"].count("@remote.example.com/x") == 2  # refused both times
    assert not any("remote" in path for path, _ in Recorder.seen)
