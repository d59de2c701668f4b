"""Render a scenario as a plain locustfile: a loadstack ``HttpUser`` that Locust users can read and edit.

Two shapes: ``session`` replays the calls in order as one task (a recorded
browser session); ``tasks`` makes every call its own weighted ``@task``
(an API surface from OpenAPI), with the calls that create ids run once in
``on_start`` so the others have something to refer to.

Generated code is data-safe: every recorded string reaches the file through
``repr()`` (or :func:`docstring`, which falls back to ``repr()``), names are
reduced to ASCII identifiers, and the result is compiled before it is written.
Recorded secrets are never written: the code calls
:func:`loadstack.replay.secret` with the environment variable to read.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from loadstack.importers import ImportProblem, sensitive
from loadstack.importers.model import Call, Env, Generated, Ref, Scenario, Text

GENERATED_CODE = {
    "email": 'f"lt-{run_id}-{uuid.uuid4().hex[:12]}@example.test"',
    "username": 'f"lt-{run_id}-{uuid.uuid4().hex[:12]}"',
    "secret": 'f"pw-{uuid.uuid4()}"',
    "uuid": "str(uuid.uuid4())",
}


def docstring(text: str) -> str:
    """A triple-quoted literal when ``text`` is plain printable text, else its ``repr()``."""
    plain = all(c.isprintable() or c == "\n" for c in text)
    if plain and "\\" not in text and '"""' not in text and not text.endswith('"'):
        return '"""' + text + '"""'
    return repr(text)


def py(value: Any) -> str:
    """Python source for a JSON-like value; refs read the ``v`` dict of variables."""
    if isinstance(value, Ref):
        return f"v[{value.var!r}]"
    if isinstance(value, Env):
        return f"secret({value.name!r})"
    if isinstance(value, Text):
        return " + ".join(f"str({py(p)})" if isinstance(p, Ref) else py(p) for p in value.parts)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{str(k)!r}: {py(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(py(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(py(v) + ", " for v in value).rstrip(" ") + ")"
    if isinstance(value, float) and value != value:  # NaN has no literal
        return "float('nan')"
    if value in (float("inf"), float("-inf")):
        return f"float({str(value)!r})"
    return repr(value)


def _url(call: Call) -> str:
    parts: list[str] = []
    literal = ""
    for segment in call.path:
        literal += "/"
        if isinstance(segment, Ref | Env):
            parts += [repr(literal), f"quote(str({py(segment)}), safe='')"]
            literal = ""
        else:
            literal += segment
    if not call.path:
        literal = "/"
    elif call.trailing_slash:
        literal += "/"
    if literal:
        parts.append(repr(literal))
    if call.query:
        parts += [repr("?"), f"urlencode({py(call.query)})"]
    return " + ".join(parts)


def _file_constant(index: int) -> str:
    return f"FILE_{index}"


def _request(call: Call, indent: str, files: dict[int, str]) -> list[str]:
    args = [repr(call.method), _url(call), f"name={call.name!r}"]
    headers: dict[str, Any] = dict(call.headers)
    before: list[str] = []
    content_type_code = None
    if call.json is not None:
        args.append(f"json={py(call.json)}")
    elif call.form is not None:
        args.append(f"data=urlencode({py(call.form)})")
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif call.multipart is not None:
        parts = [f"({k!r}, {py(v)})" for k, v in call.multipart.fields]
        parts += [
            f"({f.field!r}, ({f.filename!r}, {files[id(f)]}, {f.content_type!r}))"
            for f in call.multipart.files
        ]
        before.append(f"{indent}body, content_type = encode_multipart_formdata([{', '.join(parts)}])")
        args.append("data=body")
        content_type_code = "content_type"  # with the boundary encode_multipart_formdata chose
    elif call.body_file is not None:
        args.append(f"data={files[id(call.body_file)]}")
        headers["Content-Type"] = call.body_file.content_type
    elif call.body is not None:
        args.append(f"data=({py(call.body)}).encode('utf-8')")
        headers["Content-Type"] = call.content_type or "text/plain; charset=utf-8"
    items = [f"{str(k)!r}: {py(v)}" for k, v in headers.items()]
    if content_type_code:
        items.append(f"'Content-Type': {content_type_code}")
    if items:
        args.append("headers={" + ", ".join(items) + "}")
    args.append("catch_response=True")
    statuses = tuple(sorted(set(call.expect_status)))
    lines = [*before, f"{indent}with self.client.request({', '.join(args)}) as resp:"]
    inner = indent + "    "
    if statuses:
        lines += [
            f"{inner}if resp.status_code not in {statuses!r}:",
            f'{inner}    resp.failure(f"expected {" or ".join(map(str, statuses))}, got {{resp.status_code}}")',
            f"{inner}    return",
        ]
    else:
        lines += [
            f"{inner}if not 100 <= resp.status_code < 400:",
            f'{inner}    resp.failure(f"expected a 2xx/3xx status, got {{resp.status_code}}")',
            f"{inner}    return",
        ]
    for cap in call.captures:
        if cap.json is not None:
            source = "resp.json()" + "".join(f"[{k!r}]" for k in cap.json)
        elif cap.html_input is not None:
            source = f"html_input(resp, {cap.html_input!r})"
        elif cap.cookie is not None:
            source = f"cookie(resp, {cap.cookie!r})"
        else:
            source = f"resp.headers[{cap.header!r}]"
        lines += [
            f"{inner}try:",
            f"{inner}    v[{cap.var!r}] = {source}",
            f"{inner}except (ValueError, LookupError, TypeError) as exc:",
            f'{inner}    resp.failure(f"save {cap.var}: {{exc!r}}")',
            f"{inner}    return",
        ]
    if any(s >= 400 for s in statuses):
        lines.append(f"{inner}resp.success()  # a documented answer, though an error status")
    return lines


def _class_name(name: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", name)
    out = "".join(w[:1].upper() + w[1:] for w in words if w) or "Imported"
    if out[0].isdigit():
        out = "Imported" + out
    return out[:80] + "User"


def _method_name(step: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", step) or "call"
    if name[0].isdigit():
        name = "call_" + name
    return name + "_" if keyword.iskeyword(name) else name


def _generated_lines(generated: dict[str, Generated], indent: str) -> list[str]:
    return [f"{indent}    {name!r}: {GENERATED_CODE[g.kind]}," for name, g in generated.items()]


def render(scenario: Scenario, header: str, *, style: str = "session") -> str:
    calls = scenario.calls
    uses_query = any(c.query or c.form is not None for c in calls)
    uses_quote = any(isinstance(s, Ref | Env) for c in calls for s in c.path)
    thinks = any(c.think_before > 0 for c in calls)
    multipart = any(c.multipart is not None for c in calls)
    files = {id(f): _file_constant(i) for i, f in enumerate(scenario.files(), 1)}
    captures = {k for c in calls for cap in c.captures for k in ("html_input", "cookie") if getattr(cap, k)}
    replay_names = sorted(captures | ({"secret"} if scenario.secrets else set()))
    mask = sensitive.masker()  # the header quotes the source (a URL may hold a password)
    notes = [*map(mask, header.strip().splitlines()), *_usage(scenario)]
    lines = [docstring("\n".join(notes) + "\n"), "", "from __future__ import annotations", ""]
    if scenario.generated:
        lines.append("import uuid")
    if files:
        lines.append("from pathlib import Path")
    if uses_query or uses_quote:
        names = ", ".join(n for n, used in (("quote", uses_quote), ("urlencode", uses_query)) if used)
        lines.append(f"from urllib.parse import {names}")
    lines.append("")
    if thinks and style == "session":
        lines.append("import gevent")
    lines.append("from locust import between, task")
    if multipart:
        lines.append("from urllib3 import encode_multipart_formdata")
    lines.append("")
    if scenario.generated:
        lines.append("from loadstack import runcontext")
    if replay_names:
        lines.append(f"from loadstack.replay import {', '.join(replay_names)}")
    lines += ["from loadstack.users.http import HttpUser", ""]
    if files:
        lines += ["HERE = Path(__file__).resolve().parent"]
        for f in scenario.files():
            lines.append(f"{files[id(f)]} = (HERE / {f.path!r}).read_bytes()")
        lines.append("")
    lines += [
        "",
        f"class {_class_name(scenario.name)}(HttpUser):",
        f"    {docstring(scenario.description)}",
        "",
    ]
    lines += ["    wait_time = between(1, 3)", ""]
    if style == "session":
        lines += _session(scenario, files)
    else:
        lines += _tasks(scenario, files)
    text = "\n".join(lines).rstrip() + "\n"
    try:
        compile(text, "<generated locustfile>", "exec")
    except (SyntaxError, ValueError) as exc:  # a bug in this writer, never in the input
        raise ImportProblem(f"generated locustfile does not compile ({exc}); please report this") from None
    return text


def _usage(scenario: Scenario) -> list[str]:
    lines = scenario.secrets_to_set()
    if scenario.keeps_recorded_login():
        lines += [
            "The login uses a recorded account (HAR_USERNAME / HAR_PASSWORD). To sign up a fresh user",
            'per iteration instead, add a sign-up call and use f"lt-{uuid.uuid4().hex}@example.test" and',
            'f"pw-{uuid.uuid4()}" in place of both secret() calls.',
        ]
    return lines


def _fresh_vars(scenario: Scenario, indent: str) -> list[str]:
    if not scenario.generated:
        return [f"{indent}v: dict = {{}}"]
    return [
        f"{indent}run_id = runcontext.current().run_id",
        f"{indent}v: dict = {{",
        *_generated_lines(scenario.generated, indent),
        f"{indent}}}",
    ]


def _session(scenario: Scenario, files: dict[int, str]) -> list[str]:
    lines = ["    @task", "    def session(self) -> None:"]
    lines += _fresh_vars(scenario, "        ")
    for call in scenario.calls:
        if call.think_before > 0:
            lines.append(f"        gevent.sleep({call.think_before:g})  # recorded think time")
        lines += _request(call, "        ", files)
    return lines


def _tasks(scenario: Scenario, files: dict[int, str]) -> list[str]:
    producers = [c for c in scenario.calls if c.captures]
    lines = ["    def on_start(self) -> None:"]
    lines += _fresh_vars(scenario, "        ")
    lines += ["        self.v = v", *[f"        self.{_method_name(c.step)}()" for c in producers], ""]
    for call in scenario.calls:
        needed = sorted(call.refs() - set(scenario.generated))
        lines += [
            f"    @task({call.weight})",
            f"    def {_method_name(call.step)}(self) -> None:",
            "        v = self.v",
        ]
        if needed:
            lines += [
                f"        if not all(k in v for k in {tuple(needed)!r}):",
                "            return  # a call that creates these has not succeeded yet",
            ]
        lines += [*_request(call, "        ", files), ""]
    return lines
