"""Render a scenario as a chain file (``load-testing/chains/*.yml``) that the chains engine runs."""

from __future__ import annotations

import urllib.parse
from typing import Any

import yaml

from loadstack.importers.model import Call, Generated, Ref, Scenario, Text

# Per-iteration values: unique across users, iterations and runs, repeatable for one seed.
GENERATED_TEMPLATES = {
    "email": "lt-{{ run_id }}-{{ user.index }}-{{ faker.uuid4()[:8] }}@example.test",
    "secret": "pw-{{ faker.uuid4() }}",
    "uuid": "{{ faker.uuid4() }}",
}


def _ref(ref: Ref, *, encode: bool = False) -> str:
    return f"{{{{ vars.{ref.var}{' | urlencode' if encode else ''} }}}}"


def template(value: Any, *, encode: bool = False) -> Any:
    """A JSON-like value with refs as ``{{ vars.x }}`` (a lone ref keeps its type when rendered)."""
    if isinstance(value, Ref):
        return _ref(value, encode=encode)
    if isinstance(value, Text):
        out = ""
        for part in value.parts:
            if isinstance(part, Ref):
                out += _ref(part, encode=encode)
            else:
                out += _escape(urllib.parse.quote(part, safe="/:@,;=+ ") if encode else part)
        return out
    if isinstance(value, dict):
        return {k: template(v, encode=encode) for k, v in value.items()}
    if isinstance(value, list):
        return [template(v, encode=encode) for v in value]
    if isinstance(value, str):
        return _escape(value)
    return value


def _escape(text: str) -> str:
    """Literal text that happens to contain ``{{`` must not become a template."""
    if "{{" in text or "{%" in text:
        return "{% raw %}" + text + "{% endraw %}"
    return text


def _encoded_pairs(pairs: list[tuple[str, Any]]) -> str:
    out = []
    for key, value in pairs:
        rendered = _ref(value, encode=True) if isinstance(value, Ref) else urllib.parse.quote_plus(str(value))
        out.append(f"{urllib.parse.quote_plus(key)}={rendered}")
    return "&".join(out)


def path_of(call: Call) -> str:
    path = "/" + "/".join(_ref(s, encode=True) if isinstance(s, Ref) else s for s in call.path)
    if call.query:
        path += "?" + _encoded_pairs(call.query)
    return path


def step_of(call: Call) -> dict[str, Any]:
    http: dict[str, Any] = {"method": call.method, "path": path_of(call)}
    headers = {k: template(v) for k, v in call.headers.items()}
    if call.json is not None:
        http["json"] = template(call.json)
    elif call.form is not None:
        http["body"] = _encoded_pairs(call.form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif call.body is not None:
        http["body"] = _escape(call.body)
        headers["Content-Type"] = call.content_type or "text/plain"
    if headers:
        http["headers"] = headers
    step: dict[str, Any] = {"name": call.step, "http": http}
    statuses = sorted(set(call.expect_status))
    if statuses:
        step["expect"] = {"status": statuses[0] if len(statuses) == 1 else statuses}
    if call.captures:
        step["save"] = {
            c.var: (c.json_path if c.json is not None else {"header": c.header}) for c in call.captures
        }
    return step


def chain_document(scenario: Scenario) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for call in scenario.calls:
        if call.think_before > 0:
            steps.append({"name": f"think_before_{call.step}"[:64], "think": f"{call.think_before:g}s"})
        steps.append(step_of(call))
    doc: dict[str, Any] = {"name": scenario.name, "description": scenario.description}
    if scenario.generated:
        doc["vars"] = {name: _generated(g) for name, g in scenario.generated.items()}
    doc["steps"] = steps
    return doc


def _generated(gen: Generated) -> str:
    return GENERATED_TEMPLATES[gen.kind]


def render(scenario: Scenario, header: str) -> str:
    """The chain as YAML text, with ``header`` as a leading comment."""
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    body = yaml.safe_dump(chain_document(scenario), sort_keys=False, allow_unicode=True, width=110)
    return comment + body
