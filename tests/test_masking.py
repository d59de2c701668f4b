"""Secret masking and the local-only target rule (pure logic)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loadstack.masking import (
    MASK,
    MAX_SCAN_CHARS,
    Masker,
    mask_dsn,
    mask_patterns,
    mask_url,
    secret_values_from_env,
)
from loadstack.safety import RemoteTargetError, check_target, is_local_host
from tests.helpers import loadstack


def test_url_passwords_are_masked() -> None:
    assert mask_url("postgresql://app:hunter22@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert "s3cr3t" not in mask_patterns("connect amqp://guest:s3cr3t@rabbit:5672// failed")


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def.ghi-long-token",
        "{'authorization': 'Basic dXNlcjpwYXNz'}",
        "client_secret=topsecretvalue&grant_type=client_credentials",
        '"access_token": "abcdefgh12345"',
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ],
)
def test_secret_shapes_are_masked(text: str) -> None:
    masked = mask_patterns(text)
    assert MASK in masked
    for fragment in ("abc.def", "dXNlcjpwYXNz", "topsecretvalue", "abcdefgh12345", "dozjgNryP4J3"):
        assert fragment not in masked


def test_env_secrets_are_masked_literally_everywhere() -> None:
    masker = Masker.from_env(
        {
            "LOADSTACK_API_TOKEN": "tok-123456",
            "LOADSTACK_AMQP_URL": "amqp://app:Pw-0987@mq//",
            "LOADSTACK_POSTGRES_DSN": "postgresql://loadstack:loadstack@db/x",  # dev default user == password
            "HOME": "/root",
        }
    )
    text = masker("tok-123456 leaked in an error; Pw-0987 too; loadstack.progress stays readable")
    assert "tok-123456" not in text and "Pw-0987" not in text
    assert "loadstack.progress stays readable" in text
    env = masker.mask_env(
        {"LOADSTACK_API_TOKEN": "tok-123456", "LOADSTACK_AMQP_URL": "amqp://app:Pw-0987@mq//"}
    )
    assert env == {"LOADSTACK_API_TOKEN": MASK, "LOADSTACK_AMQP_URL": "amqp://app:***@mq//"}


def test_local_targets_only_unless_allowed() -> None:
    # Compose service names count only where they resolve (tests/test_target_guard.py).
    for host in ("127.0.0.1", "127.8.9.10", "localhost", "[::1]"):
        assert is_local_host(host.strip("[]")), host
    check_target("http://127.0.0.1:8000", allow_remote=False)
    check_target("postgresql://u@localhost:5432/db", allow_remote=False)
    with pytest.raises(RemoteTargetError, match="--allow-remote"):
        check_target("http://10.0.0.5", allow_remote=False)
    with pytest.raises(RemoteTargetError):
        check_target("https://example.com/api", allow_remote=False)
    check_target("https://example.com/api", allow_remote=True)


# -- issue 27, findings 8, 11 and 12 ----------------------------------------------------------------

S = "Zq7secretvalue"  # every secret below contains it; none may survive


@pytest.mark.parametrize(
    "text",
    [
        # libpq keyword DSNs: an unquoted value runs to whitespace and may hold , \ ' " & }
        f"host=db password=a,{S} user=app",
        f"host=db password=a\\ {S} user=app",  # a backslash escapes the space
        f"host=db password=a'{S} user=app",
        f'host=db password=a"{S} user=app',
        f"host=db password=a&{S} user=app",
        f"host=db password=a}}{S} user=app",
        f"host=db password='a b \\' {S}' user=app",
        f"host=db sslpassword={S} sslmode=require",
        # a comma inside a URI, Redis' ?password=
        f"postgresql://app:a,{S}@127.0.0.1/db",
        f"postgresql://app@127.0.0.1/db?password=a,{S}",
        f"redis://127.0.0.1:6379/0?password=a,{S}",
        f"connect redis://:{S},x@127.0.0.1:6379/0 failed",
        # query strings and forms in request names and failure messages
        f"/api?refresh_token={S}&page=2",
        f"/api?apikey={S}",
        f"/api?key={S}",
        f"/api?sig={S}&x=1",
        f"/api?session={S}",
        f"/api?pwd={S}",
        f"DB_PASSWORD={S} next",
        f'{{"refresh_token": "{S}", "client_secret": "{S}"}}',
        f"X-API-Key: {S}",
    ],
)
def test_new_secret_forms_are_masked(text: str) -> None:
    masked = mask_patterns(text)
    assert S not in masked and MASK in masked, masked
    assert mask_patterns(masked) == masked  # masking is idempotent: a masked line passes again unchanged
    assert S not in mask_dsn(text)


def test_keyword_dsns_are_read_by_libpq() -> None:
    odd = "a,b\\c'd\"e&f}" + S  # as libpq reads it: an unquoted value escapes \ with \
    escaped = odd.replace("\\", "\\\\")
    dsn = f"host=127.0.0.1 dbname=test user=app password={escaped} sslpassword='x y {S}'"
    masked = mask_dsn(dsn)
    assert S not in masked and "host=127.0.0.1" in masked, masked
    # The literal password, as libpq reads it, is a secret of an environment that holds the DSN.
    found = secret_values_from_env({"LOADSTACK_POSTGRES_DSN": dsn})
    assert odd in found and f"x y {S}" in found, found
    assert S not in Masker(found)(f"password authentication failed; sent {odd}")


def test_masking_a_line_of_json_keeps_it_json() -> None:
    doc = {
        "password": "hunter22",
        "token": 12345678,
        "note": f'password="{S}" and password={S}\\\\',
        "nested": {"secret": {"a": 1}},
        "body": json.dumps({"password": "hunter22", "token": 12345678, "k": f"sig={S}"}),
        "url": f"postgresql://u:{S}@h/db?sslpassword={S}",
    }
    for line in (json.dumps(doc), json.dumps(doc, indent=2)):
        masked = mask_patterns(line)
        assert S not in masked and "hunter22" not in masked and "12345678" not in masked
        back = json.loads(masked)
        assert back["nested"] == {"secret": {"a": 1}}
        assert json.loads(back["body"]) == {"password": "***", "token": "***", "k": "sig=***"}


# A shape of each kind a pattern could stall on, 1 MB each: the old URL-password pattern took
# 6.4 s for 40,000 characters of the first, about an hour for a megabyte.
SHAPES = """
import sys, time
from loadstack.masking import Masker
n = 1_000_000
shapes = [
    ("aB3+.-" * n)[:n],
    ("abc+def.ghi-jkl:" * n)[:n],
    ("http://u:p" * n)[:n],
    ("password=\\"" * n)[:n],
    ("eyJaaaaaaaaa." * n)[:n],
    "authorization:" + " " * n,
    ("<a href='x'>token=" * n)[:n],
]
masker = Masker(["some-known-secret"])
for s in shapes:
    masker(s)
# Whole documents too: the markup tokenizer (x<x<…, one long attribute run, unclosed quotes and tags).
pages = [("x<" * n)[:n], "<a " + "b" * n + ">", ('<a b="' * n)[:n], ("</scrip" * n)[:n], ("<!x" * n)[:n]]
for page in pages:
    masker.mask_document("<script>" + page, "html")
    masker.mask_document(page, "svg")
print("ok")
"""


def test_a_megabyte_of_any_shape_is_masked_in_bounded_time() -> None:
    # A subprocess: a regular expression stuck in C cannot be interrupted, only killed.
    out = subprocess.run([sys.executable, "-c", SHAPES], capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "ok", out.stderr


def test_past_the_scan_limit_nothing_is_shown() -> None:
    masker = Masker()
    head = "word " * (MAX_SCAN_CHARS // 5 - 2)
    straddling = "x" * 20 + S  # the token the limit falls into
    text = head + straddling + f" password={S} " + "y" * 1000
    masked = masker(text)
    assert len(text) > MAX_SCAN_CHARS
    assert S not in masked and "xxxx" not in masked[-200:]
    assert masked.startswith("word word") and "not shown: past the scan limit of the masker]" in masked


def test_documents_are_masked_by_value_and_keep_their_format() -> None:
    masker = Masker()
    secret_name = f'</script><b a="1">password={S}&amp;'
    # Locust's report: a bundle (its code holds `password:!0`), and its data as JSON in a script.
    bundle = 'var t={password:!0};function f(e){return"password"===e.type||e.x}'
    data = json.dumps({"name": secret_name, "n": 1}).replace("<", "\\u003c").replace(">", "\\u003e")
    page = (
        f'<!DOCTYPE html><html><head><script type="module">{bundle}</script>'
        f"<style>.a{{content:'password=x'}}</style></head><body>"
        f"<a href=\"/x?token={S}\" title='apikey={S}'>session={S} &amp; more</a>"
        f'<script>window.templateArgs = {data}\n      window.theme = "light"</script></body></html>'
    )
    masked = masker.mask_document(page, "html")
    assert S not in masked
    assert bundle in masked and ".a{content:'password=x'}" in masked  # code is never touched
    island = masked.split("window.templateArgs = ", 1)[1]
    assert json.JSONDecoder().raw_decode(island)[0]["name"] == '</script><b a="1">password=***'
    assert 'window.theme = "light"</script>' in masked

    rows = [["Type", "Name", "Message"], ["GET", secret_name, f'said "token={S}", then\nleft']]
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows(rows)
    back = list(csv.reader(io.StringIO(masker.mask_document(buf.getvalue(), "csv"), newline="")))
    assert [len(r) for r in back] == [3, 3] and S not in repr(back) and back[1][2].endswith("\nleft")

    svg = f'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><title>key={S} &lt;</title></svg>'
    root = ET.fromstring(masker.mask_document(svg, "svg").split("?>", 1)[1])
    assert root.find("{http://www.w3.org/2000/svg}title").text == "key=*** <"

    doc = json.dumps({"k": secret_name, "list": [f"sig={S}"]}, indent=2) + "\n"
    assert json.loads(masker.mask_document(doc, "json")) == {
        "k": '</script><b a="1">password=***',
        "list": ["sig=***"],
    }

    # A secret key's value, masked by value: its key is what says it is a secret.
    keyed = {"password": S, "n": {"api_key": 12345678, "secret": {"a": 1}, "token": True}}
    expected = {"password": "***", "n": {"api_key": "***", "secret": {"a": 1}, "token": True}}
    assert json.loads(masker.mask_document(json.dumps(keyed), "json")) == expected
    island = masker.mask_document(f"<script>window.templateArgs = {json.dumps(keyed)}</script>", "html")
    assert S not in island and "12345678" not in island


def test_a_numeric_secret_in_a_profile_is_not_echoed(tmp_path: Path) -> None:
    profile = tmp_path / "p.yml"
    profile.write_text(
        "name: p\ndescription: d\nlocustfile: x.py\nusers: 1\nspawn_rate: 1\nrun_time: 1s\n"
        "env:\n  LOADSTACK_JWT_SECRET: 987654321987654\n"
    )
    out = loadstack("profile", "show", str(profile))
    assert out.returncode == 2 and "LOADSTACK_JWT_SECRET" in out.stderr, out.stdout + out.stderr
    assert "987654321987654" not in out.stdout + out.stderr
