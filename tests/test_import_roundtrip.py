"""Round trips on real recordings: Chromium records a session against the demo platform, loadstack
imports it and replays it in a real run, and the server must receive what it received while
recording: the same form field names, file names and content types.

Three recordings (Playwright driving Debian's Chromium, see tests/har_recording.py):
- a JSON API flow (sign-up, sign-in, order, payment) from the demo's console page;
- a server-rendered sign-in form with a hidden CSRF token, a cookie and a 303 redirect;
- a multipart upload of a PDF with a text field.

The recordings' own responses are the evidence: the upload echo lists what the server got, the
account page lists the login's field names, the order echoes its fields. The test turns that
evidence into ``expect:`` clauses of the imported chains, so a replay that sent anything else
fails its step. The same recordings are also replayed as generated locustfiles.

The OpenAPI round trip does the same with the demo's ``/openapi.json``: its multipart attachment
and urlencoded note operations must reach the server with the documented fields and file types.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadstack.processes import free_port
from loadstack_demo.process import demo_platform
from tests.har_recording import record, record_form_login, record_upload
from tests.helpers import LOCUSTFILES, loadstack, rows_by_name, summary, write_profile

pytestmark = pytest.mark.slow

ACCOUNT = ("ada.roundtrip@example.test", "correct horse 42")
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n\x00\x01\xfe\xff\ntrailer\n%%EOF\n"
UPLOAD = {"title": "Quarterly report", "filename": "report Q1 (final).pdf", "content_type": "application/pdf"}
OAUTH = {"LOADSTACK_DEMO_OAUTH_CLIENT_SECRET": "cs-roundtrip-8c1e", "LOADSTACK_DEMO_OAUTH_CLIENT_ID": "rt"}


def _post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def _entries(har: Path) -> list[dict[str, Any]]:
    return json.loads(har.read_text())["log"]["entries"]


def _response_text(har: Path, method: str, path: str) -> str:
    for entry in _entries(har):
        request = entry["request"]
        if request["method"] == method and request["url"].split("?")[0].endswith(path):
            return entry["response"]["content"]["text"]
    raise AssertionError(f"{method} {path} is not in {har.name}")


def _chain(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _expect(chain_path: Path, step: str, **expect: Any) -> None:
    """Add expectations to an imported chain's step (keeping its header comment)."""
    text = chain_path.read_text()
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    chain = yaml.safe_load(text)
    target = next(s for s in chain["steps"] if s["name"] == step)
    target.setdefault("expect", {}).update(expect)
    chain_path.write_text(header + yaml.safe_dump(chain, sort_keys=False, allow_unicode=True))


def _import(source: str | Path, output: Path, *args: str) -> str:
    result = loadstack("import", *( ("har",) if not str(source).startswith("http") else ("openapi",)),
                       str(source), "-o", str(output), *args)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def _run(tmp_path: Path, run_id: str, url: str, env: dict[str, str], *args: str, **profile: Any) -> dict:
    settings = {"users": 3, "spawn_rate": 3, "run_time": "8s", "workers": 1, **profile}
    path = write_profile(tmp_path / f"{run_id}.yml", **settings)
    result = loadstack(
        "run", "--profile", str(path), "--host", url, "--run-id", run_id, "--results-dir", str(tmp_path), *args,
        env={**env, "LOADSTACK_METRICS_PORT": str(free_port())},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return summary(tmp_path, run_id)


def test_recorded_sessions_replay_with_zero_failures_and_send_what_was_recorded(tmp_path: Path) -> None:
    with demo_platform({}) as url:
        _post_json(f"{url}/api/v1/auth/register", {"email": ACCOUNT[0], "password": ACCOUNT[1]})
        hars = {
            "json_flow": record(url, tmp_path / "json_flow.har", think_ms=100),
            "form_login": record_form_login(url, tmp_path / "form_login.har", *ACCOUNT),
            "upload": record_upload(url, tmp_path / "upload.har", data=PDF, **UPLOAD),
        }
        chains = {name: tmp_path / f"{name}.yml" for name in hars}
        notes = {name: _import(har, chains[name], "--name", name) for name, har in hars.items()}

        # What was imported: correlated, secrets referenced, bodies faithful.
        flow = {s["name"]: s for s in _chain(chains["json_flow"])["steps"]}
        assert flow["post_orders"]["http"]["headers"] == {"Authorization": "Bearer {{ vars.access_token }}"}
        login = {s["name"]: s for s in _chain(chains["form_login"])["steps"]}
        assert login["get_forms_login"]["save"] == {"csrf_token": "last | html_input('csrf_token')"}
        assert login["post_forms_login"]["http"]["form"] == {
            "csrf_token": "{{ vars.csrf_token }}", "username": "{{ env.HAR_USERNAME }}",
            "password": "{{ env.HAR_PASSWORD }}",
        }  # fmt: skip
        assert (
            ACCOUNT[1] not in chains["form_login"].read_text()
            and ACCOUNT[0] not in chains["form_login"].read_text()
        )
        upload = next(s for s in _chain(chains["upload"])["steps"] if s["name"] == "post_uploads")["http"]
        assert upload["multipart"]["fields"] == {"title": UPLOAD["title"]}
        (part,) = upload["multipart"]["files"]
        assert (part["field"], part["filename"], part["content_type"]) == (
            "attachment", UPLOAD["filename"], UPLOAD["content_type"],
        )  # fmt: skip
        assert "put the real file in its place" in notes["upload"], "Chromium recorded the PDF's bytes lossy"

        # The recording's evidence of what the server received becomes the replay's expectations.
        echoed = json.loads(_response_text(hars["upload"], "POST", "/api/v1/uploads"))
        (tmp_path / part["path"]).write_bytes(PDF)  # what the import note asks for: the real file
        _expect(chains["upload"], "post_uploads", json={
            "$.content_type": echoed["content_type"], "$.fields": echoed["fields"],
            "$.files[0].field": echoed["files"][0]["field"], "$.files[0].filename": echoed["files"][0]["filename"],
            "$.files[0].content_type": echoed["files"][0]["content_type"],
            "$.files[0].sha256": echoed["files"][0]["sha256"],
        })  # fmt: skip
        assert echoed["files"][0]["filename"] == UPLOAD["filename"] and echoed["fields"] == {
            "title": UPLOAD["title"]
        }
        account = _response_text(hars["form_login"], "GET", "/forms/account")
        fields = re.search(r'<p id="fields">([^<]*)</p>', account)[1]
        assert fields == "login fields: csrf_token, password, username"
        _expect(chains["form_login"], "post_forms_login", contains=fields)
        order = json.loads(_response_text(hars["json_flow"], "POST", "/api/v1/orders"))
        _expect(
            chains["json_flow"],
            "post_orders",
            json={f"$.{k}": order[k] for k in ("sku", "quantity", "amount")},
        )
        for chain in chains.values():
            validated = loadstack("chain", "validate", str(chain))
            assert validated.returncode == 0, validated.stderr

        env = {"HAR_USERNAME": ACCOUNT[0], "HAR_PASSWORD": ACCOUNT[1]}
        doc = _run(
            tmp_path, "rt-chains", url, env, locustfile=str(LOCUSTFILES / "chain_users.py"),
            chains=[{"path": str(chain)} for chain in chains.values()], run_time="10s",
        )  # fmt: skip
        rows = rows_by_name(doc)
        for name in chains:
            row = rows[("CHAIN", name)]
            assert row["count"] > 0 and row["failures"] == 0, (name, row, doc["errors"])
        assert doc["totals"]["failures"] == 0, doc["errors"]

        # The same recordings as generated locustfiles, all three user classes in one run.
        for name, har in hars.items():
            _import(har, tmp_path / f"{name}_users.py", "--name", name, "--format", "locustfile", "--force")
        (tmp_path / "files" / "upload" / "01-report_Q1_final_.pdf").write_bytes(PDF)
        combined = tmp_path / "recorded_users.py"
        combined.write_text("".join(f"from {name}_users import *  # noqa: F403\n" for name in hars))
        doc = _run(tmp_path, "rt-locustfiles", url, env, locustfile=str(combined))
        assert doc["totals"]["count"] > 0 and doc["totals"]["failures"] == 0, doc["errors"]
        names = {name for _, name in rows_by_name(doc)}
        assert {"/forms/login", "/api/v1/uploads", "/api/v1/orders/[id]"} <= names, names


def test_openapi_form_bodies_reach_the_demo_as_documented(tmp_path: Path) -> None:
    with demo_platform(OAUTH) as url:
        auth = {
            "LOADSTACK_OAUTH_TOKEN_URL": f"{url}/oauth/token",
            "LOADSTACK_OAUTH_CLIENT_ID": OAUTH["LOADSTACK_DEMO_OAUTH_CLIENT_ID"],
            "LOADSTACK_OAUTH_CLIENT_SECRET": OAUTH["LOADSTACK_DEMO_OAUTH_CLIENT_SECRET"],
        }
        chain_path = tmp_path / "api.yml"
        _import(f"{url}/openapi.json", chain_path)
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=5) as resp:
            spec = json.load(resp)
        documented = spec["paths"]["/api/v1/orders/{order_id}/attachments"]["post"]["requestBody"]["content"]
        media = documented["multipart/form-data"]
        steps = {s["name"]: s for s in _chain(chain_path)["steps"]}
        attach = steps["post_orders_id_attachments"]["http"]["multipart"]
        assert set(attach["fields"]) | {f["field"] for f in attach["files"]} == set(
            media["schema"]["properties"]
        )
        assert attach["files"][0]["content_type"] == media["encoding"]["file"]["contentType"]
        note = steps["post_orders_id_notes"]["http"]["form"]
        assert note == {"text": "leave at the door & ring", "visibility": "internal"}
        token = steps["post_oauth_token"]["http"]["form"]
        assert token["grant_type"] == "client_credentials"

        # What the server must receive: the documented names and types (it answers with what it got).
        _expect(chain_path, "post_orders_id_attachments", status=201, json={
            "$.fields": attach["fields"], "$.files[0].field": "file", "$.files[0].filename": attach["files"][0]["filename"],
            "$.files[0].content_type": "application/pdf",
        })  # fmt: skip
        _expect(chain_path, "post_orders_id_notes", status=201, json={"$.fields": note})
        doc = _run(
            tmp_path, "rt-openapi", url, auth, "--auth-mode", "oauth2",
            locustfile=str(LOCUSTFILES / "chain_users.py"), chains=[{"path": str(chain_path)}],
        )  # fmt: skip
        name = _chain(chain_path)["name"]
        rows = rows_by_name(doc)
        assert rows[("CHAIN", name)]["count"] > 0 and rows[("CHAIN", name)]["failures"] == 0, doc["errors"]
        for step in ("post_orders_id_attachments", "post_orders_id_notes"):
            row = rows[("HTTP", f"{name}/{step}")]
            assert row["count"] > 0 and row["failures"] == 0, (step, row)
