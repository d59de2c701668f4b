"""Locust's live web UI in a ``loadstack ui`` session: every body it serves passes the masker.

The session's users make requests whose names, failure messages and exceptions carry secrets
(``tests/locustfiles/leaky_names.py``), and its target URL carries a password.  Before
``loadstack.webui`` the UI served them as they were: ``/stats/requests`` (what the page polls),
the CSV downloads, ``/exceptions``, and the index page's ``templateArgs`` (the host).  Here
every endpoint is fetched over HTTP and each body must hold no canary and still parse with its
own parser (a masker that rewrote bytes could break JSON or CSV), and the page is opened in
Chromium: the masked names are shown, the canary is not, and the console has no error.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import locust
import pytest

from loadstack.processes import free_port
from tests.browser import browser
from tests.helpers import loadstack, write_profile
from tests.masked_run import LEAKY_NAMES, new_canary

pytestmark = pytest.mark.slow

# Request names of leaky_names.py as the masker leaves them: what a person must still see.
MASKED_NAMES = [
    "/ok?refresh_token=***&page=1",
    "/ok?key=***&sig=***",
    "redis://127.0.0.1:6379/0?password=***",
    "/fail",
]
# Generous: a busy machine slows the session down, it must not fail the test.
READY_S = 180
CSV_ENDPOINTS = [
    "/stats/requests/csv",
    "/stats/failures/csv",
    "/exceptions/csv",
    "/stats/requests_full_history/csv",
]
JSON_ENDPOINTS = ["/stats/requests", "/exceptions", "/tasks", "/logs", "/worker-count"]


@dataclass
class Session:
    url: str
    canary: str
    host: str  # the target URL, password included, as the session was given it
    swarm: str  # what /swarm answered the Start button


def get(url: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET (an error status's too: its body is served as well)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode("utf-8")


def _seen_everything(url: str) -> tuple[bool, str]:
    """Whether every request name, a failure and an exception have reached the master's stats,
    and what was seen (for the message of a session that never got there)."""
    seen = get(f"{url}/stats/requests")[2]
    stats = json.loads(seen)
    exceptions = json.loads(get(f"{url}/exceptions")[2])["exceptions"]
    done = len(stats["stats"]) > 10 and stats["stats"][-1]["num_failures"] > 0 and bool(exceptions)
    return done, seen[:3000]


@contextlib.contextmanager
def guarded_target(user: str, password: str) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers 200 to the Basic credentials of its URL, 401 to
    anything else: requests that succeed prove the session used the real password."""
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.headers.get("Authorization") == expected
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok" if ok else b"no")

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{user}:{password}@127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """A native ``loadstack ui`` session whose swarm has made every leaky request at least once."""
    tmp = tmp_path_factory.mktemp("webui")
    canary = new_canary()
    port = free_port()
    env = {"MASKER_TEST_CANARY": canary, "LOADSTACK_STATE_DIR": str(tmp / "state")}
    profile = write_profile(
        tmp / "webui.yml",
        locustfile=str(LEAKY_NAMES),
        user_classes={"LeakyUser": 1},
        users=2,
        run_time="10m",  # the test, not the clock, ends the session
    )
    with guarded_target("loadstack", f"{canary}hp") as host:
        started = loadstack(
            "ui", "--profile", str(profile), "--host", host, "--workers", "1", "--run-id", "webui",
            "--results-dir", str(tmp / "results"), "--web-port", str(port), "--no-metrics",
            env=env, timeout=300,
        )  # fmt: skip
        try:
            assert started.returncode == 0, started.stdout + started.stderr
            url = f"http://127.0.0.1:{port}"
            # Locust ignores a swarm started before a worker has connected (and still answers
            # "success"): wait for the worker, as a person waits for the page to say "Workers 1".
            deadline = time.monotonic() + READY_S
            while json.loads(get(f"{url}/worker-count")[2])["worker_count"] < 1:
                assert time.monotonic() < deadline, "the session's worker never connected"
                time.sleep(0.5)
            # Start the swarm as the page's form does: with the host the page showed (masked).
            shown = _template_args(get(f"{url}/")[2])["host"]
            body = urllib.parse.urlencode({"user_count": 2, "spawn_rate": 2, "host": shown}).encode()
            with urllib.request.urlopen(urllib.request.Request(f"{url}/swarm", data=body), timeout=60) as r:
                swarm = r.read().decode()
            assert json.loads(swarm)["success"], swarm
            deadline = time.monotonic() + READY_S
            while not (seen := _seen_everything(url))[0]:
                assert time.monotonic() < deadline, f"the swarm never made every request: {seen[1]}"
                time.sleep(0.5)
            # The full-history CSV gains a row per name each second: wait for one with the names
            # (if the session serves it at all: the test says so when it does not).
            while (history := get(f"{url}/stats/requests_full_history/csv"))[0] == 200 and (
                "refresh_token=" not in history[2]
            ):
                assert time.monotonic() < deadline, "no full-history row names the requests"
                time.sleep(0.5)
            yield Session(url, canary, host, swarm)
        finally:
            stopped = loadstack("stop", env=env, timeout=180)
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def _template_args(page: str) -> dict[str, Any]:
    """The index page's data: ``window.templateArgs = {…}`` (Jinja's ``tojson``)."""
    found = re.search(r"window\.templateArgs\s*=\s*", page)
    assert found, page[:2000]
    data, _ = json.JSONDecoder().raw_decode(page, found.end())
    return data


def test_every_endpoint_body_is_masked_and_parses(session: Session) -> None:
    """No canary in any body the UI serves, and each body parses with its real parser."""
    url, canary = session.url, session.canary
    served = {path: get(url + path) for path in [*JSON_ENDPOINTS, *CSV_ENDPOINTS, "/"]}
    served["/swarm"] = (200, "application/json", session.swarm)
    for path, (_, _, body) in served.items():
        assert canary not in body, f"{path} serves a secret: {body[body.find(canary) - 200 :][:400]}"

    bodies = {path: body for path, (_, _, body) in served.items()}
    for path in [*JSON_ENDPOINTS, "/swarm"]:
        status, kind, body = served[path]
        assert status == 200 and kind.startswith("application/json"), (path, status, kind, body[:300])
        json.loads(body)
    for path in CSV_ENDPOINTS:
        status, kind, body = served[path]
        assert status == 200 and kind.startswith("text/csv"), (path, status, kind, body[:300])
        rows = list(csv.reader(io.StringIO(body, newline="")))
        assert len(rows) >= 2 and all(len(r) == len(rows[0]) for r in rows), (path, body[:2000])
    status, kind, page = served["/"]
    assert status == 200 and kind.startswith("text/html")
    args = _template_args(page)
    assert args["host"] == session.host.replace(f"{canary}hp", "***"), args["host"]

    # The data is there, masked, not dropped: what the page polls names every request.
    stats = json.loads(bodies["/stats/requests"])
    names = {row["name"] for row in stats["stats"]}
    assert set(MASKED_NAMES) <= names, names
    failures = json.loads(bodies["/stats/requests"])["errors"]
    assert any("apikey=***" in f["error"] for f in failures), failures
    exceptions = json.loads(bodies["/exceptions"])["exceptions"]
    assert any("session=***" in e["msg"] for e in exceptions), exceptions
    assert "/ok?refresh_token=***&page=1" in bodies["/stats/requests/csv"]
    assert "/ok?refresh_token=***&page=1" in bodies["/stats/requests_full_history/csv"]

    # A byte range of the file behind the full-history download would cut a masked CSV anywhere:
    # the whole masked document is served instead.
    ranged = urllib.request.Request(f"{url}/stats/requests_full_history/csv", headers={"Range": "bytes=0-40"})
    with urllib.request.urlopen(ranged, timeout=60) as resp:
        assert resp.status == 200, resp.status
        rows = list(csv.reader(io.StringIO(resp.read().decode("utf-8"), newline="")))
    assert len(rows) >= 2 and all(len(r) == len(rows[0]) for r in rows), rows[:3]
    assert not any(canary in cell for row in rows for cell in row)

    # The Start button sent the masked host back: the session still targets the real one, with
    # its real password (the target answers 401 to any other), so every request but /fail passed.
    requests = {row["name"]: row for row in stats["stats"]}
    assert all(r["num_failures"] == 0 for n, r in requests.items() if n not in ("/fail", "Aggregated")), (
        requests
    )

    # The UI's own code is served as it is.
    js = re.search(r'src="\.?/(assets/[^"]+\.js)"', page)
    assert js, page[:2000]
    with urllib.request.urlopen(f"{url}/{js[1]}", timeout=60) as resp:
        bundle = resp.read()
    assert bundle == (Path(locust.__file__).parent / "webui" / "dist" / js[1]).read_bytes()


def test_web_ui_in_chromium_shows_masked_names_and_no_secret(session: Session) -> None:
    """The page a person sees: every masked request name on the Statistics tab, the failure and
    the exception on theirs, no canary in the page's text or markup, no console error."""
    canary = session.canary
    with browser() as b:
        page = b.open_page()
        p = page.page
        page.goto(f"{session.url}/")
        p.get_by_role("cell", name="/fail", exact=True).first.wait_for()  # the table is drawn
        assert canary not in p.inner_text("body")
        for name in MASKED_NAMES:
            p.get_by_role("cell", name=name, exact=True).first.wait_for()
        texts = [p.inner_text("body")]
        page.screenshot("locust-ui-masked")
        p.get_by_role("tab", name="Failures").click()
        p.get_by_text("apikey=***", exact=False).first.wait_for()
        texts.append(p.inner_text("body"))
        p.get_by_role("tab", name="Exceptions").click()
        p.get_by_text("session=***", exact=False).first.wait_for()
        texts.append(p.inner_text("body"))
        page.screenshot("locust-ui-masked-exceptions")
        texts.append(p.content())
        host = p.locator("input[name=host]")
        if host.count():  # the form (shown only before the first swarm) shows the masked host
            texts.append(host.first.input_value())
        page.assert_clean()
    for text in texts:
        assert canary not in text, text[text.find(canary) - 200 :][:400]
