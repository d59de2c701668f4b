"""Render a scenario as a plain locustfile: a loadstack ``HttpUser`` that Locust users can read and edit.

Two shapes: ``session`` replays the calls in order as one task (a recorded
browser session); ``tasks`` makes every call its own weighted ``@task``
(an API surface from OpenAPI), with the calls that create ids run once in
``on_start`` so the others have something to refer to.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from loadstack.importers.model import Call, Generated, Ref, Scenario, Text

GENERATED_CODE = {
    "email": 'f"lt-{run_id}-{uuid.uuid4().hex[:12]}@example.test"',
    "secret": 'f"pw-{uuid.uuid4()}"',
    "uuid": "str(uuid.uuid4())",
}


def py(value: Any) -> str:
    """Python source for a JSON-like value; refs read the ``v`` dict of variables."""
    if isinstance(value, Ref):
        return f"v[{value.var!r}]"
    if isinstance(value, Text):
        return " + ".join(f"str(v[{p.var!r}])" if isinstance(p, Ref) else repr(p) for p in value.parts)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {py(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(py(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(py(v) + ", " for v in value).rstrip(" ") + ")"
    return repr(value)


def _url(call: Call) -> str:
    parts: list[str] = []
    literal = ""
    for segment in call.path:
        literal += "/"
        if isinstance(segment, Ref):
            parts += [repr(literal), f"str(v[{segment.var!r}])"]
            literal = ""
        else:
            literal += segment
    if not call.path:
        literal = "/"
    if literal:
        parts.append(repr(literal))
    if call.query:
        parts += [repr("?"), f"urlencode({py(call.query)})"]
    return " + ".join(parts)


def _request(call: Call, indent: str) -> list[str]:
    args = [repr(call.method), _url(call), f"name={call.name!r}"]
    headers = dict(call.headers)
    if call.json is not None:
        args.append(f"json={py(call.json)}")
    elif call.form is not None:
        args.append(f"data=urlencode({py(call.form)})")
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif call.body is not None:
        args.append(f"data={call.body!r}")
        headers["Content-Type"] = call.content_type or "text/plain"
    if headers:
        args.append(f"headers={py(headers)}")
    args.append("catch_response=True")
    statuses = tuple(sorted(set(call.expect_status)))
    lines = [f"{indent}with self.client.request({', '.join(args)}) as resp:"]
    inner = indent + "    "
    lines += [
        f"{inner}if resp.status_code not in {statuses!r}:",
        f'{inner}    resp.failure(f"expected {" or ".join(map(str, statuses))}, got {{resp.status_code}}")',
        f"{inner}    return",
    ]
    for cap in call.captures:
        if cap.json is not None:
            source = "resp.json()" + "".join(f"[{k!r}]" for k in cap.json)
        else:
            source = f"resp.headers[{cap.header!r}]"
        lines += [
            f"{inner}try:",
            f"{inner}    v[{cap.var!r}] = {source}",
            f"{inner}except (ValueError, KeyError, IndexError, TypeError) as exc:",
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
    return out + "User"


def _method_name(step: str) -> str:
    name = re.sub(r"\W", "_", step)
    return name + "_" if keyword.iskeyword(name) else name


def _generated_lines(generated: dict[str, Generated], indent: str) -> list[str]:
    return [f"{indent}    {name!r}: {GENERATED_CODE[g.kind]}," for name, g in generated.items()]


def render(scenario: Scenario, header: str, *, style: str = "session") -> str:
    uses_query = any(c.query or c.form is not None for c in scenario.calls)
    thinks = any(c.think_before > 0 for c in scenario.calls)
    lines = [
        '"""' + header.strip().replace('"""', "'''") + '\n"""',
        "",
        "from __future__ import annotations",
        "",
    ]
    if scenario.generated:
        lines.append("import uuid")
    if uses_query:
        lines.append("from urllib.parse import urlencode")
    lines.append("")
    if thinks and style == "session":
        lines.append("import gevent")
    lines += ["from locust import between, task", ""]
    if scenario.generated:
        lines.append("from loadstack import runcontext")
    lines += ["from loadstack.users.http import HttpUser", "", ""]
    lines += [f"class {_class_name(scenario.name)}(HttpUser):", f'    """{scenario.description}"""', ""]
    lines += ["    wait_time = between(1, 3)", ""]
    if style == "session":
        lines += _session(scenario)
    else:
        lines += _tasks(scenario)
    return "\n".join(lines).rstrip() + "\n"


def _fresh_vars(scenario: Scenario, indent: str) -> list[str]:
    if not scenario.generated:
        return [f"{indent}v: dict = {{}}"]
    return [
        f"{indent}run_id = runcontext.current().run_id",
        f"{indent}v: dict = {{",
        *_generated_lines(scenario.generated, indent),
        f"{indent}}}",
    ]


def _session(scenario: Scenario) -> list[str]:
    lines = ["    @task", "    def session(self) -> None:"]
    lines += _fresh_vars(scenario, "        ")
    for call in scenario.calls:
        if call.think_before > 0:
            lines.append(f"        gevent.sleep({call.think_before:g})  # recorded think time")
        lines += _request(call, "        ")
    return lines


def _tasks(scenario: Scenario) -> list[str]:
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
        lines += [*_request(call, "        "), ""]
    return lines
