"""Render a scenario as a chain file (``load-testing/chains/*.yml``) that the chains engine runs.

Recorded text is data, never template code: a literal that contains Jinja
delimiters (``{{``, ``{%``, ``{#``) is written as a Jinja string constant
(``{{ '…' }}``), which renders back to exactly the recorded text whatever it
contains (a ``{% raw %}`` block would not: the text can close it).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import yaml

from loadstack.importers import printable, sensitive
from loadstack.importers.model import Call, Env, Generated, Ref, Scenario, Text

# Per-iteration values: unique across users, iterations and runs, repeatable for one seed.
GENERATED_TEMPLATES = {
    "email": "lt-{{ run_id }}-{{ user.index }}-{{ faker.uuid4()[:8] }}@example.test",
    "username": "lt-{{ run_id }}-{{ user.index }}-{{ faker.uuid4()[:8] }}",
    "secret": "pw-{{ faker.uuid4() }}",
    "uuid": "{{ faker.uuid4() }}",
}
_DELIMITER = re.compile(r"\{[{%#]")


def jinja_string(text: str) -> str:
    """A Jinja string literal for ``text``; Jinja decodes it (unicode-escape) back to exactly ``text``."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\r", "\\r").replace("\n", "\\n")
    return f"'{escaped}'"


def literal(text: str, *, mixed: bool = False) -> str:
    """Recorded ``text`` as template source that renders to itself.

    ``mixed``: the text sits next to ``{{ … }}`` references, so Jinja parses it (a ``{`` could join a
    reference, a ``\\r`` would be normalised, a trailing newline dropped); such parts become constants.
    """
    if mixed:
        if "{" in text or "\r" in text or text.endswith("\n"):
            return "{{ " + jinja_string(text) + " }}"
        return text
    if _DELIMITER.search(text):
        return "{{ " + jinja_string(text) + " }}"
    return text


def _ref(value: Ref | Env, *, encode: bool = False) -> str:
    source = f"vars.{value.var}" if isinstance(value, Ref) else f"env.{value.name}"
    return f"{{{{ {source}{' | urlencode' if encode else ''} }}}}"


def template(value: Any, *, encode: bool = False) -> Any:
    """A JSON-like value with refs as ``{{ vars.x }}`` (a lone ref keeps its type when rendered)."""
    if isinstance(value, Ref | Env):
        return _ref(value, encode=encode)
    if isinstance(value, Text):
        out = ""
        last = len(value.parts) - 1
        for i, part in enumerate(value.parts):
            if isinstance(part, Ref | Env):
                out += _ref(part, encode=encode)
                continue
            text = urllib.parse.quote(part, safe="/:@,;=+ ") if encode else part
            if i in (0, last) and text.isspace():
                # " {{ x }} " would read as the lone expression, its spaces dropped: keep them.
                out += "{{ " + jinja_string(text) + " }}"
            else:
                out += literal(text, mixed=True)
        return out
    if isinstance(value, dict):
        return {str(k): template(v, encode=encode) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [template(v, encode=encode) for v in value]
    if isinstance(value, str):
        return literal(value)
    return value


def _encoded_pairs(pairs: list[tuple[str, Any]]) -> str:
    out = []
    for key, value in pairs:
        if isinstance(value, Ref | Env):
            rendered = _ref(value, encode=True)
        elif isinstance(value, Text):
            rendered = template(value, encode=True)
        else:
            rendered = literal(urllib.parse.quote_plus(str(value)), mixed=True)
        out.append(f"{literal(urllib.parse.quote_plus(key), mixed=True)}={rendered}")
    return "&".join(out)


def path_of(call: Call) -> str:
    """The request path; literal segments are URL-encoded already, so they hold no ``{``."""
    path = "/" + "/".join(_ref(s, encode=True) if isinstance(s, Ref | Env) else s for s in call.path)
    if call.trailing_slash:
        path += "/"
    if call.query:
        path += "?" + _encoded_pairs(call.query)
    return path


def _fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Form/multipart fields as a mapping (the chain format); a repeated name keeps its values as a list."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        rendered = template(value)
        if key in out:
            previous = out[key]
            out[key] = [*previous, rendered] if isinstance(previous, list) else [previous, rendered]
        else:
            out[key] = rendered
    return out


def step_of(call: Call) -> dict[str, Any]:
    http: dict[str, Any] = {"method": call.method, "path": path_of(call)}
    headers = {k: template(v) for k, v in call.headers.items()}
    if call.json is not None:
        http["json"] = template(call.json)
    elif call.form is not None:
        http["form"] = _fields(call.form)
    elif call.multipart is not None:
        http["multipart"] = {
            "fields": _fields(call.multipart.fields),
            "files": [
                {"field": f.field, "path": f.path, "filename": f.filename, "content_type": f.content_type}
                for f in call.multipart.files
            ],
        }
    elif call.body_file is not None:
        http["body_file"] = {"path": call.body_file.path, "content_type": call.body_file.content_type}
    elif call.body is not None:
        http["body"] = literal(call.body) if isinstance(call.body, str) else template(call.body)
        headers["Content-Type"] = call.content_type or "text/plain; charset=utf-8"
    if headers:
        http["headers"] = headers
    step: dict[str, Any] = {"name": call.step, "http": http}
    statuses = sorted(set(call.expect_status))
    if statuses:
        step["expect"] = {"status": statuses[0] if len(statuses) == 1 else statuses}
    if call.captures:
        step["save"] = {c.var: _save(c) for c in call.captures}
    return step


def _save(capture: Any) -> Any:
    if capture.json is not None:
        return capture.json_path
    if capture.html_input is not None:
        return f"last | html_input({jinja_string(capture.html_input)})"
    if capture.cookie is not None:
        return f"last | cookie({jinja_string(capture.cookie)})"
    return {"header": capture.header}


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


def usage(scenario: Scenario) -> list[str]:
    """What the chain reads from the environment, and how to switch kept credentials to fresh ones."""
    lines = scenario.secrets_to_set()
    if scenario.keeps_recorded_login():
        lines += [
            "The login uses a recorded account (env.HAR_USERNAME / env.HAR_PASSWORD). To sign up a fresh",
            "user per iteration instead, add a sign-up step and vars such as",
            "  email: " + GENERATED_TEMPLATES["email"],
            "  password: " + GENERATED_TEMPLATES["secret"],
            "and use {{ vars.email }} / {{ vars.password }} in place of both env references.",
        ]
    return lines


def render(scenario: Scenario, header: str) -> str:
    """The chain as YAML text, with ``header`` (and what to set) as a leading comment."""
    mask = sensitive.masker()  # the header quotes the source (a URL may hold a password)
    lines = [*map(mask, header.splitlines()), *usage(scenario)]
    comment = "".join(f"# {printable(line)}".rstrip() + "\n" for line in lines)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: same output, faster
    body = yaml.dump(chain_document(scenario), Dumper=dumper, sort_keys=False, allow_unicode=True, width=110)
    return comment + body
