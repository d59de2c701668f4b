"""Faithful imports: leniency, body kinds, redirects, pages that hand out tokens, secrets, and
generated output that is data-safe (no recorded text becomes Python or template code).

Each HAR here is built the way a browser or tool writes it; the CLI runs for real (in-process for
speed, where stdout/stderr are all that matter). What is generated is loaded by the real chain
loader and template engine, or imported by a real Python process.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from loadstack.chains.templates import compile_value, render_value
from loadstack.cli import main
from loadstack.importers.chain_writer import literal
from loadstack.importers.model import Ref, Text

ORIGIN = "http://127.0.0.1:18777"


def entry(
    method: str, path: str, *, status: int | None = 200, post: dict | None = None, headers: list | None = None,
    response_text: str | None = None, mime: str = "application/json", response_headers: list | None = None,
    resource: str = "fetch", started: str = "2026-11-22T04:04:58.000Z", body_size: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    request: dict[str, Any] = {"method": method, "url": ORIGIN + path, "headers": headers or []}
    if post is not None:
        request["postData"] = post
    if body_size is not None:
        request["bodySize"] = body_size
    out: dict[str, Any] = {
        "startedDateTime": started,
        "time": 5,
        "request": request,
        "_resourceType": resource,
    }
    if status is not None:
        out["response"] = {
            "status": status,
            "headers": response_headers or [],
            "content": {"mimeType": mime, **({"text": response_text} if response_text is not None else {})},
        }
    return out


def har(*entries: dict[str, Any], version: str | None = "1.2", creator: str = "test") -> dict[str, Any]:
    log: dict[str, Any] = {"creator": {"name": creator, "version": "1"}, "entries": list(entries)}
    if version is not None:
        log["version"] = version
    return {"log": log}


def run(*argv: str) -> tuple[int, str, str]:
    """The real CLI, in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def import_har(tmp_path: Path, doc: dict[str, Any], *args: str, name: str = "rec") -> tuple[dict, str]:
    source = tmp_path / f"{name}.har"
    source.write_text(json.dumps(doc))
    target = tmp_path / f"{name}.yml"
    code, _, err = run("import", "har", str(source), "-o", str(target), "--force", *args)
    assert code == 0, err
    # The real chain loader through the CLI, in-process too: a subprocess would add a Python and
    # Locust start-up (seconds on a busy machine) to each of the dozen imports here, and say no more.
    code, out, problems = run("chain", "validate", str(target))
    assert code == 0, out + problems
    return yaml.safe_load(target.read_text()), err


def steps(chain: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in chain["steps"] if "http" in s}


# -- leniency -------------------------------------------------------------------------------------


def test_missing_version_and_missing_responses_are_accepted_and_said(tmp_path: Path) -> None:
    doc = har(
        entry(
            "POST", "/api/v1/things", status=None, post={"mimeType": "application/json", "text": '{"a": 1}'}
        ),
        entry("GET", "/api/v1/things", status=0),
        version=None,
    )
    chain, err = import_har(tmp_path, doc)
    assert "no log.version in rec.har: read as HAR 1.2" in err
    assert "2 entries have no response" in err and "kept 2 calls of 2 entries" in err
    posted = steps(chain)["post_things"]
    assert posted["http"]["json"] == {"a": 1} and "expect" not in posted, "no recorded status: any 2xx/3xx"


def test_unsupported_version_is_still_refused(tmp_path: Path) -> None:
    (tmp_path / "v3.har").write_text(json.dumps(har(entry("GET", "/a"), version="3.0")))
    code, _, err = run("import", "har", str(tmp_path / "v3.har"))
    assert code == 2 and "log.version: unsupported HAR version '3.0'" in err


# -- bodies ---------------------------------------------------------------------------------------


def test_urlencoded_is_decoded_once_from_text_and_from_firefox_params(tmp_path: Path) -> None:
    from_text = entry(
        "POST", "/api/v1/forms/echo", started="2026-11-22T04:04:58.000Z",
        post={"mimeType": "application/x-www-form-urlencoded", "text": "field%5B1%5D=a+b%26c&plain=x%25y"},
    )  # fmt: skip
    from_params = entry(
        "POST", "/api/v1/forms/echo", started="2026-11-22T04:04:59.000Z",
        post={"mimeType": "application/x-www-form-urlencoded",
              "params": [{"name": "field%5B1%5D", "value": "a+b%26c"}, {"name": "plain", "value": "x%25y"}]},
    )  # fmt: skip
    chain, _ = import_har(tmp_path, har(from_text, from_params))
    forms = [s["http"]["form"] for s in steps(chain).values()]
    assert forms == [{"field[1]": "a b&c", "plain": "x%y"}] * 2, forms


def test_multipart_stays_multipart_with_files_next_to_the_chain(tmp_path: Path) -> None:
    pdf = b"%PDF-1.4\n\x00\x01\xfe binary\n"
    boundary = "----WebKitFormBoundaryAbC123"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nQ1 report\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="doc"; filename="q1.pdf"\r\n'
            f"Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + pdf
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="raw"; filename="no-type.dat"\r\n\r\n'
            f"abc\r\n--{boundary}--\r\n"
        ).encode()
    )
    post = {
        "mimeType": f"multipart/form-data; boundary={boundary}",
        "text": base64.b64encode(body).decode(),
        "encoding": "base64",
    }
    chain, err = import_har(tmp_path, har(entry("POST", "/api/v1/uploads", post=post)))
    spec = steps(chain)["post_uploads"]["http"]["multipart"]
    assert spec["fields"] == {"title": "Q1 report"}
    assert [(f["field"], f["filename"], f["content_type"]) for f in spec["files"]] == [
        ("doc", "q1.pdf", "application/pdf"),
        ("raw", "no-type.dat", "application/octet-stream"),
    ], "a file part without Content-Type is octet-stream, not text/plain"
    assert (tmp_path / spec["files"][0]["path"]).read_bytes() == pdf, "base64 bodies keep exact bytes"
    assert "file bodies: 2 under files/rec/" in err


def test_multipart_without_a_recorded_content_type_is_still_multipart(tmp_path: Path) -> None:
    text = '--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--xyz--\r\n'
    chain, _ = import_har(
        tmp_path, har(entry("POST", "/api/v1/uploads", post={"mimeType": "", "text": text}))
    )
    assert steps(chain)["post_uploads"]["http"]["multipart"] == {"fields": {"a": "1"}, "files": []}


def test_binary_and_large_bodies_go_to_files_never_inline(tmp_path: Path) -> None:
    gzip = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3]) + bytes(range(256)) * 4
    big = "x" * (64 * 1024 + 1)
    doc = har(
        entry("POST", "/api/v1/blob", post={"mimeType": "application/octet-stream",
                                           "text": base64.b64encode(gzip).decode(), "encoding": "base64"}),
        entry("POST", "/api/v1/big", post={"mimeType": "text/plain", "text": big},
              started="2026-11-22T04:04:59.000Z"),
        entry("POST", "/api/v1/lost", post={"mimeType": "application/octet-stream", "text": ""}, body_size=9,
              started="2026-11-22T04:05:00.000Z"),
    )  # fmt: skip
    chain, err = import_har(tmp_path, doc)
    text = (tmp_path / "rec.yml").read_text()
    assert len(text) < 4000 and "xxxx" not in text, "nothing inlined"
    blob, large, lost = (steps(chain)[n]["http"]["body_file"] for n in ("post_blob", "post_big", "post_lost"))
    assert (tmp_path / blob["path"]).read_bytes() == gzip and blob[
        "content_type"
    ] == "application/octet-stream"
    assert (tmp_path / large["path"]).read_bytes() == big.encode() and large["content_type"] == "text/plain"
    assert (
        tmp_path / lost["path"]
    ).read_bytes() == b"" and "9-byte application/octet-stream body is not in" in err


def test_files_are_not_written_over_without_force_and_never_outside(tmp_path: Path) -> None:
    post = {"mimeType": "multipart/form-data; boundary=b",
            "text": '--b\r\nContent-Disposition: form-data; name="f"; filename="../../etc/passwd"\r\n\r\nx\r\n--b--\r\n'}  # fmt: skip
    (tmp_path / "up.har").write_text(json.dumps(har(entry("POST", "/up", post=post))))
    code, _, err = run("import", "har", str(tmp_path / "up.har"), "-o", str(tmp_path / "out" / "up.yml"))
    assert code == 0, err
    written = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(written) == ["out/files/up/01-passwd", "out/up.yml", "up.har"], written
    assert (
        yaml.safe_load((tmp_path / "out" / "up.yml").read_text())["steps"][0]["http"]["multipart"]["files"][
            0
        ]["filename"]
        == "../../etc/passwd"
    ), "the recorded name stays data"
    code, _, err = run("import", "har", str(tmp_path / "up.har"), "-o", str(tmp_path / "out" / "other.yml"))
    assert code == 0, "the same bytes again (a chain and a locustfile share files/) replace nothing"
    (tmp_path / "out" / "files" / "up" / "01-passwd").write_bytes(b"edited by hand")
    code, _, err = run("import", "har", str(tmp_path / "up.har"), "-o", str(tmp_path / "out" / "third.yml"))
    assert code == 2 and "01-passwd exists; pass --force" in err
    assert (tmp_path / "out" / "files" / "up" / "01-passwd").read_bytes() == b"edited by hand"
    code, _, err = run("import", "har", str(tmp_path / "up.har"))
    assert code == 2 and "write it with -o FILE" in err


# -- redirects, pages, cookies ------------------------------------------------------------------------


def test_form_login_keeps_the_page_correlates_its_hidden_token_and_folds_the_redirect(tmp_path: Path) -> None:
    page = (
        '<html><head><meta name="csrf-token" content="meta-tok-12345"></head><body><form>'
        '<input type="hidden" name="csrf_token" value="tok-AbC123xyz"><input name="username"></form></body></html>'
    )
    doc = har(
        entry("GET", "/forms/login", resource="document", mime="text/html", response_text=page,
              response_headers=[{"name": "Set-Cookie", "value": "demo_csrf=tok-AbC123xyz; Path=/forms"}],
              started="2026-11-22T04:04:58.000Z"),
        entry("POST", "/forms/login", resource="document", status=303, mime="text/html",
              response_headers=[{"name": "Location", "value": "/forms/account"}],
              headers=[{"name": "Cookie", "value": "demo_csrf=tok-AbC123xyz; tracking=abcdefgh12345"},
                       {"name": "X-CSRF-Token", "value": "meta-tok-12345"}],
              post={"mimeType": "application/x-www-form-urlencoded",
                    "text": "csrf_token=tok-AbC123xyz&username=ada%40example.test&password=s3cret+pw"},
              started="2026-11-22T04:04:59.000Z"),
        entry("GET", "/forms/account", resource="document", mime="text/html", response_text="<p>hi</p>",
              started="2026-11-22T04:04:59.100Z"),
        entry("GET", "/static/app.css", resource="stylesheet", mime="text/css", started="2026-11-22T04:04:58.500Z"),
    )  # fmt: skip
    chain, err = import_har(tmp_path, doc)
    found = steps(chain)
    assert list(found) == ["get_forms_login", "post_forms_login"]
    saved = {source: var for var, source in found["get_forms_login"]["save"].items()}
    hidden, meta = saved["last | html_input('csrf_token')"], saved["last | html_input('csrf-token')"]
    login = found["post_forms_login"]
    assert login["expect"] == {"status": 200}, "the replay follows the 303 like the browser did"
    assert login["http"]["form"] == {
        "csrf_token": f"{{{{ vars.{hidden} }}}}", "username": "{{ env.HAR_USERNAME }}",
        "password": "{{ env.HAR_PASSWORD }}",
    }  # fmt: skip
    assert login["http"]["headers"] == {"X-CSRF-Token": f"{{{{ vars.{meta} }}}}"}, "cookies: the client's jar"
    assert "redirect the replay follows itself" in err and "kept 1 page load(s)" in err
    assert "'tracking'" in err, "a cookie no session needs is left out, and said"
    text = (tmp_path / "rec.yml").read_text()
    assert "s3cret" not in text and "ada@example.test" not in text and "ada%40" not in text
    assert "# The login uses a recorded account (env.HAR_USERNAME / env.HAR_PASSWORD)" in text


def test_sign_up_then_login_generates_the_pair_and_login_alone_keeps_it(tmp_path: Path) -> None:
    creds = '{"username": "ada", "password": "pw-recorded-1"}'
    signup = entry("POST", "/api/v1/signup", post={"mimeType": "application/json", "text": creds})
    login = entry("POST", "/api/v1/login", post={"mimeType": "application/json", "text": creds},
                  started="2026-11-22T04:04:59.000Z")  # fmt: skip
    chain, _ = import_har(tmp_path, har(signup, login), name="both")
    bodies = [s["http"]["json"] for s in steps(chain).values()]
    assert bodies == [{"username": "{{ vars.username }}", "password": "{{ vars.password }}"}] * 2
    assert set(chain["vars"]) == {"username", "password"}
    chain, _ = import_har(tmp_path, har(login), name="login")
    assert steps(chain)["post_login"]["http"]["json"] == {
        "username": "{{ env.HAR_USERNAME }}",
        "password": "{{ env.HAR_PASSWORD }}",
    }, "never a recorded user with a random password"


def test_set_cookie_values_correlate_into_later_headers(tmp_path: Path) -> None:
    doc = har(
        entry("GET", "/api/v1/session", response_text="{}",
              response_headers=[{"name": "Set-Cookie", "value": "XSRF-TOKEN=q1w2e3r4t5; Path=/"},
                                {"name": "Set-Cookie", "value": "sid=abcdefgh12345678; HttpOnly"}]),
        entry("POST", "/api/v1/things", post={"mimeType": "application/json", "text": "{}"},
              headers=[{"name": "X-XSRF-TOKEN", "value": "q1w2e3r4t5"},
                       {"name": "Cookie", "value": "XSRF-TOKEN=q1w2e3r4t5; sid=abcdefgh12345678"}],
              started="2026-11-22T04:04:59.000Z"),
    )  # fmt: skip
    chain, _ = import_har(tmp_path, doc)
    assert steps(chain)["get_session"]["save"] == {"xsrf_token": "last | cookie('XSRF-TOKEN')"}
    assert steps(chain)["post_things"]["http"]["headers"] == {"X-XSRF-TOKEN": "{{ vars.xsrf_token }}"}


# -- secrets ----------------------------------------------------------------------------------------------


def test_api_keys_tokens_and_session_cookies_become_env_references(tmp_path: Path) -> None:
    canaries = {
        "key": "canary-key-7f3a9", "query": "canary-query-91be", "json": "canary-json-22cd",
        "client": "canary-client-5e0f", "cookie": "canary-cookie-b7e1c2d4", "basic": "Basic Y2FuYXJ5OnB3",
    }  # fmt: skip
    doc = har(
        entry("POST", f"/api/v1/items?api_key={canaries['query']}&page=2",
              headers=[{"name": "X-API-Key", "value": canaries["key"]},
                       {"name": "Authorization", "value": canaries["basic"]},
                       {"name": "Cookie", "value": f"sessionid={canaries['cookie']}; theme=dark"}],
              post={"mimeType": "application/json",
                    "text": json.dumps({"api_token": canaries["json"], "client_secret": canaries["client"],
                                        "access_token": canaries["json"], "n": 1})}),
    )  # fmt: skip
    chain, err = import_har(tmp_path, doc)
    text = (tmp_path / "rec.yml").read_text()
    for value in canaries.values():
        assert value not in text and value not in err, value
    http = steps(chain)["post_items"]["http"]
    assert http["path"] == "/api/v1/items?api_key={{ env.HAR_API_KEY | urlencode }}&page=2"
    assert http["headers"] == {
        "X-API-Key": "{{ env.HAR_X_API_KEY }}", "Authorization": "{{ env.HAR_AUTHORIZATION }}",
        "Cookie": "sessionid={{ env.HAR_COOKIE_SESSIONID }}",
    }  # fmt: skip
    assert http["json"] == {"api_token": "{{ env.HAR_API_TOKEN }}", "client_secret": "{{ env.HAR_CLIENT_SECRET }}",
                            "access_token": "{{ env.HAR_API_TOKEN }}", "n": 1}  # fmt: skip
    for name in (
        "HAR_API_KEY",
        "HAR_X_API_KEY",
        "HAR_AUTHORIZATION",
        "HAR_COOKIE_SESSIONID",
        "HAR_CLIENT_SECRET",
    ):
        assert name in err and f"#   {name}: " in text, name
    locustfile = tmp_path / "rec_users.py"
    code, _, err = run(
        "import", "har", str(tmp_path / "rec.har"), "--format", "locustfile", "-o", str(locustfile)
    )
    assert code == 0, err
    source = locustfile.read_text()
    assert "secret('HAR_X_API_KEY')" in source and "os.environ" not in source
    for value in canaries.values():
        assert value not in source, value


# -- data-safe output -----------------------------------------------------------------------------------


HOSTILE = '"""; import os; open(MARKER, "w").write("ran") #\\'


def _hostile_har(marker: Path) -> dict[str, Any]:
    text = HOSTILE.replace("MARKER", repr(str(marker)))
    return har(
        entry("POST", "/api/v1/x", headers=[{"name": "X-Note", "value": text}],
              post={"mimeType": "text/plain", "text": text + '\n{{ 7 * 7 }}{% endraw %}{{ run_id }}'},
              response_text=json.dumps({"id": "abcdef0123456789abcdef"})),
        creator=text + "\u2028steps: []\n# x",
    )  # fmt: skip


def test_hostile_recorded_text_never_runs_in_a_generated_locustfile(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    (tmp_path / "evil.har").write_text(json.dumps(_hostile_har(marker)))
    locustfile = tmp_path / "evil_users.py"
    code, _, err = run(
        "import", "har", str(tmp_path / "evil.har"), "--format", "locustfile", "-o", str(locustfile)
    )
    assert code == 0, err
    imported = subprocess.run(
        [sys.executable, "-c", f"import runpy; runpy.run_path({str(locustfile)!r})"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert not marker.exists(), "recorded text ran as code"


def test_hostile_openapi_title_and_description_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    text = HOSTILE.replace("MARKER", repr(str(marker)))
    spec = {"openapi": "3.0.3", "info": {"title": text, "description": text, "version": text},
            "paths": {"/a": {"get": {"summary": text, "responses": {"200": {"description": text}}}}}}  # fmt: skip
    (tmp_path / "evil.json").write_text(json.dumps(spec))
    locustfile = tmp_path / "evil_api.py"
    code, _, err = run(
        "import", "openapi", str(tmp_path / "evil.json"), "--format", "locustfile", "-o", str(locustfile)
    )
    assert code == 0, err
    imported = subprocess.run(
        [sys.executable, "-c", f"import runpy; runpy.run_path({str(locustfile)!r})"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert not marker.exists(), "OpenAPI text ran as code"


def test_hostile_recorded_text_stays_literal_in_a_chain(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    doc = _hostile_har(marker)
    chain, _ = import_har(tmp_path, doc, "--keep-static")
    http = steps(chain)["post_x"]["http"]
    recorded = doc["log"]["entries"][0]["request"]
    rendered_body = render_value(compile_value(http["body"]), {})
    assert rendered_body == recorded["postData"]["text"], "the text renders to itself, {% endraw %} included"
    assert render_value(compile_value(http["headers"]["X-Note"]), {}) == recorded["headers"][0]["value"]
    assert chain["name"] == "rec" and len(chain["steps"]) == 1, "the creator name did not add YAML"


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(
    st.one_of(st.text(alphabet=st.sampled_from(list("{}%#'\"\\\r\n x-é\x00\u2028")), max_size=40), st.text()),
    st.booleans(),
)
def test_any_recorded_text_renders_back_to_itself(text: str, with_ref: bool) -> None:
    from loadstack.importers.chain_writer import template

    value = Text.of(text, Ref("x"), text) if with_ref else text
    source = template(value)
    rendered = render_value(compile_value(source), {"vars": {"x": "<X>"}})
    assert rendered == (f"{text}<X>{text}" if with_ref else text), source
    assert literal(text) == text or "{{" in literal(text)
