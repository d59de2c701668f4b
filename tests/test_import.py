"""Scenario generation: a HAR recorded here with headless Chromium, the checked-in recording in its
Chrome and Firefox shapes, filters, malformed input, and OpenAPI — each generated test run for real."""

from __future__ import annotations

import base64
import copy
import json
import re
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadstack_demo.process import demo_platform
from tests.har_recording import record
from tests.helpers import LOCUSTFILES, loadstack, loadstack_in_process, rows_by_name, summary, write_profile

FIXTURE = Path(__file__).parent / "fixtures" / "demo-session.har"
OAUTH = {"LOADSTACK_DEMO_OAUTH_CLIENT_SECRET": "cs-import-test-0b6d", "LOADSTACK_DEMO_OAUTH_CLIENT_ID": "imp"}


def _import(*args: str) -> Any:
    return loadstack("import", *args)


def _chain(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _http_steps(chain: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in chain["steps"] if "http" in s}


def _run_chain(
    tmp_path: Path, chain: Path, url: str, run_id: str, env: dict[str, str] | None = None, *args: str
):
    profile = write_profile(
        tmp_path / f"{run_id}.yml", locustfile=str(LOCUSTFILES / "chain_users.py"), users=3, spawn_rate=3,
        run_time="8s", workers=1, chains=[{"path": str(chain)}],
    )  # fmt: skip
    return loadstack(
        "run", "--profile", str(profile), "--host", url, "--run-id", run_id, "--results-dir", str(tmp_path),
        *args, env=env,
    )  # fmt: skip


def _run_locustfile(
    tmp_path: Path, locustfile: Path, url: str, run_id: str, env: dict[str, str] | None = None, *args: str
):
    profile = write_profile(
        tmp_path / f"{run_id}.yml",
        locustfile=str(locustfile),
        users=3,
        spawn_rate=3,
        run_time="8s",
        workers=1,
    )
    return loadstack(
        "run", "--profile", str(profile), "--host", url, "--run-id", run_id, "--results-dir", str(tmp_path),
        *args, env=env,
    )  # fmt: skip


# -- a real browser recording, imported and run ---------------------------------------------------


@pytest.mark.slow
def test_recorded_chromium_session_imports_and_runs_with_zero_failures(tmp_path: Path) -> None:
    with demo_platform({}) as url:
        har = record(url, tmp_path / "session.har", think_ms=150)
        recorded = json.loads(har.read_text())["log"]
        recorded_password = next(
            json.loads(e["request"]["postData"]["text"])["password"]
            for e in recorded["entries"]
            if e["request"]["url"].endswith("/auth/register")
        )
        chain = tmp_path / "session.yml"
        imported = _import("har", str(har), "-o", str(chain), "--name", "browser_session")
        assert imported.returncode == 0, imported.stderr
        assert "correlated: access_token" in imported.stderr and "order_id" in imported.stderr
        text = chain.read_text()
        assert "eyJ" not in text and recorded_password not in text, "recorded secrets are never copied"
        result = _run_chain(tmp_path, chain, url, "har-chain")
        assert result.returncode == 0, result.stdout + result.stderr
        rows = rows_by_name(summary(tmp_path, "har-chain"))
        assert rows[("CHAIN", "browser_session")]["count"] > 0
        assert rows[("CHAIN", "browser_session")]["failures"] == 0
        assert rows[("HTTP", "browser_session/get_orders_id")]["count"] > 0

        locustfile = tmp_path / "session_users.py"
        imported = _import("har", str(har), "--format", "locustfile", "-o", str(locustfile))
        assert imported.returncode == 0, imported.stderr
        result = _run_locustfile(tmp_path, locustfile, url, "har-locustfile")
        assert result.returncode == 0, result.stdout + result.stderr
        doc = summary(tmp_path, "har-locustfile")
        assert doc["totals"]["failures"] == 0 and doc["totals"]["count"] > 0
        assert ("GET", "/api/v1/orders/[id]") in rows_by_name(doc), "ids grouped in stat names"


# -- the checked-in recording: correlation, names, think times -------------------------------------


def test_checked_in_recording_correlates_ids_and_tokens(tmp_path: Path) -> None:
    out = tmp_path / "fixture.yml"
    result = _import("har", str(FIXTURE), "-o", str(out), "--max-think", "0.2")
    assert result.returncode == 0, result.stderr
    assert "dropped 5" in result.stderr and "static asset or page" in result.stderr
    chain = _chain(out)
    steps = _http_steps(chain)
    assert list(steps) == [
        "get_status", "post_auth_register", "post_auth_login", "get_oscilloscope_config", "post_orders",
        "get_orders_id", "post_payments", "get_payments", "get_orders",
    ]  # fmt: skip
    assert steps["post_auth_login"]["save"] == {"access_token": "$.access_token"}
    assert steps["post_orders"]["save"] == {"order_id": "$.id"}
    assert steps["get_orders_id"]["http"]["path"] == "/api/v1/orders/{{ vars.order_id | urlencode }}"
    assert steps["post_payments"]["http"]["json"]["order_id"] == "{{ vars.order_id }}"
    assert steps["post_orders"]["http"]["headers"] == {"Authorization": "Bearer {{ vars.access_token }}"}
    register = steps["post_auth_register"]["http"]["json"]
    login = steps["post_auth_login"]["http"]["json"]
    assert register["email"] == login["email"] == "{{ vars.email }}"
    assert register["password"] == login["password"] == "{{ vars.password }}"
    assert "faker" in chain["vars"]["email"] and "run_id" in chain["vars"]["email"]
    thinks = [s["think"] for s in chain["steps"] if "think" in s]
    assert thinks and all(float(t.rstrip("s")) <= 0.2 for t in thinks), thinks
    assert steps["post_orders"]["expect"] == {"status": 201}
    validated = loadstack_in_process("chain", "validate", str(out))
    assert validated.returncode == 0, validated.stderr


def _firefox(doc: dict[str, Any]) -> dict[str, Any]:
    """The same session as Firefox saves it: HAR 1.1 header, no _resourceType, local time with an
    offset, Host/Cookie headers, form-style postData with params, base64 JSON bodies."""
    ff = copy.deepcopy(doc)
    log = ff["log"]
    log["version"] = "1.1"
    log["creator"] = {"name": "Firefox", "version": "128.0"}
    log["browser"] = {"name": "Firefox", "version": "128.0"}
    offset = timezone(timedelta(hours=2))
    for entry in log["entries"]:
        for key in [k for k in entry if k.startswith("_")]:
            del entry[key]
        started = datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00"))
        entry["startedDateTime"] = started.astimezone(offset).isoformat(timespec="milliseconds")
        entry["request"]["httpVersion"] = "HTTP/1.1"
        entry["request"]["headers"] += [
            {"name": "Host", "value": "127.0.0.1"},
            {"name": "Cookie", "value": "sid=x"},
        ]
        post = entry["request"].get("postData")
        if post:
            post["params"] = []
        content = entry["response"]["content"]
        if "json" in content.get("mimeType", "") and "text" in content:
            content["text"] = base64.b64encode(content["text"].encode()).decode()
            content["encoding"] = "base64"
    return ff


def _chrome_h2(doc: dict[str, Any]) -> dict[str, Any]:
    """Chrome over HTTP/2 lists pseudo-headers; they must not be replayed."""
    h2 = copy.deepcopy(doc)
    for entry in h2["log"]["entries"]:
        entry["request"]["headers"] = [
            {"name": ":authority", "value": "127.0.0.1"}, {"name": ":method", "value": entry["request"]["method"]},
            *entry["request"]["headers"],
        ]  # fmt: skip
    return h2


@pytest.mark.parametrize("variant", ["firefox", "chrome-h2"])
def test_browser_variants_import_to_the_same_chain(tmp_path: Path, variant: str) -> None:
    doc = json.loads(FIXTURE.read_text())
    (tmp_path / "v.har").write_text(json.dumps(_firefox(doc) if variant == "firefox" else _chrome_h2(doc)))
    for name, har in (("chrome", FIXTURE), (variant, tmp_path / "v.har")):
        result = _import("har", str(har), "-o", str(tmp_path / f"{name}.yml"), "--name", "s")
        assert result.returncode == 0, result.stderr
    reference, other = _chain(tmp_path / "chrome.yml"), _chain(tmp_path / f"{variant}.yml")
    assert [s["name"] for s in other["steps"]] == [s["name"] for s in reference["steps"]]
    assert _http_steps(other) == _http_steps(reference)
    assert ":authority" not in (tmp_path / f"{variant}.yml").read_text()


def test_filters_and_analytics(tmp_path: Path) -> None:
    doc = json.loads(FIXTURE.read_text())
    beacon = copy.deepcopy(doc["log"]["entries"][-1])
    beacon["request"]["url"] = "https://www.google-analytics.com/g/collect?v=2"
    beacon["request"]["method"] = "POST"
    doc["log"]["entries"].append(beacon)
    har = tmp_path / "with-beacon.har"
    har.write_text(json.dumps(doc))
    result = _import("har", str(har), "-o", str(tmp_path / "a.yml"), "--exclude", "*/oscilloscope/*")
    assert result.returncode == 0, result.stderr
    assert "analytics" in result.stderr
    names = list(_http_steps(_chain(tmp_path / "a.yml")))
    assert "get_oscilloscope_config" not in names and "post_g_collect" not in names
    result = _import("har", str(har), "-o", str(tmp_path / "b.yml"), "--include", "*/payments")
    assert result.returncode == 0, result.stderr
    assert list(_http_steps(_chain(tmp_path / "b.yml"))) == ["post_payments", "get_payments"]


def test_malformed_har_is_bad_input(tmp_path: Path) -> None:
    cases = {
        "bad.har": ('{"log": {"version": "1.2", "entries": [', "not valid JSON"),
        "no-entries.har": ('{"log": {"version": "1.2"}}', "no log.entries"),
        "v2.har": ('{"log": {"version": "2.0", "entries": []}}', "unsupported HAR version '2.0'"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        result = _import("har", str(tmp_path / name), "-o", str(tmp_path / "out.yml"))
        assert result.returncode == 2, (name, result.stderr)
        assert message in result.stderr and name in result.stderr
    assert "bad.har:1:" in _import("har", str(tmp_path / "bad.har")).stderr
    (tmp_path / "exists.yml").write_text("keep me")
    result = _import("har", str(FIXTURE), "-o", str(tmp_path / "exists.yml"))
    assert result.returncode == 2 and "--force" in result.stderr
    assert (tmp_path / "exists.yml").read_text() == "keep me"


# -- OpenAPI ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_openapi_of_the_demo_runs_with_no_unexpected_failures(tmp_path: Path) -> None:
    with demo_platform(OAUTH) as url:
        auth = {
            "LOADSTACK_OAUTH_TOKEN_URL": f"{url}/oauth/token",
            "LOADSTACK_OAUTH_CLIENT_ID": "imp",
            "LOADSTACK_OAUTH_CLIENT_SECRET": OAUTH["LOADSTACK_DEMO_OAUTH_CLIENT_SECRET"],
        }
        chain = tmp_path / "api.yml"
        result = _import("openapi", f"{url}/openapi.json", "-o", str(chain))
        assert result.returncode == 0, result.stderr
        steps = _http_steps(_chain(chain))
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=5) as resp:
            operations = sum(len(item) for item in json.load(resp)["paths"].values())
        assert len(steps) == operations >= 17, list(steps)  # every operation of the demo platform
        order = list(steps)
        assert order.index("post_orders") < order.index("get_orders_id") < order.index("post_payments")
        assert steps["get_orders_id"]["http"]["path"].endswith("{{ vars.order_id | urlencode }}")
        run = _run_chain(tmp_path, chain, url, "openapi-chain", auth, "--auth-mode", "oauth2")
        assert run.returncode == 0, run.stdout + run.stderr
        rows = rows_by_name(summary(tmp_path, "openapi-chain"))
        name = _chain(chain)["name"]
        assert rows[("CHAIN", name)]["failures"] == 0 and rows[("CHAIN", name)]["count"] > 0

        locustfile = tmp_path / "api_users.py"
        result = _import("openapi", f"{url}/openapi.json", "--format", "locustfile", "-o", str(locustfile))
        assert result.returncode == 0, result.stderr
        assert "@task(3)" in locustfile.read_text(), "weights are there to edit"
        run = _run_locustfile(tmp_path, locustfile, url, "openapi-locustfile", auth, "--auth-mode", "oauth2")
        assert run.returncode == 0, run.stdout + run.stderr
        doc = summary(tmp_path, "openapi-locustfile")
        assert doc["totals"]["failures"] == 0 and doc["totals"]["count"] > 10


def test_openapi_values_respect_the_schema(tmp_path: Path) -> None:
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "Shop", "version": "2"},
        "paths": {
            "/carts": {
                "post": {
                    "requestBody": {
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Cart"}}}
                    },
                    "responses": {"201": {"description": "created"}, "422": {"description": "invalid"}},
                }
            },
            "/carts/{cart_id}": {
                "get": {
                    "parameters": [
                        {"name": "cart_id", "in": "path", "required": True, "schema": {"type": "integer"}}
                    ],
                    "responses": {"200": {"description": "ok"}, "404": {"description": "gone"}},
                }
            },
            "/upload": {
                "post": {"requestBody": {"content": {"multipart/form-data": {}}}, "responses": {"204": {}}}
            },
        },
        "components": {
            "schemas": {
                "Cart": {
                    "allOf": [{"$ref": "#/components/schemas/Base"}],
                    "type": "object",
                    "required": ["code", "items", "owner"],
                    "properties": {
                        "code": {"type": "string", "pattern": "^[A-Z]{2}-\\d{4}$"},
                        "items": {
                            "type": "array",
                            "minItems": 2,
                            "items": {"type": "integer", "minimum": 5, "exclusiveMaximum": 7},
                        },
                        "owner": {"type": "string", "format": "email"},
                        "note": {"type": ["string", "null"], "example": "gift"},
                        "skipped": {"type": "string"},
                    },
                },
                "Base": {
                    "type": "object",
                    "required": ["kind"],
                    "properties": {"kind": {"enum": ["a", "b"]}},
                },
            }
        },
    }
    (tmp_path / "spec.yml").write_text(yaml.safe_dump(spec))
    result = _import("openapi", str(tmp_path / "spec.yml"), "-o", str(tmp_path / "shop.yml"))
    assert result.returncode == 0, result.stderr
    assert "skipped POST /upload" in result.stderr
    chain = _chain(tmp_path / "shop.yml")
    steps = _http_steps(chain)
    body = steps["post_carts"]["http"]["json"]
    assert re.fullmatch(r"[A-Z]{2}-\d{4}", body["code"]), body
    assert body["items"] == [5, 5] and body["note"] == "gift" and body["kind"] == "a"
    assert body["owner"] == "{{ vars.owner }}" and "skipped" not in body
    assert steps["post_carts"]["expect"] == {"status": 201}, "422 is never an expected answer"
    assert steps["get_carts_id"]["expect"] == {"status": [200, 404]}
    assert steps["post_carts"]["save"] == {"cart_id": "$.id"}
    for bad, message in (
        ("swagger: '2.0'\npaths: {}", "Swagger 2.0 is not supported"),
        ("a: [", "neither JSON nor YAML"),
    ):
        (tmp_path / "bad.yml").write_text(bad)
        result = _import("openapi", str(tmp_path / "bad.yml"))
        assert result.returncode == 2 and message in result.stderr, result.stderr
    result = _import("openapi", "https://api.example.com/openapi.json")
    assert result.returncode == 2 and "--allow-remote" in result.stderr
