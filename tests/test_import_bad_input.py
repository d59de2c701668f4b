"""Malformed HAR and OpenAPI input, generated: every one is exit status 2 with a message naming the
file and the field, never a traceback.

Inputs are generated with hypothesis (derandomized, so a run is repeatable) from a valid document
by putting a wrong value into one field, or as bytes and text that are not documents at all. They go
through the real CLI in-process (``loadstack.cli.main``: an exception would fail the test with its
traceback) and, for a handful, through ``python -m loadstack`` in a subprocess.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadstack.chains.schema import ChainSpec
from loadstack.cli import main
from tests.helpers import loadstack

TRIED: Counter[str] = Counter()
EXAMPLES = 25
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    total = sum(TRIED.values())
    print(f"\nbad import inputs tried: {total} ({', '.join(f'{k} {v}' for k, v in sorted(TRIED.items()))})")


def _cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue() + out.getvalue()


def _refused(kind: str, path: Path, category: str, *expected: str) -> None:
    TRIED[category] += 1
    code, output = _cli("import", kind, str(path), "-o", str(path.with_suffix(".out")))
    assert code == 2, output
    assert "Traceback" not in output
    assert path.name in output, output
    for text in expected:
        assert text in output, (text, output)
    assert not path.with_suffix(".out").exists(), "nothing is written for bad input"


# -- HAR -----------------------------------------------------------------------------------------

REQUEST = {
    "method": "POST",
    "url": "http://127.0.0.1:8000/api/v1/items?a=1",
    "headers": [{"name": "X-Trace", "value": "1"}],
    "cookies": [],
    "postData": {
        "mimeType": "application/x-www-form-urlencoded",
        "text": "a=1",
        "params": [{"name": "a", "value": "1"}],
    },
}
RESPONSE = {"status": 201, "headers": [], "cookies": [], "content": {"mimeType": "application/json"}}
ENTRY = {"startedDateTime": "2026-11-22T04:04:58.000Z", "time": 5, "request": REQUEST, "response": RESPONSE}
BASE_HAR: dict[str, Any] = {
    "log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": [ENTRY]}
}
# Where a wrong value goes, how the message names it, and what is wrong there (values allowed are excluded).
NOT_OBJECT = st.one_of(st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=2), st.booleans())
NOT_LIST = st.one_of(
    st.integers(), st.text(max_size=8), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
NOT_TEXT = st.one_of(
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)
NOT_NUMBER = st.one_of(
    st.booleans(), st.lists(st.integers(), max_size=2), st.text(alphabet="abcxyz!", min_size=1, max_size=8),
    st.floats(max_value=-1.5, allow_nan=False, allow_infinity=False),
)  # fmt: skip
HAR_FIELDS: list[tuple[tuple[Any, ...], str, Any]] = [
    (("log", "entries", 0), "log.entries[0]", st.one_of(st.none(), NOT_OBJECT)),
    (("log", "entries", 0, "request"), "log.entries[0].request", st.one_of(st.none(), NOT_OBJECT)),
    (("log", "entries", 0, "request", "headers"), "log.entries[0].request.headers", NOT_LIST),
    (("log", "entries", 0, "request", "headers", 0), "log.entries[0].request.headers[0]", st.one_of(st.none(), NOT_OBJECT)),
    (("log", "entries", 0, "request", "headers", 0, "name"), "log.entries[0].request.headers[0].name", NOT_TEXT),
    (("log", "entries", 0, "request", "cookies"), "log.entries[0].request.cookies", NOT_LIST),
    (("log", "entries", 0, "request", "method"), "log.entries[0].request.method", st.one_of(st.none(), NOT_TEXT)),
    (("log", "entries", 0, "request", "url"), "log.entries[0].request.url", st.one_of(st.none(), NOT_TEXT)),
    (("log", "entries", 0, "request", "postData"), "log.entries[0].request.postData", NOT_OBJECT),
    (("log", "entries", 0, "request", "postData", "params"), "log.entries[0].request.postData.params", NOT_LIST),
    (("log", "entries", 0, "request", "postData", "params", 0), "log.entries[0].request.postData.params[0]", st.one_of(st.none(), NOT_OBJECT)),
    (("log", "entries", 0, "request", "postData", "text"), "log.entries[0].request.postData.text", NOT_TEXT),
    (("log", "entries", 0, "time"), "log.entries[0].time", NOT_NUMBER),
    (("log", "entries", 0, "response"), "log.entries[0].response", NOT_OBJECT),
    (("log", "entries", 0, "response", "status"), "log.entries[0].response.status",
     st.one_of(NOT_NUMBER, st.integers(min_value=1000), st.integers(max_value=-2))),
    (("log", "entries", 0, "response", "headers"), "log.entries[0].response.headers", NOT_LIST),
    (("log", "entries", 0, "response", "content"), "log.entries[0].response.content", NOT_OBJECT),
    (("log", "creator"), "log.creator", NOT_OBJECT),
    (("log", "entries"), "log.entries", st.one_of(st.none(), NOT_LIST)),
    (("log",), "log", st.one_of(st.none(), NOT_OBJECT)),
    (("log", "version"), "log.version", st.sampled_from(["0.9", "2.0", "1.3", "banana"])),
]  # fmt: skip


def _put(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@SETTINGS
@given(field=st.sampled_from(HAR_FIELDS), data=st.data())
def test_har_field_of_the_wrong_type_is_named(
    tmp_path_factory: pytest.TempPathFactory, field: Any, data: Any
) -> None:
    path, name, wrong = field
    value = data.draw(wrong)
    doc = _put(BASE_HAR, path, value)
    source = tmp_path_factory.mktemp("har") / "bad.har"
    source.write_text(json.dumps(doc))
    _refused("har", source, "HAR wrong field type", name)


@SETTINGS
@given(raw=st.one_of(
    st.binary(min_size=1, max_size=64).filter(lambda b: not _utf8(b)),
    st.text(min_size=1, max_size=40).filter(lambda t: not _json(t)).map(str.encode),
    st.sampled_from([b'{"log": {"entries": [', b"[" * 50000, b'{"log": {"entries": [{"request": {"method": "GET", "url": "http://h/' + b"\xff" + b'"}}]}}']),
))  # fmt: skip
def test_har_that_is_not_utf8_json_is_refused(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    source = tmp_path_factory.mktemp("raw") / "junk.har"
    source.write_bytes(raw)
    expected = "not UTF-8 text (byte offset" if not _utf8(raw) else ""
    _refused("har", source, "HAR not UTF-8 JSON", expected)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return True


def _json(text: str) -> bool:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("log"), dict)


def test_har_size_cap_and_structure_are_named(tmp_path: Path) -> None:
    big = tmp_path / "big.har"
    big.write_text(json.dumps(BASE_HAR) + " " * (2 * 1024 * 1024))
    TRIED["HAR absurd size"] += 1
    code, output = _cli("import", "har", str(big), "--max-input-mb", "1")
    assert code == 2 and "more than the 1 MB limit (raise it with --max-input-mb)" in output, output
    many = copy.deepcopy(BASE_HAR)
    many["log"]["entries"] = [BASE_HAR["log"]["entries"][0]] * 5001
    (tmp_path / "many.har").write_text(json.dumps(many))
    _refused("har", tmp_path / "many.har", "HAR absurd size", "5001 calls kept", "--include/--exclude")


# -- OpenAPI ---------------------------------------------------------------------------------------

BASE_OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Shop", "version": "1"},
    "paths": {
        "/carts": {
            "parameters": [{"name": "tenant", "in": "query", "required": True, "schema": {"type": "string"}}],
            "post": {
                "parameters": [
                    {"name": "trace", "in": "header", "required": True, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Cart"}}}
                },
                "responses": {"201": {"description": "created"}},
            },
        }
    },
    "components": {
        "schemas": {
            "Cart": {
                "type": "object",
                "required": ["code", "items", "count"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[A-Z]{2}$", "minLength": 2},
                    "items": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
                    "count": {"type": "integer", "maximum": 9},
                },
            }
        }
    },
}
CART = ("components", "schemas", "Cart")
OPENAPI_FIELDS: list[tuple[tuple[Any, ...], str, Any]] = [
    (("paths",), "paths", st.one_of(st.none(), NOT_OBJECT)),
    (("paths", "/carts"), "paths./carts", st.one_of(st.none(), NOT_OBJECT)),
    (("paths", "/carts", "post"), "paths./carts.post", st.one_of(st.none(), NOT_OBJECT)),
    (("paths", "/carts", "parameters"), "paths./carts.parameters", NOT_LIST),
    (("paths", "/carts", "parameters", 0), "paths./carts.parameters[0]", st.one_of(st.none(), NOT_OBJECT)),
    (("paths", "/carts", "post", "parameters"), "paths./carts.post.parameters", NOT_LIST),
    (("paths", "/carts", "post", "parameters", 0, "name"), "paths./carts.post.parameters[0].name", NOT_TEXT),
    (("paths", "/carts", "post", "requestBody"), "paths./carts.post.requestBody", NOT_OBJECT),
    (("paths", "/carts", "post", "requestBody", "content"), "paths./carts.post.requestBody.content", NOT_OBJECT),
    (("paths", "/carts", "post", "responses"), "paths./carts.post.responses", NOT_OBJECT),
    (("info",), "info", NOT_OBJECT),
    ((*CART, "properties"), "schema.properties", NOT_OBJECT),
    ((*CART, "required"), "schema.required", NOT_LIST),
    ((*CART, "properties", "code", "minLength"), "code.minLength",
     st.one_of(NOT_NUMBER, st.integers(min_value=70000, max_value=10**15))),
    ((*CART, "properties", "code", "pattern"), "code.pattern", st.sampled_from(["((", "[z-a]", "(?P<x", "a{99999999}"])),
    ((*CART, "properties", "items", "minItems"), "items.minItems",
     st.one_of(NOT_NUMBER, st.integers(min_value=101, max_value=10**12))),
    ((*CART, "properties", "count", "maximum"), "count.maximum", NOT_NUMBER.filter(lambda v: not isinstance(v, float))),
    ((*CART, "properties", "count", "type"), "count.type", st.text(alphabet="qwxyz", min_size=1, max_size=6)),
    ((*CART, "properties", "count"), "properties.count",
     st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2), st.just(False))),
    ((*CART, "properties", "items", "items"), "items.items", st.sampled_from([{"$ref": "#/nowhere"}, {"$ref": "http://x/y"}])),
    (("paths", "/carts", "post", "requestBody", "content", "application/json", "schema"), "schema",
     st.sampled_from([{"$ref": "#/components/schemas/A"}])),
]  # fmt: skip
LOOP = {"A": {"$ref": "#/components/schemas/B"}, "B": {"$ref": "#/components/schemas/A"}}


@SETTINGS
@given(field=st.sampled_from(OPENAPI_FIELDS), data=st.data())
def test_openapi_field_of_the_wrong_type_is_named(
    tmp_path_factory: pytest.TempPathFactory, field: Any, data: Any
) -> None:
    path, name, wrong = field
    doc = _put(BASE_OPENAPI, path, data.draw(wrong))
    doc["components"]["schemas"].update(LOOP)
    source = tmp_path_factory.mktemp("oa") / "bad.json"
    source.write_text(json.dumps(doc))
    _refused("openapi", source, "OpenAPI wrong field type", name)


@SETTINGS
@given(raw=st.one_of(
    st.binary(min_size=1, max_size=64).filter(lambda b: not _utf8(b)),
    st.sampled_from([
        b"openapi: 3.0.0\npaths: " + b"[" * 3000 + b"]" * 3000,
        b'{"openapi": "3.0.0", "paths": ' + b"[" * 100000 + b"]" * 100000 + b"}",
        b"a: [",
        b"swagger: '2.0'\npaths: {}",
        b"openapi: 3.0.0\npaths: {}",
        b"- just\n- a list\n",
    ]),
    st.integers(min_value=4, max_value=9).map(lambda n: _alias_bomb(n)),
))  # fmt: skip
def test_openapi_that_is_not_a_usable_document_is_refused(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    source = tmp_path_factory.mktemp("oaraw") / "junk.yml"
    source.write_bytes(raw)
    _refused("openapi", source, "OpenAPI not a usable document")


def _alias_bomb(width: int) -> bytes:
    """YAML whose aliases expand to width**8 values (a 'billion laughs' document)."""
    lines = ["openapi: 3.0.0", "info: {title: t}", f"l0: &l0 [{', '.join(['x'] * width)}]"]
    for level in range(1, 8):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    lines.append("paths: {/a: {get: {parameters: *l7}}}")
    return "\n".join(lines).encode()


# -- the same through a real process ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "content", "expected"),
    [
        ("har", "null-entry.har", '{"log": {"version": "1.2", "entries": [null]}}', "log.entries[0]: expected an object"),
        ("har", "headers.har", json.dumps(_put(BASE_HAR, ("log", "entries", 0, "request", "headers"), {"a": "b"})),
         "log.entries[0].request.headers: expected a list"),
        ("har", "time.har", json.dumps(_put(BASE_HAR, ("log", "entries", 0, "time"), "soon")),
         "log.entries[0].time: expected a number"),
        ("har", "binary.har", "\udcff\udcfe\x00", "not UTF-8 text (byte offset 0"),
        ("openapi", "paths.json", json.dumps({**BASE_OPENAPI, "paths": []}), "paths: expected an object, got a list"),
        ("openapi", "no-methods.json", json.dumps({**BASE_OPENAPI, "paths": {"/a": {"options": {}, "head": {}, "trace": {}}}}),
         "nothing to import: no GET, POST, PUT, PATCH, DELETE operation"),
        ("openapi", "loop.json", json.dumps(_put(BASE_OPENAPI, ("components", "schemas"), LOOP | {"Cart": {"$ref": "#/components/schemas/A"}})),
         "loops"),
    ],
)  # fmt: skip
def test_bad_input_in_a_real_process(
    tmp_path: Path, kind: str, name: str, content: str, expected: str
) -> None:
    TRIED[f"{kind} subprocess"] += 1
    source = tmp_path / name
    source.write_bytes(content.encode("utf-8", "surrogateescape"))
    result = loadstack("import", kind, str(source), "-o", str(tmp_path / "out.yml"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert expected in result.stderr and name in result.stderr, result.stderr


# -- well-formed but odd: whatever the content, an import ends in a file or a clean refusal ---------

ODD_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["{{ x }}", "{% raw %}", "a\r\nb", "\x00", "\u2028", "../../x", "'''\"\"\"", "%ZZ", "é"]),
)
ODD_HEADERS = st.lists(st.fixed_dictionaries({"name": ODD_TEXT, "value": ODD_TEXT}), max_size=3)
MULTIPART_TEXT = '--b\r\nContent-Disposition: form-data; name="f"; filename="{{x}}"\r\n\r\n\x00\r\n--b--'
ODD_POST = st.fixed_dictionaries(
    {
        "mimeType": st.sampled_from(
            ["application/json", "multipart/form-data; boundary=b", "", "text/plain",
             "application/x-www-form-urlencoded", "application/octet-stream"]
        ),
        "text": st.one_of(ODD_TEXT, st.just(MULTIPART_TEXT)),
    }
)  # fmt: skip
ODD_URL = st.one_of(
    st.builds(lambda p: "http://127.0.0.1:8000/" + p, ODD_TEXT),
    st.sampled_from(["http://[::1", "ftp://x/y", "http://", "data:,x", "http://127.0.0.1:8000//evil"]),
)
ODD_ENTRY = st.fixed_dictionaries(
    {
        "startedDateTime": st.one_of(st.just("2026-11-22T04:04:58.000Z"), ODD_TEXT),
        "time": st.one_of(st.none(), st.floats(min_value=-1, max_value=1e12, allow_nan=False)),
        "request": st.fixed_dictionaries(
            {
                "method": st.sampled_from(["GET", "POST", "PUT", "get", "", "BREW", "GE T"]),
                "url": ODD_URL,
                "headers": ODD_HEADERS,
                "postData": st.one_of(st.none(), ODD_POST),
            }
        ),
        "response": st.fixed_dictionaries(
            {
                "status": st.integers(min_value=-1, max_value=999),
                "headers": ODD_HEADERS,
                "content": st.fixed_dictionaries(
                    {"mimeType": st.sampled_from(["application/json", "text/html", ""]), "text": ODD_TEXT}
                ),
            }
        ),
    }
)


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(entries=st.lists(ODD_ENTRY, min_size=1, max_size=4), creator=ODD_TEXT)
def test_odd_content_imports_or_is_refused_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, entries: list[dict[str, Any]], creator: str
) -> None:
    folder = tmp_path_factory.mktemp("odd")
    source = folder / "odd.har"
    source.write_text(
        json.dumps({"log": {"version": "1.2", "creator": {"name": creator}, "entries": entries}})
    )
    for fmt, name in (("chain", "odd.yml"), ("locustfile", "odd_users.py")):
        code, output = _cli(
            "import", "har", str(source), "--format", fmt, "-o", str(folder / name), "--keep-static"
        )
        assert code in (0, 2), output
        TRIED[f"HAR odd content: {fmt} {'written' if code == 0 else 'refused'}"] += 1
        if code == 2:
            assert "odd.har" in output and "Traceback" not in output
            return
        text = (folder / name).read_text()
        if fmt == "chain":
            ChainSpec.model_validate(yaml.safe_load(text))  # the chain schema (no Locust import needed)
        else:
            compile(text, name, "exec")


SCALAR_SCHEMA = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["string", "integer", "number", "boolean", "null", ["string", "null"]]),
        "format": st.sampled_from(["email", "password", "uuid", "date-time", "binary", "weird"]),
        "minimum": st.one_of(st.integers(-5, 5), st.floats(-1e6, 1e6)),
        "maximum": st.one_of(st.integers(-5, 5), st.floats(-1e6, 1e6)),
        "exclusiveMinimum": st.one_of(st.booleans(), st.integers(-5, 5)),
        "multipleOf": st.sampled_from([0.5, 3, 0.001]),
        "minLength": st.integers(0, 300),
        "maxLength": st.integers(0, 300),
        "pattern": st.sampled_from(["^[a-z]+$", "^\\d{3}-\\d{2}$", "(a|b)*c", "^$", "[^\\s]+@x\\.y"]),
        "enum": st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=5)), max_size=3),
        "example": st.one_of(st.text(max_size=5), st.integers()),
    },
)
ODD_SCHEMA = st.recursive(
    SCALAR_SCHEMA,
    lambda inner: st.one_of(
        st.builds(lambda props, req: {"type": "object", "properties": props, "required": req},
                  st.dictionaries(st.sampled_from(["id", "email", "password", "name", "file", "x y", "{{a}}"]), inner, max_size=4),
                  st.lists(st.sampled_from(["id", "email", "password", "name", "file", "missing"]), max_size=3)),
        st.builds(lambda items, n: {"type": "array", "items": items, "minItems": n}, inner, st.integers(0, 3)),
        st.builds(lambda a, b: {"allOf": [a, b]}, inner, inner),
        st.builds(lambda a, b: {"oneOf": [a, b]}, inner, inner),
    ),
    max_leaves=12,
)  # fmt: skip


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    schema=ODD_SCHEMA,
    mime=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "multipart/form-data"]),
)
def test_odd_openapi_schemas_import_or_are_refused_never_crash(
    tmp_path_factory: pytest.TempPathFactory, schema: dict[str, Any], mime: str
) -> None:
    folder = tmp_path_factory.mktemp("oddoa")
    doc = {
        "openapi": "3.1.0", "info": {"title": "odd"},
        "paths": {"/things": {"post": {"requestBody": {"content": {mime: {"schema": schema}}},
                                       "responses": {"201": {"description": "ok"}}}},
                  "/things/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "required": True,
                                                           "schema": schema}]}}},
    }  # fmt: skip
    source = folder / "odd.json"
    source.write_text(json.dumps(doc))
    for fmt, name in (("chain", "odd.yml"), ("locustfile", "odd_users.py")):
        code, output = _cli("import", "openapi", str(source), "--format", fmt, "-o", str(folder / name))
        assert code in (0, 2), output
        TRIED[f"OpenAPI odd schema: {fmt} {'written' if code == 0 else 'refused'}"] += 1
        if code == 2:
            assert "odd.json" in output and "Traceback" not in output
            return
        text = (folder / name).read_text()
        if fmt == "chain":
            ChainSpec.model_validate(yaml.safe_load(text))  # the chain schema (no Locust import needed)
        else:
            compile(text, name, "exec")


# -- recorded and documented secrets never reach generated files (issue 27, finding 9) -------------

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsdC1zZWNyZXQtdXNlciJ9.Q2FuYXJ5U2lnbmF0dXJlVmFsdWU"


def _har_entry(
    method: str, url: str, headers: dict[str, str], mime: str | None = None, text: str | None = None
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "method": method, "url": url, "headers": [{"name": k, "value": v} for k, v in headers.items()], "cookies": [],
    }  # fmt: skip
    if mime is not None:
        request["postData"] = {"mimeType": mime, "text": text}
    response = {
        "status": 200,
        "headers": [],
        "cookies": [],
        "content": {"mimeType": "application/json", "text": "{}"},
    }
    return {
        "startedDateTime": "2026-11-22T04:04:58.000Z",
        "time": 5,
        "request": request,
        "response": response,
    }


def _har_case(case: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """(HAR, the secrets that must not appear, recorded text around them that must stay)."""
    url = "http://127.0.0.1:8000"
    if case == "text_plain_body":
        entry = _har_entry(
            "POST", f"{url}/api/v1/notes", {}, "text/plain", "ticket: password=Canary-Pw-0001 please"
        )
        return {"log": {"entries": [entry]}}, ["Canary-Pw-0001"], ["ticket: password=", "please"]
    if case == "graphql_json_string":
        query = 'mutation { login(email: "a@b.test", password: "Canary-Pw-0002") { token } }'
        entry = _har_entry("POST", f"{url}/graphql", {}, "application/json", json.dumps({"query": query}))
        return {"log": {"entries": [entry]}}, ["Canary-Pw-0002"], ["mutation { login(", ") { token } }"]
    if case == "jwt_in_a_plain_header":
        entry = _har_entry("GET", f"{url}/api/v1/things", {"X-Debug-Context": f"bearer {JWT}"})
        return {"log": {"entries": [entry]}}, [JWT, JWT.split(".")[2]], ["X-Debug-Context"]
    if case == "jwt_in_the_path":
        entry = _har_entry("GET", f"{url}/api/v1/reset/{JWT}", {})
        return {"log": {"entries": [entry]}}, [JWT, JWT.split(".")[2]], ["/api/v1/reset/"]
    if case == "dsn_in_a_query_value":
        entry = _har_entry("GET", f"{url}/api/v1/check?target=postgresql://app:Canary-Pw-0005@db/app", {})
        return {"log": {"entries": [entry]}}, ["Canary-Pw-0005"], ["target"]
    if case == "password_in_a_large_text_body":  # over 64 KB: written to files/, masked there
        text = "x" * 70_000 + " password=Canary-Pw-0006 " + "y" * 10
        entry = _har_entry("POST", f"{url}/api/v1/bulk", {}, "text/plain", text)
        return {"log": {"entries": [entry]}}, ["Canary-Pw-0006"], ["files/"]  # masked in the file
    raise AssertionError(case)


def _openapi_case(case: str) -> tuple[dict[str, Any], list[str], list[str]]:
    ok = {"200": {"description": "ok"}}
    doc: dict[str, Any] = {"openapi": "3.0.3", "info": {"title": "Keys", "version": "1"}, "paths": {}}
    if case == "api_key_parameter_example":
        param = {
            "name": "api_key",
            "in": "query",
            "required": True,
            "schema": {"type": "string"},
            "example": "Canary-Key-0101",
        }
        doc["paths"]["/things"] = {"get": {"parameters": [param], "responses": ok}}
        return doc, ["Canary-Key-0101"], ["/things"]
    if case == "x_api_key_header_example":
        param = {
            "name": "X-API-Key",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "example": "Canary-Key-0102"},
        }
        doc["paths"]["/things"] = {"get": {"parameters": [param], "responses": ok}}
        return doc, ["Canary-Key-0102"], ["X-API-Key"]
    if case == "password_in_a_body_example":
        media = {"schema": {"type": "object"}, "example": {"email": "a@b.test", "password": "Canary-Pw-0103"}}
        doc["paths"]["/login"] = {
            "post": {"requestBody": {"content": {"application/json": media}}, "responses": ok}
        }
        return doc, ["Canary-Pw-0103"], ["a@b.test"]
    if case == "password_in_a_form_schema_example":
        schema = {"type": "object", "required": ["user", "password"],
                  "properties": {"user": {"type": "string"}, "password": {"type": "string", "example": "Canary-Pw-0104"}}}  # fmt: skip
        media = {"application/x-www-form-urlencoded": {"schema": schema}}
        doc["paths"]["/login"] = {"post": {"requestBody": {"content": media}, "responses": ok}}
        return doc, ["Canary-Pw-0104"], ["/login"]
    if case == "token_inside_a_text_example":
        param = {
            "name": "note",
            "in": "query",
            "required": True,
            "schema": {"type": "string"},
            "example": "token=Canary-Tok-0105",
        }
        doc["paths"]["/things"] = {"get": {"parameters": [param], "responses": ok}}
        return doc, ["Canary-Tok-0105"], ["note"]
    raise AssertionError(case)


SECRET_CASES = [
    *(("har", c) for c in ("text_plain_body", "graphql_json_string", "jwt_in_a_plain_header", "jwt_in_the_path",
                           "dsn_in_a_query_value", "password_in_a_large_text_body")),
    *(("openapi", c) for c in ("api_key_parameter_example", "x_api_key_header_example", "password_in_a_body_example",
                               "password_in_a_form_schema_example", "token_inside_a_text_example")),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "case"), SECRET_CASES, ids=[c for _, c in SECRET_CASES])
def test_secrets_never_reach_generated_files(tmp_path: Path, kind: str, case: str) -> None:
    """Whatever the masker calls a secret is read from the environment in the chain and the locustfile
    (a {{ env.X }} reference / secret('X')), never written: not in the files, not in files/, not on the
    console.  The text around it is kept as recorded."""
    doc, secrets, kept = _har_case(case) if kind == "har" else _openapi_case(case)
    source = tmp_path / ("in.har" if kind == "har" else "in.json")
    source.write_text(json.dumps(doc))
    for fmt, name in (("chain", "out.yml"), ("locustfile", "out_users.py")):
        result = loadstack(
            "import", kind, str(source), "--format", fmt, "-o", str(tmp_path / name), "--force"
        )
        assert result.returncode == 0, result.stderr
        text = (tmp_path / name).read_text()
        written = [text, result.stdout, result.stderr]
        written += [
            p.read_bytes().decode("utf-8", "replace") for p in tmp_path.rglob("files/**/*") if p.is_file()
        ]
        for secret in secrets:
            assert not any(secret in w for w in written), (secret, fmt, text)
        for literal in kept:  # YAML may fold a long line where the text had a space
            assert literal in " ".join(text.split()), (literal, text)
        if case == "password_in_a_large_text_body":  # a file cannot read the environment: masked, and said
            assert "secrets in file bodies were masked" in result.stderr, result.stderr
            continue
        assert ("{{ env." if fmt == "chain" else "secret('") in text, text
        assert "environment variables" in result.stderr, result.stderr
        if fmt == "chain":
            ChainSpec.model_validate(yaml.safe_load(text))
        else:
            compile(text, name, "exec")
